// Command-line entry: `cascade <command> [options]`. Parses arguments, loads inputs and
// runs one command. Runs on the calling thread; writes results to `out` and errors to
// `err`. Exit codes: 0 success, 2 bad input or usage, 1 an internal failure.
#pragma once

#include <iosfwd>
#include <span>
#include <string_view>

namespace cascade::server {

inline constexpr int exit_ok = 0;
inline constexpr int exit_failure = 1;
inline constexpr int exit_bad_input = 2;

int run_cli(std::span<const std::string_view> args, std::ostream& out, std::ostream& err);

}  // namespace cascade::server
