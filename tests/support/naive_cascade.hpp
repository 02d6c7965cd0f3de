// Cascade model v1 written the plain way, for property tests: every position evaluated
// every round, no candidate filter, no overlay. Supports derived assets.
#pragma once

#include <algorithm>
#include <cmath>
#include <optional>
#include <tuple>
#include <vector>

#include "engine/book.hpp"
#include "engine/cascade.hpp"

namespace cascade::testing {

struct naive_result {
  std::vector<std::uint64_t> liquidated_per_round;
  std::vector<double> repaid_per_round;
  std::vector<std::vector<double>> prices_per_round;
  std::vector<double> bad_debt;
};

// The model, written the plain way: every position evaluated every round.
inline naive_result naive_cascade(const book& b, const std::vector<shock>& shocks,
                                  std::uint32_t max_rounds) {
  const market& m = b.get_market();
  const std::size_t n = m.asset_count();
  std::vector<double> p(b.prices().begin(), b.prices().end());
  const std::vector<double> start = p;
  std::vector<std::optional<pool>> pools(n);
  // Derived assets: ratio = price / base price, moved by their own shock; the others
  // take their shock directly.
  std::vector<double> ratio(n, 0.0), shock_of(n, 0.0);
  std::vector<bool> is_shocked(n, false);
  std::vector<std::optional<pool>> rpools(n);
  for (const shock& s : shocks) {
    shock_of[s.asset.index()] = s.fraction;
    is_shocked[s.asset.index()] = true;
  }
  for (std::size_t a = 0; a < n; ++a) {
    const auto base = m.base_of(asset_id::from_index(a));
    if (!base) {
      p[a] = start[a] * (1.0 + shock_of[a]);
      continue;
    }
    ratio[a] = start[a] / start[base->index()];
    rpools[a] = m.assets()[a].derived->ratio_pool;
    const double target = ratio[a] * (1.0 + shock_of[a]);
    if (rpools[a] && (is_shocked[a] || target != rpools[a]->quote / rpools[a]->base)) {
      const double k = rpools[a]->base * rpools[a]->quote;
      rpools[a] = pool{std::sqrt(k / target), std::sqrt(k * target)};
    }
    ratio[a] = target;
  }
  for (std::size_t a = 0; a < n; ++a) {
    const auto base = m.base_of(asset_id::from_index(a));
    if (base && (is_shocked[a] || is_shocked[base->index()])) p[a] = ratio[a] * p[base->index()];
    if (!base && !is_shocked[a]) p[a] = start[a];
  }
  for (std::size_t a = 0; a < n; ++a) {
    if (!m.assets()[a].liquidity) continue;
    pool pl = *m.assets()[a].liquidity;
    const bool shocked = std::any_of(shocks.begin(), shocks.end(),
                                     [&](const shock& s) { return s.asset.index() == a; });
    if (shocked || p[a] != m.assets()[a].price) {
      const double k = pl.base * pl.quote;
      pl = {std::sqrt(k / p[a]), std::sqrt(k * p[a])};
    }
    pools[a] = pl;
  }
  std::vector<std::vector<double>> coll, debt;
  std::vector<row_t> rows;
  for (row_t r = 0; r < b.rows(); ++r) {
    if (!b.live(r)) continue;
    rows.push_back(r);
    coll.emplace_back(b.leg_collateral(r).begin(), b.leg_collateral(r).end());
    debt.emplace_back(b.leg_debt(r).begin(), b.leg_debt(r).end());
  }
  naive_result out;
  out.bad_debt.assign(m.protocol_count(), 0.0);
  for (std::uint32_t round = 0; round < max_rounds; ++round) {
    std::vector<double> sold(n, 0.0);
    std::uint64_t count = 0;
    double repaid = 0;
    std::vector<std::tuple<std::size_t, double, double>> doomed;
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const protocol& pr = m.get_protocol(b.protocol_at(rows[i]));
      const auto assets = b.leg_assets(rows[i]);
      double num = 0, den = 0;
      bool has_debt = false;
      for (std::size_t k = 0; k < assets.size(); ++k) {
        if (coll[i][k] > 0) num += coll[i][k] * p[assets[k].index()] * pr.threshold(assets[k]);
        if (debt[i][k] > 0) {
          den += debt[i][k] * p[assets[k].index()];
          has_debt = true;
        }
      }
      if (has_debt && num / den < 1.0) doomed.emplace_back(i, num, den);
    }
    if (doomed.empty()) break;
    for (const auto& [i, num, den] : doomed) {
      const protocol& pr = m.get_protocol(b.protocol_at(rows[i]));
      const auto assets = b.leg_assets(rows[i]);
      double c = 0, bv = 0;
      for (std::size_t k = 0; k < assets.size(); ++k) {
        if (coll[i][k] > 0) {
          c += coll[i][k] * p[assets[k].index()];
          bv += coll[i][k] * p[assets[k].index()] * pr.bonus(assets[k]);
        }
      }
      const double cf = num / den >= pr.full_liquidation_hf ? pr.close_factor : 1.0;
      double R = cf * den, S = 0;
      if (c > 0) {
        S = R * (1 + bv / c);
        if (S > c) {
          S = c;
          R = c / (1 + bv / c);
        }
      } else {
        R = 0;
      }
      for (std::size_t k = 0; k < assets.size(); ++k) {
        if (coll[i][k] > 0) {
          sold[assets[k].index()] += coll[i][k] * (S / c);
          coll[i][k] = S == c ? 0.0 : coll[i][k] - coll[i][k] * (S / c);
        }
        if (debt[i][k] > 0) debt[i][k] -= debt[i][k] * (R / den);
      }
      if (S == c) {
        for (std::size_t k = 0; k < assets.size(); ++k) {
          if (debt[i][k] > 0)
            out.bad_debt[b.protocol_at(rows[i]).index()] += debt[i][k] * p[assets[k].index()];
          debt[i][k] = 0;
        }
      }
      repaid += R;
      ++count;
    }
    std::vector<double> routed(n, 0.0);
    std::vector<bool> moved(n, false);
    for (std::size_t a = 0; a < n; ++a) {
      const auto base = m.base_of(asset_id::from_index(a));
      if (!base || !(sold[a] > 0)) continue;
      if (rpools[a]) {
        pool& rp = *rpools[a];
        const double out_b = rp.quote * sold[a] / (rp.base + sold[a]);
        rp.base += sold[a];
        rp.quote -= out_b;
        ratio[a] = rp.quote / rp.base;
        moved[a] = true;
        if (m.assets()[a].derived->sell_through) routed[base->index()] += out_b;
      } else {
        routed[base->index()] += sold[a] * ratio[a];
      }
    }
    for (std::size_t a = 0; a < n; ++a) {
      if (m.base_of(asset_id::from_index(a))) continue;
      const double q = sold[a] + routed[a];
      if (q > 0 && pools[a]) {
        pool& pl = *pools[a];
        const double out_q = pl.quote * q / (pl.base + q);
        pl.base += q;
        pl.quote -= out_q;
        p[a] = pl.quote / pl.base;
        moved[a] = true;
      }
    }
    for (std::size_t a = 0; a < n; ++a) {
      const auto base = m.base_of(asset_id::from_index(a));
      if (base && (moved[a] || moved[base->index()])) p[a] = ratio[a] * p[base->index()];
    }
    out.liquidated_per_round.push_back(count);
    out.repaid_per_round.push_back(repaid);
    out.prices_per_round.push_back(p);
  }
  return out;
}

}  // namespace cascade::testing
