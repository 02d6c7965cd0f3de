// REST bodies of proto/PROTOCOL.md: request bodies and query strings decode or are
// refused with their code and field path; answers encode to JSON that reads back to the
// book's state; the positions cursor round-trips any (hf, id).
#include "proto/rest_codec.hpp"

#include <simdjson.h>

#include <bit>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <string>

#include "engine/curves.hpp"
#include "support/fixtures.hpp"
#include "support/wire_json.hpp"

namespace {

using cascade::asset_id;
using cascade::book;
using cascade::market;
using cascade::position_input;
using cascade::testing::aid;
using cascade::testing::json_is_null;
using cascade::testing::json_num;
using cascade::testing::json_parse;
using cascade::testing::json_str;
using cascade::testing::json_uint;
using cascade::testing::must;
using cascade::testing::pid;
namespace proto = cascade::proto;
using proto::error_code;

const market& test_market() {
  static const market m = cascade::testing::small_market();
  return m;
}

template <class T>
T ok(proto::decoded<T> d) {
  if (const auto* e = std::get_if<proto::wire_error>(&d)) {
    INFO("refused: " << proto::to_string(e->code) << ": " << e->message);
    REQUIRE(false);
  }
  return std::get<T>(std::move(d));
}

template <class T>
std::string refused(const proto::decoded<T>& d, error_code code) {
  REQUIRE(std::holds_alternative<proto::wire_error>(d));
  const auto e = std::get<proto::wire_error>(d);
  INFO("message: " << e.message);
  CHECK(proto::to_string(e.code) == proto::to_string(code));
  CHECK_FALSE(e.message.empty());
  CHECK(simdjson::validate_utf8(e.message.data(), e.message.size()));
  return e.message;
}

proto::decoded<std::vector<position_input>> positions(std::string_view body,
                                                      std::size_t max_batch = 100) {
  return proto::decode_positions_body(body, test_market(), max_batch);
}
proto::decoded<std::vector<proto::price_tick>> prices(std::string_view body,
                                                      std::size_t max_batch = 100) {
  return proto::decode_prices_body(body, test_market(), max_batch);
}
proto::decoded<proto::live_stress> stress(std::string_view body) {
  return proto::decode_live_stress(body, test_market());
}
proto::decoded<proto::at_risk_query> at_risk(std::string_view query) {
  return proto::decode_at_risk_query(query, test_market());
}

// A book over the test market: p1 (lend, HF 1.0667), vault-1 (vault, HF ~0.95) and ids
// that need escaping in a URL, one of them without debt (HF +inf).
book test_book() {
  const market& m = test_market();
  book b(m);
  const auto eth = aid(m, "ETH");
  const auto usdc = aid(m, "USDC");
  must(b.upsert(std::vector<position_input>{
      {"p1", pid(m, "lend"), "0xabc", {{eth, 1.0, 0.0}, {usdc, 0.0, 1500.0}}},
      {"vault-1", pid(m, "vault"), "", {{eth, 2.0, 0.0}, {aid(m, "DAI"), 0.0, 2800.0}}},
      {"a&b=c%20d é", pid(m, "lend"), "0xdef", {{eth, 1.0, 0.0}}},
  }));
  return b;
}

}  // namespace

TEST_CASE("POST /v1/positions bodies decode every field, in order", "[rest_codec]") {
  const market& m = test_market();
  const auto ps = ok(positions(R"({"positions": [
      {"id": "p1", "protocol": "lend", "owner": "0xabc",
       "legs": [{"asset": "ETH", "collateral": 10.5}, {"asset": "USDC", "debt": 20000}]},
      {"id": "v1", "protocol": "vault", "legs": []}]})"));
  REQUIRE(ps.size() == 2);
  CHECK(ps[0].id == "p1");
  CHECK(ps[0].protocol == pid(m, "lend"));
  CHECK(ps[0].owner == "0xabc");
  REQUIRE(ps[0].legs.size() == 2);
  CHECK(ps[0].legs[0].asset == aid(m, "ETH"));
  CHECK(ps[0].legs[0].collateral == 10.5);
  CHECK(ps[0].legs[0].debt == 0.0);
  CHECK(ps[0].legs[1].asset == aid(m, "USDC"));
  CHECK(ps[0].legs[1].debt == 20000.0);
  CHECK(ps[1].id == "v1");
  CHECK(ps[1].owner.empty());
  CHECK(ps[1].legs.empty());
}

TEST_CASE("POST /v1/positions refusals name the field", "[rest_codec]") {
  refused(positions(R"({"positions": [)"), error_code::bad_json);
  refused(positions("{\"positions\": [{\"id\": \"\xFF\"}]}"), error_code::bad_json);
  CHECK(refused(positions("[]"), error_code::bad_request) ==
        "expected a JSON object, got an array");
  CHECK(refused(positions("{}"), error_code::bad_request) == "missing required field 'positions'");
  CHECK(refused(positions(R"({"positions": []})"), error_code::bad_request) ==
        "positions: empty: give at least one position");
  CHECK(refused(positions(R"({"extra": 1, "positions": []})"), error_code::bad_request) ==
        "extra: unknown key 'extra' (expected one of: positions)");
  CHECK(refused(positions(R"({"positions": [{"id": "a", "protocol": "aave", "legs": []}]})"),
                error_code::unknown_protocol) == "positions[0].protocol: unknown protocol 'aave'");
  CHECK(refused(positions(R"({"positions": [{"id": "a", "protocol": "lend", "legs": [
                  {"asset": "ETH", "collateral": 1}, {"asset": "SOL", "debt": 1}]}]})"),
                error_code::unknown_asset) == "positions[0].legs[1].asset: unknown asset 'SOL'");
  CHECK(refused(positions(R"({"positions": [{"id": "a", "protocol": "lend", "legs": [
                  {"asset": "ETH", "collateral": -1}]}]})"),
                error_code::bad_request) ==
        "positions[0].legs[0].collateral: must be a finite number >= 0, got -1");
  CHECK_THAT(refused(positions(R"({"positions": [{"id": "a", "protocol": "lend", "legs": [
                       {"asset": "ETH", "debt": NaN}]}]})"),
                     error_code::bad_request),
             Catch::StartsWith("positions[0].legs[0].debt: must be a finite number, got 'NaN'"));
  CHECK(refused(positions(R"({"positions": [{"id": "a", "protocol": "lend", "legs": []},
                  {"id": "a", "protocol": "vault", "legs": []}]})"),
                error_code::bad_request) ==
        "positions[1].id: duplicate position id 'a' (also positions[0])");
  CHECK(refused(positions(R"({"positions": [{"id": "", "protocol": "lend", "legs": []}]})"),
                error_code::bad_request) == "positions[0].id: the id is empty");
  CHECK(refused(positions(R"({"positions": [{"id": "a", "protocol": "lend"}]})"),
                error_code::bad_request) == "positions[0]: missing required field 'legs'");
  CHECK(
      refused(
          positions(
              R"({"positions": [{"id": "a", "protocol": "lend", "legs": [{"asset": "ETH", "amount": 1}]}]})"),
          error_code::bad_request) ==
      "positions[0].legs[0].amount: unknown key 'amount' (expected one of: asset, collateral, "
      "debt)");
  CHECK(refused(positions(R"({"positions": [{"id": "a", "protocol": "lend", "legs": []},
                  {"id": "b", "protocol": "lend", "legs": []}]})",
                          1),
                error_code::too_large) ==
        "positions: more than 1 positions in one batch (the server's max_batch)");
}

TEST_CASE("POST /v1/prices bodies decode with source rest by default", "[rest_codec]") {
  const market& m = test_market();
  const auto ticks = ok(prices(
      R"({"prices": [{"asset": "ETH", "price": 2400.5}, {"asset": "WBTC", "price": 6e4, "source": "cex", "ts": 17.5}]})"));
  REQUIRE(ticks.size() == 2);
  CHECK(ticks[0].asset == aid(m, "ETH"));
  CHECK(ticks[0].price == 2400.5);
  CHECK(ticks[0].source == "rest");
  CHECK(ticks[0].ts == 0.0);
  CHECK(ticks[1].asset == aid(m, "WBTC"));
  CHECK(ticks[1].price == 60000.0);
  CHECK(ticks[1].source == "cex");
  CHECK(ticks[1].ts == 17.5);

  CHECK(refused(prices(R"({"prices": [{"asset": "ETH", "price": 0}]})"), error_code::bad_price) ==
        "prices[0].price: must be a finite number > 0, got 0");
  CHECK_THAT(
      refused(prices(R"({"prices": [{"asset": "ETH", "price": 1e999}]})"), error_code::bad_price),
      Catch::StartsWith("prices[0].price: must be a finite number > 0"));
  CHECK(
      refused(prices(R"({"prices": [{"asset": "ETH", "price": 1}, {"asset": "WBT", "price": 1}]})"),
              error_code::unknown_asset) == "prices[1].asset: unknown asset 'WBT'");
  CHECK(
      refused(
          prices(R"({"prices": [{"asset": "ETH", "price": 1}, {"asset": "ETH", "price": 1}]})", 1),
          error_code::too_large) ==
      "prices: more than 1 ticks in one batch (the server's max_batch)");
  CHECK(refused(prices(R"({"prices": []})"), error_code::bad_request) ==
        "prices: empty: a batch holds at least one tick");
  CHECK(refused(prices(R"({"price": []})"), error_code::bad_request) ==
        "price: unknown key 'price' (expected one of: prices)");
  CHECK(refused(prices(R"({})"), error_code::bad_request) == "missing required field 'prices'");
  refused(prices(R"({"prices": [{"asset": "ETH", "price": 1}]} trailing)"), error_code::bad_json);
}

TEST_CASE("POST /v1/stress without positions decodes shocks and max_rounds", "[rest_codec]") {
  const market& m = test_market();
  const auto empty = ok(stress("{}"));
  CHECK(empty.shocks.empty());
  CHECK(empty.max_rounds == 100);
  const auto s = ok(stress(R"({"shocks": {"ETH": -0.2, "WBTC": 0.1}, "max_rounds": 7,
      "assets": [{"symbol": "ETH", "price": 1, "pool": {"base": 1, "quote": 1}}],
      "protocols": [{"name": "vault", "assets": {"ETH": {}}}]})"));
  REQUIRE(s.shocks.size() == 2);
  CHECK(s.shocks[0].asset == aid(m, "ETH"));
  CHECK(s.shocks[0].fraction == -0.2);
  CHECK(s.shocks[1].asset == aid(m, "WBTC"));
  CHECK(s.max_rounds == 7);

  CHECK(refused(stress(R"({"shocks": {"SOL": -0.2}})"), error_code::unknown_asset) ==
        "shocks.SOL: unknown asset 'SOL'");
  CHECK(refused(stress(R"({"shocks": {"ETH": -1}})"), error_code::bad_request) ==
        "shocks.ETH: shock -1 must be > -1 (a price cannot fall by 100% or more)");
  CHECK(refused(stress(R"({"shocks": {"ETH": -0.1, "ETH": -0.2}})"), error_code::bad_request) ==
        "shocks.ETH: the asset is shocked twice");
  CHECK(refused(stress(R"({"shocks": {"ETH": "-0.1"}})"), error_code::bad_request) ==
        "shocks.ETH: expected a number, got a string");
  CHECK(refused(stress(R"({"max_rounds": 0})"), error_code::bad_request) ==
        "max_rounds: must be an integer in [1, 1000000], got '0'");
  CHECK(refused(stress(R"({"assets": [{"symbol": "ETH"}, {"symbol": "DOGE"}]})"),
                error_code::unknown_asset) == "assets[1].symbol: unknown asset 'DOGE'");
  CHECK(refused(stress(R"({"assets": [{"price": 1}]})"), error_code::bad_request) ==
        "assets[0]: missing required field 'symbol'");
  CHECK(refused(stress(R"({"protocols": [{"name": "aave-v9"}]})"), error_code::unknown_protocol) ==
        "protocols[0].name: unknown protocol 'aave-v9'");
  refused(stress(R"({"assets": [{"symbol": "ETH", "pool": {"base": ,}}]})"), error_code::bad_json);
  CHECK(refused(stress(R"({"shock": {}})"), error_code::bad_request) ==
        "shock: unknown key 'shock' (expected one of: shocks, max_rounds, assets, protocols)");
}

TEST_CASE("body_has_positions looks only at the top level", "[rest_codec]") {
  CHECK(proto::body_has_positions(R"({"assets": [], "positions": []})"));
  CHECK(proto::body_has_positions(R"({"positions": null})"));
  CHECK_FALSE(proto::body_has_positions(R"({"shocks": {"ETH": -0.1}})"));
  CHECK_FALSE(proto::body_has_positions(R"({"assets": [{"positions": []}]})"));
  CHECK_FALSE(proto::body_has_positions(R"([{"positions": []}])"));
  CHECK_FALSE(proto::body_has_positions("not json"));
  CHECK_FALSE(proto::body_has_positions(""));
}

TEST_CASE("query strings decode %-escapes and refuse unknown or repeated keys", "[rest_codec]") {
  constexpr std::string_view known[] = {"a", "b c", "cursor"};
  const auto q = [&](std::string_view s) { return proto::decode_query(s, known); };
  CHECK(ok(q("")).empty());
  CHECK(ok(q("?")).empty());
  const auto p = ok(q("?a=x%20y+z&&b%20c=%E2%82%AC&cursor"));
  REQUIRE(p.size() == 3);
  CHECK(p[0] == std::pair<std::string, std::string>{"a", "x y z"});
  CHECK(p[1] == std::pair<std::string, std::string>{"b c", "\xE2\x82\xAC"});
  CHECK(p[2] == std::pair<std::string, std::string>{"cursor", ""});
  CHECK(ok(q("a=%26%25%3D")).at(0).second == "&%=");

  CHECK(refused(q("a=1&d=2"), error_code::bad_request) ==
        "query: unknown parameter 'd' (expected one of: a, b c, cursor)");
  CHECK(refused(q("a=1&a=2"), error_code::bad_request) == "a: the parameter is given twice");
  CHECK(refused(q("a=%2"), error_code::bad_request) == "a: bad %-escape in '%2'");
  CHECK(refused(q("a=%zz"), error_code::bad_request) == "a: bad %-escape in '%zz'");
  CHECK(refused(q("a=%FF"), error_code::bad_request) == "a: the value is not valid UTF-8");
  CHECK_THAT(refused(q("%G1=1"), error_code::bad_request),
             Catch::StartsWith("query: the parameter name '%G1'"));
  CHECK(refused(proto::decode_query("x=1", {}), error_code::bad_request) ==
        "query: unknown parameter 'x' (this route takes none)");
}

TEST_CASE("GET /v1/positions queries decode with their defaults and ranges", "[rest_codec]") {
  const market& m = test_market();
  const auto d = ok(at_risk(""));
  CHECK(d.max_hf == 1.1);
  CHECK_FALSE(d.protocol.has_value());
  CHECK_FALSE(d.asset.has_value());
  CHECK(d.limit == 100);
  CHECK_FALSE(d.after.has_value());
  const auto q = ok(at_risk("max_hf=1.05&protocol=vault&asset=ETH&limit=10000"));
  CHECK(q.max_hf == 1.05);
  CHECK(q.protocol == pid(m, "vault"));
  CHECK(q.asset == aid(m, "ETH"));
  CHECK(q.limit == 10000);
  CHECK(ok(at_risk("max_hf=2e1")).max_hf == 20.0);

  for (const char* bad : {"max_hf=0", "max_hf=-1", "max_hf=inf", "max_hf=nan", "max_hf=abc",
                          "max_hf=", "max_hf=1.0x", "max_hf=1e999"}) {
    INFO(bad);
    CHECK_THAT(refused(at_risk(bad), error_code::bad_request),
               Catch::StartsWith("max_hf: must be a finite number > 0"));
  }
  for (const char* bad : {"limit=0", "limit=10001", "limit=-1", "limit=1.5", "limit=", "limit=x"}) {
    INFO(bad);
    CHECK_THAT(refused(at_risk(bad), error_code::bad_request),
               Catch::StartsWith("limit: must be an integer in [1, 10000]"));
  }
  CHECK(refused(at_risk("protocol=maker"), error_code::unknown_protocol) ==
        "protocol: unknown protocol 'maker'");
  CHECK(refused(at_risk("asset=SOL"), error_code::unknown_asset) == "asset: unknown asset 'SOL'");
  CHECK_THAT(refused(at_risk("cursor=not-a-cursor"), error_code::bad_request),
             Catch::StartsWith("cursor: not a cursor this server wrote"));
  CHECK_THAT(refused(at_risk("cursor=%2B%2F"), error_code::bad_request),
             Catch::StartsWith("cursor: "));
  CHECK(refused(at_risk("page=2"), error_code::bad_request) ==
        "query: unknown parameter 'page' (expected one of: max_hf, protocol, asset, limit, "
        "cursor)");
}

TEST_CASE("the positions cursor round-trips any hf and id, +inf included", "[rest_codec]") {
  const book b = test_book();
  simdjson::dom::parser p;
  for (const std::string id : {"p1", "vault-1", "a&b=c%20d é"}) {
    const auto row = b.find(id);
    REQUIRE(row.has_value());
    const std::vector<cascade::row_t> rows{*row};
    const auto doc = json_parse(p, proto::encode_positions_page(b, rows, true));
    const std::string cursor(json_str(doc, "next_cursor"));
    INFO(id << " -> " << cursor);
    // URL-safe as written: nothing for a client to escape.
    CHECK(cursor.find_first_not_of(
              "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
          std::string::npos);
    const auto q = ok(at_risk("limit=5&cursor=" + cursor));
    REQUIRE(q.after.has_value());
    CHECK(q.after->second == id);
    const double hf = b.health_at(*row);
    CHECK(std::bit_cast<std::uint64_t>(q.after->first) == std::bit_cast<std::uint64_t>(hf));
  }
  // The position without debt sorts last, at +inf.
  const auto inf_row = b.find("a&b=c%20d é");
  REQUIRE(std::isinf(b.health_at(*inf_row)));
  // A cursor is opaque but checked: one byte off is refused, not misread.
  const std::vector<cascade::row_t> one{*b.find("p1")};
  const auto doc = json_parse(p, proto::encode_positions_page(b, one, true));
  std::string cursor(json_str(doc, "next_cursor"));
  cursor[0] = cursor[0] == 'A' ? 'B' : 'A';
  refused(at_risk("cursor=" + cursor), error_code::bad_request);
  // No next_cursor on the last page.
  CHECK(json_is_null(json_parse(p, proto::encode_positions_page(b, one, false)), "next_cursor"));
}

TEST_CASE("positions pages list id, protocol, owner, hf and band", "[rest_codec]") {
  const book b = test_book();
  const auto below = b.below(1.1, 10);
  REQUIRE(below.size() == 2);
  std::vector<cascade::row_t> rows;
  for (const auto e : below) rows.push_back(e.row);
  simdjson::dom::parser p;
  const auto doc = json_parse(p, proto::encode_positions_page(b, rows, false));
  simdjson::dom::array list;
  REQUIRE(doc["positions"].get(list) == simdjson::SUCCESS);
  REQUIRE(list.size() == 2);
  const auto first = list.at(0).value();
  CHECK(json_str(first, "id") == "vault-1");
  CHECK(json_str(first, "protocol") == "vault");
  CHECK(json_is_null(first, "owner"));
  CHECK(json_num(first, "hf") == Approx(2.0 * 2000.0 / 1.5 / 2800.0));
  CHECK(json_str(first, "band") == "liquidatable");
  const auto second = list.at(1).value();
  CHECK(json_str(second, "id") == "p1");
  CHECK(json_str(second, "owner") == "0xabc");
  CHECK(json_num(second, "hf") == Approx(1600.0 / 1500.0));
  CHECK(json_str(second, "band") == "warn");
  CHECK(json_is_null(doc, "next_cursor"));
}

TEST_CASE("one position encodes its legs and USD values", "[rest_codec]") {
  const book b = test_book();
  simdjson::dom::parser p;
  const auto doc = json_parse(p, proto::encode_position(b, *b.find("p1")));
  CHECK(json_str(doc, "id") == "p1");
  CHECK(json_str(doc, "protocol") == "lend");
  CHECK(json_str(doc, "owner") == "0xabc");
  CHECK(json_num(doc, "hf") == Approx(1600.0 / 1500.0));
  CHECK(json_str(doc, "band") == "warn");
  CHECK(json_num(doc, "collateral_usd") == 2000.0);
  CHECK(json_num(doc, "debt_usd") == 1500.0);
  simdjson::dom::array legs;
  REQUIRE(doc["legs"].get(legs) == simdjson::SUCCESS);
  REQUIRE(legs.size() == 2);
  CHECK(json_str(legs.at(0).value(), "asset") == "ETH");
  CHECK(json_num(legs.at(0).value(), "collateral") == 1.0);
  CHECK(json_num(legs.at(1).value(), "debt") == 1500.0);
  // Without debt, hf is null.
  const auto free = json_parse(p, proto::encode_position(b, *b.find("a&b=c%20d é")));
  CHECK(json_is_null(free, "hf"));
  CHECK(json_str(free, "id") == "a&b=c%20d é");
  CHECK(json_str(free, "band") == "healthy");
}

TEST_CASE("assets, protocols and the summary encode the market and book", "[rest_codec]") {
  const market& m = test_market();
  book b = test_book();
  std::vector<cascade::crossing> events;
  must(b.apply_ticks(std::vector<cascade::tick>{{aid(m, "ETH"), 1900.0}}, events));
  simdjson::dom::parser p;

  auto doc = json_parse(p, proto::encode_assets(b));
  simdjson::dom::array assets;
  REQUIRE(doc["assets"].get(assets) == simdjson::SUCCESS);
  REQUIRE(assets.size() == m.asset_count());
  const auto eth = assets.at(0).value();
  CHECK(json_str(eth, "symbol") == "ETH");
  CHECK(json_num(eth, "price") == 1900.0);
  CHECK(json_num(eth, "reference_price") == 2000.0);
  CHECK(double(eth["pool"]["base"]) == 10000.0);
  CHECK(double(eth["pool"]["quote"]) == 20'000'000.0);
  CHECK(json_is_null(eth, "derived"));
  CHECK(json_is_null(assets.at(1).value(), "pool"));

  doc = json_parse(p, proto::encode_protocols(m));
  simdjson::dom::array protocols;
  REQUIRE(doc["protocols"].get(protocols) == simdjson::SUCCESS);
  REQUIRE(protocols.size() == 2);
  const auto lend = protocols.at(0).value();
  CHECK(json_str(lend, "name") == "lend");
  CHECK(json_str(lend, "kind") == "pooled");
  CHECK(json_num(lend, "close_factor") == 0.5);
  CHECK(json_num(lend, "full_liquidation_hf") == 0.95);
  CHECK(double(lend["assets"]["WBTC"]["liquidation_threshold"]) == 0.75);
  CHECK(double(lend["assets"]["WBTC"]["liquidation_bonus"]) == 0.06);
  CHECK(simdjson::dom::object(lend["assets"]).size() == 3);
  CHECK(json_str(protocols.at(1).value(), "kind") == "cdp");

  doc = json_parse(p, proto::encode_summary(b, 42));
  CHECK(json_uint(doc, "positions") == 3);
  CHECK(json_uint(doc, "seq") == 42);
  CHECK(double(doc["prices"]["ETH"]) == 1900.0);
  CHECK(double(doc["prices"]["DAI"]) == 1.0);
  // p1: 1900 * 0.8 / 1500 = 1.013 (danger); vault-1 liquidatable; the third healthy.
  CHECK(std::uint64_t(doc["protocols"]["lend"]["danger"]["positions"]) == 1);
  CHECK(double(doc["protocols"]["lend"]["danger"]["debt_usd"]) == 1500.0);
  CHECK(std::uint64_t(doc["protocols"]["lend"]["healthy"]["positions"]) == 1);
  CHECK(std::uint64_t(doc["protocols"]["vault"]["liquidatable"]["positions"]) == 1);
  CHECK(double(doc["protocols"]["vault"]["liquidatable"]["collateral_usd"]) == 3800.0);
  CHECK(std::uint64_t(doc["totals"]["healthy"]["positions"]) == 1);
  CHECK(std::uint64_t(doc["totals"]["warn"]["positions"]) == 0);
  CHECK(double(doc["totals"]["danger"]["collateral_usd"]) == 1900.0);
  CHECK(std::uint64_t(doc["totals"]["liquidatable"]["positions"]) == 1);
}

TEST_CASE("errors, projections and curves encode their documents", "[rest_codec]") {
  CHECK(proto::encode_error_body({error_code::unknown_position, "unknown position 'x\"'"}) ==
        R"({"error":{"code":"unknown_position","message":"unknown position 'x\"'"}})");

  const market& m = test_market();
  proto::cascade_event c;
  c.rounds = 2;
  c.bad_debt_usd = {1.5, 0.0};
  c.liquidated = {1, 2};
  c.start_prices = {2000.0, 40000.0, 1.0, 1.0};
  c.final_prices = {1500.0, 40000.0, 1.0, 1.0};
  simdjson::dom::parser p;
  auto doc = json_parse(p, proto::encode_projection(c, 99, m));
  CHECK(json_uint(doc, "seq") == 99);
  bool stale = true;
  REQUIRE(doc["stale"].get(stale) == simdjson::SUCCESS);
  CHECK_FALSE(stale);
  CHECK(json_uint(doc, "rounds") == 2);
  CHECK(double(doc["bad_debt_usd"]["lend"]) == 1.5);
  CHECK(std::uint64_t(doc["liquidated"]["vault"]) == 2);
  CHECK(double(doc["amplification"]["ETH"]) == 0.25);
  CHECK(doc["type"].error() == simdjson::NO_SUCH_FIELD);

  const book b = test_book();
  cascade::cascade_simulator sim;
  const auto eth = aid(m, "ETH");
  const auto liq = must(cascade::liquidation_curve(b, eth, cascade::grid(0.0, 0.5, 5)));
  const auto casc = must(cascade::cascade_curve(b, eth, cascade::grid(0.0, 0.5, 5), sim));
  cascade::critical_shock_options co;
  const auto crit = must(cascade::find_critical_shock(b, eth, sim, co));
  doc = json_parse(p, proto::encode_curves(b, eth, liq, casc, crit, co));
  CHECK(json_str(doc, "asset") == "ETH");
  CHECK(json_num(doc, "price") == 2000.0);
  CHECK(simdjson::dom::array(doc["liquidation_curve"]).size() == 6);
  CHECK(simdjson::dom::array(doc["cascade_curve"]).size() == 6);
  const auto cs = doc["critical_shock"].value();
  CHECK(json_str(cs, "reason") == proto::critical_reason(crit));
  CHECK(json_num(cs, "amplification") == co.amplification);
  CHECK(double(doc["liquidation_curve"].at(5)["drop"]) == 0.5);
}

TEST_CASE("critical_reason names why a shock is critical", "[rest_codec]") {
  cascade::critical_shock c;
  CHECK(proto::critical_reason(c) == "none up to 90%");
  c.shock = 0.1;
  c.amplifies = true;
  CHECK(proto::critical_reason(c) == "amplifies");
  c.bad_debt = true;
  CHECK(proto::critical_reason(c) == "amplifies, bad debt");
  c.amplifies = false;
  CHECK(proto::critical_reason(c) == "bad debt");
}

TEST_CASE("a path segment decodes %-escapes, keeps '+' and refuses a raw '/'", "[rest_codec]") {
  const auto ok = [](std::string_view raw) {
    auto r = proto::decode_path_segment(raw, "the id");
    return std::holds_alternative<std::string>(r) ? std::get<std::string>(r) : "(refused)";
  };
  const auto refused = [](std::string_view raw) {
    auto r = proto::decode_path_segment(raw, "the id");
    const auto* e = std::get_if<proto::wire_error>(&r);
    REQUIRE(e != nullptr);
    CHECK(e->code == proto::error_code::bad_request);
    return e->message;
  };
  CHECK(ok("b%2Fc") == "b/c");
  CHECK(ok("a+b%20c") == "a+b c");
  CHECK(ok("%C3%A9") == "\xC3\xA9");
  CHECK(refused("") == "the id is empty");
  CHECK(refused("b/c") == "the id holds an unescaped '/' (write it %2F)");
  CHECK(refused("bad%2") == "the id has a bad %-escape: 'bad%2'");
  CHECK(refused("bad%zz") == "the id has a bad %-escape: 'bad%zz'");
  // No JSON string can hold it, so no position has it; the answer must stay JSON.
  CHECK(refused("%ff") == "the id is not UTF-8 once %-decoded: '%ff'");
}
