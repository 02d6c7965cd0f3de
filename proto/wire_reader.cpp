#include "proto/wire_reader.hpp"

#include <cmath>

#include "proto/input_error.hpp"
#include "proto/json_writer.hpp"

namespace cascade::proto::detail {

namespace {

// Inputs up to this size borrow the thread's parser; larger ones get their own, freed
// with the reader, so that one big body does not pin its buffers to an I/O thread.
constexpr std::size_t max_borrowed_bytes = 64 << 10;
// How deep values under unused fields may nest.
constexpr std::size_t max_unused_depth = 64;

bool ascii_iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const char x = (a[i] >= 'A' && a[i] <= 'Z') ? static_cast<char>(a[i] - 'A' + 'a') : a[i];
    if (x != b[i]) return false;
  }
  return true;
}

// NaN, Infinity, inf and the like: what some encoders write where JSON has no number.
bool non_finite_literal(std::string_view raw) {
  if (!raw.empty() && (raw[0] == '-' || raw[0] == '+')) raw.remove_prefix(1);
  return ascii_iequal(raw, "nan") || ascii_iequal(raw, "inf") || ascii_iequal(raw, "infinity");
}

bool digit(char c) { return c >= '0' && c <= '9'; }

// Whether `s` is a number by JSON's grammar (RFC 8259 section 6), whatever its range.
bool json_number_grammar(std::string_view s) {
  std::size_t i = 0;
  const std::size_t n = s.size();
  if (i < n && s[i] == '-') ++i;
  if (i >= n) return false;
  if (s[i] == '0') {
    ++i;
  } else if (s[i] >= '1' && s[i] <= '9') {
    while (i < n && digit(s[i])) ++i;
  } else {
    return false;
  }
  if (i < n && s[i] == '.') {
    ++i;
    if (i >= n || !digit(s[i])) return false;
    while (i < n && digit(s[i])) ++i;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
    if (i >= n || !digit(s[i])) return false;
    while (i < n && digit(s[i])) ++i;
  }
  return i == n;
}

// Length of the valid UTF-8 sequence at s[i], or 0.
std::size_t utf8_length(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const auto cont = [&](std::size_t k) { return i + k < s.size() && (b(k) & 0xC0) == 0x80; };
  const unsigned char c = b(0);
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    if (c == 0xE0 && b(1) < 0xA0) return 0;   // overlong
    if (c == 0xED && b(1) >= 0xA0) return 0;  // a surrogate
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (c == 0xF0 && b(1) < 0x90) return 0;   // overlong
    if (c == 0xF4 && b(1) >= 0x90) return 0;  // beyond U+10FFFF
    return 4;
  }
  return 0;
}

// A key as one step of a path: as written when plain, else quoted.
std::string path_step(std::string_view key) {
  constexpr std::size_t max_plain = 64;
  bool plain = !key.empty() && key.size() <= max_plain;
  for (const char c : key) {
    plain = plain && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || digit(c) || c == '_' ||
                      c == '-' || c == '$' || c == '@' || c == ':' || c == '/');
  }
  return plain ? std::string(key) : wire_quoted(key);
}

}  // namespace

std::string wire_quoted(std::string_view s) {
  constexpr std::size_t max_chars = 64;
  constexpr std::string_view hex = "0123456789abcdef";
  std::string out = "'";
  std::size_t chars = 0;
  std::size_t i = 0;
  while (i < s.size() && chars < max_chars) {
    const std::size_t len = utf8_length(s, i);
    const auto c = static_cast<unsigned char>(s[i]);
    if (len == 0 || c < 0x20 || c == 0x7F) {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 0xF];
      ++i;
    } else {
      out.append(s.substr(i, len));
      i += len;
    }
    ++chars;
  }
  if (i < s.size()) out += "...";
  out += '\'';
  return out;
}

struct wire_reader::slot {
  od::parser parser;
  std::string buffer;
  bool busy = false;
};

wire_reader::wire_reader(std::string_view text) {
  thread_local slot thread_slot;
  if (!thread_slot.busy && text.size() <= max_borrowed_bytes) {
    slot_ = &thread_slot;
    slot_->busy = true;
  } else {
    own_ = std::make_unique<slot>();
    slot_ = own_.get();
  }
  std::string& buf = slot_->buffer;
  buf.clear();
  buf.reserve(text.size() + simdjson::SIMDJSON_PADDING);
  buf.append(text);
  text_ = buf;
}

wire_reader::~wire_reader() {
  if (!own_) slot_->busy = false;
}

fault wire_reader::start() {
  std::string& buf = slot_->buffer;
  const simdjson::padded_string_view json(buf.data(), buf.size(), buf.capacity());
  if (const auto e = slot_->parser.iterate(json).get(doc_)) return json_error(e);
  started_ = true;
  return std::nullopt;
}

void wire_reader::rewind() {
  path_.clear();
  doc_.rewind();
}

fault wire_reader::root_object(od::object& out) {
  od::json_type t{};
  if (const auto e = doc_.type().get(t)) {
    std::string_view raw;
    if (doc_.raw_json_token().get(raw) == simdjson::SUCCESS) {
      while (!raw.empty() && json_space(raw.back())) raw.remove_suffix(1);
      if (non_finite_literal(raw)) {
        return error(error_code::bad_json,
                     detail::cat(wire_quoted(raw), " is not JSON (JSON has no NaN or infinity)"));
      }
    }
    return json_error(e);
  }
  if (t != od::json_type::object) {
    // A scalar document must still be valid JSON to be called the wrong type.
    if (t != od::json_type::array) {
      std::string_view raw;
      if (doc_.raw_json_token().get(raw) == simdjson::SUCCESS) {
        while (!raw.empty() && json_space(raw.back())) raw.remove_suffix(1);
        const bool ok = t == od::json_type::string   ? raw.size() >= 2
                        : t == od::json_type::number ? json_number_grammar(raw)
                        : t == od::json_type::null   ? raw == "null"
                                                     : (raw == "true" || raw == "false");
        if (!ok) return json_error(simdjson::TAPE_ERROR);
      }
    }
    return error(error_code::bad_request,
                 detail::cat("expected a JSON object, got ", type_name(t)));
  }
  if (const auto e = doc_.get_object().get(out)) return json_error(e);
  return std::nullopt;
}

fault wire_reader::finish() {
  const char* rest = nullptr;
  if (doc_.current_location().get(rest) == simdjson::SUCCESS) {
    path_.clear();
    return error(error_code::bad_json, detail::cat("trailing content at byte ", rest - text_.data(),
                                                   " after the JSON document"));
  }
  return std::nullopt;
}

std::string wire_reader::path() const {
  std::string out;
  for (const step& p : path_) {
    if (p.is_index) {
      detail::append(&out, "[", p.index, "]");
    } else {
      if (!out.empty()) out += '.';
      out += path_step(p.key);
    }
  }
  return out;
}

wire_error wire_reader::error(error_code c, std::string_view reason) const {
  std::string p = path();
  if (p.empty()) return {c, std::string(reason)};
  detail::append(&p, ": ", reason);
  return {c, std::move(p)};
}

wire_error wire_reader::json_error(simdjson::error_code e) {
  std::string where;
  const char* p = nullptr;
  if (started_ && doc_.current_location().get(p) == simdjson::SUCCESS && p >= text_.data() &&
      p <= text_.data() + text_.size()) {
    where = detail::cat(" at byte ", p - text_.data());
  }
  std::string reason;
  switch (e) {
    case simdjson::INCOMPLETE_ARRAY_OR_OBJECT: {
      const std::size_t end = root_end(text_);
      std::size_t i = end;
      while (i < text_.size() && json_space(text_[i])) ++i;
      if (end == std::string_view::npos) {
        reason = "truncated JSON: the message ends before every object and array is closed";
      } else if (i < text_.size()) {
        reason = detail::cat("trailing content at byte ", i, " after the JSON document");
      } else {
        reason = "malformed JSON: unbalanced brackets or braces";
      }
      break;
    }
    case simdjson::TAPE_ERROR:
      reason = detail::cat("malformed JSON", where,
                           ": a missing or extra comma, colon, bracket or brace, or an invalid "
                           "literal");
      break;
    case simdjson::UNCLOSED_STRING:
      reason = "truncated JSON: a string is opened but never closed";
      break;
    case simdjson::STRING_ERROR:
      reason = detail::cat("malformed JSON", where, ": an invalid escape in a string");
      break;
    case simdjson::UNESCAPED_CHARS:
      reason = "malformed JSON: a control character inside a string must be escaped";
      break;
    case simdjson::UTF8_ERROR:
      reason = "the message is not valid UTF-8";
      break;
    case simdjson::DEPTH_ERROR:
      reason = "malformed JSON: nested too deeply";
      break;
    case simdjson::EMPTY:
      reason = "empty message: expected a JSON object";
      break;
    case simdjson::N_ATOM_ERROR:
    case simdjson::T_ATOM_ERROR:
    case simdjson::F_ATOM_ERROR:
      reason = detail::cat("malformed JSON", where,
                           ": an invalid literal (expected true, false or null)");
      break;
    case simdjson::NUMBER_ERROR:
      reason = detail::cat("malformed JSON", where, ": an invalid number");
      break;
    case simdjson::CAPACITY:
      reason = "the message is too large to parse";
      break;
    default:
      reason = detail::cat("malformed JSON", where, ": ", simdjson::error_message(e));
      break;
  }
  return error(error_code::bad_json, reason);
}

wire_error wire_reader::missing(std::string_view key) const {
  return error(error_code::bad_request, detail::cat("missing required field '", key, "'"));
}

wire_error wire_reader::repeated(std::string_view key) const {
  return error(error_code::bad_request, detail::cat("key ", wire_quoted(key), " is given twice"));
}

wire_error wire_reader::unknown_key(std::string_view key,
                                    std::span<const std::string_view> known) const {
  std::string expected;
  for (const std::string_view k : known) detail::append(&expected, expected.empty() ? "" : ", ", k);
  return error(error_code::bad_request,
               detail::cat("unknown key ", wire_quoted(key), " (expected one of: ", expected, ")"));
}

wire_error wire_reader::non_finite(std::string_view raw, error_code c) const {
  return error(c, detail::cat("must be a finite number, got ", wire_quoted(raw),
                              " (JSON has no NaN or infinity)"));
}

fault wire_reader::expect(od::value& v, od::json_type want, error_code range_code) {
  od::json_type t{};
  if (const auto e = v.type().get(t)) {
    const std::string_view raw = trimmed_token(v);
    if (non_finite_literal(raw)) {
      if (want == od::json_type::number) return non_finite(raw, range_code);
      return error(error_code::bad_json,
                   detail::cat(wire_quoted(raw), " is not JSON (JSON has no NaN or infinity)"));
    }
    return json_error(e);
  }
  if (t == od::json_type::null || t == od::json_type::boolean) {
    // The type comes from the first byte only: check the whole literal.
    const std::string_view raw = trimmed_token(v);
    if (raw != "null" && raw != "true" && raw != "false") {
      if (want == od::json_type::number && non_finite_literal(raw)) {
        return non_finite(raw, range_code);
      }
      if (non_finite_literal(raw)) {
        return error(error_code::bad_json,
                     detail::cat(wire_quoted(raw), " is not JSON (JSON has no NaN or infinity)"));
      }
      return json_error(simdjson::N_ATOM_ERROR);
    }
  }
  if (t != want) {
    return error(error_code::bad_request,
                 detail::cat("expected ", type_name(want), ", got ", type_name(t)));
  }
  return std::nullopt;
}

fault wire_reader::read_number(od::value& v, double& out, error_code range_code) {
  if (fault f = expect(v, od::json_type::number, range_code)) return f;
  const std::string_view raw = trimmed_token(v);
  if (v.get_double().get(out) != simdjson::SUCCESS || !std::isfinite(out)) {
    if (non_finite_literal(raw)) return non_finite(raw, range_code);
    if (!json_number_grammar(raw)) return json_error(simdjson::NUMBER_ERROR);
    return error(range_code, detail::cat("must be a finite number, got ", raw,
                                         " (beyond the range of a double)"));
  }
  return std::nullopt;
}

fault wire_reader::read_uint(od::value& v, std::uint64_t lo, std::uint64_t hi, std::uint64_t& out) {
  if (fault f = expect(v, od::json_type::number)) return f;
  const std::string_view raw = trimmed_token(v);
  if (v.get_uint64().get(out) != simdjson::SUCCESS || out < lo || out > hi) {
    if (!json_number_grammar(raw) && !non_finite_literal(raw)) {
      return json_error(simdjson::NUMBER_ERROR);
    }
    return error(error_code::bad_request,
                 detail::cat("must be an integer in [", lo, ", ", hi, "], got ", wire_quoted(raw)));
  }
  return std::nullopt;
}

fault wire_reader::read_string(od::value& v, std::string_view& out) {
  if (fault f = expect(v, od::json_type::string)) return f;
  if (const auto e = v.get_string().get(out)) return json_error(e);
  return std::nullopt;
}

fault wire_reader::read_object(od::value& v, od::object& out) {
  if (fault f = expect(v, od::json_type::object)) return f;
  if (const auto e = v.get_object().get(out)) return json_error(e);
  return std::nullopt;
}

fault wire_reader::read_array(od::value& v, od::array& out) {
  if (fault f = expect(v, od::json_type::array)) return f;
  if (const auto e = v.get_array().get(out)) return json_error(e);
  return std::nullopt;
}

fault wire_reader::read_price(od::value& v, double& out) {
  const std::string_view raw = trimmed_token(v);
  if (fault f = read_number(v, out, error_code::bad_price)) {
    if (f->code == error_code::bad_price) {
      // Say what a price must be, whatever made this one unreadable.
      f->message = error(error_code::bad_price,
                         detail::cat("must be a finite number > 0, got ", wire_quoted(raw),
                                     non_finite_literal(raw) ? " (JSON has no NaN or infinity)"
                                                             : " (beyond the range of a double)"))
                       .message;
    }
    return f;
  }
  if (!(out > 0.0)) {
    return error(error_code::bad_price, detail::cat("must be a finite number > 0, got ", raw));
  }
  return std::nullopt;
}

fault wire_reader::read_amount(od::value& v, double& out) {
  if (fault f = read_number(v, out)) return f;
  if (!(out >= 0.0)) {
    return error(error_code::bad_request,
                 detail::cat("must be a finite number >= 0, got ", trimmed_token(v)));
  }
  return std::nullopt;
}

fault wire_reader::read_asset(od::value& v, const market& m, asset_id& out) {
  std::string_view s;
  if (fault f = read_string(v, s)) return f;
  const auto a = m.find_asset(s);
  if (!a) return error(error_code::unknown_asset, detail::cat("unknown asset ", wire_quoted(s)));
  out = *a;
  return std::nullopt;
}

fault wire_reader::read_protocol(od::value& v, const market& m, protocol_id& out) {
  std::string_view s;
  if (fault f = read_string(v, s)) return f;
  const auto p = m.find_protocol(s);
  if (!p) {
    return error(error_code::unknown_protocol, detail::cat("unknown protocol ", wire_quoted(s)));
  }
  out = *p;
  return std::nullopt;
}

fault wire_reader::read_scalar_json(od::value& v, std::string& out) {
  od::json_type t{};
  if (const auto e = v.type().get(t)) {
    const std::string_view raw = trimmed_token(v);
    if (non_finite_literal(raw)) {
      return error(error_code::bad_json,
                   detail::cat(wire_quoted(raw), " is not JSON (JSON has no NaN or infinity)"));
    }
    return json_error(e);
  }
  out.clear();
  switch (t) {
    case od::json_type::object:
    case od::json_type::array:
      return error(
          error_code::bad_request,
          detail::cat("must be a number, a string, true, false or null, got ", type_name(t)));
    case od::json_type::number: {
      const std::string_view raw = trimmed_token(v);
      std::int64_t i = 0;
      std::uint64_t u = 0;
      double d = 0.0;
      if (!json_number_grammar(raw)) {
        if (non_finite_literal(raw)) {
          return error(error_code::bad_json,
                       detail::cat(wire_quoted(raw), " is not JSON (JSON has no NaN or infinity)"));
        }
        return json_error(simdjson::NUMBER_ERROR);
      }
      if (v.get_int64().get(i) == simdjson::SUCCESS) {
        detail::append(&out, i);
      } else if (v.get_uint64().get(u) == simdjson::SUCCESS) {
        detail::append(&out, u);
      } else if (v.get_double().get(d) == simdjson::SUCCESS && std::isfinite(d)) {
        // -0 and 0 are one number, echoed as 0 (as the integer -0 is), so that the
        // canonical form sent back is echoed unchanged.
        append_json_number(out, d == 0.0 ? 0.0 : d);
      } else {
        return error(error_code::bad_request, detail::cat("must be a finite number, got ", raw,
                                                          " (beyond the range of a double)"));
      }
      return std::nullopt;
    }
    case od::json_type::string: {
      std::string_view s;
      if (const auto e = v.get_string().get(s)) return json_error(e);
      append_json_string(out, s);
      return std::nullopt;
    }
    case od::json_type::boolean: {
      bool b = false;
      if (v.get_bool().get(b) != simdjson::SUCCESS || trimmed_token(v) != (b ? "true" : "false")) {
        return json_error(simdjson::T_ATOM_ERROR);
      }
      out = b ? "true" : "false";
      return std::nullopt;
    }
    case od::json_type::null: {
      bool null = false;
      if (v.is_null().get(null) != simdjson::SUCCESS || !null || trimmed_token(v) != "null") {
        return json_error(simdjson::N_ATOM_ERROR);
      }
      out = "null";
      return std::nullopt;
    }
  }
  return json_error(simdjson::TAPE_ERROR);
}

fault wire_reader::check_value(od::value& v, std::size_t depth) {
  od::json_type t{};
  if (const auto e = v.type().get(t)) {
    const std::string_view raw = trimmed_token(v);
    if (non_finite_literal(raw)) {
      return error(error_code::bad_json,
                   detail::cat(wire_quoted(raw), " is not JSON (JSON has no NaN or infinity)"));
    }
    return json_error(e);
  }
  if (depth >= max_unused_depth && (t == od::json_type::array || t == od::json_type::object)) {
    return error(error_code::bad_request,
                 detail::cat("nested more than ", max_unused_depth, " levels deep"));
  }
  switch (t) {
    case od::json_type::array: {
      od::array arr;
      if (const auto e = v.get_array().get(arr)) return json_error(e);
      return for_each_element(arr,
                              [&](std::size_t, od::value& x) { return check_value(x, depth + 1); });
    }
    case od::json_type::object: {
      od::object obj;
      if (const auto e = v.get_object().get(obj)) return json_error(e);
      return for_each_field(
          obj, [&](std::string_view, od::value& x) { return check_value(x, depth + 1); });
    }
    default: {
      std::string ignored;
      return read_scalar_json(v, ignored);
    }
  }
}

fault tick_reader::field(wire_reader& r, std::string_view k, od::value& v) {
  const std::size_t i = keys_.find(k);
  if (i == names.size()) return r.unknown_key(k, names);
  if (!keys_.mark(i)) return r.repeated(k);
  switch (i) {
    case 0:
      return r.read_asset(v, m_, tick_.asset);
    case 1:
      return r.read_price(v, tick_.price);
    case 2: {
      std::string_view s;
      if (fault f = r.read_string(v, s)) return f;
      if (s.empty() || s.size() > max_source_bytes) {
        return r.error(error_code::bad_request,
                       detail::cat("must be a string of 1 to ", max_source_bytes, " bytes, got ",
                                   s.size(), " bytes"));
      }
      tick_.source.assign(s);
      return std::nullopt;
    }
    default: {
      if (fault f = r.read_number(v, tick_.ts)) return f;
      if (!(tick_.ts >= 0.0)) {
        return r.error(error_code::bad_request,
                       detail::cat("must be unix seconds >= 0, got ", tick_.ts));
      }
      if (tick_.ts > max_ts) {
        std::string got;
        append_json_number(got, tick_.ts);  // all its digits: 6 could read as max_ts
        return r.error(error_code::bad_request,
                       detail::cat("must be unix seconds up to ", static_cast<std::int64_t>(max_ts),
                                   " (9999-12-31), got ", got));
      }
      return std::nullopt;
    }
  }
}

fault tick_reader::finish(wire_reader& r, price_tick& out) {
  for (const std::size_t required : {0, 1}) {
    if (!keys_.seen(required)) return r.missing(keys_.name(required));
  }
  if (!keys_.seen(2)) tick_.source.assign(default_source_);
  out = std::move(tick_);
  return std::nullopt;
}

fault read_tick(wire_reader& r, od::value& v, const market& m, std::string_view default_source,
                price_tick& out) {
  od::object obj;
  if (fault f = r.read_object(v, obj)) return f;
  tick_reader t(m, default_source);
  if (fault f = r.for_each_field(
          obj, [&](std::string_view k, od::value& x) { return t.field(r, k, x); })) {
    return f;
  }
  return t.finish(r, out);
}

fault read_ticks(wire_reader& r, od::value& v, const market& m, std::size_t max_batch,
                 std::string_view default_source, std::vector<price_tick>& out) {
  od::array arr;
  if (fault f = r.read_array(v, arr)) return f;
  out.clear();
  const std::string at = r.path();
  if (fault f = r.for_each_element(arr, [&](std::size_t i, od::value& x) -> fault {
        if (i >= max_batch) {
          return wire_error{error_code::too_large,
                            detail::cat(at, at.empty() ? "" : ": ", "more than ", max_batch,
                                        " ticks in one batch (the server's max_batch)")};
        }
        return read_tick(r, x, m, default_source, out.emplace_back());
      })) {
    out.clear();
    return f;
  }
  if (out.empty()) {
    return r.error(error_code::bad_request, "empty: a batch holds at least one tick");
  }
  return std::nullopt;
}

}  // namespace cascade::proto::detail
