// Shared by the fuzz targets: the invariant checks, the fixed market and live state some
// targets decode against and apply to, and a JSON validity check for what the encoders
// write.
//
// A failed check prints what broke and aborts, which libFuzzer reports as a crash with
// the input that caused it. Targets run on libFuzzer's one thread; the statics here are
// built once, on the first input, and only read after. Everything an input changes (a
// book, an oracle set) is built fresh for that input, so a crash replays from its
// artifact alone.
#pragma once

#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "engine/bands.hpp"
#include "engine/book.hpp"
#include "engine/cascade.hpp"
#include "engine/market.hpp"
#include "engine/oracle.hpp"
#include "proto/default_config.hpp"
#include "proto/positions_csv.hpp"
#include "proto/report.hpp"
#include "proto/scenario.hpp"
#include "proto/ws_codec.hpp"

namespace cascade::fuzz {

[[noreturn]] inline void fail(const char* file, int line, const char* what,
                              std::string_view detail) {
  std::fprintf(stderr, "%s:%d: invariant failed: %s\n  %.*s\n", file, line, what,
               static_cast<int>(detail.size()), detail.data());
  std::abort();
}

}  // namespace cascade::fuzz

// Checks `cond`; `detail` (a string) is printed when it fails.
#define FUZZ_CHECK(cond, detail)                                             \
  do {                                                                       \
    if (!(cond)) ::cascade::fuzz::fail(__FILE__, __LINE__, #cond, (detail)); \
  } while (false)

namespace cascade::fuzz {

// The input as text (libFuzzer hands bytes).
inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// The embedded default config (config/default.toml: 10 assets, 4 protocols), the market
// the example documents name. Parsed from the embedded text: no file is read.
inline const proto::config& default_config() {
  static const proto::config cfg = [] {
    auto c = proto::load_default_config();
    if (!c.ok()) fail(__FILE__, __LINE__, "load_default_config()", c.status().ToString());
    return *std::move(c);
  }();
  return cfg;
}
inline const market& fixed_market() { return default_config().mkt; }

namespace detail {

namespace od = simdjson::ondemand;

// RFC 8259's number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
inline bool number_grammar(std::string_view s) {
  std::size_t i = 0;
  const auto digits = [&] {
    const std::size_t from = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    return i > from;
  };
  if (i < s.size() && s[i] == '-') ++i;
  if (i < s.size() && s[i] == '0') {
    ++i;
  } else if (!digits()) {
    return false;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (!digits()) return false;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (!digits()) return false;
  }
  return i == s.size();
}

inline bool number_token(std::string_view raw) {
  while (!raw.empty() && (raw.back() == ' ' || raw.back() == '\t' || raw.back() == '\n' ||
                          raw.back() == '\r')) {
    raw.remove_suffix(1);
  }
  return number_grammar(raw);
}

// Reads every value below `v` (a scalar, or an object or array walked in full).
inline bool valid_value(od::value& v, int depth) {
  od::json_type t{};
  if (depth > 256 || v.type().get(t) != simdjson::SUCCESS) return false;
  switch (t) {
    case od::json_type::object: {
      od::object o;
      if (v.get_object().get(o) != simdjson::SUCCESS) return false;
      for (auto member : o) {
        od::field f;
        std::string_view key;
        if (std::move(member).get(f) != simdjson::SUCCESS ||
            f.unescaped_key().get(key) != simdjson::SUCCESS) {
          return false;
        }
        od::value x = f.value();
        if (!valid_value(x, depth + 1)) return false;
      }
      return true;
    }
    case od::json_type::array: {
      od::array a;
      if (v.get_array().get(a) != simdjson::SUCCESS) return false;
      for (auto element : a) {
        od::value x;
        if (std::move(element).get(x) != simdjson::SUCCESS || !valid_value(x, depth + 1)) {
          return false;
        }
      }
      return true;
    }
    case od::json_type::number:
      return number_token(v.raw_json_token());
    case od::json_type::string: {
      std::string_view str;
      return v.get_string().get(str) == simdjson::SUCCESS;
    }
    case od::json_type::boolean: {
      bool b = false;
      return v.get_bool().get(b) == simdjson::SUCCESS;
    }
    case od::json_type::null: {
      bool null = false;
      return v.is_null().get(null) == simdjson::SUCCESS && null;
    }
  }
  return false;
}

}  // namespace detail

// Whether `text` is one well-formed JSON value: UTF-8, syntax, nothing after it. It is
// read as the one element of "[text]" (so that a scalar is not a root scalar, which
// On-Demand reads differently), walking every value. Numbers are checked against the
// grammar, not converted: integers beyond 64 bits, which the encoders may write for
// large doubles and simdjson's DOM refuses, are JSON.
inline bool valid_json(std::string_view text) {
  static simdjson::ondemand::parser parser;
  std::string wrapped;
  wrapped.reserve(text.size() + 2 + simdjson::SIMDJSON_PADDING);
  wrapped.append("[").append(text).append("]");
  simdjson::ondemand::document doc;
  simdjson::ondemand::array root;
  if (parser.iterate(simdjson::padded_string_view(wrapped)).get(doc) != simdjson::SUCCESS ||
      doc.get_array().get(root) != simdjson::SUCCESS) {
    return false;
  }
  std::size_t count = 0;
  for (auto element : root) {
    simdjson::ondemand::value v;
    if (std::move(element).get(v) != simdjson::SUCCESS || !detail::valid_value(v, 0)) return false;
    ++count;
  }
  const char* rest = nullptr;
  return count == 1 && doc.current_location().get(rest) != simdjson::SUCCESS;
}

// valid_json is an oracle of the checks below: it is checked itself, once, at start-up.
inline const bool valid_json_checked = [] {
  constexpr std::string_view good[] = {
      R"({"a": [1, 2.5e3, -0, "x\u00e9\n", true, null, {}], "b": 888888888888888888881})",
      "\"s\"", " 7 ", "null"};
  constexpr std::string_view bad[] = {
      "", "{\"a\": 1,}", "1 2", "01", "1.", "-", "[1]]", "{\"a\" 1}", "\"\xff\"",
      "\"tab\tin\"", "{\"a\": nul}", "NaN", "[", "{\"a\": 1} x", "1,2", "]"};
  for (const std::string_view t : good) FUZZ_CHECK(valid_json(t), std::string(t));
  for (const std::string_view t : bad) FUZZ_CHECK(!valid_json(t), std::string(t));
  return true;
}();

inline bool valid_utf8(std::string_view s) { return simdjson::validate_utf8(s.data(), s.size()); }

// A loader's refusal (scenario, CSV, TOML): an InvalidArgument whose UTF-8 message
// starts with the source name ("SOURCE:LINE: PATH: REASON", input_error.hpp).
inline void check_refusal(const absl::Status& s, std::string_view source) {
  const std::string_view message(s.message().data(), s.message().size());
  const std::string text = s.ToString();
  FUZZ_CHECK(absl::IsInvalidArgument(s), "a refusal that is not InvalidArgument: " + text);
  FUZZ_CHECK(message.starts_with(source), "a refusal that does not name the source: " + text);
  FUZZ_CHECK(valid_utf8(message), "a refusal message that is not UTF-8: " + text);
}

// A small book on the default market: tests/data/server/default_market_positions.csv
// plus positions placed near the band thresholds (warn, danger, liquidatable), a
// multi-leg one and a perp account, so that small price moves cross bands and fill the
// liquidation queue.
inline const std::vector<position_input>& base_positions() {
  static constexpr std::string_view csv =
      "id,protocol,asset,collateral,debt,owner\n"
      "p1,aave-v3,ETH,10,0,0xabc\n"
      "p1,aave-v3,USDC,0,20000,0xabc\n"
      "vault-7,maker,ETH,10,0,\n"
      "vault-7,maker,DAI,0,19000,\n"
      "c1,compound-v3-usdc,WBTC,1,0,0xdef\n"
      "c1,compound-v3-usdc,USDC,0,30000,0xdef\n"
      "warn,aave-v3,ETH,10,0,0xabc\n"
      "warn,aave-v3,USDC,0,24000,0xabc\n"
      "under,aave-v3,ETH,10,0,\n"
      "under,aave-v3,USDC,0,25200,\n"
      "multi,aave-v3,wstETH,5,0,0x123\n"
      "multi,aave-v3,WBTC,0.5,0,0x123\n"
      "multi,aave-v3,DAI,0,20000,0x123\n"
      "multi,aave-v3,ETH,0,1,0x123\n"
      "perp,dydx-v4,ETH,1000,0,0x456\n"
      "perp,dydx-v4,USDC,0,2900000,0x456\n";
  static const std::vector<position_input> positions = [] {
    auto p = proto::parse_positions_csv(csv, fixed_market(), "base_positions");
    if (!p.ok()) fail(__FILE__, __LINE__, "base positions", p.status().ToString());
    return *std::move(p);
  }();
  return positions;
}

// The oracles of the default config plus the two feeds its comments give as an example
// (Chainlink-like for aave-v3/ETH, Maker's OSM for maker/ETH), so that protocols' oracles
// split from the market.
inline const oracle_config& fixed_oracles() {
  static const oracle_config cfg = [] {
    oracle_config c = default_config().oracle;
    c.rules.max_age_s = 120;
    c.rules.outlier = 0.10;
    c.feeds.push_back({"aave-v3", "ETH", {}, 0.005, 3600, 0, 7200, 1});
    c.feeds.push_back({"maker", "ETH", {}, 1e9, 3600, 3600, 0, 1});
    return c;
  }();
  return cfg;
}

// Reads a book through the const accessors and checks what must always hold:
//  - every live row's health cell equals an exact recompute from its terms at its
//    protocol's oracle prices (to the drift bound of book.hpp, taken loosely: 1e-9);
//  - no live HF is NaN, and the row's band is what the classifier keeps it at;
//  - find(id) names the row; band counts add up to size().
inline void check_book(const book& b) {
  const band_classifier bands(b.options().bands);
  std::size_t live = 0;
  for (row_t r = 0; r < b.rows(); ++r) {
    if (!b.live(r)) continue;
    ++live;
    const std::string& id = b.id_at(r);
    const auto found = b.find(id);
    FUZZ_CHECK(found && *found == r, "find(id_at(r)) != r for id " + id);
    const health_cell got = b.cells()[r];
    const health_cell exact = b.compute_cell(r, b.oracle_prices(b.protocol_at(r)));
    const auto close = [](double x, double y) {
      if (x == y) return true;
      if (!std::isfinite(x) || !std::isfinite(y)) return false;
      return std::abs(x - y) <= 1e-9 * std::max(std::abs(x), std::abs(y));
    };
    FUZZ_CHECK(close(got.num, exact.num) && close(got.den, exact.den),
               "incremental cell differs from recompute for " + id + ": num " +
                   std::to_string(got.num) + " vs " + std::to_string(exact.num) + ", den " +
                   std::to_string(got.den) + " vs " + std::to_string(exact.den));
    const double hf = b.health_at(r);
    FUZZ_CHECK(!std::isnan(hf), "NaN health factor for " + id);
    FUZZ_CHECK(bands.next(b.band_at(r), hf) == b.band_at(r),
               "band out of step with HF " + std::to_string(hf) + " for " + id);
  }
  FUZZ_CHECK(live == b.size(), "size() != number of live rows");
  std::size_t counted = 0;
  for (const auto& per_protocol : b.band_counts()) {
    for (const std::uint64_t n : per_protocol) counted += n;
  }
  FUZZ_CHECK(counted == b.size(), "band_counts() do not add up to size()");
}

// A live engine state as the server keeps it: the book of base_positions() and the
// oracles, fed by client price ticks the way server/engine_service.cpp applies them
// (each tick a source's quote to the oracles; what they publish becomes the book's
// batch: market prices, and oracle prices for the protocols without a feed).
struct live_state {
  book b{fixed_market()};
  oracle_set oracles = [] {
    auto o = oracle_set::make(fixed_market(), fixed_oracles());
    if (!o.ok()) fail(__FILE__, __LINE__, "oracle_set::make", o.status().ToString());
    return *std::move(o);
  }();
  double clock = 1.7e9;  // the server's clock, advanced one second per tick
  std::vector<crossing> crossings;
  std::vector<status_change> statuses;

  live_state() {
    const auto s = b.upsert(base_positions(), &crossings, &statuses);
    if (!s.ok()) fail(__FILE__, __LINE__, "upsert(base_positions())", s.ToString());
  }

  // Ticks the decoders accepted: known assets, finite prices > 0, ts finite >= 0.
  void apply_prices(std::span<const proto::price_tick> ticks) {
    std::vector<tick> batch;
    oracle_output out;
    for (const proto::price_tick& t : ticks) {
      FUZZ_CHECK(t.asset.valid() && t.asset.index() < fixed_market().asset_count(),
                 "a decoded tick names no asset of the market");
      FUZZ_CHECK(is_positive_finite(t.price), "a decoded tick's price is not finite > 0");
      FUZZ_CHECK(std::isfinite(t.ts) && t.ts >= 0.0, "a decoded tick's ts is not finite >= 0");
      clock += 1.0;
      const double ts = t.ts > 0.0 ? t.ts : clock;
      out.clear();
      const auto s = oracles.update(t.asset, t.source.empty() ? "ws" : t.source, t.price, ts, out);
      FUZZ_CHECK(s.ok(), "oracle update refused a decoded tick: " + s.ToString());
      for (const market_change& mc : out.market) {
        if (!oracles.has_feeds(mc.asset)) {
          batch.push_back({mc.asset, mc.price});
          continue;
        }
        batch.push_back({mc.asset, mc.price, price_scope::market});
        for (const protocol_id p : oracles.direct_protocols(mc.asset)) {
          batch.push_back({mc.asset, mc.price, price_scope::oracle, p});
        }
      }
      for (const oracle_change& oc : out.oracle) {
        batch.push_back({oc.asset, oc.price, price_scope::oracle, oc.protocol});
      }
    }
    crossings.clear();
    statuses.clear();
    const auto s = b.apply_ticks(batch, crossings, &statuses);
    FUZZ_CHECK(s.ok(), "the book refused the oracles' output: " + s.ToString());
    check_book(b);
  }
};

// Rounds a fuzzed scenario's cascade may run: enough for every mechanism to show, few
// enough that an input asking for a million rounds does not time out.
inline constexpr std::uint32_t fuzz_max_rounds = 64;

// A scenario parse_scenario accepted, run the way `cascade stress` and POST /v1/stress
// run it (a book without realizable value, the cascade on it), checking:
//  - what scenario.hpp promises: unique non-empty ids, legs of known assets with finite
//    amounts >= 0, shocks > -1 on distinct known assets, max_rounds in range;
//  - the book takes the positions (the parser already refused what the book would,
//    except more legs than max_legs) and is consistent (check_book);
//  - the cascade accepts the run, reports at most max_rounds rounds and no more
//    positions than were given, and runs again on the same simulator (its buffers
//    reused) to the same report byte for byte; the report is valid JSON.
inline void check_scenario(const proto::scenario& sc) {
  const market& m = sc.mkt;
  std::unordered_set<std::string> ids;
  bool too_many_legs = false;
  for (const position_input& p : sc.positions) {
    FUZZ_CHECK(!p.id.empty() && ids.insert(p.id).second, "scenario: empty or repeated id " + p.id);
    FUZZ_CHECK(p.protocol.valid() && p.protocol.index() < m.protocol_count(),
               "scenario: unknown protocol in " + p.id);
    for (const leg& l : p.legs) {
      FUZZ_CHECK(l.asset.valid() && l.asset.index() < m.asset_count(),
                 "scenario: unknown asset in " + p.id);
      FUZZ_CHECK(
          std::isfinite(l.collateral) && l.collateral >= 0 && std::isfinite(l.debt) && l.debt >= 0,
          "scenario: an amount not finite >= 0 in " + p.id);
    }
    too_many_legs = too_many_legs || p.legs.size() > book_options{}.max_legs;
  }
  std::vector<shock> shocks;
  for (const auto& [a, f] : sc.shocks) {
    FUZZ_CHECK(a.valid() && a.index() < m.asset_count(), "scenario: shock on an unknown asset");
    FUZZ_CHECK(std::isfinite(f) && f > -1.0, "scenario: shock not finite > -1");
    for (const shock& s : shocks) FUZZ_CHECK(s.asset != a, "scenario: asset shocked twice");
    shocks.push_back({a, f});
  }
  FUZZ_CHECK(sc.max_rounds >= 1 && sc.max_rounds <= proto::max_rounds_limit,
             "scenario: max_rounds out of range");

  book b(m, book_options{.realizable = false});
  const auto upserted = b.upsert(sc.positions);
  FUZZ_CHECK(upserted.ok() || too_many_legs,
             "the book refused a scenario's positions: " + upserted.ToString());
  if (!upserted.ok()) return;
  check_book(b);

  cascade_options o = proto::cascade_options_of(sc);
  o.max_rounds = std::min(o.max_rounds, fuzz_max_rounds);
  cascade_simulator sim;
  const auto first = sim.run(b, shocks, o);
  FUZZ_CHECK(first.ok(), "the cascade refused a parsed scenario: " + first.status().ToString());
  FUZZ_CHECK(first->rounds.size() <= o.max_rounds, "more rounds than max_rounds");
  FUZZ_CHECK(first->positions_liquidated <= sc.positions.size(),
             "more positions liquidated than the scenario holds");
  const std::string report = proto::encode_report(*first, m);
  FUZZ_CHECK(valid_json(report), "encode_report is not JSON: " + report);
  const auto second = sim.run(b, shocks, o);
  FUZZ_CHECK(second.ok() && proto::encode_report(*second, m) == report,
             "the same cascade run twice on one simulator gave different reports");
}

}  // namespace cascade::fuzz
