#include "proto/rest_codec.hpp"

#include <absl/container/flat_hash_map.h>
#include <simdjson.h>

#include <array>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

#include "proto/input_error.hpp"
#include "proto/json_writer.hpp"
#include "proto/scenario.hpp"
#include "proto/wire_reader.hpp"

namespace cascade::proto {

namespace {

using detail::fault;
using detail::key_set;
using detail::wire_reader;
namespace od = simdjson::ondemand;

// Starts a body: parsed, and its root an object.
fault open_body(wire_reader& r, od::object& root) {
  if (fault f = r.start()) return f;
  return r.root_object(root);
}

fault read_leg(wire_reader& r, od::value& v, const market& m, leg& out) {
  od::object obj;
  if (fault f = r.read_object(v, obj)) return f;
  enum : std::size_t { asset, collateral, debt, known };
  key_set<known> keys({"asset", "collateral", "debt"});
  if (fault f = r.for_each_field(obj, [&](std::string_view k, od::value& x) -> fault {
        const std::size_t i = keys.find(k);
        if (i == known) return r.unknown_key(k, keys.names());
        if (!keys.mark(i)) return r.repeated(k);
        switch (i) {
          case asset:
            return r.read_asset(x, m, out.asset);
          case collateral:
            return r.read_amount(x, out.collateral);
          default:
            return r.read_amount(x, out.debt);
        }
      })) {
    return f;
  }
  if (!keys.seen(asset)) return r.missing("asset");
  return std::nullopt;
}

fault read_position(wire_reader& r, od::value& v, const market& m, position_input& out) {
  od::object obj;
  if (fault f = r.read_object(v, obj)) return f;
  enum : std::size_t { id, protocol_key, owner, legs, known };
  key_set<known> keys({"id", "protocol", "owner", "legs"});
  if (fault f = r.for_each_field(obj, [&](std::string_view k, od::value& x) -> fault {
        const std::size_t i = keys.find(k);
        if (i == known) return r.unknown_key(k, keys.names());
        if (!keys.mark(i)) return r.repeated(k);
        switch (i) {
          case id: {
            std::string_view s;
            if (fault g = r.read_string(x, s)) return g;
            if (s.empty()) return r.error(error_code::bad_request, "the id is empty");
            out.id.assign(s);
            return std::nullopt;
          }
          case protocol_key:
            return r.read_protocol(x, m, out.protocol);
          case owner: {
            std::string_view s;
            if (fault g = r.read_string(x, s)) return g;
            out.owner.assign(s);
            return std::nullopt;
          }
          default: {
            od::array arr;
            if (fault g = r.read_array(x, arr)) return g;
            return r.for_each_element(arr, [&](std::size_t, od::value& y) {
              return read_leg(r, y, m, out.legs.emplace_back());
            });
          }
        }
      })) {
    return f;
  }
  for (const std::size_t required : {id, protocol_key, legs}) {
    if (!keys.seen(required)) return r.missing(keys.name(required));
  }
  return std::nullopt;
}

// A stress body's `assets` or `protocols`: objects whose `field` names a live asset or
// protocol; their other fields are walked (to refuse broken JSON) but not used.
fault read_named_entries(wire_reader& r, od::value& v, const market& m, std::string_view field,
                         bool assets) {
  od::array arr;
  if (fault f = r.read_array(v, arr)) return f;
  return r.for_each_element(arr, [&](std::size_t, od::value& x) -> fault {
    od::object obj;
    if (fault f = r.read_object(x, obj)) return f;
    bool seen = false;
    if (fault f = r.for_each_field(obj, [&](std::string_view k, od::value& y) -> fault {
          if (k != field) return r.check_value(y);
          if (std::exchange(seen, true)) return r.repeated(k);
          if (assets) {
            asset_id a;
            return r.read_asset(y, m, a);
          }
          protocol_id p;
          return r.read_protocol(y, m, p);
        })) {
      return f;
    }
    if (!seen) return r.missing(field);
    return std::nullopt;
  });
}

bool hex_digit(char c, int& out) {
  if (c >= '0' && c <= '9') {
    out = c - '0';
  } else if (c >= 'a' && c <= 'f') {
    out = c - 'a' + 10;
  } else if (c >= 'A' && c <= 'F') {
    out = c - 'A' + 10;
  } else {
    return false;
  }
  return true;
}

// Percent-decoding; '+' is a space in form-style query strings only. False on a bad
// escape.
bool percent_decode(std::string_view in, std::string& out, bool plus_is_space = true) {
  out.clear();
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '%') {
      int hi = 0;
      int lo = 0;
      if (i + 2 >= in.size() || !hex_digit(in[i + 1], hi) || !hex_digit(in[i + 2], lo)) {
        return false;
      }
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return true;
}

wire_error query_error(error_code c, std::string_view key, std::string_view reason) {
  return {c, detail::cat(key, ": ", reason)};
}

constexpr std::string_view base64url =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr unsigned char cursor_version = 1;

std::string encode_base64url(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (const char ch : bytes) {
    acc = (acc << 8) | static_cast<unsigned char>(ch);
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(base64url[(acc >> bits) & 0x3F]);
    }
  }
  if (bits > 0) out.push_back(base64url[(acc << (6 - bits)) & 0x3F]);
  return out;
}

bool decode_base64url(std::string_view text, std::string& out) {
  out.clear();
  std::uint32_t acc = 0;
  int bits = 0;
  for (const char ch : text) {
    const std::size_t v = base64url.find(ch);
    if (v == std::string_view::npos) return false;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  // Leftover bits must be padding zeros, and a group cannot end after one character.
  return bits < 6 && (acc & ((1u << bits) - 1)) == 0;
}

// A cursor: version, the row's hf as the big-endian bits of a double, then its id.
std::string make_cursor(double hf, std::string_view id) {
  std::string raw(1, static_cast<char>(cursor_version));
  const auto bits = std::bit_cast<std::uint64_t>(hf);
  for (int shift = 56; shift >= 0; shift -= 8) {
    raw.push_back(static_cast<char>((bits >> shift) & 0xFF));
  }
  raw.append(id);
  return encode_base64url(raw);
}

bool read_cursor(std::string_view text, std::pair<double, std::string>& out) {
  std::string raw;
  if (!decode_base64url(text, raw) || raw.size() < 10 ||
      static_cast<unsigned char>(raw[0]) != cursor_version) {
    return false;
  }
  std::uint64_t bits = 0;
  for (std::size_t i = 1; i <= 8; ++i) bits = (bits << 8) | static_cast<unsigned char>(raw[i]);
  const double hf = std::bit_cast<double>(bits);
  if (std::isnan(hf) || hf < 0.0) return false;
  std::string id = raw.substr(9);
  if (!simdjson::validate_utf8(id.data(), id.size())) return false;
  out = {hf, std::move(id)};
  return true;
}

void write_band_totals(json_writer& w, const band_totals& t) {
  w.begin_object()
      .field("positions", t.positions)
      .field("collateral_usd", t.collateral_usd)
      .field("debt_usd", t.debt_usd)
      .end_object();
}

std::string_view band_name(const book& b, row_t r) {
  return b.live(r) ? to_string(b.band_at(r)) : std::string_view("removed");
}

void write_owner(json_writer& w, const std::string& owner) {
  w.key("owner");
  if (owner.empty()) {
    w.null();
  } else {
    w.value(owner);
  }
}

}  // namespace

decoded<std::vector<position_input>> decode_positions_body(std::string_view body, const market& m,
                                                           std::size_t max_batch) {
  wire_reader r(body);
  od::object root;
  if (fault f = open_body(r, root)) return *std::move(f);
  std::vector<position_input> out;
  key_set<1> keys({"positions"});
  absl::flat_hash_map<std::string, std::size_t> index;
  if (fault f = r.for_each_field(root, [&](std::string_view k, od::value& v) -> fault {
        if (keys.find(k) != 0) return r.unknown_key(k, keys.names());
        if (!keys.mark(0)) return r.repeated(k);
        od::array arr;
        if (fault g = r.read_array(v, arr)) return g;
        if (fault g = r.for_each_element(arr, [&](std::size_t i, od::value& x) -> fault {
              if (i >= max_batch) {
                return wire_error{error_code::too_large,
                                  detail::cat("positions: more than ", max_batch,
                                              " positions in one batch (the server's max_batch)")};
              }
              position_input& p = out.emplace_back();
              if (fault h = read_position(r, x, m, p)) return h;
              const auto [it, fresh] = index.try_emplace(p.id, i);
              if (!fresh) {
                return wire_error{
                    error_code::bad_request,
                    detail::cat("positions[", i, "].id: duplicate position id ",
                                detail::wire_quoted(p.id), " (also positions[", it->second, "])")};
              }
              return std::nullopt;
            })) {
          return g;
        }
        if (out.empty())
          return r.error(error_code::bad_request, "empty: give at least one position");
        return std::nullopt;
      })) {
    return *std::move(f);
  }
  if (fault f = r.finish()) return *std::move(f);
  if (!keys.seen(0)) return r.missing("positions");
  return out;
}

decoded<std::vector<price_tick>> decode_prices_body(std::string_view body, const market& m,
                                                    std::size_t max_batch) {
  wire_reader r(body);
  od::object root;
  if (fault f = open_body(r, root)) return *std::move(f);
  std::vector<price_tick> out;
  key_set<1> keys({"prices"});
  if (fault f = r.for_each_field(root, [&](std::string_view k, od::value& v) -> fault {
        if (keys.find(k) != 0) return r.unknown_key(k, keys.names());
        if (!keys.mark(0)) return r.repeated(k);
        return detail::read_ticks(r, v, m, max_batch, "rest", out);
      })) {
    return *std::move(f);
  }
  if (fault f = r.finish()) return *std::move(f);
  if (!keys.seen(0)) return r.missing("prices");
  return out;
}

decoded<live_stress> decode_live_stress(std::string_view body, const market& m) {
  wire_reader r(body);
  od::object root;
  if (fault f = open_body(r, root)) return *std::move(f);
  live_stress out;
  enum : std::size_t { shocks, max_rounds, assets, protocols, known };
  key_set<known> keys({"shocks", "max_rounds", "assets", "protocols"});
  if (fault f = r.for_each_field(root, [&](std::string_view k, od::value& v) -> fault {
        const std::size_t i = keys.find(k);
        if (i == known) return r.unknown_key(k, keys.names());
        if (!keys.mark(i)) return r.repeated(k);
        switch (i) {
          case shocks: {
            od::object obj;
            if (fault g = r.read_object(v, obj)) return g;
            return r.for_each_field(obj, [&](std::string_view symbol, od::value& x) -> fault {
              const auto a = m.find_asset(symbol);
              if (!a) {
                return r.error(error_code::unknown_asset,
                               detail::cat("unknown asset ", detail::wire_quoted(symbol)));
              }
              double fraction = 0.0;
              if (fault g = r.read_number(x, fraction)) return g;
              if (!(fraction > -1.0)) {
                return r.error(error_code::bad_request,
                               detail::cat("shock ", fraction,
                                           " must be > -1 (a price cannot fall by 100% or more)"));
              }
              for (const shock& s : out.shocks) {
                if (s.asset == *a)
                  return r.error(error_code::bad_request, "the asset is shocked twice");
              }
              out.shocks.push_back({*a, fraction});
              return std::nullopt;
            });
          }
          case max_rounds: {
            std::uint64_t n = 0;
            if (fault g = r.read_uint(v, 1, max_rounds_limit, n)) return g;
            out.max_rounds = static_cast<std::uint32_t>(n);
            return std::nullopt;
          }
          case assets:
            return read_named_entries(r, v, m, "symbol", true);
          default:
            return read_named_entries(r, v, m, "name", false);
        }
      })) {
    return *std::move(f);
  }
  if (fault f = r.finish()) return *std::move(f);
  return out;
}

bool body_has_positions(std::string_view body) {
  wire_reader r(body);
  od::object root;
  if (open_body(r, root)) return false;
  for (auto result : root) {
    od::field f;
    if (std::move(result).get(f) != simdjson::SUCCESS) return false;
    std::string_view k;
    if (f.unescaped_key().get(k) != simdjson::SUCCESS) return false;
    if (k == "positions") return true;
  }
  return false;
}

decoded<query_params> decode_query(std::string_view query,
                                   std::span<const std::string_view> known) {
  if (query.starts_with('?')) query.remove_prefix(1);
  query_params out;
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view part = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (part.empty()) continue;
    const std::size_t eq = part.find('=');
    const std::string_view raw_key = part.substr(0, eq);
    const std::string_view raw_value =
        eq == std::string_view::npos ? std::string_view() : part.substr(eq + 1);
    std::string k;
    std::string v;
    if (!percent_decode(raw_key, k) || !simdjson::validate_utf8(k.data(), k.size())) {
      return wire_error{error_code::bad_request,
                        detail::cat("query: the parameter name ", detail::wire_quoted(raw_key),
                                    " has a bad %-escape or is not UTF-8")};
    }
    bool ok = false;
    for (const std::string_view name : known) ok = ok || name == k;
    if (!ok) {
      std::string expected;
      for (const std::string_view name : known) {
        detail::append(&expected, expected.empty() ? "" : ", ", name);
      }
      return wire_error{
          error_code::bad_request,
          detail::cat("query: unknown parameter ", detail::wire_quoted(k),
                      known.empty() ? std::string(" (this route takes none)")
                                    : detail::cat(" (expected one of: ", expected, ")"))};
    }
    if (!percent_decode(raw_value, v)) {
      return query_error(error_code::bad_request, k,
                         detail::cat("bad %-escape in ", detail::wire_quoted(raw_value)));
    }
    if (!simdjson::validate_utf8(v.data(), v.size())) {
      return query_error(error_code::bad_request, k, "the value is not valid UTF-8");
    }
    for (const auto& [seen, ignored] : out) {
      if (seen == k) {
        return query_error(error_code::bad_request, k, "the parameter is given twice");
      }
    }
    out.emplace_back(std::move(k), std::move(v));
  }
  return out;
}

decoded<at_risk_query> decode_at_risk_query(std::string_view query, const market& m) {
  static constexpr std::array<std::string_view, 5> known{"max_hf", "protocol", "asset", "limit",
                                                         "cursor"};
  auto params = decode_query(query, known);
  if (auto* e = std::get_if<wire_error>(&params)) return std::move(*e);
  at_risk_query out;
  for (const auto& [k, v] : std::get<query_params>(params)) {
    if (k == "max_hf") {
      double x = 0.0;
      const auto res = std::from_chars(v.data(), v.data() + v.size(), x);
      if (v.empty() || res.ec != std::errc() || res.ptr != v.data() + v.size() ||
          !is_positive_finite(x)) {
        return query_error(
            error_code::bad_request, k,
            detail::cat("must be a finite number > 0, got ", detail::wire_quoted(v)));
      }
      out.max_hf = x;
    } else if (k == "protocol") {
      const auto p = m.find_protocol(v);
      if (!p) {
        return query_error(error_code::unknown_protocol, k,
                           detail::cat("unknown protocol ", detail::wire_quoted(v)));
      }
      out.protocol = *p;
    } else if (k == "asset") {
      const auto a = m.find_asset(v);
      if (!a) {
        return query_error(error_code::unknown_asset, k,
                           detail::cat("unknown asset ", detail::wire_quoted(v)));
      }
      out.asset = *a;
    } else if (k == "limit") {
      std::size_t n = 0;
      const auto res = std::from_chars(v.data(), v.data() + v.size(), n);
      if (v.empty() || res.ec != std::errc() || res.ptr != v.data() + v.size() || n < 1 ||
          n > 10'000) {
        return query_error(
            error_code::bad_request, k,
            detail::cat("must be an integer in [1, 10000], got ", detail::wire_quoted(v)));
      }
      out.limit = n;
    } else {
      std::pair<double, std::string> after;
      if (!read_cursor(v, after)) {
        return query_error(error_code::bad_request, k,
                           "not a cursor this server wrote (pass next_cursor back unchanged)");
      }
      out.after = std::move(after);
    }
  }
  return out;
}

std::string encode_error_body(const wire_error& e) {
  json_writer w;
  w.begin_object().key("error").begin_object();
  w.field("code", to_string(e.code)).field("message", e.message);
  w.end_object().end_object();
  return w.take();
}

std::string encode_assets(const book& b) {
  const market& m = b.get_market();
  json_writer w;
  w.begin_object().key("assets").begin_array();
  for (std::size_t i = 0; i < m.asset_count(); ++i) {
    const asset_spec& a = m.assets()[i];
    w.begin_object()
        .field("symbol", a.symbol)
        .field("price", b.prices()[i])
        .field("reference_price", a.price)
        .field("depth_scale", b.depth_scale(asset_id::from_index(i)));
    w.key("oracle").begin_object();
    for (std::size_t p = 0; p < m.protocol_count(); ++p) {
      w.field(m.protocols()[p].name, b.oracle_prices(protocol_id::from_index(p))[i]);
    }
    w.end_object();
    w.key("pool");
    if (a.liquidity) {
      w.begin_object()
          .field("base", a.liquidity->base)
          .field("quote", a.liquidity->quote)
          .end_object();
    } else {
      w.null();
    }
    w.key("derived");
    if (a.derived) {
      w.begin_object().field("base", a.derived->base).end_object();
    } else {
      w.null();
    }
    w.end_object();
  }
  w.end_array().end_object();
  return w.take();
}

std::string encode_protocols(const market& m) {
  json_writer w;
  w.begin_object().key("protocols").begin_array();
  for (const protocol& p : m.protocols()) {
    w.begin_object()
        .field("name", p.name)
        .field("kind", to_string(p.kind))
        .field("close_factor", p.close_factor)
        .field("full_liquidation_hf", p.full_liquidation_hf);
    w.key("assets").begin_object();
    for (std::size_t i = 0; i < m.asset_count(); ++i) {
      const collateral_params* c = p.params(asset_id::from_index(i));
      if (c == nullptr) continue;
      w.key(m.assets()[i].symbol)
          .begin_object()
          .field("liquidation_threshold", c->liquidation_threshold)
          .field("liquidation_bonus", c->liquidation_bonus)
          .end_object();
    }
    w.end_object().end_object();
  }
  w.end_array().end_object();
  return w.take();
}

// hf_market, hf_real, collateral_real_usd and the two statuses (book.hpp).
void write_realizable(json_writer& w, const book& b, row_t r) {
  const realizable_cell& v = b.realizable_at(r);
  w.field("hf_market", v.hf_market)
      .field("hf_real", v.hf_real)
      .field("collateral_real_usd", v.collateral_real_usd)
      .field("pending_liquidation", b.pending_at(r))
      .field("insolvent", b.insolvent_at(r));
}

void write_hidden(json_writer& w, const hidden_totals& h) {
  w.begin_object()
      .field("pending", h.pending)
      .field("pending_debt_usd", h.pending_debt_usd)
      .field("pending_seize_usd", h.pending_seize_usd)
      .field("insolvent", h.insolvent)
      .field("insolvent_debt_usd", h.insolvent_debt_usd)
      .field("shortfall_usd", h.insolvent_shortfall_usd)
      .end_object();
}

std::string encode_position(const book& b, row_t r) {
  const market& m = b.get_market();
  const auto assets = b.leg_assets(r);
  const auto collateral = b.leg_collateral(r);
  const auto debt = b.leg_debt(r);
  double collateral_usd = 0.0;
  double debt_usd = 0.0;
  for (std::size_t i = 0; i < assets.size(); ++i) {
    const double price = b.prices()[assets[i].index()];
    collateral_usd += collateral[i] * price;
    debt_usd += debt[i] * price;
  }
  json_writer w;
  w.begin_object().field("id", b.id_at(r)).field("protocol", m.get_protocol(b.protocol_at(r)).name);
  write_owner(w, b.owner_at(r));
  w.field("hf", b.health_at(r))
      .field("band", band_name(b, r))
      .field("collateral_usd", collateral_usd)
      .field("debt_usd", debt_usd);
  if (b.options().realizable) write_realizable(w, b, r);
  w.key("legs").begin_array();
  for (std::size_t i = 0; i < assets.size(); ++i) {
    w.begin_object()
        .field("asset", m.asset(assets[i]).symbol)
        .field("collateral", collateral[i])
        .field("debt", debt[i])
        .end_object();
  }
  w.end_array().end_object();
  return w.take();
}

std::string encode_positions_page(const book& b, std::span<const row_t> rows, bool more) {
  const market& m = b.get_market();
  json_writer w;
  w.begin_object().key("positions").begin_array();
  for (const row_t r : rows) {
    w.begin_object()
        .field("id", b.id_at(r))
        .field("protocol", m.get_protocol(b.protocol_at(r)).name);
    write_owner(w, b.owner_at(r));
    w.field("hf", b.health_at(r)).field("band", band_name(b, r));
    if (b.options().realizable) write_realizable(w, b, r);
    w.end_object();
  }
  w.end_array();
  w.key("next_cursor");
  if (more && !rows.empty()) {
    w.value(make_cursor(b.health_at(rows.back()), b.id_at(rows.back())));
  } else {
    w.null();
  }
  w.end_object();
  return w.take();
}

std::string encode_summary(const book& b, std::uint64_t seq) {
  const market& m = b.get_market();
  const auto totals = b.totals();
  json_writer w;
  w.begin_object().field("positions", static_cast<std::uint64_t>(b.size())).field("seq", seq);
  w.key("prices").begin_object();
  for (std::size_t i = 0; i < m.asset_count(); ++i) w.field(m.assets()[i].symbol, b.prices()[i]);
  w.end_object();
  std::array<band_totals, band_count> all{};
  w.key("protocols").begin_object();
  for (std::size_t p = 0; p < m.protocol_count() && p < totals.size(); ++p) {
    w.key(m.protocols()[p].name).begin_object();
    for (std::size_t k = 0; k < band_count; ++k) {
      const band_totals& t = totals[p][k];
      all[k].positions += t.positions;
      all[k].collateral_usd += t.collateral_usd;
      all[k].debt_usd += t.debt_usd;
      w.key(to_string(static_cast<band>(k)));
      write_band_totals(w, t);
    }
    w.end_object();
  }
  w.end_object();
  w.key("totals").begin_object();
  for (std::size_t k = 0; k < band_count; ++k) {
    w.key(to_string(static_cast<band>(k)));
    write_band_totals(w, all[k]);
  }
  w.end_object();
  if (b.options().realizable) {
    w.key("hidden");
    write_hidden_fields(w, b);
  }
  w.end_object();
  return w.take();
}

void write_hidden_fields(json_writer& w, const book& b) {
  const market& m = b.get_market();
  w.begin_object().key("protocols").begin_object();
  hidden_totals all;
  for (std::size_t p = 0; p < m.protocol_count(); ++p) {
    const hidden_totals& h = b.hidden()[p];
    w.key(m.protocols()[p].name);
    write_hidden(w, h);
    all.pending += h.pending;
    all.pending_debt_usd += h.pending_debt_usd;
    all.pending_seize_usd += h.pending_seize_usd;
    all.insolvent += h.insolvent;
    all.insolvent_debt_usd += h.insolvent_debt_usd;
    all.insolvent_shortfall_usd += h.insolvent_shortfall_usd;
  }
  w.end_object().key("totals");
  write_hidden(w, all);
  w.key("queued_units").begin_object();
  for (std::size_t a = 0; a < m.asset_count(); ++a) {
    w.field(m.assets()[a].symbol, b.queued_units()[a]);
  }
  w.end_object();
  w.field("queued_positions", static_cast<std::uint64_t>(b.queued_positions()));
  w.end_object();
}

std::string encode_oracles(const book& b, const oracle_set& o, std::uint64_t seq) {
  const market& m = b.get_market();
  json_writer w;
  w.begin_object().field("seq", seq).field("now", o.now());
  w.key("assets").begin_array();
  for (std::size_t a = 0; a < m.asset_count(); ++a) {
    const auto id = asset_id::from_index(a);
    w.begin_object().field("symbol", m.asset(id).symbol).field("market_price", b.prices()[a]);
    w.key("sources").begin_array();
    for (const source_state& s : o.sources(id)) {
      w.begin_object()
          .field("name", s.name)
          .field("price", s.price)
          .field("ts", s.t)
          .field("valid", s.valid);
      w.key("reason");
      if (s.valid) {
        w.null();
      } else {
        w.value(s.reason);
      }
      w.end_object();
    }
    w.end_array().end_object();
  }
  w.end_array();
  w.key("feeds").begin_array();
  for (const feed_state& f : o.feeds()) {
    const double market_price = b.prices()[f.asset.index()];
    w.begin_object()
        .field("protocol", m.get_protocol(f.protocol).name)
        .field("asset", m.asset(f.asset).symbol)
        .field("price", f.visible)
        .field("aggregate", f.aggregate)
        .field("market_price", market_price)
        .field("divergence", f.visible / market_price - 1.0)
        .field("last_publish_ts", f.last_publish_t)
        .field("stale", f.stale)
        .field("valid_sources", static_cast<std::uint64_t>(f.valid_sources))
        .end_object();
  }
  w.end_array();
  const oracle_stats& st = o.stats();
  w.key("stats")
      .begin_object()
      .field("updates", st.updates)
      .field("out_of_order", st.out_of_order)
      .field("publications", st.publications)
      .field("heartbeats", st.heartbeats)
      .field("invalid_sources", st.invalid_now)
      .end_object();
  w.end_object();
  return w.take();
}

std::string encode_hidden(const book& b, std::uint64_t seq) {
  json_writer w;
  w.begin_object().field("seq", seq).key("hidden");
  write_hidden_fields(w, b);
  w.end_object();
  return w.take();
}

std::string encode_projection(const cascade_event& c, std::uint64_t seq, const market& m) {
  json_writer w;
  w.begin_object().field("seq", seq).field("stale", false);
  write_cascade_fields(w, c, m);
  w.end_object();
  return w.take();
}

std::string encode_curves(const book& b, asset_id a, std::span<const liquidation_point> liq,
                          std::span<const cascade_point> casc, const critical_shock& crit,
                          const critical_shock_options& co) {
  json_writer jw;
  jw.begin_object();
  jw.field("asset", b.get_market().asset(a).symbol);
  jw.field("price", b.prices()[a.index()]);
  jw.key("liquidation_curve").begin_array();
  for (const auto& p : liq) {
    jw.begin_object()
        .field("drop", p.drop)
        .field("positions", p.positions)
        .field("collateral_usd", p.collateral_usd)
        .field("debt_usd", p.debt_usd)
        .end_object();
  }
  jw.end_array();
  jw.key("cascade_curve").begin_array();
  for (const auto& p : casc) {
    jw.begin_object()
        .field("shock", p.shock)
        .field("final_drop", p.final_drop)
        .field("rounds", p.rounds)
        .field("positions_liquidated", p.positions_liquidated)
        .field("positions_insolvent", p.positions_insolvent)
        .field("repaid_usd", p.repaid_usd)
        .field("seized_usd", p.seized_usd)
        .field("bad_debt_usd", p.bad_debt_usd)
        .end_object();
  }
  jw.end_array();
  jw.key("critical_shock").begin_object();
  jw.key("shock");
  if (crit.shock) {
    jw.value(*crit.shock);
  } else {
    jw.null();
  }
  jw.field("baseline_drop", crit.baseline_drop)
      .field("baseline_bad_debt_usd", crit.baseline_bad_debt_usd)
      .field("material_bad_debt_usd", crit.material_bad_debt_usd)
      .field("reason", critical_reason(crit))
      .field("amplifies", crit.amplifies)
      .field("bad_debt", crit.bad_debt)
      .field("amplification", co.amplification)
      .end_object();
  jw.end_object();
  return jw.take();
}

std::string_view critical_reason(const critical_shock& c) {
  if (!c.shock) return "none up to 90%";
  if (c.amplifies && c.bad_debt) return "amplifies, bad debt";
  return c.bad_debt ? "bad debt" : "amplifies";
}

decoded<std::string> decode_path_segment(std::string_view raw, std::string_view what) {
  const auto refuse = [&](std::string_view why) {
    return wire_error{error_code::bad_request, detail::cat(what, " ", why)};
  };
  std::string out;
  if (raw.empty()) return refuse("is empty");
  if (raw.find('/') != std::string_view::npos) {
    return refuse("holds an unescaped '/' (write it %2F)");
  }
  if (!percent_decode(raw, out, false)) {
    return refuse(detail::cat("has a bad %-escape: ", detail::wire_quoted(raw)));
  }
  if (!simdjson::validate_utf8(out.data(), out.size())) {
    return refuse(detail::cat("is not UTF-8 once %-decoded: ", detail::wire_quoted(raw)));
  }
  return out;
}

}  // namespace cascade::proto
