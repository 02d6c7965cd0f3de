// What a CLI command works on: a market, its positions, and the scenario's shocks,
// loaded from a scenario document (positional SCENARIO.json), a TOML config (--config,
// or the embedded default market when neither is given), and optionally a positions CSV
// (--positions) that replaces the positions. Runs on the calling thread; allocates;
// every bad file or value comes back as an absl::Status naming where and why.
#pragma once

#include <absl/status/statusor.h>

#include <memory>
#include <string>
#include <vector>

#include "engine/book.hpp"
#include "engine/cascade.hpp"
#include "engine/curves.hpp"
#include "engine/market.hpp"
#include "proto/rest_codec.hpp"
#include "server/cli_args.hpp"

namespace cascade::server {

struct world {
  std::unique_ptr<market> mkt;  // heap-held so a book may keep a pointer to it
  std::vector<position_input> positions;
  bool has_positions = false;
  std::vector<shock> shocks;  // the document's shocks (scenario input only)
  std::uint32_t max_rounds = 100;
  cascade_model model;        // the scenario's "model" (cascade extensions); v1 by default
  std::vector<double> betas;  // per asset, for one-factor shocks
  book_options options;
  std::string source;          // what was loaded, for people
  std::string positions_note;  // where the positions came from
};

// Options every input-taking command accepts.
inline constexpr std::string_view input_options[] = {"config", "positions"};

[[nodiscard]] absl::StatusOr<world> load_world(const cli_args& args);

// Loads the positions into a new book over w.mkt; refuses when there are none to load
// (a scenario without positions and no --positions).
[[nodiscard]] absl::StatusOr<std::unique_ptr<book>> build_book(const world& w);

// Reads --amplification and --bad-debt-fraction into `o` (critical-shock search).
[[nodiscard]] absl::Status apply_critical_options(const cli_args& args, critical_shock_options& o);

// Why a shock is critical, in words (moved to proto/rest_codec.hpp, where the curves
// encoder uses it too).
using proto::critical_reason;

// Applies --beta ASSET=B, --market-shock X (one-factor: each asset moves by beta x X)
// and --shock ASSET=FRACTION (overrides or adds, last one wins) to w.shocks.
[[nodiscard]] absl::Status apply_shock_options(const cli_args& args, world& w);

}  // namespace cascade::server
