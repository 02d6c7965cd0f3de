// The example WebSocket messages of proto/examples/ws/ replayed against the codec: every
// client example decodes, every server example is exactly what the encoder writes for
// its own contents, and every frame under bad/ is refused with the code (and message
// and id) that bad/index.json gives it. Names come from the default config's market.
#include <simdjson.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include "proto/default_config.hpp"
#include "proto/ws_codec.hpp"
#include "support/fixtures.hpp"

namespace {

namespace fs = std::filesystem;
namespace proto = cascade::proto;
using cascade::testing::must;

const fs::path examples_dir = fs::path(CASCADE_SOURCE_DIR) / "proto" / "examples" / "ws";

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE(in.good());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const cascade::market& default_market() {
  static const cascade::proto::config cfg = must(proto::load_default_config());
  return cfg.mkt;
}

// Structural equality of two JSON values: object keys in any order, numbers by value
// (integers exactly). `why` says where they differ.
bool same_json(simdjson::dom::element a, simdjson::dom::element b, const std::string& path,
               std::string& why) {
  using simdjson::dom::element_type;
  const auto integer = [](element_type t) {
    return t == element_type::INT64 || t == element_type::UINT64;
  };
  const auto number = [&](element_type t) { return integer(t) || t == element_type::DOUBLE; };
  const element_type ta = a.type();
  const element_type tb = b.type();
  if (number(ta) && number(tb)) {
    bool equal = false;
    if (integer(ta) && integer(tb)) {
      std::int64_t ia = 0;
      std::int64_t ib = 0;
      if (a.get(ia) == simdjson::SUCCESS && b.get(ib) == simdjson::SUCCESS) {
        equal = ia == ib;
      } else {
        equal = std::uint64_t(a) == std::uint64_t(b);
      }
    } else {
      equal = double(a) == double(b);
    }
    if (!equal) why = path + ": numbers differ";
    return equal;
  }
  if (ta != tb) {
    why = path + ": types differ";
    return false;
  }
  switch (ta) {
    case element_type::ARRAY: {
      const simdjson::dom::array x = a;
      const simdjson::dom::array y = b;
      if (x.size() != y.size()) {
        why = path + ": array sizes differ";
        return false;
      }
      for (std::size_t i = 0; i < x.size(); ++i) {
        if (!same_json(x.at(i), y.at(i), path + "[" + std::to_string(i) + "]", why)) return false;
      }
      return true;
    }
    case element_type::OBJECT: {
      const simdjson::dom::object x = a;
      const simdjson::dom::object y = b;
      if (x.size() != y.size()) {
        why = path + ": objects have different keys";
        return false;
      }
      for (const auto field : x) {
        simdjson::dom::element other;
        if (y[field.key].get(other) != simdjson::SUCCESS) {
          why = path + "." + std::string(field.key) + ": missing";
          return false;
        }
        if (!same_json(field.value, other, path + "." + std::string(field.key), why)) return false;
      }
      return true;
    }
    case element_type::STRING:
      if (std::string_view(a) != std::string_view(b)) {
        why = path + ": strings differ";
        return false;
      }
      return true;
    case element_type::BOOL:
      if (bool(a) != bool(b)) {
        why = path + ": booleans differ";
        return false;
      }
      return true;
    default:
      return true;  // null
  }
}

proto::error_code code_named(std::string_view name) {
  for (int i = 0; i <= static_cast<int>(proto::error_code::internal); ++i) {
    const auto c = static_cast<proto::error_code>(i);
    if (proto::to_string(c) == name) return c;
  }
  FAIL("unknown error code " << name);
  return proto::error_code::internal;
}

cascade::asset_id asset_named(std::string_view s) {
  const auto a = default_market().find_asset(s);
  INFO(s);
  REQUIRE(a.has_value());
  return *a;
}

double number_or(simdjson::dom::element e, double if_null) {
  return e.is_null() ? if_null : double(e);
}

// What the encoder writes for the contents of server example `doc`.
std::string reencode(simdjson::dom::element doc) {
  const cascade::market& m = default_market();
  const std::string_view type = doc["type"];
  const auto raw_id = [&] {
    simdjson::dom::element id = doc["id"];
    return id.is_null() ? std::string() : simdjson::minify(id);
  };
  if (type == "hello") return proto::encode_hello(doc["seq"], doc["oldest_seq"]);
  if (type == "ack") return proto::encode_ack(raw_id(), doc["seq"]);
  if (type == "pong") return proto::encode_pong(raw_id());
  if (type == "gap") return proto::encode_gap(doc["from"], doc["to"]);
  if (type == "error") {
    return proto::encode_error(
        raw_id(), {code_named(doc["code"]), std::string(std::string_view(doc["message"]))});
  }
  proto::event e;
  e.seq = doc["seq"];
  e.ingest_ns = doc["ingest_ns"];
  e.emit_ns = doc["emit_ns"];
  if (type == "alert") {
    proto::alert_event a;
    a.position = std::string_view(doc["position"]);
    if (!doc["owner"].is_null()) a.owner = std::string_view(doc["owner"]);
    a.protocol = *m.find_protocol(std::string_view(doc["protocol"]));
    a.from = *cascade::parse_band(std::string_view(doc["from"]));
    a.to = *cascade::parse_band(std::string_view(doc["to"]));
    const double inf = std::numeric_limits<double>::infinity();
    a.hf_before = number_or(doc["hf_before"], inf);
    a.hf_after = number_or(doc["hf_after"], inf);
    if (!doc["cause"].is_null()) a.cause = asset_named(std::string_view(doc["cause"]));
    a.price = double(doc["price"]);
    for (const auto x : simdjson::dom::array(doc["assets"])) {
      a.assets.push_back(asset_named(std::string_view(x)));
    }
    e.body = std::move(a);
  } else if (type == "price") {
    proto::price_event p;
    p.asset = asset_named(std::string_view(doc["asset"]));
    p.price = double(doc["price"]);
    p.source = std::string_view(doc["source"]);
    p.ts = number_or(doc["ts"], 0.0);
    e.body = std::move(p);
  } else if (type == "pending_liquidation" || type == "insolvency") {
    proto::status_event st;
    st.position = std::string_view(doc["position"]);
    if (!doc["owner"].is_null()) st.owner = std::string_view(doc["owner"]);
    st.protocol = *m.find_protocol(std::string_view(doc["protocol"]));
    st.kind = type == "insolvency" ? cascade::status_kind::insolvent : cascade::status_kind::pending;
    st.entered = std::string_view(doc["state"]) == "entered";
    const double inf = std::numeric_limits<double>::infinity();
    st.hf = number_or(doc["hf"], inf);
    st.value.hf_market = number_or(doc["hf_market"], inf);
    st.value.hf_real = number_or(doc["hf_real"], inf);
    st.value.collateral_market_usd = double(doc["collateral_usd"]);
    st.value.collateral_real_usd = double(doc["collateral_real_usd"]);
    st.value.debt_usd = double(doc["debt_usd"]);
    if (type == "pending_liquidation") st.value.seize_usd = double(doc["seize_usd"]);
    for (const auto x : simdjson::dom::array(doc["assets"])) {
      st.assets.push_back(asset_named(std::string_view(x)));
    }
    e.body = std::move(st);
  } else if (type == "oracle") {
    proto::oracle_notice o;
    o.kind = std::string_view(doc["kind"]);
    o.asset = asset_named(std::string_view(doc["asset"]));
    if (!doc["protocol"].is_null()) o.protocol = *m.find_protocol(std::string_view(doc["protocol"]));
    if (!doc["source"].is_null()) o.source = std::string_view(doc["source"]);
    o.reason = std::string_view(doc["reason"]);
    o.price = double(doc["price"]);
    o.reference = double(doc["reference"]);
    o.ts = double(doc["ts"]);
    e.body = std::move(o);
  } else {
    REQUIRE(type == "cascade");
    proto::cascade_event c;
    c.rounds = static_cast<std::uint32_t>(std::uint64_t(doc["rounds"]));
    c.liquidatable_now = doc["liquidatable_now"];
    c.positions_liquidated = doc["positions_liquidated"];
    c.repaid_usd = double(doc["repaid_usd"]);
    c.seized_usd = double(doc["seized_usd"]);
    c.duration_ms = double(doc["duration_ms"]);
    for (const auto& p : m.protocols()) {
      c.bad_debt_usd.push_back(double(doc["bad_debt_usd"][p.name]));
      c.liquidated.push_back(std::uint64_t(doc["liquidated"][p.name]));
    }
    for (const auto field : simdjson::dom::object(doc["sold"])) {
      c.sold.emplace_back(asset_named(field.key), double(field.value));
    }
    for (const auto& a : m.assets()) {
      c.start_prices.push_back(double(doc["start_prices"][a.symbol]));
      c.final_prices.push_back(double(doc["final_prices"][a.symbol]));
    }
    for (const auto field : simdjson::dom::object(doc["price_path"])) {
      std::vector<double> path;
      for (const auto p : simdjson::dom::array(field.value)) path.push_back(double(p));
      c.price_path.emplace_back(asset_named(field.key), std::move(path));
    }
    e.body = std::move(c);
  }
  return proto::encode_event(e, m);
}

}  // namespace

TEST_CASE("every good WebSocket example decodes or re-encodes to itself", "[ws_codec][examples]") {
  std::size_t clients = 0;
  std::size_t servers = 0;
  std::set<std::string> types;
  for (const auto& entry : fs::directory_iterator(examples_dir)) {
    if (!entry.is_regular_file() || entry.path().extension() != ".json") continue;
    const std::string name = entry.path().filename().string();
    const std::string text = read_bytes(entry.path());
    INFO(name << ": " << text);
    if (name.starts_with("client_")) {
      const auto msg = proto::decode_client_message(text, default_market());
      if (const auto* e = std::get_if<proto::wire_error>(&msg.body)) {
        FAIL(proto::to_string(e->code) << ": " << e->message);
      }
      // The op in the file name is the one decoded.
      const std::string op = name.substr(7, name.find_first_of("_.", 7) - 7);
      const std::map<std::string, std::size_t> index{{"subscribe", 1}, {"unsubscribe", 2},
                                                     {"price", 3},     {"prices", 3},
                                                     {"resume", 4},    {"ping", 5}};
      REQUIRE(index.count(op) == 1);
      CHECK(msg.body.index() == index.at(op));
      ++clients;
    } else {
      REQUIRE(name.starts_with("server_"));
      simdjson::dom::parser p1;
      simdjson::dom::parser p2;
      simdjson::dom::element example;
      REQUIRE(p1.parse(text).get(example) == simdjson::SUCCESS);
      const std::string encoded = reencode(example);
      simdjson::dom::element mine;
      REQUIRE(p2.parse(encoded).get(mine) == simdjson::SUCCESS);
      std::string why;
      INFO("encoder: " << encoded);
      CHECK(same_json(example, mine, "$", why));
      INFO(why);
      CHECK(why.empty());
      types.insert(std::string(std::string_view(example["type"])));
      ++servers;
    }
  }
  CHECK(clients >= 6);
  CHECK(types == std::set<std::string>{"hello", "ack", "pong", "error", "gap", "alert", "cascade",
                                       "price", "pending_liquidation", "insolvency", "oracle"});
  CHECK(servers >= types.size());
}

TEST_CASE("every bad WebSocket example is refused with its indexed code", "[ws_codec][examples]") {
  const fs::path bad_dir = examples_dir / "bad";
  simdjson::dom::parser p;
  simdjson::dom::object index;
  REQUIRE(p.parse(read_bytes(bad_dir / "index.json")).get(index) == simdjson::SUCCESS);
  std::set<std::string> listed;
  for (const auto field : index) {
    if (field.key.starts_with("_")) continue;
    listed.insert(std::string(field.key));
  }
  std::set<std::string> present;
  for (const auto& entry : fs::directory_iterator(bad_dir)) {
    const std::string name = entry.path().filename().string();
    if (name != "index.json") present.insert(name);
  }
  CHECK(listed == present);  // every file has an expectation, every expectation a file

  std::set<std::string> codes;
  for (const std::string& name : listed) {
    const simdjson::dom::object want = index[name];
    const std::string text = read_bytes(bad_dir / name);
    proto::decode_limits limits;
    std::uint64_t n = 0;
    if (want["max_batch"].get(n) == simdjson::SUCCESS) limits.max_batch = n;
    if (want["max_list"].get(n) == simdjson::SUCCESS) limits.max_list = n;
    const auto msg = proto::decode_client_message(text, default_market(), limits);
    INFO(name << ": " << text);
    REQUIRE(std::holds_alternative<proto::wire_error>(msg.body));
    const auto& e = std::get<proto::wire_error>(msg.body);
    INFO("got " << proto::to_string(e.code) << ": " << e.message);
    const std::string_view code = want["code"];
    CHECK(proto::to_string(e.code) == code);
    // The file is named for its code.
    CHECK(name.starts_with(std::string(code)));
    std::string_view message;
    if (want["message"].get(message) == simdjson::SUCCESS) CHECK(e.message == message);
    std::string_view id;
    if (want["id"].get(id) == simdjson::SUCCESS) CHECK(msg.id == id);
    CHECK(simdjson::validate_utf8(e.message.data(), e.message.size()));
    codes.insert(std::string(code));
  }
  CHECK(codes == std::set<std::string>{"bad_json", "bad_request", "unknown_op", "unknown_asset",
                                       "unknown_protocol", "bad_price", "too_large"});
}

TEST_CASE("the error example is what the bad prices example gets", "[ws_codec][examples]") {
  const auto msg = proto::decode_client_message(
      read_bytes(examples_dir / "bad" / "unknown_asset_prices.json"), default_market());
  REQUIRE(std::holds_alternative<proto::wire_error>(msg.body));
  std::string expected = read_bytes(examples_dir / "server_error.json");
  while (!expected.empty() && expected.back() == '\n') expected.pop_back();
  simdjson::dom::parser p1;
  simdjson::dom::parser p2;
  std::string why;
  CHECK(same_json(p1.parse(expected),
                  p2.parse(proto::encode_error(msg.id, std::get<proto::wire_error>(msg.body))), "$",
                  why));
  INFO(why);
}
