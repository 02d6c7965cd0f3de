// Command-line argument parsing shared by the commands: positional arguments and
// `--name value` / `--name=value` options (repeatable ones kept in order). Runs on the
// calling thread; allocates; errors are absl::Status naming the option.
#pragma once

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace cascade::server {

class cli_args {
 public:
  // `known` lists the accepted option names (without dashes); `flags` those that take
  // no value. Anything else starting with "--" is an error.
  [[nodiscard]] static absl::StatusOr<cli_args> parse(std::span<const std::string_view> args,
                                                      std::span<const std::string_view> known,
                                                      std::span<const std::string_view> flags = {});

  [[nodiscard]] const std::vector<std::string>& positional() const { return positional_; }
  [[nodiscard]] bool has(std::string_view name) const;
  [[nodiscard]] std::optional<std::string> get(std::string_view name) const;  // last one wins
  [[nodiscard]] std::vector<std::string> all(std::string_view name) const;

  [[nodiscard]] absl::StatusOr<double> number(std::string_view name, double fallback) const;
  [[nodiscard]] absl::StatusOr<std::uint64_t> count(std::string_view name, std::uint64_t fallback,
                                                    std::uint64_t min, std::uint64_t max) const;

 private:
  std::vector<std::string> positional_;
  std::vector<std::pair<std::string, std::string>> options_;
};

// Parses a finite decimal number; the message names `what`.
[[nodiscard]] absl::StatusOr<double> parse_number(std::string_view text, std::string_view what);

}  // namespace cascade::server
