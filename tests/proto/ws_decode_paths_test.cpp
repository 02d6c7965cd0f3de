// decode_client_message's two paths (ws_codec.hpp) give the same result for every frame:
// the single pass that takes `price` and `prices` frames opening with `op`, and the
// reference path (two passes) that every other frame and every refusal goes through.
// Frames: proto/examples/ws (good and bad), every WebSocket frame of the bad-input
// catalogue (tests/data/bad/catalogue.json), and a few thousand generated from a fixed
// seed: key orders, ids of every JSON type, batch sizes, sources, whitespace, a bad
// value at each place, cut or damaged text. Each result (the decoded command or the
// exact error, with the echoed id) must be identical, and the single pass must take
// every well-formed price frame that opens with `op` (else it would prove nothing).
#include <simdjson.h>

#include <algorithm>
#include <array>
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "proto/config.hpp"
#include "proto/default_config.hpp"
#include "proto/json_writer.hpp"
#include "proto/ws_codec.hpp"
#include "support/fixtures.hpp"

namespace {

namespace fs = std::filesystem;
namespace proto = cascade::proto;
using cascade::market;
using cascade::testing::must;

const fs::path source_dir(CASCADE_SOURCE_DIR);

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE(in.good());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const market& default_market() {
  static const proto::config cfg = must(proto::load_default_config());
  return cfg.mkt;
}

std::string hex_double(double d) {
  std::array<char, 64> buf{};
  std::snprintf(buf.data(), buf.size(), "%a", d);
  return buf.data();
}

template <class T>
std::string join(const std::vector<T>& v) {
  std::string out;
  for (const auto& x : v) {
    if constexpr (std::is_same_v<T, std::string>) {
      out += x + ",";
    } else {
      out += std::to_string(x.index()) + ",";
    }
  }
  return out;
}

// Every field of a decoded message as text (doubles in hex, so -0 and 0 differ), for a
// comparison that says what differs.
std::string describe(const proto::client_message& msg) {
  std::string out = "id=" + msg.id + " ";
  if (const auto* e = std::get_if<proto::wire_error>(&msg.body)) {
    return out + "error " + std::string(proto::to_string(e->code)) + ": " + e->message;
  }
  if (const auto* p = std::get_if<proto::prices_msg>(&msg.body)) {
    out += "prices";
    for (const proto::price_tick& t : p->ticks) {
      out += " {" + std::to_string(t.asset.index()) + " " + hex_double(t.price) + " '" + t.source +
             "' " + hex_double(t.ts) + "}";
    }
    return out;
  }
  if (const auto* s = std::get_if<proto::subscribe_msg>(&msg.body)) {
    const proto::subscription& sub = s->sub;
    return out + "subscribe " + std::to_string(sub.channels) + " p=" + join(sub.protocols) +
           " a=" + join(sub.assets) + " b=" + std::to_string(static_cast<int>(sub.min_band)) +
           " pos=" + join(sub.positions) + " o=" + join(sub.owners);
  }
  if (const auto* u = std::get_if<proto::unsubscribe_msg>(&msg.body)) {
    return out + "unsubscribe " + std::to_string(u->channels);
  }
  if (const auto* r = std::get_if<proto::resume_msg>(&msg.body)) {
    return out + "resume " + std::to_string(r->from_seq);
  }
  return out + "ping";
}

// Runs `frame` through both paths; counts the frames and those the single pass took.
struct differ {
  const market& m;
  proto::decode_limits limits;
  std::size_t frames = 0;
  std::size_t single = 0;
  std::size_t mismatches = 0;

  // Returns whether the single pass took the frame.
  bool check(std::string_view frame) {
    ++frames;
    const proto::client_message ref =
        proto::detail::decode_client_message_reference(frame, m, limits);
    const proto::client_message full = proto::decode_client_message(frame, m, limits);
    const auto one = proto::detail::decode_client_message_single_pass(frame, m, limits);
    const std::string want = describe(ref);
    const bool same =
        describe(full) == want && full == ref && (!one || (describe(*one) == want && *one == ref));
    if (!same) {
      ++mismatches;
      FAIL_CHECK("the paths differ on " << frame << "\n reference:   " << want
                                        << "\n decoded:     " << describe(full)
                                        << "\n single pass: " << (one ? describe(*one) : "-"));
    }
    if (one) ++single;
    return one.has_value();
  }
};

bool decoded_prices(const proto::client_message& msg) {
  return std::holds_alternative<proto::prices_msg>(msg.body);
}

// A JSON value as text: compact, or spaced as Python's json.dumps writes it.
void write_json(simdjson::dom::element e, bool spaced, std::string& out) {
  using simdjson::dom::element_type;
  switch (e.type()) {
    case element_type::OBJECT: {
      out += '{';
      bool first = true;
      for (const auto field : e.get_object()) {
        if (!first) out += spaced ? ", " : ",";
        first = false;
        proto::append_json_string(out, field.key);
        out += spaced ? ": " : ":";
        write_json(field.value, spaced, out);
      }
      out += '}';
      return;
    }
    case element_type::ARRAY: {
      out += '[';
      bool first = true;
      for (const auto x : e.get_array()) {
        if (!first) out += spaced ? ", " : ",";
        first = false;
        write_json(x, spaced, out);
      }
      out += ']';
      return;
    }
    case element_type::STRING:
      proto::append_json_string(out, std::string_view(e.get_string()));
      return;
    case element_type::INT64:
      out += std::to_string(std::int64_t(e));
      return;
    case element_type::UINT64:
      out += std::to_string(std::uint64_t(e));
      return;
    case element_type::DOUBLE:
      proto::append_json_number(out, double(e));
      return;
    case element_type::BOOL:
      out += bool(e) ? "true" : "false";
      return;
    case element_type::NULL_VALUE:
      out += "null";
      return;
  }
}

// A catalogue frame spec as the runner sends it (tests/README.md): text, hex, repeat, or
// json, written here both compact and spaced.
std::vector<std::string> catalogue_frames(simdjson::dom::element spec) {
  std::string_view text;
  if (spec["text"].get(text) == simdjson::SUCCESS) return {std::string(text)};
  if (spec["hex"].get(text) == simdjson::SUCCESS) {
    std::string bytes;
    for (std::size_t i = 0; i + 1 < text.size(); i += 2) {
      bytes += static_cast<char>(std::stoi(std::string(text.substr(i, 2)), nullptr, 16));
    }
    return {bytes};
  }
  simdjson::dom::element r;
  if (spec["repeat"].get(r) == simdjson::SUCCESS) {
    const auto part = [&](const char* key) { return std::string_view(r[key]); };
    std::string s{part("prefix")};
    const std::uint64_t count = r["count"];
    for (std::uint64_t i = 0; i < count; ++i) {
      if (i > 0) s += part("sep");
      s += part("item");
    }
    s += part("suffix");
    return {s};
  }
  simdjson::dom::element json;
  REQUIRE(spec["json"].get(json) == simdjson::SUCCESS);
  std::string compact;
  std::string spaced;
  write_json(json, false, compact);
  write_json(json, true, spaced);
  return {compact, spaced};
}

std::vector<std::string> words(std::string_view s) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at < s.size()) {
    const std::size_t end = std::min(s.find(' ', at), s.size());
    if (end > at) out.emplace_back(s.substr(at, end - at));
    at = end + 1;
  }
  return out;
}

// Generated frames. Each value slot draws a good spelling most of the time and a bad one
// otherwise, so that every field is refused in every way at every place in the object.
struct generator {
  std::mt19937_64 rng{20261124};

  std::size_t pick(std::size_t n) {
    return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng);
  }
  bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; }
  template <std::size_t N>
  std::string one_of(const std::array<std::string_view, N>& xs) {
    return std::string(xs[pick(N)]);
  }

  // Good or bad, per slot; `good` tells which was drawn.
  std::string id(bool& good) {
    // Split on spaces (no spelling here holds one).
    static const std::vector<std::string> ok =
        words(R"(17 0 -5 123456789012345678 -123456789012345678 1234567890123456789 )"
              R"(18446744073709551615 1.5 1e3 -0 -0.0 2.5E-7 "abc" "" "a\"b\u00e9" true null )"
              "\"\xc3\xa9-\xe4\xb8\xad\"");
    static const std::vector<std::string> bad =
        words(R"({} [1] {"a":1} 01 1. - NaN Infinity 1e999 tru nul "\x" 18446744073709551616e999 )"
              "\"tab\there\"");
    good = chance(0.9);
    return good ? ok[pick(ok.size())] : bad[pick(bad.size())];
  }
  std::string asset(bool& good) {
    static constexpr std::array<std::string_view, 5> ok{R"("ETH")", R"("WBTC")", R"("wstETH")",
                                                        R"("E\u0054H")", R"("LINK")"};
    static constexpr std::array<std::string_view, 7> bad{R"("DOGE")",  R"("")",    "5",    "null",
                                                         R"(["ETH"])", R"("eth")", R"({})"};
    good = chance(0.9);
    return good ? one_of(ok) : one_of(bad);
  }
  std::string price(bool& good) {
    static constexpr std::array<std::string_view, 6> ok{
        "2400.5", "1", "1e-300", "4.9e-324", "1.7976931348623157e308", "31337"};
    static constexpr std::array<std::string_view, 18> bad{
        "0",    "-0", "-3", "1e999", "NaN", "Infinity", "-Infinity", R"("2400")", "null",
        "true", "1.", "01", ".5",    "2e",  "{}",       "[1]",       "-",         "1e-400"};
    good = chance(0.9);
    return good ? one_of(ok) : one_of(bad);
  }
  std::string source(bool& good) {
    static const std::string longest = "\"" + std::string(128, 's') + "\"";
    static const std::string too_long = "\"" + std::string(129, 's') + "\"";
    good = chance(0.9);
    if (good) {
      static constexpr std::array<std::string_view, 4> ok{R"("binance")", R"("s\u00e9")",
                                                          R"("a\nb")", R"("x")"};
      return chance(0.1) ? longest : one_of(ok);
    }
    static constexpr std::array<std::string_view, 4> bad{R"("")", "5", "null", R"(["x"])"};
    return chance(0.2) ? too_long : one_of(bad);
  }
  std::string ts(bool& good) {
    static constexpr std::array<std::string_view, 5> ok{"1700000000.25", "0", "-0", "253402300799",
                                                        "1e-5"};
    static constexpr std::array<std::string_view, 8> bad{
        "-5", "253402300800", "1e18", "1e999", R"("1")", "null", "NaN", "-1e-300"};
    good = chance(0.9);
    return good ? one_of(ok) : one_of(bad);
  }

  // Whitespace between tokens: none, or a draw per message.
  std::string space() {
    if (!spaced_) return "";
    static constexpr std::array<std::string_view, 5> ws{"", " ", "\n", "\t ", "\r\n  "};
    return one_of(ws);
  }

  using field = std::pair<std::string, std::string>;  // raw key (quoted), value

  std::string object(const std::vector<field>& fields) {
    std::string s = space() + "{";
    for (std::size_t i = 0; i < fields.size(); ++i) {
      if (i > 0) s += space() + ",";
      s += space() + fields[i].first + space() + ":" + space() + fields[i].second;
    }
    return s + space() + "}" + space();
  }

  // The tick fields; `good` stays true only when every one drawn is good and the
  // required ones are there.
  std::vector<field> tick_fields(bool& good) {
    std::vector<field> f;
    bool g = true;
    if (!chance(0.03)) {
      f.emplace_back(R"("asset")", asset(g));
      good = good && g;
    } else {
      good = false;
    }
    if (!chance(0.03)) {
      f.emplace_back(R"("price")", price(g));
      good = good && g;
    } else {
      good = false;
    }
    if (chance(0.4)) {
      f.emplace_back(R"("source")", source(g));
      good = good && g;
    }
    if (chance(0.4)) {
      f.emplace_back(R"("ts")", ts(g));
      good = good && g;
    }
    return f;
  }

  // Keys out of the ordinary: unknown, escaped, repeated (each makes the frame one the
  // single pass must give up on, or one the reference refuses).
  void add_odd_key(std::vector<field>& f, bool& good, bool& plain) {
    switch (pick(4)) {
      case 0:
        f.emplace_back(R"("extra")", "1");
        good = false;
        break;
      case 1:  // an escaped spelling of a key that is there or not
        f.emplace_back(R"("pric\u0065")", "5");
        plain = false;
        good = false;  // repeated or, for prices, unknown
        break;
      case 2:
        if (!f.empty()) {
          f.push_back(f[pick(f.size())]);
          good = false;
        }
        break;
      default:
        f.emplace_back(R"("op")", R"("price")");
        good = false;
        break;
    }
  }

  struct frame {
    std::string text;
    bool plain = false;  // opens with op, keys unescaped, text undamaged
    bool good = false;   // and every value good: the reference must accept it
  };

  frame price_frame() {
    frame out;
    bool good = true;
    bool plain = true;
    std::vector<field> f = tick_fields(good);
    if (chance(0.8)) {
      bool g = true;
      f.emplace_back(R"("id")", id(g));
      good = good && g;
    }
    if (chance(0.1)) add_odd_key(f, good, plain);
    std::shuffle(f.begin(), f.end(), rng);
    place_op(f, "\"price\"", good, plain);
    out.text = object(f);
    out.plain = plain;
    out.good = good && plain;
    return out;
  }

  frame prices_frame(std::size_t max_batch) {
    frame out;
    bool good = true;
    bool plain = true;
    const std::size_t n = pick(8);
    std::string arr = space() + "[";
    for (std::size_t i = 0; i < n; ++i) {
      if (i > 0) arr += space() + ",";
      if (chance(0.02)) {
        static constexpr std::array<std::string_view, 4> not_ticks{"5", "[]", "null", R"("ETH")"};
        arr += space() + one_of(not_ticks);
        good = false;
        continue;
      }
      std::vector<field> t = tick_fields(good);
      if (chance(0.03)) add_odd_key(t, good, plain);
      std::shuffle(t.begin(), t.end(), rng);
      arr += object(t);
    }
    arr += space() + "]";
    good = good && n >= 1 && n <= max_batch;
    std::vector<field> f;
    if (!chance(0.03)) {
      f.emplace_back(R"("prices")", arr);
    } else {
      good = false;
    }
    if (chance(0.8)) {
      bool g = true;
      f.emplace_back(R"("id")", id(g));
      good = good && g;
    }
    if (chance(0.05)) add_odd_key(f, good, plain);
    std::shuffle(f.begin(), f.end(), rng);
    place_op(f, "\"prices\"", good, plain);
    out.text = object(f);
    out.plain = plain;
    out.good = good && plain;
    return out;
  }

  // `op` first (as clients send it), elsewhere, missing, or with another value.
  void place_op(std::vector<field>& f, std::string value, bool& good, bool& plain) {
    const std::size_t r = pick(100);
    if (r < 3) {
      good = false;
      plain = false;
      return;
    }
    if (r < 8) {
      static constexpr std::array<std::string_view, 4> other{R"("ping")", "5", R"("pric")",
                                                             R"("PRICE")"};
      value = one_of(other);
      good = false;
    } else if (r < 11) {  // the right op, escaped: the reference takes it, the single pass not
      value = value == "\"price\"" ? R"("pric\u0065")" : R"("price\u0073")";
      plain = false;
    }
    if (r < 80) {
      f.insert(f.begin(), {R"("op")", value});
    } else {
      f.insert(f.begin() + static_cast<std::ptrdiff_t>(pick(f.size() + 1)), {R"("op")", value});
      plain = plain && f.front().first == R"("op")";
    }
  }

  // Cut short, a byte dropped, inserted or replaced, or content after the document.
  std::string damage(std::string s) {
    static constexpr std::string_view bytes = "{}[]\",:0a\\ -e.\xff";
    const std::size_t at = s.empty() ? 0 : pick(s.size());
    switch (pick(5)) {
      case 0:
        return s.substr(0, at);
      case 1:
        return s.erase(at, 1);
      case 2:
        return s.insert(at, 1, bytes[pick(bytes.size())]);
      case 3:
        if (!s.empty()) s[at] = bytes[pick(bytes.size())];
        return s;
      default: {
        static constexpr std::array<std::string_view, 4> tails{" x", "}", "{}", " \n"};
        return s + std::string(tails[pick(tails.size())]);
      }
    }
  }

  void new_message() { spaced_ = chance(0.5); }

 private:
  bool spaced_ = false;
};

TEST_CASE("both decoding paths agree on the example frames", "[ws_codec][decode_paths]") {
  for (const proto::decode_limits limits : {proto::decode_limits{}, proto::decode_limits{2, 2}}) {
    differ d{default_market(), limits};
    for (const fs::path& dir :
         {source_dir / "proto/examples/ws", source_dir / "proto/examples/ws/bad"}) {
      for (const auto& entry : fs::directory_iterator(dir)) {
        const std::string name = entry.path().filename().string();
        if (entry.path().extension() != ".json" || name == "index.json" ||
            name.starts_with("server_")) {
          continue;
        }
        d.check(read_bytes(entry.path()));
      }
    }
    CHECK(d.frames >= 40);
    CHECK(d.single >= 3);  // client_price, client_price_minimal, client_prices
    REQUIRE(d.mismatches == 0);
  }
}

TEST_CASE("both decoding paths agree on the catalogue's WebSocket frames",
          "[ws_codec][decode_paths]") {
  // The catalogue's server: tests/data/server/market.toml with server.max_batch=5.
  const proto::config cfg =
      must(proto::load_config_file((source_dir / "tests/data/server/market.toml").string()));
  differ d{cfg.mkt, proto::decode_limits{.max_batch = 5}};
  simdjson::dom::parser parser;
  const simdjson::padded_string text =
      simdjson::padded_string(read_bytes(source_dir / "tests/data/bad/catalogue.json"));
  const simdjson::dom::element doc = parser.parse(text);
  std::size_t entries = 0;
  for (const simdjson::dom::element e : doc["entries"].get_array()) {
    simdjson::dom::element frame;
    if (std::string_view(e["interface"]) != "ws" || e["input"]["frame"].get(frame)) continue;
    ++entries;
    for (const std::string& f : catalogue_frames(frame)) d.check(f);
  }
  for (const simdjson::dom::element f : doc["server"]["setup"]["frames"].get_array()) {
    std::string compact;
    write_json(f, false, compact);
    CHECK(d.check(compact) == compact.starts_with(R"({"op":"price")"));
  }
  CHECK(entries >= 60);
  CHECK(d.single >= 10);
  REQUIRE(d.mismatches == 0);
}

TEST_CASE(
    "both decoding paths agree on generated price frames, and the single pass takes "
    "every good one that opens with op",
    "[ws_codec][decode_paths]") {
  generator g;
  for (const std::size_t max_batch : {std::size_t{5}, std::size_t{10'000}}) {
    differ d{default_market(), proto::decode_limits{.max_batch = max_batch}};
    std::size_t good = 0;
    std::size_t refused = 0;
    for (int i = 0; i < 2500; ++i) {
      g.new_message();
      const generator::frame f = i % 2 == 0 ? g.price_frame() : g.prices_frame(max_batch);
      const bool took = d.check(f.text);
      const proto::client_message ref =
          proto::detail::decode_client_message_reference(f.text, d.m, d.limits);
      if (f.good) {
        ++good;
        INFO(f.text << "\n reference: " << describe(ref));
        REQUIRE(decoded_prices(ref));
      }
      if (f.plain) {
        // Opening with op and unescaped keys, the single pass gives up exactly on what
        // the reference refuses.
        INFO(f.text << "\n reference: " << describe(ref));
        REQUIRE(took == decoded_prices(ref));
      }
      refused += decoded_prices(ref) ? 0 : 1;
      d.check(g.damage(f.text));
    }
    INFO("frames " << d.frames << ", single pass " << d.single << ", good " << good << ", refused "
                   << refused);
    CHECK(good >= 600);
    CHECK(refused >= 600);
    CHECK(d.single >= good);
    REQUIRE(d.mismatches == 0);
  }
}

}  // namespace
