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
// Runs with cascade_model options (oracle lag, latency, capacity, breakers) do not use
// the filter: they evaluate every live position every round (plain rounds, cost
// proportional to the book per round), since lagged oracles and waiting positions
// break its "prices only fall, every failure is seen" premise. Venues and withdrawal
// keep it: they change only how far a sale moves a price.
//
// A cascade_simulator keeps scratch space between runs (per-row stamps, buckets, the
// overlay) so repeated projections do not reallocate. Not thread-safe: one simulator
// per thread. run() allocates; it never throws on bad input (absl::Status).
#pragma once

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "engine/book.hpp"
#include "engine/liquidity.hpp"
#include "engine/market.hpp"

namespace cascade {

struct shock {
  asset_id asset;
  double fraction = 0.0;  // price multiplied by (1 + fraction); must be > -1
};

// The oracle one protocol sees inside the rounds. The market price at the start of
// round j is m_j (m_1 = the shocked prices, m_j = the prices after round j-1's
// sales) and m_0 is the input price (before the shock). In round r the feed shows
// s_r = m_max(0, r - lag_rounds), and the protocol's oracle o_r (o_0 = m_0) publishes
// it only when it moved enough:
//   o_r = s_r  if s_r != o_{r-1} and |s_r / o_{r-1} - 1| >= deviation,  else o_{r-1},
// per asset. deviation 0 and lag_rounds 0 (the default) is model v1: o_r = m_r.
struct oracle_lag {
  double deviation = 0.0;  // in [0, 1)
  std::uint32_t lag_rounds = 0;

  [[nodiscard]] bool active() const { return deviation > 0.0 || lag_rounds > 0; }
};

// Extensions of model v1 inside the rounds (issue 5). Every default leaves v1's result,
// and its report, byte for byte the same; any non-default value runs the extended
// rounds described at cascade_simulator::run.
struct cascade_model {
  // By protocol id (shorter than the protocol count: the rest have no lag).
  std::vector<oracle_lag> oracles;
  // A position under 1 is liquidated this many rounds after the first round of the
  // unbroken run of rounds in which it was under 1 (0: in that round).
  std::uint32_t latency_rounds = 0;
  // Total repay (R, USD at the protocols' oracles) liquidators can take per round,
  // over every protocol; infinity: unlimited. > 0.
  double liquidator_capacity_usd = std::numeric_limits<double>::infinity();
  // Length of a round in seconds, for the backlog's time to clear; 0: not reported.
  double round_seconds = 0.0;
  // Circuit breaker: a round whose sales drop some asset's market price by more than
  // this fraction (1 - after / before, within that round) halts liquidations for the
  // next halt_rounds rounds. Infinity: no breaker. In (0, 1).
  double halt_drop = std::numeric_limits<double>::infinity();
  std::uint32_t halt_rounds = 1;  // >= 1
  // Maker-style cap per protocol id: total repay (R) under liquidation in one round;
  // infinity (or a shorter vector): no cap. > 0.
  std::vector<double> max_liquidating_usd;
  // With a breaker set, also run without the breakers (and, with both breakers set,
  // with each alone) and report the bad debt each prevents or causes.
  bool counterfactual = true;

  [[nodiscard]] bool has_halt() const { return halt_drop < std::numeric_limits<double>::infinity(); }
  [[nodiscard]] bool has_cap() const;
  [[nodiscard]] bool has_capacity() const {
    return liquidator_capacity_usd < std::numeric_limits<double>::infinity();
  }
  [[nodiscard]] bool has_breakers() const { return has_halt() || has_cap(); }
  [[nodiscard]] bool has_oracle_lag() const;
  // True when some option differs from model v1 (round_seconds and counterfactual
  // alone change nothing).
  [[nodiscard]] bool extended() const {
    return has_oracle_lag() || latency_rounds > 0 || has_capacity() || has_breakers();
  }
  // Refuses values outside the ranges above and vectors longer than the protocol count.
  [[nodiscard]] absl::Status validate(std::size_t protocol_count) const;
};

struct cascade_options {
  std::uint32_t max_rounds = 100;  // 0: report the shock alone
  // Prices to start from (one per asset); empty: the book's current prices. Pools are
  // moved at constant k to these prices before the shock.
  std::vector<double> start_prices;
  cascade_model model;
};

// Positions under 1 (at their protocol's oracle) left waiting at the end of a round:
// not liquidated in full because of latency, a halt, the liquidator capacity or a
// protocol's cap. usd is their unserved repay (R at the round's oracle prices, minus
// what a partial liquidation took).
struct backlog_report {
  std::uint64_t positions = 0;
  double usd = 0.0;
  std::uint64_t delayed = 0;  // of them, waiting for their latency
  // Rounds the configured throughput needs to clear `usd` at this round's prices:
  // max(ceil(usd / liquidator_capacity_usd), max over capped protocols of
  // ceil(usd_p / max_liquidating_usd_p)); nullopt without capacity or caps.
  std::optional<std::uint64_t> clear_rounds;
};

struct round_report {
  std::uint64_t liquidated = 0;
  double repaid_usd = 0.0;
  double seized_usd = 0.0;
  std::vector<std::pair<asset_id, double>> sold;  // assets with sold > 0, by id
  // Base units that sales of derived assets passed on into their bases' pools.
  std::vector<std::pair<asset_id, double>> routed;
  std::vector<double> prices;  // every asset, after the sales
  // Extended rounds only (cascade_model::extended()).
  bool halted = false;          // liquidations were halted this round
  bool halt_triggered = false;  // this round's sales tripped the breaker
  backlog_report backlog;
  // Oracle prices each protocol with an active oracle_lag used this round (every asset).
  std::vector<std::pair<protocol_id, std::vector<double>>> oracle_prices;
  // Assets whose liquidity withdraws: the depth scale their sales this round used.
  std::vector<std::pair<asset_id, double>> depth_scale;
};

// What one run came to, for a counterfactual beside the main one.
struct run_summary {
  std::uint64_t rounds = 0;
  double total_repaid_usd = 0.0;
  double total_seized_usd = 0.0;
  std::uint64_t positions_liquidated = 0;
  std::uint64_t positions_insolvent = 0;
  std::vector<double> bad_debt_usd;  // by protocol id
  double total_bad_debt_usd = 0.0;
  std::vector<double> final_prices;
};

// The report's run has the breakers; `without` is the same run with none of them
// (every other option kept). prevented_usd = without - with (negative: caused). With
// both breakers set, halt_only and cap_only are the runs with one of them alone.
struct breaker_report {
  run_summary without;
  std::optional<run_summary> halt_only;
  std::optional<run_summary> cap_only;
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
  // The options of an extended run (cascade_model::extended()); default otherwise.
  bool extended = false;
  cascade_model model;
  std::uint64_t halted_rounds = 0;
  std::optional<breaker_report> breakers;
  // Depth scale at the end per asset (NaN for assets without withdrawing liquidity).
  std::vector<double> final_depth_scale;
  // Work done, for metrics and benchmarks.
  std::uint64_t evaluations = 0;  // exact evaluations from legs
  std::uint64_t estimates = 0;    // exposure entries visited

  [[nodiscard]] double bad_debt_usd() const;
  [[nodiscard]] run_summary summary() const;
};

class cascade_simulator {
 public:
  // Runs model v1 on `b` with the given shocks. Refuses (changing nothing) a shock on
  // an unknown asset, a shock <= -1 or not finite, the same asset shocked twice,
  // start prices of the wrong count or not finite and > 0, or a model that
  // cascade_model::validate refuses.
  //
  // Liquidity (any run): an asset with venues (asset_spec::venues) sells in step c
  // through engine/liquidity.hpp (routed over its venues) instead of a v1 pool, centred
  // at the shocked price in step 1; its market price after a sale is the liquidity's
  // price(). When its withdrawal is active, before each round's sales its depth scale
  // becomes min(scale, target(1 - p_a / input_a, 0)) with p_a the round's starting
  // market price (no recovery within a cascade; a scale change moves no price). v1
  // pools keep v1's arithmetic bit for bit.
  //
  // Extended rounds (options.model.extended()). Round r = 1, 2, ... max_rounds:
  //  1. Each protocol with an active oracle_lag updates its oracle o (cascade_model's
  //     rule); the others use the market prices p.
  //  2. Every live position with debt is evaluated at its protocol's prices, in input
  //     order; U = those with HF < 1. A position in U since round s (every round from
  //     s to r) is eligible when r - s >= latency_rounds and r is not a halted round.
  //  3. With neither capacity nor caps, every eligible position is liquidated whole, in
  //     input order. Otherwise they are taken worst HF first (ties in input order) and
  //     each gets the fraction f = min(1, capacity_left / R, room_p / R) of its step-b
  //     liquidation (R and S both times f; no write-off unless f = 1), where R is its
  //     repay at its protocol's prices, capacity_left starts at liquidator_capacity_usd
  //     and room_p at max_liquidating_usd_p; both fall by f R, and a partial
  //     liquidation (f < 1) leaves that limit at 0 for the round. f = 0: it waits.
  //     Step b values C, D, R, S and bad debt at the protocol's oracle prices.
  //  4. Nothing liquidated, U empty and no oracle that could still move if the market
  //     stayed where it is (every lagged feed value still to come, applied with the
  //     deviation rule, leaves every oracle unchanged): stop, without a round entry.
  //  5. Step c as in v1 (with venues and withdrawal as above). If some asset's market
  //     price fell by more than halt_drop in this step (1 - after / before), rounds
  //     r + 1 .. r + halt_rounds are halted: nothing is liquidated in them, so no sale
  //     moves a price; oracles keep catching up, latency keeps counting, positions stay
  //     as they are and wait in the backlog; liquidations resume after, at the prices
  //     then. The shock itself never trips the breaker.
  //  6. The round is reported (even with nothing liquidated: a round is a step of
  //     round_seconds) with its backlog (U minus the positions served in full).
  // rounds = the number of round entries; every other total is as in v1. With a
  // breaker and counterfactual, the runs without breakers (and each breaker alone)
  // are made first and summarized in report.breakers; liquidated_legs() refers to the
  // main run.
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

  struct ratio_state {
    asset_id base;
    double ratio = 0.0;
    std::optional<pool> rpool;
    bool sell_through = true;
  };
  // Prices and liquidity of one run.
  struct market_state {
    std::vector<double> start;  // input prices (before the shock)
    std::vector<double> p;      // market prices
    std::vector<std::optional<ratio_state>> ratios;
    std::vector<std::optional<liquidity>> liq;
    std::vector<double> routed;
    std::vector<bool> ratio_moved;
    std::vector<bool> price_moved;
  };
  // Steps c and d: sells sold_ (and derived assets' routed base units) into the
  // liquidity, moves p, and records sold, routed and prices in rr.
  void sell_step(const market& m, market_state& s, round_report& rr);
  // Final prices, pools, ratios, depth scales and amplification into rep.
  void finish(const market_state& s, cascade_report& rep) const;
  // The runs without breakers (and with each alone), then the main run.
  [[nodiscard]] absl::StatusOr<cascade_report> run_with_counterfactual(
      const book& b, std::span<const shock> shocks, const cascade_options& options);
  // The extended rounds (cascade_model::extended()).
  void run_plain(const book& b, market_state& s, const cascade_options& o, cascade_report& rep);
  // R that step b would repay for r (fraction 1).
  [[nodiscard]] double planned_repay(const book& b, row_t r, const evaluation& e,
                                     std::span<const double> p) const;

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
  // fraction < 1: a partial liquidation (R and S times fraction, no write-off).
  void liquidate(const book& b, row_t r, const evaluation& e, std::span<const double> p,
                 std::uint32_t round, round_report& rr, cascade_report& rep,
                 double fraction = 1.0);
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
