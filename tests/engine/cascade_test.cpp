// Cascade model v1: worked examples with hand-checked arithmetic, and properties on
// random books against a naive reference that evaluates every position every round.
#include "engine/cascade.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <random>

#include "support/fixtures.hpp"
#include "support/naive_cascade.hpp"

using namespace cascade;
using cascade::testing::aid;
using cascade::testing::must;
using cascade::testing::naive_cascade;
using cascade::testing::naive_result;
using cascade::testing::pid;

namespace {

// ETH 2000 with a pool of 1000 ETH / 2M USD (k = 2e9), USDC 1 and WBTC 40000 without
// pools. lend: ETH lt 0.80 bonus 0.05, USDC lt 0.85 bonus 0.04, WBTC lt 0.75 bonus 0.10,
// close factor 0.5 above HF 0.95.
market example_market(double eth_pool_base = 1000.0) {
  market m;
  must(m.add_asset({"ETH", 2000.0, pool{eth_pool_base, eth_pool_base * 2000.0}}));
  must(m.add_asset({"USDC", 1.0, std::nullopt}));
  must(m.add_asset({"WBTC", 40000.0, std::nullopt}));
  must(m.add_protocol({"lend",
                       protocol_kind::pooled,
                       0.5,
                       0.95,
                       {{"ETH", {0.80, 0.05}}, {"USDC", {0.85, 0.04}}, {"WBTC", {0.75, 0.10}}}}));
  must(m.add_protocol({"vault", protocol_kind::cdp, 1.0, 1.0, {{"ETH", {0.75, 0.10}}}}));
  return m;
}

position_input eth_vs_usdc(const market& m, std::string id, double eth, double usdc,
                           std::string_view protocol = "lend") {
  return {std::move(id),
          pid(m, protocol),
          "",
          {{aid(m, "ETH"), eth, 0.0}, {aid(m, "USDC"), 0.0, usdc}}};
}

cascade_report run(const book& b, std::vector<shock> shocks, cascade_options o = {}) {
  cascade_simulator sim;
  return must(sim.run(b, shocks, o));
}

}  // namespace

TEST_CASE("partial liquidation with close factor 0.5 and a 5% bonus", "[cascade]") {
  const market m = example_market();
  book b(m);
  // HF at 2000: 10*2000*0.8/15000 = 1.0667; after -10%: 14400/15000 = 0.96 >= 0.95.
  must(b.upsert(std::vector<position_input>{eth_vs_usdc(m, "P", 10.0, 15000.0)}));
  const asset_id eth = aid(m, "ETH");
  cascade_simulator sim;
  const auto rep = must(sim.run(b, std::vector<shock>{{eth, -0.10}}));
  REQUIRE(rep.rounds.size() == 1);
  const round_report& r1 = rep.rounds[0];
  CHECK(r1.liquidated == 1);
  // R = 0.5 * 15000 = 7500; S = 7500 * 1.05 = 7875; sold = 10 * 7875/18000 = 4.375.
  CHECK(r1.repaid_usd == Approx(7500.0).epsilon(1e-15));
  CHECK(r1.seized_usd == Approx(7875.0).epsilon(1e-15));
  REQUIRE(r1.sold.size() == 1);
  CHECK(r1.sold[0].first == eth);
  CHECK(r1.sold[0].second == Approx(4.375).epsilon(1e-15));
  // Pool at 1800: base sqrt(2e9/1800), quote sqrt(2e9*1800); selling 4.375 ETH moves
  // the price to 1785.150749360365 (computed by hand from those formulas).
  CHECK(r1.prices[eth.index()] == Approx(1785.150749360365).epsilon(1e-13));
  CHECK(rep.final_prices[eth.index()] == r1.prices[eth.index()]);
  // Round 2: 5.625 ETH * 1785.15 * 0.8 / 7500 = 1.0711: safe, so the cascade stops.
  const auto legs = sim.liquidated_legs(*b.find("P"));
  REQUIRE(legs.has_value());
  CHECK(legs->collateral[0] == Approx(5.625).epsilon(1e-15));
  CHECK(legs->debt[1] == Approx(7500.0).epsilon(1e-15));
  CHECK(rep.positions_liquidated == 1);
  CHECK(rep.bad_debt_usd() == 0.0);
  // amplification = (1785.15/2000 - 1) / -0.10 = 1.0742
  REQUIRE(rep.amplification.size() == 1);
  CHECK(*rep.amplification[0] == Approx((1785.150749360365 / 2000.0 - 1.0) / -0.10));
}

TEST_CASE("Compound's identity: seized value is repaid value times 1.05", "[cascade]") {
  // Compound v2 in 2019: liquidators repaid 10,375,064 USD and earned 518,752 USD,
  // exactly the 5% incentive. With enough collateral the model reproduces it.
  const market m = example_market(1e9);
  book b(m);
  std::vector<position_input> ps;
  for (int i = 0; i < 50; ++i)
    ps.push_back(eth_vs_usdc(m, "p" + std::to_string(i), 10.0 + i, (10.0 + i) * 1460.0));
  must(b.upsert(ps));
  const auto rep = run(b, {{aid(m, "ETH"), -0.15}});
  REQUIRE(rep.total_repaid_usd > 0);
  CHECK(std::abs(rep.total_seized_usd / (rep.total_repaid_usd * 1.05) - 1.0) < 1e-12);
  const double repaid = 10'375'064.0;
  CHECK(std::abs(repaid * 0.05 - 518'752.0) / 518'752.0 < 1e-5);
}

TEST_CASE("a position under full_liquidation_hf is closed whole", "[cascade]") {
  const market m = example_market();
  book b(m);
  // At 1800: HF = 14400/17000 = 0.847 < 0.95, so cf = 1: R = 17000, S = 17850 < 18000.
  must(b.upsert(std::vector<position_input>{eth_vs_usdc(m, "P", 10.0, 17000.0)}));
  cascade_simulator sim;
  const auto rep = must(sim.run(b, std::vector<shock>{{aid(m, "ETH"), -0.10}}));
  REQUIRE(rep.rounds.size() == 1);
  CHECK(rep.rounds[0].repaid_usd == Approx(17000.0).epsilon(1e-15));
  CHECK(rep.rounds[0].seized_usd == Approx(17850.0).epsilon(1e-15));
  const auto legs = sim.liquidated_legs(*b.find("P"));
  CHECK(legs->debt[1] == 0.0);
  CHECK(legs->collateral[0] == Approx(10.0 - 17850.0 / 1800.0).epsilon(1e-13));
  CHECK(rep.bad_debt_usd() == 0.0);
}

TEST_CASE("collateral that cannot cover the debt leaves bad debt, written off", "[cascade]") {
  const market m = example_market();
  book b(m);
  // At 1800: C = 18000, D = 20000, HF 0.72 -> cf 1, S = 21000 > C: S = 18000,
  // R = 18000/1.05 = 17142.857..., bad debt = 20000 - 17142.857... = 2857.142857...
  must(b.upsert(std::vector<position_input>{eth_vs_usdc(m, "P", 10.0, 20000.0)}));
  cascade_simulator sim;
  const auto rep = must(sim.run(b, std::vector<shock>{{aid(m, "ETH"), -0.10}}));
  REQUIRE(rep.rounds.size() == 1);
  CHECK(rep.rounds[0].repaid_usd == Approx(18000.0 / 1.05).epsilon(1e-15));
  CHECK(rep.rounds[0].seized_usd == 18000.0);
  CHECK(rep.rounds[0].sold[0].second == 10.0);
  CHECK(rep.protocols[pid(m, "lend").index()].bad_debt_usd ==
        Approx(20000.0 - 18000.0 / 1.05).epsilon(1e-12));
  const auto legs = sim.liquidated_legs(*b.find("P"));
  CHECK(legs->collateral[0] == 0.0);
  CHECK(legs->debt[1] == 0.0);
  CHECK(rep.total_repaid_usd == rep.rounds[0].repaid_usd);  // write-off is not repaid
}

TEST_CASE("one protocol's fire sale pushes another protocol's position under 1", "[cascade]") {
  const market m = example_market(100.0);  // a thin pool: 100 ETH
  book b(m);
  // lend's P (HF 0.96 at 1800) is liquidated in round 1 and sells 4.375 ETH into the
  // pool: 2e7 / (sqrt(2e7/1800) + 4.375)^2 = 1659.4. vault's Q has HF
  // 10*1800*0.75/12500 = 1.08 at the shocked price but 0.9956 after the sale.
  must(b.upsert(std::vector<position_input>{eth_vs_usdc(m, "P", 10.0, 15000.0),
                                            eth_vs_usdc(m, "Q", 10.0, 12500.0, "vault")}));
  const auto rep = run(b, {{aid(m, "ETH"), -0.10}});
  REQUIRE(rep.rounds.size() >= 2);
  CHECK(rep.rounds[0].liquidated == 1);
  const double p2 = rep.rounds[0].prices[0];
  const double base = std::sqrt(2e7 / 1800.0) + 4.375;
  CHECK(p2 == Approx(2e7 / (base * base)).epsilon(1e-12));
  CHECK(10 * p2 * 0.75 / 12500 < 1.0);
  const protocol_report& lend = rep.protocols[pid(m, "lend").index()];
  const protocol_report& vault = rep.protocols[pid(m, "vault").index()];
  CHECK(lend.first_round == 1);
  CHECK_FALSE(lend.contagion_only);
  CHECK(vault.first_round == 2);
  CHECK(vault.contagion_only);
  CHECK(vault.liquidated == 1);
  CHECK(rep.positions_liquidated == 2);
}

TEST_CASE("seized collateral of an asset without a pool moves no price", "[cascade]") {
  const market m = example_market();
  book b(m);
  const asset_id wbtc = aid(m, "WBTC");
  // 1 WBTC (lt 0.75) against 25000 USDC: HF 1.2; after -30%: 21000/25000 = 0.84 -> cf 1,
  // R = 25000, bonus 0.10: S = 27500 <= C = 28000.
  must(b.upsert(std::vector<position_input>{
      {"W", pid(m, "lend"), "", {{wbtc, 1.0, 0.0}, {aid(m, "USDC"), 0.0, 25000.0}}}}));
  const auto rep = run(b, {{wbtc, -0.30}});
  REQUIRE(rep.rounds.size() == 1);
  CHECK(rep.rounds[0].sold[0].first == wbtc);
  CHECK(rep.rounds[0].sold[0].second == Approx(27500.0 / 28000.0).epsilon(1e-15));
  CHECK(rep.rounds[0].seized_usd == Approx(27500.0).epsilon(1e-15));
  CHECK(rep.final_prices[wbtc.index()] == 28000.0);
  CHECK(*rep.amplification[0] == Approx(1.0));  // final drop equals the shock
}

TEST_CASE("a position without debt is never liquidated", "[cascade]") {
  const market m = example_market();
  book b(m);
  must(b.upsert(
      std::vector<position_input>{{"N", pid(m, "lend"), "", {{aid(m, "ETH"), 10.0, 0.0}}}}));
  const auto rep = run(b, {{aid(m, "ETH"), -0.9}});
  CHECK(rep.rounds.empty());
  CHECK(rep.positions_liquidated == 0);
  CHECK(rep.final_prices[0] == Approx(200.0));
}

TEST_CASE("no shock runs the cascade the current state sets off", "[cascade]") {
  const market m = example_market();
  book b(m);
  must(b.upsert(std::vector<position_input>{eth_vs_usdc(m, "under", 10.0, 17000.0),  // HF 0.941
                                            eth_vs_usdc(m, "fine", 10.0, 10000.0)}));
  const auto rep = run(b, {});
  REQUIRE(rep.rounds.size() >= 1);
  CHECK(rep.rounds[0].liquidated == 1);
  CHECK(rep.amplification.empty());
}

TEST_CASE("a shock of 0 has null amplification and moves the pool at constant k", "[cascade]") {
  const market m = example_market();
  book b(m);
  must(b.upsert(std::vector<position_input>{eth_vs_usdc(m, "P", 10.0, 17000.0)}));
  const auto rep = run(b, {{aid(m, "ETH"), 0.0}});
  REQUIRE(rep.amplification.size() == 1);
  CHECK_FALSE(rep.amplification[0].has_value());
  REQUIRE(rep.final_pools[0].has_value());
  CHECK(rep.final_pools[0]->base * rep.final_pools[0]->quote == Approx(2e9));
}

TEST_CASE("max_rounds stops the cascade where it stands", "[cascade]") {
  const market m = example_market(30.0);
  book b(m);
  std::vector<position_input> ps;
  for (int i = 0; i < 40; ++i)
    ps.push_back(eth_vs_usdc(m, "p" + std::to_string(i), 1.0, 1500.0 - 10.0 * i));
  must(b.upsert(ps));
  cascade_options o;
  o.max_rounds = 2;
  const auto capped = run(b, {{aid(m, "ETH"), -0.10}}, o);
  const auto full = run(b, {{aid(m, "ETH"), -0.10}});
  CHECK(capped.rounds.size() == 2);
  REQUIRE(full.rounds.size() > 2);
  CHECK(capped.final_prices == full.rounds[1].prices);
  o.max_rounds = 0;  // "rounds r = 1..max_rounds": none; the report is the shock alone
  const auto none = run(b, {{aid(m, "ETH"), -0.10}}, o);
  CHECK(none.rounds.empty());
  CHECK(none.final_prices == none.shocked_prices);
}

TEST_CASE("bad cascade inputs are refused", "[cascade][bad-input]") {
  const market m = example_market();
  book b(m);
  cascade_simulator sim;
  const asset_id eth = aid(m, "ETH");
  CHECK_THAT(std::string(sim.run(b, std::vector<shock>{{eth, -1.0}}).status().message()),
             Catch::Contains("shock on ETH -1 must be a finite number > -1"));
  CHECK_THAT(
      std::string(sim.run(b, std::vector<shock>{{eth, -0.1}, {eth, -0.2}}).status().message()),
      Catch::Contains("ETH is shocked twice"));
  CHECK_THAT(std::string(sim.run(b, std::vector<shock>{{asset_id{9}, -0.1}}).status().message()),
             Catch::Contains("unknown asset"));
  CHECK_FALSE(sim.run(b, std::vector<shock>{{eth, std::nan("")}}).ok());
  cascade_options o;
  o.max_rounds = 10;
  o.start_prices = {1.0};
  CHECK_THAT(std::string(sim.run(b, {}, o).status().message()),
             Catch::Contains("1 start prices for 3 assets"));
}

// ---------------------------------------------------------------------------------
// Properties on random books.

namespace {

struct random_book {
  market m;
  std::vector<position_input> positions;
};

random_book make_random_book(std::uint64_t seed, std::size_t n_positions) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  random_book rb;
  const int n_assets = 2 + static_cast<int>(rng() % 5);
  for (int a = 0; a < n_assets; ++a) {
    const double price = a == 0 ? 1.0 : std::exp(u(rng) * 8);
    std::optional<pool> pl;
    if (a > 0 && u(rng) < 0.8) {
      const double base = std::exp(u(rng) * 6 + 2);
      pl = pool{base, base * price};
    }
    must(rb.m.add_asset({"A" + std::to_string(a), price, pl}));
  }
  const int n_protocols = 1 + static_cast<int>(rng() % 3);
  for (int p = 0; p < n_protocols; ++p) {
    protocol_spec spec{
        "P" + std::to_string(p), protocol_kind::pooled, 0.3 + 0.7 * u(rng), u(rng), {}};
    for (int a = 0; a < n_assets; ++a) {
      if (u(rng) < 0.8)
        spec.assets.push_back({"A" + std::to_string(a), {0.5 + 0.45 * u(rng), 0.15 * u(rng)}});
    }
    must(rb.m.add_protocol(spec));
  }
  const auto prices = rb.m.reference_prices();
  for (std::size_t i = 0; i < n_positions; ++i) {
    const auto proto = protocol_id::from_index(rng() % static_cast<std::uint64_t>(n_protocols));
    const protocol& pr = rb.m.get_protocol(proto);
    position_input in{"x" + std::to_string(i), proto, "", {}};
    double wc = 0;
    const int legs = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < legs; ++k) {
      const auto a = asset_id::from_index(rng() % static_cast<std::uint64_t>(n_assets));
      leg l{a, 0, 0};
      if (pr.params(a) && u(rng) < 0.7) {
        l.collateral = std::exp(u(rng) * 5) / prices[a.index()];
        wc += l.collateral * prices[a.index()] * pr.threshold(a);
      }
      if (u(rng) < 0.15) l.debt = std::exp(u(rng) * 3) / prices[a.index()];
      in.legs.push_back(l);
    }
    if (u(rng) < 0.85) {
      const auto a = asset_id::from_index(rng() % static_cast<std::uint64_t>(n_assets));
      in.legs.push_back({a, 0.0, (wc + 1.0) / (0.85 + 0.6 * u(rng)) / prices[a.index()]});
    }
    rb.positions.push_back(std::move(in));
  }
  return rb;
}

}  // namespace

TEST_CASE("the cascade equals a naive every-position evaluation on random books",
          "[cascade][property]") {
  int multi_round = 0;
  int with_bad_debt = 0;
  for (std::uint64_t seed = 1; seed <= 60; ++seed) {
    random_book rb = make_random_book(seed, 20 + seed * 7);
    book b(rb.m);
    must(b.upsert(rb.positions));
    // Some live history: ticks move book prices away from the references.
    std::mt19937_64 rng(seed * 77);
    std::vector<crossing> ev;
    if (seed % 2 == 0) {
      for (int i = 0; i < 20; ++i) {
        const auto a = asset_id::from_index(rng() % rb.m.asset_count());
        must(b.apply_ticks(
            std::vector<tick>{
                {a, b.prices()[a.index()] * (0.97 + 0.06 * (double(rng() % 1000) / 1000))}},
            ev));
      }
    }
    std::vector<shock> shocks;
    for (std::size_t a = 1; a < rb.m.asset_count(); ++a) {
      if (rng() % 2)
        shocks.push_back({asset_id::from_index(a), -0.05 - 0.4 * double(rng() % 1000) / 1000});
    }
    const auto digest = b.digest();
    cascade_simulator sim;
    const auto rep = must(sim.run(b, shocks));
    const naive_result naive = naive_cascade(b, shocks, 100);
    INFO("seed " << seed);
    REQUIRE(rep.rounds.size() == naive.liquidated_per_round.size());
    multi_round += rep.rounds.size() >= 3;
    with_bad_debt += rep.bad_debt_usd() > 0;
    for (std::size_t r = 0; r < rep.rounds.size(); ++r) {
      CHECK(rep.rounds[r].liquidated == naive.liquidated_per_round[r]);
      CHECK(rep.rounds[r].repaid_usd == Approx(naive.repaid_per_round[r]).epsilon(1e-12));
      for (std::size_t a = 0; a < rb.m.asset_count(); ++a) {
        CHECK(rep.rounds[r].prices[a] == Approx(naive.prices_per_round[r][a]).epsilon(1e-12));
      }
    }
    for (std::size_t p = 0; p < rb.m.protocol_count(); ++p) {
      CHECK(rep.protocols[p].bad_debt_usd == Approx(naive.bad_debt[p]).epsilon(1e-12).margin(1e-9));
    }
    // The live book is never written.
    CHECK(b.digest() == digest);

    // Invariants of the model.
    std::vector<double> sold(rb.m.asset_count(), 0.0), fall(rb.m.asset_count(), 0.0);
    for (const auto& rr : rep.rounds) {
      for (const auto& [a, q] : rr.sold) sold[a.index()] += q;
    }
    for (row_t r = 0; r < b.rows(); ++r) {
      const auto legs = sim.liquidated_legs(r);
      if (!legs) continue;
      const auto assets = b.leg_assets(r);
      for (std::size_t k = 0; k < assets.size(); ++k) {
        CHECK(legs->collateral[k] >= 0.0);
        CHECK(legs->debt[k] >= 0.0);
        CHECK(legs->debt[k] <= b.leg_debt(r)[k]);
        fall[assets[k].index()] += b.leg_collateral(r)[k] - legs->collateral[k];
      }
    }
    for (std::size_t a = 0; a < rb.m.asset_count(); ++a) {
      CHECK(sold[a] == Approx(fall[a]).epsilon(1e-9).margin(1e-12));
    }
    std::vector<double> prev = rep.shocked_prices;
    for (const auto& rr : rep.rounds) {
      for (std::size_t a = 0; a < prev.size(); ++a) CHECK(rr.prices[a] <= prev[a]);
      prev = rr.prices;
      CHECK(rr.repaid_usd >= 0.0);
    }
    for (const auto& pr : rep.protocols) CHECK(pr.bad_debt_usd >= 0.0);
    // Same input, same report.
    const auto again = must(cascade_simulator{}.run(b, shocks));
    CHECK(again.final_prices == rep.final_prices);
    CHECK(again.total_repaid_usd == rep.total_repaid_usd);
    CHECK(again.total_seized_usd == rep.total_seized_usd);
  }
  // The random books must exercise the model, not just pass through it.
  CHECK(multi_round >= 15);
  CHECK(with_bad_debt >= 10);
}

TEST_CASE("the candidate filter evaluates a small part of a large book", "[cascade]") {
  random_book rb = make_random_book(4242, 20000);
  book b(rb.m);
  must(b.upsert(rb.positions));
  cascade_simulator sim;
  const auto rep = must(sim.run(b, std::vector<shock>{{asset_id{1}, -0.2}}));
  const naive_result naive = naive_cascade(b, {{asset_id{1}, -0.2}}, 100);
  REQUIRE(rep.rounds.size() == naive.liquidated_per_round.size());
  const std::uint64_t naive_evaluations = (rep.rounds.size() + 1) * b.size();
  CHECK(rep.evaluations < naive_evaluations / 2);
}
