// The `cascade` command line, driven as a user drives it: the real binary, its exit
// code, stdout and stderr.
#include <simdjson.h>

#include <catch2/catch.hpp>

#include "support/process.hpp"

using cascade::testing::read_file;
using cascade::testing::run_process;
using cascade::testing::write_temp_file;

namespace {

const std::string bin = CASCADE_BINARY;
const std::string examples = std::string(CASCADE_SOURCE_DIR) + "/proto/examples/";

simdjson::dom::element parse(simdjson::dom::parser& p, const std::string& text) {
  simdjson::dom::element doc;
  INFO(text.substr(0, 300));
  REQUIRE(p.parse(text).get(doc) == simdjson::SUCCESS);
  return doc;
}

}  // namespace

TEST_CASE("cli: help and unknown commands", "[cli]") {
  auto r = run_process({bin, "help"});
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("stress SCENARIO.json"));
  r = run_process({bin});
  CHECK(r.exit_code == 2);
  r = run_process({bin, "explode"});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("unknown command 'explode'"));
}

TEST_CASE("cli: stress prints the report document of the DESIGN example", "[cli]") {
  const auto r = run_process({bin, "stress", examples + "scenario_design.json"});
  REQUIRE(r.exit_code == 0);
  CHECK(r.err.empty());
  simdjson::dom::parser p;
  const auto doc = parse(p, r.out);
  // p1: 10 ETH at 2400 x 0.83 = 19920 < 20000 debt: liquidated once at cf 0.5:
  // repaid 10000, seized 10500, sold 10 x 10500 / 24000 = 4.375 ETH; then HF 1.12.
  CHECK(uint64_t(doc["rounds"]) == 1);
  CHECK(double(doc["round_detail"].at(0)["repaid_usd"]) == Approx(10000.0));
  CHECK(double(doc["round_detail"].at(0)["sold"]["ETH"]) == Approx(4.375));
  CHECK(double(doc["total_seized_usd"]) == Approx(10500.0));
  CHECK(double(doc["bad_debt_usd"]["aave-v3"]) == 0.0);
  CHECK(uint64_t(doc["positions_liquidated"]) == 1);
  CHECK(double(doc["final_prices"]["USDC"]) == 1.0);
  CHECK(double(doc["amplification"]["ETH"]) > 1.0);
}

TEST_CASE("cli: --shock overrides the document's shock", "[cli]") {
  const auto r =
      run_process({bin, "stress", examples + "scenario_design.json", "--shock", "ETH=-0.01"});
  REQUIRE(r.exit_code == 0);
  simdjson::dom::parser p;
  const auto doc = parse(p, r.out);
  CHECK(uint64_t(doc["rounds"]) == 0);
  CHECK(double(doc["final_prices"]["ETH"]) == Approx(2970.0));
}

TEST_CASE("cli: bad input exits 2 with a message naming what and where", "[cli][bad-input]") {
  const std::string truncated =
      write_temp_file("truncated.json", R"({"assets": [{"symbol": "ETH", "price": 30)");
  const std::string no_positions = write_temp_file(
      "no_positions.json",
      R"({"assets":[{"symbol":"ETH","price":1}],"protocols":[{"name":"p","kind":"pooled","close_factor":0.5,"full_liquidation_hf":0.9,"assets":{"ETH":{"liquidation_threshold":0.8,"liquidation_bonus":0.05}}}]})");
  struct bad_case {
    std::vector<std::string> args;
    std::string expect;
  };
  const std::vector<bad_case> cases{
      {{"stress", "/nonexistent/x.json"}, "/nonexistent/x.json"},
      {{"stress", truncated}, "truncated.json"},
      {{"stress", no_positions}, "positions: missing"},
      {{"stress", examples + "scenario_design.json", "--shock", "ETH=-1"},
       "--shock ETH: -1 must be > -1"},
      {{"stress", examples + "scenario_design.json", "--shock", "DOGE=-0.1"},
       "unknown asset 'DOGE'"},
      {{"stress", examples + "scenario_design.json", "--shock", "ETH=abc"},
       "'abc' is not a finite number"},
      {{"stress", examples + "scenario_design.json", "--shock", "ETH"},
       "not of the form ASSET=NUMBER"},
      {{"stress", examples + "scenario_design.json", "--bogus", "1"}, "unknown option --bogus"},
      {{"stress", examples + "scenario_design.json", "--max-rounds", "-3"}, "--max-rounds"},
      {{"stress", examples + "scenario_design.json", "--market-shock", "-0.5", "--beta", "ETH=3"},
       "not > -1"},
      {{"gen"}, "--positions N is required"},
      {{"gen", "--positions", "0"}, "--positions"},
      {{"curves", examples + "scenario_design.json"}, "--asset SYMBOL is required"},
      {{"curves", examples + "scenario_design.json", "--asset", "BTC"}, "unknown asset 'BTC'"},
      {{"health", "--config", "/nonexistent.toml"}, "/nonexistent.toml"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> argv{bin};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    const auto r = run_process(argv);
    INFO(c.args[0] << " ... expecting: " << c.expect << "\nstderr: " << r.err);
    CHECK(r.exit_code == 2);
    CHECK(r.out.empty());
    CHECK_THAT(r.err, Catch::Contains(c.expect));
  }
}

TEST_CASE("cli: a stETH depeg spirals through the loops and deepens past its shock", "[cli]") {
  const auto r = run_process({bin, "stress", examples + "scenario_steth_depeg.json"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  simdjson::dom::parser p;
  const auto doc = parse(p, r.out);
  CHECK(uint64_t(doc["rounds"]) >= 2);
  const double input_ratio = double(doc["input_ratios"]["stETH"]);
  CHECK(input_ratio == Approx(0.995));
  // Liquidations sell stETH into its ratio pool: the ratio ends below the shocked one.
  CHECK(double(doc["final_ratios"]["stETH"]) < input_ratio * (1.0 - 0.04));
  CHECK(double(doc["amplification"]["stETH"]) > 1.0);
}

TEST_CASE("cli: one-factor market shock moves each asset by its beta", "[cli]") {
  const auto r = run_process({bin, "stress", examples + "scenario_design.json", "--market-shock",
                              "-0.1", "--beta", "USDC=0", "--beta", "ETH=1.5"});
  REQUIRE(r.exit_code == 0);
  simdjson::dom::parser p;
  const auto doc = parse(p, r.out);
  CHECK(double(doc["shocked_prices"]["ETH"]) == Approx(3000.0 * 0.85));
  CHECK(double(doc["shocked_prices"]["USDC"]) == 1.0);
}

TEST_CASE("cli: gen writes a deterministic book that health and stress read back", "[cli]") {
  const auto a = run_process({bin, "gen", "--positions", "2000", "--seed", "7"});
  const auto b = run_process({bin, "gen", "--positions", "2000", "--seed", "7"});
  const auto c = run_process({bin, "gen", "--positions", "2000", "--seed", "8"});
  REQUIRE(a.exit_code == 0);
  CHECK(a.out == b.out);
  CHECK(a.out != c.out);
  CHECK(a.out.rfind("id,protocol,asset,collateral,debt", 0) == 0);
  const std::string csv = write_temp_file("gen.csv", a.out);
  const auto h = run_process({bin, "health", "--positions", csv});
  REQUIRE(h.exit_code == 0);
  simdjson::dom::parser p;
  const auto doc = parse(p, h.out);
  simdjson::dom::array positions = doc["positions"];
  CHECK(positions.size() == 2000);
  std::size_t under_one = 0, with_hf = 0;
  for (auto pos : positions) {
    if (pos["hf"].is_null()) continue;
    ++with_hf;
    under_one += double(pos["hf"]) < 1.0;
  }
  CHECK(with_hf > 1900);
  CHECK(under_one < 100);
  const auto s = run_process({bin, "stress", "--positions", csv, "--shock", "ETH=-0.3"});
  REQUIRE(s.exit_code == 0);
  CHECK(uint64_t(parse(p, s.out)["positions_liquidated"]) > 0);
  const std::string out_file = write_temp_file("gen-out.csv", "");
  REQUIRE(run_process({bin, "gen", "--positions", "2000", "--seed", "7", "--out", out_file})
              .exit_code == 0);
  CHECK(read_file(out_file) == a.out);
}

TEST_CASE("cli: health lists every position with null for no debt", "[cli]") {
  const auto r = run_process({bin, "health", examples + "scenario_design.json"});
  REQUIRE(r.exit_code == 0);
  simdjson::dom::parser p;
  const auto doc = parse(p, r.out);
  const auto first = doc["positions"].at(0);
  CHECK(std::string_view(first["id"]) == "p1");
  CHECK(double(first["hf"]) == Approx(10 * 3000 * 0.83 / 20000.0));
  // Realizable value: 10 ETH sold into 50,000 ETH / 150M USD fetch 150e6 * 10 / 50010.
  const double real = 150e6 * 10 / 50010.0;
  CHECK(double(first["collateral_real_usd"]) == Approx(real).epsilon(1e-12));
  CHECK(double(first["hf_real"]) == Approx(real * 0.83 / 20000.0).epsilon(1e-12));
  CHECK(double(first["collateral_usd"]) == Approx(30000.0).epsilon(1e-15));
  CHECK_FALSE(bool(first["insolvent"]));
}

TEST_CASE("cli: stress runs the scenario's cascade model options", "[cli]") {
  // The design scenario with a circuit breaker: the report carries both runs.
  std::string doc = read_file(examples + "scenario_design.json");
  const auto brace = doc.rfind('}');
  REQUIRE(brace != std::string::npos);
  doc.insert(brace, R"(, "model": {"halt_drop": 0.01, "halt_rounds": 2})");
  const std::string path = write_temp_file("model.json", doc);
  const auto r = run_process({bin, "stress", path});
  REQUIRE(r.exit_code == 0);
  simdjson::dom::parser p;
  const auto rep = parse(p, r.out);
  CHECK(rep["breakers"].error() == simdjson::SUCCESS);
  CHECK(rep["model"].error() == simdjson::SUCCESS);
  // Without the model the report is model v1's, with neither field.
  const auto v1 = run_process({bin, "stress", examples + "scenario_design.json"});
  REQUIRE(v1.exit_code == 0);
  CHECK(v1.out.find("breakers") == std::string::npos);
}

TEST_CASE("cli: curves print both curves and the critical shock", "[cli]") {
  const auto g = run_process({bin, "gen", "--positions", "3000", "--seed", "3"});
  REQUIRE(g.exit_code == 0);
  const std::string csv = write_temp_file("curves.csv", g.out);
  const auto r = run_process({bin, "curves", "--positions", csv, "--asset", "ETH"});
  REQUIRE(r.exit_code == 0);
  simdjson::dom::parser p;
  const auto doc = parse(p, r.out);
  simdjson::dom::array liq = doc["liquidation_curve"];
  simdjson::dom::array casc = doc["cascade_curve"];
  CHECK(liq.size() == 91);
  CHECK(casc.size() == 51);
  uint64_t prev = 0;
  for (auto pt : liq) {
    CHECK(double(pt["collateral_usd"]) >= 0.0);
    if (double(pt["drop"]) <= 0.5) {  // more of the book fails as ETH falls further
      CHECK(uint64_t(pt["positions"]) >= prev);
      prev = uint64_t(pt["positions"]);
    }
  }
  CHECK((doc["critical_shock"]["shock"].is_null() || double(doc["critical_shock"]["shock"]) > 0.0));
}

TEST_CASE("cli: demo runs the default market end to end", "[cli][slow]") {
  const auto r = run_process({bin, "demo"});
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("Health by protocol and band"));
  CHECK_THAT(r.out, Catch::Contains("Stress test (cascade model v1)"));
  CHECK_THAT(r.out, Catch::Contains("Distance to cascade"));
  CHECK_THAT(r.out, Catch::Contains("200000 positions generated (seed 42)"));
}

TEST_CASE("cli: risk turns a price series into volatility and the odds of the critical shock",
          "[cli]") {
  const std::string data = CASCADE_SHARED_DATA_DIR;
  const std::string weth = data + "/prices_hourly_2021_2023/WETH_usd.csv";
  if (read_file(weth).empty()) {
    WARN("../shared/data is missing: skipped");
    return;
  }
  const auto g = run_process({bin, "gen", "--positions", "5000", "--seed", "4"});
  const std::string csv = write_temp_file("risk.csv", g.out);
  // Calm (Feb 2023, the end of the series) against the crash of 18 June 2022.
  const auto calm = run_process({bin, "risk", "--positions", csv, "--prices", "ETH=" + weth});
  const auto crash = run_process(
      {bin, "risk", "--positions", csv, "--prices", "ETH=" + weth, "--until", "1655510400"});
  REQUIRE(calm.exit_code == 0);
  REQUIRE(crash.exit_code == 0);
  simdjson::dom::parser p1, p2;
  const auto c = parse(p1, calm.out)["assets"].at(0);
  const auto k = parse(p2, crash.out)["assets"].at(0);
  CHECK(double(c["volatility_annual"]) > 0.2);
  CHECK(double(k["volatility_annual"]) > 2 * double(c["volatility_annual"]));
  CHECK(uint64_t(k["used"]) < uint64_t(c["used"]));
  if (!c["critical_shock"].is_null()) {
    CHECK(double(k["probability_touch"]) > double(c["probability_touch"]));
  }
  const auto bad = run_process({bin, "risk", "--positions", csv});
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.err, Catch::Contains("--prices ASSET=FILE.csv is required"));
  const auto unknown = run_process({bin, "risk", "--positions", csv, "--prices", "DOGE=" + weth});
  CHECK(unknown.exit_code == 2);
  CHECK_THAT(unknown.err, Catch::Contains("expected ASSET=FILE with a known asset"));
}
