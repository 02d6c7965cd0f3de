// Cascade extensions (engine/cascade.hpp cascade_model): oracle lag and deviation,
// latency and liquidator capacity with a backlog, circuit breakers and their
// counterfactual, venues in the sale step. Arithmetic worked by hand in the comments.
#include <catch2/catch.hpp>
#include <cmath>
#include <random>

#include "engine/cascade.hpp"
#include "support/fixtures.hpp"
#include "support/naive_cascade.hpp"

using namespace cascade;
using cascade::testing::aid;
using cascade::testing::must;
using cascade::testing::pid;

namespace {

constexpr double k_eth = 2e9;  // ETH pool 1,000 / 2,000,000

// ETH 2000 (pool 1000 / 2M unless pooled is false), USDC 1 without a pool. Two
// protocols with the same terms: ETH lt 0.8, bonus 0.05, close factor 0.5 at or above
// HF 0.95.
market two_protocols(bool pooled = true) {
  market m;
  must(m.add_asset(
      {"ETH", 2000.0, pooled ? std::optional<pool>(pool{1000.0, 2'000'000.0}) : std::nullopt}));
  must(m.add_asset({"USDC", 1.0, std::nullopt}));
  for (const char* name : {"fast", "slow"}) {
    must(m.add_protocol({name, protocol_kind::pooled, 0.5, 0.95, {{"ETH", {0.8, 0.05}}}}));
  }
  return m;
}

position_input loan(const market& m, std::string id, std::string_view protocol, double eth,
                    double usdc) {
  return {std::move(id), pid(m, protocol), "", {{aid(m, "ETH"), eth, 0.0}, {aid(m, "USDC"), 0.0, usdc}}};
}

cascade_report run(const book& b, double eth_shock, const cascade_options& o) {
  cascade_simulator sim;
  const std::vector<shock> shocks{{aid(b.get_market(), "ETH"), eth_shock}};
  return must(sim.run(b, shocks, o));
}

}  // namespace

TEST_CASE("oracle deviation: a 3% move does not liquidate, the fire sale past 5% does",
          "[cascade-ext]") {
  const market m = two_protocols();
  book b(m);
  // A (fast) 100 ETH / 156,000: at 1940 (-3%) HF = 155,200 / 156,000 = 0.99487.
  // B (slow) 10 ETH / 15,600: the same HF at the market, but slow's oracle publishes
  // only moves of 5% or more, so it still reads 2000 (HF 1.0256).
  must(b.upsert(std::vector<position_input>{loan(m, "A", "fast", 100.0, 156'000.0),
                                            loan(m, "B", "slow", 10.0, 15'600.0)}));
  cascade_options o;
  o.model.oracles.resize(2);
  o.model.oracles[pid(m, "slow").index()] = {0.05, 0};
  const cascade_report r = run(b, -0.03, o);
  REQUIRE(r.extended);
  REQUIRE(r.rounds.size() == 2);
  // Round 1: only A. cf 0.5: R = 78,000, S = 81,900 = 42.2165 ETH into the pool moved
  // to 1940 (base sqrt(2e9 / 1940) = 1015.36): price 2e9 / (1015.36 + 42.2165)^2 = 1788.21,
  // 10.6% under slow's oracle.
  const double base1 = std::sqrt(k_eth / 1940.0);
  const double p2 = k_eth / std::pow(base1 + 81'900.0 / 1940.0, 2);
  CHECK(r.rounds[0].liquidated == 1);
  CHECK(r.rounds[0].repaid_usd == Approx(78'000.0).epsilon(1e-12));
  REQUIRE(r.rounds[0].oracle_prices.size() == 1);
  CHECK(r.rounds[0].oracle_prices[0].second[0] == 2000.0);
  CHECK(r.rounds[0].prices[0] == Approx(p2).epsilon(1e-9));
  // Round 2: slow's oracle jumps to 1788.21; B's HF = 10 x 1788.21 x 0.8 / 15,600 =
  // 0.9170 < 0.95: closed whole, R = 15,600, S = 16,380. A (57.78 ETH, 78,000 debt) sits
  // at 1.0598.
  CHECK(r.rounds[1].oracle_prices[0].second[0] == Approx(p2).epsilon(1e-9));
  CHECK(r.rounds[1].liquidated == 1);
  CHECK(r.rounds[1].repaid_usd == Approx(15'600.0).epsilon(1e-12));
  CHECK(r.protocols[pid(m, "slow").index()].first_round == 2);
  CHECK(r.protocols[pid(m, "fast").index()].first_round == 1);

  // B alone: the market moved 3%, slow's oracle never publishes it, and with nobody
  // under 1 at their oracle and no oracle left to move, the cascade ends at once.
  book alone(m);
  must(alone.upsert(std::vector<position_input>{loan(m, "B", "slow", 10.0, 15'600.0)}));
  const cascade_report quiet = run(alone, -0.03, o);
  CHECK(quiet.rounds.empty());
  CHECK(quiet.positions_liquidated == 0);
  CHECK(quiet.final_prices[0] == 1940.0);

  // Without the deviation threshold (model v1), B goes in round 1 beside A.
  const cascade_report v1 = run(b, -0.03, {});
  CHECK_FALSE(v1.extended);
  CHECK(v1.rounds[0].liquidated == 2);
  CHECK(v1.protocols[pid(m, "slow").index()].first_round == 1);
}

TEST_CASE("oracle lag: the cascade waits for a lagging oracle to catch up", "[cascade-ext]") {
  const market m = two_protocols(false);
  book b(m);
  // Only B (slow, lag 2 rounds): at 1800 (-10%) HF = 14,400 / 15,600 = 0.923. Its oracle
  // shows m_0 = 2000 in rounds 1 and 2 and m_1 = 1800 in round 3. Nothing happens in
  // rounds 1 and 2, yet the cascade goes on, since the oracle still has to move.
  must(b.upsert(std::vector<position_input>{loan(m, "B", "slow", 10.0, 15'600.0)}));
  cascade_options o;
  o.model.oracles.resize(2);
  o.model.oracles[pid(m, "slow").index()] = {0.0, 2};
  const cascade_report r = run(b, -0.10, o);
  REQUIRE(r.rounds.size() == 3);
  CHECK(r.rounds[0].liquidated == 0);
  CHECK(r.rounds[1].liquidated == 0);
  CHECK(r.rounds[0].oracle_prices[0].second[0] == 2000.0);
  CHECK(r.rounds[1].oracle_prices[0].second[0] == 2000.0);
  CHECK(r.rounds[2].oracle_prices[0].second[0] == 1800.0);
  // Round 3: HF 0.923 < 0.95, closed whole: R = 15,600.
  CHECK(r.rounds[2].liquidated == 1);
  CHECK(r.total_repaid_usd == Approx(15'600.0).epsilon(1e-12));
  CHECK(r.positions_liquidated == 1);
  CHECK(r.rounds[0].backlog.positions == 0);  // not under 1 at its own oracle
}

TEST_CASE("latency: a position under 1 is liquidated N rounds later", "[cascade-ext]") {
  const market m = two_protocols(false);
  book b(m);
  must(b.upsert(std::vector<position_input>{loan(m, "B", "fast", 10.0, 15'600.0)}));
  cascade_options o;
  o.model.latency_rounds = 2;
  const cascade_report r = run(b, -0.10, o);
  // Under 1 from round 1 (HF 0.923, R = 15,600): waits in rounds 1 and 2, goes in 3.
  REQUIRE(r.rounds.size() == 3);
  for (int i = 0; i < 2; ++i) {
    CHECK(r.rounds[i].liquidated == 0);
    CHECK(r.rounds[i].backlog.positions == 1);
    CHECK(r.rounds[i].backlog.delayed == 1);
    CHECK(r.rounds[i].backlog.usd == Approx(15'600.0).epsilon(1e-12));
    CHECK_FALSE(r.rounds[i].backlog.clear_rounds.has_value());
  }
  CHECK(r.rounds[2].liquidated == 1);
  CHECK(r.rounds[2].backlog.positions == 0);
  CHECK(r.protocols[pid(m, "fast").index()].first_round == 3);
}

TEST_CASE("liquidator capacity: a backlog, worst HF first, cleared over rounds", "[cascade-ext]") {
  // No pool (prices stay), full_liquidation_hf 1: every position under 1 is closed whole.
  market m;
  must(m.add_asset({"ETH", 2000.0, std::nullopt}));
  must(m.add_asset({"USDC", 1.0, std::nullopt}));
  must(m.add_protocol({"lend", protocol_kind::pooled, 0.5, 1.0, {{"ETH", {0.8, 0.05}}}}));
  book b(m);
  // Three positions of 10 ETH / 17,000 USDC: at 2000, HF = 16,000 / 17,000 = 0.941;
  // P3 is worse: 10 ETH / 17,500 (HF 0.914).
  must(b.upsert(std::vector<position_input>{
      {"P1", pid(m, "lend"), "", {{aid(m, "ETH"), 10.0, 0.0}, {aid(m, "USDC"), 0.0, 17'000.0}}},
      {"P2", pid(m, "lend"), "", {{aid(m, "ETH"), 10.0, 0.0}, {aid(m, "USDC"), 0.0, 17'000.0}}},
      {"P3", pid(m, "lend"), "", {{aid(m, "ETH"), 10.0, 0.0}, {aid(m, "USDC"), 0.0, 17'500.0}}}}));
  cascade_options o;
  o.model.liquidator_capacity_usd = 20'000.0;
  o.model.round_seconds = 12.0;
  cascade_simulator sim;
  const cascade_report r = must(sim.run(b, {}, o));
  REQUIRE(r.rounds.size() == 3);
  // Round 1: P3 first (worst HF): R = 17,500 (S = 18,375). Then P1 gets 2,500 of its
  // 17,000: f = 2,500 / 17,000. P2 waits. Backlog: P1's 14,500 + P2's 17,000 = 31,500,
  // ceil(31,500 / 20,000) = 2 rounds = 24 s.
  CHECK(r.rounds[0].liquidated == 2);
  CHECK(r.rounds[0].repaid_usd == Approx(20'000.0).epsilon(1e-12));
  CHECK(r.rounds[0].backlog.positions == 2);
  CHECK(r.rounds[0].backlog.usd == Approx(31'500.0).epsilon(1e-12));
  CHECK(r.rounds[0].backlog.clear_rounds == 2u);
  // Round 2: P1 now holds 20,000 - 2,625 = 17,375 against 14,500 (HF 0.9586), P2 still
  // 0.941: P2 first (17,000), then P1 gets 3,000 of 14,500. Backlog 11,500, 1 round.
  CHECK(r.rounds[1].liquidated == 2);
  CHECK(r.rounds[1].repaid_usd == Approx(20'000.0).epsilon(1e-12));
  CHECK(r.rounds[1].backlog.positions == 1);
  CHECK(r.rounds[1].backlog.usd == Approx(11'500.0).epsilon(1e-12));
  CHECK(r.rounds[1].backlog.clear_rounds == 1u);
  // Round 3: P1 holds 17,375 - 3,150 = 14,225 against 11,500 (HF 0.9896): R = 11,500.
  CHECK(r.rounds[2].liquidated == 1);
  CHECK(r.rounds[2].repaid_usd == Approx(11'500.0).epsilon(1e-12));
  CHECK(r.rounds[2].backlog.positions == 0);
  CHECK(r.total_repaid_usd == Approx(51'500.0).epsilon(1e-12));
  CHECK(r.positions_liquidated == 3);
  CHECK(r.bad_debt_usd() == 0.0);
  const auto legs = sim.liquidated_legs(0);
  REQUIRE(legs.has_value());
  CHECK(legs->debt[1] == Approx(0.0).margin(1e-9));
}

namespace {

// ETH 2000 in a pool of 1000 / 2M, USDC 1. "lend" closes whole (close factor 1, lt 0.8,
// bonus 0.05); "maker" too (lt 0.8, bonus 0.10). L (lend) 200 ETH / 300,000 and M
// (maker) 10 ETH / 15,000 are both at HF 0.96 after a -10% shock (1800).
market breaker_market() {
  market m;
  must(m.add_asset({"ETH", 2000.0, pool{1000.0, 2'000'000.0}}));
  must(m.add_asset({"USDC", 1.0, std::nullopt}));
  must(m.add_protocol({"lend", protocol_kind::pooled, 1.0, 0.95, {{"ETH", {0.8, 0.05}}}}));
  must(m.add_protocol({"maker", protocol_kind::cdp, 1.0, 0.95, {{"ETH", {0.8, 0.10}}}}));
  return m;
}

book breaker_book(const market& m) {
  book b(m);
  must(b.upsert(std::vector<position_input>{loan(m, "L", "lend", 200.0, 300'000.0),
                                            loan(m, "M", "maker", 10.0, 15'000.0)}));
  return b;
}

}  // namespace

TEST_CASE("a Maker-style cap causes bad debt, shown against the run without it",
          "[cascade-ext]") {
  const market m = breaker_market();
  const book b = breaker_book(m);
  cascade_options o;
  o.model.max_liquidating_usd = {std::numeric_limits<double>::infinity(), 10'000.0};
  const cascade_report r = run(b, -0.10, o);
  // Without the cap (model v1), round 1 at 1800: L repays 300,000 (S 315,000 = 175 ETH),
  // M repays 15,000 (S 16,500 of its 18,000): no bad debt.
  // With the cap, M gets f = 10,000 / 15,000: R 10,000, S 11,000 (6.1111 ETH), leaving
  // 10 x (1 - 11,000/18,000) = 3.8889 ETH against 5,000. Round 1 sells 181.1111 ETH into
  // the pool at base sqrt(2e9 / 1800) = 1054.0926: price 2e9 / 1235.2037^2 = 1310.85.
  // Round 2: M's collateral is 3.8889 x 1310.85 = 5,097.75 < 5,000 x 1.1: S = C,
  // R = 5,097.75 / 1.1 = 4,634.32, and 5,000 - 4,634.32 = 365.68 is bad debt.
  const double base1 = std::sqrt(k_eth / 1800.0);
  const double p2 = k_eth / std::pow(base1 + 175.0 + 11'000.0 / 1800.0, 2);
  const double c2 = (10.0 - 10.0 * (11'000.0 / 18'000.0)) * p2;
  const double bad = 5'000.0 - c2 / 1.1;
  CHECK(bad == Approx(365.68337170013365).epsilon(1e-9));
  REQUIRE(r.rounds.size() == 2);
  CHECK(r.rounds[0].backlog.positions == 1);
  CHECK(r.rounds[0].backlog.usd == Approx(5'000.0).epsilon(1e-12));
  CHECK(r.rounds[0].backlog.clear_rounds == 1u);
  CHECK(r.rounds[0].prices[0] == Approx(p2).epsilon(1e-9));
  CHECK(r.protocols[pid(m, "maker").index()].bad_debt_usd == Approx(bad).epsilon(1e-9));
  CHECK(r.bad_debt_usd() == Approx(bad).epsilon(1e-9));
  REQUIRE(r.breakers.has_value());
  CHECK(r.breakers->without.total_bad_debt_usd == 0.0);
  CHECK(r.breakers->without.rounds == 1);
  CHECK_FALSE(r.breakers->halt_only.has_value());
  // The counterfactual is model v1 itself.
  const cascade_report v1 = run(b, -0.10, {});
  CHECK(r.breakers->without.final_prices == v1.final_prices);
  CHECK(r.breakers->without.total_repaid_usd == v1.total_repaid_usd);
}

TEST_CASE("a halt stops liquidations for its rounds; each breaker is reported alone",
          "[cascade-ext]") {
  const market m = breaker_market();
  const book b = breaker_book(m);
  cascade_options o;
  o.model.max_liquidating_usd = {std::numeric_limits<double>::infinity(), 10'000.0};
  o.model.halt_drop = 0.2;
  o.model.halt_rounds = 2;
  const cascade_report r = run(b, -0.10, o);
  // Round 1 as with the cap alone; its sales take ETH from 1800 to 1310.85 (-27%), more
  // than 20%: rounds 2 and 3 are halted (M waits at the same prices), round 4 ends it as
  // round 2 did with the cap alone: the same 365.68 of bad debt.
  REQUIRE(r.rounds.size() == 4);
  CHECK(r.rounds[0].halt_triggered);
  CHECK(r.rounds[1].halted);
  CHECK(r.rounds[2].halted);
  CHECK(r.rounds[1].liquidated == 0);
  CHECK(r.rounds[1].backlog.positions == 1);
  CHECK(r.rounds[1].backlog.delayed == 0);
  CHECK(r.rounds[1].prices == r.rounds[0].prices);
  CHECK(r.rounds[3].liquidated == 1);
  CHECK(r.halted_rounds == 2);
  CHECK(r.bad_debt_usd() == Approx(365.68337170013365).epsilon(1e-9));
  REQUIRE(r.breakers.has_value());
  REQUIRE(r.breakers->halt_only.has_value());
  REQUIRE(r.breakers->cap_only.has_value());
  CHECK(r.breakers->halt_only->total_bad_debt_usd == 0.0);
  CHECK(r.breakers->cap_only->total_bad_debt_usd == Approx(365.68337170013365).epsilon(1e-9));
}

TEST_CASE("extended rounds with limits that never bind reproduce model v1 on random books",
          "[cascade-ext][property]") {
  // The plain rounds (every position, worst HF first under a capacity that never binds)
  // against the naive every-position v1 reference: the same rounds, counts, repay,
  // prices and bad debt (sums in another order: to 1e-9).
  const market m = two_protocols();
  int multi_round = 0;
  int with_bad_debt = 0;
  for (std::uint64_t seed = 1; seed <= 30; ++seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    book b(m);
    std::vector<position_input> ps;
    const int n = 20 + static_cast<int>(seed) * 3;
    for (int i = 0; i < n; ++i) {
      const double eth = 1.0 + 15.0 * u(rng);
      const double hf = 1.0 + 0.6 * u(rng);
      ps.push_back(loan(m, "p" + std::to_string(i), u(rng) < 0.5 ? "fast" : "slow", eth,
                        eth * 2000.0 * 0.8 / hf));
    }
    must(b.upsert(ps));
    const double shock_size = -0.05 - 0.3 * u(rng);
    cascade_options o;
    o.model.liquidator_capacity_usd = 1e300;
    const cascade_report x = run(b, shock_size, o);
    const auto naive = cascade::testing::naive_cascade(b, {{aid(m, "ETH"), shock_size}}, 100);
    INFO("seed " << seed);
    REQUIRE(x.rounds.size() == naive.liquidated_per_round.size());
    multi_round += x.rounds.size() >= 3;
    with_bad_debt += x.bad_debt_usd() > 0.0;
    for (std::size_t r = 0; r < x.rounds.size(); ++r) {
      CHECK(x.rounds[r].liquidated == naive.liquidated_per_round[r]);
      CHECK(x.rounds[r].repaid_usd == Approx(naive.repaid_per_round[r]).epsilon(1e-9));
      CHECK(x.rounds[r].backlog.positions == 0);
      for (std::size_t a = 0; a < m.asset_count(); ++a) {
        CHECK(x.rounds[r].prices[a] == Approx(naive.prices_per_round[r][a]).epsilon(1e-9));
      }
    }
    for (std::size_t k = 0; k < m.protocol_count(); ++k) {
      CHECK(x.protocols[k].bad_debt_usd == Approx(naive.bad_debt[k]).epsilon(1e-9).margin(1e-6));
    }
  }
  // The books exercise long cascades and write-offs.
  CHECK(multi_round >= 10);
  CHECK(with_bad_debt >= 5);
}

TEST_CASE("venues and withdrawal in the sale step", "[cascade-ext]") {
  market m;
  asset_spec eth{"ETH", 2000.0, std::nullopt};
  // A depth curve quoted at 2000: 1% at $1M, 10% at $5M; it withdraws with a drawdown
  // sensitivity of 2 (after a 10% shock: scale 1 - 2 x 0.1 = 0.8).
  eth.venues = liquidity_spec{{{"cex", std::nullopt, {{0.01, 1e6}, {0.10, 5e6}}}}, {2.0, 0.0, 0.1, 3600.0}};
  must(m.add_asset(eth));
  must(m.add_asset({"USDC", 1.0, std::nullopt}));
  must(m.add_protocol({"lend", protocol_kind::pooled, 1.0, 0.95, {{"ETH", {0.8, 0.05}}}}));
  book b(m);
  must(b.upsert(std::vector<position_input>{loan(m, "L", "lend", 1000.0, 1'500'000.0)}));
  const cascade_report r = run(b, -0.10, {});
  // Round 1 at 1800: L repays 1.5M, S = 1,575,000 = 875 ETH. The curve, re-centred at
  // 1800 with scale 0.8, takes 875 ETH as 875 x 2000 / 0.8 = $2,187,500 of reference
  // depth: drop 0.01 + 1,187,500 x 0.09 / 4M = 0.03671875, price 1800 x 0.96328125.
  REQUIRE(r.rounds.size() == 1);
  REQUIRE(r.rounds[0].depth_scale.size() == 1);
  CHECK(r.rounds[0].depth_scale[0].second == Approx(0.8).epsilon(1e-12));
  CHECK(r.final_prices[0] == Approx(1800.0 * (1.0 - 0.03671875)).epsilon(1e-12));
  CHECK(r.final_depth_scale[0] == Approx(0.8).epsilon(1e-12));
  CHECK_FALSE(r.final_pools[0].has_value());
}

TEST_CASE("cascade models out of range are refused", "[cascade-ext]") {
  const market m = two_protocols();
  book b(m);
  cascade_simulator sim;
  cascade_options o;
  o.model.halt_drop = 1.5;
  CHECK_THAT(std::string(sim.run(b, {}, o).status().message()),
             Catch::Contains("halt_drop 1.5 is outside (0, 1)"));
  o = {};
  o.model.liquidator_capacity_usd = 0.0;
  CHECK_THAT(std::string(sim.run(b, {}, o).status().message()),
             Catch::Contains("liquidator_capacity_usd 0 must be > 0"));
  o = {};
  o.model.oracles = {{1.0, 0}};
  CHECK_THAT(std::string(sim.run(b, {}, o).status().message()),
             Catch::Contains("deviation 1 is outside [0, 1)"));
  o = {};
  o.model.max_liquidating_usd = {1.0, 1.0, 1.0};
  CHECK_THAT(std::string(sim.run(b, {}, o).status().message()),
             Catch::Contains("3 caps for 2 protocols"));
}
