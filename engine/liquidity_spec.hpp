// What an asset's liquidity is configured as, beyond model v1's one constant-product
// pool (issue 5): venues (constant-product pools or depth curves) and how their depth
// withdraws under stress. Plain values, validated by liquidity_spec::validate and by
// market::add_asset; engine/liquidity.hpp turns them into a liquidity that sells.
// No allocation beyond the vectors; never throws except std::bad_alloc.
#pragma once

#include <absl/status/status.h>

#include <optional>
#include <string>
#include <vector>

namespace cascade {

// Constant-product pool of the asset against a USD quote: price = quote / base.
struct pool {
  double base = 0.0;
  double quote = 0.0;
};

// One point of a depth curve: selling `usd` worth of the asset (valued at the venue's
// mid price) moves that venue's price down by `drop` (a fraction of mid).
struct depth_point {
  double drop = 0.0;
  double usd = 0.0;
};

// A venue is a constant-product pool (`cp`) or a depth curve (`depth`), never both.
// A curve's points have 0 < drop < 1 strictly increasing and usd > 0 strictly
// increasing; (0, 0) is implied. The usd of each point is quoted at the asset's
// configured price; at another mid it scales with the mid (the depth in asset units
// does not change).
struct venue_spec {
  std::string name;
  std::optional<pool> cp;
  std::vector<depth_point> depth;
};

// Withdrawal of depth under stress. Every venue's depth is multiplied by a scale in
// [floor, 1]:
//   target = max(floor, min(1, 1 - drawdown_sensitivity * drawdown
//                                 - volatility_sensitivity * annualized_vol))
// The scale falls to the target at once and rises back towards it with half_life_s.
// All zero sensitivities (the default): no withdrawal.
struct withdrawal_spec {
  double drawdown_sensitivity = 0.0;   // >= 0
  double volatility_sensitivity = 0.0;  // >= 0
  double floor = 0.1;                   // in (0, 1]
  double half_life_s = 3600.0;          // > 0

  [[nodiscard]] bool active() const {
    return drawdown_sensitivity > 0.0 || volatility_sensitivity > 0.0;
  }
  // The target scale for a drawdown in [0, 1] and an annualized volatility >= 0.
  [[nodiscard]] double target(double drawdown, double annualized_vol) const;
};

struct liquidity_spec {
  std::vector<venue_spec> venues;
  withdrawal_spec withdrawal;

  // Refuses no venues, an empty or repeated venue name, a venue with both or neither
  // of cp and depth, cp reserves that are not finite and > 0 or whose quote/base
  // differs from `price` by more than pool_price_tolerance (relative), a curve point
  // breaking the rules above, and withdrawal values out of range. The message names
  // the venue (venues[i] 'name') and field.
  [[nodiscard]] absl::Status validate(double price) const;
};

// Relative tolerance within which a pool's quote/base must equal the asset's price.
inline constexpr double pool_price_tolerance = 1e-9;

}  // namespace cascade
