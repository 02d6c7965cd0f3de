#include "engine/liquidity.hpp"

#include <absl/container/flat_hash_set.h>
#include <absl/strings/str_cat.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace cascade {

namespace {

constexpr double inf = std::numeric_limits<double>::infinity();

// Slope (drop per reference USD) of the curve's last segment, which continues past
// its last point.
double last_slope(const std::vector<depth_point>& c) {
  const depth_point& last = c.back();
  const depth_point prev = c.size() > 1 ? c[c.size() - 2] : depth_point{0.0, 0.0};
  return (last.drop - prev.drop) / (last.usd - prev.usd);
}

// x(w): the drop after w reference USD, in [0, 1].
double drop_at(const std::vector<depth_point>& c, double w) {
  depth_point prev{0.0, 0.0};
  for (const depth_point& pt : c) {
    if (w <= pt.usd) {
      return prev.drop + (w - prev.usd) * ((pt.drop - prev.drop) / (pt.usd - prev.usd));
    }
    prev = pt;
  }
  return std::min(1.0, prev.drop + (w - prev.usd) * last_slope(c));
}

// The inverse: reference USD that move the price down by x in [0, 1].
double usd_at(const std::vector<depth_point>& c, double x) {
  depth_point prev{0.0, 0.0};
  for (const depth_point& pt : c) {
    if (x <= pt.drop) {
      return prev.usd + (x - prev.drop) * ((pt.usd - prev.usd) / (pt.drop - prev.drop));
    }
    prev = pt;
  }
  return prev.usd + (x - prev.drop) / last_slope(c);
}

// Integral of (1 - x(w)) dw over [w0, w1], exact per linear piece: the knots are the
// points and the end of the curve (x = 1), after which the integrand is 0.
double area(const std::vector<depth_point>& c, double w0, double w1) {
  if (!(w1 > w0)) return 0.0;
  const double w_end = usd_at(c, 1.0);
  double total = 0.0;
  double a = 0.0;
  const auto piece = [&](double b) {
    const double lo = std::max(a, w0);
    const double hi = std::min(b, w1);
    if (hi > lo) total += (hi - lo) * (1.0 - 0.5 * (drop_at(c, lo) + drop_at(c, hi)));
    a = b;
  };
  for (const depth_point& pt : c) piece(pt.usd);
  piece(w_end);
  return total;
}

}  // namespace

double withdrawal_spec::target(double drawdown, double annualized_vol) const {
  if (!active()) return 1.0;
  const double t = 1.0 - drawdown_sensitivity * drawdown - volatility_sensitivity * annualized_vol;
  return std::max(floor, std::min(1.0, t));
}

absl::Status liquidity_spec::validate(double price) const {
  if (venues.empty()) return absl::InvalidArgumentError("venues: at least one venue is needed");
  absl::flat_hash_set<std::string> names;
  for (std::size_t i = 0; i < venues.size(); ++i) {
    const venue_spec& v = venues[i];
    const auto fail = [&](auto&&... parts) {
      return absl::InvalidArgumentError(
          absl::StrCat("venues[", i, "] '", v.name, "': ", parts...));
    };
    if (v.name.empty()) return absl::InvalidArgumentError(absl::StrCat("venues[", i, "]: name is empty"));
    if (!names.insert(v.name).second) return fail("duplicate venue name");
    if (v.cp.has_value() == !v.depth.empty()) {
      return fail("a venue is either a pool or a depth curve: give exactly one");
    }
    if (v.cp) {
      const pool& p = *v.cp;
      if (!is_positive_finite(p.base) || !is_positive_finite(p.quote)) {
        return fail("pool base ", p.base, " and quote ", p.quote, " must be finite numbers > 0");
      }
      const double pool_price = p.quote / p.base;
      if (std::abs(pool_price / price - 1.0) > pool_price_tolerance) {
        return fail("pool price quote/base = ", pool_price, " differs from the asset's price ",
                    price, " by more than 1e-9 relative");
      }
      continue;
    }
    depth_point prev{0.0, 0.0};
    for (std::size_t k = 0; k < v.depth.size(); ++k) {
      const depth_point& pt = v.depth[k];
      if (!(pt.drop > prev.drop && pt.drop < 1.0)) {
        return fail("depth[", k, "].drop ", pt.drop,
                    " must be in (0, 1) and above the previous point's drop ", prev.drop);
      }
      if (!(pt.usd > prev.usd) || !is_positive_finite(pt.usd)) {
        return fail("depth[", k, "].usd ", pt.usd,
                    " must be finite and above the previous point's usd ", prev.usd);
      }
      prev = pt;
    }
  }
  const withdrawal_spec& w = withdrawal;
  if (!is_nonnegative_finite(w.drawdown_sensitivity)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "withdrawal: drawdown_sensitivity ", w.drawdown_sensitivity, " must be finite and >= 0"));
  }
  if (!is_nonnegative_finite(w.volatility_sensitivity)) {
    return absl::InvalidArgumentError(absl::StrCat("withdrawal: volatility_sensitivity ",
                                                   w.volatility_sensitivity,
                                                   " must be finite and >= 0"));
  }
  if (!(w.floor > 0.0 && w.floor <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("withdrawal: floor ", w.floor, " is outside (0, 1]"));
  }
  if (!is_positive_finite(w.half_life_s)) {
    return absl::InvalidArgumentError(absl::StrCat("withdrawal: half_life_s ", w.half_life_s,
                                                   " must be a finite number > 0"));
  }
  return absl::OkStatus();
}

liquidity liquidity::from_pool(const pool& p) {
  liquidity l;
  l.venues_.push_back(venue{p, {}, 0.0, 0.0, 0.0});
  return l;
}

liquidity liquidity::from_spec(const liquidity_spec& s, double ref_price) {
  liquidity l;
  for (const venue_spec& v : s.venues) {
    if (v.cp) {
      l.venues_.push_back(venue{v.cp, {}, 0.0, 0.0, 0.0});
    } else {
      l.venues_.push_back(venue{std::nullopt, v.depth, ref_price, ref_price, 0.0});
    }
  }
  l.withdrawal_ = s.withdrawal;
  return l;
}

std::optional<liquidity> liquidity::of_asset(const asset_spec& a, double price) {
  if (a.venues) {
    liquidity l = from_spec(*a.venues, a.price);
    l.move_to(price);
    return l;
  }
  if (!a.liquidity) return std::nullopt;
  liquidity l = from_pool(*a.liquidity);
  l.move_to(price);
  return l;
}

double liquidity::marginal(const venue& v) const {
  if (v.cp) return v.cp->quote / v.cp->base;
  return v.mid * (1.0 - drop_at(v.curve, v.w));
}

double liquidity::units_to(const venue& v, double p) const {
  if (!(marginal(v) > p)) return 0.0;
  if (v.cp) {
    if (!(p > 0.0)) return inf;
    const double k = v.cp->base * v.cp->quote;
    return std::max(0.0, std::sqrt(k / p) - v.cp->base);
  }
  const double w = usd_at(v.curve, 1.0 - p / v.mid);
  return std::max(0.0, (w - v.w) * scale_ / v.ref_price);
}

double liquidity::revenue(const venue& v, double u0, double u1) const {
  if (!(u1 > u0)) return 0.0;
  if (v.cp) {
    const pool& p = *v.cp;
    const double before = u0 > 0.0 ? p.quote * u0 / (p.base + u0) : 0.0;
    return std::max(0.0, p.quote * u1 / (p.base + u1) - before);
  }
  const double per_unit = v.ref_price / scale_;
  return v.mid * (scale_ / v.ref_price) * area(v.curve, v.w + u0 * per_unit, v.w + u1 * per_unit);
}

double liquidity::sell_into(venue& v, double u) {
  if (!(u > 0.0)) return 0.0;
  if (v.cp) {
    pool& p = *v.cp;
    const double out = p.quote * u / (p.base + u);
    p.base += u;
    p.quote -= out;
    return out;
  }
  const double out = revenue(v, 0.0, u);
  v.w += u * v.ref_price / scale_;
  return out;
}

double liquidity::venue_price(std::size_t i) const { return marginal(venues_[i]); }

std::vector<double> liquidity::route(double q) const {
  const std::size_t n = venues_.size();
  std::vector<double> units(n, 0.0);
  if (!(q > 0.0)) return units;
  if (n == 1) {
    units[0] = q;
    return units;
  }
  std::size_t best = 0;
  double hi = 0.0;
  bool any_pool = false;
  for (std::size_t i = 0; i < n; ++i) {
    const double m = marginal(venues_[i]);
    if (m > hi) {
      hi = m;
      best = i;
    }
    any_pool = any_pool || venues_[i].cp.has_value();
  }
  const auto total = [&](double p) {
    double sum = 0.0;
    for (const venue& v : venues_) sum += units_to(v, p);
    return sum;
  };
  double at = hi;
  if (!any_pool && total(0.0) <= q) {
    at = 0.0;
  } else {
    // total(lo) >= q >= total(hi); total falls as the price rises.
    double lo = 0.0;
    for (;;) {
      const double mid = lo + 0.5 * (hi - lo);
      if (!(mid > lo && mid < hi)) break;
      if (total(mid) >= q) {
        lo = mid;
      } else {
        hi = mid;
      }
    }
    at = hi;
  }
  double sum = 0.0;
  std::size_t first = n;
  for (std::size_t i = 0; i < n; ++i) {
    units[i] = units_to(venues_[i], at);
    sum += units[i];
    if (first == n && units[i] > 0.0) first = i;
  }
  if (first == n) first = best;
  units[first] = std::max(0.0, units[first] + (q - sum));
  return units;
}

double liquidity::price() const {
  if (venues_.size() == 1) return marginal(venues_[0]);
  double best = 0.0;
  for (const venue& v : venues_) best = std::max(best, marginal(v));
  return best;
}

double liquidity::proceeds(double ahead, double q) const {
  if (venues_.size() == 1) {
    const venue& v = venues_[0];
    if (v.cp) {
      // Model v1's arithmetic.
      const pool& p = *v.cp;
      const double before = ahead > 0.0 ? p.quote * ahead / (p.base + ahead) : 0.0;
      const double after = p.quote * (ahead + q) / (p.base + ahead + q);
      return std::max(0.0, after - before);
    }
    return revenue(v, ahead, ahead + q);
  }
  const std::vector<double> from = route(ahead);
  const std::vector<double> to = route(ahead + q);
  double out = 0.0;
  for (std::size_t i = 0; i < venues_.size(); ++i) out += revenue(venues_[i], from[i], to[i]);
  return std::max(0.0, out);
}

double liquidity::sell(double q) {
  if (venues_.size() == 1) {
    venue& v = venues_[0];
    if (v.cp) {
      // Model v1's arithmetic, step c.
      pool& p = *v.cp;
      const double out = p.quote * q / (p.base + q);
      p.base += q;
      p.quote -= out;
      return out;
    }
    return sell_into(v, q);
  }
  const std::vector<double> units = route(q);
  double out = 0.0;
  for (std::size_t i = 0; i < venues_.size(); ++i) out += sell_into(venues_[i], units[i]);
  return out;
}

void liquidity::move_to(double price) {
  for (venue& v : venues_) {
    if (v.cp) {
      pool& p = *v.cp;
      if (p.quote / p.base == price) continue;
      const double k = p.base * p.quote;
      double base = std::sqrt(k / price), quote = std::sqrt(k * price);
      if (!(std::isfinite(base) && std::isfinite(quote))) {
        // k x price (or k / price) overflowed, e.g. a tick to 1e308: the square roots
        // apart keep k, so the pool comes back whole when the price does.
        const double s = std::sqrt(k), r = std::sqrt(price);
        base = s / r;
        quote = s * r;
      }
      p = pool{base, quote};
    } else {
      v.mid = price;
      v.w = 0.0;
    }
  }
}

void liquidity::set_depth_scale(double s) {
  const double f = s / scale_;
  for (venue& v : venues_) {
    if (!v.cp) continue;  // a curve's position w is in reference USD: its price stays
    v.cp->base *= f;
    v.cp->quote *= f;
  }
  scale_ = s;
}

void liquidity::observe(double price, double t, double annualized_vol) {
  double decay = 0.0;
  if (!observed_) {
    observed_ = true;
    high_ = price;
    last_t_ = t;
  } else {
    const double dt = std::max(0.0, t - last_t_);
    decay = std::exp2(-dt / withdrawal_.half_life_s);
    high_ = std::max(price, price + (high_ - price) * decay);
    last_t_ = std::max(last_t_, t);
  }
  const double drawdown = std::max(0.0, 1.0 - price / high_);
  const double target = withdrawal_.target(drawdown, annualized_vol);
  const double next = target <= scale_ ? target : target - (target - scale_) * decay;
  if (next != scale_) set_depth_scale(next);
}

void liquidity::withdraw_for_drawdown(double drawdown) {
  const double target = withdrawal_.target(std::max(0.0, drawdown), 0.0);
  if (target < scale_) set_depth_scale(target);
}

}  // namespace cascade
