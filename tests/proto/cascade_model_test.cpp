// The scenario's "model" and asset "venues"/"withdrawal" keys, and the report fields
// they add: only when enabled, so that every default report stays byte for byte v1's.
#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>
#include <string>

#include "engine/cascade.hpp"
#include "proto/report.hpp"
#include "proto/scenario.hpp"
#include "support/fixtures.hpp"
#include "support/process.hpp"
#include "support/wire_json.hpp"

using namespace cascade;
using cascade::testing::json_num;
using cascade::testing::json_parse;
using cascade::testing::must;
using cascade::testing::run_process;

namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string report_of(const std::string& json) {
  const proto::scenario sc = must(proto::parse_scenario(json, "test.json"));
  book b(sc.mkt);
  must(b.upsert(sc.positions));
  std::vector<shock> shocks;
  for (const auto& [a, f] : sc.shocks) shocks.push_back({a, f});
  cascade_simulator sim;
  return proto::encode_report(must(sim.run(b, shocks, proto::cascade_options_of(sc))), sc.mkt);
}

// The breaker example of tests/engine/cascade_ext_test.cpp as a document.
constexpr const char* breaker_scenario = R"({
  "assets": [{"symbol": "ETH", "price": 2000.0, "pool": {"base": 1000.0, "quote": 2000000.0}},
             {"symbol": "USDC", "price": 1.0}],
  "protocols": [
    {"name": "lend", "kind": "pooled", "close_factor": 1.0, "full_liquidation_hf": 0.95,
     "assets": {"ETH": {"liquidation_threshold": 0.8, "liquidation_bonus": 0.05}}},
    {"name": "maker", "kind": "cdp", "close_factor": 1.0, "full_liquidation_hf": 0.95,
     "assets": {"ETH": {"liquidation_threshold": 0.8, "liquidation_bonus": 0.10}}}],
  "positions": [
    {"id": "L", "protocol": "lend", "legs": [{"asset": "ETH", "collateral": 200.0},
                                             {"asset": "USDC", "debt": 300000.0}]},
    {"id": "M", "protocol": "maker", "legs": [{"asset": "ETH", "collateral": 10.0},
                                              {"asset": "USDC", "debt": 15000.0}]}],
  "shocks": {"ETH": -0.1},
  "model": {"max_liquidating_usd": {"maker": 10000.0}, "round_seconds": 12,
            "oracles": {"lend": {"deviation": 0.01, "lag_rounds": 0}}}
})";

simdjson::dom::element field(simdjson::dom::element e, const char* k) {
  simdjson::dom::element out;
  INFO(k);
  REQUIRE(e[k].get(out) == simdjson::SUCCESS);
  return out;
}

}  // namespace

TEST_CASE("every example report is the same with the model absent, default, or via the CLI",
          "[cascade-ext]") {
  for (const char* name :
       {"scenario_design.json", "scenario_multi_protocol.json", "scenario_steth_depeg.json",
        "scenario_venues.json"}) {
    INFO(name);
    const std::string path = std::string(CASCADE_SOURCE_DIR) + "/proto/examples/" + name;
    const std::string text = read_text(path);
    const proto::scenario sc = must(proto::parse_scenario(text, name));
    CHECK_FALSE(sc.model.extended());
    // Every option given, at its default.
    const std::string protocol = sc.mkt.protocols()[0].name;
    const std::string with_model =
        "{\"model\": {\"oracles\": {\"" + protocol +
        "\": {\"deviation\": 0, \"lag_rounds\": 0}}, \"latency_rounds\": 0, "
        "\"liquidator_capacity_usd\": null, \"round_seconds\": 12, \"halt_drop\": null, "
        "\"halt_rounds\": 1, \"max_liquidating_usd\": {\"" +
        protocol + "\": null}, \"counterfactual\": true}," + text.substr(text.find('{') + 1);
    const proto::scenario sc2 = must(proto::parse_scenario(with_model, name));
    CHECK_FALSE(sc2.model.extended());
    const std::string absent = report_of(text);
    CHECK(report_of(with_model) == absent);
    const auto cli = run_process({CASCADE_BINARY, "stress", path});
    REQUIRE(cli.exit_code == 0);
    CHECK(cli.out == absent + "\n");
  }
}

TEST_CASE("the model keys decode by protocol and venues by asset", "[cascade-ext]") {
  const std::string doc = R"({
    "assets": [{"symbol": "ETH", "price": 100.0,
                "venues": [{"name": "amm", "pool": {"base": 10000.0, "quote": 1000000.0}},
                           {"name": "cex", "depth": [{"drop": 0.01, "usd": 100000.0},
                                                     {"drop": 0.19, "usd": 1000000.0}]}],
                "withdrawal": {"drawdown_sensitivity": 2.0, "floor": 0.2, "half_life_s": 60}},
               {"symbol": "USDC", "price": 1.0}],
    "protocols": [{"name": "a", "kind": "pooled", "close_factor": 0.5, "full_liquidation_hf": 0.95,
                   "assets": {"ETH": {"liquidation_threshold": 0.8}}},
                  {"name": "b", "kind": "cdp", "close_factor": 1.0, "full_liquidation_hf": 1.0,
                   "assets": {"ETH": {"liquidation_threshold": 0.8}}}],
    "model": {"oracles": {"b": {"deviation": 0.05, "lag_rounds": 3}}, "latency_rounds": 2,
              "liquidator_capacity_usd": 1e6, "round_seconds": 12, "halt_drop": 0.1,
              "halt_rounds": 3, "max_liquidating_usd": {"b": 5e5}, "counterfactual": false}
  })";
  const proto::scenario sc = must(proto::parse_scenario(doc, "doc.json"));
  const cascade_model& md = sc.model;
  REQUIRE(md.oracles.size() == 2);
  CHECK_FALSE(md.oracles[0].active());
  CHECK(md.oracles[1].deviation == 0.05);
  CHECK(md.oracles[1].lag_rounds == 3);
  CHECK(md.latency_rounds == 2);
  CHECK(md.liquidator_capacity_usd == 1e6);
  CHECK(md.round_seconds == 12.0);
  CHECK(md.halt_drop == 0.1);
  CHECK(md.halt_rounds == 3);
  REQUIRE(md.max_liquidating_usd.size() == 2);
  CHECK(std::isinf(md.max_liquidating_usd[0]));
  CHECK(md.max_liquidating_usd[1] == 5e5);
  CHECK_FALSE(md.counterfactual);
  const asset_spec& eth = sc.mkt.asset(*sc.mkt.find_asset("ETH"));
  REQUIRE(eth.venues.has_value());
  REQUIRE(eth.venues->venues.size() == 2);
  CHECK(eth.venues->venues[0].cp->quote == 1e6);
  CHECK(eth.venues->venues[1].depth[1].drop == 0.19);
  CHECK(eth.venues->withdrawal.drawdown_sensitivity == 2.0);
  CHECK(eth.venues->withdrawal.floor == 0.2);
  CHECK(eth.venues->withdrawal.half_life_s == 60.0);
  CHECK_FALSE(eth.liquidity.has_value());
}

TEST_CASE("the report carries both runs of a breaker and the bad debt it causes",
          "[cascade-ext]") {
  const std::string report = report_of(breaker_scenario);
  simdjson::dom::parser parser;
  const simdjson::dom::element doc = json_parse(parser, report);
  // See "a Maker-style cap causes bad debt" in tests/engine/cascade_ext_test.cpp:
  // 365.68337170013365 of bad debt with the cap, none without.
  const auto breakers = field(doc, "breakers");
  CHECK(json_num(breakers, "bad_debt_usd_with") == Approx(365.68337170013365).epsilon(1e-9));
  CHECK(json_num(breakers, "bad_debt_usd_without") == 0.0);
  CHECK(json_num(breakers, "prevented_usd") == Approx(-365.68337170013365).epsilon(1e-9));
  CHECK(json_num(field(breakers, "without"), "rounds") == 1.0);
  CHECK(json_num(field(field(breakers, "without"), "bad_debt_usd"), "maker") == 0.0);
  CHECK(json_num(field(doc, "bad_debt_usd"), "maker") ==
        Approx(365.68337170013365).epsilon(1e-9));
  simdjson::dom::element round1;
  REQUIRE(doc["round_detail"].at(0).get(round1) == simdjson::SUCCESS);
  const auto backlog = field(round1, "backlog");
  CHECK(json_num(backlog, "positions") == 1.0);
  CHECK(json_num(backlog, "usd") == Approx(5000.0).epsilon(1e-12));
  CHECK(json_num(backlog, "clear_rounds") == 1.0);
  CHECK(json_num(backlog, "clear_seconds") == 12.0);
  CHECK(json_num(field(field(round1, "oracle_prices"), "lend"), "ETH") == 1800.0);
  const auto model = field(doc, "model");
  CHECK(json_num(field(model, "max_liquidating_usd"), "maker") == 10000.0);
  CHECK(json_num(field(field(model, "oracles"), "lend"), "deviation") == 0.01);
  CHECK(json_num(doc, "halted_rounds") == 0.0);
  bool halted = true;
  REQUIRE(round1["halted"].get(halted) == simdjson::SUCCESS);
  CHECK_FALSE(halted);
}

TEST_CASE("bad model and venue values are refused with their path", "[cascade-ext]") {
  const std::string base = breaker_scenario;
  const auto with_model = [&](const std::string& model) {
    std::string doc = base;
    doc.replace(doc.find("\"model\""), std::string::npos, "\"model\": " + model + "}");
    return doc;
  };
  const auto error = [](const std::string& doc) {
    const auto r = proto::parse_scenario(doc, "s.json");
    REQUIRE_FALSE(r.ok());
    return std::string(r.status().message());
  };
  CHECK_THAT(error(with_model(R"({"oracles": {"nope": {"deviation": 0.1}}})")),
             Catch::Contains("model.oracles.nope: unknown protocol 'nope'"));
  CHECK_THAT(error(with_model(R"({"oracles": {"lend": {"deviation": 1.0}}})")),
             Catch::Contains("model.oracles.lend.deviation: deviation 1 is outside [0, 1)"));
  CHECK_THAT(error(with_model(R"({"halt_drop": 0})")),
             Catch::Contains("model.halt_drop: halt_drop 0 is outside (0, 1)"));
  CHECK_THAT(error(with_model(R"({"halt_rounds": 0})")),
             Catch::Contains("model.halt_rounds: '0' is not an integer in [1, 1000000]"));
  CHECK_THAT(error(with_model(R"({"latency_rounds": 1.5})")),
             Catch::Contains("model.latency_rounds: '1.5' is not an integer"));
  CHECK_THAT(error(with_model(R"({"liquidator_capacity_usd": -5})")),
             Catch::Contains("model.liquidator_capacity_usd: -5 must be > 0"));
  CHECK_THAT(error(with_model(R"({"max_liquidating_usd": {"maker": 0}})")),
             Catch::Contains("model.max_liquidating_usd.maker: 0 must be > 0"));
  CHECK_THAT(error(with_model(R"({"round_seconds": -1})")),
             Catch::Contains("model.round_seconds: -1 is negative"));
  CHECK_THAT(error(with_model(R"({"counterfactual": 1})")),
             Catch::Contains("model.counterfactual: expected a boolean"));
  CHECK_THAT(error(with_model(R"([])")), Catch::Contains("model: expected an object"));
}
