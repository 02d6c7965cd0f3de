#include "engine/book.hpp"

#include <absl/container/flat_hash_set.h>
#include <absl/strings/str_cat.h>

#include <algorithm>
#include <bit>
#include <cassert>
#include <cmath>
#include <limits>

#include "engine/kernels.hpp"

namespace cascade {

namespace {

constexpr double quiet_nan = std::numeric_limits<double>::quiet_NaN();

// A leg takes part in the exposure index when it holds anything.
bool holds(const leg& l) { return l.collateral > 0.0 || l.debt > 0.0; }

// The queue and the flagged rows: a list of rows with each row's index in it (pos), so
// that a row leaves in O(1) by taking the last one's place.
void join(std::vector<row_t>& list, std::vector<std::uint32_t>& pos, row_t r) {
  pos[r] = static_cast<std::uint32_t>(list.size());
  list.push_back(r);
}
void leave(std::vector<row_t>& list, std::vector<std::uint32_t>& pos, row_t r) {
  const std::uint32_t i = pos[r];
  const row_t last = list.back();
  list[i] = last;
  pos[last] = i;
  list.pop_back();
}

}  // namespace

absl::Status book_options::validate() const {
  if (auto s = bands.validate(); !s.ok()) return s;
  if (!(scan_fraction >= 0.0 && scan_fraction <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("book: scan_fraction ", scan_fraction, " is outside [0, 1]"));
  }
  if (anchor_updates == 0 || anchor_updates > 1'000'000) {
    return absl::InvalidArgumentError(
        absl::StrCat("book: anchor_updates ", anchor_updates, " is outside [1, 1000000]"));
  }
  if (!(anchor_range > 1.0 && anchor_range <= 1024.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("book: anchor_range ", anchor_range, " is outside (1, 1024]"));
  }
  if (max_legs == 0 || max_legs > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("book: max_legs ", max_legs, " is outside [1, 65535]"));
  }
  return absl::OkStatus();
}

book::book(const market& m, book_options options)
    : market_(&m), options_(options), classifier_(options.bands), prices_(m.reference_prices()) {
  assert(options_.validate().ok());
  const std::size_t n = m.asset_count();
  seg_begin_.assign(n, 0);
  seg_size_.assign(n, 0);
  seg_cap_.assign(n, 0);
  anchor_count_.assign(n, 0);
  anchor_lo_ = prices_;
  anchor_hi_ = prices_;
  band_counts_.assign(m.protocol_count(), {});
  tick_slot_.assign(n, -1);
  const std::size_t np = m.protocol_count();
  oracle_.reserve(n * np);
  for (std::size_t p = 0; p < np; ++p) oracle_.insert(oracle_.end(), prices_.begin(), prices_.end());
  split_.assign(n, 0);
  new_market_.assign(n, quiet_nan);
  new_oracle_.assign(n * np, quiet_nan);
  changed_.assign(np, 0);
  dp_.assign(np, 0.0);
  queue_units_.assign(n, 0.0);
  queue_scratch_.assign(n, 0.0);
  hidden_.assign(np, {});
  liq_.resize(n);
  liq_ratio_.assign(n, 0);
  lt_.assign(n * np, 0.0);
  bonus_.assign(n * np, 0.0);
  for (std::size_t p = 0; p < np; ++p) {
    const protocol& pr = m.get_protocol(protocol_id::from_index(p));
    for (std::size_t a = 0; a < n; ++a) {
      lt_[p * n + a] = pr.threshold(asset_id::from_index(a));
      bonus_[p * n + a] = pr.bonus(asset_id::from_index(a));
    }
  }
  for (std::size_t a = 0; a < n; ++a) {
    const auto id = asset_id::from_index(a);
    if (const auto base = m.base_of(id)) derived_.emplace_back(id, *base);
  }
  for (std::size_t a = 0; a < n; ++a) rebuild_liquidity(a);
  // The realizable bound starts from here (book.cpp, refresh_realizable).
  bound_price_ = prices_;
  bound_m_.assign(n, 0.0);
  bound_base_.assign(n, 0.0);
  bound_scale_.assign(n, 1.0);
  bounded_.assign(n, 1);
  drift_.assign(n, 0.0);
  certs_.resize(n);
  reset_certificates();
  for (std::size_t a = 0; a < n; ++a) {
    if (!liq_[a]) continue;
    bound_scale_[a] = liq_[a]->depth_scale();
    if (!liq_[a]->is_v1_pool()) {
      bounded_[a] = 0;
      continue;
    }
    const pool pl = liq_[a]->v1_pool();
    const double unit =
        liq_ratio_[a] != 0 ? prices_[m.base_of(asset_id::from_index(a))->index()] : 1.0;
    bound_m_[a] = pl.base * pl.quote * unit;
    bound_base_[a] = pl.base;
  }
}

absl::Status book::upsert(std::span<const position_input> batch, std::vector<crossing>* events,
                          std::vector<status_change>* status) {
  const market& m = *market_;
  absl::flat_hash_set<absl::string_view> seen;
  seen.reserve(batch.size());
  std::vector<std::uint32_t> additions(m.asset_count(), 0);
  std::size_t legs = 0;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const position_input& in = batch[i];
    if (in.id.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("position #", i + 1, ": id is empty"));
    }
    const auto fail = [&](auto&&... parts) {
      return absl::InvalidArgumentError(absl::StrCat("position '", in.id, "': ", parts...));
    };
    if (!seen.insert(key(in.id)).second) return fail("duplicate id in the batch");
    legs += in.legs.size();
    if (!in.protocol.valid() || in.protocol.index() >= m.protocol_count()) {
      return fail("unknown protocol");
    }
    const protocol& p = m.get_protocol(in.protocol);
    if (in.legs.size() > options_.max_legs) {
      return fail(in.legs.size(), " legs, more than the limit of ", options_.max_legs);
    }
    for (std::size_t j = 0; j < in.legs.size(); ++j) {
      const leg& l = in.legs[j];
      if (!l.asset.valid() || l.asset.index() >= m.asset_count()) {
        return fail("leg ", j + 1, ": unknown asset");
      }
      const std::string& sym = m.asset(l.asset).symbol;
      if (!is_nonnegative_finite(l.collateral)) {
        return fail("leg ", j + 1, " (", sym, "): collateral ", l.collateral,
                    " must be a finite number >= 0");
      }
      if (!is_nonnegative_finite(l.debt)) {
        return fail("leg ", j + 1, " (", sym, "): debt ", l.debt, " must be a finite number >= 0");
      }
      if (l.collateral > 0.0 && p.params(l.asset) == nullptr) {
        return fail("leg ", j + 1, ": protocol '", p.name, "' does not accept ", sym,
                    " as collateral");
      }
      if (holds(l)) ++additions[l.asset.index()];
    }
  }

  // Validated: from here on nothing can fail.
  reserve_exposure(additions);
  reserve_rows(batch.size(), legs);
  const auto first_new = static_cast<row_t>(ids_.size());
  replaced_.clear();
  for (const position_input& in : batch) {
    band prev = band::healthy;
    double hf_before = quiet_nan;
    // One hash per position: find or insert the id, then point it at the new row.
    const row_t r = static_cast<row_t>(ids_.size());
    const auto [slot, inserted] = row_by_id_.try_emplace(in.id, r);
    if (!inserted) {
      prev = band_at(slot->second);
      hf_before = health_at(slot->second);
      // The new row's statuses are reported against the replaced row's.
      replaced_.push_back({r, status_[slot->second]});
      kill_row(slot->second);
      slot->second = r;
    }
    append_row(in, m.get_protocol(in.protocol));
    const double hf = health_at(r);
    const band to = classifier_.next(prev, hf);
    set_band(r, to);
    if (events != nullptr && to != prev) {
      events->push_back({r, in.protocol, prev, to, hf_before, hf, asset_id{}, 0.0});
      ++stats_.crossings;
    }
  }
  if (options_.realizable) {
    new_rows_.clear();
    for (row_t r = first_new; r < ids_.size(); ++r) new_rows_.push_back(r);
    refresh_realizable({}, 0, nullptr, new_rows_, status, replaced_);
  }
  return absl::OkStatus();
}

absl::Status book::remove(std::span<const std::string> ids, std::vector<status_change>* status) {
  absl::flat_hash_set<absl::string_view> seen;
  seen.reserve(ids.size());
  for (const std::string& id : ids) {
    if (!row_by_id_.contains(id)) {
      return absl::NotFoundError(absl::StrCat("position '", id, "': unknown id"));
    }
    if (!seen.insert(key(id)).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("position '", id, "': listed twice in the removal"));
    }
  }
  for (const std::string& id : ids) {
    const auto it = row_by_id_.find(id);
    const row_t r = it->second;
    row_by_id_.erase(it);
    kill_row(r);
  }
  // A removed queued position leaves the queue: revalue who it was ahead of.
  if (options_.realizable) refresh_realizable({}, 0, nullptr, {}, status);
  return absl::OkStatus();
}

void book::reserve_rows(std::size_t rows, std::size_t legs) {
  // Grow geometrically so that many small batches stay amortized O(1).
  const auto grow = [](auto& v, std::size_t more) {
    if (v.size() + more > v.capacity()) v.reserve(std::max(v.size() + more, v.capacity() * 2));
  };
  grow(ids_, rows);
  grow(owners_, rows);
  grow(protocols_, rows);
  grow(bands_, rows);
  grow(cells_, rows);
  grow(version_, rows);
  grow(flag_pos_, rows);
  grow(judge_stamp_, rows);
  grow(status_, rows);
  grow(queue_pos_, rows);
  grow(touch_stamp_, rows);
  grow(leg_off_, rows);
  grow(term_off_, rows);
  grow(term_ncoll_, rows);
  grow(leg_asset_, legs);
  grow(leg_coll_, legs);
  grow(leg_debt_, legs);
  grow(term_asset_, legs);
  grow(term_coef_, legs);
  row_by_id_.reserve(row_by_id_.size() + rows);
}

void book::reserve_exposure(std::span<const std::uint32_t> additions) {
  for (std::size_t a = 0; a < additions.size(); ++a) {
    const std::size_t need = std::size_t{seg_size_[a]} + additions[a];
    if (need <= seg_cap_[a]) continue;
    const std::size_t cap = need + need / 4 + 4;
    const std::size_t begin = exposure_.size();
    exposure_.resize(begin + cap);
    std::copy_n(exposure_.begin() + seg_begin_[a], seg_size_[a], exposure_.begin() + begin);
    exposure_holes_ += seg_cap_[a];
    seg_begin_[a] = static_cast<std::uint32_t>(begin);
    seg_cap_[a] = static_cast<std::uint32_t>(cap);
  }
}

void book::append_row(const position_input& in, const protocol& p) {
  const auto r = static_cast<row_t>(ids_.size());
  ids_.push_back(in.id);
  const auto [owner, added] =
      owner_index_.try_emplace(in.owner, static_cast<std::uint32_t>(owner_names_.size()));
  if (added) owner_names_.push_back(in.owner);
  owners_.push_back(owner->second);
  protocols_.push_back(in.protocol);

  for (const leg& l : in.legs) {
    leg_asset_.push_back(l.asset);
    leg_coll_.push_back(l.collateral);
    leg_debt_.push_back(l.debt);
  }
  leg_off_.push_back(static_cast<std::uint32_t>(leg_asset_.size()));

  std::uint16_t ncoll = 0;
  for (const leg& l : in.legs) {
    if (l.collateral > 0.0) {
      term_asset_.push_back(l.asset.value);
      term_coef_.push_back(l.collateral * p.threshold(l.asset));
      ++ncoll;
    }
  }
  for (const leg& l : in.legs) {
    if (l.debt > 0.0) {
      term_asset_.push_back(l.asset.value);
      term_coef_.push_back(l.debt);
    }
  }
  term_ncoll_.push_back(ncoll);
  term_off_.push_back(static_cast<std::uint32_t>(term_asset_.size()));

  for (const leg& l : in.legs) {
    if (!holds(l)) continue;
    const std::size_t a = l.asset.index();
    const double wc = l.collateral > 0.0 ? l.collateral * p.threshold(l.asset) : 0.0;
    assert(seg_size_[a] < seg_cap_[a]);
    exposure_[seg_begin_[a] + seg_size_[a]++] = {r, in.protocol.value, wc, l.debt};
  }

  cells_.push_back(compute_cell(r, oracle_prices(in.protocol)));
  bands_.push_back(static_cast<std::uint8_t>(band::healthy));
  version_.push_back(0);
  status_.push_back(0);
  queue_pos_.push_back(0);
  flag_pos_.push_back(0);
  touch_stamp_.push_back(0);
  judge_stamp_.push_back(0);
  ++band_counts_[in.protocol.index()][0];
  ++live_rows_;
}

void book::kill_row(row_t r) {
  assert(live(r));
  clear_status(r);
  --band_counts_[protocols_[r].index()][bands_[r]];
  bands_[r] = dead;
  cells_[r] = {};
  --live_rows_;
  for (std::uint32_t k = leg_off_[r]; k < leg_off_[r + 1]; ++k) {
    if (leg_coll_[k] > 0.0 || leg_debt_[k] > 0.0) ++dead_exposure_;
  }
}

health_cell book::compute_cell(row_t r, std::span<const double> prices) const {
  const std::uint32_t b = term_off_[r];
  const std::uint32_t mid = b + term_ncoll_[r];
  const std::uint32_t e = term_off_[r + 1];
  double num = 0.0;
  double den = 0.0;
  for (std::uint32_t k = b; k < mid; ++k) num += term_coef_[k] * prices[term_asset_[k]];
  for (std::uint32_t k = mid; k < e; ++k) den += term_coef_[k] * prices[term_asset_[k]];
  return {num, den};
}

absl::Status book::apply_ticks(std::span<const tick> ticks, std::vector<crossing>& events,
                               std::vector<status_change>* status) {
  const market& m = *market_;
  for (std::size_t i = 0; i < ticks.size(); ++i) {
    const tick& t = ticks[i];
    if (!t.asset.valid() || t.asset.index() >= m.asset_count()) {
      return absl::InvalidArgumentError(absl::StrCat("tick #", i + 1, ": unknown asset"));
    }
    if (!is_positive_finite(t.price)) {
      return absl::InvalidArgumentError(absl::StrCat("tick #", i + 1, " (", m.asset(t.asset).symbol,
                                                     "): price ", t.price,
                                                     " must be a finite number > 0"));
    }
    if (t.scope != price_scope::all && t.scope != price_scope::market &&
        t.scope != price_scope::oracle) {
      return absl::InvalidArgumentError(absl::StrCat("tick #", i + 1, ": unknown scope"));
    }
    if (t.scope == price_scope::oracle &&
        (!t.protocol.valid() || t.protocol.index() >= m.protocol_count())) {
      return absl::InvalidArgumentError(
          absl::StrCat("tick #", i + 1, " (", m.asset(t.asset).symbol,
                       "): an oracle tick needs a known protocol"));
    }
  }
  const std::size_t n = prices_.size();
  const std::size_t np = m.protocol_count();
  // Coalesce: the last tick of each price wins; assets keep their first appearance.
  order_.clear();
  const auto see = [&](asset_id a) {
    std::int32_t& slot = tick_slot_[a.index()];
    if (slot < 0) {
      slot = static_cast<std::int32_t>(order_.size());
      order_.push_back(a);
    }
  };
  for (const tick& t : ticks) {
    const std::size_t a = t.asset.index();
    see(t.asset);
    if (t.scope != price_scope::oracle) new_market_[a] = t.price;
    if (t.scope == price_scope::all) {
      for (std::size_t p = 0; p < np; ++p) new_oracle_[p * n + a] = t.price;
    } else if (t.scope == price_scope::oracle) {
      new_oracle_[t.protocol.index() * n + a] = t.price;
    }
  }
  // A derived asset is priced ratio x base (market.hpp): a batch that moves the base
  // and does not price the derived asset itself moves it at the ratio it had, in the
  // market and in each protocol's oracle.
  for (const auto& [d, base] : derived_) {
    const std::size_t di = d.index();
    const std::size_t bi = base.index();
    bool any = false;
    if (!std::isnan(new_market_[bi]) && std::isnan(new_market_[di])) {
      new_market_[di] = new_market_[bi] * (prices_[di] / prices_[bi]);
      any = true;
    }
    for (std::size_t p = 0; p < np; ++p) {
      const std::size_t s = p * n;
      if (!std::isnan(new_oracle_[s + bi]) && std::isnan(new_oracle_[s + di])) {
        new_oracle_[s + di] = new_oracle_[s + bi] * (oracle_[s + di] / oracle_[s + bi]);
        any = true;
      }
    }
    if (any) see(d);
  }
  for (const asset_id a : order_) tick_slot_[a.index()] = -1;

  moved_.clear();
  const std::size_t first_crossing = events.size();
  for (const asset_id id : order_) {
    const std::size_t a = id.index();
    // Which protocols' oracles move, and whether they all move alike.
    bool any = false;
    bool uniform = true;
    double old_price = 0.0;
    double new_price = 0.0;
    for (std::size_t p = 0; p < np; ++p) {
      const double np_ = new_oracle_[p * n + a];
      const double op = oracle_[p * n + a];
      const bool moves = !std::isnan(np_) && np_ != op;
      changed_[p] = moves ? 1 : 0;
      if (!moves) {
        uniform = false;
        continue;
      }
      if (!any) {
        old_price = op;
        new_price = np_;
      } else if (op != old_price || np_ != new_price) {
        uniform = false;
      }
      any = true;
    }
    const double nm = new_market_[a];
    const bool market_moves = !std::isnan(nm) && nm != prices_[a];
    if (market_moves) {
      prices_[a] = nm;
      moved_.push_back(id);
    }
    if (!any) {
      if (market_moves) {
        ++stats_.ticks;
        update_split(a);
      }
      continue;
    }
    ++stats_.ticks;
    const std::size_t holders = seg_size_[a];
    const auto set_oracles = [&] {
      for (std::size_t p = 0; p < np; ++p) {
        if (changed_[p] != 0) oracle_[p * n + a] = new_oracle_[p * n + a];
      }
      update_split(a);
    };
    if (static_cast<double>(holders) > options_.scan_fraction * static_cast<double>(live_rows_)) {
      set_oracles();
      scan_all(id, uniform ? new_price : 0.0, &events);
      ++stats_.scans;
      stats_.positions_touched += live_rows_;
      continue;
    }
    ++stats_.walks;
    stats_.positions_touched += holders;
    if (!uniform) {
      // Protocols' oracles move differently (feeds publishing for some protocols):
      // each holder moves by its own protocol's delta.
      double lo = anchor_lo_[a];
      double hi = anchor_hi_[a];
      for (std::size_t p = 0; p < np; ++p) {
        dp_[p] = 0.0;
        if (changed_[p] == 0) continue;
        const double np_ = new_oracle_[p * n + a];
        dp_[p] = np_ - oracle_[p * n + a];
        lo = std::min(lo, np_);
        hi = std::max(hi, np_);
      }
      set_oracles();
      if (++anchor_count_[a] > options_.anchor_updates || hi > options_.anchor_range * lo) {
        walk_exact(id, 0.0, events);
        anchor_count_[a] = 0;
        reset_asset_anchor(a);
        ++stats_.anchors;
      } else {
        anchor_lo_[a] = lo;
        anchor_hi_[a] = hi;
        walk_delta<true>(id, 0.0, 0.0, events);
      }
      continue;
    }
    const double lo = std::min(anchor_lo_[a], new_price);
    const double hi = std::max(anchor_hi_[a], new_price);
    if (++anchor_count_[a] > options_.anchor_updates || hi > options_.anchor_range * lo) {
      set_oracles();
      walk_exact(id, new_price, events);
      anchor_count_[a] = 0;
      reset_asset_anchor(a);
      ++stats_.anchors;
    } else {
      anchor_lo_[a] = lo;
      anchor_hi_[a] = hi;
      walk_delta<false>(id, old_price, new_price, events);
      set_oracles();
    }
  }
  for (const asset_id id : order_) {
    const std::size_t a = id.index();
    new_market_[a] = quiet_nan;
    for (std::size_t p = 0; p < np; ++p) new_oracle_[p * n + a] = quiet_nan;
  }
  if (options_.realizable) {
    refresh_realizable(moved_, first_crossing, &events, {}, status);
  }
  return absl::OkStatus();
}

void book::update_split(std::size_t a) {
  const std::size_t n = prices_.size();
  std::uint8_t split = 0;
  for (std::size_t p = 0; p < band_counts_.size(); ++p) {
    if (oracle_[p * n + a] != prices_[a]) split = 1;
  }
  if (split != split_[a]) {
    split_assets_ += split != 0 ? 1 : -1;
    split_[a] = split;
  }
}

void book::reset_asset_anchor(std::size_t a) {
  // The range since anchoring starts at the prices every protocol now sees.
  const std::size_t n = prices_.size();
  double lo = oracle_[a];
  double hi = oracle_[a];
  for (std::size_t p = 1; p < band_counts_.size(); ++p) {
    lo = std::min(lo, oracle_[p * n + a]);
    hi = std::max(hi, oracle_[p * n + a]);
  }
  anchor_lo_[a] = lo;
  anchor_hi_[a] = hi;
}

template <bool PerProtocol>
void book::walk_delta(asset_id a, double old_price, double new_price,
                      std::vector<crossing>& events) {
  // Uniform: every holder moves by one delta. PerProtocol: by its protocol's (dp_, set
  // before the walk; the oracles already hold the new prices).
  const double dp_uniform = new_price - old_price;
  const double* dps = dp_.data();
  const exposure_entry* seg = exposure_.data() + seg_begin_[a.index()];
  const std::size_t n = seg_size_[a.index()];
  health_cell* cells = cells_.data();
  std::uint8_t* bands = bands_.data();
  const kernels::band_filter filter(options_.bands);
  // The holders' cells are a sorted gather over the rows, mostly cache misses. Keep
  // many in flight: prefetch a fixed distance ahead and keep the update loop short by
  // judging bands afterwards, a block at a time, with the division-free filter (the
  // classifier decides only the cells it cannot clear). Each row appears once per
  // walk and its judgement touches only its own band, so deferring it within a block
  // changes nothing but speed; events keep the walk's order.
  constexpr std::size_t block = 64;
  constexpr std::size_t ahead = 128;
  row_t rows[block];
  std::uint8_t was[block];
  health_cell before[block];
  health_cell after[block];
  std::size_t i = 0;
  while (i < n) {
    std::size_t m = 0;
    for (; i < n && m < block; ++i) {
      if (i + ahead < n) {
        const row_t next = seg[i + ahead].row;
        __builtin_prefetch(&cells[next], 1);
        __builtin_prefetch(&bands[next], 0);
      }
      const row_t r = seg[i].row;
      const double dp = PerProtocol ? dps[seg[i].protocol] : dp_uniform;
      double dnum = seg[i].weighted_collateral * dp;
      double dden = seg[i].debt * dp;
      // Two legs of one position in the same asset are adjacent (rows are sorted):
      // apply both before judging the band.
      while (i + 1 < n && seg[i + 1].row == r) {
        ++i;
        dnum += seg[i].weighted_collateral * dp;
        dden += seg[i].debt * dp;
      }
      const std::uint8_t b = bands[r];
      if (b == dead) continue;
      const health_cell old = cells[r];
      health_cell& c = cells[r];
      c.num += dnum;
      c.den += dden;
      rows[m] = r;
      was[m] = b;
      before[m] = old;
      after[m] = c;
      ++m;
    }
    for (std::uint64_t left = kernels::unsettled(after, was, m, filter); left != 0;
         left &= left - 1) {
      const auto j = static_cast<std::size_t>(std::countr_zero(left));
      const row_t r = rows[j];
      const auto b = static_cast<band>(was[j]);
      const double hf = health_of(after[j]);
      const band to = classifier_.next(b, hf);
      if (to != b) {
        const double price = PerProtocol ? row_prices(r)[a.index()] : new_price;
        events.push_back({r, protocols_[r], b, to, health_of(before[j]), hf, a, price});
        set_band(r, to);
        ++stats_.crossings;
      }
    }
  }
}

void book::walk_exact(asset_id a, double new_price, std::vector<crossing>& events) {
  const exposure_entry* seg = exposure_.data() + seg_begin_[a.index()];
  const std::size_t n = seg_size_[a.index()];
  for (std::size_t i = 0; i < n; ++i) {
    const row_t r = seg[i].row;
    while (i + 1 < n && seg[i + 1].row == r) ++i;
    const std::uint8_t b = bands_[r];
    if (b == dead) continue;
    const health_cell before = cells_[r];
    const auto p = row_prices(r);
    cells_[r] = compute_cell(r, p);
    const double hf = health_of(cells_[r]);
    const band to = classifier_.next(static_cast<band>(b), hf);
    if (to != static_cast<band>(b)) [[unlikely]] {
      const double price = new_price > 0.0 ? new_price : p[a.index()];
      events.push_back(
          {r, protocols_[r], static_cast<band>(b), to, health_of(before), hf, a, price});
      set_band(r, to);
      ++stats_.crossings;
    }
  }
}

void book::scan_all(asset_id cause, double price, std::vector<crossing>* events) {
  // Recompute in blocks that stay in L1 (128 rows measured a few percent faster than
  // 512: the band pass interrupts the term stream for less time). Rows whose band
  // certainly stays (a cheap division-free test) take their fresh cell at once; the rest
  // are judged exactly.
  constexpr std::size_t block = 128;
  health_cell fresh[block];
  row_t pending[block];
  const kernels::term_columns terms{term_off_, term_ncoll_, term_asset_, term_coef_};
  const kernels::band_filter filter(options_.bands);
  const std::size_t n = rows();
  for (std::size_t begin = 0; begin < n; begin += block) {
    const std::size_t end = std::min(n, begin + block);
    if (split_assets_ == 0) {
      kernels::recompute_cells(terms, prices_, begin, end, fresh);
    } else {
      // Oracles apart: each row at its protocol's prices (rare; plain loop).
      for (std::size_t r = begin; r < end; ++r) {
        fresh[r - begin] = compute_cell(static_cast<row_t>(r), row_prices(static_cast<row_t>(r)));
      }
    }
    const std::size_t n_pending = kernels::settle_cells(fresh, bands_.data(), begin, end - begin,
                                                        filter, cells_.data(), pending);
    for (std::size_t i = 0; i < n_pending; ++i) {
      const row_t r = pending[i];
      const std::uint8_t was = bands_[r];
      const health_cell before = cells_[r];
      cells_[r] = fresh[r - begin];
      const double hf = health_of(cells_[r]);
      const band to = classifier_.next(static_cast<band>(was), hf);
      if (to != static_cast<band>(was)) {
        if (events != nullptr) {
          events->push_back(
              {r, protocols_[r], static_cast<band>(was), to, health_of(before), hf, cause, price});
        }
        set_band(r, to);
        ++stats_.crossings;
      }
    }
  }
  reset_anchors();
}

void book::recompute_all(std::vector<crossing>* events) {
  scan_all(asset_id{}, 0.0, events);
  if (options_.realizable) {
    new_rows_.clear();
    for (row_t r = 0; r < rows(); ++r) new_rows_.push_back(r);
    refresh_realizable({}, 0, nullptr, new_rows_, nullptr);
  }
}

void book::reset_anchors() {
  std::fill(anchor_count_.begin(), anchor_count_.end(), 0u);
  for (std::size_t a = 0; a < prices_.size(); ++a) reset_asset_anchor(a);
}

std::optional<row_t> book::find(std::string_view id) const {
  const auto it = row_by_id_.find(key(id));
  if (it == row_by_id_.end()) return std::nullopt;
  return it->second;
}

std::optional<double> book::health(std::string_view id) const {
  const auto r = find(id);
  if (!r) return std::nullopt;
  return health_at(*r);
}

std::vector<at_risk_entry> book::below(double max_hf, std::size_t limit,
                                       std::optional<protocol_id> protocol,
                                       std::optional<asset_id> asset) const {
  std::vector<at_risk_entry> out;
  const auto consider = [&](row_t r) {
    if (!live(r)) return;
    if (protocol && protocols_[r] != *protocol) return;
    const double hf = health_at(r);
    if (hf < max_hf) out.push_back({r, hf});
  };
  if (asset) {
    const auto seg = exposure(*asset);
    for (std::size_t i = 0; i < seg.size(); ++i) {
      if (i > 0 && seg[i].row == seg[i - 1].row) continue;
      consider(seg[i].row);
    }
  } else {
    for (row_t r = 0; r < rows(); ++r) consider(r);
  }
  const auto by_hf = [](const at_risk_entry& x, const at_risk_entry& y) {
    return x.hf < y.hf || (x.hf == y.hf && x.row < y.row);
  };
  if (limit < out.size()) {
    std::partial_sort(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(limit), out.end(),
                      by_hf);
    out.resize(limit);
  } else {
    std::sort(out.begin(), out.end(), by_hf);
  }
  return out;
}

std::vector<std::array<band_totals, band_count>> book::totals() const {
  std::vector<std::array<band_totals, band_count>> out(market_->protocol_count());
  for (row_t r = 0; r < rows(); ++r) {
    if (!live(r)) continue;
    band_totals& t = out[protocols_[r].index()][bands_[r]];
    ++t.positions;
    const auto prices = row_prices(r);
    for (std::uint32_t k = leg_off_[r]; k < leg_off_[r + 1]; ++k) {
      const double p = prices[leg_asset_[k].index()];
      t.collateral_usd += leg_coll_[k] * p;
      t.debt_usd += leg_debt_[k] * p;
    }
  }
  return out;
}

std::uint64_t book::digest() const {
  std::uint64_t h = 1469598103934665603ull;
  const auto mix = [&h](const void* data, std::size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < n; ++i) {
      h ^= p[i];
      h *= 1099511628211ull;
    }
  };
  const auto mix_string = [&](const std::string& s) {
    const std::uint64_t n = s.size();
    mix(&n, sizeof n);
    mix(s.data(), s.size());
  };
  mix(prices_.data(), prices_.size() * sizeof(double));
  if (split_assets_ > 0) mix(oracle_.data(), oracle_.size() * sizeof(double));
  for (row_t r = 0; r < rows(); ++r) {
    if (!live(r)) continue;
    mix_string(id_at(r));
    mix_string(owner_at(r));
    mix(&protocols_[r].value, sizeof protocols_[r].value);
    mix(&bands_[r], 1);
    mix(&cells_[r], sizeof(health_cell));
    for (std::uint32_t k = leg_off_[r]; k < leg_off_[r + 1]; ++k) {
      mix(&leg_asset_[k].value, sizeof(std::uint16_t));
      mix(&leg_coll_[k], sizeof(double));
      mix(&leg_debt_[k], sizeof(double));
    }
  }
  return h;
}

void book::snapshot_to(book& into) {
  assert(into.market_ == market_);
  // Park the members the copy leaves out, copy-assign (vectors keep into's capacity),
  // and put them back (also if the copy throws).
  std::vector<std::string> ids;
  std::vector<std::uint32_t> owners;
  std::vector<std::string> owner_names{std::string()};
  absl::flat_hash_map<std::string, std::uint32_t> owner_index{{std::string(), 0u}};
  absl::flat_hash_map<std::string, row_t> row_by_id;
  std::vector<cert_ring> certs;
  const auto swap_all = [&] {
    std::swap(ids, ids_);
    std::swap(owners, owners_);
    std::swap(owner_names, owner_names_);
    std::swap(owner_index, owner_index_);
    std::swap(row_by_id, row_by_id_);
    std::swap(certs, certs_);
  };
  swap_all();
  struct restore {
    const decltype(swap_all)& f;
    ~restore() { f(); }
  } guard{swap_all};
  into = *this;
}

bool book::needs_compaction() const {
  const std::size_t dead_rows = rows() - live_rows_;
  if (dead_rows * 3 > rows()) return true;
  return (exposure_holes_ + dead_exposure_) * 3 > exposure_.size();
}

void book::compact() {
  const std::size_t n_assets = market_->asset_count();
  std::vector<std::string> ids;
  std::vector<std::uint32_t> owners;
  std::vector<protocol_id> protocols;
  std::vector<std::uint8_t> bands;
  std::vector<health_cell> cells;
  std::vector<std::uint8_t> status;
  std::vector<std::uint32_t> leg_off{0};
  std::vector<std::uint32_t> term_off{0};
  std::vector<std::uint16_t> term_ncoll;
  std::vector<asset_id> leg_asset;
  std::vector<double> leg_coll;
  std::vector<double> leg_debt;
  std::vector<std::uint16_t> term_asset;
  std::vector<double> term_coef;
  for (auto* v : {&leg_off, &term_off}) v->reserve(live_rows_ + 1);
  cells.reserve(live_rows_);

  std::vector<std::uint32_t> counts(n_assets, 0);
  for (row_t r = 0; r < rows(); ++r) {
    if (!live(r)) continue;
    const auto nr = static_cast<row_t>(ids.size());
    row_by_id_[ids_[r]] = nr;
    ids.push_back(std::move(ids_[r]));
    owners.push_back(owners_[r]);
    protocols.push_back(protocols_[r]);
    bands.push_back(bands_[r]);
    cells.push_back(cells_[r]);
    status.push_back(status_[r]);
    for (std::uint32_t k = leg_off_[r]; k < leg_off_[r + 1]; ++k) {
      leg_asset.push_back(leg_asset_[k]);
      leg_coll.push_back(leg_coll_[k]);
      leg_debt.push_back(leg_debt_[k]);
      if (leg_coll_[k] > 0.0 || leg_debt_[k] > 0.0) ++counts[leg_asset_[k].index()];
    }
    leg_off.push_back(static_cast<std::uint32_t>(leg_asset.size()));
    for (std::uint32_t k = term_off_[r]; k < term_off_[r + 1]; ++k) {
      term_asset.push_back(term_asset_[k]);
      term_coef.push_back(term_coef_[k]);
    }
    term_ncoll.push_back(term_ncoll_[r]);
    term_off.push_back(static_cast<std::uint32_t>(term_asset.size()));
  }

  std::vector<std::uint32_t> seg_begin(n_assets);
  std::vector<std::uint32_t> seg_cap(n_assets);
  std::size_t total = 0;
  for (std::size_t a = 0; a < n_assets; ++a) {
    seg_begin[a] = static_cast<std::uint32_t>(total);
    seg_cap[a] = counts[a] + counts[a] / 4 + 4;
    total += seg_cap[a];
  }
  std::vector<exposure_entry> exposure(total);
  std::vector<std::uint32_t> seg_size(n_assets, 0);
  for (row_t r = 0; r < ids.size(); ++r) {
    for (std::uint32_t k = leg_off[r]; k < leg_off[r + 1]; ++k) {
      if (!(leg_coll[k] > 0.0 || leg_debt[k] > 0.0)) continue;
      const std::size_t a = leg_asset[k].index();
      const double threshold = market_->get_protocol(protocols[r]).threshold(leg_asset[k]);
      const double wc = leg_coll[k] > 0.0 ? leg_coll[k] * threshold : 0.0;
      exposure[seg_begin[a] + seg_size[a]++] = {r, protocols[r].value, wc, leg_debt[k]};
    }
  }

  ids_ = std::move(ids);
  owners_ = std::move(owners);
  protocols_ = std::move(protocols);
  bands_ = std::move(bands);
  cells_ = std::move(cells);
  status_ = std::move(status);
  queue_pos_.assign(ids_.size(), 0);
  flag_pos_.assign(ids_.size(), 0);
  flagged_.clear();
  for (row_t r = 0; r < ids_.size(); ++r) {
    if ((status_[r] & (status_pending | status_insolvent)) == 0) continue;
    join(flagged_, flag_pos_, r);
  }
  touch_stamp_.assign(ids_.size(), 0);
  judge_stamp_.assign(ids_.size(), 0);
  stamp_ = 0;
  queue_.clear();
  for (row_t r = 0; r < ids_.size(); ++r) {
    if ((status_[r] & status_queued) == 0) continue;
    join(queue_, queue_pos_, r);
  }
  leg_off_ = std::move(leg_off);
  term_off_ = std::move(term_off);
  term_ncoll_ = std::move(term_ncoll);
  leg_asset_ = std::move(leg_asset);
  leg_coll_ = std::move(leg_coll);
  leg_debt_ = std::move(leg_debt);
  term_asset_ = std::move(term_asset);
  term_coef_ = std::move(term_coef);
  exposure_ = std::move(exposure);
  seg_begin_ = std::move(seg_begin);
  seg_size_ = std::move(seg_size);
  seg_cap_ = std::move(seg_cap);
  exposure_holes_ = 0;
  dead_exposure_ = 0;
  // Rows were renumbered: every certificate is void; all rows are valued again (rare).
  version_.assign(ids_.size(), 0);
  reset_certificates();
  if (options_.realizable) {
    new_rows_.clear();
    for (row_t r = 0; r < ids_.size(); ++r) new_rows_.push_back(r);
    refresh_realizable({}, 0, nullptr, new_rows_, nullptr);
  }
}

}  // namespace cascade

namespace cascade {

// --- realizable value (book.hpp, realizable_cell) ------------------------------------
//
// Nothing is kept per row but the statuses: a row's values are summed from its legs
// when needed (value_of; realizable_at for queries and events). A batch values
// exactly the rows whose statuses may change, and no others:
//  - the queued rows (few: liquidatable or pending; they also make Q), the flagged ones
//    (pending or insolvent), the rows whose band changed, new rows;
//  - every other row with debt carries a certificate: at its last valuation both its
//    HF at market prices and rho = realizable collateral / debt were >= 1, by a margin
//    x = min(log HF, log rho) (less 1e-9). Each asset a keeps `drift_[a]`, the sum over
//    batches of a bound on how far the log of any one leg's value in a (its market
//    value, its realizable value R, its debt) can have moved in that batch. A row's
//    collateral, realizable collateral and debt are sums of legs, so each moves (in
//    log) by no more than the largest drift of the assets it holds since its
//    valuation, and HF and rho by no more than twice that. The row is filed under each
//    asset it holds with an allowance x / 2; when an asset's drift uses up the
//    allowance, the row is valued again. A certified row can therefore neither join
//    the queue nor become pending or insolvent unseen, and everything it reports is
//    summed afresh: no drift, no anchoring. A tick on an asset revalues only some of its
//    own holders: those whose allowance the move used up.
//
// The bound on one batch's move of asset a: the price ratio r = p' / p for market and
// debt values, and |log r| for an asset without liquidity (R = c p). Sold into a
// constant-product pool (a v1 pool, or a derived asset's ratio pool whose proceeds are
// valued at the base's price u) behind Q units, c units fetch
// R = m c / ((b + Q)(b + Q + c)), m = k u (k = base x quote, b = base), so
// R' / R = (m' / m) (t / t') (t + c) / (t' + c) with t = b + Q, which for any c lies
// between its limits at c = 0 and c -> infinity. Assets whose liquidity has no closed
// form (several venues, depth curves) keep no drift: when one of them moves (price, Q
// or depth) every row holding it is valued exactly instead.
//
// Rounding: moves carry bound_slack and drift_slack; the allowance is capped. Known
// limit: a pool's proceeds are model v1's `after - before`, whose relative rounding
// error for a dust leg c far behind the queue (~ Q (b + Q) / (c b) x 2.2e-16: 2e-8 for
// 1e-5 ETH behind 300) exceeds cert_margin, so a dust row within ~1e-8 of rho = 1 can
// keep its status until some asset's drift or its band moves it.
//
// Q_a depends only on market values (membership and the seized fraction S / C),
// never on R, but the bound on R needs the new Q. So a batch first expires the
// certificates against the price moves alone (a row whose HF may have crossed 1 is
// valued and its membership settled), sums Q, and then expires the rest against the
// full bound; the rows of the second step keep their membership, their HF being
// certified >= 1.

namespace {

constexpr double cert_margin = 1e-9;  // in log units
constexpr double bound_slack = 1e-12;  // added to every move, for rounding
// Also added to every move, relative to the running drift: an add's rounding grows with
// the sum (half an ulp: 1.1e-16 of it), which outgrows bound_slack past a drift of 8192
// (days of uptime under P5's load).
constexpr double drift_slack = 4e-16;
constexpr double max_allowance = 8.0;  // in log units
// A batch's move past max_move (or not finite: a ratio of prices that overflows, such as
// 1e-300 to 1e308) voids every certificate on the asset instead, and a drift past
// max_drift starts again from 0: keys stay well inside the ring's int64 bucket indices.
constexpr double max_move = 64.0;
constexpr double max_drift = 1e12;

}  // namespace

void book::cert_ring::reset(double threshold) {
  buckets_ = {};  // memory too (push allocates again)
  top_ = std::numeric_limits<std::int64_t>::min();
  floor_ = index_of(threshold) - static_cast<std::int64_t>(slots) + 8;
  size_ = 0;
}

std::int64_t book::cert_ring::index_of(double key) {
  return static_cast<std::int64_t>(std::floor(key / width));
}

void book::cert_ring::push(double key, row_t row, std::uint32_t version) {
  if (buckets_.empty()) buckets_.resize(slots);
  // Keys far below the threshold are raised (the row is valued sooner than needed).
  std::int64_t i = index_of(key);
  if (i < floor_) {
    i = floor_;
    key = static_cast<double>(i) * width;
  }
  buckets_[static_cast<std::size_t>(i & (slots - 1))].push_back({key, row, version});
  top_ = std::max(top_, i);
  ++size_;
}

// An emptied bucket gives its memory back unless it is small. Kept, the capacities of
// the 1024 slots would each settle at the most that slot ever held (most entries sit in
// the floor bucket, which walks round the ring as the threshold falls): 47 MB growing
// to 116 MB in four minutes of the soak's load with 0.6M live entries (9 MB).
void book::cert_ring::release(std::vector<cert_entry>& bucket) {
  if (bucket.capacity() > keep_capacity) {
    std::vector<cert_entry>().swap(bucket);
  } else {
    bucket.clear();
  }
}

template <class F>
void book::cert_ring::expire(double threshold, F&& f) {
  const std::int64_t t = index_of(threshold);
  if (size_ > 0) {
    // Every bucket above t has expired whole; bucket t in part.
    const std::int64_t lowest = std::max(t, top_ - static_cast<std::int64_t>(slots) + 1);
    for (std::int64_t i = top_; i >= lowest; --i) {
      auto& bucket = buckets_[static_cast<std::size_t>(i & (slots - 1))];
      if (i > t || top_ - t >= static_cast<std::int64_t>(slots)) {
        for (const cert_entry& e : bucket) f(e.row, e.version);
        size_ -= bucket.size();
        release(bucket);
        continue;
      }
      std::size_t kept = 0;
      for (const cert_entry& e : bucket) {
        if (e.key >= threshold) {
          f(e.row, e.version);
        } else {
          bucket[kept++] = e;
        }
      }
      size_ -= bucket.size() - kept;
      bucket.resize(kept);
    }
  }
  top_ = std::min(top_, t);
  // Thresholds only fall, and every entry left is at or below t: from here down the
  // ring holds slots - 8 buckets without two sharing a slot (pushes reach t + 1).
  floor_ = t - static_cast<std::int64_t>(slots) + 8;
}

template <class F>
void book::cert_ring::keep_if(F&& keep) {
  size_ = 0;
  for (auto& bucket : buckets_) {
    std::size_t kept = 0;
    for (const cert_entry& e : bucket) {
      if (keep(e.row, e.version)) bucket[kept++] = e;
    }
    bucket.resize(kept);
    size_ += kept;
  }
}

void book::rebuild_liquidity(std::size_t a) {
  const market& m = *market_;
  const asset_spec& spec = m.asset(asset_id::from_index(a));
  if (spec.derived && spec.derived->ratio_pool) {
    const std::size_t base = m.base_of(asset_id::from_index(a))->index();
    liquidity l = liquidity::from_pool(*spec.derived->ratio_pool);
    l.move_to(prices_[a] / prices_[base]);
    liq_[a] = l;
    liq_ratio_[a] = 1;
    return;
  }
  liq_[a] = liquidity::of_asset(spec, prices_[a]);
  liq_ratio_[a] = 0;
}

void book::rebuild_liquidity_price(std::size_t a) {
  // The asset's liquidity re-centres at its new market price, and so does the ratio
  // liquidity of every asset derived from it.
  const market& m = *market_;
  const auto recentre = [&](std::size_t x) {
    if (!liq_[x]) return;
    if (liq_ratio_[x] != 0) {
      liq_[x]->move_to(prices_[x] / prices_[m.base_of(asset_id::from_index(x))->index()]);
    } else {
      liq_[x]->move_to(prices_[x]);
    }
  };
  recentre(a);
  for (const auto& [d, base] : derived_) {
    if (base.index() == a) recentre(d.index());
  }
}

void book::observe_liquidity(std::span<const liquidity_observation> obs,
                             std::vector<status_change>* status) {
  rescaled_.clear();
  for (const liquidity_observation& o : obs) {
    if (!o.asset.valid() || o.asset.index() >= liq_.size()) continue;
    if (!std::isfinite(o.t) || !(o.annualized_vol >= 0.0) || std::isinf(o.annualized_vol)) continue;
    auto& l = liq_[o.asset.index()];
    if (!l || !l->withdrawal().active()) continue;
    const double before = l->depth_scale();
    l->observe(prices_[o.asset.index()], o.t, o.annualized_vol);
    if (l->depth_scale() != before &&
        std::find(rescaled_.begin(), rescaled_.end(), o.asset) == rescaled_.end()) {
      rescaled_.push_back(o.asset);
    }
  }
  if (options_.realizable && !rescaled_.empty()) {
    refresh_realizable({}, 0, nullptr, {}, status);
  }
}

double book::leg_value(std::size_t a, double ahead, double c) const {
  if (!liq_[a]) return c * prices_[a];
  const double got = liq_[a]->proceeds(ahead, c);
  return liq_ratio_[a] != 0 ? got * prices_[market_->base_of(asset_id::from_index(a))->index()]
                            : got;
}

book::market_value book::value_at_market(row_t r) const {
  const std::size_t n = prices_.size();
  const std::size_t p = protocols_[r].index();
  market_value out;
  for (std::uint32_t k = leg_off_[r]; k < leg_off_[r + 1]; ++k) {
    const std::size_t a = leg_asset_[k].index();
    const double m = prices_[a];
    if (leg_coll_[k] > 0.0) {
      const double v = leg_coll_[k] * m;
      out.coll += v;
      out.num += v * lt_[p * n + a];
      out.bonus += v * bonus_[p * n + a];
    }
    if (leg_debt_[k] > 0.0) out.debt += leg_debt_[k] * m;
  }
  return out;
}

double book::seize_at_market(row_t r, const market_value& mv) const {
  // Model v1 step b at market prices: what the liquidation will take.
  const double hf = mv.debt > 0.0 ? mv.num / mv.debt : std::numeric_limits<double>::infinity();
  const protocol& pr = market_->get_protocol(protocols_[r]);
  const double cf = hf >= pr.full_liquidation_hf ? pr.close_factor : 1.0;
  const double b = mv.coll > 0.0 ? mv.bonus / mv.coll : 0.0;
  return std::min(mv.coll, cf * mv.debt * (1.0 + b));
}

book::row_value book::value_of(row_t r) const {
  const std::size_t n = prices_.size();
  const std::size_t p = protocols_[r].index();
  row_value v;
  v.mkt = value_at_market(r);
  const bool queued = (status_[r] & status_queued) != 0;
  if (queued) v.seize = seize_at_market(r, v.mkt);
  // A queued row sells behind the queue less its own seizure.
  const double own = queued && v.mkt.coll > 0.0 ? v.seize / v.mkt.coll : 0.0;
  for (std::uint32_t k = leg_off_[r]; k < leg_off_[r + 1]; ++k) {
    const double c = leg_coll_[k];
    if (!(c > 0.0)) continue;
    const std::size_t a = leg_asset_[k].index();
    const double got = leg_value(a, std::max(0.0, queue_units_[a] - c * own), c);
    v.real_coll += got;
    v.real_num += got * lt_[p * n + a];
  }
  return v;
}

realizable_cell book::cell_of(const row_value& v) {
  realizable_cell c;
  c.collateral_market_usd = v.mkt.coll;
  c.collateral_real_usd = v.real_coll;
  c.debt_usd = v.mkt.debt;
  if (v.mkt.debt > 0.0) {
    c.hf_market = v.mkt.num / v.mkt.debt;
    c.hf_real = v.real_num / v.mkt.debt;
  }
  c.seize_usd = v.seize;
  return c;
}

realizable_cell book::realizable_at(row_t r) const {
  if (!options_.realizable || !live(r)) return {};
  return cell_of(value_of(r));
}

void book::set_queued(row_t r, bool queued) {
  const bool was = (status_[r] & status_queued) != 0;
  if (queued && !was) {
    join(queue_, queue_pos_, r);
    status_[r] |= status_queued;
  } else if (!queued && was) {
    leave_queue(r);
  }
}

void book::leave_queue(row_t r) {
  leave(queue_, queue_pos_, r);
  status_[r] &= static_cast<std::uint8_t>(~status_queued);
}

void book::leave_flagged(row_t r) { leave(flagged_, flag_pos_, r); }

void book::judge_status(row_t r, const row_value& v) {
  const bool oracle_liquidatable = static_cast<band>(bands_[r]) == band::liquidatable;
  std::uint8_t status = status_[r] & status_queued;
  if (v.mkt.debt > 0.0 && !oracle_liquidatable) {
    if (v.mkt.num < v.mkt.debt) status |= status_pending;
    if (v.real_coll < v.mkt.debt) status |= status_insolvent;
  }
  const std::uint8_t was = status_[r];
  if (status == was) return;
  // The batch reports each row's net change once, at its end (refresh_realizable).
  if (judge_stamp_[r] != stamp_) {
    judge_stamp_[r] = stamp_;
    judged_.push_back({r, was});
  }
  const bool flagged_before = (was & (status_pending | status_insolvent)) != 0;
  const bool flagged_now = (status & (status_pending | status_insolvent)) != 0;
  if (flagged_now && !flagged_before) {
    join(flagged_, flag_pos_, r);
  } else if (!flagged_now && flagged_before) {
    leave_flagged(r);
  }
  status_[r] = status;
}

void book::clear_status(row_t r) {
  if ((status_[r] & status_queued) != 0) leave_queue(r);
  if ((status_[r] & (status_pending | status_insolvent)) != 0) leave_flagged(r);
  status_[r] = 0;
  ++version_[r];  // its certificate, if any, is void
}

void book::sum_queue() {
  std::fill(queue_scratch_.begin(), queue_scratch_.end(), 0.0);
  for (const row_t r : queue_) {
    const market_value mv = value_at_market(r);
    if (!(mv.coll > 0.0)) continue;
    const double frac = seize_at_market(r, mv) / mv.coll;
    for (std::uint32_t k = leg_off_[r]; k < leg_off_[r + 1]; ++k) {
      if (leg_coll_[k] > 0.0) queue_scratch_[leg_asset_[k].index()] += leg_coll_[k] * frac;
    }
  }
}

void book::certify(row_t r, const row_value& v) {
  ++version_[r];
  // Queued and flagged rows are valued every batch; rows without debt have no status.
  if ((status_[r] & (status_queued | status_pending | status_insolvent)) != 0) return;
  if (!(v.mkt.debt > 0.0)) return;
  const double margin =
      std::min(std::log(v.mkt.num / v.mkt.debt), std::log(v.real_coll / v.mkt.debt));
  // Capped: a vanishing debt gives an infinite margin, and a key past the ring's span
  // of 4 log units is raised to its floor anyway.
  const double allowance = std::min(std::max(0.0, margin - cert_margin) / 2.0, max_allowance);
  for (std::uint32_t k = leg_off_[r]; k < leg_off_[r + 1]; ++k) {
    const std::size_t a = leg_asset_[k].index();
    if (!(leg_coll_[k] > 0.0 || leg_debt_[k] > 0.0) || bounded_[a] == 0) continue;
    certs_[a].push(-(drift_[a] + allowance), r, version_[r]);
  }
}

void book::refresh_realizable(std::span<const asset_id> moved, std::size_t first_crossing,
                              const std::vector<crossing>* crossings,
                              std::span<const row_t> extra, std::vector<status_change>* out,
                              std::span<const std::pair<row_t, std::uint8_t>> replaced) {
  if (++stamp_ == 0) {
    std::fill(touch_stamp_.begin(), touch_stamp_.end(), 0u);
    std::fill(judge_stamp_.begin(), judge_stamp_.end(), 0u);
    stamp_ = 1;
  }
  touched_.clear();
  judged_.clear();
  for (const auto& [r, was] : replaced) {
    judge_stamp_[r] = stamp_;
    judged_.push_back({r, was});
  }
  for (const asset_id a : moved) rebuild_liquidity_price(a.index());
  const std::size_t n = prices_.size();
  const auto expired = [this](row_t r, std::uint32_t version) {
    if (bands_[r] != dead && version_[r] == version) {
      touch(r);
      ++stats_.expired;
    }
  };
  const auto touch_holders = [this](std::size_t a, bool collateral_only) {
    for (const exposure_entry& e : exposure(asset_id::from_index(a))) {
      if ((!collateral_only || e.weighted_collateral > 0.0) && bands_[e.row] != dead) touch(e.row);
    }
  };
  // 1. Rows whose membership may change: valued at market prices, membership settled.
  if (crossings != nullptr) {
    for (std::size_t i = first_crossing; i < crossings->size(); ++i) touch((*crossings)[i].row);
  }
  for (const row_t r : extra) touch(r);
  for (const row_t r : queue_) touch(r);
  for (const row_t r : flagged_) touch(r);
  for (std::size_t a = 0; a < n; ++a) {
    if (prices_[a] == bound_price_[a]) continue;
    if (bounded_[a] == 0) {
      touch_holders(a, false);
      continue;
    }
    const double move = std::abs(std::log(prices_[a] / bound_price_[a])) + bound_slack +
                        drift_[a] * drift_slack;
    if (!(move <= max_move)) {
      touch_holders(a, false);  // valued exactly; step 2 voids the rest
      continue;
    }
    certs_[a].expire(-(drift_[a] + move), expired);
  }
  for (const row_t r : touched_) {
    if (bands_[r] == dead) continue;
    const market_value mv = value_at_market(r);
    set_queued(r, mv.debt > 0.0 && (static_cast<band>(bands_[r]) == band::liquidatable ||
                                    mv.num < mv.debt));
  }
  // 2. The queue's units; then each asset's full move, realizable value included.
  sum_queue();
  for (std::size_t a = 0; a < n; ++a) {
    const double r = prices_[a] / bound_price_[a];
    const double q = queue_scratch_[a];
    const std::optional<liquidity>& l = liq_[a];
    double move = r != 1.0 ? std::abs(std::log(r)) : 0.0;
    if (l && l->is_v1_pool()) {
      const pool pl = l->v1_pool();
      const double unit =
          liq_ratio_[a] != 0 ? prices_[market_->base_of(asset_id::from_index(a))->index()] : 1.0;
      const double m = pl.base * pl.quote * unit;
      if (m != bound_m_[a] || pl.base != bound_base_[a] || q != queue_units_[a]) {
        const double t0 = bound_base_[a] + queue_units_[a];
        const double t1 = pl.base + q;
        const double f = m / bound_m_[a] * (t0 / t1);
        const double lo = std::abs(std::log(f));
        const double hi = std::abs(std::log(f * (t0 / t1)));
        // NaN (an overflowed m, before or now) would drop out of a max: count it infinite.
        move = std::isnan(lo) || std::isnan(hi) ? std::numeric_limits<double>::infinity()
                                                : std::max({move, lo, hi});
        bound_m_[a] = m;
        bound_base_[a] = pl.base;
      }
    } else if (l) {
      // Venues and depth curves: no bound; the collateral holders are valued exactly
      // (all holders were, above, if the price moved).
      if (q != queue_units_[a] || l->depth_scale() != bound_scale_[a]) touch_holders(a, true);
      bound_scale_[a] = l->depth_scale();
      continue;
    }
    if (move == 0.0) continue;
    if (!(move <= max_move) || !(drift_[a] + move <= max_drift)) {
      // Every holder is valued (and certified again below, from a drift of 0).
      touch_holders(a, false);
      certs_[a].reset(0.0);
      drift_[a] = 0.0;
      continue;
    }
    drift_[a] += move + bound_slack + drift_[a] * drift_slack;
    // 3. Certificates this asset's full move has used up (their HF is still certified
    // >= 1, so their membership stands).
    certs_[a].expire(-drift_[a], expired);
  }
  std::copy(queue_scratch_.begin(), queue_scratch_.end(), queue_units_.begin());
  std::copy(prices_.begin(), prices_.end(), bound_price_.begin());
  // 4. Every row valued this batch: statuses, and a new certificate.
  for (const row_t r : touched_) {
    if (bands_[r] == dead) continue;
    const row_value v = value_of(r);
    judge_status(r, v);
    certify(r, v);
    ++stats_.revalued;
  }
  // 5. Each row's net change of status over the batch.
  if (out != nullptr) {
    for (const auto& [r, was] : judged_) {
      if (bands_[r] == dead) continue;
      const std::uint8_t now = status_[r];
      if (((was ^ now) & (status_pending | status_insolvent)) == 0) continue;
      const realizable_cell v = realizable_at(r);
      const double hf = health_at(r);
      for (const auto& [bit, kind] : {std::pair{status_pending, status_kind::pending},
                                      std::pair{status_insolvent, status_kind::insolvent}}) {
        if (((was ^ now) & bit) != 0) {
          out->push_back({r, protocols_[r], kind, (now & bit) != 0, hf, v});
        }
      }
    }
  }
  judged_.clear();
  // 6. Per-protocol totals over the flagged rows (few), summed afresh.
  for (hidden_totals& h : hidden_) h = {};
  for (const row_t r : flagged_) {
    hidden_totals& h = hidden_[protocols_[r].index()];
    const realizable_cell v = realizable_at(r);
    if ((status_[r] & status_pending) != 0) {
      ++h.pending;
      h.pending_debt_usd += v.debt_usd;
      h.pending_seize_usd += v.seize_usd;
    }
    if ((status_[r] & status_insolvent) != 0) {
      ++h.insolvent;
      h.insolvent_debt_usd += v.debt_usd;
      h.insolvent_shortfall_usd += v.debt_usd - v.collateral_real_usd;
    }
  }
  // Entries of rows valued again since are stale; where they pile up (an asset that
  // seldom moves, whose holders are valued for others' moves), sweep them out.
  for (std::size_t a = 0; a < n; ++a) {
    if (certs_[a].size() <= 2 * std::size_t{seg_size_[a]} + 1024) continue;
    certs_[a].keep_if(
        [this](row_t r, std::uint32_t version) { return bands_[r] != dead && version_[r] == version; });
  }
}

void book::reset_certificates() {
  for (std::size_t a = 0; a < certs_.size(); ++a) certs_[a].reset(-drift_[a]);
}

}  // namespace cascade
