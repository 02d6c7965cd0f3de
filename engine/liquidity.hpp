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
// cascade (sales that move the price). Not thread-safe; values, cheap to copy (a few
// small vectors). proceeds and sell on several venues allocate one small vector.
//
// Depth-curve venue. Its state is a mid price m and the position w on its curve,
// counted in reference USD (USD at the asset's configured price, depth scale 1). The
// curve x(w) is piecewise linear through (0, 0) and the configured points
// (usd_k, drop_k); beyond the last point it continues with the last segment's slope
// until x = 1 (price 0), and stays at 1 after that (further units fetch nothing).
// Selling u units moves w by u * ref_price / scale: the depth in asset units is the
// same at every mid, and shrinks with the depth scale. The marginal price is
// m * (1 - x(w)); the USD fetched is the integral of the marginal price over the units
// sold, exact per linear segment (the mean of its end prices times its units).
// move_to(p) re-centres the curve: m = p, w = 0 (the venue's full depth again).
//
// Constant-product venue: out = quote u / (base + u); move_to(p) keeps k = base quote.
//
// Routing over several venues: a sale goes to the best marginal price first, so the
// venues it reaches end at one common marginal price P, and those it does not reach
// were already at or below P. P solves sum_v units_v(P) = q, where units_v(P) is what
// brings venue v down to P (closed form per venue: sqrt(k / P) - base for a pool, the
// curve's inverse for a depth curve). It is found by bisection on [0, highest marginal
// price] until the bracket is two adjacent doubles (deterministic: no tolerance but
// the double grid); each venue gets units_v(upper end), and the remainder (q minus
// their sum, a rounding residue) goes to the first venue in configuration order that
// received units (else the first at the highest price), so the units sum to q
// exactly. When only depth curves remain and q exceeds what brings them all to price
// 0, the surplus goes to the first venue and fetches nothing. price() is the highest
// marginal price over the venues (their common price after a routed sale).
//
// Withdrawal: observe(price, t, vol) keeps a running high that decays towards the
// price with the withdrawal half-life (high <- max(price, price + (high - price) *
// 2^(-dt / half_life))), takes drawdown = 1 - price / high and sets the scale to the
// target of withdrawal_spec at once when the target is lower, else moves it towards
// the target: scale <- target - (target - scale) * 2^(-dt / half_life). The first
// observation starts the high at the price. Times going backwards count as dt = 0.
// The cascade uses withdraw_for_drawdown instead (no time, no recovery).
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
  // Venues as configured (depth curves quoted at ref_price, pools as given), with the
  // spec's withdrawal, at depth scale 1. The spec must be valid (validate(ref_price)).
  [[nodiscard]] static liquidity from_spec(const liquidity_spec& s, double ref_price);
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
  // Changing it keeps every venue's marginal price.
  [[nodiscard]] double depth_scale() const { return scale_; }
  void set_depth_scale(double s);

  // Withdrawal under stress (see the file comment).
  [[nodiscard]] const withdrawal_spec& withdrawal() const { return withdrawal_; }
  void set_withdrawal(const withdrawal_spec& w) { withdrawal_ = w; }
  // A live observation: price > 0 at time t (seconds), annualized volatility >= 0.
  void observe(double price, double t, double annualized_vol);
  // The cascade's rule: the scale drops to the target for this drawdown (volatility 0)
  // when that is lower, and never recovers.
  void withdraw_for_drawdown(double drawdown);

  [[nodiscard]] std::size_t venue_count() const { return venues_.size(); }
  // Venue i's marginal price.
  [[nodiscard]] double venue_price(std::size_t i) const;
  // Units each venue (configuration order) takes when q >= 0 units are sold from the
  // current state, routed best price first; they sum to q.
  [[nodiscard]] std::vector<double> route(double q) const;

  [[nodiscard]] bool is_v1_pool() const { return venues_.size() == 1 && venues_[0].cp; }
  // The v1 pool's state (valid when is_v1_pool()).
  [[nodiscard]] pool v1_pool() const { return *venues_[0].cp; }

 private:
  struct venue {
    std::optional<pool> cp;  // current reserves (scaled)
    // Depth curve (when cp is empty): configured points, quoted at ref_price.
    std::vector<depth_point> curve;
    double ref_price = 0.0;
    double mid = 0.0;
    double w = 0.0;  // position on the curve, reference USD
  };
  [[nodiscard]] double marginal(const venue& v) const;
  [[nodiscard]] double units_to(const venue& v, double p) const;
  [[nodiscard]] double revenue(const venue& v, double u0, double u1) const;
  double sell_into(venue& v, double u);

  std::vector<venue> venues_;
  double scale_ = 1.0;
  withdrawal_spec withdrawal_;
  double high_ = 0.0;
  double last_t_ = 0.0;
  bool observed_ = false;
};

}  // namespace cascade
