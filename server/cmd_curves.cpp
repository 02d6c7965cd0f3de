// cascade curves SCENARIO.json | --config FILE  --asset A [--positions FILE.csv]
//   [--amplification X] [--max-rounds N]
#include <ostream>

#include "engine/curves.hpp"
#include "proto/json_writer.hpp"
#include "server/cli.hpp"
#include "server/cli_inputs.hpp"
#include "server/cli_commands.hpp"

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
  auto liq = liquidation_curve(**b, *asset, grid(0.0, 0.9, 90));
  if (!liq.ok()) return fail(liq.status());
  auto casc = cascade_curve(**b, *asset, grid(0.0, 0.5, 50), sim, co.max_rounds);
  if (!casc.ok()) return fail(casc.status());
  auto crit = find_critical_shock(**b, *asset, sim, co);
  if (!crit.ok()) return fail(crit.status());

  proto::json_writer jw;
  jw.begin_object();
  jw.field("asset", *symbol);
  jw.field("price", (*b)->prices()[asset->index()]);
  jw.key("liquidation_curve").begin_array();
  for (const auto& p : *liq) {
    jw.begin_object()
        .field("drop", p.drop)
        .field("positions", p.positions)
        .field("collateral_usd", p.collateral_usd)
        .field("debt_usd", p.debt_usd)
        .end_object();
  }
  jw.end_array();
  jw.key("cascade_curve").begin_array();
  for (const auto& p : *casc) {
    jw.begin_object()
        .field("shock", p.shock)
        .field("final_drop", p.final_drop)
        .field("rounds", p.rounds)
        .field("positions_liquidated", p.positions_liquidated)
        .field("positions_insolvent", p.positions_insolvent)
        .field("repaid_usd", p.repaid_usd)
        .field("seized_usd", p.seized_usd)
        .field("bad_debt_usd", p.bad_debt_usd)
        .end_object();
  }
  jw.end_array();
  jw.key("critical_shock").begin_object();
  jw.key("shock");
  if (crit->shock) {
    jw.value(*crit->shock);
  } else {
    jw.null();
  }
  jw.field("baseline_drop", crit->baseline_drop)
      .field("baseline_bad_debt_usd", crit->baseline_bad_debt_usd)
      .field("material_bad_debt_usd", crit->material_bad_debt_usd)
      .field("reason", critical_reason(*crit))
      .field("amplifies", crit->amplifies)
      .field("bad_debt", crit->bad_debt)
      .field("amplification", co.amplification)
      .end_object();
  jw.end_object();
  out << jw.str() << '\n';
  return exit_ok;
}

}  // namespace cascade::server
