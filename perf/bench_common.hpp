// Helpers shared by the perf binaries: the default market, a sample alert, and the
// min/max statistics that RESULTS.md's spread column reads.
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "engine/market.hpp"
#include "proto/default_config.hpp"
#include "proto/events.hpp"

namespace cascade::perf {

// The embedded default market (config/default.toml), loaded once.
inline const market& default_market() {
  static const market m = [] {
    auto cfg = proto::load_default_config();
    if (!cfg.ok()) std::abort();  // the embedded config is checked by the test suite
    return std::move(cfg->mkt);
  }();
  return m;
}

// An alert as the engine emits one: danger -> liquidatable on aave-v3, caused by ETH.
inline proto::alert_event sample_alert(const market& m, std::string position) {
  proto::alert_event a;
  a.position = std::move(position);
  a.owner = "0x969023cb405c7445685208957fd8cd1eeaf664c8";
  a.protocol = *m.find_protocol("aave-v3");
  a.from = band::danger;
  a.to = band::liquidatable;
  a.hf_before = 1.0123456789;
  a.hf_after = 0.9876543210;
  a.cause = *m.find_asset("ETH");
  a.price = 2400.5;
  a.assets = {*m.find_asset("ETH"), *m.find_asset("USDC")};
  return a;
}

// min and max beside Google Benchmark's mean, median and stddev.
inline void add_spread(benchmark::internal::Benchmark* bm) {
  bm->ComputeStatistics(
      "min", [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); });
  bm->ComputeStatistics(
      "max", [](const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); });
}

}  // namespace cascade::perf
