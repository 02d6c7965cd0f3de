#include "proto/positions_csv.hpp"

#include <simdjson.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <sstream>
#include <string>

#include "proto/scenario.hpp"
#include "support/fixtures.hpp"

namespace {

using cascade::position_input;
using cascade::proto::append_positions_csv;
using cascade::proto::load_positions_csv;
using cascade::proto::parse_positions_csv;
using cascade::proto::write_positions_csv;
using cascade::testing::aid;
using cascade::testing::must;
using cascade::testing::pid;

std::string data(const char* name) {
  return std::string(CASCADE_SOURCE_DIR) + "/tests/data/" + name;
}

cascade::market multi_market() {
  return std::move(
      must(cascade::proto::load_scenario_file(std::string(CASCADE_SOURCE_DIR) +
                                              "/proto/examples/scenario_multi_protocol.json"))
          .mkt);
}

bool same(const position_input& a, const position_input& b) {
  if (a.id != b.id || a.protocol != b.protocol || a.owner != b.owner) return false;
  if (a.legs.size() != b.legs.size()) return false;
  for (std::size_t i = 0; i < a.legs.size(); ++i) {
    const auto& x = a.legs[i];
    const auto& y = b.legs[i];
    // Bitwise: -0.0 and 0.0 must survive as written.
    if (x.asset != y.asset || std::memcmp(&x.collateral, &y.collateral, sizeof(double)) != 0 ||
        std::memcmp(&x.debt, &y.debt, sizeof(double)) != 0) {
      return false;
    }
  }
  return true;
}

}  // namespace

TEST_CASE("positions CSV groups rows by id in order of first appearance", "[proto][csv]") {
  const cascade::market m = multi_market();
  const auto ps = must(load_positions_csv(data("positions_good.csv"), m));
  REQUIRE(ps.size() == 4);
  CHECK(ps[0].id == "aave-1");
  CHECK(ps[1].id == "comp-1");
  CHECK(ps[2].id == "maker-1");
  CHECK(ps[3].id == "perp-1");
  CHECK(ps[0].protocol == pid(m, "aave-v3"));
  CHECK(ps[0].owner == "0x01");
  CHECK(ps[3].owner.empty());
  // comp-1's rows are not adjacent; its legs keep row order.
  REQUIRE(ps[1].legs.size() == 2);
  CHECK(ps[1].legs[0].asset == aid(m, "WBTC"));
  CHECK(ps[1].legs[0].collateral == 10.0);
  CHECK(ps[1].legs[1].asset == aid(m, "USDC"));
  CHECK(ps[1].legs[1].debt == 450000.5);
  CHECK(ps[2].legs[1].debt == 1.9e6);
  // A debt-only leg on an asset the protocol does not accept as collateral.
  CHECK(ps[3].legs[1].asset == aid(m, "ETH"));
  CHECK(ps[3].legs[1].debt == 6.25);
  cascade::book b(m);
  must(b.upsert(ps));
  CHECK(b.size() == 4);
}

TEST_CASE("positions CSV takes columns in any order, CRLF, a BOM and no final newline",
          "[proto][csv]") {
  const cascade::market m = multi_market();
  const std::string text =
      "\xEF\xBB\xBF"
      "debt,asset,id,collateral,protocol\r\n"
      "0,ETH,a,1.5,aave-v3\r\n"
      "100,USDC,a,0,aave-v3\r\n"
      "0,WBTC,b,2e-1,maker";
  const auto ps = must(parse_positions_csv(text, m, "inline.csv"));
  REQUIRE(ps.size() == 2);
  CHECK(ps[0].id == "a");
  CHECK(ps[0].owner.empty());
  CHECK(ps[0].legs.size() == 2);
  CHECK(ps[0].legs[0].collateral == 1.5);
  CHECK(ps[0].legs[1].debt == 100.0);
  CHECK(ps[1].protocol == pid(m, "maker"));
  CHECK(ps[1].legs[0].collateral == 0.2);

  const auto header_only = must(parse_positions_csv("id,protocol,asset,collateral,debt\n", m, "h"));
  CHECK(header_only.empty());
}

// Found by fuzz/fuzz_positions_csv: text that is not UTF-8 was read, so an id or owner
// holding such bytes reached the book and then JSON (alerts, GET /v1/positions), and a
// header of such bytes came back in the error message. Now refused, naming the line.
TEST_CASE("positions CSV refuses text that is not UTF-8, naming the line",
          "[proto][csv][fuzz-regression]") {
  const cascade::market m = multi_market();
  const struct {
    std::string text;
    std::string where;
  } cases[] = {
      {"\x89", "bad.csv:1: "},  // the fuzzer's input, minimized
      {"id,protocol,asset,collateral,debt\n"
       "a,aave-v3,ETH,1,0\n"
       "p\xff"
       "1,aave-v3,ETH,1,0\n",
       "bad.csv:3: "},
      {"id,protocol,asset,collateral,debt,owner\r\n"
       "a,aave-v3,ETH,1,0,0x\xC3\x28\r\n",
       "bad.csv:2: "},
  };
  for (const auto& c : cases) {
    const auto ps = parse_positions_csv(c.text, m, "bad.csv");
    REQUIRE_FALSE(ps.ok());
    const std::string message(ps.status().message());
    CHECK(message.rfind(c.where, 0) == 0);
    CHECK_THAT(message, Catch::Contains("not valid UTF-8"));
    CHECK(message.find('\xff') == std::string::npos);
    CHECK(message.find('\x89') == std::string::npos);
  }
  // Multi-byte UTF-8 in ids and owners is text like any other.
  const auto ps = must(parse_positions_csv(
      "id,protocol,asset,collateral,debt,owner\nv\xC3\xA9lo,aave-v3,ETH,1,0,\xE2\x82\xAC\n", m,
      "ok.csv"));
  REQUIRE(ps.size() == 1);
  CHECK(ps[0].id == "v\xC3\xA9lo");
  CHECK(ps[0].owner == "\xE2\x82\xAC");
}

// Found by fuzz/fuzz_positions_csv: a CR inside a row was kept in the id (or owner),
// which the writer then refused (it would read back as a line end), so a parsed book
// could not be written back. Now refused, naming the line.
TEST_CASE("positions CSV refuses a carriage return inside a row", "[proto][csv][fuzz-regression]") {
  const cascade::market m = multi_market();
  for (const std::string& text : {
           // the fuzzer's input, minimized
           std::string("id,protocol,asset,collateral,debt,owner\n\r,aave-v3,ETH,1,0,"),
           std::string("id,protocol,asset,collateral,debt,owner\r\n"
                       "a,aave-v3,ETH,1,0,x\r\r\n"),
           std::string("id,protocol,asset,collateral,debt\na\rb,aave-v3,ETH,1,0\n"),
       }) {
    const auto ps = parse_positions_csv(text, m, "cr.csv");
    REQUIRE_FALSE(ps.ok());
    CHECK_THAT(std::string(ps.status().message()),
               Catch::StartsWith("cr.csv:2: ") && Catch::Contains("carriage return"));
  }
}

// Found by fuzz/fuzz_positions_csv: an unknown column name longer than a message shows
// was cut inside a multi-byte character (here a byte-order mark), so the message was not
// UTF-8. Now cut at a character boundary.
TEST_CASE("positions CSV messages stay UTF-8 when they cut a long name",
          "[proto][csv][fuzz-regression]") {
  const cascade::market m = multi_market();
  // The fuzzer's input, minimized: 62 bytes, then a BOM across the 64-byte cut.
  const std::string text(
      "\x00\x00\x00\x00\x00\x00\x00\x1e"
      "c\x00\x00\x04\x01\x00\x00\x00"
      "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
      "\x00\x00\x00\x00\x00\xef\xbb\xbf\x00\x00\x00\x00\x00\x00\x00\x00"
      "\x00\x00\x00\x00\x00\x00\x00\xef\xbb\xbf\x00\x00\x00\x00\xef\xbb"
      "\xbf",
      65);
  const auto ps = parse_positions_csv(text, m, "fuzz.csv");
  REQUIRE_FALSE(ps.ok());
  const std::string message(ps.status().message());
  CHECK_THAT(message, Catch::StartsWith("fuzz.csv:1: unknown column '") && Catch::Contains("...'"));
  CHECK(simdjson::validate_utf8(message.data(), message.size()));
}

TEST_CASE("positions CSV round-trips exactly through the writer", "[proto][csv]") {
  const cascade::market m = multi_market();
  std::mt19937_64 rng(20240601);
  std::uniform_int_distribution<std::size_t> n_legs(1, 4);
  std::uniform_int_distribution<std::size_t> pick_protocol(0, m.protocol_count() - 1);
  std::uniform_int_distribution<std::size_t> pick_asset(0, m.asset_count() - 1);
  std::uniform_real_distribution<double> exponent(-12.0, 12.0);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  const double awkward[] = {
      0.1,  1.0 / 3.0, 1e-300, 4.9e-324, 1.7976931348623157e308, 123456789.12345678,
      -0.0, 0.0,       2290.5};

  std::vector<position_input> ps;
  for (std::size_t i = 0; i < 500; ++i) {
    position_input p;
    p.id = "pos-" + std::to_string(i * 7919 % 100003);
    p.protocol = cascade::protocol_id::from_index(pick_protocol(rng));
    p.owner = i % 3 == 0 ? "" : "0x" + std::to_string(rng() % 1000000);
    const cascade::protocol& proto = m.get_protocol(p.protocol);
    const std::size_t legs = n_legs(rng);
    for (std::size_t j = 0; j < legs; ++j) {
      const auto a = cascade::asset_id::from_index(pick_asset(rng));
      const double amount =
          i < std::size(awkward) ? awkward[i] : unit(rng) * std::pow(10.0, exponent(rng));
      const bool coll = proto.params(a) != nullptr && j % 2 == 0;
      p.legs.push_back({a, coll ? amount : 0.0, coll ? 0.0 : amount});
    }
    ps.push_back(std::move(p));
  }

  std::string text;
  must(append_positions_csv(text, ps, m));
  CHECK(text.rfind("id,protocol,asset,collateral,debt,owner\n", 0) == 0);
  const auto back = must(parse_positions_csv(text, m, "round-trip.csv"));
  REQUIRE(back.size() == ps.size());
  for (std::size_t i = 0; i < ps.size(); ++i) {
    INFO("position " << ps[i].id);
    CHECK(same(ps[i], back[i]));
  }

  // The stream writer produces the same bytes.
  std::ostringstream os;
  must(write_positions_csv(os, ps, m));
  CHECK(os.str() == text);

  // Without owners there is no owner column.
  for (auto& p : ps) p.owner.clear();
  std::string plain;
  must(append_positions_csv(plain, ps, m));
  CHECK(plain.rfind("id,protocol,asset,collateral,debt\n", 0) == 0);
  const auto back_plain = must(parse_positions_csv(plain, m, "plain.csv"));
  REQUIRE(back_plain.size() == ps.size());
  for (std::size_t i = 0; i < ps.size(); ++i) CHECK(same(ps[i], back_plain[i]));
}

TEST_CASE("the CSV writer refuses what would not read back, and writes nothing", "[proto][csv]") {
  const cascade::market m = multi_market();
  const auto eth = aid(m, "ETH");
  const auto aave = pid(m, "aave-v3");
  const auto check_refused = [&](std::vector<position_input> ps, const char* why) {
    std::string out = "unchanged";
    const auto s = append_positions_csv(out, ps, m);
    CHECK_FALSE(s.ok());
    CHECK_THAT(std::string(s.message()), Catch::Contains(why));
    CHECK(out == "unchanged");
  };
  check_refused({{"a,b", aave, "", {{eth, 1.0, 0.0}}}}, "comma");
  check_refused({{"a", aave, "x\ny", {{eth, 1.0, 0.0}}}}, "owner");
  check_refused({{"a", aave, "", {}}}, "without legs");
  check_refused({{"", aave, "", {{eth, 1.0, 0.0}}}}, "id is empty");
  check_refused({{"a", aave, "", {{eth, 1.0, 0.0}}}, {"a", aave, "", {{eth, 2.0, 0.0}}}},
                "duplicate id");
  check_refused({{"a", aave, "", {{eth, std::numeric_limits<double>::infinity(), 0.0}}}}, "finite");
  check_refused({{"a", pid(m, "perp-dex"), "", {{eth, 1.0, 0.0}}}}, "does not accept ETH");
}

TEST_CASE("positions CSV parses a large file in one pass", "[proto][csv]") {
  const cascade::market m = multi_market();
  std::string text = "id,protocol,asset,collateral,debt\n";
  constexpr std::size_t n = 200'000;
  text.reserve(n * 40);
  for (std::size_t i = 0; i < n; ++i) {
    const std::string id = "p" + std::to_string(i);
    text += id + ",aave-v3,ETH," + std::to_string(i % 97) + ".5,0\n";
    text += id + ",aave-v3,USDC,0," + std::to_string(i) + "\n";
  }
  const auto ps = must(parse_positions_csv(text, m, "big.csv"));
  REQUIRE(ps.size() == n);
  CHECK(ps[n - 1].legs.size() == 2);
  CHECK(ps[n - 1].legs[1].debt == static_cast<double>(n - 1));
}
