// cascade risk SCENARIO.json | --config FILE  --prices ASSET=FILE.csv ...
//   [--positions FILE.csv] [--horizon-hours H] [--half-life-hours L]
//   [--amplification X] [--bad-debt-fraction F] [--until UNIX_SECONDS]
// Predictive volatility: an EWMA volatility per asset from a recorded price series,
// the asset's critical shock on the book, and the probability (driftless log-normal)
// that the price falls that far within the horizon.
#include <cmath>
#include <limits>
#include <ostream>

#include "engine/curves.hpp"
#include "engine/volatility.hpp"
#include "proto/json_writer.hpp"
#include "proto/price_series.hpp"
#include "proto/rest_codec.hpp"
#include "server/cli.hpp"
#include "server/cli_commands.hpp"
#include "server/cli_inputs.hpp"

namespace cascade::server {

int cmd_risk(command_args args, std::ostream& out, std::ostream& err) {
  constexpr std::string_view known[] = {
      "config",        "positions",         "prices", "horizon-hours", "half-life-hours",
      "amplification", "bad-debt-fraction", "until"};
  const auto fail = [&](const absl::Status& s) {
    err << "cascade risk: " << s.message() << '\n';
    return exit_bad_input;
  };
  auto a = cli_args::parse(args, known);
  if (!a.ok()) return fail(a.status());
  if (!a->has("prices"))
    return fail(absl::InvalidArgumentError("--prices ASSET=FILE.csv is required"));
  auto horizon = a->number("horizon-hours", 24.0);
  if (!horizon.ok()) return fail(horizon.status());
  auto half_life = a->number("half-life-hours", 24.0);
  if (!half_life.ok()) return fail(half_life.status());
  if (!(*horizon > 0.0) || !(*half_life > 0.0)) {
    return fail(absl::InvalidArgumentError("--horizon-hours and --half-life-hours must be > 0"));
  }
  auto until = a->number("until", std::numeric_limits<double>::infinity());
  if (!until.ok()) return fail(until.status());
  critical_shock_options co;
  if (auto s = apply_critical_options(*a, co); !s.ok()) return fail(s);

  auto w = load_world(*a);
  if (!w.ok()) return fail(w.status());
  struct input {
    asset_id asset;
    std::string path;
    proto::price_series series;
  };
  std::vector<input> inputs;
  for (const std::string& spec : a->all("prices")) {
    const auto eq = spec.find('=');
    const auto asset =
        eq == std::string::npos ? std::nullopt : w->mkt->find_asset(spec.substr(0, eq));
    if (!asset) {
      return fail(absl::InvalidArgumentError("--prices '" + spec +
                                             "': expected ASSET=FILE with a known asset"));
    }
    auto series = proto::load_price_series(spec.substr(eq + 1));
    if (!series.ok()) return fail(series.status());
    inputs.push_back({*asset, spec.substr(eq + 1), *std::move(series)});
  }
  auto b = build_book(*w);
  if (!b.ok()) return fail(b.status());

  volatility_options vo;
  vo.half_life_seconds = *half_life * 3600.0;
  const double horizon_s = *horizon * 3600.0;
  cascade_simulator sim;
  proto::json_writer jw;
  jw.begin_object();
  jw.field("horizon_hours", *horizon).field("half_life_hours", *half_life);
  jw.key("assets").begin_array();
  for (const input& in : inputs) {
    volatility_tracker vol(w->mkt->asset_count(), vo);
    std::size_t used = 0;
    for (const auto& p : in.series.points) {
      if (p.ts > *until) break;  // what the estimate was at that time
      vol.observe(in.asset, p.price, p.ts);
      ++used;
    }
    auto crit = find_critical_shock(**b, in.asset, sim, co);
    if (!crit.ok()) return fail(crit.status());
    jw.begin_object();
    jw.field("asset", w->mkt->asset(in.asset).symbol);
    jw.field("series", in.path).field("format", in.series.format);
    jw.field("points", static_cast<std::uint64_t>(in.series.points.size()));
    jw.field("used", static_cast<std::uint64_t>(used));
    jw.field("from", in.series.points.front().ts)
        .field("to", in.series.points[used > 0 ? used - 1 : 0].ts);
    const auto variance = vol.variance_per_second(in.asset);
    jw.key("volatility_annual");
    if (variance) {
      jw.value(std::sqrt(*variance * seconds_per_year));
    } else {
      jw.null();
    }
    jw.key("critical_shock");
    if (crit->shock) {
      jw.value(*crit->shock);
    } else {
      jw.null();
    }
    jw.field("reason", proto::critical_reason(*crit));
    jw.key("probability_touch");
    if (variance && crit->shock) {
      jw.value(probability_of_touching(*variance, horizon_s, *crit->shock));
    } else {
      jw.null();
    }
    jw.key("probability_at_horizon");
    if (variance && crit->shock) {
      jw.value(probability_at_horizon(*variance, horizon_s, *crit->shock));
    } else {
      jw.null();
    }
    jw.end_object();
  }
  jw.end_array().end_object();
  out << jw.str() << '\n';
  return exit_ok;
}

}  // namespace cascade::server
