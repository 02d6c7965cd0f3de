// Small hand-built markets shared by the engine tests.
#pragma once

#include <catch2/catch.hpp>
#include <string_view>

#include "engine/book.hpp"
#include "engine/market.hpp"

namespace cascade::testing {

template <class T>
T must(absl::StatusOr<T> v) {
  INFO(v.status().ToString());
  REQUIRE(v.ok());
  return *std::move(v);
}

inline void must(const absl::Status& s) {
  INFO(s.ToString());
  REQUIRE(s.ok());
}

// ETH 2000 (pool), WBTC 40000, USDC 1, DAI 1 (no pool); protocols:
//   lend (pooled): ETH lt 0.80 bonus 0.05, WBTC lt 0.75 bonus 0.06, USDC lt 0.85 bonus 0.04
//   vault (cdp):   ETH lt 1/1.5 (150% collateral ratio) bonus 0.13
inline market small_market() {
  market m;
  must(m.add_asset({"ETH", 2000.0, pool{10000.0, 20'000'000.0}}));
  must(m.add_asset({"WBTC", 40000.0, std::nullopt}));
  must(m.add_asset({"USDC", 1.0, std::nullopt}));
  must(m.add_asset({"DAI", 1.0, std::nullopt}));
  must(m.add_protocol({"lend",
                       protocol_kind::pooled,
                       0.5,
                       0.95,
                       {{"ETH", {0.80, 0.05}}, {"WBTC", {0.75, 0.06}}, {"USDC", {0.85, 0.04}}}}));
  must(m.add_protocol({"vault", protocol_kind::cdp, 1.0, 1.0, {{"ETH", {1.0 / 1.5, 0.13}}}}));
  return m;
}

// The smallest valid TOML config: one asset, one protocol, a generated book.
inline constexpr std::string_view minimal_config_toml = R"(
[positions]
generate = 1000

[[assets]]
symbol = "ETH"
price = 2000

[[protocols]]
name = "lend"
kind = "pooled"
close_factor = 0.5
full_liquidation_hf = 0.95
assets = { ETH = { liquidation_threshold = 0.8, liquidation_bonus = 0.05 } }
)";

inline asset_id aid(const market& m, std::string_view s) { return *m.find_asset(s); }
inline protocol_id pid(const market& m, std::string_view s) { return *m.find_protocol(s); }

}  // namespace cascade::testing
