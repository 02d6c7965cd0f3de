// The position book: every position's legs and health in struct-of-arrays form, kept
// current incrementally on every oracle price tick.
//
// Layout (one contiguous array per field):
//   per row      protocol, band, health cell {num, den}, offsets into legs and terms,
//                external id and owner (cold)
//   per leg      asset, collateral, debt                      (CSR by row, raw amounts)
//   per term     asset, coefficient                            (CSR by row, hot)
//                A row's collateral terms (collateral * liquidation threshold) come
//                first, then its debt terms (debt amount); so
//                HF = sum(coef * price over collateral terms) / sum(coef * price over
//                debt terms). 10 bytes per term is what a full recompute reads.
//   per asset    exposure segment: (row, threshold-weighted collateral, debt) for every
//                position holding the asset, sorted by row     (CSR with slack)
//
// Tick path. A tick on asset A changes num and den of A's holders by
// coef * (new - old price): it walks A's exposure segment (sequential) and updates the
// holders' cells (a sorted gather). When A's holders are more than `scan_fraction` of
// the book, the tick recomputes every row from its terms instead. DESIGN.md expected a
// full scan to win above ~30%; measured here (perf/RESULTS.md, 1M positions x 4 terms)
// the walk wins at every fraction for one asset (1.8 ms at 60% against 3.2 ms for a
// scan: the walk reads 24 bytes per holder, the scan 62 per row), so the default is
// 1.0 and the scan remains for configurations that ask for it and for recompute_all.
//
// Drift. Delta updates accumulate rounding error. Every term is >= 0, so num and den
// are sums of non-negative values and each update's error is at most 3u times the
// largest value the sum held since the position was last recomputed from its terms
// (u = 2^-53). Each asset counts its delta updates and its price range since its last
// anchoring; when either reaches a limit (`anchor_updates`, or max/min price >
// `anchor_range`), the tick on that asset recomputes all its holders from their terms
// instead of adding deltas. A position is therefore never more than anchor_updates
// deltas per asset away from an exact recompute, each of bounded size, so
// |error| <= 3 * anchor_updates * anchor_range * u * value per held asset:
// 3 * 256 * 4 * 1.1e-16 = 3.4e-13 relative with the defaults. Full recomputes and
// upserts are exact and reset the count.
//
// Changes. Upsert and removal are batched and all-or-nothing (the whole batch is
// validated before anything changes). A removed or replaced row becomes a tombstone:
// its band is `dead` and its exposure entries stay in place (walks skip them) until
// compaction. An upsert appends a new row; each asset segment that must grow is moved
// once per batch to the end of the exposure array with 25% slack, leaving a hole.
// compact() renumbers the live rows in order and rebuilds terms and exposure without
// holes; needs_compaction() says when tombstones or holes pass a third of the arrays.
// Compaction is never implicit, because it invalidates row numbers held in events.
//
// Threading: one thread owns a book (the engine thread); nothing here is thread-safe.
// Allocation: upsert, remove and compact allocate; ticks allocate only to append
// crossing events. No exceptions on bad input: results are absl::Status.
#pragma once

#include <absl/container/flat_hash_map.h>
#include <absl/status/status.h>

#include <array>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/bands.hpp"
#include "engine/ids.hpp"
#include "engine/market.hpp"

namespace cascade {

struct leg {
  asset_id asset;
  double collateral = 0.0;  // asset units
  double debt = 0.0;        // asset units
};

struct position_input {
  std::string id;
  protocol_id protocol;
  std::string owner;  // may be empty
  std::vector<leg> legs;
};

struct tick {
  asset_id asset;
  double price = 0.0;
};

// A band crossing. `row` is valid until the next compact(). `cause` is the asset whose
// tick moved the position (invalid for a crossing caused by an upsert; then `price`
// is 0).
struct crossing {
  row_t row = 0;
  protocol_id protocol;
  band from = band::healthy;
  band to = band::healthy;
  double hf_before = 0.0;
  double hf_after = 0.0;
  asset_id cause;
  double price = 0.0;
};

struct health_cell {
  double num = 0.0;  // sum of collateral * threshold * price
  double den = 0.0;  // sum of debt * price
};

[[nodiscard]] inline double health_of(const health_cell& c) {
  return c.den > 0.0 ? c.num / c.den : std::numeric_limits<double>::infinity();
}

struct book_options {
  band_config bands;
  // A tick walks the exposure index when its asset's holders are at most this
  // fraction of the book, and recomputes everything otherwise.
  double scan_fraction = 1.0;
  std::uint32_t anchor_updates = 256;
  double anchor_range = 4.0;
  // Largest number of legs one position may have.
  std::uint32_t max_legs = 1024;

  [[nodiscard]] absl::Status validate() const;
};

struct exposure_entry {
  row_t row;
  std::uint32_t reserved;
  double weighted_collateral;  // collateral * liquidation threshold (0 if none)
  double debt;
};

// Totals of live positions per protocol and band.
struct band_totals {
  std::uint64_t positions = 0;
  double collateral_usd = 0.0;  // sum of collateral * price
  double debt_usd = 0.0;        // sum of debt * price
};

struct at_risk_entry {
  row_t row;
  double hf;
};

struct tick_stats {
  std::uint64_t ticks = 0;    // coalesced ticks that moved a price
  std::uint64_t walks = 0;    // ticks applied by walking the exposure index
  std::uint64_t scans = 0;    // ticks applied by a full recompute
  std::uint64_t anchors = 0;  // walks that recomputed holders exactly
  std::uint64_t positions_touched = 0;
  std::uint64_t crossings = 0;
};

class book {
 public:
  static constexpr std::uint8_t dead = 0xFF;  // band column value of a tombstone

  // The market must outlive the book. Prices start at the market's reference prices.
  explicit book(const market& m, book_options options = {});

  // Inserts or replaces positions (by external id). All-or-nothing: refuses the whole
  // batch, naming the position and field, on an empty or repeated id, an unknown
  // protocol or asset, a non-finite or negative amount, a collateral leg on an asset
  // the protocol does not accept, or too many legs. On success appends a crossing to
  // `events` (if given) for every position whose band differs from its previous one
  // (healthy for a new position).
  [[nodiscard]] absl::Status upsert(std::span<const position_input> batch,
                                    std::vector<crossing>* events = nullptr);

  // Removes positions by external id. All-or-nothing: an unknown or repeated id refuses
  // the batch.
  [[nodiscard]] absl::Status remove(std::span<const std::string> ids);

  // Applies a batch of price ticks. All-or-nothing validation: an unknown asset or a
  // price that is not finite and > 0 refuses the batch. Ticks of one asset coalesce
  // (the last price wins); distinct assets apply in order of first appearance, each
  // producing the crossings it causes. A derived asset whose base the batch moves, and
  // which the batch does not price itself, follows at the ratio it had (applied after
  // the batch's own ticks, with itself as the crossings' cause).
  [[nodiscard]] absl::Status apply_ticks(std::span<const tick> ticks,
                                         std::vector<crossing>& events);

  // Recomputes every live position from its terms at the current prices (exact) and
  // reports crossings with no cause. Resets the drift anchors.
  void recompute_all(std::vector<crossing>* events = nullptr);

  // --- queries -------------------------------------------------------------------
  [[nodiscard]] std::optional<row_t> find(std::string_view id) const;
  [[nodiscard]] std::optional<double> health(std::string_view id) const;
  [[nodiscard]] double health_at(row_t r) const { return health_of(cells_[r]); }
  [[nodiscard]] bool live(row_t r) const { return bands_[r] != dead; }
  [[nodiscard]] band band_at(row_t r) const { return static_cast<band>(bands_[r]); }
  [[nodiscard]] protocol_id protocol_at(row_t r) const { return protocols_[r]; }
  [[nodiscard]] const std::string& id_at(row_t r) const { return ids_[r]; }
  [[nodiscard]] const std::string& owner_at(row_t r) const { return owner_names_[owners_[r]]; }
  [[nodiscard]] std::span<const asset_id> leg_assets(row_t r) const {
    return {leg_asset_.data() + leg_off_[r], leg_off_[r + 1] - leg_off_[r]};
  }
  [[nodiscard]] std::span<const double> leg_collateral(row_t r) const {
    return {leg_coll_.data() + leg_off_[r], leg_off_[r + 1] - leg_off_[r]};
  }
  [[nodiscard]] std::span<const double> leg_debt(row_t r) const {
    return {leg_debt_.data() + leg_off_[r], leg_off_[r + 1] - leg_off_[r]};
  }

  // Live positions with HF strictly below max_hf, ascending by HF (ties by row), at
  // most `limit`, optionally only one protocol's or only holders of one asset.
  [[nodiscard]] std::vector<at_risk_entry> below(double max_hf, std::size_t limit,
                                                 std::optional<protocol_id> protocol = {},
                                                 std::optional<asset_id> asset = {}) const;

  // Totals indexed [protocol][band], valued at the current prices.
  [[nodiscard]] std::vector<std::array<band_totals, band_count>> totals() const;
  // Live position counts indexed [protocol][band], maintained incrementally.
  [[nodiscard]] const std::vector<std::array<std::uint64_t, band_count>>& band_counts() const {
    return band_counts_;
  }

  [[nodiscard]] std::size_t size() const { return live_rows_; }
  [[nodiscard]] std::size_t rows() const { return ids_.size(); }
  [[nodiscard]] std::span<const double> prices() const { return prices_; }
  [[nodiscard]] const market& get_market() const { return *market_; }
  [[nodiscard]] const book_options& options() const { return options_; }
  [[nodiscard]] const tick_stats& stats() const { return stats_; }

  // Raw columns, read-only, for kernels that run beside the book (the cascade
  // simulator, benchmarks and tests).
  [[nodiscard]] std::span<const health_cell> cells() const { return cells_; }
  [[nodiscard]] std::span<const std::uint8_t> band_column() const { return bands_; }
  [[nodiscard]] std::span<const std::uint32_t> leg_offsets() const { return leg_off_; }
  [[nodiscard]] std::span<const asset_id> leg_asset_column() const { return leg_asset_; }
  [[nodiscard]] std::span<const double> leg_collateral_column() const { return leg_coll_; }
  [[nodiscard]] std::span<const double> leg_debt_column() const { return leg_debt_; }
  [[nodiscard]] std::span<const std::uint32_t> term_offsets() const { return term_off_; }
  [[nodiscard]] std::span<const std::uint16_t> collateral_term_counts() const {
    return term_ncoll_;
  }
  [[nodiscard]] std::span<const std::uint16_t> term_assets() const { return term_asset_; }
  [[nodiscard]] std::span<const double> term_coefficients() const { return term_coef_; }
  [[nodiscard]] std::span<const exposure_entry> exposure(asset_id a) const {
    return {exposure_.data() + seg_begin_[a.index()], seg_size_[a.index()]};
  }

  // Recomputes one row from its terms at the given prices (exact, term order).
  [[nodiscard]] health_cell compute_cell(row_t r, std::span<const double> prices) const;

  // A 64-bit FNV-1a digest of the observable state: prices, and each live position's
  // id, owner, protocol, legs, band and health cell, in row order. Stable across
  // processes; equal digests before and after a refused change prove it changed nothing.
  [[nodiscard]] std::uint64_t digest() const;

  [[nodiscard]] bool needs_compaction() const;
  // Drops tombstones and holes; renumbers live rows keeping their order.
  void compact();

 private:
  void append_row(const position_input& in, const protocol& p);
  void kill_row(row_t r);
  void reserve_exposure(std::span<const std::uint32_t> additions);
  void reserve_rows(std::size_t rows, std::size_t legs);
  void walk_delta(asset_id a, double old_price, double new_price, std::vector<crossing>& events);
  void walk_exact(asset_id a, double new_price, std::vector<crossing>& events);
  void scan_all(asset_id cause, double price, std::vector<crossing>* events);
  void reset_anchors();
  void set_band(row_t r, band to) {
    const auto p = protocols_[r].index();
    --band_counts_[p][bands_[r]];
    ++band_counts_[p][static_cast<std::size_t>(to)];
    bands_[r] = static_cast<std::uint8_t>(to);
  }

  const market* market_;
  book_options options_;
  band_classifier classifier_;
  std::vector<double> prices_;

  // Per row.
  std::vector<std::string> ids_;
  // Owners are interned: many positions share a wallet. Index 0 is "" (no owner).
  std::vector<std::uint32_t> owners_;
  std::vector<std::string> owner_names_{std::string()};
  absl::flat_hash_map<std::string, std::uint32_t> owner_index_{{std::string(), 0u}};
  std::vector<protocol_id> protocols_;
  std::vector<std::uint8_t> bands_;
  std::vector<health_cell> cells_;
  std::vector<std::uint32_t> leg_off_{0};
  std::vector<std::uint32_t> term_off_{0};
  std::vector<std::uint16_t> term_ncoll_;

  // Per leg and per term.
  std::vector<asset_id> leg_asset_;
  std::vector<double> leg_coll_;
  std::vector<double> leg_debt_;
  std::vector<std::uint16_t> term_asset_;
  std::vector<double> term_coef_;

  // Per asset exposure segments in one array; [begin, begin + size) is live,
  // [begin + size, begin + cap) is slack.
  std::vector<exposure_entry> exposure_;
  std::vector<std::uint32_t> seg_begin_;
  std::vector<std::uint32_t> seg_size_;
  std::vector<std::uint32_t> seg_cap_;
  std::size_t exposure_holes_ = 0;  // entries left behind by moved segments
  std::size_t dead_exposure_ = 0;   // entries of tombstoned rows

  // Per asset drift anchors.
  std::vector<std::uint32_t> anchor_count_;
  std::vector<double> anchor_lo_;
  std::vector<double> anchor_hi_;

  absl::flat_hash_map<std::string, row_t> row_by_id_;
  std::vector<std::array<std::uint64_t, band_count>> band_counts_;
  std::size_t live_rows_ = 0;
  tick_stats stats_;

  // Scratch for coalescing a tick batch: position in `coalesced_` per asset.
  std::vector<std::int32_t> tick_slot_;
  // (derived asset, its base), for the ticks that follow a base.
  std::vector<std::pair<asset_id, asset_id>> derived_;
  std::vector<tick> coalesced_;
};

}  // namespace cascade
