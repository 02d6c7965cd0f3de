// The scenario document (DESIGN.md "Scenario and report documents") decoded into engine
// values: a market, positions, shocks and the round limit.
//
// Decoding uses simdjson On-Demand on a padded copy of the input. Everything is checked:
// JSON syntax (including values under keys this version does not know, and trailing
// content), types, required fields, and the market's own rules (market::add_asset and
// add_protocol), plus the cascade model's refused inputs. A refusal is an
// InvalidArgument status reading "SOURCE:LINE: PATH: REASON", e.g.
//   scenario.json:9: protocols[0].assets.ETH.liquidation_threshold: protocol 'aave-v3':
//   asset 'ETH': liquidation_threshold 1.5 is outside (0, 1]
// Unknown keys are accepted (the document may grow) but must hold well-formed JSON
// (nested at most 64 deep); a known key given twice is refused. A UTF-8 byte-order
// mark is skipped. Omitted optional values: owner "", collateral and debt 0,
// liquidation_bonus 0, max_rounds 100, no shocks, no derived, sell_through true.
//
// An asset may be derived from one listed before it (engine/market.hpp `derivation`):
//   {"symbol": "stETH", "price": 1990.0,
//    "derived": {"base": "ETH", "ratio_pool": {"base": 20000.0, "quote": 19900.0},
//                "sell_through": true}}
// where ratio_pool's quote/base must equal price / base price (to 1e-9). A shock on a
// derived asset moves its ratio to its base (a depeg).
//
// An asset may have liquidity venues instead of a pool, and a top-level "model" sets the
// cascade's options (PROTOCOL.md "Stress scenario: liquidity venues and cascade model
// options"):
//   {"symbol": "ETH", "price": 2000.0,
//    "venues": [{"name": "uni", "pool": {"base": 1000.0, "quote": 2000000.0}},
//               {"name": "cex", "depth": [{"drop": 0.01, "usd": 1e6}]}],
//    "withdrawal": {"drawdown_sensitivity": 2.0, "volatility_sensitivity": 0.0,
//                   "floor": 0.1, "half_life_s": 3600}}
//   "model": {"oracles": {PROTOCOL: {"deviation": 0.05, "lag_rounds": 1}},
//             "latency_rounds": 0, "liquidator_capacity_usd": null, "round_seconds": 12,
//             "halt_drop": null, "halt_rounds": 1, "max_liquidating_usd": {PROTOCOL: 1e6},
//             "counterfactual": true}
// null means "no limit". Protocol names must exist; withdrawal needs venues; venues
// exclude pool and derived.
//
// Pure functions: any thread, no shared state. They allocate; they throw nothing but
// std::bad_alloc.
#pragma once

#include <absl/status/statusor.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/book.hpp"
#include "engine/cascade.hpp"
#include "engine/ids.hpp"
#include "engine/market.hpp"

namespace cascade::proto {

// Largest max_rounds a scenario may ask for: each round is a pass over the positions.
inline constexpr std::uint32_t max_rounds_limit = 1'000'000;

struct scenario {
  market mkt;
  // Position ids are unique; protocols and assets refer to `mkt`. Document order.
  std::vector<position_input> positions;
  // False when the document has no "positions" key (POST /v1/stress on the live book).
  bool has_positions = false;
  // Relative shocks in document order; each > -1, on a distinct asset of `mkt`, and
  // leaving the shocked price finite.
  std::vector<std::pair<asset_id, double>> shocks;
  std::uint32_t max_rounds = 100;  // in [1, max_rounds_limit]
  // "model": the cascade extensions (engine/cascade.hpp cascade_model), by protocol id.
  // Absent, or every value at its default: model v1. A caller runs the cascade with
  // cascade_options{.max_rounds = max_rounds, .model = model}.
  cascade_model model;
};

// The options the scenario asks the cascade to run with (max_rounds and model).
[[nodiscard]] inline cascade_options cascade_options_of(const scenario& s) {
  cascade_options o;
  o.max_rounds = s.max_rounds;
  o.model = s.model;
  return o;
}

// Decodes one scenario document. `source_name` prefixes every error ("scenario.json",
// "POST /v1/stress body").
[[nodiscard]] absl::StatusOr<scenario> parse_scenario(std::string_view json,
                                                      std::string_view source_name);

// Reads and decodes a scenario file; errors name the path.
[[nodiscard]] absl::StatusOr<scenario> load_scenario_file(const std::string& path);

}  // namespace cascade::proto
