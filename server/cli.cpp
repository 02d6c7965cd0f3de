#include "server/cli.hpp"

#include <ostream>
#include <string>

namespace cascade::server {

namespace {

constexpr std::string_view usage = R"(usage: cascade <command> [options]

commands:
  help                      this text
)";

}  // namespace

int run_cli(std::span<const std::string_view> args, std::ostream& out, std::ostream& err) {
  if (args.empty() || args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
    out << usage;
    return args.empty() ? exit_bad_input : exit_ok;
  }
  err << "cascade: unknown command '" << args[0] << "'\n" << usage;
  return exit_bad_input;
}

}  // namespace cascade::server
