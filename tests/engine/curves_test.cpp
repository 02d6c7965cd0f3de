#include "engine/curves.hpp"

#include <cmath>

#include "support/fixtures.hpp"

using namespace cascade;
using cascade::testing::aid;
using cascade::testing::must;
using cascade::testing::pid;

namespace {

market thin_market() {
  market m;
  must(m.add_asset({"ETH", 2000.0, pool{100.0, 200000.0}}));
  must(m.add_asset({"USDC", 1.0, std::nullopt}));
  must(m.add_asset({"WBTC", 40000.0, std::nullopt}));
  must(m.add_protocol(
      {"lend", protocol_kind::pooled, 0.5, 0.95, {{"ETH", {0.80, 0.05}}, {"WBTC", {0.75, 0.10}}}}));
  return m;
}

position_input pos(const market& m, std::string id, std::string_view coll, double amount,
                   double usdc) {
  return {std::move(id),
          pid(m, "lend"),
          "",
          {{aid(m, coll), amount, 0.0}, {aid(m, "USDC"), 0.0, usdc}}};
}

}  // namespace

TEST_CASE("liquidation curve: value liquidatable at each drop, others fixed", "[curves]") {
  const market m = thin_market();
  book b(m);
  // A: 10 ETH vs 12000: liquidatable once 16000 (1 - x) < 12000, i.e. x > 0.25.
  // B: 1 WBTC vs 31000: HF 30000/31000 < 1 at every ETH drop.
  // C: 10 ETH vs 4000: x > 0.75.
  must(b.upsert(std::vector<position_input>{
      pos(m, "A", "ETH", 10, 12000), pos(m, "B", "WBTC", 1, 31000), pos(m, "C", "ETH", 10, 4000)}));
  const std::vector<double> drops{0.0, 0.25, 0.3, 0.8};
  const auto curve = must(liquidation_curve(b, aid(m, "ETH"), drops));
  REQUIRE(curve.size() == 4);
  CHECK(curve[0].positions == 1);
  CHECK(curve[0].collateral_usd == Approx(40000.0));
  CHECK(curve[1].positions == 1);  // HF exactly 1 at x = 0.25: not liquidatable
  CHECK(curve[2].positions == 2);
  CHECK(curve[2].collateral_usd == Approx(40000.0 + 10 * 1400.0));
  CHECK(curve[2].debt_usd == Approx(31000.0 + 12000.0));
  CHECK(curve[3].positions == 3);
  CHECK(curve[3].collateral_usd == Approx(40000.0 + 2 * 10 * 400.0));
  CHECK_FALSE(liquidation_curve(b, aid(m, "ETH"), std::vector<double>{1.0}).ok());
  CHECK_FALSE(liquidation_curve(b, asset_id{7}, drops).ok());
}

TEST_CASE("cascade curve and critical shock on a thin pool", "[curves]") {
  const market m = thin_market();
  book b(m);
  std::vector<position_input> ps;
  for (int i = 0; i < 30; ++i)
    ps.push_back(pos(m, "p" + std::to_string(i), "ETH", 1.0, 1500.0 - 12.0 * i));
  must(b.upsert(ps));
  cascade_simulator sim;
  const auto g = grid(0.0, 0.5, 10);
  REQUIRE(g.size() == 11);
  CHECK(g[10] == 0.5);
  const auto curve = must(cascade_curve(b, aid(m, "ETH"), g, sim));
  CHECK(curve[0].positions_liquidated == 0);
  CHECK(curve[0].final_drop == Approx(0.0).margin(1e-15));
  for (std::size_t i = 1; i < curve.size(); ++i) {
    CHECK(curve[i].final_drop >= curve[i].shock - 1e-12);
    CHECK(curve[i].positions_liquidated >= curve[i - 1].positions_liquidated);
  }
  critical_shock_options strict;
  strict.bad_debt_fraction = 0.0;  // the definition: any bad debt counts
  const auto crit = must(find_critical_shock(b, aid(m, "ETH"), sim, strict));
  REQUIRE(crit.shock.has_value());
  CHECK((crit.amplifies || crit.bad_debt));
  // Just below the critical shock the cascade neither doubles the drop nor leaves bad
  // debt; at it, it does.
  const double below = *crit.shock - 2e-4;
  const auto at =
      must(cascade_curve(b, aid(m, "ETH"), std::vector<double>{*crit.shock, below}, sim));
  CHECK(crit.baseline_drop == 0.0);
  CHECK((at[0].final_drop >= 2 * at[0].shock || at[0].bad_debt_usd > 0));
  CHECK_FALSE((at[1].final_drop >= 2 * at[1].shock || at[1].bad_debt_usd > 0));
}

TEST_CASE("critical shock is measured against the cascade of no shock at all", "[curves]") {
  const market m = thin_market();
  book b(m);
  std::vector<position_input> ps;
  for (int i = 0; i < 30; ++i)
    ps.push_back(pos(m, "p" + std::to_string(i), "ETH", 1.0, 1500.0 - 12.0 * i));
  // Dust already under 1 and insolvent: it cascades a little with no shock.
  ps.push_back(pos(m, "dust", "ETH", 0.01, 19.5));
  must(b.upsert(ps));
  cascade_simulator sim;
  const auto crit = must(find_critical_shock(b, aid(m, "ETH"), sim));
  CHECK(crit.baseline_bad_debt_usd > 0.0);
  CHECK(crit.baseline_drop > 0.0);
  REQUIRE(crit.shock.has_value());
  CHECK(*crit.shock > 0.01);  // the dust alone does not make the market critical
}

TEST_CASE("a book that never cascades has no critical shock", "[curves]") {
  const market m = thin_market();
  book b(m);
  must(b.upsert(std::vector<position_input>{pos(m, "safe", "WBTC", 1.0, 100.0)}));
  cascade_simulator sim;
  const auto crit = must(find_critical_shock(b, aid(m, "ETH"), sim));
  CHECK_FALSE(crit.shock.has_value());
  CHECK(crit.cascades_run == 46);  // the baseline and 45 grid points
}

TEST_CASE("one-factor shocks scale each asset by its beta", "[curves]") {
  const auto s = must(one_factor_shocks(std::vector<double>{1.0, 0.0, 1.5}, -0.2));
  REQUIRE(s.size() == 2);
  CHECK(s[0].asset.value == 0);
  CHECK(s[0].fraction == Approx(-0.2));
  CHECK(s[1].asset.value == 2);
  CHECK(s[1].fraction == Approx(-0.3));
  CHECK_FALSE(one_factor_shocks(std::vector<double>{6.0}, -0.2).ok());
}

TEST_CASE("immaterial new bad debt does not make a shock critical", "[curves]") {
  const market m = thin_market();
  book b(m);
  std::vector<position_input> ps;
  // A large healthy book and one small position that goes under at any ETH drop:
  // 0.01 ETH against 19 USDC is HF 0.84 already; its shortfall grows with the drop.
  for (int i = 0; i < 20; ++i)
    ps.push_back(pos(m, "big" + std::to_string(i), "WBTC", 10.0, 100000.0));
  ps.push_back(pos(m, "dust", "ETH", 0.01, 19.0));
  must(b.upsert(ps));
  cascade_simulator sim;
  critical_shock_options any;
  any.bad_debt_fraction = 0.0;
  const auto strict = must(find_critical_shock(b, aid(m, "ETH"), sim, any));
  REQUIRE(strict.shock.has_value());
  CHECK(*strict.shock < 0.03);  // any extra cent of bad debt counts
  const auto material = must(find_critical_shock(b, aid(m, "ETH"), sim));
  CHECK(material.material_bad_debt_usd == Approx(1e-4 * (20 * 100000.0 + 19.0)));
  CHECK_FALSE(material.shock.has_value());  // the dust never owes $200 more
}
