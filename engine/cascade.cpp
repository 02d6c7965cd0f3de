#include "engine/cascade.hpp"

#include <absl/strings/str_cat.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

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
  if (r >= rows_.size() || !in_overlay(r)) return std::nullopt;
  const overlay_legs& o = overlay_[rows_[r].overlay_slot];
  return legs_view{{overlay_coll_.data() + o.begin, o.count},
                   {overlay_debt_.data() + o.begin, o.count}};
}

void cascade_simulator::reset(const book& b) {
  book_ = &b;
  const std::size_t rows = b.rows();
  if (++epoch_ == 0) {
    for (row_state& rs : rows_) rs.est_epoch = rs.overlay_epoch = 0;
    epoch_ = 1;
  }
  if (rows_.size() < rows) rows_.resize(rows);
  overlay_.clear();
  overlay_coll_.clear();
  overlay_debt_.clear();
  buckets_.resize(b.get_market().asset_count());
  for (auto& ab : buckets_) {
    ab.filed = false;
    ab.next = 0;
    ab.entries.clear();
    ab.late.clear();
  }
}

void cascade_simulator::activate(row_t r, std::vector<row_t>& active) {
  if (rows_[r].active == round_key_) return;
  rows_[r].active = round_key_;
  active.push_back(r);
}

cascade_simulator::evaluation cascade_simulator::evaluate(const book& b, row_t r,
                                                          std::span<const double> p) const {
  const protocol& pr = b.get_market().get_protocol(b.protocol_at(r));
  const auto assets = b.leg_assets(r);
  const double* coll = b.leg_collateral(r).data();
  const double* debt = b.leg_debt(r).data();
  if (in_overlay(r)) {
    const overlay_legs& o = overlay_[rows_[r].overlay_slot];
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

namespace {

std::uint32_t bucket_of(double key) {
  const double scaled = std::max(0.0, key) * cascade_bucket_count;
  return static_cast<std::uint32_t>(std::min<double>(scaled, cascade_bucket_count - 1));
}

bool later_key(const auto& x, const auto& y) { return x.key > y.key; }

// Sorts row numbers ascending: two counting passes over 16-bit digits (a tenth of the
// time std::sort takes on a round's candidates).
void radix_sort_rows(std::vector<row_t>& rows, std::vector<row_t>& buffer) {
  buffer.resize(rows.size());
  std::uint32_t counts[1 << 16];
  for (int shift = 0; shift < 32; shift += 16) {
    std::fill(std::begin(counts), std::end(counts), 0u);
    for (const row_t r : rows) ++counts[(r >> shift) & 0xFFFF];
    std::uint32_t sum = 0;
    for (auto& c : counts) {
      const std::uint32_t n = c;
      c = sum;
      sum += n;
    }
    for (const row_t r : rows) buffer[counts[(r >> shift) & 0xFFFF]++] = r;
    rows.swap(buffer);
  }
}

}  // namespace

void cascade_simulator::file_bulk(asset_id a, double below) {
  asset_buckets& ab = buckets_[a.index()];
  ab.filed = true;
  ab.filed_below = below;
  ab.next = 0;
  auto& start = ab.start;
  start.assign(cascade_bucket_count + 1, 0u);
  for (const filed_row& f : scratch_) ++start[bucket_of(f.key) + 1];
  for (std::uint32_t i = 0; i < cascade_bucket_count; ++i) start[i + 1] += start[i];
  ab.entries.resize(scratch_.size());
  // Place each row at its bucket's next free slot, using the bucket starts as cursors
  // and restoring them afterwards.
  for (const filed_row& f : scratch_) ab.entries[start[bucket_of(f.key)]++] = f;
  for (std::uint32_t i = cascade_bucket_count; i > 0; --i) start[i] = start[i - 1];
  start[0] = 0;
  scratch_.clear();
}

void cascade_simulator::file_late(asset_id a, double key, row_t r) {
  if (!(key < 1.0)) return;  // no price can fall by 100%
  auto& late = buckets_[a.index()].late;
  late.push_back({key, r});
  std::push_heap(late.begin(), late.end(), later_key<filed_row, filed_row>);
}

void cascade_simulator::file_holders(const book& b, asset_id a, double below) {
  const auto seg = b.exposure(a);
  const health_cell* cells = b.cells().data();
  scratch_.clear();
  // A holder is filed when its key 1 - den/num - margin is below `below`, i.e. when
  // den > num * (1 - margin - below): decided without a division.
  const double filed_if_over = 1.0 - filter_margin - below;
  constexpr std::size_t ahead = 32;
  row_t last = std::numeric_limits<row_t>::max();
  for (std::size_t i = 0; i < seg.size(); ++i) {
    if (i + ahead < seg.size()) {
      const row_t next = seg[i + ahead].row;
      __builtin_prefetch(&rows_[next]);
      __builtin_prefetch(&cells[next]);
    }
    // Only a fall in a position's collateral can make it fail: debt-only holders of
    // this asset gain from its fall and need no filing under it.
    if (!(seg[i].weighted_collateral > 0.0)) continue;
    const row_t r = seg[i].row;
    if (r == last) continue;
    last = r;
    // Rows seen this run were evaluated exactly and re-filed (or liquidated).
    const row_state& rs = rows_[r];
    if (rs.active >= run_first_key_ || !b.live(r)) continue;
    // Unmodified, so its values at the reference prices are the estimate: rows that
    // hold a moved asset were estimated in round 1, the others sit at book prices.
    const health_cell c = rs.est_epoch == epoch_ ? rs.est : cells[r];
    if (!(c.den > 0.0) || !(c.den > c.num * filed_if_over)) continue;
    const double key = c.num > 0.0 ? 1.0 - c.den / c.num - filter_margin : -1.0;
    scratch_.push_back({key, r});
  }
  last_estimates_ += seg.size();
  file_bulk(a, below);
}

void cascade_simulator::refile(const book& b, row_t r, const evaluation& e,
                               std::span<const double> p, std::span<const double> p1) {
  // Safe now at prices p: a collateral asset a must fall below (1 - T) * p_a, i.e. its
  // drop from p1 must pass 1 - (1 - T) * p_a / p1_a, before the position can fail.
  const double t = e.num > 0.0 ? 1.0 - e.den / e.num : -1.0;
  const auto assets = b.leg_assets(r);
  const double* coll = b.leg_collateral(r).data();
  if (in_overlay(r)) coll = overlay_coll_.data() + overlay_[rows_[r].overlay_slot].begin;
  for (std::size_t k = 0; k < assets.size(); ++k) {
    if (!(coll[k] > 0.0)) continue;
    const std::size_t a = assets[k].index();
    const double key = 1.0 - (1.0 - t) * (p[a] / p1[a]) - filter_margin;
    file_late(assets[k], key, r);
  }
}

void cascade_simulator::release(const book& b, asset_id a, double drop,
                                std::vector<row_t>& active) {
  asset_buckets& ab = buckets_[a.index()];
  auto& late = ab.late;
  while (!late.empty() && late.front().key <= drop) {
    activate(late.front().row, active);
    std::pop_heap(late.begin(), late.end(), later_key<filed_row, filed_row>);
    late.pop_back();
  }
  if (drop < unseen_floor_) return;  // every filed key and every unseen row is above
  if (!ab.filed || (drop >= ab.filed_below && ab.filed_below < 1.0)) {
    double below = 1.0;
    for (const double tier : cascade_filing_tiers) {
      if (tier > drop) {
        below = tier;
        break;
      }
    }
    file_holders(b, a, below);
  }
  if (!ab.filed || ab.entries.empty()) return;
  const std::uint32_t last = bucket_of(drop);
  for (std::uint32_t i = ab.next; i < last; ++i) {
    for (std::uint32_t k = ab.start[i]; k < ab.start[i + 1]; ++k) {
      if (ab.entries[k].key <= 1.0) activate(ab.entries[k].row, active);
    }
  }
  // The bucket holding `drop` is released one key at a time; a released key is marked
  // so the next round does not hand the same row out again.
  constexpr double released = 2.0;
  for (std::uint32_t k = ab.start[last]; k < ab.start[last + 1]; ++k) {
    filed_row& f = ab.entries[k];
    if (f.key <= drop) {
      activate(f.row, active);
      f.key = released;
    }
  }
  ab.next = std::max(ab.next, last);
}

void cascade_simulator::liquidate(const book& b, row_t r, const evaluation& e,
                                  std::span<const double> p, std::uint32_t round, round_report& rr,
                                  cascade_report& rep, double fraction) {
  const market& m = b.get_market();
  std::vector<double>& sold = sold_;
  const protocol_id pid = b.protocol_at(r);
  const protocol& pr = m.get_protocol(pid);
  protocol_report& prep = rep.protocols[pid.index()];
  if (!in_overlay(r)) {
    // First liquidation of this position: copy its amounts into the overlay.
    rows_[r].overlay_epoch = epoch_;
    rows_[r].overlay_slot = static_cast<std::uint32_t>(overlay_.size());
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
  const overlay_legs& o = overlay_[rows_[r].overlay_slot];
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
  const double d_value = e.den;
  const double hf = e.num / d_value;
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
  bool wiped = seize == c_value;
  if (fraction < 1.0) {
    repay *= fraction;
    seize *= fraction;
    wiped = false;
  }
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
  ++rr.liquidated;
}

double cascade_simulator::planned_repay(const book& b, row_t r, const evaluation& e,
                                        std::span<const double> p) const {
  const protocol& pr = b.get_market().get_protocol(b.protocol_at(r));
  const auto assets = b.leg_assets(r);
  const double* coll = b.leg_collateral(r).data();
  if (in_overlay(r)) coll = overlay_coll_.data() + overlay_[rows_[r].overlay_slot].begin;
  double c_value = 0.0;
  double bonus_value = 0.0;
  for (std::size_t k = 0; k < assets.size(); ++k) {
    if (!(coll[k] > 0.0)) continue;
    const double v = coll[k] * p[assets[k].index()];
    c_value += v;
    bonus_value += v * pr.bonus(assets[k]);
  }
  if (!(c_value > 0.0)) return 0.0;
  const double hf = e.num / e.den;
  const double cf = hf >= pr.full_liquidation_hf ? pr.close_factor : 1.0;
  const double repay = cf * e.den;
  const double bonus = bonus_value / c_value;
  return repay * (1.0 + bonus) > c_value ? c_value / (1.0 + bonus) : repay;
}

absl::StatusOr<cascade_report> cascade_simulator::run(const book& b, std::span<const shock> shocks,
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
        return absl::InvalidArgumentError(
            absl::StrCat("cascade: start price of ", m.assets()[a].symbol, " ",
                         options.start_prices[a], " must be a finite number > 0"));
      }
    }
    start = options.start_prices;
  }
  if (auto st = options.model.validate(m.protocol_count()); !st.ok()) return st;
  if (options.model.extended() && options.model.has_breakers() && options.model.counterfactual) {
    return run_with_counterfactual(b, shocks, options);
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
  market_state st;
  std::vector<std::optional<ratio_state>>& ratios = st.ratios;
  ratios.resize(n_assets);
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
  st.start = start;
  st.p = start;
  std::vector<double>& p = st.p;
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
  // Venues are centred at the starting (shocked) prices.
  st.liq.resize(n_assets);
  for (std::size_t a = 0; a < n_assets; ++a) {
    const asset_spec& spec = m.assets()[a];
    if (spec.venues) {
      st.liq[a] = liquidity::of_asset(spec, p[a]);
      continue;
    }
    if (!spec.liquidity) continue;
    pool pl = *spec.liquidity;
    if (shocked[a] || p[a] != spec.price) {
      const double k = pl.base * pl.quote;
      pl.base = std::sqrt(k / p[a]);
      pl.quote = std::sqrt(k * p[a]);
    }
    st.liq[a] = liquidity::from_pool(pl);
  }
  st.routed.assign(n_assets, 0.0);
  st.ratio_moved.assign(n_assets, false);
  st.price_moved.assign(n_assets, false);

  rep.protocols.assign(m.protocol_count(), {});
  if (options.model.extended()) {
    run_plain(b, st, options, rep);
    finish(st, rep);
    return rep;
  }
  std::vector<row_t>& active = active_;
  active.clear();
  // Round keys only grow, so "seen this run" is a key at or after this run's first.
  // On wrap-around every stamp is cleared.
  if (round_key_ > UINT32_MAX - options.max_rounds - 2) {
    for (row_state& rs : rows_) rs.active = 0;
    round_key_ = 0;
  }
  ++round_key_;
  run_first_key_ = round_key_;

  // Round 1 evaluates every position whose HF may be under band_floor: those in the
  // bands below it, and holders of moved assets estimated under it. Every position it
  // does not see has HF >= band_floor at p1, so none can fail until some asset has
  // dropped by unseen_floor_ from p1: smaller drops need no walk of their holders.
  const band_config& band_cfg = b.options().bands;
  const double thresholds[3] = {band_cfg.warn, band_cfg.danger, band_cfg.liquidatable};
  int from_band = 0;
  double band_floor = 1.0 + filter_margin;
  for (int k = 0; k < 3; ++k) {
    if (thresholds[k] >= 1.0 + filter_margin) {
      from_band = k + 1;
      band_floor = thresholds[k];
    }
  }
  unseen_floor_ = 1.0 - 1.0 / band_floor - filter_margin;

  // Holders of every asset whose price differs from the book's: estimate their cells at
  // p1 (book cell plus the price deltas), take the ones under band_floor as candidates
  // and file the ones within the first tier.
  const auto book_prices = b.prices();
  const health_cell* cells = b.cells().data();
  const double filed_if_over = 1.0 - filter_margin - cascade_filing_tiers[0];
  const auto classify = [&](row_t r, const health_cell& c) {
    if (!(c.den > 0.0) || !(c.den > c.num * filed_if_over)) return;
    if (c.num < c.den * band_floor) {
      activate(r, active);
    } else {
      scratch_.push_back({1.0 - c.den / c.num - filter_margin, r});
    }
  };
  constexpr std::size_t ahead = 32;
  std::vector<asset_id> moved;
  for (std::size_t a = 0; a < n_assets; ++a) {
    if (p1[a] != book_prices[a]) moved.push_back(asset_id::from_index(a));
  }
  for (const asset_id a : moved) {
    const double dp = p1[a.index()] - book_prices[a.index()];
    const auto seg = b.exposure(a);
    scratch_.clear();
    for (std::size_t i = 0; i < seg.size(); ++i) {
      if (i + ahead < seg.size()) {
        __builtin_prefetch(&rows_[seg[i + ahead].row]);
        __builtin_prefetch(&cells[seg[i + ahead].row]);
      }
      const row_t r = seg[i].row;
      row_state& rs = rows_[r];
      if (rs.est_epoch != epoch_) {
        rs.est_epoch = epoch_;
        rs.est = cells[r];
      }
      rs.est.num += seg[i].weighted_collateral * dp;
      rs.est.den += seg[i].debt * dp;
      // With one moved asset the estimate is final once the row's last entry here is
      // in (a row's entries are adjacent): judge it in the same pass.
      const bool last_entry = i + 1 == seg.size() || seg[i + 1].row != r;
      if (moved.size() == 1 && last_entry && b.live(r)) classify(r, rs.est);
    }
    last_estimates_ += seg.size();
    if (moved.size() == 1) file_bulk(a, cascade_filing_tiers[0]);
  }
  if (moved.size() > 1) {
    for (const asset_id a : moved) {
      const auto seg = b.exposure(a);
      scratch_.clear();
      for (std::size_t i = 0; i < seg.size(); ++i) {
        if (i + ahead < seg.size()) __builtin_prefetch(&rows_[seg[i + ahead].row]);
        const row_t r = seg[i].row;
        if (i > 0 && seg[i - 1].row == r) continue;
        if (b.live(r)) classify(r, rows_[r].est);
      }
      file_bulk(a, cascade_filing_tiers[0]);
    }
  }
  // Positions not holding a moved asset keep their book HF; every one under 1 sits in a
  // band whose threshold is above 1 (entry into a worse band is immediate).
  if (from_band > 0) {
    // Eight band bytes at a time: most words hold only healthy and warn rows.
    const std::uint8_t* bands = b.band_column().data();
    const std::size_t n = b.rows();
    std::size_t r = 0;
    for (; r + 8 <= n; r += 8) {
      std::uint64_t word = 0;
      std::memcpy(&word, bands + r, 8);
      if (from_band >= 2 && (word & 0xFEFEFEFEFEFEFEFEull) == 0) continue;
      if (word == 0) continue;
      for (std::size_t k = r; k < r + 8; ++k) {
        if (bands[k] >= from_band && bands[k] != book::dead)
          activate(static_cast<row_t>(k), active);
      }
    }
    for (; r < n; ++r) {
      if (bands[r] >= from_band && bands[r] != book::dead) activate(static_cast<row_t>(r), active);
    }
  } else {
    for (row_t r = 0; r < b.rows(); ++r) {
      if (b.live(r) && b.health_at(r) < band_floor) activate(r, active);
    }
  }

  std::vector<double>& sold = sold_;
  sold.assign(n_assets, 0.0);
  std::vector<row_t>& liquidated_last = liquidated_last_;
  liquidated_last.clear();

  for (std::uint32_t round = 1; round <= options.max_rounds; ++round) {
    if (round > 1) {
      ++round_key_;
      active.clear();
      for (const row_t r : liquidated_last) activate(r, active);
      for (std::size_t a = 0; a < n_assets; ++a) {
        if (!(p[a] < p1[a])) continue;
        const auto id = asset_id::from_index(a);
        release(b, id, 1.0 - p[a] / p1[a], active);
      }
    }

    // a. L: exact evaluation of the candidates at this round's prices, in book order
    // (which is the model's processing order, and walks memory forwards).
    if (active.size() > 64) {
      radix_sort_rows(active, sort_buffer_);
    } else {
      std::sort(active.begin(), active.end());
    }
    // b. is done in the same pass: every position in L is liquidated at the same prices
    // p (nothing moves a price before step c), in book order, while its legs are in cache.
    round_report rr;
    std::fill(sold.begin(), sold.end(), 0.0);
    liquidated_last.clear();
    const std::uint32_t* leg_offsets = b.leg_offsets().data();
    for (std::size_t i = 0; i < active.size(); ++i) {
      if (i + 16 < active.size()) {
        const row_t soon = active[i + 16];
        __builtin_prefetch(&leg_offsets[soon]);
        __builtin_prefetch(&rows_[soon]);
      }
      if (i + 8 < active.size()) {
        const std::uint32_t first_leg = leg_offsets[active[i + 8]];
        __builtin_prefetch(b.leg_collateral_column().data() + first_leg);
        __builtin_prefetch(b.leg_debt_column().data() + first_leg);
        __builtin_prefetch(b.leg_asset_column().data() + first_leg);
      }
      const row_t r = active[i];
      const evaluation e = evaluate(b, r, p);
      ++rep.evaluations;
      if (!e.has_debt) continue;
      if (!(e.hf() < 1.0)) {
        refile(b, r, e, p, p1);
        continue;
      }
      liquidate(b, r, e, p, round, rr, rep);
      liquidated_last.push_back(r);
    }
    if (rr.liquidated == 0) break;

    // c, d. Sell into the pools; oracle prices follow the market.
    sell_step(m, st, rr);
    rep.total_repaid_usd += rr.repaid_usd;
    rep.total_seized_usd += rr.seized_usd;
    rep.rounds.push_back(std::move(rr));
  }

  finish(st, rep);
  rep.estimates = last_estimates_;
  return rep;
}

void cascade_simulator::sell_step(const market& m, market_state& st, round_report& rr) {
  const std::size_t n_assets = m.asset_count();
  const std::vector<double>& sold = sold_;
  std::vector<double>& p = st.p;
  auto& ratios = st.ratios;
  auto& liq = st.liq;
  auto& routed = st.routed;
  auto& ratio_moved = st.ratio_moved;
  // Withdrawal follows the drawdown from the input price at the round's start.
  for (std::size_t a = 0; a < n_assets; ++a) {
    if (!liq[a] || !liq[a]->withdrawal().active()) continue;
    liq[a]->withdraw_for_drawdown(1.0 - p[a] / st.start[a]);
    rr.depth_scale.emplace_back(asset_id::from_index(a), liq[a]->depth_scale());
  }
  // Derived assets sell into their ratio pools first and pass base units on to their
  // bases.
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
  std::vector<bool>& moved_now = st.price_moved;
  std::fill(moved_now.begin(), moved_now.end(), false);
  for (std::size_t a = 0; a < n_assets; ++a) {
    if (sold[a] > 0.0) rr.sold.emplace_back(asset_id::from_index(a), sold[a]);
    if (ratios[a]) continue;
    const double q = sold[a] + (m.has_derived() ? routed[a] : 0.0);
    if (m.has_derived() && routed[a] > 0.0)
      rr.routed.emplace_back(asset_id::from_index(a), routed[a]);
    if (!(q > 0.0) || !liq[a]) continue;
    liq[a]->sell(q);
    p[a] = liq[a]->price();
    moved_now[a] = true;
  }
  for (std::size_t a = 0; a < n_assets; ++a) {
    if (!ratios[a]) continue;
    const std::size_t base = ratios[a]->base.index();
    if (ratio_moved[a] || moved_now[base]) p[a] = ratios[a]->ratio * p[base];
  }
  rr.prices = p;
}

void cascade_simulator::finish(const market_state& st, cascade_report& rep) const {
  const std::size_t n_assets = st.p.size();
  const std::vector<double>& p = st.p;
  rep.final_prices = p;
  rep.final_pools.assign(n_assets, std::nullopt);
  rep.final_depth_scale.assign(n_assets, std::numeric_limits<double>::quiet_NaN());
  for (std::size_t a = 0; a < n_assets; ++a) {
    if (!st.liq[a]) continue;
    if (st.liq[a]->is_v1_pool()) rep.final_pools[a] = st.liq[a]->v1_pool();
    if (st.liq[a]->withdrawal().active()) rep.final_depth_scale[a] = st.liq[a]->depth_scale();
  }
  rep.final_ratios.assign(n_assets, std::numeric_limits<double>::quiet_NaN());
  for (std::size_t a = 0; a < n_assets; ++a) {
    if (st.ratios[a]) rep.final_ratios[a] = st.ratios[a]->ratio;
  }
  for (const shock& s : rep.shocks) {
    const std::size_t a = s.asset.index();
    if (s.fraction == 0.0) {
      rep.amplification.emplace_back(std::nullopt);
    } else {
      rep.amplification.emplace_back((p[a] / st.start[a] - 1.0) / s.fraction);
    }
  }
  for (auto& prep : rep.protocols) prep.contagion_only = prep.first_round > 1;
}

run_summary cascade_report::summary() const {
  run_summary out;
  out.rounds = rounds.size();
  out.total_repaid_usd = total_repaid_usd;
  out.total_seized_usd = total_seized_usd;
  out.positions_liquidated = positions_liquidated;
  out.positions_insolvent = positions_insolvent;
  for (const auto& p : protocols) out.bad_debt_usd.push_back(p.bad_debt_usd);
  out.total_bad_debt_usd = bad_debt_usd();
  out.final_prices = final_prices;
  return out;
}

bool cascade_model::has_cap() const {
  return std::any_of(max_liquidating_usd.begin(), max_liquidating_usd.end(),
                     [](double c) { return c < std::numeric_limits<double>::infinity(); });
}

bool cascade_model::has_oracle_lag() const {
  return std::any_of(oracles.begin(), oracles.end(), [](const oracle_lag& o) { return o.active(); });
}

absl::Status cascade_model::validate(std::size_t protocol_count) const {
  const auto fail = [](auto&&... parts) {
    return absl::InvalidArgumentError(absl::StrCat("cascade model: ", parts...));
  };
  if (oracles.size() > protocol_count) return fail(oracles.size(), " oracles for ", protocol_count, " protocols");
  for (const oracle_lag& o : oracles) {
    if (!(o.deviation >= 0.0 && o.deviation < 1.0)) {
      return fail("oracle deviation ", o.deviation, " is outside [0, 1)");
    }
  }
  if (!(liquidator_capacity_usd > 0.0)) {
    return fail("liquidator_capacity_usd ", liquidator_capacity_usd, " must be > 0");
  }
  if (!is_nonnegative_finite(round_seconds)) {
    return fail("round_seconds ", round_seconds, " must be a finite number >= 0");
  }
  if (has_halt() && !(halt_drop > 0.0 && halt_drop < 1.0)) {
    return fail("halt_drop ", halt_drop, " is outside (0, 1)");
  }
  if (halt_rounds == 0) return fail("halt_rounds must be >= 1");
  if (max_liquidating_usd.size() > protocol_count) {
    return fail(max_liquidating_usd.size(), " caps for ", protocol_count, " protocols");
  }
  for (const double c : max_liquidating_usd) {
    if (!(c > 0.0)) return fail("max_liquidating_usd ", c, " must be > 0");
  }
  return absl::OkStatus();
}

absl::StatusOr<cascade_report> cascade_simulator::run_with_counterfactual(
    const book& b, std::span<const shock> shocks, const cascade_options& options) {
  cascade_options o = options;
  o.model.counterfactual = false;
  const cascade_model with = o.model;
  breaker_report br;
  o.model.halt_drop = std::numeric_limits<double>::infinity();
  o.model.max_liquidating_usd.clear();
  auto without = run(b, shocks, o);
  if (!without.ok()) return without.status();
  br.without = without->summary();
  if (with.has_halt() && with.has_cap()) {
    o.model.halt_drop = with.halt_drop;
    auto halt = run(b, shocks, o);
    if (!halt.ok()) return halt.status();
    br.halt_only = halt->summary();
    o.model.halt_drop = std::numeric_limits<double>::infinity();
    o.model.max_liquidating_usd = with.max_liquidating_usd;
    auto cap = run(b, shocks, o);
    if (!cap.ok()) return cap.status();
    br.cap_only = cap->summary();
  }
  o.model = with;
  auto rep = run(b, shocks, o);
  if (!rep.ok()) return rep.status();
  rep->breakers = std::move(br);
  rep->model.counterfactual = options.model.counterfactual;
  return rep;
}

void cascade_simulator::run_plain(const book& b, market_state& st, const cascade_options& o,
                                  cascade_report& rep) {
  const market& m = b.get_market();
  const cascade_model& md = o.model;
  const std::size_t n_assets = m.asset_count();
  const std::size_t n_protocols = m.protocol_count();
  rep.extended = true;
  rep.model = md;
  std::vector<double>& p = st.p;
  std::vector<oracle_lag> lag(n_protocols);
  std::copy(md.oracles.begin(), md.oracles.end(), lag.begin());
  std::vector<double> cap(n_protocols, std::numeric_limits<double>::infinity());
  std::copy(md.max_liquidating_usd.begin(), md.max_liquidating_usd.end(), cap.begin());
  const bool limited = md.has_capacity() || md.has_cap();
  // history[j]: market prices at the start of round j; history[0]: the input prices.
  std::vector<std::vector<double>> history{st.start, p};
  std::vector<std::vector<double>> oracle(n_protocols);
  for (std::size_t k = 0; k < n_protocols; ++k) {
    if (lag[k].active()) oracle[k] = st.start;
  }
  const auto feed = [&](std::size_t k, std::size_t round) -> const std::vector<double>& {
    const std::size_t j = round > lag[k].lag_rounds ? round - lag[k].lag_rounds : 0;
    return j < history.size() ? history[j] : p;
  };
  const auto publish = [&](const oracle_lag& ol, double& o_value, double shown) {
    if (shown != o_value && std::abs(shown / o_value - 1.0) >= ol.deviation) {
      o_value = shown;
      return true;
    }
    return false;
  };
  // True when some oracle would still move if the market stayed at p.
  const auto oracles_pending = [&](std::size_t round) {
    for (std::size_t k = 0; k < n_protocols; ++k) {
      if (!lag[k].active()) continue;
      std::vector<double> o_copy = oracle[k];
      for (std::size_t ahead = 1; ahead <= lag[k].lag_rounds + 1; ++ahead) {
        const std::vector<double>& shown = feed(k, round + ahead);
        for (std::size_t a = 0; a < n_assets; ++a) {
          if (publish(lag[k], o_copy[a], shown[a])) return true;
        }
      }
    }
    return false;
  };

  std::vector<std::uint32_t> since(b.rows(), 0);
  std::vector<std::uint32_t> last_under(b.rows(), 0);
  struct candidate {
    row_t row;
    evaluation e;
    double hf;
    double repay;
    double served = 0.0;  // fraction liquidated this round
    bool eligible = false;
  };
  std::vector<candidate> under;
  std::vector<std::size_t> order;
  std::vector<double> room(n_protocols);
  std::vector<double> waiting_usd(n_protocols);
  std::vector<double>& sold = sold_;
  sold.assign(n_assets, 0.0);
  std::uint32_t halt_until = 0;

  for (std::uint32_t round = 1; round <= o.max_rounds; ++round) {
    round_report rr;
    for (std::size_t k = 0; k < n_protocols; ++k) {
      if (!lag[k].active()) continue;
      const std::vector<double>& shown = feed(k, round);
      for (std::size_t a = 0; a < n_assets; ++a) publish(lag[k], oracle[k][a], shown[a]);
      rr.oracle_prices.emplace_back(protocol_id::from_index(k), oracle[k]);
    }
    const auto prices_of = [&](protocol_id pid) -> std::span<const double> {
      return lag[pid.index()].active() ? std::span<const double>(oracle[pid.index()])
                                       : std::span<const double>(p);
    };
    // 2. Who is under 1, and since when.
    under.clear();
    for (row_t r = 0; r < b.rows(); ++r) {
      if (!b.live(r)) continue;
      const std::span<const double> prices = prices_of(b.protocol_at(r));
      const evaluation e = evaluate(b, r, prices);
      ++rep.evaluations;
      if (!e.has_debt || !(e.hf() < 1.0)) continue;
      if (last_under[r] != round - 1 || since[r] == 0) since[r] = round;
      last_under[r] = round;
      under.push_back({r, e, e.hf(), planned_repay(b, r, e, prices)});
    }
    const bool halted = round <= halt_until;
    rr.halted = halted;
    order.clear();
    for (std::size_t i = 0; i < under.size(); ++i) {
      under[i].eligible = !halted && round - since[under[i].row] >= md.latency_rounds;
      if (under[i].eligible) order.push_back(i);
    }
    // 3. Liquidate: whole in input order, or worst HF first within the limits.
    std::fill(sold.begin(), sold.end(), 0.0);
    if (limited) {
      std::stable_sort(order.begin(), order.end(),
                       [&](std::size_t x, std::size_t y) { return under[x].hf < under[y].hf; });
      double capacity_left = md.liquidator_capacity_usd;
      room = cap;
      for (const std::size_t i : order) {
        candidate& c = under[i];
        const std::size_t k = b.protocol_at(c.row).index();
        double f = 1.0;
        if (c.repay > 0.0) {
          f = std::min({1.0, capacity_left / c.repay, room[k] / c.repay});
          if (!(f > 0.0)) continue;
          if (f < 1.0) {
            if (capacity_left / c.repay <= f) capacity_left = 0.0;
            if (room[k] / c.repay <= f) room[k] = 0.0;
          }
          if (capacity_left > 0.0) capacity_left -= f * c.repay;
          if (room[k] > 0.0) room[k] -= f * c.repay;
        }
        c.served = f;
        liquidate(b, c.row, c.e, prices_of(b.protocol_at(c.row)), round, rr, rep, f);
      }
    } else {
      for (const std::size_t i : order) {
        candidate& c = under[i];
        c.served = 1.0;
        liquidate(b, c.row, c.e, prices_of(b.protocol_at(c.row)), round, rr, rep);
      }
    }
    // 4. Stop when nothing happened and nothing can.
    if (rr.liquidated == 0 && under.empty() && !oracles_pending(round)) break;
    // Backlog: positions under 1 not served in full.
    std::fill(waiting_usd.begin(), waiting_usd.end(), 0.0);
    for (const candidate& c : under) {
      if (c.served >= 1.0) continue;
      const double usd = (1.0 - c.served) * c.repay;
      ++rr.backlog.positions;
      rr.backlog.usd += usd;
      waiting_usd[b.protocol_at(c.row).index()] += usd;
      if (!c.eligible && !halted) ++rr.backlog.delayed;
    }
    if (limited) {
      double need = 0.0;
      if (md.has_capacity()) need = std::ceil(rr.backlog.usd / md.liquidator_capacity_usd);
      for (std::size_t k = 0; k < n_protocols; ++k) {
        if (cap[k] < std::numeric_limits<double>::infinity()) {
          need = std::max(need, std::ceil(waiting_usd[k] / cap[k]));
        }
      }
      rr.backlog.clear_rounds = static_cast<std::uint64_t>(need);
    }
    // 5. Sales, and the breaker.
    const std::vector<double> before = p;
    sell_step(m, st, rr);
    if (md.has_halt()) {
      for (std::size_t a = 0; a < n_assets; ++a) {
        if (1.0 - p[a] / before[a] > md.halt_drop) rr.halt_triggered = true;
      }
      if (rr.halt_triggered) halt_until = round + md.halt_rounds;
    }
    if (halted) ++rep.halted_rounds;
    history.push_back(p);
    rep.total_repaid_usd += rr.repaid_usd;
    rep.total_seized_usd += rr.seized_usd;
    rep.rounds.push_back(std::move(rr));
  }
}

}  // namespace cascade
