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

#include "proto/default_config.hpp"
#include "proto/events.hpp"
#include "proto/ws_codec.hpp"
#include "server/engine_service.hpp"

namespace {

using namespace cascade;

const market& default_market() {
  static const market m = [] {
    auto cfg = proto::load_default_config();
    return std::move(cfg->mkt);
  }();
  return m;
}

const std::string price_frame =
    R"({"op":"price","id":17,"asset":"ETH","price":2400.5,"source":"binance","ts":1700000000.25})";

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

// The floor of P4: parse and read every field in document order (op, id, asset, price,
// source, ts), nothing checked: what any decoder of this message must at least do.
void BM_simdjson_price(benchmark::State& state) {
  simdjson::ondemand::parser parser;
  const simdjson::padded_string padded(price_frame);
  for (auto _ : state) {
    auto doc = parser.iterate(padded);
    std::string_view op = doc["op"].get_string();
    std::uint64_t id = doc["id"].get_uint64();
    std::string_view asset = doc["asset"].get_string();
    double price = doc["price"].get_double();
    std::string_view source = doc["source"].get_string();
    double ts = doc["ts"].get_double();
    benchmark::DoNotOptimize(op);
    benchmark::DoNotOptimize(id);
    benchmark::DoNotOptimize(asset);
    benchmark::DoNotOptimize(price);
    benchmark::DoNotOptimize(source);
    benchmark::DoNotOptimize(ts);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * price_frame.size()));
}
BENCHMARK(BM_simdjson_price);

// A lower floor: only op, asset and price (On-Demand never parses source and ts).
void BM_simdjson_price_3fields(benchmark::State& state) {
  simdjson::ondemand::parser parser;
  const simdjson::padded_string padded(price_frame);
  for (auto _ : state) {
    auto doc = parser.iterate(padded);
    std::string_view op = doc["op"].get_string();
    std::string_view asset = doc["asset"].get_string();
    double price = doc["price"].get_double();
    benchmark::DoNotOptimize(op);
    benchmark::DoNotOptimize(asset);
    benchmark::DoNotOptimize(price);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * price_frame.size()));
}
BENCHMARK(BM_simdjson_price_3fields);

// proto's decoder: padded copy, UTF-8, every key checked, id echo, the asset resolved.
void BM_decode_price(benchmark::State& state) {
  const market& m = default_market();
  for (auto _ : state) {
    auto msg = proto::decode_client_message(price_frame, m);
    benchmark::DoNotOptimize(msg);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * price_frame.size()));
}
BENCHMARK(BM_decode_price);

// P4: what a WebSocket I/O thread does with a price frame (server/app.cpp on_message and
// ws_prices, engine_service::submit): stamp the ingest clock, decode, build the engine
// command with its answer callback (a weak reference to the peer and the request id),
// count it against the inbox's capacity and enqueue it into the engine's inbox, a
// moodycamel BlockingConcurrentQueue of the server's own command type, without a
// producer token as the server does. The engine thread's dequeue is not the I/O
// thread's cost: the queue is drained every 4096 frames with the timer paused.
void BM_decode_enqueue_price(benchmark::State& state) {
  const market& m = default_market();
  constexpr std::size_t inbox_capacity = 65'536;  // engine_settings' default
  moodycamel::BlockingConcurrentQueue<server::command> inbox(inbox_capacity);
  std::atomic<std::int64_t> queued{0};
  std::vector<server::command> drained(256);
  const auto peer = std::make_shared<int>(0);  // stands for the ws_peer the answer holds weakly
  const std::weak_ptr<int> weak = peer;
  std::size_t since_drain = 0;
  std::uint64_t answered = 0;
  for (auto _ : state) {
    const std::int64_t ingest = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count();
    auto msg = proto::decode_client_message(price_frame, m);
    auto* pm = std::get_if<proto::prices_msg>(&msg.body);
    if (pm == nullptr) {
      state.SkipWithError("the price frame was refused");
      return;
    }
    server::command c{ingest, server::prices_cmd{std::move(pm->ticks),
                                                 [weak, id = msg.id, &answered](
                                                     const server::apply_result& r) {
                                                   if (weak.lock() && !id.empty()) answered += r.seq;
                                                 }}};
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
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * price_frame.size()));
  state.counters["frames/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_decode_enqueue_price);

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
BENCHMARK(BM_decode_prices_batch)->Arg(100);

void BM_encode_alert(benchmark::State& state) {
  const market& m = default_market();
  proto::alert_event a;
  a.position = "aave-v3-123456";
  a.owner = "0x969023cb405c7445685208957fd8cd1eeaf664c8";
  a.protocol = *m.find_protocol("aave-v3");
  a.from = band::danger;
  a.to = band::liquidatable;
  a.hf_before = 1.0123456789;
  a.hf_after = 0.9876543210;
  a.cause = *m.find_asset("ETH");
  a.price = 2400.5;
  a.assets = {*m.find_asset("ETH"), *m.find_asset("USDC")};
  const proto::event e{42, 1700000000250000000, 1700000000250031000, a};
  for (auto _ : state) {
    auto s = proto::encode_event(e, m);
    benchmark::DoNotOptimize(s);
  }
  state.counters["alerts/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_encode_alert);

void BM_encode_price(benchmark::State& state) {
  const market& m = default_market();
  const proto::event e{42, 1, 2,
                       proto::price_event{*m.find_asset("ETH"), 2400.5, "binance", 1.7e9}};
  for (auto _ : state) {
    auto s = proto::encode_event(e, m);
    benchmark::DoNotOptimize(s);
  }
}
BENCHMARK(BM_encode_price);

}  // namespace

BENCHMARK_MAIN();
