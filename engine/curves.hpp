// Risk curves of one asset, on a book at its current prices:
//  - liquidation curve (static, DeFiLlama-style): collateral value that is liquidatable
//    when the asset's price drops by x and every other price stays fixed;
//  - cascade curve: for initial shocks of the asset, where the cascade settles (final
//    drop, value liquidated, bad debt);
//  - critical shock, the distance to cascade: the smallest shock at which the cascade
//    amplifies itself or creates bad debt, found on a grid and refined by bisection.
//    Both are measured against the cascade the book sets off with no shock at all (a
//    live book holds some liquidatable dust): the shock s amplifies when the final
//    drop exceeds that baseline's by at least amplification x s, and creates bad debt
//    when the bad debt exceeds the baseline's by more than bad_debt_fraction of the
//    book's debt (one dust position going under is not a cascade). With a baseline of
//    no cascade and a fraction of 0 this is exactly "final drop >= 2 x shock, or any
//    bad debt".
// Pure computation on the engine thread (or a CLI). Allocates; never throws on bad
// input (absl::Status).
#pragma once

#include <absl/status/statusor.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "engine/book.hpp"
#include "engine/cascade.hpp"

namespace cascade {

struct liquidation_point {
  double drop = 0.0;            // fraction of the price, in [0, 1)
  std::uint64_t positions = 0;  // liquidatable positions (debt > 0, HF < 1)
  double collateral_usd = 0.0;  // their collateral, valued at the dropped price
  double debt_usd = 0.0;        // their debt, valued at the dropped price
};

// One point per drop (each in [0, 1)). Positions that do not hold the asset count at
// every point where they are already liquidatable. O(holders + points).
[[nodiscard]] absl::StatusOr<std::vector<liquidation_point>> liquidation_curve(
    const book& b, asset_id a, std::span<const double> drops);

struct cascade_point {
  double shock = 0.0;       // initial drop (positive fraction)
  double final_drop = 0.0;  // 1 - final price / price before the shock
  std::uint32_t rounds = 0;
  std::uint64_t positions_liquidated = 0;
  std::uint64_t positions_insolvent = 0;
  double repaid_usd = 0.0;
  double seized_usd = 0.0;
  double bad_debt_usd = 0.0;
};

struct critical_shock_options {
  double amplification = 2.0;       // final drop >= amplification * shock counts as a cascade
  double bad_debt_fraction = 1e-4;  // material bad debt: this share of the book's debt
  double max_shock = 0.9;           // search range (0, max_shock]
  double tolerance = 1e-4;          // bisection stops when the bracket is this narrow
  std::uint32_t max_rounds = 100;
};

struct critical_shock {
  std::optional<double> shock;  // nullopt: no cascade up to max_shock
  double baseline_drop = 0.0;   // final drop of the asset with no shock
  double baseline_bad_debt_usd = 0.0;
  double material_bad_debt_usd = 0.0;  // bad debt beyond the baseline that counts
  bool amplifies = false;              // at `shock`, the cascade amplifies itself
  bool bad_debt = false;               // at `shock`, it creates bad debt
  std::uint32_t cascades_run = 0;
};

// Runs the cascade for each shock of asset a as a drop (shock 0.2 = price x 0.8).
[[nodiscard]] absl::StatusOr<std::vector<cascade_point>> cascade_curve(
    const book& b, asset_id a, std::span<const double> shocks, cascade_simulator& sim,
    std::uint32_t max_rounds = 100);

[[nodiscard]] absl::StatusOr<critical_shock> find_critical_shock(
    const book& b, asset_id a, cascade_simulator& sim, const critical_shock_options& o = {});

// The curves `cascade curves` and GET /v1/curves report for one asset: the liquidation
// curve at drops 0 to 90% by 1%, the cascade curve at shocks 0 to 50% by 1% (with
// o.max_rounds), and the critical shock.
struct asset_curves {
  std::vector<liquidation_point> liquidation;
  std::vector<cascade_point> cascade;
  critical_shock critical;
};
[[nodiscard]] absl::StatusOr<asset_curves> standard_curves(const book& b, asset_id a,
                                                           cascade_simulator& sim,
                                                           const critical_shock_options& o);

// Evenly spaced grid from `from` to `to` inclusive, `steps` intervals.
[[nodiscard]] std::vector<double> grid(double from, double to, std::uint32_t steps);

// One-factor shocks: asset a moves by beta_a x market_shock (betas indexed by asset id;
// assets with beta 0 are not shocked). Refuses a resulting shock <= -1.
[[nodiscard]] absl::StatusOr<std::vector<shock>> one_factor_shocks(std::span<const double> betas,
                                                                   double market_shock);

}  // namespace cascade
