#include "server/cli_inputs.hpp"

#include <absl/strings/str_cat.h>

#include <algorithm>
#include <chrono>

#include "engine/curves.hpp"
#include "engine/generator.hpp"
#include "proto/config.hpp"
#include "proto/default_config.hpp"
#include "proto/positions_csv.hpp"
#include "proto/scenario.hpp"

namespace cascade::server {

namespace {

// Splits "SYMBOL=VALUE" into an asset of `m` and a number.
absl::StatusOr<std::pair<asset_id, double>> asset_value(std::string_view text, const market& m,
                                                        std::string_view option) {
  const auto eq = text.find('=');
  if (eq == std::string_view::npos || eq == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", key(option), ": '", key(text), "' is not of the form ASSET=NUMBER"));
  }
  const std::string_view symbol = text.substr(0, eq);
  const auto a = m.find_asset(symbol);
  if (!a) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", key(option), ": unknown asset '", key(symbol), "'"));
  }
  auto v = parse_number(text.substr(eq + 1), absl::StrCat("--", key(option), " ", key(symbol)));
  if (!v.ok()) return v.status();
  return std::pair{*a, *v};
}

}  // namespace

absl::StatusOr<world> load_world(const cli_args& args) {
  world w;
  const auto config_path = args.get("config");
  if (!args.positional().empty()) {
    if (config_path) {
      return absl::InvalidArgumentError("give either a scenario file or --config, not both");
    }
    const std::string& path = args.positional()[0];
    auto sc = proto::load_scenario_file(path);
    if (!sc.ok()) return sc.status();
    w.mkt = std::make_unique<market>(std::move(sc->mkt));
    w.positions = std::move(sc->positions);
    w.has_positions = sc->has_positions;
    for (const auto& [a, f] : sc->shocks) w.shocks.push_back({a, f});
    w.max_rounds = sc->max_rounds;
    w.model = sc->model;
    w.betas.assign(w.mkt->asset_count(), 1.0);
    w.source = path;
    w.positions_note = absl::StrCat(w.positions.size(), " positions from ", path);
  } else {
    auto cfg = config_path ? proto::load_config_file(*config_path) : proto::load_default_config();
    if (!cfg.ok()) return cfg.status();
    w.mkt = std::make_unique<market>(std::move(cfg->mkt));
    w.options = cfg->book;
    w.betas = std::move(cfg->betas);
    w.source = config_path ? *config_path : std::string("the embedded default market");
    if (!args.has("positions")) {
      if (!cfg->positions.file.empty()) {
        auto ps = proto::load_positions_csv(cfg->positions.file, *w.mkt);
        if (!ps.ok()) return ps.status();
        w.positions = *std::move(ps);
        w.positions_note =
            absl::StrCat(w.positions.size(), " positions from ", cfg->positions.file);
      } else {
        const auto t0 = std::chrono::steady_clock::now();
        auto ps = generate_positions(*w.mkt, {cfg->positions.generate, cfg->positions.seed});
        if (!ps.ok()) return ps.status();
        w.positions = *std::move(ps);
        const double secs =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        w.positions_note =
            absl::StrCat(w.positions.size(), " positions generated (seed ", cfg->positions.seed,
                         ") in ", static_cast<int>(secs * 1000), " ms");
      }
      w.has_positions = true;
    }
  }
  if (const auto csv = args.get("positions")) {
    auto ps = proto::load_positions_csv(*csv, *w.mkt);
    if (!ps.ok()) return ps.status();
    w.positions = *std::move(ps);
    w.has_positions = true;
    w.positions_note = absl::StrCat(w.positions.size(), " positions from ", *csv);
  }
  return w;
}

absl::StatusOr<std::unique_ptr<book>> build_book(const world& w) {
  if (!w.has_positions) {
    return absl::InvalidArgumentError(
        absl::StrCat(w.source,
                     ": positions: missing (the command line needs positions: put them in the "
                     "document or give --positions FILE.csv)"));
  }
  auto b = std::make_unique<book>(*w.mkt, w.options);
  if (auto s = b->upsert(w.positions); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(w.source, ": ", s.message()));
  }
  return b;
}

absl::Status apply_critical_options(const cli_args& args, critical_shock_options& o) {
  auto amp = args.number("amplification", o.amplification);
  if (!amp.ok()) return amp.status();
  auto fraction = args.number("bad-debt-fraction", o.bad_debt_fraction);
  if (!fraction.ok()) return fraction.status();
  o.amplification = *amp;
  o.bad_debt_fraction = *fraction;
  return absl::OkStatus();
}

absl::Status apply_shock_options(const cli_args& args, world& w) {
  for (const std::string& b : args.all("beta")) {
    auto av = asset_value(b, *w.mkt, "beta");
    if (!av.ok()) return av.status();
    w.betas[av->first.index()] = av->second;
  }
  if (args.has("market-shock")) {
    auto x = args.number("market-shock", 0.0);
    if (!x.ok()) return x.status();
    auto factor = one_factor_shocks(w.betas, *x);
    if (!factor.ok()) return factor.status();
    for (const shock& s : *factor) {
      const auto it = std::find_if(w.shocks.begin(), w.shocks.end(),
                                   [&](const shock& o) { return o.asset == s.asset; });
      if (it == w.shocks.end()) {
        w.shocks.push_back(s);
      } else {
        *it = s;
      }
    }
  }
  for (const std::string& text : args.all("shock")) {
    auto av = asset_value(text, *w.mkt, "shock");
    if (!av.ok()) return av.status();
    if (!(av->second > -1.0)) {
      return absl::InvalidArgumentError(absl::StrCat("--shock ", w.mkt->asset(av->first).symbol,
                                                     ": ", av->second, " must be > -1"));
    }
    const auto it = std::find_if(w.shocks.begin(), w.shocks.end(),
                                 [&](const shock& o) { return o.asset == av->first; });
    if (it == w.shocks.end()) {
      w.shocks.push_back({av->first, av->second});
    } else {
      it->fraction = av->second;
    }
  }
  return absl::OkStatus();
}

}  // namespace cascade::server
