// Liquidity beyond model v1: depth curves, routing across venues, withdrawal under
// stress, with the arithmetic worked by hand in the comments.
#include "engine/liquidity.hpp"

#include <catch2/catch.hpp>
#include <cmath>

#include "support/fixtures.hpp"

using namespace cascade;
using cascade::testing::must;

namespace {

// Depth quoted at 100: $100k moves the price 1%, $1M moves it 5%.
liquidity_spec two_point_curve() {
  liquidity_spec s;
  s.venues.push_back({"book", std::nullopt, {{0.01, 100'000.0}, {0.05, 1'000'000.0}}});
  return s;
}

}  // namespace

TEST_CASE("depth curve: marginal price and proceeds on a two-point curve", "[liquidity]") {
  liquidity l = liquidity::from_spec(two_point_curve(), 100.0);
  CHECK(l.price() == 100.0);
  CHECK_FALSE(l.is_v1_pool());

  // 500 units = $50k at mid: half of the first segment, drop 0.5%, price 99.5.
  // Proceeds: 500 x (100 + 99.5) / 2 = 49,875.
  CHECK(l.proceeds(0.0, 500.0) == Approx(49'875.0).epsilon(1e-12));
  // 5,000 units = $500k: segment 1 (1,000 units, 100 -> 99) fetches 99,500; then
  // $400k on segment 2 (slope 0.04 / $900k): drop 0.01 + 400k x 0.04 / 900k = 0.027777..,
  // price 97.2222.., 4,000 x (99 + 97.2222..) / 2 = 392,444.44..; total 491,944.44..
  CHECK(l.proceeds(0.0, 5'000.0) == Approx(491'944.444444444).epsilon(1e-12));
  // Queue-aware: 4,000 units behind 1,000 already sold fetch segment 2's share only.
  CHECK(l.proceeds(1'000.0, 4'000.0) == Approx(392'444.444444444).epsilon(1e-12));
  CHECK(l.price() == 100.0);  // proceeds never moves the state

  CHECK(l.sell(500.0) == Approx(49'875.0).epsilon(1e-12));
  CHECK(l.price() == Approx(99.5).epsilon(1e-12));
  CHECK(l.sell(4'500.0) == Approx(491'944.444444444 - 49'875.0).epsilon(1e-12));
  CHECK(l.price() == Approx(100.0 * (1.0 - 0.01 - 400'000.0 * 0.04 / 900'000.0)).epsilon(1e-12));

  // Beyond the last point the last slope continues: $2M -> drop 0.05 + 1M x 0.04 / 900k
  // = 0.094444.., price 90.5556; the price reaches 0 at $1M + 0.95 x 900k / 0.04 = $22.375M.
  liquidity far = liquidity::from_spec(two_point_curve(), 100.0);
  far.sell(20'000.0);
  CHECK(far.price() == Approx(100.0 * (1.0 - 0.05 - 1e6 * 0.04 / 9e5)).epsilon(1e-12));
  liquidity empty = liquidity::from_spec(two_point_curve(), 100.0);
  empty.sell(300'000.0);  // $30M > $22.375M: the curve is exhausted
  CHECK(empty.price() == 0.0);
  CHECK(empty.proceeds(0.0, 1'000.0) == 0.0);

  // Re-centred at 50: the depth in units is the same, so 500 units still move the
  // price 0.5%: 49.75, fetching 500 x (50 + 49.75) / 2 = 24,937.5.
  liquidity moved = liquidity::from_spec(two_point_curve(), 100.0);
  moved.sell(3'000.0);
  moved.move_to(50.0);
  CHECK(moved.price() == 50.0);
  CHECK(moved.sell(500.0) == Approx(24'937.5).epsilon(1e-12));
  CHECK(moved.price() == Approx(49.75).epsilon(1e-12));
}

TEST_CASE("routing across a pool and a depth curve ends at one marginal price", "[liquidity]") {
  // Pool 10,000 / 1,000,000 (price 100, k = 1e10) beside a curve with 1% at $100k and
  // 19% at $1M. Selling until both sit at 81:
  //   pool:  sqrt(1e10 / 81) - 10,000 = 1,111.11.. units, fetching 1e6 - sqrt(1e10 x 81)
  //          = 1,000,000 - 900,000 = 100,000;
  //   curve: $1M at mid = 10,000 units, fetching 1,000 x (100 + 99) / 2
  //          + 9,000 x (99 + 81) / 2 = 99,500 + 810,000 = 909,500.
  // q = 11,111.11.. units fetch 1,009,500.
  liquidity_spec s;
  s.venues.push_back({"amm", pool{10'000.0, 1'000'000.0}, {}});
  s.venues.push_back({"cex", std::nullopt, {{0.01, 100'000.0}, {0.19, 1'000'000.0}}});
  const liquidity l = liquidity::from_spec(s, 100.0);
  const double q = 1e5 / 9.0 - 10'000.0 + 10'000.0;
  const auto units = l.route(q);
  REQUIRE(units.size() == 2);
  CHECK(units[0] == Approx(1e5 / 9.0 - 10'000.0).epsilon(1e-9));
  CHECK(units[1] == Approx(10'000.0).epsilon(1e-9));
  CHECK(units[0] + units[1] == q);  // the units sum to q exactly
  const double routed = l.proceeds(0.0, q);
  CHECK(routed == Approx(1'009'500.0).epsilon(1e-9));

  liquidity sold = l;
  CHECK(sold.sell(q) == Approx(routed).epsilon(1e-12));
  CHECK(sold.venue_price(0) == Approx(81.0).epsilon(1e-9));
  CHECK(sold.venue_price(1) == Approx(81.0).epsilon(1e-9));
  CHECK(sold.price() == Approx(81.0).epsilon(1e-9));

  // Either venue alone fetches less:
  //   pool:  1e6 x q / (10,000 + q) = 526,315.79;
  //   curve: $1,111,111 at mid, past the last point by $111,111 at slope 0.18 / $900k:
  //          drop 0.19 + 0.0222 = 0.2122, 909,500 + 1,111.1 x (81 + 78.78) / 2 = 998,265.4.
  const liquidity amm_only = liquidity::from_pool(pool{10'000.0, 1'000'000.0});
  liquidity_spec cex_spec;
  cex_spec.venues.push_back(s.venues[1]);
  const liquidity cex_only = liquidity::from_spec(cex_spec, 100.0);
  CHECK(amm_only.proceeds(0.0, q) == Approx(1e6 * q / (10'000.0 + q)).epsilon(1e-12));
  CHECK(cex_only.proceeds(0.0, q) ==
        Approx(909'500.0 + (q - 10'000.0) * (81.0 + 100.0 * (1.0 - 0.19 - (q * 100.0 - 1e6) *
                                                                           0.18 / 9e5)) /
                               2.0)
            .epsilon(1e-9));
  CHECK(routed > amm_only.proceeds(0.0, q));
  CHECK(routed > cex_only.proceeds(0.0, q));

  // Queue-aware on several venues: what q/2 fetches behind q/2 is the rest of it.
  CHECK(l.proceeds(q / 2.0, q / 2.0) == Approx(routed - l.proceeds(0.0, q / 2.0)).epsilon(1e-9));
}

TEST_CASE("withdrawal: depth falls at once and recovers with the half-life", "[liquidity]") {
  liquidity_spec s;
  s.venues.push_back({"amm", pool{1'000.0, 100'000.0}, {}});
  s.withdrawal = {2.0, 0.0, 0.1, 3600.0};
  liquidity l = liquidity::from_spec(s, 100.0);
  l.observe(100.0, 0.0, 0.0);
  CHECK(l.depth_scale() == 1.0);
  // A 20% drawdown at the same instant: target 1 - 2 x 0.2 = 0.6, taken at once. The
  // pool's reserves shrink to 600 / 60,000 and its price stays 100.
  l.observe(80.0, 0.0, 0.0);
  CHECK(l.depth_scale() == Approx(0.6).epsilon(1e-12));
  CHECK(l.v1_pool().base == Approx(600.0).epsilon(1e-12));
  CHECK(l.price() == Approx(100.0).epsilon(1e-12));
  // Back at 100 one half-life later: target 1, the scale goes halfway back: 0.8; after
  // another half-life 0.9.
  l.observe(100.0, 3600.0, 0.0);
  CHECK(l.depth_scale() == Approx(0.8).epsilon(1e-12));
  l.observe(100.0, 7200.0, 0.0);
  CHECK(l.depth_scale() == Approx(0.9).epsilon(1e-12));
  // Volatility withdraws too: 1 - 0.5 x 0.8 = 0.6 (sensitivity 0.5, 80% annualized).
  s.withdrawal = {0.0, 0.5, 0.1, 3600.0};
  liquidity v = liquidity::from_spec(s, 100.0);
  v.observe(100.0, 0.0, 0.8);
  CHECK(v.depth_scale() == Approx(0.6).epsilon(1e-12));
  // The floor holds: a 90% drawdown with sensitivity 2 asks for -0.8, gets 0.1.
  liquidity f = liquidity::from_spec({{{"amm", pool{1'000.0, 100'000.0}, {}}}, {2.0, 0.0, 0.1, 3600.0}},
                                     100.0);
  f.observe(100.0, 0.0, 0.0);
  f.observe(10.0, 0.0, 0.0);
  CHECK(f.depth_scale() == Approx(0.1).epsilon(1e-12));
}

TEST_CASE("withdrawal: the running high decays towards the price with the half-life",
          "[liquidity]") {
  liquidity_spec s;
  s.venues.push_back({"book", std::nullopt, {{0.01, 100'000.0}}});
  s.withdrawal = {2.0, 0.0, 0.1, 3600.0};
  liquidity l = liquidity::from_spec(s, 100.0);
  l.observe(100.0, 0.0, 0.0);
  // One half-life at 80: high = 80 + (100 - 80) / 2 = 90, drawdown 1/9, target 7/9.
  l.observe(80.0, 3600.0, 0.0);
  CHECK(l.depth_scale() == Approx(7.0 / 9.0).epsilon(1e-12));
  // A curve's depth shrinks with the scale: 500 units now move the price
  // 500 x 100 / (7/9) x 0.01 / 100k = 0.643%.
  const double before = l.price();
  l.sell(500.0);
  CHECK(l.price() == Approx(before * (1.0 - 500.0 * 100.0 / (7.0 / 9.0) * 1e-7)).epsilon(1e-12));
  // The cascade's rule: down only.
  l.withdraw_for_drawdown(0.05);
  CHECK(l.depth_scale() == Approx(7.0 / 9.0).epsilon(1e-12));
  l.withdraw_for_drawdown(0.25);
  CHECK(l.depth_scale() == Approx(0.5).epsilon(1e-12));
}

TEST_CASE("a position larger than the pool's depth fetches far less than its value",
          "[liquidity]") {
  // ETH at 2000 in a pool of 1,000 ETH / 2M USD. Selling 1,000 ETH (worth 2M at the
  // price) fetches 2M x 1000 / 2000 = 1M; 10,000 ETH (worth 20M) fetch 2M x 10/11.
  const liquidity l = liquidity::from_pool(pool{1'000.0, 2'000'000.0});
  CHECK(l.proceeds(0.0, 1'000.0) == Approx(1'000'000.0).epsilon(1e-12));
  CHECK(l.proceeds(0.0, 10'000.0) == Approx(2e6 * 10.0 / 11.0).epsilon(1e-12));
  CHECK(l.proceeds(0.0, 10'000.0) < 0.1 * 10'000.0 * l.price());
  // Behind 1,000 ETH queued first: 2M x 2000/3000 - 1M = 333,333.33.
  CHECK(l.proceeds(1'000.0, 1'000.0) == Approx(1e6 / 3.0).epsilon(1e-12));
}

TEST_CASE("a v1 pool sells with v1's arithmetic bit for bit", "[liquidity]") {
  pool p{1'054.0925533894597, 1'897'366.5961010276};
  liquidity l = liquidity::from_pool(p);
  for (const double q : {43.75, 0.125, 1e-9, 2500.0}) {
    const double out = p.quote * q / (p.base + q);
    p.base += q;
    p.quote -= out;
    CHECK(l.sell(q) == out);
    CHECK(l.price() == p.quote / p.base);
    CHECK(l.v1_pool().base == p.base);
    CHECK(l.v1_pool().quote == p.quote);
  }
}

TEST_CASE("liquidity specs are validated, and an asset has venues or a pool", "[liquidity]") {
  const auto message = [](const liquidity_spec& s) { return std::string(s.validate(100.0).message()); };
  CHECK(two_point_curve().validate(100.0).ok());
  liquidity_spec s;
  CHECK_THAT(message(s), Catch::Contains("at least one venue"));
  s.venues.push_back({"book", std::nullopt, {{0.05, 100.0}, {0.01, 200.0}}});
  CHECK_THAT(message(s), Catch::Contains("venues[0] 'book': depth[1].drop 0.01"));
  s.venues[0].depth = {{0.01, 100.0}, {0.05, 100.0}};
  CHECK_THAT(message(s), Catch::Contains("depth[1].usd 100 must be finite and above"));
  s.venues[0].depth = {{0.01, 100.0}};
  s.venues[0].cp = pool{1.0, 100.0};
  CHECK_THAT(message(s), Catch::Contains("either a pool or a depth curve"));
  s.venues[0].depth.clear();
  s.venues[0].cp = pool{1.0, 101.0};
  CHECK_THAT(message(s), Catch::Contains("differs from the asset's price 100"));
  s.venues[0].cp = pool{1.0, 100.0};
  s.venues.push_back({"book", std::nullopt, {{0.01, 100.0}}});
  CHECK_THAT(message(s), Catch::Contains("venues[1] 'book': duplicate venue name"));
  s.venues.pop_back();
  s.withdrawal.floor = 0.0;
  CHECK_THAT(message(s), Catch::Contains("withdrawal: floor 0 is outside (0, 1]"));

  market m;
  asset_spec both{"ETH", 100.0, pool{1.0, 100.0}};
  both.venues = two_point_curve();
  CHECK_THAT(std::string(m.add_asset(both).status().message()),
             Catch::Contains("venues replace the pool"));
  asset_spec bad{"ETH", 100.0, std::nullopt};
  bad.venues = liquidity_spec{};
  CHECK_THAT(std::string(m.add_asset(bad).status().message()),
             Catch::Contains("asset 'ETH': venues: at least one venue"));
  CHECK(m.asset_count() == 0);
  asset_spec good{"ETH", 100.0, std::nullopt};
  good.venues = two_point_curve();
  const asset_id eth = must(m.add_asset(good));
  // of_asset centres the venues at the price asked for.
  const auto l = liquidity::of_asset(m.asset(eth), 90.0);
  REQUIRE(l.has_value());
  CHECK(l->price() == 90.0);
}
