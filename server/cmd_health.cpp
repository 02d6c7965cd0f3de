// cascade health SCENARIO.json | --config FILE [--positions FILE.csv]
#include <ostream>

#include "proto/report.hpp"
#include "server/cli.hpp"
#include "server/cli_inputs.hpp"
#include "server/cli_commands.hpp"

namespace cascade::server {

int cmd_health(command_args args, std::ostream& out, std::ostream& err) {
  const auto fail = [&](const absl::Status& s) {
    err << "cascade health: " << s.message() << '\n';
    return exit_bad_input;
  };
  auto a = cli_args::parse(args, input_options);
  if (!a.ok()) return fail(a.status());
  auto w = load_world(*a);
  if (!w.ok()) return fail(w.status());
  auto b = build_book(*w);
  if (!b.ok()) return fail(b.status());
  out << proto::encode_health(**b) << '\n';
  return exit_ok;
}

}  // namespace cascade::server
