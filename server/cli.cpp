#include "server/cli.hpp"

#include <ostream>
#include <string>

#include "server/cli_commands.hpp"

namespace cascade::server {

namespace {

constexpr std::string_view usage = R"(usage: cascade <command> [options]

commands:
  demo [--config FILE] [--shock ASSET=FRACTION ...] [--json]
      build the book of the default (or given) market and print its health by
      protocol and band, the most at-risk positions, a stress test and the
      distance to cascade of every pooled asset
  stress SCENARIO.json | --config FILE  [--positions FILE.csv]
         [--shock ASSET=FRACTION ...] [--market-shock X [--beta ASSET=B ...]]
         [--max-rounds N]
      run cascade model v1 and print the report document (JSON)
  curves SCENARIO.json | --config FILE  --asset A [--positions FILE.csv]
         [--amplification X] [--svg FILE]
      liquidation curve (0-90% drop), cascade curve (0-50% shock) and the
      critical shock of asset A (JSON); --svg also draws them into FILE
  risk SCENARIO.json | --config FILE  --prices ASSET=FILE.csv ...
       [--horizon-hours 24] [--half-life-hours 24] [--until UNIX_SECONDS]
      EWMA volatility per asset from a recorded series (the CSV formats of
      ../shared/data), its critical shock, and the probability of falling
      that far within the horizon (JSON)
  health SCENARIO.json | --config FILE  [--positions FILE.csv]
      every position's health factor at the document's prices (JSON)
  gen --positions N [--seed S] [--config FILE] [--out FILE]
      write a synthetic book of N positions for the market (CSV:
      id,protocol,asset,collateral,debt,owner; one row per leg)
  serve [--config FILE | --scenario FILE] [--positions FILE.csv] [--port N]
        [--bind ADDR] [--set server.KEY=VALUE ...]
      run the server: HTTP + WebSocket on one port (the live page at /, REST
      under /v1, WebSocket at /v1/ws, Prometheus at /metrics;
      proto/PROTOCOL.md); prints
      "listening http://ADDR:PORT" once ready, stops on SIGINT or SIGTERM.
      Environment: CASCADE_SERVER_<KEY>=VALUE, CASCADE_TOKENS=TOKEN:ROLE,...
  replay FILE.csv ... --url ws://HOST:PORT/v1/ws [--token T] [--speed X]
         [--max-wait S] [--asset SYM] [--rebase] [--watch] [--source NAME]
         [--from T] [--to T] [--window N]
      push recorded prices (the CSV formats of ../shared/data) into a running
      server, one price message per row at X times the rows' spacing (default 1;
      0: as fast as acknowledged; pauses cut to S seconds); --rebase scales each
      series to start at the server's price; --watch prints alerts and cascades
      as they come. Token: --token or CASCADE_TOKEN
  help
      this text

Without a SCENARIO or --config, commands use the embedded default market
(config/default.toml). Exit codes: 0 success, 2 bad input, 1 internal error.
)";

struct command {
  std::string_view name;
  int (*run)(command_args, std::ostream&, std::ostream&);
};

constexpr command commands[] = {
    {"demo", cmd_demo}, {"stress", cmd_stress}, {"curves", cmd_curves}, {"health", cmd_health},
    {"gen", cmd_gen},   {"risk", cmd_risk},     {"serve", cmd_serve},   {"replay", cmd_replay},
};

}  // namespace

int run_cli(std::span<const std::string_view> args, std::ostream& out, std::ostream& err) {
  if (args.empty()) {
    err << usage;
    return exit_bad_input;
  }
  if (args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
    out << usage;
    return exit_ok;
  }
  for (const command& c : commands) {
    if (c.name == args[0]) return c.run(args.subspan(1), out, err);
  }
  err << "cascade: unknown command '" << args[0] << "'\n\n" << usage;
  return exit_bad_input;
}

}  // namespace cascade::server
