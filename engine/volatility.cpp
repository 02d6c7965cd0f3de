#include "engine/volatility.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/market.hpp"

namespace cascade {

namespace {

double normal_cdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

double z_score(double variance_per_second, double horizon, double drop) {
  const double sd = std::sqrt(variance_per_second * horizon);
  if (!(sd > 0.0)) return -std::numeric_limits<double>::infinity();
  return std::log1p(-drop) / sd;
}

}  // namespace

volatility_tracker::volatility_tracker(std::size_t assets, volatility_options options)
    : options_(options), state_(assets) {}

void volatility_tracker::observe(asset_id a, double price, double ts) {
  if (!a.valid() || a.index() >= state_.size() || !is_positive_finite(price) ||
      !std::isfinite(ts)) {
    return;
  }
  state& s = state_[a.index()];
  if (!s.seen || ts <= s.last_ts) {
    if (!s.seen) s.last_ts = ts;
    s.last_price = price;
    s.seen = true;
    return;
  }
  const double dt = ts - s.last_ts;
  const double r = std::log(price / s.last_price);
  const double rate = r * r / dt;
  if (s.samples == 0) {
    s.variance = rate;
  } else {
    const double lambda = std::exp2(-dt / options_.half_life_seconds);
    s.variance = lambda * s.variance + (1.0 - lambda) * rate;
  }
  ++s.samples;
  s.last_price = price;
  s.last_ts = ts;
}

std::optional<double> volatility_tracker::variance_per_second(asset_id a) const {
  const state& s = state_[a.index()];
  if (s.samples < options_.min_samples) return std::nullopt;
  return s.variance;
}

std::optional<double> volatility_tracker::annualized(asset_id a) const {
  const auto v = variance_per_second(a);
  if (!v) return std::nullopt;
  return std::sqrt(*v * seconds_per_year);
}

double probability_of_touching(double variance_per_second, double horizon, double drop) {
  return std::min(1.0, 2.0 * normal_cdf(z_score(variance_per_second, horizon, drop)));
}

double probability_at_horizon(double variance_per_second, double horizon, double drop) {
  return normal_cdf(z_score(variance_per_second, horizon, drop));
}

}  // namespace cascade
