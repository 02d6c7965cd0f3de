// cascade curves SCENARIO.json | --config FILE  --asset A [--positions FILE.csv]
//   [--amplification X] [--max-rounds N]
#include <ostream>

#include "engine/curves.hpp"
#include "proto/rest_codec.hpp"
#include "server/cli.hpp"
#include "server/cli_commands.hpp"
#include "server/cli_inputs.hpp"

namespace cascade::server {

int cmd_curves(command_args args, std::ostream& out, std::ostream& err) {
  constexpr std::string_view known[] = {"config",        "positions",         "asset",
                                        "amplification", "bad-debt-fraction", "max-rounds"};
  const auto fail = [&](const absl::Status& s) {
    err << "cascade curves: " << s.message() << '\n';
    return exit_bad_input;
  };
  auto a = cli_args::parse(args, known);
  if (!a.ok()) return fail(a.status());
  const auto symbol = a->get("asset");
  if (!symbol) return fail(absl::InvalidArgumentError("--asset SYMBOL is required"));
  auto w = load_world(*a);
  if (!w.ok()) return fail(w.status());
  const auto asset = w->mkt->find_asset(*symbol);
  if (!asset) return fail(absl::InvalidArgumentError("--asset: unknown asset '" + *symbol + "'"));
  critical_shock_options co;
  if (auto s = apply_critical_options(*a, co); !s.ok()) return fail(s);
  auto rounds = a->count("max-rounds", w->max_rounds, 1, 1'000'000);
  if (!rounds.ok()) return fail(rounds.status());
  co.max_rounds = static_cast<std::uint32_t>(*rounds);
  auto b = build_book(*w);
  if (!b.ok()) return fail(b.status());

  cascade_simulator sim;
  auto curves = standard_curves(**b, *asset, sim, co);
  if (!curves.ok()) return fail(curves.status());
  out << proto::encode_curves(**b, *asset, curves->liquidation, curves->cascade, curves->critical,
                              co)
      << '\n';
  return exit_ok;
}

}  // namespace cascade::server
