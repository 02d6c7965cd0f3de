// The liquidation cascade simulator: DESIGN.md "Cascade model v1", run to its fixed
// point on a copy-on-write view of a book.
//
// The book is never written. Positions the cascade liquidates get a private copy of
// their leg amounts (the overlay); every other position is read from the book. The
// work done is proportional to what the cascade touches, not to the book:
//  - Round 1 evaluates the holders of shocked assets (found through the exposure
//    index, estimated from their health cells plus the shock's delta) and the
//    positions already in the danger or liquidatable bands.
//  - After round 1 prices only fall (sales into pools). A position whose collateral and
//    debt values are N and D at reference prices cannot fall under HF 1 until one of
//    its collateral assets has dropped by more than T = 1 - D/N from those prices
//    (its collateral value is at least N * (1 - drop), its debt value at most D). Each
//    asset keeps its holders in buckets by T (a position is filed when the asset
//    first moves, or re-filed after an exact evaluation finds it safe); when the
//    asset's drop passes a bucket, those positions are evaluated exactly.
//  - Every decision (who is in L, cf, amounts) is made on an exact evaluation from
//    the legs, summing in leg order as the model says; the estimates above only decide
//    who to evaluate, with a 1e-6 relative margin that covers their rounding.
//
// A cascade_simulator keeps scratch space between runs (per-row stamps, buckets, the
// overlay) so repeated projections do not reallocate. Not thread-safe: one simulator
// per thread. run() allocates; it never throws on bad input (absl::Status).
#pragma once

#include <absl/status/statusor.h>

#include <cstdint>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "engine/book.hpp"
#include "engine/market.hpp"

namespace cascade {

struct shock {
  asset_id asset;
  double fraction = 0.0;  // price multiplied by (1 + fraction); must be > -1
};

struct cascade_options {
  std::uint32_t max_rounds = 100;  // 0: report the shock alone
  // Prices to start from (one per asset); empty: the book's current prices. Pools are
  // moved at constant k to these prices before the shock.
  std::vector<double> start_prices;
};

struct round_report {
  std::uint64_t liquidated = 0;
  double repaid_usd = 0.0;
  double seized_usd = 0.0;
  std::vector<std::pair<asset_id, double>> sold;  // assets with sold > 0, by id
  // Base units that sales of derived assets passed on into their bases' pools.
  std::vector<std::pair<asset_id, double>> routed;
  std::vector<double> prices;  // every asset, after the sales
};

struct protocol_report {
  std::uint64_t liquidated = 0;  // distinct positions
  double repaid_usd = 0.0;
  double seized_usd = 0.0;
  double bad_debt_usd = 0.0;
  std::uint64_t insolvent = 0;    // positions whose collateral ran out with debt left
  std::uint32_t first_round = 0;  // 0: never liquidated
  // Liquidated only in rounds after the first: everything that moved its positions
  // under 1 was a price pushed down by other protocols' fire sales.
  bool contagion_only = false;
};

struct cascade_report {
  std::vector<round_report> rounds;
  std::vector<double> input_prices;    // before the shock
  std::vector<double> shocked_prices;  // after the shock, before any sale
  std::vector<double> final_prices;
  std::vector<shock> shocks;
  std::vector<std::optional<double>> amplification;  // per shock; nullopt when 0
  double total_repaid_usd = 0.0;
  double total_seized_usd = 0.0;
  std::uint64_t positions_liquidated = 0;
  std::uint64_t positions_insolvent = 0;   // left bad debt
  std::vector<protocol_report> protocols;  // indexed by protocol id
  std::vector<std::optional<pool>> final_pools;
  // Derived assets: ratio to the base before the shock and at the end (NaN elsewhere).
  std::vector<double> input_ratios;
  std::vector<double> final_ratios;
  // Work done, for metrics and benchmarks.
  std::uint64_t evaluations = 0;  // exact evaluations from legs
  std::uint64_t estimates = 0;    // exposure entries visited

  [[nodiscard]] double bad_debt_usd() const;
};

class cascade_simulator {
 public:
  // Runs model v1 on `b` with the given shocks. Refuses (changing nothing) a shock on
  // an unknown asset, a shock <= -1 or not finite, the same asset shocked twice, or
  // start prices of the wrong count or not finite and > 0.
  [[nodiscard]] absl::StatusOr<cascade_report> run(const book& b, std::span<const shock> shocks,
                                                   const cascade_options& options = {});

  // After a run on `b`: the leg amounts of row r as the cascade left them (collateral,
  // debt), or nullopt when r was never liquidated. Valid until the next run.
  struct legs_view {
    std::span<const double> collateral;
    std::span<const double> debt;
  };
  [[nodiscard]] std::optional<legs_view> liquidated_legs(row_t r) const;

 private:
  struct overlay_legs {
    std::uint32_t begin;  // into overlay_coll_ / overlay_debt_
    std::uint32_t count;
  };
  struct evaluation {
    double num = 0.0;  // sum c * p * t
    double den = 0.0;  // sum d * p
    bool has_debt = false;
    [[nodiscard]] double hf() const;
  };
  // Positions filed under an asset, by the drop of that asset that could make them
  // fail. Filing in bulk (all holders at the asset's first move) counting-sorts them into
  // one flat array of buckets; positions filed again after an exact evaluation go to a
  // min-heap. Both keep their capacity between runs.
  struct filed_row {
    double key;
    row_t row;
  };
  struct asset_buckets {
    bool filed = false;
    double filed_below = 0.0;          // every unseen holder with a key below is filed
    std::uint32_t next = 0;            // first bucket not wholly released
    std::vector<std::uint32_t> start;  // cascade_bucket_count + 1 offsets
    std::vector<filed_row> entries;    // bulk, grouped by bucket
    std::vector<filed_row> late;       // heap, smallest key first
  };

  void reset(const book& b);
  [[nodiscard]] evaluation evaluate(const book& b, row_t r, std::span<const double> p) const;
  // Files, in bulk, every holder of a not yet seen this run whose key is below `below`
  // (replacing what was filed before: a re-walk happens only when the asset's drop
  // passes the last tier filed).
  void file_holders(const book& b, asset_id a, double below);
  // Files the rows collected in scratch_ under asset a, in bulk.
  void file_bulk(asset_id a, double below);
  [[nodiscard]] bool seen_this_run(row_t r) const { return rows_[r].active >= run_first_key_; }
  [[nodiscard]] bool in_overlay(row_t r) const { return rows_[r].overlay_epoch == epoch_; }
  void file_late(asset_id a, double key, row_t r);
  void refile(const book& b, row_t r, const evaluation& e, std::span<const double> p,
              std::span<const double> p1);
  void release(const book& b, asset_id a, double drop, std::vector<row_t>& active);
  // Step b of the model for one position in L: seize, repay, write off, and add to the
  // round's sales (sold_) and totals.
  void liquidate(const book& b, row_t r, const evaluation& e, std::span<const double> p,
                 std::uint32_t round, round_report& rr, cascade_report& rep);
  void activate(row_t r, std::vector<row_t>& active);

  // Scratch reused between runs; per-row arrays are valid where their stamp equals the
  // run's epoch, so a run never clears them.
  std::uint32_t epoch_ = 0;
  // Everything the simulator keeps per book row, in one cache line's half, since the
  // walks touch it for every holder.
  struct row_state {
    std::uint32_t est_epoch = 0;      // est is r's cell at the shocked prices
    std::uint32_t overlay_epoch = 0;  // r has overlay legs at overlay_[overlay_slot]
    std::uint32_t overlay_slot = 0;
    std::uint32_t active = 0;  // round key of the last round r was a candidate
    health_cell est;
  };
  std::vector<row_state> rows_;
  std::uint32_t round_key_ = 0;
  std::uint32_t run_first_key_ = 0;  // round key of this run's first round
  double unseen_floor_ = 0.0;        // no unseen row fails on a smaller drop
  std::vector<asset_buckets> buckets_;
  std::vector<filed_row> scratch_;
  // Per-round lists, kept between runs for their capacity.
  std::vector<row_t> active_;
  std::vector<row_t> sort_buffer_;
  std::vector<double> sold_;  // per asset, this round
  std::vector<row_t> liquidated_last_;
  std::vector<overlay_legs> overlay_;
  std::vector<double> overlay_coll_;
  std::vector<double> overlay_debt_;
  std::uint64_t last_estimates_ = 0;
  const book* book_ = nullptr;
};

// Bucket resolution of the candidate filter: drops in [0, 1) over this many buckets.
inline constexpr std::uint32_t cascade_bucket_count = 4096;
// Holders are filed lazily, up to the first of these drops above the asset's current
// drop: most positions are far from failing and most moves after a shock are small.
inline constexpr double cascade_filing_tiers[] = {0.10, 0.30, 1.0};

}  // namespace cascade
