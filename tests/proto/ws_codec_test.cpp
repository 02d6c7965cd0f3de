// WebSocket messages of proto/PROTOCOL.md: every client op decodes, every refusal has
// its code and names the field, ids are echoed, filters match, and every server
// message encodes to JSON that reads back to what went in.
#include "proto/ws_codec.hpp"

#include <simdjson.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <string>

#include "proto/json_writer.hpp"
#include "support/fixtures.hpp"
#include "support/wire_json.hpp"

namespace {

using cascade::asset_id;
using cascade::band;
using cascade::market;
using cascade::protocol_id;
using cascade::testing::aid;
using cascade::testing::json_is_null;
using cascade::testing::json_num;
using cascade::testing::json_parse;
using cascade::testing::json_str;
using cascade::testing::json_uint;
using cascade::testing::pid;
namespace proto = cascade::proto;
using proto::error_code;

const market& test_market() {
  static const market m = cascade::testing::small_market();
  return m;
}

proto::client_message decode(std::string_view frame, proto::decode_limits limits = {}) {
  return proto::decode_client_message(frame, test_market(), limits);
}

template <class T>
const T& body_as(const proto::client_message& msg) {
  if (const auto* e = std::get_if<proto::wire_error>(&msg.body)) {
    INFO("refused: " << proto::to_string(e->code) << ": " << e->message);
    REQUIRE(false);
  }
  REQUIRE(std::holds_alternative<T>(msg.body));
  return std::get<T>(msg.body);
}

const proto::wire_error& refusal(const proto::client_message& msg) {
  REQUIRE(std::holds_alternative<proto::wire_error>(msg.body));
  return std::get<proto::wire_error>(msg.body);
}

// Decodes `frame`, requires a refusal with `code`, and returns its message.
std::string refused(std::string_view frame, error_code code, proto::decode_limits limits = {}) {
  const auto msg = decode(frame, limits);
  INFO("frame: " << frame);
  const auto& e = refusal(msg);
  INFO("message: " << e.message);
  CHECK(proto::to_string(e.code) == proto::to_string(code));
  CHECK_FALSE(e.message.empty());
  CHECK(simdjson::validate_utf8(e.message.data(), e.message.size()));
  return e.message;
}

}  // namespace

TEST_CASE("subscribe decodes channels and every filter key, sorted and unique", "[ws_codec]") {
  const market& m = test_market();
  const auto msg = decode(R"({"op": "subscribe", "id": 1, "channels": ["prices", "alerts"],
    "filter": {"protocols": ["vault", "lend", "vault"], "assets": ["USDC", "ETH"],
               "min_band": "danger", "positions": ["p2", "p1", "p2"], "owners": ["0xb", "0xa"]}})");
  CHECK(msg.id == "1");
  const auto& sub = body_as<proto::subscribe_msg>(msg).sub;
  CHECK(sub.channels == (proto::ch_prices | proto::ch_alerts));
  CHECK(sub.protocols == std::vector<protocol_id>{pid(m, "lend"), pid(m, "vault")});
  CHECK(sub.assets == std::vector<asset_id>{aid(m, "ETH"), aid(m, "USDC")});
  CHECK(sub.min_band == band::danger);
  CHECK(sub.positions == std::vector<std::string>{"p1", "p2"});
  CHECK(sub.owners == std::vector<std::string>{"0xa", "0xb"});
}

TEST_CASE("subscribe without channels or filter takes the defaults", "[ws_codec]") {
  const auto msg = decode(R"({"op":"subscribe"})");
  CHECK(msg.id.empty());
  const auto& sub = body_as<proto::subscribe_msg>(msg).sub;
  CHECK(sub.channels == proto::default_channels);
  CHECK(sub.channels == (proto::ch_alerts | proto::ch_cascades));
  CHECK(sub.protocols.empty());
  CHECK(sub.assets.empty());
  CHECK(sub.min_band == band::healthy);
  CHECK(sub.positions.empty());
  CHECK(sub.owners.empty());
}

TEST_CASE("unsubscribe removes the listed channels, or all", "[ws_codec]") {
  CHECK(body_as<proto::unsubscribe_msg>(decode(R"({"op":"unsubscribe","id":2})")).channels ==
        proto::all_channels);
  CHECK(body_as<proto::unsubscribe_msg>(
            decode(R"({"op":"unsubscribe","channels":["prices","prices"]})"))
            .channels == proto::ch_prices);
}

TEST_CASE("price decodes one tick with its defaults", "[ws_codec]") {
  const market& m = test_market();
  const auto full = decode(
      R"({"op": "price", "id": 3, "asset": "ETH", "price": 2400.5, "source": "binance", "ts": 1700000000.25})");
  CHECK(full.id == "3");
  const auto& ticks = body_as<proto::prices_msg>(full).ticks;
  REQUIRE(ticks.size() == 1);
  CHECK(ticks[0].asset == aid(m, "ETH"));
  CHECK(ticks[0].price == 2400.5);
  CHECK(ticks[0].source == "binance");
  CHECK(ticks[0].ts == 1700000000.25);

  // Keys in any order; source and ts optional.
  const auto bare = decode(R"({"price": 60000, "asset": "WBTC", "op": "price"})");
  const auto& t = body_as<proto::prices_msg>(bare).ticks;
  REQUIRE(t.size() == 1);
  CHECK(t[0].asset == aid(m, "WBTC"));
  CHECK(t[0].price == 60000.0);
  CHECK(t[0].source == "ws");
  CHECK(t[0].ts == 0.0);
}

TEST_CASE("prices decodes a batch in order", "[ws_codec]") {
  const market& m = test_market();
  const auto msg = decode(
      R"({"op": "prices", "id": 4, "prices": [{"asset": "ETH", "price": 2400.5},
         {"asset": "WBTC", "price": 60000, "source": "kraken", "ts": 5}, {"asset": "ETH", "price": 1e3}]})");
  const auto& ticks = body_as<proto::prices_msg>(msg).ticks;
  REQUIRE(ticks.size() == 3);
  CHECK(ticks[0].asset == aid(m, "ETH"));
  CHECK(ticks[0].source == "ws");
  CHECK(ticks[1].asset == aid(m, "WBTC"));
  CHECK(ticks[1].source == "kraken");
  CHECK(ticks[1].ts == 5.0);
  CHECK(ticks[2].price == 1000.0);

  proto::decode_limits limits;
  limits.max_batch = 3;
  CHECK(body_as<proto::prices_msg>(decode(R"({"op":"prices","prices":[{"asset":"ETH","price":1},
        {"asset":"ETH","price":2},{"asset":"ETH","price":3}]})",
                                          limits))
            .ticks.size() == 3);
}

TEST_CASE("resume and ping decode", "[ws_codec]") {
  const auto r = decode(R"({"op":"resume","id":5,"from_seq":1234})");
  CHECK(r.id == "5");
  CHECK(body_as<proto::resume_msg>(r).from_seq == 1234);
  CHECK(body_as<proto::resume_msg>(decode(R"({"op":"resume","from_seq":18446744073709551615})"))
            .from_seq == std::numeric_limits<std::uint64_t>::max());
  const auto p = decode(R"({"op":"ping","id":6})");
  CHECK(p.id == "6");
  CHECK(std::holds_alternative<proto::ping_msg>(p.body));
}

TEST_CASE("the id is echoed as canonical JSON of any scalar", "[ws_codec]") {
  const auto id = [](std::string_view raw) {
    return decode(std::string(R"({"op":"ping","id":)") + std::string(raw) + "}").id;
  };
  CHECK(id("1") == "1");
  CHECK(id("-42") == "-42");
  CHECK(id("18446744073709551615") == "18446744073709551615");
  CHECK(id("1.50") == "1.5");
  CHECK(id("1e2") == "100");
  CHECK(id("2.5E-3") == "0.0025");
  CHECK(id(R"("abc")") == R"("abc")");
  CHECK(id(R"("a\u0041\/b")") == R"("aA/b")");
  CHECK(id(R"("quote\" tab\t é")") == R"("quote\" tab\t é")");
  CHECK(id("true") == "true");
  CHECK(id("false") == "false");
  CHECK(id("null") == "null");
  CHECK(id(R"(  "spaced"  )") == R"("spaced")");
  // The echo is itself JSON that reads back to the same value.
  simdjson::dom::parser p;
  const auto doc = json_parse(p, proto::encode_pong(id(R"("x\u00e9\ny")")));
  CHECK(json_str(doc, "id") == "x\xC3\xA9\ny");
}

// Found by fuzz/fuzz_ws_message: a negative zero written as a fraction or with an
// exponent was echoed as -0, which sent back was echoed as 0: the canonical form was not
// a fixed point. -0 is now echoed as 0 however it is written.
TEST_CASE("the canonical id of a negative zero is 0, echoed unchanged when sent back",
          "[ws_codec][fuzz-regression]") {
  const auto id = [](std::string_view raw) {
    return decode(std::string(R"({"op":"ping","id":)") + std::string(raw) + "}").id;
  };
  // The fuzzer's frame: the id is read before the JSON breaks.
  CHECK(decode(R"({"op": "subscribe", "id": -0e3{"oj": tru})").id == "0");
  for (const std::string_view raw : {"-0", "-0.0", "-0e3", "-0E-7", "0.0", "-0.000"}) {
    INFO(raw);
    CHECK(id(raw) == "0");
  }
  for (const std::string_view raw : {"-1.5", "1e15", "888888888888888888881", "-2.5E-3"}) {
    INFO(raw);
    CHECK(id(id(raw)) == id(raw));
  }
}

TEST_CASE("the id is recovered when another field is refused", "[ws_codec]") {
  // After the bad field, before it, and with a JSON fault after the id.
  auto msg = decode(R"({"op":"price","asset":"WBT","price":1,"id":"late"})");
  CHECK(msg.id == R"("late")");
  CHECK(refusal(msg).code == error_code::unknown_asset);
  msg = decode(R"({"id":7,"op":"price","asset":"ETH","price":-1})");
  CHECK(msg.id == "7");
  CHECK(refusal(msg).code == error_code::bad_price);
  msg = decode(R"({"id":8,"op":"ping","x":[1,2})");
  CHECK(msg.id == "8");
  CHECK(refusal(msg).code == error_code::bad_json);
  msg = decode(R"({"id":9,"op":"nope"})");
  CHECK(msg.id == "9");
  CHECK(refusal(msg).code == error_code::unknown_op);
  msg = decode(R"({"id":10})");
  CHECK(msg.id == "10");
  CHECK(refusal(msg).code == error_code::bad_request);
  // A fault before the id hides it.
  msg = decode(R"({"op":"ping",,"id":11})");
  CHECK(msg.id.empty());
  CHECK(refusal(msg).code == error_code::bad_json);
}

TEST_CASE("an id that is an object or array is refused and not echoed", "[ws_codec]") {
  auto msg = decode(R"({"op":"ping","id":{"a":1}})");
  CHECK(msg.id.empty());
  CHECK(refusal(msg).code == error_code::bad_request);
  CHECK_THAT(refusal(msg).message, Catch::StartsWith("id: "));
  msg = decode(R"({"id":[1],"op":"ping"})");
  CHECK(msg.id.empty());
  CHECK(refusal(msg).code == error_code::bad_request);
  msg = decode(R"({"id":1e999,"op":"ping"})");
  CHECK(msg.id.empty());
  CHECK(refusal(msg).code == error_code::bad_request);
}

TEST_CASE("frames that are not JSON get bad_json", "[ws_codec]") {
  refused("", error_code::bad_json);
  refused("   ", error_code::bad_json);
  refused("{not json}", error_code::bad_json);
  refused(R"({"op":"ping")", error_code::bad_json);
  refused(R"({"op":"ping"} {"op":"ping"})", error_code::bad_json);
  refused(R"({"op":"ping"}])", error_code::bad_json);
  refused(R"({"op":"ping", "id": tru})", error_code::bad_json);
  refused(R"({"op":"pi)", error_code::bad_json);
  refused(R"({"op":"ping","id":"\x"})", error_code::bad_json);
  refused("{\"op\":\"ping\",\"id\":\"a\x01\"}", error_code::bad_json);
  refused(R"({"op":"price","asset":"ETH","price":01})", error_code::bad_json);
  CHECK_THAT(refused(R"({"op":"ping"} x)", error_code::bad_json), Catch::Contains("trailing"));
  // Invalid UTF-8: a lone continuation byte, an overlong form, a surrogate.
  CHECK_THAT(refused("{\"op\":\"ping\",\"id\":\"\x80\"}", error_code::bad_json),
             Catch::Contains("UTF-8"));
  refused("{\"op\":\"ping\",\"id\":\"\xC0\xAF\"}", error_code::bad_json);
  refused("{\"op\":\"ping\",\"id\":\"\xED\xA0\x80\"}", error_code::bad_json);
  refused("{\"op\":\"price\",\"asset\":\"E\xFFTH\",\"price\":1}", error_code::bad_json);
}

TEST_CASE("structural refusals get bad_request naming the field", "[ws_codec]") {
  CHECK(refused("[1, 2]", error_code::bad_request) == "expected a JSON object, got an array");
  CHECK(refused("42", error_code::bad_request) == "expected a JSON object, got a number");
  CHECK(refused(R"({"id":1})", error_code::bad_request) == "missing required field 'op'");
  CHECK(refused(R"({"op":5})", error_code::bad_request) == "op: expected a string, got a number");
  CHECK(refused(R"({"op":"ping","extra":1})", error_code::bad_request) ==
        "extra: unknown key 'extra' (expected one of: op, id)");
  CHECK(refused(R"({"op":"ping","op":"ping"})", error_code::bad_request) ==
        "op: key 'op' is given twice");
  CHECK(refused(R"({"op":"price","price":1})", error_code::bad_request) ==
        "missing required field 'asset'");
  CHECK(refused(R"({"op":"price","asset":"ETH"})", error_code::bad_request) ==
        "missing required field 'price'");
  CHECK(refused(R"({"op":"price","asset":"ETH","price":"1"})", error_code::bad_request) ==
        "price: expected a number, got a string");
  CHECK(refused(R"({"op":"price","asset":"ETH","price":1,"ts":-1})", error_code::bad_request) ==
        "ts: must be unix seconds >= 0, got -1");
  // A ts past 9999 would set the source's clock so far ahead that its later ticks are
  // all ignored as older.
  CHECK(refused(R"({"op":"price","asset":"ETH","price":1,"ts":1e18})", error_code::bad_request) ==
        "ts: must be unix seconds up to 253402300799 (9999-12-31), got 1e+18");
  CHECK(refused(R"({"op":"price","asset":"ETH","price":1,"source":""})", error_code::bad_request) ==
        "source: must be a string of 1 to 128 bytes, got 0 bytes");
  CHECK(refused(R"({"op":"price","asset":"ETH","price":1,"ts":1e999})", error_code::bad_request) ==
        "ts: must be a finite number, got 1e999 (beyond the range of a double)");
  CHECK(refused(R"({"op":"price","asset":3,"price":1})", error_code::bad_request) ==
        "asset: expected a string, got a number");
  CHECK(refused(R"({"op":"prices"})", error_code::bad_request) ==
        "missing required field 'prices'");
  CHECK(refused(R"({"op":"prices","prices":[]})", error_code::bad_request) ==
        "prices: empty: a batch holds at least one tick");
  CHECK(refused(R"({"op":"prices","prices":{"asset":"ETH"}})", error_code::bad_request) ==
        "prices: expected an array, got an object");
  CHECK(refused(R"({"op":"prices","prices":[{"asset":"ETH","price":1},{"asset":"ETH"}]})",
                error_code::bad_request) == "prices[1]: missing required field 'price'");
  CHECK(refused(R"({"op":"prices","prices":[{"asset":"ETH","price":1,"px":2}]})",
                error_code::bad_request) ==
        "prices[0].px: unknown key 'px' (expected one of: asset, price, source, ts)");
  CHECK(refused(R"({"op":"resume"})", error_code::bad_request) ==
        "missing required field 'from_seq'");
  CHECK(refused(R"({"op":"resume","from_seq":-1})", error_code::bad_request) ==
        "from_seq: must be an integer in [0, 18446744073709551615], got '-1'");
  CHECK(refused(R"({"op":"resume","from_seq":1.5})", error_code::bad_request) ==
        "from_seq: must be an integer in [0, 18446744073709551615], got '1.5'");
  CHECK(refused(R"({"op":"subscribe","channels":[]})", error_code::bad_request) ==
        "channels: empty: name at least one of alerts, cascades, prices, pending, insolvency, oracle");
  CHECK(refused(R"({"op":"subscribe","channels":["alerts","trades"]})", error_code::bad_request) ==
        "channels[1]: unknown channel 'trades' (expected alerts, cascades, prices, pending, insolvency or oracle)");
  CHECK(refused(R"({"op":"subscribe","channels":"alerts"})", error_code::bad_request) ==
        "channels: expected an array, got a string");
  CHECK(
      refused(R"({"op":"subscribe","filter":{"min_band":"critical"}})", error_code::bad_request) ==
      "filter.min_band: unknown band 'critical' (expected healthy, warn, danger or liquidatable)");
  CHECK(refused(R"({"op":"subscribe","filter":{"asset":["ETH"]}})", error_code::bad_request) ==
        "filter.asset: unknown key 'asset' (expected one of: protocols, assets, min_band, "
        "positions, owners)");
  CHECK(refused(R"({"op":"subscribe","filter":{"owners":[1]}})", error_code::bad_request) ==
        "filter.owners[0]: expected a string, got a number");
  CHECK(refused(R"({"op":"unsubscribe","filter":{}})", error_code::bad_request) ==
        "filter: unknown key 'filter' (expected one of: op, id, channels)");
}

TEST_CASE("unknown ops, assets and protocols get their codes", "[ws_codec]") {
  CHECK(refused(R"({"op":"trade"})", error_code::unknown_op) ==
        "op: unknown op 'trade' (expected subscribe, unsubscribe, price, prices, resume or ping)");
  CHECK(refused(R"({"op":"Ping"})", error_code::unknown_op) != "");
  CHECK(refused(R"({"op":"price","asset":"SOL","price":1})", error_code::unknown_asset) ==
        "asset: unknown asset 'SOL'");
  // The message of PROTOCOL.md's example, verbatim.
  CHECK(
      refused(
          R"({"op":"prices","id":4,"prices":[{"asset":"ETH","price":2400.5},{"asset":"WBT","price":60000}]})",
          error_code::unknown_asset) == "prices[1].asset: unknown asset 'WBT'");
  CHECK(refused(R"({"op":"subscribe","filter":{"assets":["ETH","eth"]}})",
                error_code::unknown_asset) == "filter.assets[1]: unknown asset 'eth'");
  CHECK(refused(R"({"op":"subscribe","filter":{"protocols":["aave"]}})",
                error_code::unknown_protocol) == "filter.protocols[0]: unknown protocol 'aave'");
}

TEST_CASE("prices that are not finite and > 0 get bad_price", "[ws_codec]") {
  const auto price = [](std::string_view raw) {
    return refused(std::string(R"({"op":"price","asset":"ETH","price":)") + std::string(raw) + "}",
                   error_code::bad_price);
  };
  CHECK(price("0") == "price: must be a finite number > 0, got 0");
  CHECK(price("-0") == "price: must be a finite number > 0, got -0");
  CHECK(price("-3") == "price: must be a finite number > 0, got -3");
  CHECK_THAT(price("1e999"), Catch::StartsWith("price: must be a finite number > 0, got '1e999'"));
  CHECK_THAT(price("-1e999"), Catch::Contains("'-1e999'"));
  // Not JSON, but what some encoders write for NaN and infinities.
  CHECK_THAT(price("NaN"), Catch::StartsWith("price: must be a finite number > 0, got 'NaN'"));
  CHECK_THAT(price("Infinity"), Catch::Contains("'Infinity'"));
  CHECK_THAT(price("-Infinity"), Catch::Contains("'-Infinity'"));
  CHECK_THAT(price("nan"), Catch::Contains("'nan'"));
  // The PROTOCOL.md form of the message, in a batch.
  CHECK(
      refused(R"({"op":"prices","prices":[{"asset":"ETH","price":1},{"asset":"WBTC","price":-3}]})",
              error_code::bad_price) == "prices[1].price: must be a finite number > 0, got -3");
  // A batch is all or nothing: nothing comes back with the refusal.
  const auto msg =
      decode(R"({"op":"prices","prices":[{"asset":"ETH","price":1},{"asset":"ETH","price":0}]})");
  CHECK(std::holds_alternative<proto::wire_error>(msg.body));
}

TEST_CASE("batches and filter lists over their limits get too_large", "[ws_codec]") {
  proto::decode_limits limits;
  limits.max_batch = 2;
  limits.max_list = 2;
  CHECK(refused(R"({"op":"prices","prices":[{"asset":"ETH","price":1},{"asset":"ETH","price":2},
                {"asset":"ETH","price":3}]})",
                error_code::too_large,
                limits) == "prices: more than 2 ticks in one batch (the server's max_batch)");
  CHECK(refused(R"({"op":"subscribe","filter":{"positions":["a","b","c"]}})", error_code::too_large,
                limits) == "filter.positions: more than 2 entries");
}

TEST_CASE("messages quote what the client sent as valid UTF-8, cut short", "[ws_codec]") {
  std::string name;
  for (int i = 0; i < 100; ++i) name += "\xC3\xA9";  // é, two bytes each
  const std::string msg =
      refused(R"({"op":"price","asset":")" + name + R"(","price":1})", error_code::unknown_asset);
  CHECK(msg.size() < 200);
  CHECK_THAT(msg, Catch::EndsWith("...'"));
  const std::string tab =
      refused(R"({"op":"price","asset":"a\tb","price":1})", error_code::unknown_asset);
  CHECK(tab == R"(asset: unknown asset 'a\x09b')");
}

TEST_CASE("subscription filters match alerts, prices and cascades", "[ws_codec]") {
  const market& m = test_market();
  proto::alert_event a;
  a.position = "p1";
  a.owner = "0xabc";
  a.protocol = pid(m, "lend");
  a.from = band::warn;
  a.to = band::liquidatable;
  a.cause = aid(m, "ETH");
  a.assets = {aid(m, "ETH"), aid(m, "USDC")};
  const proto::event_body alert = a;
  const proto::event_body price = proto::price_event{aid(m, "WBTC"), 60000.0, "ws", 0.0};
  const proto::event_body cascade_ev = proto::cascade_event{};

  proto::subscription all;
  CHECK(all.matches(alert));
  CHECK(all.matches(cascade_ev));
  CHECK_FALSE(all.matches(price));  // prices are not a default channel

  proto::subscription s;
  s.channels = proto::ch_prices;
  CHECK(s.matches(price));
  CHECK_FALSE(s.matches(alert));
  CHECK_FALSE(s.matches(cascade_ev));
  s.assets = {aid(m, "ETH")};
  CHECK_FALSE(s.matches(price));
  s.assets = {aid(m, "ETH"), aid(m, "WBTC")};
  CHECK(s.matches(price));

  proto::subscription f;
  f.channels = proto::ch_alerts;
  f.min_band = band::liquidatable;
  CHECK(f.matches(alert));  // the worse side, `to`, is liquidatable
  proto::alert_event back = a;
  std::swap(back.from, back.to);  // recovering from liquidatable counts too
  CHECK(f.matches(back));
  back.from = band::warn;
  back.to = band::danger;
  CHECK_FALSE(f.matches(back));
  f.min_band = band::danger;
  CHECK(f.matches(back));

  f.protocols = {pid(m, "vault")};
  CHECK_FALSE(f.matches(alert));
  f.protocols = {pid(m, "lend"), pid(m, "vault")};
  CHECK(f.matches(alert));
  f.assets = {aid(m, "WBTC")};
  CHECK_FALSE(f.matches(alert));
  f.assets = {aid(m, "WBTC"), aid(m, "USDC")};  // sorted by id; any held asset matches
  REQUIRE(std::is_sorted(f.assets.begin(), f.assets.end()));
  CHECK(f.matches(alert));
  f.positions = {"p0", "p2"};
  CHECK_FALSE(f.matches(alert));
  f.positions = {"p0", "p1"};
  CHECK(f.matches(alert));
  f.owners = {"0xdef"};
  CHECK_FALSE(f.matches(alert));
  f.owners = {"0xabc"};
  CHECK(f.matches(alert));
  // Filters do not apply to cascades; the channel does.
  CHECK_FALSE(f.matches(cascade_ev));
  f.channels = proto::ch_alerts | proto::ch_cascades;
  CHECK(f.matches(cascade_ev));
  // A decoded filter behaves the same.
  const auto decoded = body_as<proto::subscribe_msg>(decode(
      R"({"op":"subscribe","channels":["alerts"],"filter":{"assets":["WBTC","USDC"],"owners":["0xabc"],"min_band":"liquidatable"}})"));
  CHECK(decoded.sub.matches(alert));
  CHECK_FALSE(decoded.sub.matches(price));
}

TEST_CASE("hello, ack, pong, error and gap encode per PROTOCOL.md", "[ws_codec]") {
  simdjson::dom::parser p;
  CHECK(proto::encode_hello(1200, 1) ==
        R"({"type":"hello","seq":1200,"oldest_seq":1,"server":"cascade"})");
  CHECK(proto::encode_ack("3", 1201) == R"({"type":"ack","id":3,"seq":1201})");
  CHECK(proto::encode_ack("", 7) == R"({"type":"ack","id":null,"seq":7})");
  CHECK(proto::encode_pong(R"("six")") == R"({"type":"pong","id":"six"})");
  CHECK(proto::encode_pong("") == R"({"type":"pong","id":null})");
  CHECK(proto::encode_gap(1300, 1450) == R"({"type":"gap","from":1300,"to":1450})");
  const std::string e =
      proto::encode_error("4", {error_code::unknown_asset, "prices[1].asset: unknown asset 'WBT'"});
  CHECK(
      e ==
      R"({"type":"error","id":4,"code":"unknown_asset","message":"prices[1].asset: unknown asset 'WBT'"})");
  // A refusal's message and id survive the round trip whatever they hold.
  const auto msg = decode(R"({"id":"q\"uote","op":"price","asset":"\"x\\","price":1})");
  const auto doc = json_parse(p, proto::encode_error(msg.id, refusal(msg)));
  CHECK(json_str(doc, "type") == "error");
  CHECK(json_str(doc, "id") == "q\"uote");
  CHECK(json_str(doc, "code") == "unknown_asset");
  CHECK(json_str(doc, "message") == refusal(msg).message);
}

TEST_CASE("alert events encode every field, null cause and owner when absent", "[ws_codec]") {
  const market& m = test_market();
  proto::alert_event a;
  a.position = "p1";
  a.owner = "0xabc";
  a.protocol = pid(m, "vault");
  a.from = band::warn;
  a.to = band::liquidatable;
  a.hf_before = 1.04;
  a.hf_after = 0.97;
  a.cause = aid(m, "ETH");
  a.price = 2400.5;
  a.assets = {aid(m, "ETH"), aid(m, "DAI")};
  simdjson::dom::parser p;
  const std::string text =
      proto::encode_event({1201, 1700000000250000000, 1700000000250031000, a}, m);
  const auto doc = json_parse(p, text);
  CHECK(json_str(doc, "type") == "alert");
  CHECK(json_uint(doc, "seq") == 1201);
  std::int64_t ns = 0;
  REQUIRE(doc["ingest_ns"].get(ns) == simdjson::SUCCESS);
  CHECK(ns == 1700000000250000000);
  REQUIRE(doc["emit_ns"].get(ns) == simdjson::SUCCESS);
  CHECK(ns == 1700000000250031000);
  CHECK(json_str(doc, "position") == "p1");
  CHECK(json_str(doc, "owner") == "0xabc");
  CHECK(json_str(doc, "protocol") == "vault");
  CHECK(json_str(doc, "from") == "warn");
  CHECK(json_str(doc, "to") == "liquidatable");
  CHECK(json_num(doc, "hf_before") == 1.04);
  CHECK(json_num(doc, "hf_after") == 0.97);
  CHECK(json_str(doc, "cause") == "ETH");
  CHECK(json_num(doc, "price") == 2400.5);
  simdjson::dom::array assets;
  REQUIRE(doc["assets"].get(assets) == simdjson::SUCCESS);
  REQUIRE(assets.size() == 2);
  CHECK(std::string_view(assets.at(0)) == "ETH");
  CHECK(std::string_view(assets.at(1)) == "DAI");

  // An upsert's crossing: no cause, price 0; no owner; a position without debt.
  a.cause = asset_id{};
  a.price = 0.0;
  a.owner.clear();
  a.hf_before = std::numeric_limits<double>::infinity();
  const auto doc2 = json_parse(p, proto::encode_event({7, 1, 2, a}, m));
  CHECK(json_is_null(doc2, "cause"));
  CHECK(json_num(doc2, "price") == 0.0);
  CHECK(json_is_null(doc2, "owner"));
  CHECK(json_is_null(doc2, "hf_before"));
}

TEST_CASE("price events encode asset, price, source and ts", "[ws_codec]") {
  const market& m = test_market();
  simdjson::dom::parser p;
  const auto doc = json_parse(
      p,
      proto::encode_event(
          {1203, 5, 6, proto::price_event{aid(m, "WBTC"), 60000.5, "binance", 1700000000.25}}, m));
  CHECK(json_str(doc, "type") == "price");
  CHECK(json_uint(doc, "seq") == 1203);
  CHECK(json_str(doc, "asset") == "WBTC");
  CHECK(json_num(doc, "price") == 60000.5);
  CHECK(json_str(doc, "source") == "binance");
  CHECK(json_num(doc, "ts") == 1700000000.25);
  const auto doc2 = json_parse(
      p, proto::encode_event({9, 5, 6, proto::price_event{aid(m, "ETH"), 1.0, "ws", 0.0}}, m));
  CHECK(json_is_null(doc2, "ts"));
}

TEST_CASE("cascade events encode maps by name and the amplification of moved assets",
          "[ws_codec]") {
  const market& m = test_market();
  proto::cascade_event c;
  c.rounds = 3;
  c.liquidatable_now = 12;
  c.positions_liquidated = 40;
  c.repaid_usd = 1.2e6;
  c.seized_usd = 1.3e6;
  c.bad_debt_usd = {0.0, 1200.5};
  c.liquidated = {30, 10};
  c.sold = {{aid(m, "ETH"), 350.0}};
  c.start_prices = {2000.0, 40000.0, 1.0, 1.0};
  c.final_prices = {1800.0, 40000.0, 1.0, 1.02};
  c.price_path = {{aid(m, "ETH"), {2000.0, 1900.0, 1850.0, 1800.0}}};
  c.duration_ms = 1.8;
  simdjson::dom::parser p;
  const auto doc = json_parse(p, proto::encode_event({1202, 10, 20, c}, m));
  CHECK(json_str(doc, "type") == "cascade");
  CHECK(json_uint(doc, "seq") == 1202);
  CHECK(json_uint(doc, "rounds") == 3);
  CHECK(json_uint(doc, "liquidatable_now") == 12);
  CHECK(json_uint(doc, "positions_liquidated") == 40);
  CHECK(json_num(doc, "repaid_usd") == 1.2e6);
  CHECK(json_num(doc, "seized_usd") == 1.3e6);
  CHECK(json_num(doc, "duration_ms") == 1.8);
  CHECK(double(doc["bad_debt_usd"]["lend"]) == 0.0);
  CHECK(double(doc["bad_debt_usd"]["vault"]) == 1200.5);
  CHECK(std::uint64_t(doc["liquidated"]["lend"]) == 30);
  CHECK(std::uint64_t(doc["liquidated"]["vault"]) == 10);
  CHECK(double(doc["sold"]["ETH"]) == 350.0);
  CHECK(simdjson::dom::object(doc["sold"]).size() == 1);
  CHECK(double(doc["start_prices"]["WBTC"]) == 40000.0);
  CHECK(simdjson::dom::object(doc["start_prices"]).size() == 4);
  CHECK(double(doc["final_prices"]["ETH"]) == 1800.0);
  const simdjson::dom::object amp = doc["amplification"];
  CHECK(amp.size() == 2);  // only the assets whose price moved
  CHECK(double(amp["ETH"]) == Approx(0.1).epsilon(1e-12));
  CHECK(double(amp["DAI"]) == Approx(-0.02).epsilon(1e-12));
  CHECK(amp["WBTC"].error() == simdjson::NO_SUCH_FIELD);
  const simdjson::dom::object path = doc["price_path"];
  CHECK(path.size() == 1);
  const simdjson::dom::array eth_path = path["ETH"];
  REQUIRE(eth_path.size() == 4);
  CHECK(double(eth_path.at(0)) == 2000.0);
  CHECK(double(eth_path.at(3)) == 1800.0);

  // The projection body: the same fields with seq and stale, no envelope.
  const auto proj = json_parse(p, [&] {
    proto::json_writer w;
    w.begin_object();
    proto::write_cascade_fields(w, c, m);
    w.end_object();
    return w.take();
  }());
  CHECK(proj["type"].error() == simdjson::NO_SUCH_FIELD);
  CHECK(json_uint(proj, "rounds") == 3);
  CHECK(double(proj["amplification"]["ETH"]) == Approx(0.1).epsilon(1e-12));
}

TEST_CASE("every error code has its name and HTTP status", "[ws_codec]") {
  const std::pair<error_code, std::pair<std::string_view, unsigned>> expected[] = {
      {error_code::bad_json, {"bad_json", 400}},
      {error_code::bad_request, {"bad_request", 400}},
      {error_code::unknown_op, {"unknown_op", 400}},
      {error_code::unknown_asset, {"unknown_asset", 400}},
      {error_code::unknown_protocol, {"unknown_protocol", 400}},
      {error_code::unknown_position, {"unknown_position", 404}},
      {error_code::bad_price, {"bad_price", 400}},
      {error_code::too_large, {"too_large", 413}},
      {error_code::binary_frame, {"binary_frame", 400}},
      {error_code::unauthorized, {"unauthorized", 401}},
      {error_code::forbidden, {"forbidden", 403}},
      {error_code::not_found, {"not_found", 404}},
      {error_code::method_not_allowed, {"method_not_allowed", 405}},
      {error_code::resume_unavailable, {"resume_unavailable", 400}},
      {error_code::overloaded, {"overloaded", 503}},
      {error_code::internal, {"internal", 500}},
  };
  for (const auto& [code, want] : expected) {
    CHECK(proto::to_string(code) == want.first);
    CHECK(proto::http_status(code) == want.second);
  }
}
