#include "engine/liquidity.hpp"

#include <algorithm>
#include <cmath>

namespace cascade {

// First version: v1 constant-product pools only; depth curves, venues and withdrawal
// build on this interface.

liquidity liquidity::from_pool(const pool& p) {
  liquidity l;
  l.venues_.push_back(venue{p});
  return l;
}

std::optional<liquidity> liquidity::of_asset(const asset_spec& a, double price) {
  if (!a.liquidity) return std::nullopt;
  liquidity l = from_pool(*a.liquidity);
  l.move_to(price);
  return l;
}

double liquidity::price() const {
  const pool& p = *venues_[0].cp;
  return p.quote / p.base;
}

double liquidity::proceeds(double ahead, double q) const {
  const pool& p = *venues_[0].cp;
  const double before = ahead > 0.0 ? p.quote * ahead / (p.base + ahead) : 0.0;
  const double after = p.quote * (ahead + q) / (p.base + ahead + q);
  return std::max(0.0, after - before);
}

double liquidity::sell(double q) {
  pool& p = *venues_[0].cp;
  const double out = p.quote * q / (p.base + q);
  p.base += q;
  p.quote -= out;
  return out;
}

void liquidity::move_to(double price) {
  pool& p = *venues_[0].cp;
  if (p.quote / p.base == price) return;
  const double k = p.base * p.quote;
  p = pool{std::sqrt(k / price), std::sqrt(k * price)};
}

void liquidity::set_depth_scale(double s) {
  pool& p = *venues_[0].cp;
  const double f = s / scale_;
  p.base *= f;
  p.quote *= f;
  scale_ = s;
}

}  // namespace cascade
