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
  for (std::size_t a = 0; a < n; ++a) {
    const auto id = asset_id::from_index(a);
    if (const auto base = m.base_of(id)) derived_.emplace_back(id, *base);
  }
}

absl::Status book::upsert(std::span<const position_input> batch, std::vector<crossing>* events) {
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
  for (const position_input& in : batch) {
    band prev = band::healthy;
    double hf_before = quiet_nan;
    // One hash per position: find or insert the id, then point it at the new row.
    const row_t r = static_cast<row_t>(ids_.size());
    const auto [slot, inserted] = row_by_id_.try_emplace(in.id, r);
    if (!inserted) {
      prev = band_at(slot->second);
      hf_before = health_at(slot->second);
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
  return absl::OkStatus();
}

absl::Status book::remove(std::span<const std::string> ids) {
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
    exposure_[seg_begin_[a] + seg_size_[a]++] = {r, 0, wc, l.debt};
  }

  cells_.push_back(compute_cell(r, prices_));
  bands_.push_back(static_cast<std::uint8_t>(band::healthy));
  ++band_counts_[in.protocol.index()][0];
  ++live_rows_;
}

void book::kill_row(row_t r) {
  assert(live(r));
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

absl::Status book::apply_ticks(std::span<const tick> ticks, std::vector<crossing>& events) {
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
  }
  coalesced_.clear();
  for (const tick& t : ticks) {
    std::int32_t& slot = tick_slot_[t.asset.index()];
    if (slot < 0) {
      slot = static_cast<std::int32_t>(coalesced_.size());
      coalesced_.push_back(t);
    } else {
      coalesced_[static_cast<std::size_t>(slot)].price = t.price;
    }
  }
  // A derived asset is priced ratio x base (market.hpp): a batch that moves the base
  // and does not price the derived asset itself moves it at the ratio it had.
  for (const auto& [d, base] : derived_) {
    const std::int32_t b = tick_slot_[base.index()];
    if (b < 0 || tick_slot_[d.index()] >= 0) continue;
    const double ratio = prices_[d.index()] / prices_[base.index()];
    tick_slot_[d.index()] = static_cast<std::int32_t>(coalesced_.size());
    coalesced_.push_back({d, coalesced_[static_cast<std::size_t>(b)].price * ratio});
  }
  for (const tick& t : coalesced_) tick_slot_[t.asset.index()] = -1;

  for (const tick& t : coalesced_) {
    const std::size_t a = t.asset.index();
    const double old_price = prices_[a];
    if (t.price == old_price) continue;
    ++stats_.ticks;
    const std::size_t holders = seg_size_[a];
    if (static_cast<double>(holders) > options_.scan_fraction * static_cast<double>(live_rows_)) {
      prices_[a] = t.price;
      scan_all(t.asset, t.price, &events);
      ++stats_.scans;
      stats_.positions_touched += live_rows_;
      continue;
    }
    ++stats_.walks;
    stats_.positions_touched += holders;
    const double lo = std::min(anchor_lo_[a], t.price);
    const double hi = std::max(anchor_hi_[a], t.price);
    if (++anchor_count_[a] > options_.anchor_updates || hi > options_.anchor_range * lo) {
      prices_[a] = t.price;
      walk_exact(t.asset, t.price, events);
      anchor_count_[a] = 0;
      anchor_lo_[a] = anchor_hi_[a] = t.price;
      ++stats_.anchors;
    } else {
      anchor_lo_[a] = lo;
      anchor_hi_[a] = hi;
      walk_delta(t.asset, old_price, t.price, events);
      prices_[a] = t.price;
    }
  }
  return absl::OkStatus();
}

void book::walk_delta(asset_id a, double old_price, double new_price,
                      std::vector<crossing>& events) {
  const double dp = new_price - old_price;
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
        events.push_back({r, protocols_[r], b, to, health_of(before[j]), hf, a, new_price});
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
    cells_[r] = compute_cell(r, prices_);
    const double hf = health_of(cells_[r]);
    const band to = classifier_.next(static_cast<band>(b), hf);
    if (to != static_cast<band>(b)) [[unlikely]] {
      events.push_back(
          {r, protocols_[r], static_cast<band>(b), to, health_of(before), hf, a, new_price});
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
  const std::size_t n = ids_.size();
  for (std::size_t begin = 0; begin < n; begin += block) {
    const std::size_t end = std::min(n, begin + block);
    kernels::recompute_cells(terms, prices_, begin, end, fresh);
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

void book::recompute_all(std::vector<crossing>* events) { scan_all(asset_id{}, 0.0, events); }

void book::reset_anchors() {
  std::fill(anchor_count_.begin(), anchor_count_.end(), 0u);
  anchor_lo_ = prices_;
  anchor_hi_ = prices_;
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
    for (std::uint32_t k = leg_off_[r]; k < leg_off_[r + 1]; ++k) {
      const double p = prices_[leg_asset_[k].index()];
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
  for (row_t r = 0; r < rows(); ++r) {
    if (!live(r)) continue;
    mix_string(ids_[r]);
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
      exposure[seg_begin[a] + seg_size[a]++] = {r, 0, wc, leg_debt[k]};
    }
  }

  ids_ = std::move(ids);
  owners_ = std::move(owners);
  protocols_ = std::move(protocols);
  bands_ = std::move(bands);
  cells_ = std::move(cells);
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
}

}  // namespace cascade
