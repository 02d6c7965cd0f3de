#include <cmath>
#include <limits>

#include "engine/cascade.hpp"
#include "support/fixtures.hpp"

using namespace cascade;
using cascade::testing::aid;
using cascade::testing::must;
using cascade::testing::pid;
using cascade::testing::small_market;

namespace {

struct fixture {
  market m = small_market();
  asset_id eth = aid(m, "ETH"), wbtc = aid(m, "WBTC"), usdc = aid(m, "USDC"), dai = aid(m, "DAI");
  protocol_id lend = pid(m, "lend"), vault = pid(m, "vault");

  std::vector<position_input> four() const {
    return {
        {"A", lend, "0xa", {{eth, 10.0, 0.0}, {usdc, 0.0, 12000.0}}},  // HF 16000/12000
        {"B", lend, "", {{wbtc, 1.0, 0.0}, {dai, 0.0, 20000.0}}},      // HF 30000/20000
        {"C", vault, "0xc", {{eth, 10.0, 0.0}, {dai, 0.0, 10000.0}}},  // HF 13333.3/10000
        {"D", lend, "", {{usdc, 5000.0, 0.0}}},                        // no debt
    };
  }
};

book_options walk_only() {
  book_options o;
  o.scan_fraction = 1.0;
  return o;
}

}  // namespace

TEST_CASE("health factor is weighted collateral over debt at oracle prices", "[book]") {
  fixture f;
  book b(f.m);
  must(b.upsert(f.four()));
  CHECK(b.size() == 4);
  CHECK(*b.health("A") == Approx(16000.0 / 12000.0).epsilon(1e-15));
  CHECK(*b.health("B") == Approx(1.5).epsilon(1e-15));
  CHECK(*b.health("C") == Approx(20000.0 / 1.5 / 10000.0).epsilon(1e-15));
  CHECK(std::isinf(*b.health("D")));
  CHECK(b.band_at(*b.find("D")) == band::healthy);
  CHECK_FALSE(b.health("nope").has_value());
}

TEST_CASE("tick on one asset recomputes only its holders", "[book]") {
  fixture f;
  book b(f.m, walk_only());
  must(b.upsert(f.four()));
  const double hf_b = *b.health("B");
  std::vector<crossing> ev;
  must(b.apply_ticks(std::vector<tick>{{f.eth, 1600.0}}, ev));
  CHECK(b.stats().walks == 1);
  CHECK(b.stats().scans == 0);
  CHECK(b.stats().positions_touched == 2);  // A and C hold ETH
  CHECK(*b.health("A") == Approx(12800.0 / 12000.0).epsilon(1e-14));
  CHECK(*b.health("B") == hf_b);
  CHECK(ev.size() == 2);  // A and C both fall to 1.0667: warn
}

TEST_CASE("a crossing names position, band change, HF before and after, asset and price",
          "[book]") {
  fixture f;
  book b(f.m, walk_only());
  must(b.upsert(std::vector<position_input>{
      {"A", f.lend, "", {{f.eth, 10.0, 0.0}, {f.usdc, 0.0, 12000.0}}}}));
  std::vector<crossing> ev;
  must(b.apply_ticks(std::vector<tick>{{f.eth, 1499.0}}, ev));
  REQUIRE(ev.size() == 1);
  const crossing& c = ev[0];
  CHECK(b.id_at(c.row) == "A");
  CHECK(c.protocol == f.lend);
  CHECK(c.from == band::healthy);
  CHECK(c.to == band::liquidatable);
  CHECK(c.hf_before == Approx(16000.0 / 12000.0));
  CHECK(c.hf_after == Approx(10 * 1499.0 * 0.8 / 12000.0));
  CHECK(c.cause == f.eth);
  CHECK(c.price == 1499.0);
  CHECK(b.band_counts()[f.lend.index()][3] == 1);
}

TEST_CASE("HF exactly 1 is not liquidatable", "[book]") {
  fixture f;
  book b(f.m);
  must(b.upsert(std::vector<position_input>{
      {"A", f.lend, "", {{f.eth, 10.0, 0.0}, {f.usdc, 0.0, 12000.0}}}}));
  std::vector<crossing> ev;
  must(b.apply_ticks(std::vector<tick>{{f.eth, 1500.0}}, ev));
  CHECK(*b.health("A") == 1.0);
  CHECK(b.band_at(*b.find("A")) == band::danger);
}

TEST_CASE("hysteresis: a price flickering around a threshold alerts once", "[book]") {
  fixture f;
  book_options o;
  o.bands.hysteresis = 0.01;
  book b(f.m, o);
  must(b.upsert(std::vector<position_input>{
      {"A", f.lend, "", {{f.eth, 10.0, 0.0}, {f.usdc, 0.0, 12000.0}}}}));
  std::vector<crossing> ev;
  for (double p : {1499.0, 1501.0, 1498.0, 1505.0, 1499.5}) {
    must(b.apply_ticks(std::vector<tick>{{f.eth, p}}, ev));
  }
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].to == band::liquidatable);
  must(b.apply_ticks(std::vector<tick>{{f.eth, 1520.0}}, ev));  // HF 1.0133 >= 1.01
  REQUIRE(ev.size() == 2);
  CHECK(ev[1].from == band::liquidatable);
  CHECK(ev[1].to == band::danger);
}

TEST_CASE("ticks of one asset in a batch coalesce to the last price", "[book]") {
  fixture f;
  book b(f.m);
  must(b.upsert(f.four()));
  std::vector<crossing> ev;
  must(b.apply_ticks(std::vector<tick>{{f.eth, 1000.0}, {f.wbtc, 30000.0}, {f.eth, 1999.0}}, ev));
  CHECK(b.stats().ticks == 2);
  CHECK(b.prices()[f.eth.index()] == 1999.0);
  CHECK(b.prices()[f.wbtc.index()] == 30000.0);
  CHECK(ev.empty());  // the crash to 1000 never happened as far as the book is concerned
}

TEST_CASE("a tick to the same price does nothing", "[book]") {
  fixture f;
  book b(f.m);
  must(b.upsert(f.four()));
  std::vector<crossing> ev;
  must(b.apply_ticks(std::vector<tick>{{f.eth, 2000.0}}, ev));
  CHECK(b.stats().ticks == 0);
}

TEST_CASE("a widely held asset takes the full-scan path, a narrow one the walk", "[book]") {
  fixture f;
  book_options o;
  o.scan_fraction = 0.30;  // ETH is held by 2 of 4
  book b(f.m, o);
  must(b.upsert(f.four()));
  std::vector<crossing> ev;
  must(b.apply_ticks(std::vector<tick>{{f.eth, 1900.0}}, ev));
  CHECK(b.stats().scans == 1);
  must(b.upsert(std::vector<position_input>{{"E", f.lend, "", {{f.usdc, 100.0, 0.0}}},
                                            {"F", f.lend, "", {{f.usdc, 100.0, 0.0}}},
                                            {"G", f.lend, "", {{f.usdc, 100.0, 0.0}}},
                                            {"H", f.lend, "", {{f.usdc, 100.0, 0.0}}}}));
  must(b.apply_ticks(std::vector<tick>{{f.wbtc, 39000.0}}, ev));  // 1 of 8
  CHECK(b.stats().walks == 1);
  CHECK(*b.health("B") == Approx(39000.0 * 0.75 / 20000.0).epsilon(1e-14));
}

TEST_CASE("bad ticks are refused whole and change nothing", "[book][bad-input]") {
  fixture f;
  book b(f.m);
  must(b.upsert(f.four()));
  const auto before = b.digest();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  struct bad_case {
    std::vector<tick> ticks;
    std::string expect;
  };
  const std::vector<bad_case> cases{
      {{{f.eth, 1500.0}, {f.usdc, nan}}, "tick #2 (USDC): price nan must be a finite number > 0"},
      {{{f.eth, inf}}, "price inf"},
      {{{f.eth, 0.0}}, "price 0"},
      {{{f.eth, -1.0}}, "price -1"},
      {{{f.eth, 1500.0}, {asset_id{}, 1.0}}, "tick #2: unknown asset"},
      {{{asset_id{77}, 1.0}}, "unknown asset"},
  };
  for (const auto& c : cases) {
    std::vector<crossing> ev;
    const auto s = b.apply_ticks(c.ticks, ev);
    INFO(c.expect);
    REQUIRE_FALSE(s.ok());
    CHECK_THAT(std::string(s.message()), Catch::Contains(c.expect));
    CHECK(ev.empty());
    CHECK(b.digest() == before);
  }
}

TEST_CASE("bad upserts are refused whole, naming position and field", "[book][bad-input]") {
  fixture f;
  book b(f.m);
  must(b.upsert(f.four()));
  const auto before = b.digest();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const position_input ok{"N", f.lend, "", {{f.eth, 1.0, 0.0}}};
  struct bad_case {
    position_input bad;
    std::string expect;
  };
  const std::vector<bad_case> cases{
      {{"", f.lend, "", {}}, "position #2: id is empty"},
      {{"N", f.lend, "", {}}, "position 'N': duplicate id in the batch"},
      {{"X", protocol_id{9}, "", {}}, "position 'X': unknown protocol"},
      {{"X", f.lend, "", {{asset_id{40}, 1.0, 0.0}}}, "leg 1: unknown asset"},
      {{"X", f.lend, "", {{f.eth, nan, 0.0}}}, "leg 1 (ETH): collateral nan"},
      {{"X", f.lend, "", {{f.eth, -2.0, 0.0}}}, "collateral -2 must be a finite number >= 0"},
      {{"X", f.lend, "", {{f.eth, 1.0, std::numeric_limits<double>::infinity()}}}, "debt inf"},
      {{"X", f.vault, "", {{f.wbtc, 1.0, 0.0}}},
       "protocol 'vault' does not accept WBTC as collateral"},
  };
  for (const auto& c : cases) {
    const auto s = b.upsert(std::vector<position_input>{ok, c.bad});
    INFO(c.expect);
    REQUIRE_FALSE(s.ok());
    CHECK_THAT(std::string(s.message()), Catch::Contains(c.expect));
    CHECK(b.digest() == before);
    CHECK_FALSE(b.find("N").has_value());
  }
  book_options o;
  o.max_legs = 2;
  book small(f.m, o);
  const auto s = small.upsert(std::vector<position_input>{
      {"X", f.lend, "", {{f.eth, 1.0, 0.0}, {f.usdc, 1.0, 0.0}, {f.dai, 0.0, 1.0}}}});
  CHECK_THAT(std::string(s.message()), Catch::Contains("3 legs, more than the limit of 2"));
}

TEST_CASE("a debt-only leg may name an asset the protocol does not accept as collateral",
          "[book]") {
  fixture f;
  book b(f.m);
  must(b.upsert(
      std::vector<position_input>{{"V", f.vault, "", {{f.eth, 3.0, 0.0}, {f.wbtc, 0.0, 0.05}}}}));
  CHECK(*b.health("V") == Approx(3 * 2000.0 / 1.5 / (0.05 * 40000.0)));
}

TEST_CASE("upsert replaces a position and reports its band change", "[book]") {
  fixture f;
  book b(f.m);
  must(b.upsert(f.four()));
  std::vector<crossing> ev;
  must(b.upsert(
      std::vector<position_input>{
          {"A", f.lend, "0xa", {{f.eth, 10.0, 0.0}, {f.usdc, 0.0, 17000.0}}}},
      &ev));
  CHECK(b.size() == 4);
  CHECK(*b.health("A") == Approx(16000.0 / 17000.0));
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].from == band::healthy);
  CHECK(ev[0].to == band::liquidatable);
  CHECK(ev[0].hf_before == Approx(16000.0 / 12000.0));
  CHECK_FALSE(ev[0].cause.valid());
  // The replaced row no longer moves with prices; the new one does.
  must(b.apply_ticks(std::vector<tick>{{f.eth, 3000.0}}, ev));
  CHECK(*b.health("A") == Approx(24000.0 / 17000.0));
  CHECK(b.band_counts()[f.lend.index()][0] == 3);
}

TEST_CASE("remove is all-or-nothing", "[book][bad-input]") {
  fixture f;
  book b(f.m);
  must(b.upsert(f.four()));
  const auto before = b.digest();
  auto s = b.remove(std::vector<std::string>{"A", "Z"});
  CHECK_THAT(std::string(s.message()), Catch::Contains("position 'Z': unknown id"));
  s = b.remove(std::vector<std::string>{"A", "A"});
  CHECK_THAT(std::string(s.message()), Catch::Contains("listed twice"));
  CHECK(b.digest() == before);
  must(b.remove(std::vector<std::string>{"A", "C"}));
  CHECK(b.size() == 2);
  CHECK_FALSE(b.find("A").has_value());
}

TEST_CASE("compaction drops tombstones and keeps every position's state", "[book]") {
  fixture f;
  book b(f.m);
  std::vector<position_input> many;
  for (int i = 0; i < 100; ++i) {
    many.push_back(
        {"p" + std::to_string(i), f.lend, "", {{f.eth, 1.0 + i, 0.0}, {f.usdc, 0.0, 1000.0}}});
  }
  must(b.upsert(many));
  std::vector<std::string> gone;
  for (int i = 0; i < 100; i += 2) gone.push_back("p" + std::to_string(i));
  must(b.remove(gone));
  CHECK(b.needs_compaction());
  const auto before = b.digest();
  b.compact();
  CHECK(b.rows() == 50);
  CHECK_FALSE(b.needs_compaction());
  CHECK(b.digest() == before);
  CHECK(b.exposure(f.eth).size() == 50);
  std::vector<crossing> ev;
  must(b.apply_ticks(std::vector<tick>{{f.eth, 500.0}}, ev));
  CHECK(*b.health("p1") == Approx(2 * 500.0 * 0.8 / 1000.0));
}

TEST_CASE("below lists at-risk positions sorted by HF with filters", "[book]") {
  fixture f;
  book b(f.m);
  must(b.upsert(f.four()));
  auto r = b.below(1.45, 10);
  REQUIRE(r.size() == 2);
  CHECK(b.id_at(r[0].row) == "A");  // 1.3333 with C also 1.3333: ties by row
  CHECK(b.id_at(r[1].row) == "C");
  CHECK(b.below(1.45, 1).size() == 1);
  CHECK(b.below(10, 10, f.vault).size() == 1);
  CHECK(b.below(10, 10, std::nullopt, f.wbtc).size() == 1);
  CHECK(b.below(1.0, 10).empty());
}

TEST_CASE("totals sum collateral and debt value per protocol and band", "[book]") {
  fixture f;
  book b(f.m);
  must(b.upsert(f.four()));
  const auto t = b.totals();
  const auto& lend_healthy = t[f.lend.index()][0];
  CHECK(lend_healthy.positions == 3);
  CHECK(lend_healthy.collateral_usd == Approx(20000.0 + 40000.0 + 5000.0));
  CHECK(lend_healthy.debt_usd == Approx(12000.0 + 20000.0));
  CHECK(t[f.vault.index()][0].positions == 1);
}

TEST_CASE("many wild ticks stay within 1e-9 of a recompute thanks to anchoring", "[book]") {
  fixture f;
  book b(f.m, walk_only());
  std::vector<position_input> ps;
  for (int i = 0; i < 50; ++i) {
    ps.push_back(
        {"p" + std::to_string(i),
         f.lend,
         "",
         {{f.eth, 1.0 + i * 0.37, 0.0}, {f.wbtc, 0.01 * i, 0.0}, {f.usdc, 0.0, 500.0 + 10.0 * i}}});
  }
  must(b.upsert(ps));
  std::vector<crossing> ev;
  double p = 2000.0;
  for (int i = 0; i < 20000; ++i) {
    p = (i % 1000 == 999) ? p * 0.05 : (i % 1000 == 0 ? 2000.0 : p * (i % 2 ? 1.0173 : 0.9831));
    must(b.apply_ticks(std::vector<tick>{{f.eth, p}}, ev));
  }
  CHECK(b.stats().anchors > 0);
  for (row_t r = 0; r < b.rows(); ++r) {
    const double exact = health_of(b.compute_cell(r, b.prices()));
    CHECK(std::abs(b.health_at(r) / exact - 1.0) < 1e-9);
  }
}

TEST_CASE("a snapshot has the book's columns and no ids, and a cascade on it is the book's",
          "[book][snapshot]") {
  fixture f;
  book b(f.m);
  must(b.upsert(f.four()));
  std::vector<crossing> ev;
  // C liquidatable at 1400 (HF 14000 / 1.5 / 10000 = 0.933).
  must(b.apply_ticks(std::vector<tick>{{f.eth, 1400.0}}, ev));
  book snap(f.m, b.options());
  const auto same_columns = [&] {
    REQUIRE(snap.rows() == b.rows());
    CHECK(snap.size() == b.size());
    for (row_t r = 0; r < b.rows(); ++r) {
      CHECK(snap.live(r) == b.live(r));
      CHECK(snap.band_at(r) == b.band_at(r));
      CHECK(snap.cells()[r].num == b.cells()[r].num);
      CHECK(snap.cells()[r].den == b.cells()[r].den);
      CHECK(snap.protocol_at(r) == b.protocol_at(r));
      CHECK(snap.pending_at(r) == b.pending_at(r));
      CHECK(snap.insolvent_at(r) == b.insolvent_at(r));
      CHECK(snap.realizable_at(r).collateral_real_usd == b.realizable_at(r).collateral_real_usd);
      // The strings stay behind.
      CHECK(snap.id_at(r).empty());
      CHECK(snap.owner_at(r).empty());
    }
    CHECK_FALSE(snap.find("A").has_value());
    CHECK(b.find("A").has_value());
    CHECK(b.owner_at(*b.find("A")) == "0xa");
    cascade_simulator sim;
    const shock s{f.eth, -0.2};
    const auto want = must(sim.run(b, std::span<const shock>(&s, 1)));
    const auto got = must(sim.run(snap, std::span<const shock>(&s, 1)));
    CHECK(got.positions_liquidated == want.positions_liquidated);
    CHECK(got.positions_liquidated > 0);
    CHECK(got.total_repaid_usd == want.total_repaid_usd);
    CHECK(got.final_prices == want.final_prices);
  };
  b.snapshot_to(snap);
  same_columns();
  // The book moves on and grows; a second snapshot into the same book follows it.
  must(b.apply_ticks(std::vector<tick>{{f.eth, 1900.0}, {f.wbtc, 30000.0}}, ev));
  must(b.upsert(std::vector<position_input>{{"E", f.lend, "0xe", {{f.eth, 3.0, 0.0}, {f.dai, 0.0, 4000.0}}}}));
  must(b.remove(std::vector<std::string>{"B"}));
  b.snapshot_to(snap);
  same_columns();
}
