#include "proto/ws_codec.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <utility>

#include "proto/input_error.hpp"
#include "proto/json_writer.hpp"
#include "proto/wire_reader.hpp"

namespace cascade::proto {

namespace {

using detail::fault;
using detail::key_set;
namespace od = simdjson::ondemand;
using detail::wire_reader;

enum class op_kind : std::uint8_t { subscribe, unsubscribe, price, prices, resume, ping };

constexpr std::array<std::string_view, 6> op_names{"subscribe", "unsubscribe", "price",
                                                   "prices",    "resume",      "ping"};

std::optional<op_kind> parse_op(std::string_view s) {
  for (std::size_t i = 0; i < op_names.size(); ++i) {
    if (op_names[i] == s) return static_cast<op_kind>(i);
  }
  return std::nullopt;
}

std::optional<channel> parse_channel(std::string_view s) {
  if (s == "alerts") return ch_alerts;
  if (s == "cascades") return ch_cascades;
  if (s == "prices") return ch_prices;
  if (s == "pending") return ch_pending;
  if (s == "insolvency") return ch_insolvency;
  if (s == "oracle") return ch_oracle;
  return std::nullopt;
}

// Walks the root's fields for one op: `op` and `id` (read in the first pass) are only
// checked for repeats, any other key must be one of `keys` (whose first two names are
// "op" and "id"), and on_field(index, key, value) reads the rest.
template <std::size_t N, class F>
fault for_each_op_field(wire_reader& r, od::object& root, key_set<N>& keys, F&& on_field) {
  return r.for_each_field(root, [&](std::string_view k, od::value& v) -> fault {
    const std::size_t i = keys.find(k);
    if (i == N) return r.unknown_key(k, keys.names());
    if (!keys.mark(i)) return r.repeated(k);
    if (i < 2) return std::nullopt;
    return on_field(i, k, v);
  });
}

// A `channels` array: at least one of alerts, cascades, prices, pending, insolvency, oracle.
fault read_channels(wire_reader& r, od::value& v, std::uint8_t& out) {
  od::array arr;
  if (fault f = r.read_array(v, arr)) return f;
  out = 0;
  bool any = false;
  if (fault f = r.for_each_element(arr, [&](std::size_t, od::value& x) -> fault {
        std::string_view s;
        if (fault g = r.read_string(x, s)) return g;
        const auto c = parse_channel(s);
        if (!c) {
          return r.error(error_code::bad_request,
                         detail::cat("unknown channel ", detail::wire_quoted(s),
                                     " (expected alerts, cascades, prices, pending, insolvency or oracle)"));
        }
        out = static_cast<std::uint8_t>(out | *c);
        any = true;
        return std::nullopt;
      })) {
    return f;
  }
  if (!any) {
    return r.error(error_code::bad_request, "empty: name at least one of alerts, cascades, prices, pending, insolvency, oracle");
  }
  return std::nullopt;
}

// A filter list of at most max_list entries, each read by read_one(value, out).
template <class T, class F>
fault read_list(wire_reader& r, od::value& v, std::size_t max_list, std::vector<T>& out,
                F&& read_one) {
  od::array arr;
  if (fault f = r.read_array(v, arr)) return f;
  const std::string at = r.path();
  if (fault f = r.for_each_element(arr, [&](std::size_t i, od::value& x) -> fault {
        if (i >= max_list) {
          return wire_error{error_code::too_large,
                            detail::cat(at, ": more than ", max_list, " entries")};
        }
        return read_one(x, out.emplace_back());
      })) {
    return f;
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return std::nullopt;
}

fault read_filter(wire_reader& r, od::value& v, const market& m, const decode_limits& limits,
                  subscription& sub) {
  od::object obj;
  if (fault f = r.read_object(v, obj)) return f;
  enum : std::size_t { protocols, assets, min_band, positions, owners, known };
  key_set<known> keys({"protocols", "assets", "min_band", "positions", "owners"});
  const auto read_text = [&](od::value& x, std::string& out) -> fault {
    std::string_view s;
    if (fault f = r.read_string(x, s)) return f;
    out.assign(s);
    return std::nullopt;
  };
  return r.for_each_field(obj, [&](std::string_view k, od::value& x) -> fault {
    const std::size_t i = keys.find(k);
    if (i == known) return r.unknown_key(k, keys.names());
    if (!keys.mark(i)) return r.repeated(k);
    switch (i) {
      case protocols:
        return read_list(r, x, limits.max_list, sub.protocols, [&](od::value& y, protocol_id& out) {
          return r.read_protocol(y, m, out);
        });
      case assets:
        return read_list(r, x, limits.max_list, sub.assets,
                         [&](od::value& y, asset_id& out) { return r.read_asset(y, m, out); });
      case min_band: {
        std::string_view s;
        if (fault f = r.read_string(x, s)) return f;
        const auto b = parse_band(s);
        if (!b) {
          return r.error(error_code::bad_request,
                         detail::cat("unknown band ", detail::wire_quoted(s),
                                     " (expected healthy, warn, danger or liquidatable)"));
        }
        sub.min_band = *b;
        return std::nullopt;
      }
      case positions:
        return read_list(r, x, limits.max_list, sub.positions, read_text);
      default:
        return read_list(r, x, limits.max_list, sub.owners, read_text);
    }
  });
}

client_body decode_subscribe(wire_reader& r, od::object& root, const market& m,
                             const decode_limits& limits) {
  subscribe_msg msg;
  key_set<4> keys({"op", "id", "channels", "filter"});
  if (fault f = for_each_op_field(r, root, keys,
                                  [&](std::size_t i, std::string_view, od::value& v) -> fault {
                                    if (i == 2) return read_channels(r, v, msg.sub.channels);
                                    return read_filter(r, v, m, limits, msg.sub);
                                  })) {
    return *std::move(f);
  }
  return msg;
}

client_body decode_unsubscribe(wire_reader& r, od::object& root) {
  unsubscribe_msg msg;
  key_set<3> keys({"op", "id", "channels"});
  if (fault f = for_each_op_field(r, root, keys, [&](std::size_t, std::string_view, od::value& v) {
        return read_channels(r, v, msg.channels);
      })) {
    return *std::move(f);
  }
  return msg;
}

client_body decode_price(wire_reader& r, od::object& root, const market& m) {
  detail::tick_reader tick(m, "ws");
  key_set<6> keys({"op", "id", "asset", "price", "source", "ts"});
  if (fault f = r.for_each_field(root, [&](std::string_view k, od::value& v) -> fault {
        const std::size_t i = keys.find(k);
        if (i == keys.names().size()) return r.unknown_key(k, keys.names());
        if (i < 2) {
          if (!keys.mark(i)) return r.repeated(k);
          return std::nullopt;
        }
        return tick.field(r, k, v);
      })) {
    return *std::move(f);
  }
  prices_msg msg;
  if (fault f = tick.finish(r, msg.ticks.emplace_back())) return *std::move(f);
  return msg;
}

client_body decode_prices(wire_reader& r, od::object& root, const market& m,
                          const decode_limits& limits) {
  prices_msg msg;
  key_set<3> keys({"op", "id", "prices"});
  if (fault f = for_each_op_field(r, root, keys, [&](std::size_t, std::string_view, od::value& v) {
        return detail::read_ticks(r, v, m, limits.max_batch, "ws", msg.ticks);
      })) {
    return *std::move(f);
  }
  if (!keys.seen(2)) return r.missing("prices");
  return msg;
}

client_body decode_resume(wire_reader& r, od::object& root) {
  resume_msg msg;
  key_set<3> keys({"op", "id", "from_seq"});
  if (fault f = for_each_op_field(r, root, keys, [&](std::size_t, std::string_view, od::value& v) {
        return r.read_uint(v, 0, std::numeric_limits<std::uint64_t>::max(), msg.from_seq);
      })) {
    return *std::move(f);
  }
  if (!keys.seen(2)) return r.missing("from_seq");
  return msg;
}

client_body decode_ping(wire_reader& r, od::object& root) {
  key_set<2> keys({"op", "id"});
  if (fault f = for_each_op_field(
          r, root, keys,
          [&](std::size_t, std::string_view, od::value&) -> fault { return std::nullopt; })) {
    return *std::move(f);
  }
  return ping_msg{};
}

// The single pass (issue 7, P4: decoding a price frame at most 2x a bare simdjson parse).
// It takes only frames that open with `{"op": "price"` or `{"op": "prices"` and reads
// every value as the reference path would, but never explains a refusal: anything the
// reference would refuse, or that it does not expect (an escaped key, a key out of
// place, a repeat), makes it give up, and the caller starts over on the reference path,
// so that the error and its echoed id stay what they were. Keys are matched on their
// raw bytes, no path is kept for messages, and nothing is allocated but the ticks (and an
// id or source too long for std::string's inline buffer).

// The op of a frame that opens with {"op":"price" or {"op":"prices" (JSON whitespace
// between the tokens, nothing escaped); nullopt for any other frame.
std::optional<op_kind> single_pass_op(std::string_view frame) {
  constexpr std::string_view compact = R"({"op":"price)";
  if (frame.starts_with(compact) && frame.size() > compact.size() + 1) {
    const std::string_view rest = frame.substr(compact.size(), 2);
    if (rest[0] == '"') return op_kind::price;
    if (rest == "s\"") return op_kind::prices;
  }
  std::size_t i = 0;
  const auto skip_space = [&] {
    while (i < frame.size() && detail::json_space(frame[i])) ++i;
  };
  const auto token = [&](std::string_view t) {
    skip_space();
    if (frame.substr(i, t.size()) != t) return false;
    i += t.size();
    return true;
  };
  if (!token("{") || !token("\"op\"") || !token(":")) return std::nullopt;
  if (token("\"price\"")) return op_kind::price;
  if (token("\"prices\"")) return op_kind::prices;
  return std::nullopt;
}

// Whether a key's raw text (after its opening quote, as simdjson gives it) is `name`
// unescaped. `name` holds no quote or backslash, so the loop stops at the key's closing
// quote at the latest and never reads past it.
bool raw_key_is(const char* key, std::string_view name) {
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (key[i] != name[i]) return false;
  }
  return key[name.size()] == '"';
}

// One field of a tick (asset, price, source, ts), read as tick_reader::field reads it;
// false when that would refuse it, or the key is another or repeated. `seen` holds a bit
// per key, in tick_reader::names' order. Inlined, so that `v` does not escape (see
// decode_single_pass).
[[gnu::always_inline]] inline bool single_pass_tick_field(const char* key, od::value& v,
                                                          const market& m, price_tick& t,
                                                          unsigned& seen) {
  const auto first_time = [&](unsigned bit) {
    return (std::exchange(seen, seen | bit) & bit) == 0;
  };
  std::string_view s;
  switch (key[0]) {
    case 'a': {
      if (!raw_key_is(key, "asset") || !first_time(1) || v.get_string().get(s)) return false;
      const auto a = m.find_asset(s);
      if (!a) return false;
      t.asset = *a;
      return true;
    }
    case 'p':
      // A get_double that succeeds read a number (the token starts with '-' or a digit),
      // so this is read_price's test: finite and > 0.
      return raw_key_is(key, "price") && first_time(2) &&
             v.get_double().get(t.price) == simdjson::SUCCESS && std::isfinite(t.price) &&
             t.price > 0.0;
    case 's':
      if (!raw_key_is(key, "source") || !first_time(4) || v.get_string().get(s) || s.empty() ||
          s.size() > detail::tick_reader::max_source_bytes) {
        return false;
      }
      t.source.append(s);  // empty: append is cheaper than assign (no aliasing check)
      return true;
    case 't':
      return raw_key_is(key, "ts") && first_time(8) &&
             v.get_double().get(t.ts) == simdjson::SUCCESS && std::isfinite(t.ts) && t.ts >= 0.0 &&
             t.ts <= detail::tick_reader::max_ts;
    default:
      return false;
  }
}

// The id's canonical text when it is one that read_scalar_json would give back as
// written: an integer of up to 18 digits (so within int64, printed as is) other than -0,
// or a string with no escape or control byte (re-encoded as is). False otherwise, the
// value unread. `out` is empty. Inlined, so that `v` does not escape.
[[gnu::always_inline]] inline bool single_pass_plain_id(od::value& v, std::string& out) {
  const std::string_view raw = detail::trimmed_token(v);
  if (raw.empty()) return false;
  if (raw[0] == '"') {
    if (raw.size() < 2 || raw.back() != '"') return false;
    for (std::size_t i = 1; i + 1 < raw.size(); ++i) {
      const auto c = static_cast<unsigned char>(raw[i]);
      if (c < 0x20 || c == '\\' || c == '"') return false;
    }
  } else {
    const std::string_view digits = raw[0] == '-' ? raw.substr(1) : raw;
    constexpr std::size_t max_digits = 18;
    if (digits.empty() || digits.size() > max_digits || (digits[0] == '0' && raw.size() > 1)) {
      return false;
    }
    for (const char c : digits) {
      if (c < '0' || c > '9') return false;
    }
  }
  out.append(raw);
  return true;
}

// After a tick's last field: asset and price are required, source defaults to "ws".
bool single_pass_tick_done(price_tick& t, unsigned seen) {
  if ((seen & 3) != 3) return false;
  if ((seen & 4) == 0) t.source.append("ws");
  return true;
}

// A `prices` array: 1..max_batch tick objects. `v` is a copy (simdjson's values are
// handles): see decode_single_pass.
bool single_pass_ticks(od::value v, const market& m, std::size_t max_batch,
                       std::vector<price_tick>& out) {
  od::array arr;
  if (v.get_array().get(arr)) return false;
  for (auto element : arr) {
    od::value x;
    od::object obj;
    if (std::move(element).get(x) || out.size() >= max_batch || x.get_object().get(obj)) {
      return false;
    }
    price_tick& t = out.emplace_back();
    unsigned seen = 0;
    for (auto result : obj) {
      od::field f;
      if (std::move(result).get(f) ||
          !single_pass_tick_field(f.key().raw(), f.value(), m, t, seen)) {
        return false;
      }
    }
    if (!single_pass_tick_done(t, seen)) return false;
  }
  return !out.empty();
}

// The single pass on a started reader for a frame single_pass_op() gave `op`; false
// when it gives up (`out` is then left half-written). The field and value of the loop
// never have their address taken by a call that is not inlined (values go out as
// copies): once they escape, GCC keeps simdjson's iterator state in memory through the
// whole loop, which measured 2x slower here (BM_decode_price, 230 vs 125 ns).
bool decode_single_pass(wire_reader& r, op_kind op, const market& m, const decode_limits& limits,
                        client_message& out) {
  od::object root;
  if (!r.try_root_object(root)) return false;
  std::vector<price_tick>& ticks = out.body.emplace<prices_msg>().ticks;
  price_tick* tick = op == op_kind::price ? &ticks.emplace_back() : nullptr;
  unsigned tick_seen = 0;
  bool first = true;
  bool id_seen = false;
  bool prices_seen = false;
  for (auto result : root) {
    od::field f;
    if (std::move(result).get(f)) return false;
    const char* key = f.key().raw();
    od::value& v = f.value();
    if (first) {  // `op`, as single_pass_op() saw it
      first = false;
      std::string_view s;
      if (!raw_key_is(key, "op") || v.get_string().get(s) || parse_op(s) != op) return false;
      continue;
    }
    if (key[0] == 'i') {
      if (!raw_key_is(key, "id") || std::exchange(id_seen, true)) return false;
      if (!single_pass_plain_id(v, out.id)) {
        od::value copy = v;
        if (r.read_scalar_json(copy, out.id)) return false;
      }
      continue;
    }
    if (tick != nullptr) {
      if (!single_pass_tick_field(key, v, m, *tick, tick_seen)) return false;
    } else if (!raw_key_is(key, "prices") || std::exchange(prices_seen, true) ||
               !single_pass_ticks(od::value(v), m, limits.max_batch, ticks)) {
      return false;
    }
  }
  if (first || r.finish()) return false;
  return tick != nullptr ? single_pass_tick_done(*tick, tick_seen) : prices_seen;
}

// The reference path, on a started reader: a first pass finds `id` (so that any refusal
// can echo it) and `op` (which decides what the other keys may be), wherever they are in
// the object, skipping the other values; the second decodes the op's fields.
client_message decode_two_pass(wire_reader& r, const market& m, const decode_limits& limits) {
  client_message out;
  od::object root;
  if (fault f = r.root_object(root)) {
    out.body = *std::move(f);
    return out;
  }
  bool id_seen = false;
  bool op_seen = false;
  fault id_fault;
  fault op_fault;
  std::optional<op_kind> op;
  if (fault f = r.for_each_field(root, [&](std::string_view k, od::value& v) -> fault {
        if (k == "id" && !id_seen) {
          id_seen = true;
          if (fault g = r.read_scalar_json(v, out.id)) {
            out.id.clear();
            if (g->code == error_code::bad_json) return g;
            id_fault = std::move(g);
          }
        } else if (k == "op" && !op_seen) {
          op_seen = true;
          std::string_view s;
          if (fault g = r.read_string(v, s)) {
            if (g->code == error_code::bad_json) return g;
            op_fault = std::move(g);
          } else if (!(op = parse_op(s))) {
            op_fault = r.error(error_code::unknown_op,
                               detail::cat("unknown op ", detail::wire_quoted(s),
                                           " (expected subscribe, unsubscribe, price, prices, "
                                           "resume or ping)"));
          }
        }
        return std::nullopt;
      })) {
    out.body = *std::move(f);
    return out;
  }
  if (fault f = r.finish()) {
    out.body = *std::move(f);
    return out;
  }
  if (id_fault) {
    out.body = *std::move(id_fault);
    return out;
  }
  if (!op_seen) {
    out.body = r.missing("op");
    return out;
  }
  if (op_fault) {
    out.body = *std::move(op_fault);
    return out;
  }

  r.rewind();
  if (fault f = r.root_object(root)) {
    out.body = *std::move(f);
    return out;
  }
  switch (*op) {
    case op_kind::subscribe:
      out.body = decode_subscribe(r, root, m, limits);
      break;
    case op_kind::unsubscribe:
      out.body = decode_unsubscribe(r, root);
      break;
    case op_kind::price:
      out.body = decode_price(r, root, m);
      break;
    case op_kind::prices:
      out.body = decode_prices(r, root, m, limits);
      break;
    case op_kind::resume:
      out.body = decode_resume(r, root);
      break;
    case op_kind::ping:
      out.body = decode_ping(r, root);
      break;
  }
  return out;
}

template <class T>
bool contains_sorted(const std::vector<T>& v, const T& x) {
  return std::binary_search(v.begin(), v.end(), x);
}

void write_id(json_writer& w, std::string_view id) {
  w.key("id");
  if (id.empty()) {
    w.null();
  } else {
    w.raw(id);
  }
}

void write_envelope(json_writer& w, std::string_view type, const event& e) {
  w.field("type", type)
      .field("seq", e.seq)
      .field("ingest_ns", e.ingest_ns)
      .field("emit_ns", e.emit_ns);
}

std::string_view symbol_of(const market& m, asset_id a) {
  return a.valid() && a.index() < m.asset_count() ? std::string_view(m.asset(a).symbol)
                                                  : std::string_view();
}

std::string_view name_of(const market& m, protocol_id p) {
  return p.valid() && p.index() < m.protocol_count() ? std::string_view(m.get_protocol(p).name)
                                                     : std::string_view();
}

void write_alert(json_writer& w, const event& e, const alert_event& a, const market& m) {
  w.begin_object();
  write_envelope(w, "alert", e);
  w.field("position", a.position);
  w.key("owner");
  if (a.owner.empty()) {
    w.null();
  } else {
    w.value(a.owner);
  }
  w.field("protocol", name_of(m, a.protocol))
      .field("from", to_string(a.from))
      .field("to", to_string(a.to))
      .field("hf_before", a.hf_before)
      .field("hf_after", a.hf_after);
  w.key("cause");
  if (a.cause.valid() && a.cause.index() < m.asset_count()) {
    w.value(symbol_of(m, a.cause));
  } else {
    w.null();
  }
  w.field("price", a.price);
  w.key("assets").begin_array();
  for (const asset_id x : a.assets) w.value(symbol_of(m, x));
  w.end_array();
  w.end_object();
}

void write_owner(json_writer& w, const std::string& owner) {
  w.key("owner");
  if (owner.empty()) {
    w.null();
  } else {
    w.value(owner);
  }
}

void write_status(json_writer& w, const event& e, const status_event& s, const market& m) {
  w.begin_object();
  write_envelope(w, to_string(s.kind), e);
  w.field("position", s.position);
  write_owner(w, s.owner);
  const realizable_cell& v = s.value;
  w.field("protocol", name_of(m, s.protocol))
      .field("state", s.entered ? "entered" : "cleared")
      .field("hf", s.hf)
      .field("hf_market", v.hf_market)
      .field("hf_real", v.hf_real)
      .field("collateral_usd", v.collateral_market_usd)
      .field("collateral_real_usd", v.collateral_real_usd)
      .field("debt_usd", v.debt_usd);
  if (s.kind == status_kind::pending) {
    w.field("seize_usd", v.seize_usd);
  } else {
    w.field("shortfall_usd", v.debt_usd - v.collateral_real_usd);
  }
  w.key("assets").begin_array();
  for (const asset_id x : s.assets) w.value(symbol_of(m, x));
  w.end_array();
  w.end_object();
}

void write_oracle(json_writer& w, const event& e, const oracle_notice& o, const market& m) {
  w.begin_object();
  write_envelope(w, "oracle", e);
  w.field("kind", o.kind).field("asset", symbol_of(m, o.asset));
  w.key("protocol");
  if (o.protocol.valid() && o.protocol.index() < m.protocol_count()) {
    w.value(name_of(m, o.protocol));
  } else {
    w.null();
  }
  w.key("source");
  if (o.source.empty()) {
    w.null();
  } else {
    w.value(o.source);
  }
  w.field("reason", o.reason).field("price", o.price).field("reference", o.reference);
  w.field("ts", o.ts);
  w.end_object();
}

void write_price(json_writer& w, const event& e, const price_event& p, const market& m) {
  w.begin_object();
  write_envelope(w, "price", e);
  w.field("asset", symbol_of(m, p.asset)).field("price", p.price).field("source", p.source);
  w.key("ts");
  if (p.ts > 0.0) {
    w.value(p.ts);
  } else {
    w.null();
  }
  w.end_object();
}

}  // namespace

std::string_view to_string(error_code c) {
  constexpr std::array<std::string_view, 16> names{
      "bad_json",           "bad_request",        "unknown_op", "unknown_asset",
      "unknown_protocol",   "unknown_position",   "bad_price",  "too_large",
      "binary_frame",       "unauthorized",       "forbidden",  "not_found",
      "method_not_allowed", "resume_unavailable", "overloaded", "internal"};
  const auto i = static_cast<std::size_t>(c);
  return i < names.size() ? names[i] : "internal";
}

unsigned http_status(error_code c) {
  switch (c) {
    case error_code::unauthorized:
      return 401;
    case error_code::forbidden:
      return 403;
    case error_code::not_found:
    case error_code::unknown_position:
      return 404;
    case error_code::method_not_allowed:
      return 405;
    case error_code::too_large:
      return 413;
    case error_code::overloaded:
      return 503;
    case error_code::internal:
      return 500;
    default:
      return 400;
  }
}

bool subscription::matches(const event_body& e) const {
  if (const auto* a = std::get_if<alert_event>(&e)) {
    if ((channels & ch_alerts) == 0) return false;
    if (std::max(a->from, a->to) < min_band) return false;
    if (!protocols.empty() && !contains_sorted(protocols, a->protocol)) return false;
    if (!assets.empty() && std::none_of(a->assets.begin(), a->assets.end(),
                                        [&](asset_id x) { return contains_sorted(assets, x); })) {
      return false;
    }
    if (!positions.empty() && !contains_sorted(positions, a->position)) return false;
    if (!owners.empty() && !contains_sorted(owners, a->owner)) return false;
    return true;
  }
  if (const auto* p = std::get_if<price_event>(&e)) {
    if ((channels & ch_prices) == 0) return false;
    return assets.empty() || contains_sorted(assets, p->asset);
  }
  if (const auto* s = std::get_if<status_event>(&e)) {
    const std::uint8_t ch = s->kind == status_kind::pending ? ch_pending : ch_insolvency;
    if ((channels & ch) == 0) return false;
    if (!protocols.empty() && !contains_sorted(protocols, s->protocol)) return false;
    if (!assets.empty() && std::none_of(s->assets.begin(), s->assets.end(),
                                        [&](asset_id x) { return contains_sorted(assets, x); })) {
      return false;
    }
    if (!positions.empty() && !contains_sorted(positions, s->position)) return false;
    if (!owners.empty() && !contains_sorted(owners, s->owner)) return false;
    return true;
  }
  if (const auto* o = std::get_if<oracle_notice>(&e)) {
    if ((channels & ch_oracle) == 0) return false;
    if (!assets.empty() && !contains_sorted(assets, o->asset)) return false;
    return protocols.empty() || !o->protocol.valid() || contains_sorted(protocols, o->protocol);
  }
  return (channels & ch_cascades) != 0;
}

client_message decode_client_message(std::string_view frame, const market& m,
                                     const decode_limits& limits) {
  client_message out;  // the one object returned, built in place
  wire_reader r(frame);
  if (fault f = r.start()) {
    out.body = *std::move(f);
    return out;
  }
  if (const auto op = single_pass_op(frame)) {
    if (decode_single_pass(r, *op, m, limits, out)) return out;
    // Start over: the single pass may have left simdjson's iterator in its error state.
    if (fault f = r.start()) {
      out = {{}, *std::move(f)};
      return out;
    }
  }
  out = decode_two_pass(r, m, limits);
  return out;
}

namespace detail {

client_message decode_client_message_reference(std::string_view frame, const market& m,
                                               const decode_limits& limits) {
  wire_reader r(frame);
  if (fault f = r.start()) return {{}, *std::move(f)};
  return decode_two_pass(r, m, limits);
}

std::optional<client_message> decode_client_message_single_pass(std::string_view frame,
                                                                const market& m,
                                                                const decode_limits& limits) {
  const auto op = single_pass_op(frame);
  wire_reader r(frame);
  client_message out;
  if (!op || r.start() || !decode_single_pass(r, *op, m, limits, out)) return std::nullopt;
  return out;
}

}  // namespace detail

std::string encode_hello(std::uint64_t seq, std::uint64_t oldest_seq) {
  json_writer w;
  w.begin_object()
      .field("type", "hello")
      .field("seq", seq)
      .field("oldest_seq", oldest_seq)
      .field("server", "cascade")
      .end_object();
  return w.take();
}

std::string encode_ack(std::string_view id, std::uint64_t seq) {
  json_writer w;
  w.begin_object().field("type", "ack");
  write_id(w, id);
  w.field("seq", seq).end_object();
  return w.take();
}

std::string encode_pong(std::string_view id) {
  json_writer w;
  w.begin_object().field("type", "pong");
  write_id(w, id);
  w.end_object();
  return w.take();
}

std::string encode_error(std::string_view id, const wire_error& e) {
  json_writer w;
  w.begin_object().field("type", "error");
  write_id(w, id);
  w.field("code", to_string(e.code)).field("message", e.message).end_object();
  return w.take();
}

std::string encode_gap(std::uint64_t from, std::uint64_t to) {
  json_writer w;
  w.begin_object().field("type", "gap").field("from", from).field("to", to).end_object();
  return w.take();
}

void write_cascade_fields(json_writer& w, const cascade_event& c, const market& m) {
  w.field("rounds", c.rounds)
      .field("liquidatable_now", c.liquidatable_now)
      .field("positions_liquidated", c.positions_liquidated)
      .field("repaid_usd", c.repaid_usd)
      .field("seized_usd", c.seized_usd);
  const std::size_t protocols = std::min(m.protocol_count(), c.bad_debt_usd.size());
  w.key("bad_debt_usd").begin_object();
  for (std::size_t i = 0; i < protocols; ++i) {
    w.field(m.protocols()[i].name, c.bad_debt_usd[i]);
  }
  w.end_object();
  w.key("liquidated").begin_object();
  for (std::size_t i = 0; i < std::min(m.protocol_count(), c.liquidated.size()); ++i) {
    w.field(m.protocols()[i].name, c.liquidated[i]);
  }
  w.end_object();
  w.key("sold").begin_object();
  for (const auto& [a, units] : c.sold) {
    if (a.valid() && a.index() < m.asset_count()) w.field(m.asset(a).symbol, units);
  }
  w.end_object();
  w.key("start_prices").begin_object();
  for (std::size_t i = 0; i < std::min(m.asset_count(), c.start_prices.size()); ++i) {
    w.field(m.assets()[i].symbol, c.start_prices[i]);
  }
  w.end_object();
  w.key("final_prices").begin_object();
  for (std::size_t i = 0; i < std::min(m.asset_count(), c.final_prices.size()); ++i) {
    w.field(m.assets()[i].symbol, c.final_prices[i]);
  }
  w.end_object();
  // The relative drop the cascade caused, for the assets whose price it moved.
  w.key("amplification").begin_object();
  const std::size_t both =
      std::min({m.asset_count(), c.start_prices.size(), c.final_prices.size()});
  for (std::size_t i = 0; i < both; ++i) {
    const double start = c.start_prices[i];
    const double end = c.final_prices[i];
    if (start > 0.0 && end != start) w.field(m.assets()[i].symbol, -(end / start - 1.0));
  }
  w.end_object();
  w.key("price_path").begin_object();
  for (const auto& [a, path] : c.price_path) {
    if (!a.valid() || a.index() >= m.asset_count()) continue;
    w.key(m.asset(a).symbol).begin_array();
    for (const double p : path) w.value(p);
    w.end_array();
  }
  w.end_object();
  w.field("duration_ms", c.duration_ms);
}

std::string encode_event(const event& e, const market& m) {
  json_writer w;
  if (const auto* a = std::get_if<alert_event>(&e.body)) {
    write_alert(w, e, *a, m);
  } else if (const auto* p = std::get_if<price_event>(&e.body)) {
    write_price(w, e, *p, m);
  } else if (const auto* s = std::get_if<status_event>(&e.body)) {
    write_status(w, e, *s, m);
  } else if (const auto* o = std::get_if<oracle_notice>(&e.body)) {
    write_oracle(w, e, *o, m);
  } else {
    w.begin_object();
    write_envelope(w, "cascade", e);
    write_cascade_fields(w, std::get<cascade_event>(e.body), m);
    w.end_object();
  }
  return w.take();
}

}  // namespace cascade::proto
