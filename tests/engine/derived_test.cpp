// Derived assets (stETH of ETH, wrapped BTC, ...) in the cascade: base moves flow into
// every protocol that accepts the derivative, recursive loops are hedged against the
// base but not against a depeg, and sales of the derivative move its ratio.
#include <cmath>
#include <random>

#include "engine/cascade.hpp"
#include "support/fixtures.hpp"
#include "support/naive_cascade.hpp"

using namespace cascade;
using cascade::testing::aid;
using cascade::testing::must;
using cascade::testing::naive_cascade;
using cascade::testing::pid;

namespace {

// ETH 2000 (deep pool), stETH 1990 = 0.995 ETH with a thin stETH/ETH pool of
// `ratio_depth` stETH, BTC 40000 (pool), WBTC pegged 1:1 to BTC, USDC 1.
market derived_market(double ratio_depth = 2000.0, bool sell_through = true) {
  market m;
  must(m.add_asset({"ETH", 2000.0, pool{1e6, 2e9}}));
  must(m.add_asset({"stETH", 1990.0, std::nullopt,
                    derivation{"ETH", pool{ratio_depth, ratio_depth * 0.995}, sell_through}}));
  must(m.add_asset({"BTC", 40000.0, pool{1000.0, 4e7}}));
  must(m.add_asset({"WBTC", 40000.0, std::nullopt, derivation{"BTC", std::nullopt, true}}));
  must(m.add_asset({"USDC", 1.0, std::nullopt}));
  must(m.add_protocol({"lend",
                       protocol_kind::pooled,
                       0.5,
                       0.95,
                       {{"ETH", {0.80, 0.05}}, {"stETH", {0.93, 0.01}}, {"WBTC", {0.75, 0.10}}}}));
  return m;
}

// 100 stETH against `eth_debt` ETH: HF = 100 * 1990 * 0.93 / (eth_debt * 2000).
position_input loop(const market& m, std::string id, double eth_debt) {
  return {std::move(id),
          pid(m, "lend"),
          "",
          {{aid(m, "stETH"), 100.0, 0.0}, {aid(m, "ETH"), 0.0, eth_debt}}};
}

}  // namespace

TEST_CASE("derived assets are validated against their base", "[derived][bad-input]") {
  market m;
  must(m.add_asset({"ETH", 2000.0, pool{100.0, 200000.0}}));
  must(m.add_asset({"stETH", 1990.0, std::nullopt, derivation{"ETH", std::nullopt, true}}));
  struct bad_case {
    asset_spec spec;
    std::string expect;
  };
  const std::vector<bad_case> cases{
      {{"x", 1.0, std::nullopt, derivation{"BTC", std::nullopt, true}}, "unknown base asset 'BTC'"},
      {{"x", 1.0, std::nullopt, derivation{"stETH", std::nullopt, true}},
       "base 'stETH' is itself derived"},
      {{"x", 1.0, pool{1.0, 1.0}, derivation{"ETH", std::nullopt, true}},
       "give it a ratio_pool, not a pool"},
      {{"x", 1990.0, std::nullopt, derivation{"ETH", pool{100.0, 90.0}, true}},
       "ratio_pool quote/base = 0.9 differs"},
      {{"x", 1990.0, std::nullopt, derivation{"ETH", pool{0.0, 90.0}, true}}, "ratio_pool base 0"},
  };
  for (const auto& c : cases) {
    const auto r = m.add_asset(c.spec);
    INFO(c.expect);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(std::string(r.status().message()), Catch::Contains(c.expect));
  }
  CHECK(m.asset_count() == 2);
  CHECK(m.base_of(aid(m, "stETH")) == aid(m, "ETH"));
  CHECK_FALSE(m.base_of(aid(m, "ETH")).has_value());
}

TEST_CASE("a stETH/ETH loop is hedged against an ETH crash", "[derived]") {
  const market m = derived_market();
  book b(m);
  must(b.upsert(std::vector<position_input>{loop(m, "L", 85.0)}));  // HF 1.0886
  const auto rep = must(cascade_simulator{}.run(b, std::vector<shock>{{aid(m, "ETH"), -0.30}}));
  // stETH follows ETH: 0.995 x 1400 = 1393; collateral and debt fall together.
  CHECK(rep.shocked_prices[aid(m, "stETH").index()] == Approx(1393.0).epsilon(1e-14));
  CHECK(rep.rounds.empty());
}

TEST_CASE("an ETH crash reaches stETH collateral in every protocol that takes it", "[derived]") {
  const market m = derived_market();
  book b(m);
  // 10 stETH against 15000 USDC: HF 10*1990*0.93/15000 = 1.2338 -> 0.925 at ETH -25%.
  must(b.upsert(std::vector<position_input>{
      {"S", pid(m, "lend"), "", {{aid(m, "stETH"), 10.0, 0.0}, {aid(m, "USDC"), 0.0, 15000.0}}}}));
  const auto rep = must(cascade_simulator{}.run(b, std::vector<shock>{{aid(m, "ETH"), -0.25}}));
  REQUIRE(rep.rounds.size() >= 1);
  CHECK(rep.rounds[0].liquidated == 1);
  CHECK(rep.rounds[0].sold[0].first == aid(m, "stETH"));
}

TEST_CASE("a stETH depeg spirals through loops: sales push the ratio down", "[derived]") {
  const market m = derived_market();
  book b(m);
  std::vector<position_input> loops;
  // ETH debt 84..92.7: HF = 92.54 / debt, 1.10 down to 0.998 before any shock. At a
  // 4% depeg (ratio 0.9552) HF = 88.83 / debt: the loops above 88.83 ETH fail first.
  for (int i = 0; i < 30; ++i) loops.push_back(loop(m, "L" + std::to_string(i), 84.0 + 0.3 * i));
  must(b.upsert(loops));
  const asset_id steth = aid(m, "stETH"), eth = aid(m, "ETH");
  const auto rep = must(cascade_simulator{}.run(b, std::vector<shock>{{steth, -0.04}}));
  REQUIRE(rep.rounds.size() >= 2);
  const std::uint64_t first_round = rep.rounds[0].liquidated;
  CHECK(rep.positions_liquidated > first_round);
  CHECK(rep.input_ratios[steth.index()] == Approx(0.995));
  CHECK(rep.final_ratios[steth.index()] < 0.995 * 0.96);  // the depeg deepened
  CHECK(*rep.amplification[0] > 1.0);
  // The ETH received from the ratio pool was sold on: ETH fell a little.
  CHECK(rep.final_prices[eth.index()] < 2000.0);
  REQUIRE_FALSE(rep.rounds[0].routed.empty());
  CHECK(rep.rounds[0].routed[0].first == eth);

  const market keep = derived_market(2000.0, false);
  book kb(keep);
  must(kb.upsert(loops));
  const auto held =
      must(cascade_simulator{}.run(kb, std::vector<shock>{{aid(keep, "stETH"), -0.04}}));
  CHECK(held.final_prices[aid(keep, "ETH").index()] == 2000.0);  // liquidators kept the ETH
  CHECK(held.rounds[0].routed.empty());
}

TEST_CASE("a pegged wrapped asset is sold as its base", "[derived]") {
  const market m = derived_market();
  book b(m);
  // 1 WBTC (lt 0.75) against 25000 USDC: HF 1.2; BTC -30% -> 0.84, cf 1, bonus 10%:
  // S = 27500 of 28000, i.e. 0.98214 WBTC sold as 0.98214 BTC into the BTC pool.
  must(b.upsert(std::vector<position_input>{
      {"W", pid(m, "lend"), "", {{aid(m, "WBTC"), 1.0, 0.0}, {aid(m, "USDC"), 0.0, 25000.0}}}}));
  const asset_id btc = aid(m, "BTC"), wbtc = aid(m, "WBTC");
  const auto rep = must(cascade_simulator{}.run(b, std::vector<shock>{{btc, -0.30}}));
  REQUIRE(rep.rounds.size() == 1);
  CHECK(rep.rounds[0].sold[0].second == Approx(27500.0 / 28000.0).epsilon(1e-14));
  REQUIRE(rep.rounds[0].routed.size() == 1);
  CHECK(rep.rounds[0].routed[0].first == btc);
  CHECK(rep.rounds[0].routed[0].second == Approx(27500.0 / 28000.0).epsilon(1e-14));
  CHECK(rep.final_prices[btc.index()] < 28000.0);
  CHECK(rep.final_prices[wbtc.index()] == Approx(rep.final_prices[btc.index()]).epsilon(1e-15));
}

TEST_CASE("cascades with derived assets equal the naive evaluation on random books",
          "[derived][property]") {
  int multi_round = 0;
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(0, 1);
    const market m = derived_market(200.0 + 5000.0 * u(rng), seed % 2 == 0);
    book b(m);
    std::vector<position_input> ps;
    const std::vector<std::string> collateral{"ETH", "stETH", "WBTC"};
    for (int i = 0; i < 150; ++i) {
      const std::string& c = collateral[rng() % 3];
      const double amount = std::exp(u(rng) * 3) * (c == "WBTC" ? 0.05 : 1.0);
      const double value = amount * m.asset(aid(m, c)).price * (c == "stETH" ? 0.93 : 0.78);
      const bool eth_debt = c == "stETH" && u(rng) < 0.7;
      const double hf = 0.9 + 0.4 * u(rng);
      position_input in{"p" + std::to_string(i), pid(m, "lend"), "", {{aid(m, c), amount, 0.0}}};
      if (eth_debt) {
        in.legs.push_back({aid(m, "ETH"), 0.0, value / hf / 2000.0});
      } else {
        in.legs.push_back({aid(m, "USDC"), 0.0, value / hf});
      }
      ps.push_back(in);
    }
    must(b.upsert(ps));
    std::vector<shock> shocks{{aid(m, seed % 3 == 0   ? "stETH"
                                      : seed % 3 == 1 ? "ETH"
                                                      : "BTC"),
                               -0.02 - 0.2 * u(rng)}};
    const auto rep = must(cascade_simulator{}.run(b, shocks));
    const auto naive = naive_cascade(b, shocks, 100);
    INFO("seed " << seed);
    REQUIRE(rep.rounds.size() == naive.liquidated_per_round.size());
    multi_round += rep.rounds.size() >= 3;
    for (std::size_t r = 0; r < rep.rounds.size(); ++r) {
      CHECK(rep.rounds[r].liquidated == naive.liquidated_per_round[r]);
      CHECK(rep.rounds[r].repaid_usd == Approx(naive.repaid_per_round[r]).epsilon(1e-12));
      for (std::size_t a = 0; a < m.asset_count(); ++a) {
        CHECK(rep.rounds[r].prices[a] == Approx(naive.prices_per_round[r][a]).epsilon(1e-12));
      }
    }
  }
  CHECK(multi_round >= 8);
}

TEST_CASE("a tick of the base moves the derived asset unless the batch prices it",
          "[derived][book]") {
  const market m = derived_market();
  book b(m);
  must(b.upsert(std::vector<position_input>{loop(m, "l", 90.0)}));
  const asset_id eth = aid(m, "ETH");
  const asset_id steth = aid(m, "stETH");
  std::vector<crossing> xs;
  must(b.apply_ticks(std::vector<tick>{{eth, 1000.0}}, xs));
  CHECK(b.prices()[steth.index()] == Approx(995.0).epsilon(1e-15));
  // The loop's HF does not move with ETH: stETH follows it.
  CHECK(*b.health("l") == Approx(100 * 1990 * 0.93 / (90 * 2000.0)).epsilon(1e-12));
  // A batch pricing stETH itself keeps that price; the next ETH tick keeps its ratio.
  must(b.apply_ticks(std::vector<tick>{{eth, 1200.0}, {steth, 1100.0}}, xs));
  CHECK(b.prices()[steth.index()] == 1100.0);
  must(b.apply_ticks(std::vector<tick>{{eth, 2400.0}}, xs));
  CHECK(b.prices()[steth.index()] == Approx(2200.0).epsilon(1e-12));
  // WBTC is pegged to BTC: it follows one for one.
  must(b.apply_ticks(std::vector<tick>{{aid(m, "BTC"), 30000.0}}, xs));
  CHECK(b.prices()[aid(m, "WBTC").index()] == Approx(30000.0).epsilon(1e-15));
}
