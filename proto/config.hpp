// The TOML configuration (schema at the top of config/default.toml) decoded into engine
// values: the market, book options (bands included), where positions come from, the
// server's address, and per-asset betas for one-factor shocks.
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
#include <string>
#include <string_view>
#include <vector>

#include "engine/book.hpp"
#include "engine/market.hpp"

namespace cascade::proto {

// Largest synthetic book `positions.generate` may ask for.
inline constexpr std::uint64_t max_generated_positions = 100'000'000;

// Exactly one of `file` and `generate` is set.
struct positions_source {
  std::string file;            // CSV path, resolved against the config file's directory
  std::uint64_t generate = 0;  // synthetic book size, in [1, max_generated_positions]
  std::uint64_t seed = 42;
};

struct server_settings {
  std::string bind = "127.0.0.1";
  std::uint16_t port = 8080;  // 0: pick a free port
};

struct config {
  market mkt;
  book_options book;
  positions_source positions;
  server_settings server;
  // Per-asset factor loading for one-factor shocks, indexed by asset id (default 1.0).
  std::vector<double> betas;
  std::string source;  // where the config came from, for messages
};

// Decodes TOML text. `base_dir` resolves a relative positions.file (empty: leave it
// relative to the working directory).
[[nodiscard]] absl::StatusOr<config> parse_config(std::string_view toml_text,
                                                  std::string_view source_name,
                                                  std::string_view base_dir);

// Reads and decodes a config file; relative paths in it resolve against its directory.
[[nodiscard]] absl::StatusOr<config> load_config_file(const std::string& path);

}  // namespace cascade::proto
