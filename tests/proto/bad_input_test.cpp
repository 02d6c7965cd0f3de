// Every loader refuses bad input with a message that says where (file and line, JSON
// path or CSV column) and why, and a refused load changes no book.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "proto/config.hpp"
#include "proto/positions_csv.hpp"
#include "proto/scenario.hpp"
#include "support/fixtures.hpp"

namespace {

using cascade::testing::must;

enum class loader { scenario, csv, config };

struct bad_case {
  loader kind;
  const char* file;                   // under tests/data/bad/
  std::vector<const char*> expected;  // substrings of the message
};

// Line numbers are those of the offending value in each file.
const std::vector<bad_case>& bad_cases() {
  static const std::vector<bad_case> cases = {
      {loader::scenario, "scenario_truncated.json", {R"(:13: truncated JSON)"}},
      {loader::scenario, "scenario_trailing.json", {R"(:19: trailing content)"}},
      {loader::scenario,
       "scenario_nan_price.json",
       {R"(:3: assets[0].price)", R"('NaN' is not JSON)"}},
      {loader::scenario,
       "scenario_inf_price.json",
       {R"(:3: assets[0].price)", R"('1e999' is not a valid finite number)"}},
      {loader::scenario,
       "scenario_infinity_debt.json",
       {R"(:14: positions[0].legs[1].debt)", R"('Infinity' is not JSON)"}},
      {loader::scenario,
       "scenario_zero_price.json",
       {R"(:4: assets[1].price)", R"(must be a finite number > 0)"}},
      {loader::scenario,
       "scenario_negative_price.json",
       {R"(:3: assets[0].price)", R"(price -3000 must be a finite number > 0)"}},
      {loader::scenario,
       "scenario_pool_mismatch.json",
       {R"(:3: assets[0].pool)", R"(differs from the asset's price)"}},
      {loader::scenario,
       "scenario_threshold_high.json",
       {R"(:8: protocols[0].assets.ETH.liquidation_threshold)",
        R"(liquidation_threshold 1.5 is outside (0, 1])"}},
      {loader::scenario,
       "scenario_threshold_zero.json",
       {R"(:9: protocols[0].assets.USDC.liquidation_threshold)", R"(is outside (0, 1])"}},
      {loader::scenario,
       "scenario_bonus.json",
       {R"(:8: protocols[0].assets.ETH.liquidation_bonus)", R"(is outside [0, 1))"}},
      {loader::scenario,
       "scenario_close_factor.json",
       {R"(:7: protocols[0].close_factor)", R"(close_factor 0 is outside (0, 1])"}},
      {loader::scenario,
       "scenario_full_hf.json",
       {R"(:7: protocols[0].full_liquidation_hf)", R"(is outside [0, 1])"}},
      {loader::scenario,
       "scenario_unknown_kind.json",
       {R"(:7: protocols[0].kind)", R"(unknown protocol kind 'bank')"}},
      {loader::scenario,
       "scenario_duplicate_id.json",
       {R"(:15: positions[1].id)", R"(duplicate position id 'p1')"}},
      {loader::scenario,
       "scenario_empty_id.json",
       {R"(:12: positions[0].id)", R"(the id is empty)"}},
      {loader::scenario,
       "scenario_unknown_asset_leg.json",
       {R"(:14: positions[0].legs[1].asset)", R"(unknown asset 'SOL')"}},
      {loader::scenario,
       "scenario_unknown_protocol.json",
       {R"(:12: positions[0].protocol)", R"(unknown protocol 'aave-v9')"}},
      {loader::scenario,
       "scenario_collateral_not_configured.json",
       {R"(:13: positions[0].legs[1].collateral)",
        R"(protocol 'aave-v3' does not accept 'USDC' as collateral)"}},
      {loader::scenario,
       "scenario_shock_minus_one.json",
       {R"(:16: shocks.ETH)", R"(must be > -1)"}},
      {loader::scenario,
       "scenario_shock_below_minus_one.json",
       {R"(:16: shocks.ETH)", R"(shock -2.5 must be > -1)"}},
      {loader::scenario,
       "scenario_shock_unknown_asset.json",
       {R"(:16: shocks.SOL)", R"(unknown asset 'SOL')"}},
      {loader::scenario,
       "scenario_shock_wrong_type.json",
       {R"(:16: shocks.ETH)", R"(expected a number, got a string)"}},
      {loader::scenario,
       "scenario_wrong_type_price.json",
       {R"(:3: assets[0].price)", R"(expected a number, got a string)"}},
      {loader::scenario,
       "scenario_wrong_type_legs.json",
       {R"(:12: positions[0].legs)", R"(expected an array, got an object)"}},
      {loader::scenario,
       "scenario_missing_symbol.json",
       {R"(:4: assets[1])", R"(missing required field 'symbol')"}},
      {loader::scenario,
       "scenario_missing_legs.json",
       {R"(:12: positions[0])", R"(missing required field 'legs')"}},
      {loader::scenario,
       "scenario_missing_close_factor.json",
       {R"(:7: protocols[0])", R"(missing required field 'close_factor')"}},
      {loader::scenario,
       "scenario_negative_amount.json",
       {R"(:14: positions[0].legs[1].debt)", R"(-20000 is negative)"}},
      {loader::scenario,
       "scenario_max_rounds_zero.json",
       {R"(:17: max_rounds)", R"('0' is not an integer in [1, 1000000])"}},
      {loader::scenario,
       "scenario_max_rounds_fraction.json",
       {R"(:17: max_rounds)", R"('2.5' is not an integer)"}},
      {loader::scenario, "scenario_empty.json", {R"(empty document)"}},
      {loader::scenario,
       "scenario_not_object.json",
       {R"(:1: expected a JSON object, got an array)"}},
      {loader::scenario,
       "scenario_duplicate_asset.json",
       {R"(:4: assets[1].symbol)", R"(duplicate symbol)"}},
      {loader::scenario,
       "scenario_malformed_unknown_key.json",
       {R"(:2: notes)", R"(malformed JSON)"}},
      {loader::scenario,
       "scenario_repeated_key.json",
       {R"(:17: max_rounds)", R"(key 'max_rounds' is given twice)"}},
      {loader::scenario, "scenario_missing_assets.json", {R"(missing required field 'assets')"}},
      {loader::scenario,
       "scenario_protocol_unknown_asset.json",
       {R"(:9: protocols[0].assets.SOL)", R"(unknown asset 'SOL')"}},
      {loader::scenario,
       "scenario_unclosed_string.json",
       {R"(truncated JSON: a string is opened but never closed)"}},
      {loader::scenario,
       "scenario_derived_missing_base.json",
       {R"(:4: assets[1].derived: missing required field 'base')"}},
      {loader::scenario,
       "scenario_derived_base_type.json",
       {R"(:4: assets[1].derived.base: expected a string, got a number)"}},
      {loader::scenario,
       "scenario_derived_not_object.json",
       {R"(:4: assets[1].derived: expected an object, got a string)"}},
      {loader::scenario,
       "scenario_derived_repeated_key.json",
       {R"(:4: assets[1].derived.base: key 'base' is given twice)"}},
      {loader::scenario,
       "scenario_derived_unknown_base.json",
       {R"(:4: assets[1].derived.base: asset 'stETH': derived: unknown base asset 'BTC')"}},
      {loader::scenario,
       "scenario_derived_base_derived.json",
       {R"(:5: assets[2].derived.base: asset 'wstETH': derived: base 'stETH' is itself derived)"}},
      {loader::scenario,
       "scenario_derived_with_pool.json",
       {R"(:4: assets[1].pool: asset 'stETH': derived: )", R"(give it a ratio_pool, not a pool)"}},
      {loader::scenario,
       "scenario_derived_ratio_mismatch.json",
       {R"(:5: assets[1].derived.ratio_pool: asset 'stETH': derived: ratio_pool quote/base = 0.9 differs from price / ETH price = 0.995)"}},
      {loader::scenario,
       "scenario_derived_ratio_negative.json",
       {R"(:5: assets[1].derived.ratio_pool: )",
        R"(ratio_pool base -20000 and quote 19900 must be finite numbers > 0)"}},
      {loader::scenario,
       "scenario_derived_ratio_missing_quote.json",
       {R"(:5: assets[1].derived.ratio_pool: missing required field 'quote')"}},
      {loader::scenario,
       "scenario_derived_sell_through_type.json",
       {R"(:5: assets[1].derived.sell_through: expected a boolean, got a string)"}},
      {loader::scenario,
       "scenario_venues_with_pool.json",
       {R"(:4: assets[0].venues: venues replace the pool: give one or the other)"}},
      {loader::scenario,
       "scenario_venue_depth_order.json",
       {R"(:4: assets[0].venues: venues[1] 'cex': depth[1].drop 0.02 must be in (0, 1) and above the previous point's drop 0.05)"}},
      {loader::scenario,
       "scenario_venue_pool_and_depth.json",
       {R"(:4: assets[0].venues[0]: a venue is either a "pool" or a "depth" curve)"}},
      {loader::scenario,
       "scenario_withdrawal_without_venues.json",
       {R"(:4: assets[0].withdrawal: withdrawal applies to venues)"}},
      {loader::scenario,
       "scenario_withdrawal_floor.json",
       {R"(:5: assets[0].withdrawal.floor: floor 0 is outside (0, 1])"}},
      {loader::scenario,
       "scenario_model_unknown_protocol.json",
       {R"(:18: model.oracles.compound-v9: unknown protocol 'compound-v9')"}},
      {loader::scenario,
       "scenario_model_halt_drop.json",
       {R"(:18: model.halt_drop: halt_drop 1.2 is outside (0, 1))"}},
      {loader::scenario,
       "scenario_model_capacity_zero.json",
       {R"(:18: model.liquidator_capacity_usd: 0 must be > 0)"}},
      {loader::scenario,
       "scenario_model_lag_fraction.json",
       {R"(:18: model.oracles.aave-v3.lag_rounds: '0.5' is not an integer in [0, 1000000])"}},
      {loader::csv, "positions_empty.csv", {R"(empty file)"}},
      {loader::csv, "positions_missing_column.csv", {R"(:1: missing column 'debt')"}},
      {loader::csv, "positions_unknown_column.csv", {R"(:1: unknown column 'amount')"}},
      {loader::csv, "positions_duplicate_column.csv", {R"(:1: column 'debt' is given twice)"}},
      {loader::csv, "positions_not_number.csv", {R"(:3: column 'debt': 'abc' is not a number)"}},
      {loader::csv, "positions_nan.csv", {R"(:4: column 'collateral': 'nan' is not allowed)"}},
      {loader::csv, "positions_inf.csv", {R"(:5: column 'debt': 'inf' is not allowed)"}},
      {loader::csv,
       "positions_negative.csv",
       {R"(:2: column 'collateral': '-100' is not allowed: amounts must be finite numbers >= 0)"}},
      {loader::csv,
       "positions_out_of_range.csv",
       {R"(:2: column 'collateral': '1e999' is out of the range)"}},
      {loader::csv,
       "positions_space_in_number.csv",
       {R"(:3: column 'debt': ' 80' is not a number)"}},
      {loader::csv, "positions_empty_number.csv", {R"(:3: column 'debt': the value is empty)"}},
      {loader::csv, "positions_unknown_asset.csv", {R"(:6: column 'asset': unknown asset 'SOL')"}},
      {loader::csv,
       "positions_unknown_protocol.csv",
       {R"(:4: column 'protocol': unknown protocol 'compound-v9')"}},
      {loader::csv, "positions_short_row.csv", {R"(:3: the row has 5 fields, the header 6)"}},
      {loader::csv, "positions_long_row.csv", {R"(:3: the row has 7 fields, the header 6)"}},
      {loader::csv, "positions_blank_line.csv", {R"(:4: blank line)"}},
      {loader::csv, "positions_empty_id.csv", {R"(:2: column 'id': the id is empty)"}},
      {loader::csv,
       "positions_quoted.csv",
       {R"(:2: a quote character: quoted fields are not supported)"}},
      {loader::csv,
       "positions_protocol_mismatch.csv",
       {R"(:3: column 'protocol': position 'aave-1' is in protocol 'aave-v3' on line 2, not 'maker')"}},
      {loader::csv,
       "positions_owner_mismatch.csv",
       {R"(:6: column 'owner': position 'comp-1' has owner '0x02' on line 4, not '0x99')"}},
      {loader::csv,
       "positions_collateral_not_accepted.csv",
       {R"(:7: column 'collateral': protocol 'maker' does not accept 'DAI' as collateral)"}},
      {loader::csv, "positions_header_blank.csv", {R"(:1: the header line is empty)"}},
      {loader::config, "config_unknown_key.toml", {R"(:4: server.prot: unknown key 'prot')"}},
      {loader::config, "config_unknown_section.toml", {R"(:1: database: unknown key 'database')"}},
      {loader::config,
       "config_unknown_entry_key.toml",
       {R"(:66: protocols[1].assets.WBTC.liquidation_treshold: unknown key 'liquidation_treshold')"}},
      {loader::config,
       "config_bad_port.toml",
       {R"(:4: server.port: port 70000 is outside [0, 65535])"}},
      {loader::config,
       "config_negative_port.toml",
       {R"(:4: server.port: port -1 is outside [0, 65535])"}},
      {loader::config,
       "config_port_type.toml",
       {R"(:4: server.port: expected an integer, got a string)"}},
      {loader::config,
       "config_both_sources.toml",
       {R"(:18: positions: give either file or generate, not both)"}},
      {loader::config, "config_no_source.toml", {R"(:18: positions: missing a source)"}},
      {loader::config,
       "config_generate_zero.toml",
       {R"(:19: positions.generate: 0 is outside [1, 100000000])"}},
      {loader::config,
       "config_generate_huge.toml",
       {R"(:19: positions.generate: 100000001 is outside [1, 100000000])"}},
      {loader::config,
       "config_seed_negative.toml",
       {R"(:20: positions.seed: seed -3 is negative)"}},
      {loader::config,
       "config_bad_bands.toml",
       {R"(:6: bands: thresholds must satisfy warn > danger > liquidatable > 0)"}},
      {loader::config,
       "config_bad_hysteresis.toml",
       {R"(:6: bands: hysteresis must be in [0, 0.5))"}},
      {loader::config,
       "config_scan_fraction.toml",
       {R"(:13: book.scan_fraction: scan_fraction 1.5 is outside [0, 1])"}},
      {loader::config,
       "config_max_legs.toml",
       {R"(:16: book.max_legs: max_legs 0 is outside [1, 65535])"}},
      {loader::config,
       "config_nan_price.toml",
       {R"(:40: assets[3].price)", R"(price nan must be a finite number > 0)"}},
      {loader::config,
       "config_inf_price.toml",
       {R"(:29: assets[1].price)", R"(price inf must be a finite number > 0)"}},
      {loader::config,
       "config_negative_price.toml",
       {R"(:23: assets[0].price)", R"(price -3000 must be a finite number > 0)"}},
      {loader::config,
       "config_zero_price.toml",
       {R"(:35: assets[2].price)", R"(price 0 must be a finite number > 0)"}},
      {loader::config,
       "config_pool_mismatch.toml",
       {R"(:30: assets[1].pool)", R"(differs from the asset's price)"}},
      {loader::config,
       "config_wrong_type.toml",
       {R"(:29: assets[1].price: expected a number, got a string)"}},
      {loader::config,
       "config_duplicate_symbol.toml",
       {R"(:28: assets[1].symbol)", R"(duplicate symbol)"}},
      {loader::config,
       "config_beta_inf.toml",
       {R"(:25: assets[0].beta: beta must be a finite number)"}},
      {loader::config,
       "config_missing_price.toml",
       {R"(:33: assets[2]: missing required key 'price')"}},
      {loader::config,
       "config_threshold.toml",
       {R"(:74: protocols[2].assets.ETH.liquidation_threshold)",
        R"(protocol 'maker': asset 'ETH': liquidation_threshold 1.5 is outside (0, 1])"}},
      {loader::config,
       "config_bonus.toml",
       {R"(:83: protocols[3].assets.USDC.liquidation_bonus)", R"(is outside [0, 1))"}},
      {loader::config,
       "config_close_factor.toml",
       {R"(:51: protocols[0].close_factor)", R"(close_factor 1.5 is outside (0, 1])"}},
      {loader::config,
       "config_full_hf.toml",
       {R"(:52: protocols[0].full_liquidation_hf)", R"(is outside [0, 1])"}},
      {loader::config,
       "config_unknown_kind.toml",
       {R"(:79: protocols[3].kind: unknown protocol kind 'perp')"}},
      {loader::config,
       "config_missing_name.toml",
       {R"(:59: protocols[1]: missing required key 'name')"}},
      {loader::config,
       "config_protocol_unknown_asset.toml",
       {R"(:83: protocols[3].assets.SOL)", R"(unknown asset 'SOL')"}},
      {loader::config, "config_syntax.toml", {R"(:69: TOML syntax error)"}},
      {loader::config, "config_duplicate_key.toml", {R"(:5: TOML syntax error)"}},
      {loader::config, "config_empty.toml", {R"(missing required section 'positions')"}},
      {loader::config, "config_assets_not_array.toml", {R"(:21: assetz: unknown key 'assetz')"}},
      {loader::config,
       "config_derived_unknown_key.toml",
       {R"(:36: assets[2].derived.ratio: unknown key 'ratio' (expected one of: base, ratio_pool, sell_through))"}},
      {loader::config,
       "config_derived_ratio_pool_unknown_key.toml",
       {R"(:36: assets[2].derived.ratio_pool.fee: unknown key 'fee' (expected one of: base, quote))"}},
      {loader::config,
       "config_derived_missing_base.toml",
       {R"(:36: assets[2].derived: missing required key 'base')"}},
      {loader::config,
       "config_derived_sell_through_type.toml",
       {R"(:36: assets[2].derived.sell_through: expected a boolean, got an integer)"}},
      {loader::config,
       "config_derived_unknown_base.toml",
       {R"(:36: assets[2].derived.base: asset 'stETH': derived: unknown base asset 'ETH2')"}},
      {loader::config,
       "config_derived_base_derived.toml",
       {R"(:41: assets[3].derived.base: asset 'wstETH': derived: base 'stETH' is itself derived)"}},
      {loader::config,
       "config_derived_with_pool.toml",
       {R"(:36: assets[2].pool: asset 'stETH': derived: )", R"(give it a ratio_pool, not a pool)"}},
      {loader::config,
       "config_derived_ratio_mismatch.toml",
       {R"(:36: assets[2].derived.ratio_pool: asset 'stETH': derived: ratio_pool quote/base = 0.9 differs from price / ETH price = 0.995)"}},
      {loader::config,
       "config_server_io_threads.toml",
       {R"(:5: server.io_threads: io_threads 0 is outside [1, 64])"}},
      {loader::config,
       "config_server_anonymous_role.toml",
       {R"(:5: server.anonymous_role: unknown role 'guest' (expected none, read, price or admin))"}},
      {loader::config,
       "config_server_max_body.toml",
       {R"(:5: server.max_body_bytes: max_body_bytes 100 is outside [1024, 1073741824])"}},
      {loader::config,
       "config_server_inbox_type.toml",
       {R"(:5: server.inbox_capacity: expected an integer, got a string)"}},
      {loader::config,
       "config_server_half_life.toml",
       {R"(:5: server.volatility_half_life_hours: volatility_half_life_hours must be a finite number > 0, got -1)"}},
      {loader::config,
       "config_server_unknown_key.toml",
       {R"(:5: server.max_conections: unknown key 'max_conections')"}},
      {loader::config,
       "config_server_tokens_not_array.toml",
       {R"(:5: server.tokens: expected an array of tables, got a string)"}},
      {loader::config,
       "config_server_token_both.toml",
       {R"(:6: server.tokens[0]: give either token or token_env, not both)"}},
      {loader::config,
       "config_server_token_env_unset.toml",
       {R"(:8: server.tokens[0].token_env: environment variable 'CASCADE_TEST_UNSET_TOKEN_VARIABLE' is unset or empty)"}},
      {loader::config,
       "config_server_token_role.toml",
       {R"(:7: server.tokens[0].role: unknown role 'root' (a token grants read, price or admin))"}},
      {loader::config,
       "config_server_token_missing.toml",
       {R"(:6: server.tokens[0]: missing the token: give token_env)"}},
      {loader::config,
       "config_server_token_space.toml",
       {R"(:8: server.tokens[0].token: the token holds a space)"}},
      {loader::config,
       "config_server_token_twice.toml",
       {R"(:10: server.tokens[1]: the same token is given twice (also server.tokens[0]))"}},
      {loader::config,
       "config_derived_ratio_zero.toml",
       {R"(:36: assets[2].derived.ratio_pool: )",
        R"(ratio_pool base 20000 and quote 0 must be finite numbers > 0)"}},
  };
  return cases;
}

std::string bad_path(const char* file) {
  return std::string(CASCADE_SOURCE_DIR) + "/tests/data/bad/" + file;
}

}  // namespace

TEST_CASE("every bad input file is refused with where and why, leaving the book unchanged",
          "[proto][bad-input]") {
  // A live book that the CSV cases try to load into.
  auto sc = must(cascade::proto::load_scenario_file(
      std::string(CASCADE_SOURCE_DIR) + "/proto/examples/scenario_multi_protocol.json"));
  const cascade::market& m = sc.mkt;
  cascade::book b(m);
  must(b.upsert(sc.positions));
  const std::uint64_t before = b.digest();

  std::size_t counts[3] = {};
  for (const bad_case& c : bad_cases()) {
    const std::string path = bad_path(c.file);
    absl::Status status;
    switch (c.kind) {
      case loader::scenario:
        status = cascade::proto::load_scenario_file(path).status();
        break;
      case loader::config:
        status = cascade::proto::load_config_file(path).status();
        break;
      case loader::csv: {
        auto ps = cascade::proto::load_positions_csv(path, m);
        status = ps.ok() ? b.upsert(*ps) : ps.status();
        break;
      }
    }
    ++counts[static_cast<int>(c.kind)];
    INFO(c.file << ": " << status.ToString());
    REQUIRE_FALSE(status.ok());
    CHECK(status.code() == absl::StatusCode::kInvalidArgument);
    const std::string msg(status.message());
    CHECK(msg.rfind(path, 0) == 0);  // starts with the file
    for (const char* e : c.expected) CHECK_THAT(msg, Catch::Contains(e));
    CHECK(b.digest() == before);
  }
  CHECK(counts[0] >= 10);
  CHECK(counts[1] >= 10);
  CHECK(counts[2] >= 10);
}

TEST_CASE("a CSV the book refuses as a batch leaves the book unchanged", "[proto][bad-input]") {
  auto sc = must(cascade::proto::load_scenario_file(
      std::string(CASCADE_SOURCE_DIR) + "/proto/examples/scenario_multi_protocol.json"));
  const cascade::market& m = sc.mkt;
  cascade::book_options options;
  options.max_legs = 2;
  cascade::book b(m, options);
  must(b.upsert(std::span(sc.positions).first(1)));
  const std::uint64_t before = b.digest();
  // Well-formed, but the second position has three legs.
  const auto ps = must(cascade::proto::parse_positions_csv(
      "id,protocol,asset,collateral,debt\n"
      "x,aave-v3,ETH,1,0\n"
      "y,aave-v3,ETH,1,0\ny,aave-v3,WBTC,1,0\ny,aave-v3,USDC,0,10\n",
      m, "legs.csv"));
  const auto s = b.upsert(ps);
  REQUIRE_FALSE(s.ok());
  CHECK_THAT(std::string(s.message()), Catch::Contains("'y'") && Catch::Contains("legs"));
  CHECK(b.digest() == before);
  CHECK_FALSE(b.find("x").has_value());
}
