#include "proto/config.hpp"

#include <absl/strings/str_cat.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <toml++/toml.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iterator>
#include <limits>

#include "proto/input_error.hpp"

namespace cascade::proto {

namespace {

std::string_view type_name(toml::node_type t) {
  switch (t) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

std::string join(std::string_view path, std::string_view key) {
  const std::string step = detail::path_key(key);
  return path.empty() ? step : detail::cat(path, ".", step);
}

// The [server] keys other than `tokens`: their types and ranges, shared by the TOML
// decoder and the text overrides (--set, CASCADE_SERVER_KEY) so both check alike.
enum class server_kind : std::uint8_t { text, integer, number, role };

struct server_key {
  std::string_view name;
  server_kind kind;
  std::int64_t lo = 0;  // integers: the inclusive range
  std::int64_t hi = 0;
};

constexpr server_key server_keys[] = {
    {"bind", server_kind::text},
    {"port", server_kind::integer, 0, 65535},
    {"io_threads", server_kind::integer, 1, 64},
    {"anonymous_role", server_kind::role},
    {"max_connections", server_kind::integer, 1, 1'000'000},
    {"max_body_bytes", server_kind::integer, 1024, std::int64_t{1} << 30},
    {"max_frame_bytes", server_kind::integer, 1024, std::int64_t{1} << 30},
    {"max_batch", server_kind::integer, 1, 10'000'000},
    {"send_queue", server_kind::integer, 1, 10'000'000},
    {"ring_events", server_kind::integer, 1, 100'000'000},
    {"inbox_capacity", server_kind::integer, 16, 100'000'000},
    {"projection_interval_ms", server_kind::integer, 0, 3'600'000},
    {"volatility_half_life_hours", server_kind::number},
    {"risk_horizon_hours", server_kind::number},
};

const server_key* find_server_key(std::string_view name) {
  for (const server_key& k : server_keys) {
    if (k.name == name) return &k;
  }
  return nullptr;
}

// What the server can listen on: "localhost", or an IPv4 / IPv6 literal (an IPv6 one may
// carry a %scope).
bool is_ip_literal(const std::string& a) {
  if (a == "localhost") return true;
  unsigned char buf[sizeof(in6_addr)];
  if (inet_pton(AF_INET, a.c_str(), buf) == 1) return true;
  const std::string v6 = a.substr(0, a.find('%'));
  return inet_pton(AF_INET6, v6.c_str(), buf) == 1;
}

struct server_value {
  std::string text;
  std::int64_t integer = 0;
  double number = 0.0;
};

// Checks `v` against `k` and sets it; returns why it was refused (empty: set).
std::string set_server_value(server_settings& s, const server_key& k, const server_value& v) {
  switch (k.kind) {
    case server_kind::text:
      if (v.text.empty()) return "the address is empty";
      // Checked here, so a bad address is refused before the book is loaded; the server
      // resolves no names (start-up never waits on DNS).
      if (!is_ip_literal(v.text)) {
        return detail::cat(detail::quoted(v.text),
                           " is not an IP address (an IPv4 or IPv6 literal, or localhost)");
      }
      s.bind = v.text;
      return {};
    case server_kind::role: {
      const auto r = parse_role(v.text);
      if (!r) {
        return detail::cat("unknown role ", detail::quoted(v.text),
                           " (expected none, read, price or admin)");
      }
      s.anonymous = *r;
      return {};
    }
    case server_kind::number: {
      if (!is_positive_finite(v.number)) {
        return detail::cat(k.name, " must be a finite number > 0, got ", v.number);
      }
      (k.name == "volatility_half_life_hours" ? s.volatility_half_life_hours
                                              : s.risk_horizon_hours) = v.number;
      return {};
    }
    case server_kind::integer:
      break;
  }
  const std::int64_t x = v.integer;
  if (x < k.lo || x > k.hi) {
    std::string why = detail::cat(k.name, " ", x, " is outside [", k.lo, ", ", k.hi, "]");
    if (k.name == "port") why += " (0 picks a free port)";
    return why;
  }
  const auto u = static_cast<std::uint64_t>(x);
  if (k.name == "port") {
    s.port = static_cast<std::uint16_t>(u);
  } else if (k.name == "io_threads") {
    s.io_threads = static_cast<std::uint32_t>(u);
  } else if (k.name == "max_connections") {
    s.max_connections = u;
  } else if (k.name == "max_body_bytes") {
    s.max_body_bytes = u;
  } else if (k.name == "max_frame_bytes") {
    s.max_frame_bytes = u;
  } else if (k.name == "max_batch") {
    s.max_batch = u;
  } else if (k.name == "send_queue") {
    s.send_queue = u;
  } else if (k.name == "ring_events") {
    s.ring_events = u;
  } else if (k.name == "inbox_capacity") {
    s.inbox_capacity = u;
  } else {
    s.projection_interval_ms = static_cast<std::uint32_t>(u);
  }
  return {};
}

// Largest token accepted, in bytes.
constexpr std::size_t max_token_bytes = 4096;

// Why a token cannot be used (empty: it can). Never quotes the token.
std::string_view token_problem(std::string_view token) {
  if (token.empty()) return "the token is empty";
  if (token.size() > max_token_bytes) return "the token is longer than 4096 bytes";
  for (const char c : token) {
    if (c <= ' ' || c > '~') {
      return "the token holds a space, a control character or a non-ASCII byte (tokens are "
             "visible ASCII, sent in an Authorization header or a query string)";
    }
  }
  return {};
}

class config_decoder {
 public:
  config_decoder(const toml::table& root, std::string_view source, std::string_view base_dir)
      : root_(root), source_(source), base_dir_(base_dir) {}

  absl::StatusOr<config> run();

 private:
  [[nodiscard]] absl::Status fail(const toml::node& n, std::string_view path,
                                  std::string_view reason) const {
    return detail::input_error(source_, n.source().begin.line, path, reason);
  }
  // Points at the node at `path` when it exists, else at `fallback`.
  [[nodiscard]] absl::Status fail_at_path(std::string_view path, const toml::node& fallback,
                                          std::string_view reason) const {
    const toml::node* n = toml::at_path(root_, path).node();
    return fail(n != nullptr ? *n : fallback, path, reason);
  }

  // Refuses a key of `t` not in `known`.
  template <std::size_t N>
  absl::Status check_keys(const toml::table& t, std::string_view path,
                          const std::array<std::string_view, N>& known) const;
  absl::Status require(const toml::table& t, std::string_view path,
                       std::initializer_list<std::string_view> keys) const;

  absl::Status as_table(const toml::node& n, std::string_view path, const toml::table*& out) const;
  absl::Status as_array(const toml::node& n, std::string_view path, const toml::array*& out) const;
  absl::Status read_float(const toml::node& n, std::string_view path, double& out) const;
  absl::Status read_int(const toml::node& n, std::string_view path, std::int64_t& out) const;
  absl::Status read_string(const toml::node& n, std::string_view path, std::string& out) const;
  absl::Status read_bool(const toml::node& n, std::string_view path, bool& out) const;

  absl::Status decode_server(const toml::node& n, server_settings& out) const;
  absl::Status decode_tokens(const toml::node& n, server_settings& out) const;
  absl::Status decode_bands(const toml::node& n, band_config& out) const;
  absl::Status decode_book(const toml::node& n, book_options& out) const;
  absl::Status decode_positions(const toml::node& n, positions_source& out) const;
  absl::Status decode_pool(const toml::node& n, std::string_view path, pool& out) const;
  absl::Status decode_derived(const toml::node& n, std::string_view path, derivation& out) const;
  absl::Status decode_assets(const toml::node& n, config& out) const;
  absl::Status decode_venues(const toml::node& n, std::string_view path, liquidity_spec& out) const;
  absl::Status decode_withdrawal(const toml::node& n, std::string_view path,
                                 withdrawal_spec& out) const;
  absl::Status decode_protocols(const toml::node& n, market& m) const;
  absl::Status decode_oracle(const toml::node& n, config& out) const;
  absl::Status decode_feed(const toml::node& n, std::string_view path, const market& m,
                           feed_spec& out) const;

  const toml::table& root_;
  std::string_view source_;
  std::string_view base_dir_;
};

template <std::size_t N>
absl::Status config_decoder::check_keys(const toml::table& t, std::string_view path,
                                        const std::array<std::string_view, N>& known) const {
  for (auto&& [k, v] : t) {
    bool ok = false;
    for (const std::string_view name : known) ok = ok || k.str() == name;
    if (!ok) {
      std::string expected;
      for (const std::string_view name : known) {
        detail::append(&expected, expected.empty() ? "" : ", ", name);
      }
      return fail(v, join(path, k.str()),
                  detail::cat("unknown key ", detail::quoted(k.str()),
                              " (expected one of: ", expected, ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status config_decoder::require(const toml::table& t, std::string_view path,
                                     std::initializer_list<std::string_view> keys) const {
  for (const std::string_view k : keys) {
    if (!t.contains(k))
      return fail(t, path, detail::cat("missing required key ", detail::quoted(k)));
  }
  return absl::OkStatus();
}

absl::Status config_decoder::as_table(const toml::node& n, std::string_view path,
                                      const toml::table*& out) const {
  out = n.as_table();
  if (out == nullptr)
    return fail(n, path, detail::cat("expected a table, got ", type_name(n.type())));
  return absl::OkStatus();
}

absl::Status config_decoder::as_array(const toml::node& n, std::string_view path,
                                      const toml::array*& out) const {
  out = n.as_array();
  if (out == nullptr) {
    return fail(n, path, detail::cat("expected an array of tables, got ", type_name(n.type())));
  }
  return absl::OkStatus();
}

absl::Status config_decoder::read_float(const toml::node& n, std::string_view path,
                                        double& out) const {
  if (const auto* f = n.as_floating_point()) {
    out = f->get();
  } else if (const auto* i = n.as_integer()) {
    out = static_cast<double>(i->get());
  } else {
    return fail(n, path, detail::cat("expected a number, got ", type_name(n.type())));
  }
  return absl::OkStatus();
}

absl::Status config_decoder::read_int(const toml::node& n, std::string_view path,
                                      std::int64_t& out) const {
  const auto* i = n.as_integer();
  if (i == nullptr)
    return fail(n, path, detail::cat("expected an integer, got ", type_name(n.type())));
  out = i->get();
  return absl::OkStatus();
}

absl::Status config_decoder::read_string(const toml::node& n, std::string_view path,
                                         std::string& out) const {
  const auto* s = n.as_string();
  if (s == nullptr)
    return fail(n, path, detail::cat("expected a string, got ", type_name(n.type())));
  out = s->get();
  return absl::OkStatus();
}

absl::Status config_decoder::read_bool(const toml::node& n, std::string_view path,
                                       bool& out) const {
  const auto* b = n.as_boolean();
  if (b == nullptr) {
    return fail(n, path, detail::cat("expected a boolean, got ", type_name(n.type())));
  }
  out = b->get();
  return absl::OkStatus();
}

absl::Status config_decoder::decode_server(const toml::node& n, server_settings& out) const {
  const toml::table* t = nullptr;
  if (auto s = as_table(n, "server", t); !s.ok()) return s;
  std::array<std::string_view, std::size(server_keys) + 1> known{};
  for (std::size_t i = 0; i < std::size(server_keys); ++i) known[i] = server_keys[i].name;
  known.back() = "tokens";
  if (auto s = check_keys(*t, "server", known); !s.ok()) return s;
  for (auto&& [k, v] : *t) {
    const std::string path = join("server", k.str());
    if (k.str() == "tokens") {
      if (auto s = decode_tokens(v, out); !s.ok()) return s;
      continue;
    }
    const server_key* key = find_server_key(k.str());
    if (key == nullptr) continue;  // check_keys refused every other key
    const server_key& spec = *key;
    server_value x;
    absl::Status read;
    switch (spec.kind) {
      case server_kind::text:
      case server_kind::role:
        read = read_string(v, path, x.text);
        break;
      case server_kind::integer:
        read = read_int(v, path, x.integer);
        break;
      case server_kind::number:
        read = read_float(v, path, x.number);
        break;
    }
    if (!read.ok()) return read;
    if (const std::string why = set_server_value(out, spec, x); !why.empty()) {
      return fail(v, path, why);
    }
  }
  return absl::OkStatus();
}

absl::Status config_decoder::decode_tokens(const toml::node& n, server_settings& out) const {
  const toml::array* arr = nullptr;
  if (auto s = as_array(n, "server.tokens", arr); !s.ok()) return s;
  for (std::size_t i = 0; i < arr->size(); ++i) {
    const std::string path = detail::cat("server.tokens[", i, "]");
    const toml::table* t = nullptr;
    if (auto s = as_table(*arr->get(i), path, t); !s.ok()) return s;
    if (auto s =
            check_keys(*t, path, std::array<std::string_view, 3>{"role", "token", "token_env"});
        !s.ok()) {
      return s;
    }
    if (auto s = require(*t, path, {"role"}); !s.ok()) return s;
    const toml::node& role_node = *t->get("role");
    std::string role_text;
    if (auto s = read_string(role_node, join(path, "role"), role_text); !s.ok()) return s;
    const auto grants = parse_role(role_text);
    if (!grants || *grants == role::none) {
      return fail(role_node, join(path, "role"),
                  detail::cat("unknown role ", detail::quoted(role_text),
                              " (a token grants read, price or admin)"));
    }
    const toml::node* literal = t->get("token");
    const toml::node* env = t->get("token_env");
    if ((literal == nullptr) == (env == nullptr)) {
      return fail(*t, path,
                  literal != nullptr
                      ? "give either token or token_env, not both"
                      : "missing the token: give token_env = \"VARIABLE\" (or token = \"...\", "
                        "for tests)");
    }
    token_spec spec;
    spec.grants = *grants;
    if (literal != nullptr) {
      if (auto s = read_string(*literal, join(path, "token"), spec.token); !s.ok()) return s;
      if (const std::string_view why = token_problem(spec.token); !why.empty()) {
        return fail(*literal, join(path, "token"), why);
      }
    } else {
      std::string var;
      if (auto s = read_string(*env, join(path, "token_env"), var); !s.ok()) return s;
      if (var.empty()) return fail(*env, join(path, "token_env"), "the variable name is empty");
      const char* value = std::getenv(var.c_str());
      if (value == nullptr || *value == '\0') {
        return fail(
            *env, join(path, "token_env"),
            detail::cat("environment variable ", detail::quoted(var), " is unset or empty"));
      }
      spec.token = value;
      if (const std::string_view why = token_problem(spec.token); !why.empty()) {
        return fail(*env, join(path, "token_env"),
                    detail::cat("environment variable ", detail::quoted(var), ": ", why));
      }
    }
    for (std::size_t j = 0; j < out.tokens.size(); ++j) {
      if (out.tokens[j].token == spec.token) {
        return fail(*t, path,
                    detail::cat("the same token is given twice (also server.tokens[", j, "])"));
      }
    }
    out.tokens.push_back(std::move(spec));
  }
  return absl::OkStatus();
}

absl::Status config_decoder::decode_bands(const toml::node& n, band_config& out) const {
  const toml::table* t = nullptr;
  if (auto s = as_table(n, "bands", t); !s.ok()) return s;
  constexpr std::array<std::string_view, 4> keys{"warn", "danger", "liquidatable", "hysteresis"};
  if (auto s = check_keys(*t, "bands", keys); !s.ok()) return s;
  std::array<double*, 4> fields{&out.warn, &out.danger, &out.liquidatable, &out.hysteresis};
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (const toml::node* v = t->get(keys[i])) {
      if (auto s = read_float(*v, join("bands", keys[i]), *fields[i]); !s.ok()) return s;
    }
  }
  // The rules relate the thresholds to each other: point at the table.
  if (auto s = out.validate(); !s.ok()) return fail(*t, "", detail::text(s));
  return absl::OkStatus();
}

absl::Status config_decoder::decode_book(const toml::node& n, book_options& out) const {
  const toml::table* t = nullptr;
  if (auto s = as_table(n, "book", t); !s.ok()) return s;
  constexpr std::array<std::string_view, 5> keys{"scan_fraction", "anchor_updates", "anchor_range",
                                                 "max_legs", "realizable"};
  if (auto s = check_keys(*t, "book", keys); !s.ok()) return s;
  // Each option is checked on its own (with default bands) so that a refusal points at
  // its key; the fields are independent.
  for (auto&& [k, v] : *t) {
    const std::string path = join("book", k.str());
    book_options one;
    if (k.str() == "realizable") {
      const auto* flag = v.as_boolean();
      if (flag == nullptr) return fail(v, path, "expected true or false");
      out.realizable = flag->get();
      continue;
    }
    if (k.str() == "scan_fraction" || k.str() == "anchor_range") {
      double x = 0.0;
      if (auto s = read_float(v, path, x); !s.ok()) return s;
      (k.str() == "scan_fraction" ? one.scan_fraction : one.anchor_range) = x;
      (k.str() == "scan_fraction" ? out.scan_fraction : out.anchor_range) = x;
    } else {
      std::int64_t x = 0;
      if (auto s = read_int(v, path, x); !s.ok()) return s;
      if (x < 0 || x > std::numeric_limits<std::uint32_t>::max()) {
        return fail(v, path, detail::cat(x, " is outside the range of a 32-bit unsigned integer"));
      }
      const auto u = static_cast<std::uint32_t>(x);
      (k.str() == "anchor_updates" ? one.anchor_updates : one.max_legs) = u;
      (k.str() == "anchor_updates" ? out.anchor_updates : out.max_legs) = u;
    }
    if (auto s = one.validate(); !s.ok()) {
      std::string_view why = detail::text(s);
      if (why.starts_with("book: ")) why.remove_prefix(6);  // the path already says so
      return fail(v, path, why);
    }
  }
  return absl::OkStatus();
}

absl::Status config_decoder::decode_positions(const toml::node& n, positions_source& out) const {
  const toml::table* t = nullptr;
  if (auto s = as_table(n, "positions", t); !s.ok()) return s;
  if (auto s =
          check_keys(*t, "positions", std::array<std::string_view, 3>{"file", "generate", "seed"});
      !s.ok()) {
    return s;
  }
  const toml::node* file = t->get("file");
  const toml::node* generate = t->get("generate");
  if ((file == nullptr) == (generate == nullptr)) {
    return fail(*t, "positions",
                file != nullptr
                    ? "give either file or generate, not both"
                    : "missing a source: give file = \"positions.csv\" or generate = N");
  }
  if (file != nullptr) {
    std::string f;
    if (auto s = read_string(*file, "positions.file", f); !s.ok()) return s;
    if (f.empty()) return fail(*file, "positions.file", "the path is empty");
    std::filesystem::path p(f);
    if (!base_dir_.empty() && p.is_relative()) p = std::filesystem::path(base_dir_) / p;
    out.file = p.lexically_normal().string();
  } else {
    std::int64_t g = 0;
    if (auto s = read_int(*generate, "positions.generate", g); !s.ok()) return s;
    if (g < 1 || static_cast<std::uint64_t>(g) > max_generated_positions) {
      return fail(*generate, "positions.generate",
                  detail::cat(g, " is outside [1, ", max_generated_positions, "]"));
    }
    out.generate = static_cast<std::uint64_t>(g);
  }
  if (const toml::node* seed = t->get("seed")) {
    std::int64_t s = 0;
    if (auto st = read_int(*seed, "positions.seed", s); !st.ok()) return st;
    if (s < 0) return fail(*seed, "positions.seed", detail::cat("seed ", s, " is negative"));
    out.seed = static_cast<std::uint64_t>(s);
  }
  return absl::OkStatus();
}

absl::Status config_decoder::decode_pool(const toml::node& n, std::string_view path,
                                         pool& out) const {
  const toml::table* t = nullptr;
  if (auto s = as_table(n, path, t); !s.ok()) return s;
  if (auto s = check_keys(*t, path, std::array<std::string_view, 2>{"base", "quote"}); !s.ok()) {
    return s;
  }
  if (auto s = require(*t, path, {"base", "quote"}); !s.ok()) return s;
  if (auto s = read_float(*t->get("base"), join(path, "base"), out.base); !s.ok()) return s;
  return read_float(*t->get("quote"), join(path, "quote"), out.quote);
}

absl::Status config_decoder::decode_derived(const toml::node& n, std::string_view path,
                                            derivation& out) const {
  const toml::table* t = nullptr;
  if (auto s = as_table(n, path, t); !s.ok()) return s;
  if (auto s = check_keys(*t, path,
                          std::array<std::string_view, 3>{"base", "ratio_pool", "sell_through"});
      !s.ok()) {
    return s;
  }
  if (auto s = require(*t, path, {"base"}); !s.ok()) return s;
  if (auto s = read_string(*t->get("base"), join(path, "base"), out.base); !s.ok()) return s;
  if (const toml::node* rp = t->get("ratio_pool")) {
    if (auto s = decode_pool(*rp, join(path, "ratio_pool"), out.ratio_pool.emplace()); !s.ok()) {
      return s;
    }
  }
  if (const toml::node* st = t->get("sell_through")) {
    return read_bool(*st, join(path, "sell_through"), out.sell_through);
  }
  return absl::OkStatus();
}

absl::Status config_decoder::decode_venues(const toml::node& n, std::string_view path,
                                           liquidity_spec& out) const {
  const toml::array* arr = nullptr;
  if (auto s = as_array(n, path, arr); !s.ok()) return s;
  for (std::size_t i = 0; i < arr->size(); ++i) {
    const std::string vpath = detail::cat(path, "[", i, "]");
    const toml::table* t = nullptr;
    if (auto s = as_table(*arr->get(i), vpath, t); !s.ok()) return s;
    if (auto s = check_keys(*t, vpath, std::array<std::string_view, 3>{"name", "pool", "depth"});
        !s.ok()) {
      return s;
    }
    if (auto s = require(*t, vpath, {"name"}); !s.ok()) return s;
    venue_spec& v = out.venues.emplace_back();
    if (auto s = read_string(*t->get("name"), join(vpath, "name"), v.name); !s.ok()) return s;
    if (const toml::node* p = t->get("pool")) {
      if (auto s = decode_pool(*p, join(vpath, "pool"), v.cp.emplace()); !s.ok()) return s;
    }
    if (const toml::node* d = t->get("depth")) {
      const toml::array* pts = nullptr;
      const std::string dpath = join(vpath, "depth");
      if (auto s = as_array(*d, dpath, pts); !s.ok()) return s;
      for (std::size_t j = 0; j < pts->size(); ++j) {
        const std::string ppath = detail::cat(dpath, "[", j, "]");
        const toml::table* pt = nullptr;
        if (auto s = as_table(*pts->get(j), ppath, pt); !s.ok()) return s;
        if (auto s = check_keys(*pt, ppath, std::array<std::string_view, 2>{"drop", "usd"});
            !s.ok()) {
          return s;
        }
        if (auto s = require(*pt, ppath, {"drop", "usd"}); !s.ok()) return s;
        depth_point& dp = v.depth.emplace_back();
        if (auto s = read_float(*pt->get("drop"), join(ppath, "drop"), dp.drop); !s.ok()) return s;
        if (auto s = read_float(*pt->get("usd"), join(ppath, "usd"), dp.usd); !s.ok()) return s;
      }
    }
  }
  return absl::OkStatus();
}

absl::Status config_decoder::decode_withdrawal(const toml::node& n, std::string_view path,
                                               withdrawal_spec& out) const {
  const toml::table* t = nullptr;
  if (auto s = as_table(n, path, t); !s.ok()) return s;
  constexpr std::array<std::string_view, 4> keys{"drawdown_sensitivity", "volatility_sensitivity",
                                                 "floor", "half_life_s"};
  if (auto s = check_keys(*t, path, keys); !s.ok()) return s;
  for (auto&& [k, v] : *t) {
    double x = 0.0;
    if (auto s = read_float(v, join(path, k.str()), x); !s.ok()) return s;
    (k.str() == "drawdown_sensitivity"     ? out.drawdown_sensitivity
     : k.str() == "volatility_sensitivity" ? out.volatility_sensitivity
     : k.str() == "floor"                  ? out.floor
                                           : out.half_life_s) = x;
  }
  return absl::OkStatus();
}

absl::Status config_decoder::decode_assets(const toml::node& n, config& out) const {
  const toml::array* arr = nullptr;
  if (auto s = as_array(n, "assets", arr); !s.ok()) return s;
  if (arr->empty()) return fail(n, "assets", "at least one asset is required");
  for (std::size_t i = 0; i < arr->size(); ++i) {
    const std::string path = detail::cat("assets[", i, "]");
    const toml::table* t = nullptr;
    if (auto s = as_table(*arr->get(i), path, t); !s.ok()) return s;
    if (auto s = check_keys(
            *t, path,
            std::array<std::string_view, 7>{"symbol", "price", "pool", "derived", "beta",
                                            "venues", "withdrawal"});
        !s.ok()) {
      return s;
    }
    if (auto s = require(*t, path, {"symbol", "price"}); !s.ok()) return s;
    asset_spec spec;
    if (auto s = read_string(*t->get("symbol"), join(path, "symbol"), spec.symbol); !s.ok())
      return s;
    if (auto s = read_float(*t->get("price"), join(path, "price"), spec.price); !s.ok()) return s;
    if (const toml::node* pool_node = t->get("pool")) {
      if (auto s = decode_pool(*pool_node, join(path, "pool"), spec.liquidity.emplace()); !s.ok()) {
        return s;
      }
    }
    if (const toml::node* derived = t->get("derived")) {
      if (auto s = decode_derived(*derived, join(path, "derived"), spec.derived.emplace());
          !s.ok()) {
        return s;
      }
    }
    if (const toml::node* venues = t->get("venues")) {
      if (auto s = decode_venues(*venues, join(path, "venues"), spec.venues.emplace()); !s.ok()) {
        return s;
      }
    }
    if (const toml::node* w = t->get("withdrawal")) {
      if (!spec.venues) {
        return fail(*w, join(path, "withdrawal"), "withdrawal applies to venues: give the asset venues");
      }
      if (auto s = decode_withdrawal(*w, join(path, "withdrawal"), spec.venues->withdrawal);
          !s.ok()) {
        return s;
      }
    }
    double beta = 1.0;
    if (const toml::node* b = t->get("beta")) {
      if (auto s = read_float(*b, join(path, "beta"), beta); !s.ok()) return s;
      if (!std::isfinite(beta)) return fail(*b, join(path, "beta"), "beta must be a finite number");
    }
    if (auto r = out.mkt.add_asset(spec); !r.ok()) {
      const std::string sub =
          detail::fault_path(detail::locate_asset_fault(out.mkt, spec), nullptr);
      return fail_at_path(sub.empty() ? path : detail::cat(path, ".", sub), *t,
                          detail::text(r.status()));
    }
    out.betas.push_back(beta);
  }
  return absl::OkStatus();
}

absl::Status config_decoder::decode_protocols(const toml::node& n, market& m) const {
  const toml::array* arr = nullptr;
  if (auto s = as_array(n, "protocols", arr); !s.ok()) return s;
  if (arr->empty()) return fail(n, "protocols", "at least one protocol is required");
  for (std::size_t i = 0; i < arr->size(); ++i) {
    const std::string path = detail::cat("protocols[", i, "]");
    const toml::table* t = nullptr;
    if (auto s = as_table(*arr->get(i), path, t); !s.ok()) return s;
    if (auto s = check_keys(*t, path,
                            std::array<std::string_view, 5>{"name", "kind", "close_factor",
                                                            "full_liquidation_hf", "assets"});
        !s.ok()) {
      return s;
    }
    if (auto s = require(*t, path, {"name", "kind", "close_factor", "full_liquidation_hf"});
        !s.ok()) {
      return s;
    }
    protocol_spec spec;
    if (auto s = read_string(*t->get("name"), join(path, "name"), spec.name); !s.ok()) return s;
    std::string kind;
    const toml::node& kind_node = *t->get("kind");
    if (auto s = read_string(kind_node, join(path, "kind"), kind); !s.ok()) return s;
    const auto parsed = parse_protocol_kind(kind);
    if (!parsed) {
      return fail(kind_node, join(path, "kind"),
                  detail::cat("unknown protocol kind ", detail::quoted(kind),
                              " (expected pooled, cdp or margin)"));
    }
    spec.kind = *parsed;
    if (auto s = read_float(*t->get("close_factor"), join(path, "close_factor"), spec.close_factor);
        !s.ok()) {
      return s;
    }
    if (auto s = read_float(*t->get("full_liquidation_hf"), join(path, "full_liquidation_hf"),
                            spec.full_liquidation_hf);
        !s.ok()) {
      return s;
    }
    if (const toml::node* assets = t->get("assets")) {
      const std::string assets_path = join(path, "assets");
      const toml::table* at = nullptr;
      if (auto s = as_table(*assets, assets_path, at); !s.ok()) return s;
      for (auto&& [symbol, entry] : *at) {
        const std::string entry_path = join(assets_path, symbol.str());
        const toml::table* et = nullptr;
        if (auto s = as_table(entry, entry_path, et); !s.ok()) return s;
        if (auto s = check_keys(
                *et, entry_path,
                std::array<std::string_view, 2>{"liquidation_threshold", "liquidation_bonus"});
            !s.ok()) {
          return s;
        }
        if (auto s = require(*et, entry_path, {"liquidation_threshold"}); !s.ok()) return s;
        collateral_params params;
        if (auto s =
                read_float(*et->get("liquidation_threshold"),
                           join(entry_path, "liquidation_threshold"), params.liquidation_threshold);
            !s.ok()) {
          return s;
        }
        if (const toml::node* bonus = et->get("liquidation_bonus")) {
          if (auto s = read_float(*bonus, join(entry_path, "liquidation_bonus"),
                                  params.liquidation_bonus);
              !s.ok()) {
            return s;
          }
        }
        spec.assets.emplace_back(std::string(symbol.str()), params);
      }
    }
    if (auto r = m.add_protocol(spec); !r.ok()) {
      const std::string sub = detail::fault_path(detail::locate_protocol_fault(m, spec), &spec);
      return fail_at_path(sub.empty() ? path : detail::cat(path, ".", sub), *t,
                          detail::text(r.status()));
    }
  }
  return absl::OkStatus();
}

// The engine's message without its "oracle: " prefix where the path already says so.
std::string_view oracle_reason(const absl::Status& s) {
  std::string_view why = detail::text(s);
  if (why.starts_with("oracle: ")) why.remove_prefix(8);
  return why;
}

absl::Status config_decoder::decode_oracle(const toml::node& n, config& out) const {
  const toml::table* t = nullptr;
  if (auto s = as_table(n, "oracle", t); !s.ok()) return s;
  if (auto s = check_keys(*t, "oracle",
                          std::array<std::string_view, 6>{"max_age_s", "outlier", "max_move",
                                                          "divergence", "oracle_only", "feed"});
      !s.ok()) {
    return s;
  }
  oracle_config& c = out.oracle;
  // Each number is checked on its own so that a refusal points at its key.
  for (auto&& [k, v] : *t) {
    if (k.str() == "feed") continue;
    const std::string path = join("oracle", k.str());
    if (k.str() == "oracle_only") {
      const toml::array* arr = v.as_array();
      if (arr == nullptr) {
        return fail(v, path, detail::cat("expected an array of strings, got ", type_name(v.type())));
      }
      for (std::size_t j = 0; j < arr->size(); ++j) {
        std::string name;
        if (auto s = read_string(*arr->get(j), detail::cat(path, "[", j, "]"), name); !s.ok()) {
          return s;
        }
        if (name.empty()) return fail(*arr->get(j), detail::cat(path, "[", j, "]"), "is empty");
        c.oracle_only.push_back(std::move(name));
      }
      continue;
    }
    double x = 0.0;
    if (auto s = read_float(v, path, x); !s.ok()) return s;
    oracle_config one;
    double& field = k.str() == "max_age_s"  ? one.rules.max_age_s
                    : k.str() == "outlier"  ? one.rules.outlier
                    : k.str() == "max_move" ? one.rules.max_move
                                            : one.divergence;
    field = x;
    if (auto s = one.validate(); !s.ok()) return fail(v, path, oracle_reason(s));
    (k.str() == "max_age_s"  ? c.rules.max_age_s
     : k.str() == "outlier"  ? c.rules.outlier
     : k.str() == "max_move" ? c.rules.max_move
                             : c.divergence) = x;
  }
  if (const toml::node* feeds = t->get("feed")) {
    const toml::array* arr = nullptr;
    if (auto s = as_array(*feeds, "oracle.feed", arr); !s.ok()) return s;
    for (std::size_t i = 0; i < arr->size(); ++i) {
      const std::string path = detail::cat("oracle.feed[", i, "]");
      feed_spec spec;
      if (auto s = decode_feed(*arr->get(i), path, out.mkt, spec); !s.ok()) return s;
      c.feeds.push_back(std::move(spec));
      if (auto s = c.validate(); !s.ok()) return fail(*arr->get(i), path, detail::text(s));
    }
  }
  if (auto s = oracle_set::make(out.mkt, c); !s.ok()) {
    return fail(*t, "oracle", detail::text(s.status()));
  }
  return absl::OkStatus();
}

absl::Status config_decoder::decode_feed(const toml::node& n, std::string_view path,
                                         const market& m, feed_spec& out) const {
  const toml::table* t = nullptr;
  if (auto s = as_table(n, path, t); !s.ok()) return s;
  if (auto s = check_keys(
          *t, path,
          std::array<std::string_view, 8>{"protocol", "asset", "sources", "deviation",
                                          "heartbeat_s", "delay_s", "stale_s", "min_sources"});
      !s.ok()) {
    return s;
  }
  if (auto s = require(*t, path, {"protocol", "asset"}); !s.ok()) return s;
  const toml::node& protocol = *t->get("protocol");
  const toml::node& asset = *t->get("asset");
  if (auto s = read_string(protocol, join(path, "protocol"), out.protocol); !s.ok()) return s;
  if (auto s = read_string(asset, join(path, "asset"), out.asset); !s.ok()) return s;
  {
    // The names against the market, with the engine's message.
    oracle_config solo;
    solo.feeds.push_back(feed_spec{out.protocol, out.asset});
    if (auto s = oracle_set::make(m, solo); !s.ok()) {
      const bool protocol_known = m.find_protocol(out.protocol).has_value();
      return fail(protocol_known ? asset : protocol,
                  join(path, protocol_known ? "asset" : "protocol"), detail::text(s.status()));
    }
  }
  for (auto&& [k, v] : *t) {
    const std::string key_path = join(path, k.str());
    feed_spec one{out.protocol, out.asset};
    if (k.str() == "protocol" || k.str() == "asset") continue;
    if (k.str() == "sources") {
      const toml::array* arr = v.as_array();
      if (arr == nullptr) {
        return fail(v, key_path,
                    detail::cat("expected an array of strings, got ", type_name(v.type())));
      }
      for (std::size_t j = 0; j < arr->size(); ++j) {
        std::string name;
        if (auto s = read_string(*arr->get(j), detail::cat(key_path, "[", j, "]"), name); !s.ok())
          return s;
        out.sources.push_back(std::move(name));
      }
      one.sources = out.sources;
    } else if (k.str() == "min_sources") {
      std::int64_t x = 0;
      if (auto s = read_int(v, key_path, x); !s.ok()) return s;
      if (x < 0 || x > std::numeric_limits<std::uint32_t>::max()) {
        return fail(v, key_path,
                    detail::cat(x, " is outside the range of a 32-bit unsigned integer"));
      }
      out.min_sources = one.min_sources = static_cast<std::uint32_t>(x);
    } else {
      double x = 0.0;
      if (auto s = read_float(v, key_path, x); !s.ok()) return s;
      double feed_spec::*field = k.str() == "deviation"     ? &feed_spec::deviation
                                 : k.str() == "heartbeat_s" ? &feed_spec::heartbeat_s
                                 : k.str() == "delay_s"     ? &feed_spec::delay_s
                                                            : &feed_spec::stale_s;
      one.*field = x;
      out.*field = x;
    }
    if (auto s = one.validate(); !s.ok()) return fail(v, key_path, detail::text(s));
  }
  // What relates the fields (min_sources against the sources listed).
  if (auto s = out.validate(); !s.ok()) {
    const toml::node* at = t->get("min_sources");
    return fail(at != nullptr ? *at : *t, at != nullptr ? join(path, "min_sources") : path,
                detail::text(s));
  }
  return absl::OkStatus();
}

absl::StatusOr<config> config_decoder::run() {
  constexpr std::array<std::string_view, 7> sections{"server", "bands",     "book",  "positions",
                                                     "assets", "protocols", "oracle"};
  if (auto s = check_keys(root_, "", sections); !s.ok()) return s;
  for (const std::string_view k : {"positions", "assets", "protocols"}) {
    if (!root_.contains(k)) {
      return detail::input_error(source_, 0, "",
                                 detail::cat("missing required section ", detail::quoted(k)));
    }
  }
  config out;
  out.source = std::string(source_);
  if (const toml::node* n = root_.get("server")) {
    if (auto s = decode_server(*n, out.server); !s.ok()) return s;
  }
  if (const toml::node* n = root_.get("bands")) {
    if (auto s = decode_bands(*n, out.book.bands); !s.ok()) return s;
  }
  if (const toml::node* n = root_.get("book")) {
    if (auto s = decode_book(*n, out.book); !s.ok()) return s;
  }
  if (auto s = out.book.validate(); !s.ok())
    return detail::input_error(source_, 0, "", detail::text(s));
  if (auto s = decode_positions(*root_.get("positions"), out.positions); !s.ok()) return s;
  if (auto s = decode_assets(*root_.get("assets"), out); !s.ok()) return s;
  if (auto s = decode_protocols(*root_.get("protocols"), out.mkt); !s.ok()) return s;
  if (const toml::node* n = root_.get("oracle")) {
    if (auto s = decode_oracle(*n, out); !s.ok()) return s;
  }
  return out;
}

}  // namespace

absl::StatusOr<config> parse_config(std::string_view toml_text, std::string_view source_name,
                                    std::string_view base_dir) {
  toml::table root;
  try {
    root = toml::parse(toml_text, source_name);
  } catch (const toml::parse_error& e) {
    return detail::input_error(source_name, e.source().begin.line, "",
                               detail::cat("TOML syntax error: ", e.description()));
  }
  config_decoder d(root, source_name, base_dir);
  return d.run();
}

std::string_view to_string(role r) {
  switch (r) {
    case role::none:
      return "none";
    case role::read:
      return "read";
    case role::price:
      return "price";
    case role::admin:
      return "admin";
  }
  return "none";
}

std::optional<role> parse_role(std::string_view s) {
  if (s == "none") return role::none;
  if (s == "read") return role::read;
  if (s == "price") return role::price;
  if (s == "admin") return role::admin;
  return std::nullopt;
}

absl::Status apply_server_override(server_settings& s, std::string_view key, std::string_view value,
                                   std::string_view source) {
  const std::string path = detail::cat("server.", detail::path_key(key));
  if (key == "tokens") {
    return detail::input_error(source, 0, path,
                               "tokens cannot be set from text: use [[server.tokens]] in the "
                               "config or CASCADE_TOKENS=TOKEN:ROLE,...");
  }
  const server_key* k = find_server_key(key);
  if (k == nullptr) {
    std::string expected;
    for (const server_key& known : server_keys) {
      detail::append(&expected, expected.empty() ? "" : ", ", known.name);
    }
    return detail::input_error(
        source, 0, path,
        detail::cat("unknown key ", detail::quoted(key), " (expected one of: ", expected, ")"));
  }
  server_value v;
  const char* first = value.data();
  const char* last = value.data() + value.size();
  switch (k->kind) {
    case server_kind::text:
    case server_kind::role:
      v.text = std::string(value);
      break;
    case server_kind::integer: {
      const auto res = std::from_chars(first, last, v.integer);
      if (value.empty() || res.ec != std::errc() || res.ptr != last) {
        return detail::input_error(source, 0, path,
                                   detail::cat(detail::quoted(value), " is not an integer"));
      }
      break;
    }
    case server_kind::number: {
      const auto res = std::from_chars(first, last, v.number);
      if (value.empty() || res.ec != std::errc() || res.ptr != last) {
        return detail::input_error(source, 0, path,
                                   detail::cat(detail::quoted(value), " is not a number"));
      }
      break;
    }
  }
  server_settings next = s;
  if (const std::string why = set_server_value(next, *k, v); !why.empty()) {
    return detail::input_error(source, 0, path, why);
  }
  s = std::move(next);
  return absl::OkStatus();
}

absl::Status add_tokens_from_env(server_settings& s, std::string_view spec) {
  constexpr std::string_view source = "CASCADE_TOKENS";
  std::vector<token_spec> added;
  std::size_t entry = 0;
  while (true) {
    ++entry;
    const std::size_t comma = spec.find(',');
    const std::string_view item = spec.substr(0, comma);
    const std::string where = detail::cat("entry ", entry);
    if (item.empty()) {
      return detail::input_error(source, 0, where, "empty (expected TOKEN:ROLE,TOKEN:ROLE,...)");
    }
    const std::size_t colon = item.rfind(':');
    if (colon == std::string_view::npos) {
      return detail::input_error(source, 0, where,
                                 "not of the form TOKEN:ROLE (role read, price or admin)");
    }
    const std::string_view token = item.substr(0, colon);
    const std::string_view role_text = item.substr(colon + 1);
    const auto grants = parse_role(role_text);
    if (!grants || *grants == role::none) {
      return detail::input_error(source, 0, where,
                                 detail::cat("unknown role ", detail::quoted(role_text),
                                             " (a token grants read, price or admin)"));
    }
    if (const std::string_view why = token_problem(token); !why.empty()) {
      return detail::input_error(source, 0, where, why);
    }
    const auto same = [&](const token_spec& t) { return t.token == token; };
    if (std::any_of(s.tokens.begin(), s.tokens.end(), same) ||
        std::any_of(added.begin(), added.end(), same)) {
      return detail::input_error(source, 0, where, "the same token is given twice");
    }
    added.push_back({std::string(token), *grants});
    if (comma == std::string_view::npos) break;
    spec.remove_prefix(comma + 1);
  }
  for (token_spec& t : added) s.tokens.push_back(std::move(t));
  return absl::OkStatus();
}

absl::StatusOr<config> load_config_file(const std::string& path) {
  auto text = detail::read_file(path);
  if (!text.ok()) return text.status();
  return parse_config(*text, path, std::filesystem::path(path).parent_path().string());
}

}  // namespace cascade::proto
