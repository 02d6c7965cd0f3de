// Wire benchmarks (issue 7, P4): decoding a client price message with proto's codec,
// and handing it to the engine as the server does, against a bare simdjson On-Demand
// parse of the same bytes (the floor: what reading the fields costs with no checks);
// and encoding the events the publisher sends. Every ratio comes from one run of this
// binary. Names come from the default market.
#include <benchmark/benchmark.h>
#include <concurrentqueue/blockingconcurrentqueue.h>
#include <simdjson.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "perf/bench_common.hpp"
#include "proto/events.hpp"
#include "proto/ws_codec.hpp"
#include "server/engine_service.hpp"

namespace {

using namespace cascade;

using perf::default_market;

const std::string price_frame =
    R"({"op":"price","id":17,"asset":"ETH","price":2400.5,"source":"binance","ts":1700000000.25})";
// What a feed sends: no id, so no answer is owed.
const std::string feed_frame =
    R"({"op":"price","asset":"ETH","price":2400.5,"source":"binance","ts":1700000000.25})";

std::string batch_frame(int ticks) {
  std::string s = R"({"op":"prices","id":1,"prices":[)";
  const char* assets[] = {"ETH", "WBTC", "wstETH", "LINK"};
  for (int i = 0; i < ticks; ++i) {
    if (i > 0) s += ',';
    s += R"({"asset":")";
    s += assets[i % 4];
    s += R"(","price":)" + std::to_string(1000.0 + i * 0.25) + "}";
  }
  return s + "]}";
}

// The floors of P4: simdjson On-Demand reading the price message, nothing checked.
// All: every field in document order (op, id, asset, price, source, ts), what any
// decoder of this message must at least do; else only op, asset and price (On-Demand
// then never parses id, source and ts). Id: the frame with an id (price_frame), else
// the feed's (feed_frame).
template <bool All, bool Id = true>
void simdjson_price(benchmark::State& state) {
  simdjson::ondemand::parser parser;
  const std::string& frame = Id ? price_frame : feed_frame;
  const simdjson::padded_string padded(frame);
  for (auto _ : state) {
    auto doc = parser.iterate(padded);
    std::string_view op = doc["op"].get_string();
    benchmark::DoNotOptimize(op);
    if constexpr (All && Id) {
      std::uint64_t id = doc["id"].get_uint64();
      benchmark::DoNotOptimize(id);
    }
    std::string_view asset = doc["asset"].get_string();
    double price = doc["price"].get_double();
    benchmark::DoNotOptimize(asset);
    benchmark::DoNotOptimize(price);
    if constexpr (All) {
      std::string_view source = doc["source"].get_string();
      double ts = doc["ts"].get_double();
      benchmark::DoNotOptimize(source);
      benchmark::DoNotOptimize(ts);
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * frame.size()));
}
void BM_simdjson_price(benchmark::State& state) { simdjson_price<true>(state); }
BENCHMARK(BM_simdjson_price)->Apply(perf::add_spread);
void BM_simdjson_price_3fields(benchmark::State& state) { simdjson_price<false>(state); }
BENCHMARK(BM_simdjson_price_3fields)->Apply(perf::add_spread);
void BM_simdjson_price_feed(benchmark::State& state) { simdjson_price<true, false>(state); }
BENCHMARK(BM_simdjson_price_feed)->Apply(perf::add_spread);

// proto's decoder: padded copy, UTF-8, every key checked, id echo, the asset resolved.
void BM_decode_price(benchmark::State& state) {
  const market& m = default_market();
  for (auto _ : state) {
    auto msg = proto::decode_client_message(price_frame, m);
    benchmark::DoNotOptimize(msg);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * price_frame.size()));
}
BENCHMARK(BM_decode_price)->Apply(perf::add_spread);

// The same frame through the reference path alone (the two passes every frame took
// before the single pass, and that every other frame still takes): the single pass's
// gain, measured in the same run.
void BM_decode_price_two_pass(benchmark::State& state) {
  const market& m = default_market();
  for (auto _ : state) {
    auto msg = proto::detail::decode_client_message_reference(price_frame, m);
    benchmark::DoNotOptimize(msg);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * price_frame.size()));
}
BENCHMARK(BM_decode_price_two_pass)->Apply(perf::add_spread);

// A price frame refused at its last field: the single pass gives up there and the frame
// starts over on the reference path (parsed again), what a refusal costs now.
void BM_decode_price_refused(benchmark::State& state) {
  const market& m = default_market();
  const std::string frame =
      R"({"op":"price","id":17,"asset":"ETH","price":2400.5,"source":"binance","ts":-1})";
  for (auto _ : state) {
    auto msg = proto::decode_client_message(frame, m);
    if (!std::holds_alternative<proto::wire_error>(msg.body)) {
      state.SkipWithError("the frame was not refused");
      return;
    }
    benchmark::DoNotOptimize(msg);
  }
}
BENCHMARK(BM_decode_price_refused)->Apply(perf::add_spread);

// P4: what a WebSocket I/O thread does with a price frame (server/app.cpp on_message and
// ws_prices, engine_service::submit): stamp the ingest clock, decode, build the engine
// command (with its answer callback, a weak reference to the peer and the request id,
// only when the frame has an id: a feed's frames owe no answer), count it against the
// inbox's capacity and enqueue it into the engine's inbox, a moodycamel
// BlockingConcurrentQueue of the server's own command type, without a producer token as
// the server does. The engine thread's dequeue is not the I/O thread's cost: the queue
// is drained every 4096 frames with the timer paused.
void decode_enqueue(benchmark::State& state, const std::string& frame) {
  const market& m = default_market();
  constexpr std::size_t inbox_capacity = 65'536;  // engine_settings' default
  moodycamel::BlockingConcurrentQueue<server::command> inbox(inbox_capacity);
  std::atomic<std::int64_t> queued{0};
  std::vector<server::command> drained(256);
  const auto peer = std::make_shared<int>(0);  // stands for the ws_peer the answer holds weakly
  std::size_t since_drain = 0;
  std::uint64_t answered = 0;
  for (auto _ : state) {
    const std::int64_t ingest = server::now_ns();
    auto msg = proto::decode_client_message(frame, m);
    auto* pm = std::get_if<proto::prices_msg>(&msg.body);
    if (pm == nullptr) {
      state.SkipWithError("the price frame was refused");
      return;
    }
    server::command c{ingest, server::prices_cmd{std::move(pm->ticks), {}}};
    if (!msg.id.empty()) {
      std::get<server::prices_cmd>(c.body).done =
          [weak = std::weak_ptr<int>(peer), id = msg.id, &answered](const server::apply_result& r) {
            if (weak.lock()) answered += r.seq + id.size();
          };
    }
    if (queued.fetch_add(1, std::memory_order_relaxed) >=
            static_cast<std::int64_t>(inbox_capacity) ||
        !inbox.enqueue(std::move(c))) {
      state.SkipWithError("inbox full");
      return;
    }
    if (++since_drain == 4096) {
      state.PauseTiming();
      while (inbox.try_dequeue_bulk(drained.begin(), drained.size()) > 0) {
      }
      queued.store(0, std::memory_order_relaxed);
      since_drain = 0;
      state.ResumeTiming();
    }
  }
  benchmark::DoNotOptimize(answered);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * frame.size()));
  state.counters["frames/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
void BM_decode_enqueue_price(benchmark::State& state) { decode_enqueue(state, price_frame); }
BENCHMARK(BM_decode_enqueue_price)->Apply(perf::add_spread);
void BM_decode_enqueue_price_feed(benchmark::State& state) { decode_enqueue(state, feed_frame); }
BENCHMARK(BM_decode_enqueue_price_feed)->Apply(perf::add_spread);

// The ingest stamp every frame pays (server::now_ns, Abseil's cycle-counter clock)
// against the std::chrono::system_clock it replaced, in the same run.
void BM_ingest_stamp(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(server::now_ns());
}
BENCHMARK(BM_ingest_stamp)->Apply(perf::add_spread);
void BM_system_clock(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(std::chrono::system_clock::now());
}
BENCHMARK(BM_system_clock)->Apply(perf::add_spread);

void BM_decode_prices_batch(benchmark::State& state) {
  const market& m = default_market();
  const std::string frame = batch_frame(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    auto msg = proto::decode_client_message(frame, m);
    benchmark::DoNotOptimize(msg);
  }
  state.counters["ticks/s"] = benchmark::Counter(
      static_cast<double>(state.iterations() * state.range(0)), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_decode_prices_batch)->Arg(100)->Apply(perf::add_spread);

void BM_encode_alert(benchmark::State& state) {
  const market& m = default_market();
  const proto::alert_event a = perf::sample_alert(m, "aave-v3-123456");
  const proto::event e{42, 1700000000250000000, 1700000000250031000, a};
  for (auto _ : state) {
    auto s = proto::encode_event(e, m);
    benchmark::DoNotOptimize(s);
  }
  state.counters["alerts/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_encode_alert)->Apply(perf::add_spread);

void BM_encode_price(benchmark::State& state) {
  const market& m = default_market();
  const proto::event e{42, 1, 2,
                       proto::price_event{*m.find_asset("ETH"), 2400.5, "binance", 1.7e9}};
  for (auto _ : state) {
    auto s = proto::encode_event(e, m);
    benchmark::DoNotOptimize(s);
  }
}
BENCHMARK(BM_encode_price)->Apply(perf::add_spread);

}  // namespace

BENCHMARK_MAIN();
