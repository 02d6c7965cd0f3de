// The default demo market, config/default.toml, embedded into the library at build time
// so that `cascade demo` and `cascade serve` run with no file at hand.
//
// The text is a constant of static storage (no allocation to read it); decoding it
// allocates like any config. Any thread.
#pragma once

#include <absl/status/statusor.h>

#include <string_view>

#include "proto/config.hpp"

namespace cascade::proto {

// config/default.toml as it was when the library was built.
[[nodiscard]] std::string_view default_config_text();

// The source directory of config/default.toml at build time; a relative positions.file
// in the embedded text resolves against it.
[[nodiscard]] std::string_view default_config_dir();

// Decodes default_config_text(); errors name "default.toml (embedded)".
[[nodiscard]] absl::StatusOr<config> load_default_config();

}  // namespace cascade::proto
