#include "proto/scenario.hpp"

#include <simdjson.h>

#include <catch2/catch.hpp>
#include <string>

#include "support/fixtures.hpp"

namespace {

using cascade::asset_id;
using cascade::protocol_kind;
using cascade::proto::load_scenario_file;
using cascade::proto::parse_scenario;
using cascade::testing::aid;
using cascade::testing::must;
using cascade::testing::pid;

std::string example(const char* name) {
  return std::string(CASCADE_SOURCE_DIR) + "/proto/examples/" + name;
}

// The DESIGN.md example with `extra` spliced in as the first top-level member.
std::string design_with(std::string_view extra) {
  std::string doc = R"({
  "assets": [
    {"symbol": "ETH", "price": 3000.0, "pool": {"base": 50000.0, "quote": 150000000.0}},
    {"symbol": "USDC", "price": 1.0}
  ],
  "protocols": [
    {"name": "aave-v3", "kind": "pooled", "close_factor": 0.5, "full_liquidation_hf": 0.95,
     "assets": {"ETH":  {"liquidation_threshold": 0.83, "liquidation_bonus": 0.05}}}
  ]
})";
  if (!extra.empty()) doc.insert(2, std::string(extra) + ",\n");
  return doc;
}

}  // namespace

TEST_CASE("the DESIGN.md example scenario decodes to its values", "[proto][scenario]") {
  const auto sc = must(load_scenario_file(example("scenario_design.json")));
  const cascade::market& m = sc.mkt;
  REQUIRE(m.asset_count() == 2);
  CHECK(m.asset(aid(m, "ETH")).price == 3000.0);
  REQUIRE(m.asset(aid(m, "ETH")).liquidity.has_value());
  CHECK(m.asset(aid(m, "ETH")).liquidity->base == 50000.0);
  CHECK(m.asset(aid(m, "ETH")).liquidity->quote == 150000000.0);
  CHECK(m.asset(aid(m, "USDC")).price == 1.0);
  CHECK_FALSE(m.asset(aid(m, "USDC")).liquidity.has_value());

  REQUIRE(m.protocol_count() == 1);
  const cascade::protocol& p = m.get_protocol(pid(m, "aave-v3"));
  CHECK(p.kind == protocol_kind::pooled);
  CHECK(p.close_factor == 0.5);
  CHECK(p.full_liquidation_hf == 0.95);
  CHECK(p.threshold(aid(m, "ETH")) == 0.83);
  CHECK(p.params(aid(m, "ETH"))->liquidation_bonus == 0.05);
  CHECK(p.threshold(aid(m, "USDC")) == 0.78);
  CHECK(p.params(aid(m, "USDC"))->liquidation_bonus == 0.045);

  CHECK(sc.has_positions);
  REQUIRE(sc.positions.size() == 1);
  const cascade::position_input& pos = sc.positions[0];
  CHECK(pos.id == "p1");
  CHECK(pos.protocol == pid(m, "aave-v3"));
  CHECK(pos.owner == "0xabc");
  REQUIRE(pos.legs.size() == 2);
  CHECK(pos.legs[0].asset == aid(m, "ETH"));
  CHECK(pos.legs[0].collateral == 10.0);
  CHECK(pos.legs[0].debt == 0.0);
  CHECK(pos.legs[1].asset == aid(m, "USDC"));
  CHECK(pos.legs[1].collateral == 0.0);
  CHECK(pos.legs[1].debt == 20000.0);

  REQUIRE(sc.shocks.size() == 1);
  CHECK(sc.shocks[0].first == aid(m, "ETH"));
  CHECK(sc.shocks[0].second == -0.2);
  CHECK(sc.max_rounds == 100);

  // The decoded positions are what a book accepts.
  cascade::book b(m);
  must(b.upsert(sc.positions));
  CHECK(b.size() == 1);
}

TEST_CASE("the multi-protocol example keeps document order of positions and shocks",
          "[proto][scenario]") {
  const auto sc = must(load_scenario_file(example("scenario_multi_protocol.json")));
  const cascade::market& m = sc.mkt;
  CHECK(m.asset_count() == 5);
  REQUIRE(m.protocol_count() == 4);
  CHECK(m.get_protocol(pid(m, "maker")).kind == protocol_kind::cdp);
  CHECK(m.get_protocol(pid(m, "perp-dex")).kind == protocol_kind::margin);
  REQUIRE(sc.positions.size() == 6);
  const char* ids[] = {"aave-1", "aave-2", "comp-1", "maker-1", "maker-2", "perp-1"};
  for (std::size_t i = 0; i < 6; ++i) CHECK(sc.positions[i].id == ids[i]);
  // Omitted amounts and owner default to zero and empty.
  CHECK(sc.positions[1].owner.empty());
  CHECK(sc.positions[1].legs[0].debt == 0.0);
  CHECK(sc.positions[1].legs[2].collateral == 0.0);
  CHECK(sc.positions[1].legs[2].debt == 150000.0);
  // A debt-only leg on an asset its protocol does not configure (ETH on perp-dex).
  CHECK(m.get_protocol(pid(m, "perp-dex")).params(aid(m, "ETH")) == nullptr);
  CHECK(sc.positions[5].legs[1].debt == 6.0);
  REQUIRE(sc.shocks.size() == 3);
  CHECK(sc.shocks[0] == std::pair{aid(m, "ETH"), -0.25});
  CHECK(sc.shocks[1] == std::pair{aid(m, "stETH"), -0.3});
  CHECK(sc.shocks[2] == std::pair{aid(m, "WBTC"), -0.1});
  CHECK(sc.max_rounds == 50);
  cascade::book b(m);
  must(b.upsert(sc.positions));
  CHECK(b.size() == 6);
}

TEST_CASE("a scenario without positions says so and keeps the default round limit",
          "[proto][scenario]") {
  const auto sc = must(load_scenario_file(example("scenario_live_book.json")));
  CHECK_FALSE(sc.has_positions);
  CHECK(sc.positions.empty());
  CHECK(sc.max_rounds == 100);
  CHECK(sc.shocks.size() == 2);

  const auto empty = must(parse_scenario(design_with(R"("positions": [])"), "body"));
  CHECK(empty.has_positions);
  CHECK(empty.positions.empty());
}

TEST_CASE("scenario keys may come in any order and unknown keys are skipped", "[proto][scenario]") {
  // Positions and shocks before the market they refer to; unknown keys at every level.
  const std::string doc = R"({
    "comment": {"nested": [1, 2.5e3, "x", true, false, null, {"a": []}]},
    "positions": [{"id": "q", "protocol": "lend", "tag": 7,
                   "legs": [{"asset": "\u0045TH", "collateral": 2, "debt": 0, "note": "x"},
                            {"asset": "USD", "debt": 1000}]}],
    "shocks": {"ETH": 0.5},
    "max_rounds": 3,
    "protocols": [{"name": "lend", "kind": "cdp", "close_factor": 1, "full_liquidation_hf": 0,
                   "assets": {"ETH": {"liquidation_threshold": 1, "extra": "ok"}},
                   "future_field": [1]}],
    "assets": [{"symbol": "USD", "price": 1}, {"symbol": "ETH", "price": 2000, "decimals": 18}]
  })";
  const auto sc = must(parse_scenario(doc, "inline"));
  const cascade::market& m = sc.mkt;
  CHECK(m.asset(asset_id(0)).symbol == "USD");
  CHECK(m.get_protocol(pid(m, "lend")).params(aid(m, "ETH"))->liquidation_bonus == 0.0);
  CHECK(m.get_protocol(pid(m, "lend")).full_liquidation_hf == 0.0);
  REQUIRE(sc.positions.size() == 1);
  CHECK(sc.positions[0].legs[0].asset == aid(m, "ETH"));
  CHECK(sc.positions[0].legs[0].collateral == 2.0);
  CHECK(sc.max_rounds == 3);
  CHECK(sc.shocks[0].second == 0.5);
}

TEST_CASE("scenario errors name the source, line, path and reason", "[proto][scenario]") {
  const auto bad = parse_scenario(design_with(R"("shocks": {"ETH": -1})"), "POST /v1/stress");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(
      std::string(bad.status().message()) ==
      "POST /v1/stress:2: shocks.ETH: shock -1 must be > -1 (a price cannot fall by 100% or more)");

  // A shock that sends the price past the largest double.
  const auto huge = parse_scenario(design_with(R"("shocks": {"ETH": 1e306})"), "s");
  REQUIRE_FALSE(huge.ok());
  CHECK_THAT(std::string(huge.status().message()),
             Catch::Contains("shocks.ETH") && Catch::Contains("finite positive prices"));

  const auto twice = parse_scenario(design_with(R"("shocks": {"ETH": -0.1, "ETH": -0.2})"), "s");
  REQUIRE_FALSE(twice.ok());
  CHECK_THAT(std::string(twice.status().message()), Catch::Contains("shocked twice"));

  const auto rounds = parse_scenario(design_with(R"("max_rounds": 1000001)"), "s");
  REQUIRE_FALSE(rounds.ok());
  CHECK_THAT(std::string(rounds.status().message()), Catch::Contains("max_rounds"));

  const auto negative_rounds = parse_scenario(design_with(R"("max_rounds": -5)"), "s");
  REQUIRE_FALSE(negative_rounds.ok());
  CHECK_THAT(std::string(negative_rounds.status().message()), Catch::Contains("max_rounds"));

  const auto missing = load_scenario_file(example("no_such_scenario.json"));
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == absl::StatusCode::kNotFound);
  CHECK_THAT(std::string(missing.status().message()), Catch::Contains("no_such_scenario.json"));

  const auto dir = load_scenario_file(example(""));
  REQUIRE_FALSE(dir.ok());
  CHECK_THAT(std::string(dir.status().message()), Catch::Contains("cannot read"));

  const auto not_utf8 = parse_scenario(design_with("\"note\": \"\xff\xfe\""), "s");
  REQUIRE_FALSE(not_utf8.ok());
  CHECK_THAT(std::string(not_utf8.status().message()), Catch::Contains("UTF-8"));
}

TEST_CASE("scenario input edge cases: byte-order mark, deep nesting, bad literals",
          "[proto][scenario]") {
  CHECK(parse_scenario("\xEF\xBB\xBF" + design_with(""), "bom").ok());
  CHECK(parse_scenario("\n  " + design_with("") + "\n\n  ", "whitespace").ok());

  // Values under unknown keys are walked (and bounded) rather than skipped unchecked.
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  const auto nested = parse_scenario(design_with(R"("x": )" + deep), "deep");
  REQUIRE_FALSE(nested.ok());
  CHECK_THAT(std::string(nested.status().message()), Catch::Contains("levels deep"));

  const auto literal = parse_scenario(design_with(R"("x": [tru])"), "lit");
  REQUIRE_FALSE(literal.ok());
  CHECK(std::string(literal.status().message()) ==
        "lit:2: x[0]: malformed JSON: invalid literal 'tru' (expected true, false or null)");

  const auto key = parse_scenario(R"({assets: [], "protocols": []})", "key");
  REQUIRE_FALSE(key.ok());
  CHECK_THAT(std::string(key.status().message()), Catch::StartsWith("key:1: malformed JSON"));
}

TEST_CASE("a derived asset decodes its base, ratio pool and sell_through", "[proto][scenario]") {
  const std::string doc = R"({
    "assets": [
      {"symbol": "ETH", "price": 2000.0, "pool": {"base": 1000000.0, "quote": 2000000000.0}},
      {"symbol": "stETH", "price": 1990.0,
       "derived": {"base": "ETH", "ratio_pool": {"base": 20000.0, "quote": 19900.0},
                   "sell_through": false, "note": {"future": [1, 2]}}},
      {"symbol": "BTC", "price": 40000.0},
      {"symbol": "WBTC", "price": 40000.0, "derived": {"base": "BTC"}}
    ],
    "protocols": [{"name": "lend", "kind": "pooled", "close_factor": 0.5, "full_liquidation_hf": 0.95,
                   "assets": {"stETH": {"liquidation_threshold": 0.93, "liquidation_bonus": 0.01}}}],
    "shocks": {"stETH": -0.04, "ETH": -0.1}
  })";
  const auto sc = must(parse_scenario(doc, "inline"));
  const cascade::market& m = sc.mkt;
  CHECK(m.has_derived());
  CHECK_FALSE(m.base_of(aid(m, "ETH")).has_value());
  CHECK_FALSE(m.base_of(aid(m, "BTC")).has_value());
  CHECK(m.base_of(aid(m, "stETH")) == aid(m, "ETH"));
  CHECK(m.base_of(aid(m, "WBTC")) == aid(m, "BTC"));

  const cascade::asset_spec& steth = m.asset(aid(m, "stETH"));
  CHECK_FALSE(steth.liquidity.has_value());
  REQUIRE(steth.derived.has_value());
  CHECK(steth.derived->base == "ETH");
  REQUIRE(steth.derived->ratio_pool.has_value());
  CHECK(steth.derived->ratio_pool->base == 20000.0);
  CHECK(steth.derived->ratio_pool->quote == 19900.0);
  CHECK_FALSE(steth.derived->sell_through);

  // Omitted: no ratio pool (a fixed peg), sell_through true.
  const cascade::asset_spec& wbtc = m.asset(aid(m, "WBTC"));
  REQUIRE(wbtc.derived.has_value());
  CHECK(wbtc.derived->base == "BTC");
  CHECK_FALSE(wbtc.derived->ratio_pool.has_value());
  CHECK(wbtc.derived->sell_through);

  // A shock on a derived asset is a depeg; its base may be shocked too.
  REQUIRE(sc.shocks.size() == 2);
  CHECK(sc.shocks[0] == std::pair{aid(m, "stETH"), -0.04});
  CHECK(sc.shocks[1] == std::pair{aid(m, "ETH"), -0.1});
}

TEST_CASE("the stETH depeg example loads: loops on a derived asset", "[proto][scenario]") {
  const auto sc = must(load_scenario_file(example("scenario_steth_depeg.json")));
  const cascade::market& m = sc.mkt;
  REQUIRE(m.asset_count() == 3);
  const asset_id eth = aid(m, "ETH"), steth = aid(m, "stETH"), usdc = aid(m, "USDC");
  CHECK(m.base_of(steth) == eth);
  CHECK_FALSE(m.base_of(usdc).has_value());
  const cascade::asset_spec& spec = m.asset(steth);
  REQUIRE(spec.derived.has_value());
  REQUIRE(spec.derived->ratio_pool.has_value());
  CHECK(spec.derived->ratio_pool->quote / spec.derived->ratio_pool->base ==
        Approx(spec.price / m.asset(eth).price).epsilon(1e-12));
  CHECK(spec.derived->sell_through);
  const cascade::protocol& p = m.get_protocol(pid(m, "aave-v3"));
  CHECK(p.threshold(steth) == 0.93);
  CHECK(p.bonus(steth) == 0.01);
  CHECK(p.threshold(eth) == 0.80);
  CHECK(p.bonus(eth) == 0.05);

  REQUIRE(sc.positions.size() >= 30);
  std::size_t loops = 0;
  for (const cascade::position_input& pos : sc.positions) {
    REQUIRE(pos.legs.size() == 2);
    CHECK(pos.legs[0].asset == steth);
    loops += pos.legs[1].asset == eth;
  }
  CHECK(loops >= 30);
  REQUIRE(sc.shocks.size() == 1);
  CHECK(sc.shocks[0] == std::pair{steth, -0.04});
  cascade::book b(m);
  must(b.upsert(sc.positions));
  CHECK(b.size() == sc.positions.size());
}

TEST_CASE("a shock that sends a derived asset's price out of range is refused",
          "[proto][scenario]") {
  // stETH trades at 1e300 ETH: a 1e10 rise of ETH stays finite for ETH, not for stETH.
  const std::string doc = R"({
    "assets": [{"symbol": "ETH", "price": 1.0},
               {"symbol": "stETH", "price": 1e300, "derived": {"base": "ETH"}}],
    "protocols": [],
    "shocks": {"ETH": 1e10}
  })";
  const auto bad = parse_scenario(doc, "s");
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(std::string(bad.status().message()),
             Catch::StartsWith("s:5: shocks.ETH: shock ") &&
                 Catch::Contains("takes the price of stETH") &&
                 Catch::Contains("outside the range of finite positive prices"));
}

// Found by fuzz/fuzz_positions_csv: a quoted value longer than a message shows was cut
// at a byte count, inside a multi-byte character, so the message (which POST /v1/stress
// sends as JSON) was not UTF-8. Now cut at a character boundary.
TEST_CASE("a refusal cuts a long quoted UTF-8 value at a character boundary",
          "[proto][scenario][fuzz-regression]") {
  std::string doc = design_with("");
  std::string kind = "x";
  for (int i = 0; i < 40; ++i) kind += "\xC3\xA9";  // 'x' then 40 times U+00E9, 81 bytes
  doc.replace(doc.find("pooled"), 6, kind);
  const auto sc = parse_scenario(doc, "s.json");
  REQUIRE_FALSE(sc.ok());
  const std::string message(sc.status().message());
  // 64 bytes would end inside the 32nd character: 'x' and 31 characters are shown.
  std::string shown = "x";
  for (int i = 0; i < 31; ++i) shown += "\xC3\xA9";
  CHECK_THAT(message, Catch::Contains("unknown protocol kind '" + shown + "...'"));
  CHECK(simdjson::validate_utf8(message.data(), message.size()));
}
