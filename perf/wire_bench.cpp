// Wire benchmarks (issue 7, P4): decoding a client price message with proto's codec
// against a bare simdjson On-Demand parse of the same bytes (the floor: what reading
// the three fields costs with no checks), and encoding the events the publisher sends.
// Every ratio comes from one run of this binary. Names come from the default market.
#include <benchmark/benchmark.h>
#include <simdjson.h>

#include <string>
#include <vector>

#include "proto/default_config.hpp"
#include "proto/events.hpp"
#include "proto/ws_codec.hpp"

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

// The floor: parse and read op, asset and price, nothing checked.
void BM_simdjson_price(benchmark::State& state) {
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
BENCHMARK(BM_simdjson_price);

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
