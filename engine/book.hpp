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
// crossing events and, with realizable value, to file certificates (amortized). No
// exceptions on bad input: results are absl::Status.
#pragma once

#include <absl/container/flat_hash_map.h>
#include <absl/status/status.h>

#include <array>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/bands.hpp"
#include "engine/ids.hpp"
#include "engine/liquidity.hpp"
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

// What a price tick sets. Protocols read oracles, not markets (issue 5): the book keeps
// the market price of every asset and, per protocol, the oracle price that protocol
// sees. Health factors and bands follow each protocol's oracle; the market prices drive
// realizable value (below). `all` sets the market price and every protocol's oracle at
// once (lag 0, model v1 and every caller without oracle feeds); `market` sets only the
// market price; `oracle` sets one protocol's oracle only.
enum class price_scope : std::uint8_t { all, market, oracle };

struct tick {
  asset_id asset;
  double price = 0.0;
  price_scope scope = price_scope::all;
  protocol_id protocol;  // required with scope oracle, ignored otherwise
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
  // Keep realizable value, pending liquidations and hidden insolvency current (below).
  bool realizable = true;
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
  std::uint32_t protocol;  // the row's protocol (its index)
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

// Realizable value (issue 5). Each position's collateral valued at what it would fetch if
// sold now through its asset's liquidity at market prices (engine/liquidity.hpp), behind
// everyone queued to be liquidated in the same asset:
//  - The queue: live positions with debt that are liquidatable at their protocol's oracle
//    (band liquidatable) or under HF 1 at market prices (pending). Each queued position
//    will have seized from it, per collateral leg, c_i * S / C of model v1's step b at
//    market prices (cf from its market HF); Q_a sums that over the queue per asset.
//  - A position sells behind the whole queue: leg i fetches
//    proceeds_a(ahead, c_i) with ahead = Q_a, less the position's own share when it is
//    itself queued (the order inside a queue is set by liquidators' gas bids, not by
//    the protocol: every queued position is valued as if it sold last). An asset
//    without liquidity fetches c_i x market price. A derived asset with a ratio pool
//    sells into it for base units valued at the base's market price.
//  - hf_real = sum(R_i x threshold_i) / D, D = sum(d_j x market price) (infinite with no
//    debt); collateral_real = sum R_i.
// Status, from those values and the band (the oracle's verdict):
//  - pending: D > 0, HF at market prices < 1 and the band is not liquidatable: it will
//    be liquidated when its protocol's oracle catches up.
//  - insolvent (hidden insolvency): D > 0, the band is not liquidatable and
//    collateral_real < D: solvent in the protocol's accounting, not in the market.
// Cost per batch: values are summed from the legs, never kept (realizable_at sums them
// when asked). A batch values the queued and flagged positions, those whose band
// changed, and those whose certificate the batch's moves have used up (book.cpp: a
// bound on how far any HF at market or realizable/debt ratio can have fallen, against
// each position's margin above 1 at its last valuation); nobody else. Statuses are
// decided on values summed afresh: nothing drifts.
struct realizable_cell {
  double hf_market = std::numeric_limits<double>::infinity();
  double hf_real = std::numeric_limits<double>::infinity();
  double collateral_market_usd = 0.0;  // sum c x market price
  double collateral_real_usd = 0.0;    // sum R_i
  double debt_usd = 0.0;               // D at market prices
  double seize_usd = 0.0;              // S at market prices when queued, else 0
};

enum class status_kind : std::uint8_t { pending, insolvent };
[[nodiscard]] constexpr std::string_view to_string(status_kind k) {
  return k == status_kind::pending ? "pending_liquidation" : "insolvency";
}

// A position entering or leaving the pending or insolvent status.
struct status_change {
  row_t row = 0;
  protocol_id protocol;
  status_kind kind = status_kind::pending;
  bool entered = true;
  double hf = 0.0;  // at the protocol's oracle
  realizable_cell value;
};

// Per protocol: positions pending liquidation and hidden insolvency, at market prices.
struct hidden_totals {
  std::uint64_t pending = 0;
  double pending_debt_usd = 0.0;
  double pending_seize_usd = 0.0;
  std::uint64_t insolvent = 0;
  double insolvent_debt_usd = 0.0;
  double insolvent_shortfall_usd = 0.0;  // sum (D - collateral_real)
};

struct tick_stats {
  std::uint64_t ticks = 0;    // coalesced ticks that moved a price
  std::uint64_t walks = 0;    // ticks applied by walking the exposure index
  std::uint64_t scans = 0;    // ticks applied by a full recompute
  std::uint64_t anchors = 0;  // walks that recomputed holders exactly
  std::uint64_t positions_touched = 0;
  std::uint64_t crossings = 0;
  std::uint64_t revalued = 0;  // rows valued from their legs (realizable value)
  std::uint64_t expired = 0;   // of them, certificates used up (book.cpp)
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
                                    std::vector<crossing>* events = nullptr,
                                    std::vector<status_change>* status = nullptr);

  // Removes positions by external id. All-or-nothing: an unknown or repeated id refuses
  // the batch.
  // With `realizable` on, appends to `status` the changes the removal causes to others
  // (a queued position leaving the queue revalues who sold behind it); the removed
  // positions themselves get none.
  [[nodiscard]] absl::Status remove(std::span<const std::string> ids,
                                    std::vector<status_change>* status = nullptr);

  // Applies a batch of price ticks. All-or-nothing validation: an unknown asset, a
  // price that is not finite and > 0, or an oracle tick without a known protocol
  // refuses the batch. Ticks of one price (market, or one protocol's oracle) coalesce
  // (the last wins); distinct assets apply in order of first appearance, each
  // producing the crossings it causes. A derived asset whose base the batch moves, and
  // which the batch does not price itself, follows at the ratio it had, market and each
  // protocol's oracle separately (applied after the batch's own ticks, with itself as
  // the crossings' cause). With `realizable` on, appends the status changes to `status`.
  [[nodiscard]] absl::Status apply_ticks(std::span<const tick> ticks,
                                         std::vector<crossing>& events,
                                         std::vector<status_change>* status = nullptr);

  // Liquidity withdrawal under stress, live (engine/liquidity.hpp): for each observed
  // asset whose venues configure a withdrawal, its depth follows the drawdown from its
  // running high and its volatility at time t (down at once, back with the half-life);
  // where the depth moved, its holders are revalued (realizable value) and the status
  // changes appended. The running high starts at the first observed price (the
  // first market move). Unknown assets and non-finite t or vol are skipped.
  struct liquidity_observation {
    asset_id asset;
    double t = 0.0;               // seconds
    double annualized_vol = 0.0;  // >= 0
  };
  void observe_liquidity(std::span<const liquidity_observation> obs,
                         std::vector<status_change>* status = nullptr);
  // The depth scale of an asset's liquidity (1 without withdrawal or liquidity).
  [[nodiscard]] double depth_scale(asset_id a) const {
    return liq_[a.index()] ? liq_[a.index()]->depth_scale() : 1.0;
  }

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
  // "" in a snapshot (snapshot_to), which has no strings; a live book's row must exist.
  [[nodiscard]] const std::string& id_at(row_t r) const {
    return ids_.empty() ? owner_names_[0] : ids_[r];
  }
  [[nodiscard]] const std::string& owner_at(row_t r) const {
    return owner_names_[owners_.empty() ? 0 : owners_[r]];
  }
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
  [[nodiscard]] std::size_t rows() const { return bands_.size(); }
  // Market prices, one per asset.
  [[nodiscard]] std::span<const double> prices() const { return prices_; }
  // The oracle prices protocol p sees, one per asset (equal to prices() unless oracle
  // ticks moved them apart).
  [[nodiscard]] std::span<const double> oracle_prices(protocol_id p) const {
    return {oracle_.data() + p.index() * prices_.size(), prices_.size()};
  }
  // True when some protocol's oracle differs from the market price of some asset.
  [[nodiscard]] bool oracles_split() const { return split_assets_ > 0; }

  // Realizable value and status of row r (see realizable_cell); zeros when the option
  // is off.
  [[nodiscard]] realizable_cell realizable_at(row_t r) const;
  [[nodiscard]] bool pending_at(row_t r) const { return (status_[r] & status_pending) != 0; }
  [[nodiscard]] bool insolvent_at(row_t r) const { return (status_[r] & status_insolvent) != 0; }
  // Units of each asset queued to be seized (Q_a), per asset.
  [[nodiscard]] std::span<const double> queued_units() const { return queue_units_; }
  [[nodiscard]] std::size_t queued_positions() const { return queue_.size(); }
  // Per protocol, maintained incrementally.
  [[nodiscard]] const std::vector<hidden_totals>& hidden() const { return hidden_; }
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

  // Copies this book into `into` (a book of the same market) for kernels that read the
  // columns (the cascade simulator, curves, risk): prices and oracles, legs, terms,
  // exposure, cells, bands and statuses, reusing `into`'s memory. Ids, owners and the id
  // index stay behind (id_at and owner_at give "" and find finds nothing in the copy),
  // and so do the certificates that keep realizable statuses current, so the copy must
  // only be read. The strings are most of a full copy's cost (one allocation each, and
  // the id index hashes them again), and fresh memory the rest (page faults).
  void snapshot_to(book& into);

  [[nodiscard]] bool needs_compaction() const;
  // Drops tombstones and holes; renumbers live rows keeping their order.
  void compact();

 private:
  void append_row(const position_input& in, const protocol& p);
  void kill_row(row_t r);
  void reserve_exposure(std::span<const std::uint32_t> additions);
  void reserve_rows(std::size_t rows, std::size_t legs);
  template <bool PerProtocol>
  void walk_delta(asset_id a, double old_price, double new_price, std::vector<crossing>& events);
  void walk_exact(asset_id a, double new_price, std::vector<crossing>& events);
  void scan_all(asset_id cause, double price, std::vector<crossing>* events);
  void reset_anchors();
  void reset_asset_anchor(std::size_t a);
  [[nodiscard]] std::span<const double> row_prices(row_t r) const {
    return oracle_prices(protocols_[r]);
  }
  void update_split(std::size_t a);
  // Realizable value: see realizable_cell and book.cpp.
  void refresh_realizable(std::span<const asset_id> moved, std::size_t first_crossing,
                          const std::vector<crossing>* crossings,
                          std::span<const row_t> extra, std::vector<status_change>* out,
                          std::span<const std::pair<row_t, std::uint8_t>> replaced = {});
  // A row's values at market prices, summed from its legs.
  struct market_value {
    double num = 0.0;    // sum c x market price x threshold
    double debt = 0.0;   // sum d x market price
    double coll = 0.0;   // sum c x market price
    double bonus = 0.0;  // sum c x market price x bonus
  };
  // And behind the queue: R summed over the collateral legs.
  struct row_value {
    market_value mkt;
    double real_coll = 0.0;  // sum R
    double real_num = 0.0;   // sum R x threshold
    double seize = 0.0;      // S when queued, else 0
  };
  [[nodiscard]] market_value value_at_market(row_t r) const;
  [[nodiscard]] double seize_at_market(row_t r, const market_value& mv) const;
  [[nodiscard]] row_value value_of(row_t r) const;
  [[nodiscard]] static realizable_cell cell_of(const row_value& v);
  void sum_queue();  // Q from the queued rows, into queue_scratch_
  void judge_status(row_t r, const row_value& v);
  void certify(row_t r, const row_value& v);
  void reset_certificates();
  void clear_status(row_t r);
  void set_queued(row_t r, bool queued);
  void leave_queue(row_t r);
  void leave_flagged(row_t r);  // out of flagged_ (its status bits are the caller's)
  [[nodiscard]] double leg_value(std::size_t a, double ahead, double c) const;
  // Marks a row to be valued exactly this batch.
  void touch(row_t r) {
    if (touch_stamp_[r] == stamp_) return;
    touch_stamp_[r] = stamp_;
    touched_.push_back(r);
  }
  void rebuild_liquidity(std::size_t a);
  void rebuild_liquidity_price(std::size_t a);
  static constexpr std::uint8_t status_queued = 1;
  static constexpr std::uint8_t status_pending = 2;
  static constexpr std::uint8_t status_insolvent = 4;
  void set_band(row_t r, band to) {
    const auto p = protocols_[r].index();
    --band_counts_[p][bands_[r]];
    ++band_counts_[p][static_cast<std::size_t>(to)];
    bands_[r] = static_cast<std::uint8_t>(to);
  }

  const market* market_;
  book_options options_;
  band_classifier classifier_;
  std::vector<double> prices_;  // market
  std::vector<double> oracle_;  // [protocol][asset]
  std::vector<std::uint8_t> split_;  // per asset: some oracle differs from the market
  std::size_t split_assets_ = 0;

  // Realizable value (per row, per asset, per protocol).
  std::vector<double> lt_;          // [protocol][asset] liquidation threshold
  std::vector<double> bonus_;       // [protocol][asset] liquidation bonus
  std::vector<row_t> flagged_;              // rows pending or insolvent
  // Certificates (book.cpp): entries (key, row, version) in buckets of keys, expired
  // when the falling threshold reaches their key. An entry whose version is not its
  // row's current one is stale and skipped.
  class cert_ring {
   public:
    static constexpr double width = 1.0 / 256;  // log units per bucket
    static constexpr std::size_t slots = 1024;  // buckets (a span of 4 log units)
    // Empties the ring; thresholds from here on are at most `threshold`.
    void reset(double threshold);
    // Keys more than the span below the last threshold are raised to it.
    void push(double key, row_t row, std::uint32_t version);
    // Calls f(row, version) for every entry with key >= threshold, and drops them.
    // Thresholds must not rise.
    template <class F>
    void expire(double threshold, F&& f);
    // Drops the entries for which keep(row, version) is false.
    template <class F>
    void keep_if(F&& keep);
    [[nodiscard]] std::size_t size() const { return size_; }

   private:
    struct cert_entry {
      double key;
      row_t row;
      std::uint32_t version;
    };
    // Entries an emptied bucket keeps room for (at most 1024 x 2 KB per asset).
    static constexpr std::size_t keep_capacity = 128;
    [[nodiscard]] static std::int64_t index_of(double key);
    static void release(std::vector<cert_entry>& bucket);
    std::vector<std::vector<cert_entry>> buckets_;
    std::int64_t top_ = std::numeric_limits<std::int64_t>::min();
    std::int64_t floor_ = std::numeric_limits<std::int64_t>::min();
    std::size_t size_ = 0;
  };
  std::vector<cert_ring> certs_;        // per asset: the rows filed under it
  std::vector<std::uint32_t> version_;  // per row
  std::vector<double> drift_;           // per asset: the sum of its moves' bounds
  std::vector<std::uint8_t> bounded_;   // per asset: its moves have a bound
  // Per asset, the state the last batch's bound started from.
  std::vector<double> bound_price_;  // market price
  std::vector<double> bound_m_;      // a constant-product pool's k x unit price
  std::vector<double> bound_base_;   // its base
  std::vector<double> bound_scale_;  // other liquidity's depth scale
  std::vector<std::uint32_t> judge_stamp_;  // per row: judged this batch
  std::vector<std::pair<row_t, std::uint8_t>> judged_;  // row, status at batch start
  std::vector<std::uint32_t> flag_pos_;
  std::vector<asset_id> rescaled_;          // observe_liquidity scratch
  std::vector<std::uint8_t> status_;
  std::vector<std::uint32_t> queue_pos_;  // index in queue_ when queued
  std::vector<row_t> queue_;
  std::vector<double> queue_units_;        // Q_a
  std::vector<double> queue_scratch_;
  std::vector<std::optional<liquidity>> liq_;  // per asset, at the market price
  std::vector<std::uint8_t> liq_ratio_;        // liquidity prices the ratio to the base
  std::vector<hidden_totals> hidden_;
  std::vector<std::uint32_t> touch_stamp_;
  std::uint32_t stamp_ = 0;
  std::vector<row_t> touched_;
  std::vector<row_t> new_rows_;
  std::vector<std::pair<row_t, std::uint8_t>> replaced_;  // upsert: new row, old status

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
  std::vector<asset_id> order_;         // assets in order of first appearance
  std::vector<double> new_market_;      // per asset, NaN: untouched
  std::vector<double> new_oracle_;      // per [protocol][asset], NaN: untouched
  std::vector<std::uint8_t> changed_;   // per protocol, scratch
  std::vector<double> dp_;              // per protocol, scratch
  std::vector<asset_id> moved_;         // assets whose market price moved
};

}  // namespace cascade
