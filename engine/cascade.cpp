#include "engine/cascade.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include <absl/strings/str_cat.h>

namespace cascade {

namespace {

// Relative margin of the candidate filter: estimates within it of the boundary are
// evaluated exactly. Estimates err by < 1e-12 (see book.hpp on drift).
constexpr double filter_margin = 1e-6;

}  // namespace

double cascade_report::bad_debt_usd() const {
  double total = 0.0;
  for (const auto& p : protocols) total += p.bad_debt_usd;
  return total;
}

double cascade_simulator::evaluation::hf() const {
  return den > 0.0 ? num / den : std::numeric_limits<double>::infinity();
}

std::optional<cascade_simulator::legs_view> cascade_simulator::liquidated_legs(row_t r) const {
  if (r >= ovl_stamp_.size() || ovl_stamp_[r] != epoch_) return std::nullopt;
  const overlay_legs& o = overlay_[ovl_slot_[r]];
  return legs_view{{overlay_coll_.data() + o.begin, o.count},
                   {overlay_debt_.data() + o.begin, o.count}};
}

void cascade_simulator::reset(const book& b) {
  book_ = &b;
  const std::size_t rows = b.rows();
  if (++epoch_ == 0) {
    std::fill(est_stamp_.begin(), est_stamp_.end(), 0u);
    std::fill(ovl_stamp_.begin(), ovl_stamp_.end(), 0u);
    epoch_ = 1;
  }
  if (est_stamp_.size() < rows) {
    est_stamp_.resize(rows, 0u);
    est_.resize(rows);
    ovl_stamp_.resize(rows, 0u);
    ovl_slot_.resize(rows, 0u);
    active_stamp_.resize(rows, 0u);
  }
  overlay_.clear();
  overlay_coll_.clear();
  overlay_debt_.clear();
  buckets_.resize(b.get_market().asset_count());
  for (auto& ab : buckets_) {
    ab.filed = false;
    ab.next = 0;
    ab.buckets.resize(cascade_bucket_count);
    for (auto& v : ab.buckets) v.clear();
  }
}

void cascade_simulator::activate(row_t r, std::vector<row_t>& active) {
  if (active_stamp_[r] == round_key_) return;
  active_stamp_[r] = round_key_;
  active.push_back(r);
}

cascade_simulator::evaluation cascade_simulator::evaluate(const book& b, row_t r,
                                                          std::span<const double> p) const {
  const protocol& pr = b.get_market().get_protocol(b.protocol_at(r));
  const auto assets = b.leg_assets(r);
  const double* coll = b.leg_collateral(r).data();
  const double* debt = b.leg_debt(r).data();
  if (ovl_stamp_[r] == epoch_) {
    const overlay_legs& o = overlay_[ovl_slot_[r]];
    coll = overlay_coll_.data() + o.begin;
    debt = overlay_debt_.data() + o.begin;
  }
  evaluation e;
  for (std::size_t k = 0; k < assets.size(); ++k) {
    const double price = p[assets[k].index()];
    if (coll[k] > 0.0) e.num += coll[k] * price * pr.threshold(assets[k]);
    if (debt[k] > 0.0) {
      e.den += debt[k] * price;
      e.has_debt = true;
    }
  }
  return e;
}

void cascade_simulator::file_row(asset_id a, double key, row_t r) {
  asset_buckets& ab = buckets_[a.index()];
  if (!(key < 1.0)) return;  // no price can fall by 100%
  const double scaled = std::max(0.0, key) * cascade_bucket_count;
  auto index = static_cast<std::uint32_t>(std::min<double>(scaled, cascade_bucket_count - 1));
  // A bucket already released would never be looked at again: file into the one
  // being released, where keys are compared one by one.
  index = std::max(index, ab.next);
  ab.buckets[index].push_back({key, r});
}

void cascade_simulator::file_holders(const book& b, asset_id a, std::span<const double> p1) {
  (void)p1;
  asset_buckets& ab = buckets_[a.index()];
  ab.filed = true;
  const auto seg = b.exposure(a);
  const auto cells = b.cells();
  for (std::size_t i = 0; i < seg.size(); ++i) {
    const row_t r = seg[i].row;
    if (i > 0 && seg[i - 1].row == r) continue;
    if (!b.live(r) || ovl_stamp_[r] == epoch_) continue;
    const health_cell c = est_stamp_[r] == epoch_ ? est_[r] : cells[r];
    if (!(c.den > 0.0)) continue;
    // Unmodified, so its values at the reference prices are the estimate: rows that
    // hold a moved asset were estimated in round 1, the others sit at book prices.
    const double key = c.num > 0.0 ? 1.0 - c.den / c.num - filter_margin : -1.0;
    file_row(a, key, r);
  }
  last_estimates_ += seg.size();
}

void cascade_simulator::refile(const book& b, row_t r, const evaluation& e,
                               std::span<const double> p, std::span<const double> p1) {
  // Safe now at prices p: a collateral asset a must fall below (1 - T) * p_a, i.e. its
  // drop from p1 must pass 1 - (1 - T) * p_a / p1_a, before the position can fail.
  const double t = e.num > 0.0 ? 1.0 - e.den / e.num : -1.0;
  const auto assets = b.leg_assets(r);
  const double* coll = b.leg_collateral(r).data();
  if (ovl_stamp_[r] == epoch_) coll = overlay_coll_.data() + overlay_[ovl_slot_[r]].begin;
  for (std::size_t k = 0; k < assets.size(); ++k) {
    if (!(coll[k] > 0.0)) continue;
    const std::size_t a = assets[k].index();
    const double key = 1.0 - (1.0 - t) * (p[a] / p1[a]) - filter_margin;
    file_row(assets[k], key, r);
  }
}

void cascade_simulator::release(asset_id a, double drop, std::vector<row_t>& active) {
  asset_buckets& ab = buckets_[a.index()];
  const auto last = static_cast<std::uint32_t>(
      std::min<double>(drop * cascade_bucket_count, cascade_bucket_count - 1));
  for (std::uint32_t i = ab.next; i < last; ++i) {
    for (const auto& [key, r] : ab.buckets[i]) activate(r, active);
    ab.buckets[i].clear();
  }
  if (last >= ab.next) {
    auto& partial = ab.buckets[last];
    std::size_t kept = 0;
    for (const auto& entry : partial) {
      if (entry.first <= drop) {
        activate(entry.second, active);
      } else {
        partial[kept++] = entry;
      }
    }
    partial.resize(kept);
    ab.next = last;
  }
}

absl::StatusOr<cascade_report> cascade_simulator::run(const book& b,
                                                      std::span<const shock> shocks,
                                                      const cascade_options& options) {
  const market& m = b.get_market();
  const std::size_t n_assets = m.asset_count();
  std::vector<double> start(b.prices().begin(), b.prices().end());
  if (!options.start_prices.empty()) {
    if (options.start_prices.size() != n_assets) {
      return absl::InvalidArgumentError(absl::StrCat("cascade: ", options.start_prices.size(),
                                                     " start prices for ", n_assets, " assets"));
    }
    for (std::size_t a = 0; a < n_assets; ++a) {
      if (!is_positive_finite(options.start_prices[a])) {
        return absl::InvalidArgumentError(absl::StrCat("cascade: start price of ",
                                                       m.assets()[a].symbol, " ",
                                                       options.start_prices[a],
                                                       " must be a finite number > 0"));
      }
    }
    start = options.start_prices;
  }
  std::vector<double> shock_of(n_assets, 0.0);
  std::vector<bool> shocked(n_assets, false);
  for (const shock& s : shocks) {
    if (!s.asset.valid() || s.asset.index() >= n_assets) {
      return absl::InvalidArgumentError("cascade: shock on an unknown asset");
    }
    const std::string& sym = m.asset(s.asset).symbol;
    if (shocked[s.asset.index()]) {
      return absl::InvalidArgumentError(absl::StrCat("cascade: ", sym, " is shocked twice"));
    }
    if (!(s.fraction > -1.0 && s.fraction < std::numeric_limits<double>::infinity())) {
      return absl::InvalidArgumentError(absl::StrCat("cascade: shock on ", sym, " ", s.fraction,
                                                     " must be a finite number > -1"));
    }
    shocked[s.asset.index()] = true;
    shock_of[s.asset.index()] = s.fraction;
  }

  reset(b);
  last_estimates_ = 0;
  cascade_report rep;
  rep.shocks.assign(shocks.begin(), shocks.end());
  rep.input_prices = start;
  // Derived assets price as ratio x base price; the ratio starts where the starting
  // prices put it, and a shock on the derived asset itself moves the ratio (a depeg).
  struct ratio_state {
    asset_id base;
    double ratio = 0.0;
    std::optional<pool> rpool;
    bool sell_through = true;
  };
  std::vector<std::optional<ratio_state>> ratios(n_assets);
  rep.input_ratios.assign(n_assets, std::numeric_limits<double>::quiet_NaN());
  for (std::size_t a = 0; a < n_assets; ++a) {
    const auto base = m.base_of(asset_id::from_index(a));
    if (!base) continue;
    const derivation& d = *m.assets()[a].derived;
    ratio_state rs{*base, start[a] / start[base->index()], d.ratio_pool, d.sell_through};
    rep.input_ratios[a] = rs.ratio;
    if (rs.rpool) {
      const double target = rs.ratio * (1.0 + shock_of[a]);
      const double configured = rs.rpool->quote / rs.rpool->base;
      if (shocked[a] || target != configured) {
        const double k = rs.rpool->base * rs.rpool->quote;
        rs.rpool = pool{std::sqrt(k / target), std::sqrt(k * target)};
      }
    }
    rs.ratio *= 1.0 + shock_of[a];
    ratios[a] = rs;
  }
  std::vector<double> p = start;
  for (const shock& s : shocks) {
    if (!ratios[s.asset.index()]) p[s.asset.index()] = start[s.asset.index()] * (1.0 + s.fraction);
  }
  for (std::size_t a = 0; a < n_assets; ++a) {
    if (!ratios[a]) continue;
    const std::size_t base = ratios[a]->base.index();
    if (shocked[a] || shocked[base]) p[a] = ratios[a]->ratio * p[base];
  }
  rep.shocked_prices = p;
  const std::vector<double> p1 = p;

  // Pools at the starting prices: moved at constant k wherever the price differs from
  // the one the pool was configured at, and for every shocked asset.
  std::vector<std::optional<pool>> pools(n_assets);
  for (std::size_t a = 0; a < n_assets; ++a) {
    const asset_spec& spec = m.assets()[a];
    if (!spec.liquidity) continue;
    pool pl = *spec.liquidity;
    if (shocked[a] || p[a] != spec.price) {
      const double k = pl.base * pl.quote;
      pl.base = std::sqrt(k / p[a]);
      pl.quote = std::sqrt(k * p[a]);
    }
    pools[a] = pl;
  }

  rep.protocols.assign(m.protocol_count(), {});
  std::vector<row_t> active;
  ++round_key_;
  if (round_key_ == 0) {
    std::fill(active_stamp_.begin(), active_stamp_.end(), 0u);
    round_key_ = 1;
  }

  // Round 1 candidates. Holders of every asset whose price differs from the book's:
  // estimate their cells at p1, then take the near or failing ones and file the rest.
  const auto book_prices = b.prices();
  const auto cells = b.cells();
  std::vector<asset_id> moved;
  for (std::size_t a = 0; a < n_assets; ++a) {
    if (p1[a] == book_prices[a]) continue;
    const auto id = asset_id::from_index(a);
    moved.push_back(id);
    const double dp = p1[a] - book_prices[a];
    for (const exposure_entry& e : b.exposure(id)) {
      const row_t r = e.row;
      if (est_stamp_[r] != epoch_) {
        est_stamp_[r] = epoch_;
        est_[r] = cells[r];
      }
      est_[r].num += e.weighted_collateral * dp;
      est_[r].den += e.debt * dp;
    }
    last_estimates_ += b.exposure(id).size();
  }
  for (const asset_id a : moved) {
    buckets_[a.index()].filed = true;
    const auto seg = b.exposure(a);
    for (std::size_t i = 0; i < seg.size(); ++i) {
      const row_t r = seg[i].row;
      if (i > 0 && seg[i - 1].row == r) continue;
      if (!b.live(r)) continue;
      const health_cell& c = est_[r];
      if (!(c.den > 0.0)) continue;
      if (c.num < c.den * (1.0 + filter_margin)) {
        activate(r, active);
      } else {
        file_row(a, 1.0 - c.den / c.num - filter_margin, r);
      }
    }
  }
  // Positions not holding a moved asset keep their book HF; every one under 1 sits in a
  // band whose threshold is above 1 (entry into a worse band is immediate).
  {
    const band_config& bands = b.options().bands;
    const double thresholds[3] = {bands.warn, bands.danger, bands.liquidatable};
    int from_band = 0;
    for (int k = 0; k < 3; ++k) {
      if (thresholds[k] >= 1.0 + filter_margin) from_band = k + 1;
    }
    for (row_t r = 0; r < b.rows(); ++r) {
      if (!b.live(r)) continue;
      if (from_band > 0 ? static_cast<int>(b.band_at(r)) >= from_band
                        : b.health_at(r) < 1.0 + filter_margin) {
        activate(r, active);
      }
    }
  }

  struct liquidation {
    row_t row;
    evaluation e;
  };
  std::vector<liquidation> doomed;
  std::vector<double> sold(n_assets, 0.0);
  std::vector<double> routed(n_assets, 0.0);
  std::vector<bool> ratio_moved(n_assets, false);
  std::vector<bool> price_moved(n_assets, false);
  std::vector<row_t> liquidated_last;

  for (std::uint32_t round = 1; round <= options.max_rounds; ++round) {
    if (round > 1) {
      if (++round_key_ == 0) {
        std::fill(active_stamp_.begin(), active_stamp_.end(), 0u);
        round_key_ = 1;
      }
      active.clear();
      for (const row_t r : liquidated_last) activate(r, active);
      for (std::size_t a = 0; a < n_assets; ++a) {
        if (!(p[a] < p1[a])) continue;
        const auto id = asset_id::from_index(a);
        if (!buckets_[a].filed) file_holders(b, id, p1);
        release(id, 1.0 - p[a] / p1[a], active);
      }
    }

    // a. L: exact evaluation of the candidates at this round's prices.
    doomed.clear();
    for (const row_t r : active) {
      const evaluation e = evaluate(b, r, p);
      ++rep.evaluations;
      if (!e.has_debt) continue;
      if (e.hf() < 1.0) {
        doomed.push_back({r, e});
      } else {
        refile(b, r, e, p, p1);
      }
    }
    if (doomed.empty()) break;
    std::sort(doomed.begin(), doomed.end(),
              [](const liquidation& x, const liquidation& y) { return x.row < y.row; });

    // b. Liquidate every position in L at the same prices p, in book (input) order.
    round_report rr;
    std::fill(sold.begin(), sold.end(), 0.0);
    liquidated_last.clear();
    for (const liquidation& l : doomed) {
      const row_t r = l.row;
      const protocol_id pid = b.protocol_at(r);
      const protocol& pr = m.get_protocol(pid);
      protocol_report& prep = rep.protocols[pid.index()];
      if (ovl_stamp_[r] != epoch_) {
        // First liquidation of this position: copy its amounts into the overlay.
        ovl_stamp_[r] = epoch_;
        ovl_slot_[r] = static_cast<std::uint32_t>(overlay_.size());
        const auto coll = b.leg_collateral(r);
        const auto debt = b.leg_debt(r);
        overlay_.push_back({static_cast<std::uint32_t>(overlay_coll_.size()),
                            static_cast<std::uint32_t>(coll.size())});
        overlay_coll_.insert(overlay_coll_.end(), coll.begin(), coll.end());
        overlay_debt_.insert(overlay_debt_.end(), debt.begin(), debt.end());
        ++rep.positions_liquidated;
        ++prep.liquidated;
        if (prep.first_round == 0) prep.first_round = round;
      }
      const overlay_legs& o = overlay_[ovl_slot_[r]];
      double* coll = overlay_coll_.data() + o.begin;
      double* debt = overlay_debt_.data() + o.begin;
      const auto assets = b.leg_assets(r);

      double c_value = 0.0;
      double bonus_value = 0.0;
      for (std::size_t k = 0; k < assets.size(); ++k) {
        if (!(coll[k] > 0.0)) continue;
        const double v = coll[k] * p[assets[k].index()];
        c_value += v;
        bonus_value += v * pr.bonus(assets[k]);
      }
      const double d_value = l.e.den;
      const double hf = l.e.num / d_value;
      const double cf = hf >= pr.full_liquidation_hf ? pr.close_factor : 1.0;
      double repay = cf * d_value;
      double seize = 0.0;
      if (c_value > 0.0) {
        const double bonus = bonus_value / c_value;
        seize = repay * (1.0 + bonus);
        if (seize > c_value) {
          seize = c_value;
          repay = c_value / (1.0 + bonus);
        }
      } else {
        repay = 0.0;
      }
      const bool wiped = seize == c_value;
      if (c_value > 0.0) {
        const double ratio = seize / c_value;
        for (std::size_t k = 0; k < assets.size(); ++k) {
          if (!(coll[k] > 0.0)) continue;
          const double q = coll[k] * ratio;
          sold[assets[k].index()] += q;
          coll[k] = wiped ? 0.0 : coll[k] - q;
        }
      }
      const double debt_ratio = repay / d_value;
      for (std::size_t k = 0; k < assets.size(); ++k) {
        if (debt[k] > 0.0) debt[k] = debt[k] - debt[k] * debt_ratio;
      }
      if (wiped) {
        double bad = 0.0;
        for (std::size_t k = 0; k < assets.size(); ++k) {
          if (debt[k] > 0.0) bad += debt[k] * p[assets[k].index()];
          debt[k] = 0.0;
        }
        prep.bad_debt_usd += bad;
        if (bad > 0.0) {
          ++prep.insolvent;
          ++rep.positions_insolvent;
        }
      }
      rr.repaid_usd += repay;
      rr.seized_usd += seize;
      prep.repaid_usd += repay;
      prep.seized_usd += seize;
      liquidated_last.push_back(r);
    }
    rr.liquidated = doomed.size();

    // c, d. Sell into the pools; oracle prices follow the market. Derived assets sell
    // into their ratio pools first and pass base units on to their bases.
    if (m.has_derived()) {
      std::fill(routed.begin(), routed.end(), 0.0);
      std::fill(ratio_moved.begin(), ratio_moved.end(), false);
      for (std::size_t a = 0; a < n_assets; ++a) {
        if (!ratios[a] || !(sold[a] > 0.0)) continue;
        ratio_state& rs = *ratios[a];
        if (rs.rpool) {
          pool& rp = *rs.rpool;
          const double q = sold[a];
          const double out = rp.quote * q / (rp.base + q);
          rp.base += q;
          rp.quote -= out;
          rs.ratio = rp.quote / rp.base;
          ratio_moved[a] = true;
          if (rs.sell_through) routed[rs.base.index()] += out;
        } else {
          routed[rs.base.index()] += sold[a] * rs.ratio;
        }
      }
    }
    std::vector<bool>& moved_now = price_moved;
    std::fill(moved_now.begin(), moved_now.end(), false);
    for (std::size_t a = 0; a < n_assets; ++a) {
      if (sold[a] > 0.0) rr.sold.emplace_back(asset_id::from_index(a), sold[a]);
      if (ratios[a]) continue;
      const double q = sold[a] + (m.has_derived() ? routed[a] : 0.0);
      if (m.has_derived() && routed[a] > 0.0) rr.routed.emplace_back(asset_id::from_index(a), routed[a]);
      if (!(q > 0.0) || !pools[a]) continue;
      pool& pl = *pools[a];
      const double out = pl.quote * q / (pl.base + q);
      pl.base += q;
      pl.quote -= out;
      p[a] = pl.quote / pl.base;
      moved_now[a] = true;
    }
    for (std::size_t a = 0; a < n_assets; ++a) {
      if (!ratios[a]) continue;
      const std::size_t base = ratios[a]->base.index();
      if (ratio_moved[a] || moved_now[base]) p[a] = ratios[a]->ratio * p[base];
    }
    rr.prices = p;
    rep.total_repaid_usd += rr.repaid_usd;
    rep.total_seized_usd += rr.seized_usd;
    rep.rounds.push_back(std::move(rr));
  }

  rep.final_prices = p;
  rep.final_pools = std::move(pools);
  rep.final_ratios.assign(n_assets, std::numeric_limits<double>::quiet_NaN());
  for (std::size_t a = 0; a < n_assets; ++a) {
    if (ratios[a]) rep.final_ratios[a] = ratios[a]->ratio;
  }
  for (const shock& s : shocks) {
    const std::size_t a = s.asset.index();
    if (s.fraction == 0.0) {
      rep.amplification.emplace_back(std::nullopt);
    } else {
      rep.amplification.emplace_back((p[a] / start[a] - 1.0) / s.fraction);
    }
  }
  for (auto& prep : rep.protocols) prep.contagion_only = prep.first_round > 1;
  rep.estimates = last_estimates_;
  return rep;
}

}  // namespace cascade
