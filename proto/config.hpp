// The TOML configuration (schema at the top of config/default.toml) decoded into engine
// values: the market, book options (bands included), where positions come from, the
// server's address, per-asset betas for one-factor shocks, and the oracle feeds.
//
// Strict: every key is known or refused by name (typos are errors), every value has its
// type (a float field also takes an integer), required keys are present, and the
// market and book refuse bad values through their own checks. A refusal is an
// InvalidArgument status reading "SOURCE:LINE: PATH: REASON", e.g.
//   default.toml:61: protocols[1].assets.ETH.liquidation_threshold: protocol 'maker':
//   asset 'ETH': liquidation_threshold 1.5 is outside (0, 1]
//
// Pure functions: any thread, no shared state. toml++ throws on syntax errors; that is
// caught here, so nothing but std::bad_alloc escapes. They allocate.
#pragma once

#include <absl/status/statusor.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/book.hpp"
#include "engine/market.hpp"
#include "engine/oracle.hpp"

namespace cascade::proto {

// Largest synthetic book `positions.generate` may ask for.
inline constexpr std::uint64_t max_generated_positions = 100'000'000;

// Exactly one of `file` and `generate` is set.
struct positions_source {
  std::string file;            // CSV path, resolved against the config file's directory
  std::uint64_t generate = 0;  // synthetic book size, in [1, max_generated_positions]
  std::uint64_t seed = 42;
};

// What a client may do; each role includes the ones below it.
enum class role : std::uint8_t { none = 0, read = 1, price = 2, admin = 3 };
[[nodiscard]] std::string_view to_string(role r);
[[nodiscard]] std::optional<role> parse_role(std::string_view s);  // "none".."admin"

struct token_spec {
  std::string token;  // never logged or echoed
  role grants = role::read;
};

// [server]: the address, who may do what, and the limits of PROTOCOL.md. Tokens come
// from [[server.tokens]] entries, each `role` plus either `token` (a literal, for tests)
// or `token_env` (the name of an environment variable holding it, so secrets stay out
// of config files; an unset or empty variable is an error).
struct server_settings {
  std::string bind = "127.0.0.1";
  std::uint16_t port = 8080;     // 0: pick a free port
  std::uint32_t io_threads = 1;  // [1, 64]
  role anonymous = role::read;   // what a request without a token may do
  std::vector<token_spec> tokens;
  std::uint64_t max_connections = 1024;        // [1, 1e6]
  std::uint64_t max_body_bytes = 8u << 20;     // [1 KiB, 1 GiB]
  std::uint64_t max_frame_bytes = 1u << 20;    // [1 KiB, 1 GiB]
  std::uint64_t max_batch = 10'000;            // ticks or positions per message [1, 1e7]
  std::uint64_t send_queue = 32768;            // events per WebSocket outbox [1, 1e7]
  std::uint64_t ring_events = 65'536;          // events kept for resume [1, 1e8]
  std::uint64_t inbox_capacity = 65'536;       // engine inbox commands [16, 1e8]
  std::uint32_t projection_interval_ms = 100;  // [0, 3.6e6]
  double volatility_half_life_hours = 24.0;    // > 0
  double risk_horizon_hours = 24.0;            // > 0
};

struct config {
  market mkt;
  book_options book;
  positions_source positions;
  server_settings server;
  // Per-asset factor loading for one-factor shocks, indexed by asset id (default 1.0).
  std::vector<double> betas;
  // [oracle] and [[oracle.feed]]: source validity and per-protocol feeds, already checked
  // by oracle_set::make against `mkt` (no feeds: every protocol sees the market price).
  oracle_config oracle;
  std::string source;  // where the config came from, for messages
};

// Decodes TOML text. `base_dir` resolves a relative positions.file (empty: leave it
// relative to the working directory).
[[nodiscard]] absl::StatusOr<config> parse_config(std::string_view toml_text,
                                                  std::string_view source_name,
                                                  std::string_view base_dir);

// Reads and decodes a config file; relative paths in it resolve against its directory.
[[nodiscard]] absl::StatusOr<config> load_config_file(const std::string& path);

// Sets one [server] key (any but `tokens`) from text, with the checks the TOML path
// applies: `--set server.KEY=VALUE` and CASCADE_SERVER_KEY=VALUE. `source` names where
// the text came from, as the message's first part: "SOURCE: server.KEY: REASON". On a
// refusal `s` is unchanged.
[[nodiscard]] absl::Status apply_server_override(server_settings& s, std::string_view key,
                                                 std::string_view value, std::string_view source);

// Adds the tokens of CASCADE_TOKENS="TOKEN:ROLE,TOKEN:ROLE" (role read, price or admin;
// a token is visible ASCII and may itself hold ':'). Messages name the entry by its
// position and never show a token. All or nothing.
[[nodiscard]] absl::Status add_tokens_from_env(server_settings& s, std::string_view spec);

}  // namespace cascade::proto
