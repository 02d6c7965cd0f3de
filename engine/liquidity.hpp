// The liquidity one asset can be sold into: what a seller gets, and where the price
// goes. Model v1 (DESIGN.md) knows one constant-product pool per asset; this adds the
// options of issue 5:
//  - depth-curve venues: USD depth at given drops from mid, piecewise linear;
//  - several venues per asset (fragmentation), a sale routed across them best price
//    first, so the venues it touches end at one marginal price;
//  - withdrawal under stress: every venue's depth scales by a factor that shrinks with
//    drawdown and volatility and recovers with a half-life.
// A v1 pool is a liquidity of one constant-product venue, and sells with v1's exact
// arithmetic (out = quote q / (base + q), base += q, quote -= out).
//
// Used by the book (realizable value: proceeds without changing state) and by the
// cascade (sales that move the price). Not thread-safe; values, cheap to copy.
#pragma once

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <optional>
#include <string>
#include <vector>

#include "engine/market.hpp"

namespace cascade {

class liquidity {
 public:
  // A single v1 constant-product pool (price = quote / base).
  [[nodiscard]] static liquidity from_pool(const pool& p);
  // The asset's liquidity as its spec describes it, centred at `price`: its venues
  // when it has any, else its v1 pool; nullopt when it has neither (sales move no
  // price and fetch price x amount).
  [[nodiscard]] static std::optional<liquidity> of_asset(const asset_spec& a, double price);

  // The marginal price (every venue's, after routing).
  [[nodiscard]] double price() const;
  // USD fetched by selling q >= 0 units after `ahead` >= 0 units have been sold first
  // by others, from the current state, which does not change.
  [[nodiscard]] double proceeds(double ahead, double q) const;
  // Sells q >= 0 units (routed best price first); returns the USD fetched. The state
  // moves; price() is the marginal price after.
  double sell(double q);
  // Re-centres every venue at price p > 0 (a pool at constant k).
  void move_to(double p);

  // Depth scale in (0, 1]: every venue's depth is its configured depth times this.
  [[nodiscard]] double depth_scale() const { return scale_; }
  void set_depth_scale(double s);

  [[nodiscard]] bool is_v1_pool() const { return venues_.size() == 1 && venues_[0].cp; }
  // The v1 pool's state (valid when is_v1_pool()).
  [[nodiscard]] pool v1_pool() const { return *venues_[0].cp; }

 private:
  struct venue {
    std::optional<pool> cp;  // current reserves (scaled)
  };
  std::vector<venue> venues_;
  double scale_ = 1.0;
};

}  // namespace cascade
