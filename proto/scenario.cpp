#include "proto/scenario.hpp"

#include <absl/container/flat_hash_set.h>
#include <absl/strings/str_cat.h>
#include <simdjson.h>

#include <array>
#include <cmath>
#include <limits>
#include <optional>
#include <utility>

#include "proto/input_error.hpp"
#include "proto/json_read.hpp"

namespace cascade::proto {

namespace {

namespace od = simdjson::ondemand;
using detail::json_space;
using detail::key_set;
using detail::root_end;
using detail::trimmed_token;
using detail::type_name;
constexpr std::size_t npos = std::string_view::npos;
// How deep values under unknown keys may nest.
constexpr std::size_t max_unknown_depth = 64;

// NaN, Infinity and the like: what other encoders write where JSON has no number.
bool non_finite_literal(std::string_view raw) {
  if (!raw.empty() && (raw[0] == '-' || raw[0] == '+')) raw.remove_prefix(1);
  return !raw.empty() && (raw[0] == 'N' || raw[0] == 'n' || raw[0] == 'I' || raw[0] == 'i') &&
         raw != "null";
}

// One step of the JSON path of the value being decoded: a key or an array index.
struct path_part {
  std::string_view key;
  std::size_t index = 0;
  bool is_index = false;
};

// The decoded document before any semantic check. Views point into the parser's string
// buffer, which lives as long as the parser. Offsets (`at_*`) are byte offsets of the
// values in the input, for line numbers.
struct asset_in {
  asset_spec spec;
  std::size_t at = 0, at_symbol = 0, at_price = 0, at_pool = 0;
  std::size_t at_derived = 0, at_derived_base = 0, at_ratio_pool = 0;
  std::size_t at_venues = 0, at_withdrawal = 0;
  bool has_withdrawal = false, has_venues = false;
};
struct entry_at {
  std::size_t at = 0, at_threshold = 0, at_bonus = 0;
};
struct protocol_in {
  protocol_spec spec;
  std::vector<entry_at> entries;  // parallel to spec.assets
  std::size_t at = 0, at_name = 0, at_close_factor = 0, at_full_hf = 0;
};
struct leg_in {
  std::string_view asset;
  double collateral = 0.0;
  double debt = 0.0;
  std::size_t at = 0, at_asset = 0;
};
struct position_in {
  std::string_view id, protocol, owner;
  std::size_t legs_begin = 0, legs_end = 0;
  std::size_t at = 0, at_id = 0, at_protocol = 0;
};
// A per-protocol value of "model", resolved against the protocols in build().
template <class T>
struct by_protocol_in {
  std::string_view protocol;
  T value{};
  std::size_t at = 0;
};
struct model_in {
  cascade_model model;  // the scalar options; per-protocol ones below
  std::vector<by_protocol_in<oracle_lag>> oracles;
  std::vector<by_protocol_in<double>> caps;
};
struct shock_in {
  std::string_view symbol;
  double value = 0.0;
  std::size_t at = 0;
};

class path_scope {
 public:
  path_scope(std::vector<path_part>& path, path_part part) : path_(path) { path_.push_back(part); }
  ~path_scope() { path_.pop_back(); }
  path_scope(const path_scope&) = delete;
  path_scope& operator=(const path_scope&) = delete;

 private:
  std::vector<path_part>& path_;
};

class decoder {
 public:
  decoder(std::string_view text, std::string_view source) : text_(text), source_(source) {}

  absl::Status decode(od::document& doc);
  absl::StatusOr<scenario> build() const;

 private:
  // A shock on a derived asset moves its ratio (a depeg), and one on its base moves it
  // too: the price they give it, and its ratio pool moved to the shocked ratio at
  // constant k, must stay finite and > 0. `shocks` are the resolved shocks_, in order.
  [[nodiscard]] absl::Status check_derived_shocks(
      const market& m, const std::vector<std::pair<asset_id, double>>& shocks) const;

  // Errors. `fail` names the path being decoded; `fail_path` takes an explicit one.
  [[nodiscard]] absl::Status fail(std::size_t at, std::string_view reason) const;
  [[nodiscard]] absl::Status fail_path(std::size_t at, std::string_view path,
                                       std::string_view reason) const;
  [[nodiscard]] absl::Status json_error(simdjson::error_code e);
  [[nodiscard]] absl::Status structure_error() const;
  [[nodiscard]] absl::Status missing(std::size_t at, std::string_view key) const {
    return fail(at, detail::cat("missing required field '", key, "'"));
  }
  [[nodiscard]] absl::Status repeated(std::size_t at, std::string_view key) const {
    return fail(at, detail::cat("key '", key, "' is given twice"));
  }
  [[nodiscard]] absl::Status invalid_literal(std::size_t at, std::string_view raw) const {
    return fail(at, detail::cat("malformed JSON: invalid literal ", detail::quoted(raw),
                                " (expected true, false or null)"));
  }
  [[nodiscard]] std::string render_path() const;

  // Typed reads; each records the value's offset in `at`.
  std::size_t where(od::value& v);
  absl::Status expect(od::value& v, od::json_type want, std::size_t& at);
  absl::Status read_number(od::value& v, double& out, std::size_t& at);
  absl::Status read_amount(od::value& v, double& out, std::size_t& at);
  absl::Status read_string(od::value& v, std::string_view& out, std::size_t& at);
  absl::Status read_bool(od::value& v, bool& out, std::size_t& at);
  absl::Status read_object(od::value& v, od::object& out, std::size_t& at);
  absl::Status read_array(od::value& v, od::array& out, std::size_t& at);
  // Walks a value this version does not use, so that malformed JSON under an unknown
  // key is still refused (On-Demand would otherwise skip it unchecked).
  absl::Status check_value(od::value& v, std::size_t depth = 0);

  // Calls on_field(key, value) for each field of `obj`, in document order, with the key
  // pushed on the path.
  template <class F>
  absl::Status for_each_field(od::object& obj, F&& on_field);
  template <class F>
  absl::Status for_each_element(od::array& arr, F&& on_element);

  absl::Status decode_assets(od::value& v);
  absl::Status decode_asset(od::value& v);
  absl::Status decode_pool(od::value& v, pool& out);
  absl::Status decode_derived(od::value& v, asset_in& a);
  absl::Status decode_protocols(od::value& v);
  absl::Status decode_protocol(od::value& v);
  absl::Status decode_collateral(od::value& v, protocol_in& p);
  absl::Status decode_positions(od::value& v);
  absl::Status decode_position(od::value& v);
  absl::Status decode_leg(od::value& v);
  absl::Status decode_shocks(od::value& v);
  absl::Status decode_max_rounds(od::value& v);
  absl::Status decode_venues(od::value& v, asset_in& a);
  absl::Status decode_venue(od::value& v, venue_spec& out);
  absl::Status decode_withdrawal(od::value& v, asset_in& a);
  absl::Status decode_model(od::value& v);
  absl::Status decode_oracle(od::value& v, oracle_lag& out);
  // An integer in [lo, hi].
  absl::Status read_count(od::value& v, std::uint64_t lo, std::uint64_t hi, std::uint32_t& out);
  // A number > 0, or null for "no limit" (infinity).
  absl::Status read_limit(od::value& v, double& out, std::size_t& at);

  std::string_view text_;
  std::string_view source_;
  od::document* doc_ = nullptr;
  std::size_t last_at_ = 0;
  std::vector<path_part> path_;

  std::vector<asset_in> assets_;
  std::vector<protocol_in> protocols_;
  std::vector<position_in> positions_;
  std::vector<leg_in> legs_;
  std::vector<shock_in> shocks_;
  bool has_positions_ = false;
  std::uint32_t max_rounds_ = 100;
  model_in model_;
};

std::string decoder::render_path() const {
  std::string out;
  for (const path_part& p : path_) {
    if (p.is_index) {
      detail::append(&out, "[", p.index, "]");
    } else {
      if (!out.empty()) out += '.';
      out += detail::path_key(p.key);
    }
  }
  return out;
}

absl::Status decoder::fail(std::size_t at, std::string_view reason) const {
  return fail_path(at, render_path(), reason);
}

absl::Status decoder::fail_path(std::size_t at, std::string_view path,
                                std::string_view reason) const {
  return detail::input_error(source_, detail::line_of(text_, at), path, reason);
}

absl::Status decoder::structure_error() const {
  const std::size_t end = root_end(text_);
  if (end == npos) {
    return fail_path(text_.size(), "",
                     "truncated JSON: the document ends before every object and array is closed");
  }
  std::size_t i = end;
  while (i < text_.size() && json_space(text_[i])) ++i;
  if (i < text_.size()) return fail_path(i, "", "trailing content after the JSON document");
  return fail_path(end, "", "malformed JSON: unbalanced brackets or braces");
}

absl::Status decoder::json_error(simdjson::error_code e) {
  std::size_t at = last_at_;
  const char* p = nullptr;
  if (doc_ != nullptr && doc_->current_location().get(p) == simdjson::SUCCESS) {
    at = static_cast<std::size_t>(p - text_.data());
  }
  switch (e) {
    case simdjson::INCOMPLETE_ARRAY_OR_OBJECT:
      return structure_error();
    case simdjson::TAPE_ERROR:
      return fail(at,
                  "malformed JSON: a missing or extra comma, colon, bracket or brace, or an "
                  "invalid literal");
    case simdjson::UNCLOSED_STRING:
      return fail_path(text_.size(), "", "truncated JSON: a string is opened but never closed");
    case simdjson::STRING_ERROR:
      return fail(at, "malformed JSON: an invalid escape in a string");
    case simdjson::UNESCAPED_CHARS:
      return fail(at, "malformed JSON: a control character inside a string must be escaped");
    case simdjson::UTF8_ERROR:
      return fail(at, "the input is not valid UTF-8");
    case simdjson::DEPTH_ERROR:
      return fail(at, "malformed JSON: nested too deeply");
    case simdjson::EMPTY:
      return fail_path(0, "", "empty document: expected a JSON object");
    case simdjson::N_ATOM_ERROR:
    case simdjson::T_ATOM_ERROR:
    case simdjson::F_ATOM_ERROR:
      return fail(at, "malformed JSON: an invalid literal (expected true, false or null)");
    default:
      return fail(at, detail::cat("malformed JSON: ", simdjson::error_message(e)));
  }
}

std::size_t decoder::where(od::value& v) {
  const char* p = nullptr;
  if (v.current_location().get(p) == simdjson::SUCCESS) {
    last_at_ = static_cast<std::size_t>(p - text_.data());
  }
  return last_at_;
}

absl::Status decoder::expect(od::value& v, od::json_type want, std::size_t& at) {
  at = where(v);
  od::json_type t{};
  if (const auto e = v.type().get(t)) {
    const std::string_view raw = trimmed_token(v);
    if (non_finite_literal(raw)) {
      return fail(at, detail::cat(detail::quoted(raw),
                                  " is not JSON: NaN and infinities cannot be written in JSON"));
    }
    return json_error(e);
  }
  if (t != want) return fail(at, detail::cat("expected ", type_name(want), ", got ", type_name(t)));
  return absl::OkStatus();
}

absl::Status decoder::read_number(od::value& v, double& out, std::size_t& at) {
  if (auto s = expect(v, od::json_type::number, at); !s.ok()) return s;
  const std::string_view raw = trimmed_token(v);
  if (v.get_double().get(out) != simdjson::SUCCESS || !std::isfinite(out)) {
    return fail(at, detail::cat(detail::quoted(raw), " is not a valid finite number"));
  }
  return absl::OkStatus();
}

absl::Status decoder::read_amount(od::value& v, double& out, std::size_t& at) {
  if (auto s = read_number(v, out, at); !s.ok()) return s;
  if (!is_nonnegative_finite(out)) {
    return fail(at, detail::cat(out, " is negative: amounts must be finite numbers >= 0"));
  }
  return absl::OkStatus();
}

absl::Status decoder::read_string(od::value& v, std::string_view& out, std::size_t& at) {
  if (auto s = expect(v, od::json_type::string, at); !s.ok()) return s;
  if (const auto e = v.get_string().get(out)) return json_error(e);
  return absl::OkStatus();
}

absl::Status decoder::read_bool(od::value& v, bool& out, std::size_t& at) {
  if (auto s = expect(v, od::json_type::boolean, at); !s.ok()) return s;
  const std::string_view raw = trimmed_token(v);
  if (v.get_bool().get(out) != simdjson::SUCCESS) return invalid_literal(at, raw);
  return absl::OkStatus();
}

absl::Status decoder::read_object(od::value& v, od::object& out, std::size_t& at) {
  if (auto s = expect(v, od::json_type::object, at); !s.ok()) return s;
  if (const auto e = v.get_object().get(out)) return json_error(e);
  return absl::OkStatus();
}

absl::Status decoder::read_array(od::value& v, od::array& out, std::size_t& at) {
  if (auto s = expect(v, od::json_type::array, at); !s.ok()) return s;
  if (const auto e = v.get_array().get(out)) return json_error(e);
  return absl::OkStatus();
}

absl::Status decoder::check_value(od::value& v, std::size_t depth) {
  const std::size_t at = where(v);
  od::json_type t{};
  if (const auto e = v.type().get(t)) return json_error(e);
  // The walk recurses: bound it, so a hostile body cannot exhaust the stack.
  if (depth >= max_unknown_depth && (t == od::json_type::array || t == od::json_type::object)) {
    return fail(at, detail::cat("nested more than ", max_unknown_depth, " levels deep"));
  }
  switch (t) {
    case od::json_type::array: {
      od::array arr;
      if (const auto e = v.get_array().get(arr)) return json_error(e);
      return for_each_element(arr, [&](od::value& x) { return check_value(x, depth + 1); });
    }
    case od::json_type::object: {
      od::object obj;
      if (const auto e = v.get_object().get(obj)) return json_error(e);
      return for_each_field(
          obj, [&](std::string_view, od::value& x) { return check_value(x, depth + 1); });
    }
    case od::json_type::number: {
      double d = 0.0;
      std::size_t ignored = 0;
      return read_number(v, d, ignored);
    }
    case od::json_type::string: {
      std::string_view s;
      if (const auto e = v.get_string().get(s)) return json_error(e);
      return absl::OkStatus();
    }
    case od::json_type::boolean: {
      const std::string_view raw = trimmed_token(v);
      bool b = false;
      if (v.get_bool().get(b) != simdjson::SUCCESS) return invalid_literal(at, raw);
      return absl::OkStatus();
    }
    case od::json_type::null: {
      const std::string_view raw = trimmed_token(v);
      bool null = false;
      if (v.is_null().get(null) != simdjson::SUCCESS || !null) return invalid_literal(at, raw);
      return absl::OkStatus();
    }
  }
  return fail(at, "malformed JSON");
}

template <class F>
absl::Status decoder::for_each_field(od::object& obj, F&& on_field) {
  for (auto result : obj) {
    od::field f;
    if (const auto e = std::move(result).get(f)) return json_error(e);
    std::string_view k;
    if (const auto e = f.unescaped_key().get(k)) return json_error(e);
    path_scope scope(path_, {k});
    if (auto s = on_field(k, f.value()); !s.ok()) return s;
  }
  return absl::OkStatus();
}

template <class F>
absl::Status decoder::for_each_element(od::array& arr, F&& on_element) {
  std::size_t i = 0;
  for (auto result : arr) {
    od::value v;
    if (const auto e = std::move(result).get(v)) return json_error(e);
    path_scope scope(path_, {{}, i++, true});
    if (auto s = on_element(v); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status decoder::decode(od::document& doc) {
  doc_ = &doc;
  od::json_type t{};
  if (const auto e = doc.type().get(t)) return json_error(e);
  if (t != od::json_type::object) {
    return fail_path(0, "", detail::cat("expected a JSON object, got ", type_name(t)));
  }
  od::object root;
  if (const auto e = doc.get_object().get(root)) return json_error(e);

  enum : std::size_t { assets, protocols, positions, shocks, max_rounds, model, known };
  key_set<known> keys({"assets", "protocols", "positions", "shocks", "max_rounds", "model"});
  auto status = for_each_field(root, [&](std::string_view k, od::value& v) -> absl::Status {
    const std::size_t i = keys.find(k);
    if (i == known) return check_value(v);
    if (!keys.mark(i)) return repeated(where(v), k);
    switch (i) {
      case assets:
        return decode_assets(v);
      case protocols:
        return decode_protocols(v);
      case positions:
        has_positions_ = true;
        return decode_positions(v);
      case shocks:
        return decode_shocks(v);
      case model:
        return decode_model(v);
      default:
        return decode_max_rounds(v);
    }
  });
  if (!status.ok()) return status;
  for (const std::size_t required : {assets, protocols}) {
    if (!keys.seen(required)) {
      return fail_path(0, "", detail::cat("missing required field '", keys.name(required), "'"));
    }
  }
  const char* rest = nullptr;
  if (doc.current_location().get(rest) == simdjson::SUCCESS) {
    return fail_path(static_cast<std::size_t>(rest - text_.data()), "",
                     "trailing content after the JSON document");
  }
  return absl::OkStatus();
}

absl::Status decoder::decode_assets(od::value& v) {
  od::array arr;
  std::size_t at = 0;
  if (auto s = read_array(v, arr, at); !s.ok()) return s;
  return for_each_element(arr, [&](od::value& x) { return decode_asset(x); });
}

absl::Status decoder::decode_asset(od::value& v) {
  asset_in a;
  od::object obj;
  if (auto s = read_object(v, obj, a.at); !s.ok()) return s;
  enum : std::size_t { symbol, price, pool_key, derived, venues, withdrawal, known };
  key_set<known> keys({"symbol", "price", "pool", "derived", "venues", "withdrawal"});
  auto status = for_each_field(obj, [&](std::string_view k, od::value& x) -> absl::Status {
    const std::size_t i = keys.find(k);
    if (i == known) return check_value(x);
    if (!keys.mark(i)) return repeated(where(x), k);
    switch (i) {
      case symbol: {
        std::string_view s;
        if (auto st = read_string(x, s, a.at_symbol); !st.ok()) return st;
        a.spec.symbol = s;
        return absl::OkStatus();
      }
      case price:
        return read_number(x, a.spec.price, a.at_price);
      case pool_key: {
        a.at_pool = where(x);
        return decode_pool(x, a.spec.liquidity.emplace());
      }
      case venues:
        return decode_venues(x, a);
      case withdrawal:
        return decode_withdrawal(x, a);
      default:
        return decode_derived(x, a);
    }
  });
  if (!status.ok()) return status;
  for (const std::size_t required : {symbol, price}) {
    if (!keys.seen(required)) return missing(a.at, keys.name(required));
  }
  if (a.has_withdrawal && !a.has_venues) {
    return fail_path(a.at_withdrawal, detail::cat(render_path(), ".withdrawal"),
                     "withdrawal applies to venues: give the asset \"venues\"");
  }
  assets_.push_back(std::move(a));
  return absl::OkStatus();
}

absl::Status decoder::decode_pool(od::value& v, pool& out) {
  od::object obj;
  std::size_t at = 0;
  if (auto s = read_object(v, obj, at); !s.ok()) return s;
  enum : std::size_t { base, quote, known };
  key_set<known> keys({"base", "quote"});
  auto status = for_each_field(obj, [&](std::string_view k, od::value& x) -> absl::Status {
    const std::size_t i = keys.find(k);
    if (i == known) return check_value(x);
    if (!keys.mark(i)) return repeated(where(x), k);
    std::size_t ignored = 0;
    return read_number(x, i == base ? out.base : out.quote, ignored);
  });
  if (!status.ok()) return status;
  for (const std::size_t required : {base, quote}) {
    if (!keys.seen(required)) return missing(at, keys.name(required));
  }
  return absl::OkStatus();
}

absl::Status decoder::decode_derived(od::value& v, asset_in& a) {
  od::object obj;
  if (auto s = read_object(v, obj, a.at_derived); !s.ok()) return s;
  derivation& d = a.spec.derived.emplace();
  enum : std::size_t { base, ratio_pool, sell_through, known };
  key_set<known> keys({"base", "ratio_pool", "sell_through"});
  auto status = for_each_field(obj, [&](std::string_view k, od::value& x) -> absl::Status {
    const std::size_t i = keys.find(k);
    if (i == known) return check_value(x);
    if (!keys.mark(i)) return repeated(where(x), k);
    switch (i) {
      case base: {
        std::string_view s;
        if (auto st = read_string(x, s, a.at_derived_base); !st.ok()) return st;
        d.base = s;
        return absl::OkStatus();
      }
      case ratio_pool: {
        a.at_ratio_pool = where(x);
        return decode_pool(x, d.ratio_pool.emplace());
      }
      default: {
        std::size_t ignored = 0;
        return read_bool(x, d.sell_through, ignored);
      }
    }
  });
  if (!status.ok()) return status;
  if (!keys.seen(base)) return missing(a.at_derived, keys.name(base));
  return absl::OkStatus();
}

absl::Status decoder::decode_protocols(od::value& v) {
  od::array arr;
  std::size_t at = 0;
  if (auto s = read_array(v, arr, at); !s.ok()) return s;
  return for_each_element(arr, [&](od::value& x) { return decode_protocol(x); });
}

absl::Status decoder::decode_protocol(od::value& v) {
  protocol_in p;
  od::object obj;
  if (auto s = read_object(v, obj, p.at); !s.ok()) return s;
  enum : std::size_t { name, kind, close_factor, full_hf, assets, known };
  key_set<known> keys({"name", "kind", "close_factor", "full_liquidation_hf", "assets"});
  auto status = for_each_field(obj, [&](std::string_view k, od::value& x) -> absl::Status {
    const std::size_t i = keys.find(k);
    if (i == known) return check_value(x);
    if (!keys.mark(i)) return repeated(where(x), k);
    switch (i) {
      case name: {
        std::string_view s;
        if (auto st = read_string(x, s, p.at_name); !st.ok()) return st;
        p.spec.name = s;
        return absl::OkStatus();
      }
      case kind: {
        std::string_view s;
        std::size_t at = 0;
        if (auto st = read_string(x, s, at); !st.ok()) return st;
        const auto parsed = parse_protocol_kind(s);
        if (!parsed) {
          return fail(at, detail::cat("unknown protocol kind ", detail::quoted(s),
                                      " (expected pooled, cdp or margin)"));
        }
        p.spec.kind = *parsed;
        return absl::OkStatus();
      }
      case close_factor:
        return read_number(x, p.spec.close_factor, p.at_close_factor);
      case full_hf:
        return read_number(x, p.spec.full_liquidation_hf, p.at_full_hf);
      default:
        return decode_collateral(x, p);
    }
  });
  if (!status.ok()) return status;
  for (const std::size_t required : {name, kind, close_factor, full_hf}) {
    if (!keys.seen(required)) return missing(p.at, keys.name(required));
  }
  protocols_.push_back(std::move(p));
  return absl::OkStatus();
}

absl::Status decoder::decode_collateral(od::value& v, protocol_in& p) {
  od::object obj;
  std::size_t at = 0;
  if (auto s = read_object(v, obj, at); !s.ok()) return s;
  return for_each_field(obj, [&](std::string_view symbol, od::value& x) -> absl::Status {
    entry_at e;
    collateral_params params;
    od::object entry;
    if (auto s = read_object(x, entry, e.at); !s.ok()) return s;
    enum : std::size_t { threshold, bonus, known };
    key_set<known> keys({"liquidation_threshold", "liquidation_bonus"});
    auto status = for_each_field(entry, [&](std::string_view k, od::value& y) -> absl::Status {
      const std::size_t i = keys.find(k);
      if (i == known) return check_value(y);
      if (!keys.mark(i)) return repeated(where(y), k);
      return i == threshold ? read_number(y, params.liquidation_threshold, e.at_threshold)
                            : read_number(y, params.liquidation_bonus, e.at_bonus);
    });
    if (!status.ok()) return status;
    if (!keys.seen(threshold)) return missing(e.at, keys.name(threshold));
    // A repeated symbol is refused by market::add_protocol (and located there).
    p.spec.assets.emplace_back(std::string(symbol), params);
    p.entries.push_back(e);
    return absl::OkStatus();
  });
}

absl::Status decoder::decode_positions(od::value& v) {
  od::array arr;
  std::size_t at = 0;
  if (auto s = read_array(v, arr, at); !s.ok()) return s;
  return for_each_element(arr, [&](od::value& x) { return decode_position(x); });
}

absl::Status decoder::decode_position(od::value& v) {
  position_in p;
  od::object obj;
  if (auto s = read_object(v, obj, p.at); !s.ok()) return s;
  p.legs_begin = legs_.size();
  enum : std::size_t { id, protocol_key, owner, legs, known };
  key_set<known> keys({"id", "protocol", "owner", "legs"});
  auto status = for_each_field(obj, [&](std::string_view k, od::value& x) -> absl::Status {
    const std::size_t i = keys.find(k);
    if (i == known) return check_value(x);
    if (!keys.mark(i)) return repeated(where(x), k);
    switch (i) {
      case id: {
        if (auto s = read_string(x, p.id, p.at_id); !s.ok()) return s;
        if (p.id.empty()) return fail(p.at_id, "the id is empty");
        return absl::OkStatus();
      }
      case protocol_key:
        return read_string(x, p.protocol, p.at_protocol);
      case owner: {
        std::size_t ignored = 0;
        return read_string(x, p.owner, ignored);
      }
      default: {
        od::array arr;
        std::size_t at = 0;
        if (auto s = read_array(x, arr, at); !s.ok()) return s;
        return for_each_element(arr, [&](od::value& y) { return decode_leg(y); });
      }
    }
  });
  if (!status.ok()) return status;
  for (const std::size_t required : {id, protocol_key, legs}) {
    if (!keys.seen(required)) return missing(p.at, keys.name(required));
  }
  p.legs_end = legs_.size();
  positions_.push_back(p);
  return absl::OkStatus();
}

absl::Status decoder::decode_leg(od::value& v) {
  leg_in l;
  od::object obj;
  if (auto s = read_object(v, obj, l.at); !s.ok()) return s;
  enum : std::size_t { asset, collateral, debt, known };
  key_set<known> keys({"asset", "collateral", "debt"});
  auto status = for_each_field(obj, [&](std::string_view k, od::value& x) -> absl::Status {
    const std::size_t i = keys.find(k);
    if (i == known) return check_value(x);
    if (!keys.mark(i)) return repeated(where(x), k);
    std::size_t ignored = 0;
    switch (i) {
      case asset:
        return read_string(x, l.asset, l.at_asset);
      case collateral:
        return read_amount(x, l.collateral, ignored);
      default:
        return read_amount(x, l.debt, ignored);
    }
  });
  if (!status.ok()) return status;
  if (!keys.seen(asset)) return missing(l.at, keys.name(asset));
  legs_.push_back(l);
  return absl::OkStatus();
}

absl::Status decoder::decode_shocks(od::value& v) {
  od::object obj;
  std::size_t at = 0;
  if (auto s = read_object(v, obj, at); !s.ok()) return s;
  return for_each_field(obj, [&](std::string_view symbol, od::value& x) -> absl::Status {
    shock_in sh{symbol, 0.0, 0};
    if (auto s = read_number(x, sh.value, sh.at); !s.ok()) return s;
    if (!(sh.value > -1.0)) {
      return fail(sh.at, detail::cat("shock ", sh.value,
                                     " must be > -1 (a price cannot fall by 100% or more)"));
    }
    for (const shock_in& other : shocks_) {
      if (other.symbol == symbol) return fail(sh.at, "the asset is shocked twice");
    }
    shocks_.push_back(sh);
    return absl::OkStatus();
  });
}

absl::Status decoder::decode_max_rounds(od::value& v) {
  std::size_t at = 0;
  if (auto s = expect(v, od::json_type::number, at); !s.ok()) return s;
  const std::string_view raw = trimmed_token(v);
  std::uint64_t n = 0;
  if (v.get_uint64().get(n) != simdjson::SUCCESS || n == 0 || n > max_rounds_limit) {
    return fail(
        at, detail::cat(detail::quoted(raw), " is not an integer in [1, ", max_rounds_limit, "]"));
  }
  max_rounds_ = static_cast<std::uint32_t>(n);
  return absl::OkStatus();
}

absl::Status decoder::decode_venues(od::value& v, asset_in& a) {
  od::array arr;
  if (auto s = read_array(v, arr, a.at_venues); !s.ok()) return s;
  a.has_venues = true;
  liquidity_spec& spec = a.spec.venues ? *a.spec.venues : a.spec.venues.emplace();
  return for_each_element(arr, [&](od::value& x) {
    return decode_venue(x, spec.venues.emplace_back());
  });
}

absl::Status decoder::decode_venue(od::value& v, venue_spec& out) {
  od::object obj;
  std::size_t at = 0;
  if (auto s = read_object(v, obj, at); !s.ok()) return s;
  enum : std::size_t { name, pool_key, depth, known };
  key_set<known> keys({"name", "pool", "depth"});
  auto status = for_each_field(obj, [&](std::string_view k, od::value& x) -> absl::Status {
    const std::size_t i = keys.find(k);
    if (i == known) return check_value(x);
    if (!keys.mark(i)) return repeated(where(x), k);
    switch (i) {
      case name: {
        std::string_view s;
        std::size_t ignored = 0;
        if (auto st = read_string(x, s, ignored); !st.ok()) return st;
        out.name = s;
        return absl::OkStatus();
      }
      case pool_key:
        return decode_pool(x, out.cp.emplace());
      default: {
        od::array arr;
        std::size_t arr_at = 0;
        if (auto st = read_array(x, arr, arr_at); !st.ok()) return st;
        return for_each_element(arr, [&](od::value& y) -> absl::Status {
          od::object point;
          std::size_t point_at = 0;
          if (auto st = read_object(y, point, point_at); !st.ok()) return st;
          depth_point& pt = out.depth.emplace_back();
          enum : std::size_t { drop, usd, known_point };
          key_set<known_point> point_keys({"drop", "usd"});
          auto st = for_each_field(point, [&](std::string_view pk, od::value& z) -> absl::Status {
            const std::size_t j = point_keys.find(pk);
            if (j == known_point) return check_value(z);
            if (!point_keys.mark(j)) return repeated(where(z), pk);
            std::size_t ignored = 0;
            return read_number(z, j == drop ? pt.drop : pt.usd, ignored);
          });
          if (!st.ok()) return st;
          for (const std::size_t required : {drop, usd}) {
            if (!point_keys.seen(required)) return missing(point_at, point_keys.name(required));
          }
          return absl::OkStatus();
        });
      }
    }
  });
  if (!status.ok()) return status;
  if (!keys.seen(name)) return missing(at, keys.name(name));
  if (keys.seen(pool_key) == keys.seen(depth)) {
    return fail(at, "a venue is either a \"pool\" or a \"depth\" curve: give exactly one");
  }
  return absl::OkStatus();
}

absl::Status decoder::decode_withdrawal(od::value& v, asset_in& a) {
  od::object obj;
  if (auto s = read_object(v, obj, a.at_withdrawal); !s.ok()) return s;
  a.has_withdrawal = true;
  withdrawal_spec w;
  enum : std::size_t { drawdown, volatility, floor_key, half_life, known };
  key_set<known> keys(
      {"drawdown_sensitivity", "volatility_sensitivity", "floor", "half_life_s"});
  auto status = for_each_field(obj, [&](std::string_view k, od::value& x) -> absl::Status {
    const std::size_t i = keys.find(k);
    if (i == known) return check_value(x);
    if (!keys.mark(i)) return repeated(where(x), k);
    std::size_t at = 0;
    switch (i) {
      case drawdown:
        return read_amount(x, w.drawdown_sensitivity, at);
      case volatility:
        return read_amount(x, w.volatility_sensitivity, at);
      case floor_key:
        if (auto s = read_number(x, w.floor, at); !s.ok()) return s;
        if (!(w.floor > 0.0 && w.floor <= 1.0)) {
          return fail(at, detail::cat("floor ", w.floor, " is outside (0, 1]"));
        }
        return absl::OkStatus();
      default:
        if (auto s = read_number(x, w.half_life_s, at); !s.ok()) return s;
        if (!(w.half_life_s > 0.0)) {
          return fail(at, detail::cat("half_life_s ", w.half_life_s, " must be > 0"));
        }
        return absl::OkStatus();
    }
  });
  if (!status.ok()) return status;
  // The venues may come before or after this key.
  (a.spec.venues ? *a.spec.venues : a.spec.venues.emplace()).withdrawal = w;
  return absl::OkStatus();
}

absl::Status decoder::read_count(od::value& v, std::uint64_t lo, std::uint64_t hi,
                                 std::uint32_t& out) {
  std::size_t at = 0;
  if (auto s = expect(v, od::json_type::number, at); !s.ok()) return s;
  const std::string_view raw = trimmed_token(v);
  std::uint64_t n = 0;
  if (v.get_uint64().get(n) != simdjson::SUCCESS || n < lo || n > hi) {
    return fail(at, detail::cat(detail::quoted(raw), " is not an integer in [", lo, ", ", hi, "]"));
  }
  out = static_cast<std::uint32_t>(n);
  return absl::OkStatus();
}

absl::Status decoder::read_limit(od::value& v, double& out, std::size_t& at) {
  at = where(v);
  bool null = false;
  if (v.is_null().get(null) == simdjson::SUCCESS && null) {
    out = std::numeric_limits<double>::infinity();
    return absl::OkStatus();
  }
  if (auto s = read_number(v, out, at); !s.ok()) return s;
  if (!(out > 0.0)) {
    return fail(at, detail::cat(out, " must be > 0 (or null: no limit)"));
  }
  return absl::OkStatus();
}

absl::Status decoder::decode_oracle(od::value& v, oracle_lag& out) {
  od::object obj;
  std::size_t at = 0;
  if (auto s = read_object(v, obj, at); !s.ok()) return s;
  enum : std::size_t { deviation, lag_rounds, known };
  key_set<known> keys({"deviation", "lag_rounds"});
  return for_each_field(obj, [&](std::string_view k, od::value& x) -> absl::Status {
    const std::size_t i = keys.find(k);
    if (i == known) return check_value(x);
    if (!keys.mark(i)) return repeated(where(x), k);
    if (i == lag_rounds) return read_count(x, 0, max_rounds_limit, out.lag_rounds);
    std::size_t d_at = 0;
    if (auto s = read_number(x, out.deviation, d_at); !s.ok()) return s;
    if (!(out.deviation >= 0.0 && out.deviation < 1.0)) {
      return fail(d_at, detail::cat("deviation ", out.deviation, " is outside [0, 1)"));
    }
    return absl::OkStatus();
  });
}

absl::Status decoder::decode_model(od::value& v) {
  od::object obj;
  std::size_t at = 0;
  if (auto s = read_object(v, obj, at); !s.ok()) return s;
  cascade_model& md = model_.model;
  enum : std::size_t {
    oracles,
    latency_rounds,
    capacity,
    round_seconds,
    halt_drop,
    halt_rounds,
    max_liquidating,
    counterfactual,
    known
  };
  key_set<known> keys({"oracles", "latency_rounds", "liquidator_capacity_usd", "round_seconds",
                       "halt_drop", "halt_rounds", "max_liquidating_usd", "counterfactual"});
  return for_each_field(obj, [&](std::string_view k, od::value& x) -> absl::Status {
    const std::size_t i = keys.find(k);
    if (i == known) return check_value(x);
    if (!keys.mark(i)) return repeated(where(x), k);
    std::size_t x_at = 0;
    switch (i) {
      case oracles: {
        od::object per;
        if (auto s = read_object(x, per, x_at); !s.ok()) return s;
        return for_each_field(per, [&](std::string_view name, od::value& y) -> absl::Status {
          by_protocol_in<oracle_lag> o{name, {}, where(y)};
          if (auto s = decode_oracle(y, o.value); !s.ok()) return s;
          for (const auto& other : model_.oracles) {
            if (other.protocol == name) return repeated(o.at, name);
          }
          model_.oracles.push_back(o);
          return absl::OkStatus();
        });
      }
      case latency_rounds:
        return read_count(x, 0, max_rounds_limit, md.latency_rounds);
      case capacity:
        return read_limit(x, md.liquidator_capacity_usd, x_at);
      case round_seconds:
        if (auto s = read_amount(x, md.round_seconds, x_at); !s.ok()) return s;
        return absl::OkStatus();
      case halt_drop: {
        at = where(x);
        bool null = false;
        if (x.is_null().get(null) == simdjson::SUCCESS && null) return absl::OkStatus();
        if (auto s = read_number(x, md.halt_drop, x_at); !s.ok()) return s;
        if (!(md.halt_drop > 0.0 && md.halt_drop < 1.0)) {
          return fail(x_at, detail::cat("halt_drop ", md.halt_drop,
                                        " is outside (0, 1) (or null: no breaker)"));
        }
        return absl::OkStatus();
      }
      case halt_rounds:
        return read_count(x, 1, max_rounds_limit, md.halt_rounds);
      case max_liquidating: {
        od::object per;
        if (auto s = read_object(x, per, x_at); !s.ok()) return s;
        return for_each_field(per, [&](std::string_view name, od::value& y) -> absl::Status {
          by_protocol_in<double> c{name, 0.0, 0};
          if (auto s = read_limit(y, c.value, c.at); !s.ok()) return s;
          for (const auto& other : model_.caps) {
            if (other.protocol == name) return repeated(c.at, name);
          }
          model_.caps.push_back(c);
          return absl::OkStatus();
        });
      }
      default:
        return read_bool(x, md.counterfactual, x_at);
    }
  });
}

absl::Status decoder::check_derived_shocks(
    const market& m, const std::vector<std::pair<asset_id, double>>& shocks) const {
  std::vector<double> shock_of(m.asset_count(), 0.0);
  std::vector<std::size_t> shock_index(m.asset_count(), npos);
  for (std::size_t i = 0; i < shocks.size(); ++i) {
    shock_of[shocks[i].first.index()] = shocks[i].second;
    shock_index[shocks[i].first.index()] = i;
  }
  for (std::size_t i = 0; i < m.asset_count(); ++i) {
    const auto a = asset_id::from_index(i);
    const auto b = m.base_of(a);
    if (!b) continue;
    const std::size_t blamed = shock_index[i] != npos ? shock_index[i] : shock_index[b->index()];
    if (blamed == npos) continue;
    const asset_spec& spec = m.asset(a);
    const double base_price = m.asset(*b).price;
    const double ratio = spec.price / base_price * (1.0 + shock_of[i]);
    const double shocked = ratio * (base_price * (1.0 + shock_of[b->index()]));
    bool ok = is_positive_finite(ratio) && is_positive_finite(shocked);
    if (ok && spec.derived->ratio_pool) {
      const double k = spec.derived->ratio_pool->base * spec.derived->ratio_pool->quote;
      ok = is_positive_finite(std::sqrt(k / ratio)) && is_positive_finite(std::sqrt(k * ratio));
    }
    if (!ok) {
      const shock_in& sh = shocks_[blamed];
      return fail_path(sh.at, detail::cat("shocks.", detail::path_key(sh.symbol)),
                       detail::cat("shock ", sh.value, " takes the price of ", spec.symbol,
                                   " (ratio ", ratio, " x ", spec.derived->base, ") to ", shocked,
                                   ", outside the range of finite positive prices"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<scenario> decoder::build() const {
  scenario out;
  out.has_positions = has_positions_;
  out.max_rounds = max_rounds_;
  market& m = out.mkt;

  for (std::size_t i = 0; i < assets_.size(); ++i) {
    const asset_in& a = assets_[i];
    if (a.spec.venues && is_positive_finite(a.spec.price) && !m.find_asset(a.spec.symbol)) {
      const std::string path = detail::cat("assets[", i, "].venues");
      if (a.spec.liquidity) {
        return fail_path(a.at_venues, path, "venues replace the pool: give one or the other");
      }
      if (a.spec.derived) {
        return fail_path(a.at_venues, path,
                         "a derived asset trades through its ratio pool: no venues");
      }
      if (auto st = a.spec.venues->validate(a.spec.price); !st.ok()) {
        const bool on_withdrawal =
            std::string_view(st.message().data(), st.message().size()).starts_with("withdrawal");
        return fail_path(on_withdrawal ? a.at_withdrawal : a.at_venues,
                         on_withdrawal ? detail::cat("assets[", i, "]") : path,
                         detail::text(st));
      }
    }
    if (auto r = m.add_asset(a.spec); !r.ok()) {
      const detail::spec_fault f = detail::locate_asset_fault(m, a.spec);
      std::size_t at = a.at;
      switch (f.field) {
        case detail::spec_field::symbol:
          at = a.at_symbol;
          break;
        case detail::spec_field::price:
          at = a.at_price;
          break;
        case detail::spec_field::pool:
          at = a.at_pool;
          break;
        case detail::spec_field::derived:
          at = a.at_derived;
          break;
        case detail::spec_field::derived_base:
          at = a.at_derived_base;
          break;
        case detail::spec_field::ratio_pool:
          at = a.at_ratio_pool;
          break;
        default:
          break;
      }
      std::string path = detail::cat("assets[", i, "]");
      if (const std::string sub = detail::fault_path(f, nullptr); !sub.empty()) {
        detail::append(&path, ".", sub);
      }
      return fail_path(at, path, detail::text(r.status()));
    }
  }

  for (std::size_t i = 0; i < protocols_.size(); ++i) {
    const protocol_in& p = protocols_[i];
    if (auto r = m.add_protocol(p.spec); !r.ok()) {
      const detail::spec_fault f = detail::locate_protocol_fault(m, p.spec);
      std::size_t at = p.at;
      switch (f.field) {
        case detail::spec_field::name:
          at = p.at_name;
          break;
        case detail::spec_field::close_factor:
          at = p.at_close_factor;
          break;
        case detail::spec_field::full_liquidation_hf:
          at = p.at_full_hf;
          break;
        case detail::spec_field::collateral_entry:
          at = p.entries[f.entry].at;
          break;
        case detail::spec_field::liquidation_threshold:
          at = p.entries[f.entry].at_threshold;
          break;
        case detail::spec_field::liquidation_bonus:
          at = p.entries[f.entry].at_bonus;
          break;
        default:
          break;
      }
      std::string path = detail::cat("protocols[", i, "]");
      if (const std::string sub = detail::fault_path(f, &p.spec); !sub.empty()) {
        detail::append(&path, ".", sub);
      }
      return fail_path(at, path, detail::text(r.status()));
    }
  }

  out.model = model_.model;
  for (const auto& o : model_.oracles) {
    const auto pid = m.find_protocol(o.protocol);
    if (!pid) {
      return fail_path(o.at, detail::cat("model.oracles.", detail::path_key(o.protocol)),
                       detail::cat("unknown protocol ", detail::quoted(o.protocol)));
    }
    if (out.model.oracles.size() <= pid->index()) out.model.oracles.resize(pid->index() + 1);
    out.model.oracles[pid->index()] = o.value;
  }
  for (const auto& c : model_.caps) {
    const auto pid = m.find_protocol(c.protocol);
    if (!pid) {
      return fail_path(c.at, detail::cat("model.max_liquidating_usd.", detail::path_key(c.protocol)),
                       detail::cat("unknown protocol ", detail::quoted(c.protocol)));
    }
    if (out.model.max_liquidating_usd.size() <= pid->index()) {
      out.model.max_liquidating_usd.resize(pid->index() + 1,
                                           std::numeric_limits<double>::infinity());
    }
    out.model.max_liquidating_usd[pid->index()] = c.value;
  }

  out.shocks.reserve(shocks_.size());
  for (const shock_in& sh : shocks_) {
    const std::string path = detail::cat("shocks.", detail::path_key(sh.symbol));
    const auto a = m.find_asset(sh.symbol);
    if (!a) return fail_path(sh.at, path, detail::cat("unknown asset ", detail::quoted(sh.symbol)));
    // The shocked price, and the pool moved to it at constant k, must stay finite and > 0.
    const asset_spec& spec = m.asset(*a);
    const double shocked = spec.price * (1.0 + sh.value);
    bool ok = is_positive_finite(shocked);
    if (ok && spec.liquidity) {
      const double k = spec.liquidity->base * spec.liquidity->quote;
      ok = is_positive_finite(std::sqrt(k / shocked)) && is_positive_finite(std::sqrt(k * shocked));
    }
    if (!ok) {
      return fail_path(sh.at, path,
                       detail::cat("shock ", sh.value, " takes the price of ", sh.symbol, " to ",
                                   shocked, ", outside the range of finite positive prices"));
    }
    out.shocks.emplace_back(*a, sh.value);
  }
  if (m.has_derived() && !out.shocks.empty()) {
    if (auto s = check_derived_shocks(m, out.shocks); !s.ok()) return s;
  }

  out.positions.reserve(positions_.size());
  absl::flat_hash_set<absl::string_view> ids;
  ids.reserve(positions_.size());
  for (std::size_t i = 0; i < positions_.size(); ++i) {
    const position_in& p = positions_[i];
    const auto path = [&](std::string_view field) {
      return detail::cat("positions[", i, "].", field);
    };
    if (!ids.insert(key(p.id)).second) {
      return fail_path(p.at_id, path("id"),
                       detail::cat("duplicate position id ", detail::quoted(p.id)));
    }
    const auto pid = m.find_protocol(p.protocol);
    if (!pid) {
      return fail_path(p.at_protocol, path("protocol"),
                       detail::cat("unknown protocol ", detail::quoted(p.protocol)));
    }
    const protocol& proto = m.get_protocol(*pid);
    position_input in{std::string(p.id), *pid, std::string(p.owner), {}};
    in.legs.reserve(p.legs_end - p.legs_begin);
    for (std::size_t j = p.legs_begin; j < p.legs_end; ++j) {
      const leg_in& l = legs_[j];
      const std::size_t n = j - p.legs_begin;
      const auto a = m.find_asset(l.asset);
      if (!a) {
        return fail_path(l.at_asset, path(detail::cat("legs[", n, "].asset")),
                         detail::cat("unknown asset ", detail::quoted(l.asset)));
      }
      if (l.collateral > 0.0 && proto.params(*a) == nullptr) {
        return fail_path(
            l.at, path(detail::cat("legs[", n, "].collateral")),
            detail::cat("protocol ", detail::quoted(proto.name), " does not accept ",
                        detail::quoted(l.asset), " as collateral (it is not in its assets)"));
      }
      in.legs.push_back({*a, l.collateral, l.debt});
    }
    out.positions.push_back(std::move(in));
  }
  return out;
}

absl::StatusOr<scenario> parse_padded(simdjson::padded_string_view json,
                                      std::string_view source_name) {
  // RFC 8259 lets a parser ignore a UTF-8 byte-order mark; editors on some systems add one.
  constexpr std::string_view bom = "\xEF\xBB\xBF";
  if (std::string_view(json.data(), json.size()).starts_with(bom)) {
    json = simdjson::padded_string_view(json.data() + bom.size(), json.size() - bom.size(),
                                        json.capacity() - bom.size());
  }
  const std::string_view text(json.data(), json.size());
  decoder d(text, source_name);
  od::parser parser;
  od::document doc;
  if (const auto e = parser.iterate(json).get(doc)) {
    // Errors found before iteration (stage 1) have no document to locate them.
    std::string_view reason;
    switch (e) {
      case simdjson::EMPTY:
        reason = "empty document: expected a JSON object";
        break;
      case simdjson::UNCLOSED_STRING:
        reason = "truncated JSON: a string is opened but never closed";
        break;
      case simdjson::UTF8_ERROR:
        reason = "the input is not valid UTF-8";
        break;
      case simdjson::UNESCAPED_CHARS:
        reason = "malformed JSON: a control character inside a string must be escaped";
        break;
      case simdjson::CAPACITY:
        reason = "the document is too large";
        break;
      default:
        reason = simdjson::error_message(e);
        break;
    }
    return detail::input_error(source_name, 0, "", reason);
  }
  if (auto s = d.decode(doc); !s.ok()) return s;
  return d.build();
}

}  // namespace

absl::StatusOr<scenario> parse_scenario(std::string_view json, std::string_view source_name) {
  const simdjson::padded_string padded(json);
  return parse_padded(padded, source_name);
}

absl::StatusOr<scenario> load_scenario_file(const std::string& path) {
  auto text = detail::read_file(path, simdjson::SIMDJSON_PADDING);
  if (!text.ok()) return text.status();
  return parse_padded(simdjson::padded_string_view(text->data(), text->size(), text->capacity()),
                      path);
}

}  // namespace cascade::proto
