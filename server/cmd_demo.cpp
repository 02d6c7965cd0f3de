// cascade demo [--config FILE] [--positions FILE.csv] [--shock ASSET=FRACTION ...]
//   [--market-shock X] [--json]
// The main job on the embedded default market: builds the book, prints its health by
// protocol and band, the most at-risk positions, a stress test and the distance to
// cascade of every asset with a pool.
#include <absl/strings/str_cat.h>
#include <absl/strings/str_format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ostream>

#include "engine/cascade.hpp"
#include "engine/curves.hpp"
#include "proto/report.hpp"
#include "server/cli.hpp"
#include "server/cli_commands.hpp"
#include "server/cli_format.hpp"
#include "server/cli_inputs.hpp"

namespace cascade::server {

namespace {

using clock_type = std::chrono::steady_clock;

double ms_since(clock_type::time_point t0) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
}

// The asset with the most collateral value that has a pool: the natural one to shock.
std::optional<asset_id> most_held_pooled_asset(const book& b) {
  const market& m = b.get_market();
  std::optional<asset_id> best;
  double best_value = 0.0;
  for (std::size_t a = 0; a < m.asset_count(); ++a) {
    if (!m.assets()[a].liquidity) continue;
    const auto id = asset_id::from_index(a);
    double value = 0.0;
    for (const exposure_entry& e : b.exposure(id)) value += e.weighted_collateral;
    value *= b.prices()[a];
    if (value > best_value) {
      best_value = value;
      best = id;
    }
  }
  return best;
}

}  // namespace

int cmd_demo(command_args args, std::ostream& out, std::ostream& err) {
  constexpr std::string_view known[] = {"config", "positions", "shock", "market-shock", "beta"};
  constexpr std::string_view flags[] = {"json"};
  const auto fail = [&](const absl::Status& s) {
    err << "cascade demo: " << s.message() << '\n';
    return exit_bad_input;
  };
  auto a = cli_args::parse(args, known, flags);
  if (!a.ok()) return fail(a.status());
  if (!a->positional().empty()) {
    return fail(absl::InvalidArgumentError("takes no file argument (use --config)"));
  }
  auto w = load_world(*a);
  if (!w.ok()) return fail(w.status());
  if (auto s = apply_shock_options(*a, *w); !s.ok()) return fail(s);
  const market& m = *w->mkt;

  auto t0 = clock_type::now();
  auto built = build_book(*w);
  if (!built.ok()) return fail(built.status());
  const book& b = **built;
  const double load_ms = ms_since(t0);

  if (w->shocks.empty()) {
    if (const auto a0 = most_held_pooled_asset(b)) w->shocks.push_back({*a0, -0.20});
  }
  cascade_simulator sim;
  t0 = clock_type::now();
  auto rep = sim.run(b, w->shocks);
  if (!rep.ok()) return fail(rep.status());
  const double stress_ms = ms_since(t0);
  if (a->has("json")) {
    out << proto::encode_report(*rep, m) << '\n';
    return exit_ok;
  }

  out << "Cascade: " << w->source << '\n'
      << absl::StrFormat("  %d assets, %d protocols, %s; book built in %.0f ms\n\n",
                         m.asset_count(), m.protocol_count(), w->positions_note, load_ms);

  out << "Health by protocol and band (oracle prices)\n";
  out << absl::StrFormat("  %-18s %-13s %10s %14s %14s\n", "protocol", "band", "positions",
                         "collateral", "debt");
  const auto totals = b.totals();
  for (std::size_t p = 0; p < m.protocol_count(); ++p) {
    for (std::size_t k = 0; k < band_count; ++k) {
      const band_totals& t = totals[p][k];
      if (t.positions == 0) continue;
      out << absl::StrFormat("  %-18s %-13s %10d %14s %14s\n", m.protocols()[p].name,
                             to_string(static_cast<band>(k)), t.positions, usd(t.collateral_usd),
                             usd(t.debt_usd));
    }
  }

  out << "\nMost at risk\n";
  for (const at_risk_entry& e : b.below(1.10, 5)) {
    out << absl::StrFormat("  %-26s %-18s HF %.4f\n", b.id_at(e.row),
                           m.get_protocol(b.protocol_at(e.row)).name, e.hf);
  }

  out << "\nStress test (cascade model v1):";
  for (const shock& s : w->shocks) {
    out << absl::StrFormat(" %s %+.1f%%", m.asset(s.asset).symbol, s.fraction * 100);
  }
  out << absl::StrFormat("  [%.1f ms]\n", stress_ms);
  out << absl::StrFormat(
      "  rounds %d, positions liquidated %d, repaid %s, seized %s, bad debt %s\n",
      rep->rounds.size(), rep->positions_liquidated, usd(rep->total_repaid_usd),
      usd(rep->total_seized_usd), usd(rep->bad_debt_usd()));
  for (std::size_t p = 0; p < m.protocol_count(); ++p) {
    const protocol_report& pr = rep->protocols[p];
    if (pr.liquidated == 0) continue;
    out << absl::StrFormat("  %-18s liquidated %7d  repaid %10s  bad debt %10s%s\n",
                           m.protocols()[p].name, pr.liquidated, usd(pr.repaid_usd),
                           usd(pr.bad_debt_usd),
                           pr.contagion_only ? "  (hit only through other protocols' sales)" : "");
  }
  for (std::size_t i = 0; i < rep->shocks.size(); ++i) {
    const std::size_t as = rep->shocks[i].asset.index();
    out << absl::StrFormat("  %s: %.2f -> %.2f after the shock -> %.2f final",
                           m.assets()[as].symbol, rep->input_prices[as], rep->shocked_prices[as],
                           rep->final_prices[as]);
    if (rep->amplification[i])
      out << absl::StrFormat(" (amplification %.3f)", *rep->amplification[i]);
    out << '\n';
  }

  out << "\nDistance to cascade (smallest drop that doubles itself, or leaves bad debt over\n"
         "0.01% of the book's debt, beyond what the book does with no shock)\n";
  for (std::size_t as = 0; as < m.asset_count(); ++as) {
    if (!m.assets()[as].liquidity) continue;
    t0 = clock_type::now();
    auto crit = find_critical_shock(b, asset_id::from_index(as), sim);
    if (!crit.ok()) return fail(crit.status());
    const double ms = ms_since(t0);
    if (crit->shock) {
      out << absl::StrFormat("  %-8s %5.1f%%  (%s)  [%d cascades, %.0f ms]\n",
                             m.assets()[as].symbol, *crit->shock * 100, critical_reason(*crit),
                             crit->cascades_run, ms);
    } else {
      out << absl::StrFormat("  %-8s none up to 90%%  [%d cascades, %.0f ms]\n",
                             m.assets()[as].symbol, crit->cascades_run, ms);
    }
  }
  out << "\nFull report: cascade demo --json; any scenario: cascade stress FILE.json\n";
  return exit_ok;
}

}  // namespace cascade::server
