// cascade stress SCENARIO.json | --config FILE  [--positions FILE.csv]
//   [--shock ASSET=FRACTION ...] [--market-shock X [--beta ASSET=B ...]] [--max-rounds N]
#include <ostream>

#include "engine/cascade.hpp"
#include "proto/report.hpp"
#include "server/cli.hpp"
#include "server/cli_inputs.hpp"
#include "server/cli_commands.hpp"

namespace cascade::server {

int cmd_stress(command_args args, std::ostream& out, std::ostream& err) {
  constexpr std::string_view known[] = {"config",       "positions", "shock",
                                        "market-shock", "beta",      "max-rounds"};
  const auto fail = [&](const absl::Status& s) {
    err << "cascade stress: " << s.message() << '\n';
    return exit_bad_input;
  };
  auto a = cli_args::parse(args, known);
  if (!a.ok()) return fail(a.status());
  if (a->positional().size() > 1) {
    return fail(absl::InvalidArgumentError("takes at most one scenario file"));
  }
  auto w = load_world(*a);
  if (!w.ok()) return fail(w.status());
  if (auto s = apply_shock_options(*a, *w); !s.ok()) return fail(s);
  auto rounds = a->count("max-rounds", w->max_rounds, 1, 1'000'000);
  if (!rounds.ok()) return fail(rounds.status());
  auto b = build_book(*w);
  if (!b.ok()) return fail(b.status());
  cascade_options o;
  o.max_rounds = static_cast<std::uint32_t>(*rounds);
  o.model = w->model;
  cascade_simulator sim;
  auto rep = sim.run(**b, w->shocks, o);
  if (!rep.ok()) return fail(rep.status());
  out << proto::encode_report(*rep, *w->mkt) << '\n';
  return exit_ok;
}

}  // namespace cascade::server
