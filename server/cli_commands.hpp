// The CLI commands. Each parses its own options, writes its result to `out` and its
// errors to `err`, and returns an exit code (see cli.hpp). Calling thread only.
#pragma once

#include <iosfwd>
#include <span>
#include <string_view>

namespace cascade::server {

using command_args = std::span<const std::string_view>;

int cmd_gen(command_args args, std::ostream& out, std::ostream& err);
int cmd_health(command_args args, std::ostream& out, std::ostream& err);
int cmd_stress(command_args args, std::ostream& out, std::ostream& err);
int cmd_curves(command_args args, std::ostream& out, std::ostream& err);
int cmd_demo(command_args args, std::ostream& out, std::ostream& err);
int cmd_risk(command_args args, std::ostream& out, std::ostream& err);
int cmd_serve(command_args args, std::ostream& out, std::ostream& err);
int cmd_replay(command_args args, std::ostream& out, std::ostream& err);

}  // namespace cascade::server
