#include "proto/default_config.hpp"

namespace cascade::proto {

absl::StatusOr<config> load_default_config() {
  return parse_config(default_config_text(), "default.toml (embedded)", default_config_dir());
}

}  // namespace cascade::proto
