#include <cmath>
#include <limits>

#include "support/fixtures.hpp"

using namespace cascade;
using cascade::testing::must;

TEST_CASE("assets get dense ids and are found by symbol", "[market]") {
  market m;
  CHECK(must(m.add_asset({"ETH", 2000.0, {}})).value == 0);
  CHECK(must(m.add_asset({"USDC", 1.0, {}})).value == 1);
  CHECK(m.find_asset("USDC")->value == 1);
  CHECK_FALSE(m.find_asset("usdc").has_value());
  CHECK(m.reference_prices() == std::vector<double>{2000.0, 1.0});
}

TEST_CASE("bad assets are refused with the symbol and the reason", "[market][bad-input]") {
  market m;
  must(m.add_asset({"ETH", 2000.0, {}}));
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  struct bad_case {
    asset_spec spec;
    std::string expect;
  };
  const std::vector<bad_case> cases{
      {{"", 1.0, {}}, "symbol is empty"},
      {{"ETH", 1.0, {}}, "duplicate symbol"},
      {{"X", nan, {}}, "finite number > 0"},
      {{"X", inf, {}}, "finite number > 0"},
      {{"X", 0.0, {}}, "finite number > 0"},
      {{"X", -3.0, {}}, "finite number > 0"},
      {{"X", 2.0, pool{0.0, 1.0}}, "pool base"},
      {{"X", 2.0, pool{10.0, 21.0}}, "differs from the asset's price"},
  };
  for (const auto& c : cases) {
    const auto r = m.add_asset(c.spec);
    INFO(c.expect);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(std::string(r.status().message()), Catch::Contains(c.expect));
  }
  CHECK(m.asset_count() == 1);
}

TEST_CASE("a pool within 1e-9 of the price is accepted", "[market]") {
  market m;
  CHECK(m.add_asset({"ETH", 2000.0, pool{100.0, 200000.0 * (1 + 5e-10)}}).ok());
}

TEST_CASE("bad protocols are refused with the field and the reason", "[market][bad-input]") {
  market m;
  must(m.add_asset({"ETH", 2000.0, {}}));
  must(m.add_protocol({"p", protocol_kind::pooled, 0.5, 0.95, {{"ETH", {0.8, 0.05}}}}));
  struct bad_case {
    protocol_spec spec;
    std::string expect;
  };
  const std::vector<bad_case> cases{
      {{"", protocol_kind::pooled, 0.5, 0.95, {}}, "name is empty"},
      {{"p", protocol_kind::pooled, 0.5, 0.95, {}}, "duplicate name"},
      {{"q", protocol_kind::pooled, 0.0, 0.95, {}}, "close_factor 0 is outside (0, 1]"},
      {{"q", protocol_kind::pooled, 1.5, 0.95, {}}, "close_factor"},
      {{"q", protocol_kind::pooled, 0.5, 1.2, {}}, "full_liquidation_hf 1.2 is outside [0, 1]"},
      {{"q", protocol_kind::pooled, 0.5, -0.1, {}}, "full_liquidation_hf"},
      {{"q", protocol_kind::pooled, 0.5, 0.9, {{"BTC", {0.8, 0.05}}}}, "unknown asset 'BTC'"},
      {{"q", protocol_kind::pooled, 0.5, 0.9, {{"ETH", {0.0, 0.05}}}},
       "liquidation_threshold 0 is outside (0, 1]"},
      {{"q", protocol_kind::pooled, 0.5, 0.9, {{"ETH", {1.01, 0.05}}}}, "liquidation_threshold"},
      {{"q", protocol_kind::pooled, 0.5, 0.9, {{"ETH", {0.8, -0.01}}}}, "liquidation_bonus"},
      {{"q", protocol_kind::pooled, 0.5, 0.9, {{"ETH", {0.8, 0.05}}, {"ETH", {0.7, 0.05}}}},
       "listed twice"},
  };
  for (const auto& c : cases) {
    const auto r = m.add_protocol(c.spec);
    INFO(c.expect);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(std::string(r.status().message()), Catch::Contains(c.expect));
  }
  CHECK(m.protocol_count() == 1);
}

TEST_CASE("protocol kinds parse and print", "[market]") {
  for (auto k : {protocol_kind::pooled, protocol_kind::cdp, protocol_kind::margin}) {
    CHECK(parse_protocol_kind(to_string(k)) == k);
  }
  CHECK_FALSE(parse_protocol_kind("amm").has_value());
}
