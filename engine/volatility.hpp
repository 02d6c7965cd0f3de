// Predictive volatility: an exponentially weighted estimate of each asset's variance
// from its tick stream, and from it the probability that the asset falls by a given
// fraction within a horizon (log-normal, driftless).
//
// Ticks arrive at irregular times, so the weight decays with time, not with the number
// of ticks: each return r over dt seconds updates the variance per second as
//   v <- lambda * v + (1 - lambda) * r^2 / dt,   lambda = 2^(-dt / half_life).
// The first return seeds v. Owned by the engine thread; observe() does not allocate.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "engine/ids.hpp"

namespace cascade {

struct volatility_options {
  double half_life_seconds = 86400.0;  // one day
  std::uint32_t min_samples = 20;      // returns needed before an estimate is given
};

inline constexpr double seconds_per_year = 365.25 * 86400.0;

class volatility_tracker {
 public:
  volatility_tracker(std::size_t assets, volatility_options options = {});

  // One observation of asset a at time ts (seconds). Prices that are not finite and > 0
  // are ignored; an observation at or before the previous time replaces the previous
  // price without making a return (several ticks in one second).
  void observe(asset_id a, double price, double ts);

  [[nodiscard]] std::uint64_t samples(asset_id a) const { return state_[a.index()].samples; }
  // Variance of log returns per second, once min_samples returns have been seen.
  [[nodiscard]] std::optional<double> variance_per_second(asset_id a) const;
  // sqrt(variance per second * seconds per year).
  [[nodiscard]] std::optional<double> annualized(asset_id a) const;

 private:
  struct state {
    double last_price = 0.0;
    double last_ts = 0.0;
    double variance = 0.0;
    std::uint64_t samples = 0;
    bool seen = false;
  };
  volatility_options options_;
  std::vector<state> state_;
};

// Probability that a driftless log-normal price with the given variance per second
// touches (1 - drop) times its current price at some time within `horizon` seconds:
// 2 * Phi(ln(1 - drop) / (sigma * sqrt(horizon))) by the reflection principle, capped
// at 1. drop in (0, 1).
[[nodiscard]] double probability_of_touching(double variance_per_second, double horizon,
                                             double drop);
// Probability that it ends the horizon at or below (1 - drop): Phi(...) alone.
[[nodiscard]] double probability_at_horizon(double variance_per_second, double horizon,
                                            double drop);

}  // namespace cascade
