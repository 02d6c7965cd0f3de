#include "engine/curves.hpp"

#include <absl/strings/str_cat.h>

#include <algorithm>
#include <cmath>

namespace cascade {

absl::StatusOr<asset_curves> standard_curves(const book& b, asset_id a, cascade_simulator& sim,
                                             const critical_shock_options& o) {
  asset_curves out;
  auto liq = liquidation_curve(b, a, grid(0.0, 0.9, 90));
  if (!liq.ok()) return liq.status();
  auto casc = cascade_curve(b, a, grid(0.0, 0.5, 50), sim, o.max_rounds);
  if (!casc.ok()) return casc.status();
  auto crit = find_critical_shock(b, a, sim, o);
  if (!crit.ok()) return crit.status();
  out.liquidation = *std::move(liq);
  out.cascade = *std::move(casc);
  out.critical = *crit;
  return out;
}

std::vector<double> grid(double from, double to, std::uint32_t steps) {
  std::vector<double> out;
  out.reserve(steps + 1);
  for (std::uint32_t i = 0; i <= steps; ++i) {
    out.push_back(from + (to - from) * static_cast<double>(i) / static_cast<double>(steps));
  }
  return out;
}

absl::StatusOr<std::vector<liquidation_point>> liquidation_curve(const book& b, asset_id a,
                                                                 std::span<const double> drops) {
  const market& m = b.get_market();
  if (!a.valid() || a.index() >= m.asset_count()) {
    return absl::InvalidArgumentError("liquidation curve: unknown asset");
  }
  for (const double d : drops) {
    if (!(d >= 0.0 && d < 1.0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("liquidation curve: drop ", d, " is outside [0, 1)"));
    }
  }
  const auto prices = b.prices();
  const double pa = prices[a.index()];
  std::vector<liquidation_point> out(drops.size());
  for (std::size_t i = 0; i < drops.size(); ++i) out[i].drop = drops[i];

  // Value of a row's collateral and debt at the current prices, split into the part in
  // asset a and the rest (amounts in a fall with the drop).
  struct split {
    double coll_rest = 0, coll_a = 0, debt_rest = 0, debt_a = 0;
  };
  const auto value = [&](row_t r) {
    split s;
    const auto assets = b.leg_assets(r);
    const auto coll = b.leg_collateral(r);
    const auto debt = b.leg_debt(r);
    for (std::size_t k = 0; k < assets.size(); ++k) {
      const double p = prices[assets[k].index()];
      if (assets[k] == a) {
        s.coll_a += coll[k] * p;
        s.debt_a += debt[k] * p;
      } else {
        s.coll_rest += coll[k] * p;
        s.debt_rest += debt[k] * p;
      }
    }
    return s;
  };
  const auto add = [&](std::size_t i, const split& s) {
    const double keep = 1.0 - out[i].drop;
    ++out[i].positions;
    out[i].collateral_usd += s.coll_rest + s.coll_a * keep;
    out[i].debt_usd += s.debt_rest + s.debt_a * keep;
  };

  // Holders of a: HF(x) = (num - wc p x) / (den - d p x); liquidatable where
  // num - den < (wc - d) p x, with debt left.
  const auto seg = b.exposure(a);
  const auto cells = b.cells();
  for (std::size_t e = 0; e < seg.size(); ++e) {
    const row_t r = seg[e].row;
    double wc = seg[e].weighted_collateral;
    double d = seg[e].debt;
    while (e + 1 < seg.size() && seg[e + 1].row == r) {
      ++e;
      wc += seg[e].weighted_collateral;
      d += seg[e].debt;
    }
    if (!b.live(r)) continue;
    const health_cell c = cells[r];
    std::optional<split> s;
    for (std::size_t i = 0; i < drops.size(); ++i) {
      const double x = drops[i];
      const double num = c.num - wc * pa * x;
      const double den = c.den - d * pa * x;
      if (!(den > 0.0) || !(num < den)) continue;
      if (!s) s = value(r);
      add(i, *s);
    }
  }
  // Everyone else is liquidatable at every drop or at none.
  for (row_t r = 0; r < b.rows(); ++r) {
    if (!b.live(r)) continue;
    const health_cell c = cells[r];
    if (!(c.den > 0.0 && c.num < c.den)) continue;
    const split s = value(r);
    if (s.coll_a > 0.0 || s.debt_a > 0.0) continue;  // a holder: counted above
    for (std::size_t i = 0; i < drops.size(); ++i) add(i, s);
  }
  return out;
}

absl::StatusOr<std::vector<cascade_point>> cascade_curve(const book& b, asset_id a,
                                                         std::span<const double> shocks,
                                                         cascade_simulator& sim,
                                                         std::uint32_t max_rounds) {
  std::vector<cascade_point> out;
  out.reserve(shocks.size());
  cascade_options o;
  o.max_rounds = max_rounds;
  for (const double s : shocks) {
    if (!(s >= 0.0 && s < 1.0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("cascade curve: shock ", s, " is outside [0, 1)"));
    }
    const shock sh{a, -s};
    auto rep = sim.run(b, std::span<const shock>(&sh, 1), o);
    if (!rep.ok()) return rep.status();
    cascade_point pt;
    pt.shock = s;
    pt.final_drop = 1.0 - rep->final_prices[a.index()] / rep->input_prices[a.index()];
    pt.rounds = static_cast<std::uint32_t>(rep->rounds.size());
    pt.positions_liquidated = rep->positions_liquidated;
    pt.positions_insolvent = rep->positions_insolvent;
    pt.repaid_usd = rep->total_repaid_usd;
    pt.seized_usd = rep->total_seized_usd;
    pt.bad_debt_usd = rep->bad_debt_usd();
    out.push_back(pt);
  }
  return out;
}

absl::StatusOr<critical_shock> find_critical_shock(const book& b, asset_id a,
                                                   cascade_simulator& sim,
                                                   const critical_shock_options& o) {
  if (!(o.amplification > 1.0 && o.amplification < 1e6)) {
    return absl::InvalidArgumentError(
        absl::StrCat("critical shock: amplification ", o.amplification, " must be > 1"));
  }
  if (!(o.bad_debt_fraction >= 0.0 && o.bad_debt_fraction < 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat("critical shock: bad_debt_fraction ",
                                                   o.bad_debt_fraction, " must be in [0, 1)"));
  }
  if (!(o.max_shock > 0.0 && o.max_shock < 1.0) || !(o.tolerance > 0.0 && o.tolerance < 0.1)) {
    return absl::InvalidArgumentError(
        "critical shock: max_shock must be in (0, 1) and tolerance in (0, 0.1)");
  }
  critical_shock result;
  struct verdict {
    bool amplifies = false;
    bool bad_debt = false;
    [[nodiscard]] bool hit() const { return amplifies || bad_debt; }
  };
  const auto run_at = [&](double s) -> absl::StatusOr<cascade_point> {
    auto pts = cascade_curve(b, a, std::span<const double>(&s, 1), sim, o.max_rounds);
    if (!pts.ok()) return pts.status();
    ++result.cascades_run;
    return pts->front();
  };
  auto baseline = run_at(0.0);
  if (!baseline.ok()) return baseline.status();
  result.baseline_drop = baseline->final_drop;
  result.baseline_bad_debt_usd = baseline->bad_debt_usd;
  double book_debt = 0.0;
  for (row_t r = 0; r < b.rows(); ++r) {
    if (b.live(r)) book_debt += b.cells()[r].den;
  }
  result.material_bad_debt_usd = o.bad_debt_fraction * book_debt;
  const auto judge = [&](double s) -> absl::StatusOr<verdict> {
    auto p = run_at(s);
    if (!p.ok()) return p.status();
    return verdict{p->final_drop - result.baseline_drop >= o.amplification * s,
                   p->bad_debt_usd - result.baseline_bad_debt_usd > result.material_bad_debt_usd};
  };
  // Scan a coarse grid for the first shock that cascades, then bisect its bracket.
  constexpr std::uint32_t coarse = 45;
  double lo = 0.0;
  std::optional<double> hi;
  verdict at_hi;
  for (std::uint32_t i = 1; i <= coarse; ++i) {
    const double s = o.max_shock * i / coarse;
    auto v = judge(s);
    if (!v.ok()) return v.status();
    if (v->hit()) {
      hi = s;
      at_hi = *v;
      break;
    }
    lo = s;
  }
  if (!hi) return result;
  while (*hi - lo > o.tolerance) {
    const double mid = 0.5 * (lo + *hi);
    auto v = judge(mid);
    if (!v.ok()) return v.status();
    if (v->hit()) {
      hi = mid;
      at_hi = *v;
    } else {
      lo = mid;
    }
  }
  result.shock = hi;
  result.amplifies = at_hi.amplifies;
  result.bad_debt = at_hi.bad_debt;
  return result;
}

absl::StatusOr<std::vector<shock>> one_factor_shocks(std::span<const double> betas,
                                                     double market_shock) {
  if (!std::isfinite(market_shock)) {
    return absl::InvalidArgumentError("one-factor shock: market shock must be finite");
  }
  std::vector<shock> out;
  for (std::size_t a = 0; a < betas.size(); ++a) {
    if (betas[a] == 0.0) continue;
    const double s = betas[a] * market_shock;
    if (!(s > -1.0) || !std::isfinite(s)) {
      return absl::InvalidArgumentError(absl::StrCat("one-factor shock: beta ", betas[a],
                                                     " x market shock ", market_shock, " gives ", s,
                                                     ", not > -1"));
    }
    out.push_back({asset_id::from_index(a), s});
  }
  return out;
}

}  // namespace cascade
