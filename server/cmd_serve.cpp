// cascade serve [--config FILE | --scenario FILE] [--positions FILE.csv] [--port N]
//   [--bind ADDR] [--set server.KEY=VALUE ...]
//
// Loads the market and its positions, starts the engine, the publisher and the edge,
// prints `listening http://ADDR:PORT` once it answers, and runs until SIGINT or SIGTERM.
// Server settings come from the config's [server] table, then environment variables
// CASCADE_SERVER_KEY=VALUE (and CASCADE_TOKENS=TOKEN:ROLE,...), then --set, --bind and
// --port: the later wins.
#include <absl/strings/ascii.h>
#include <absl/strings/str_cat.h>
#include <pthread.h>

#include <csignal>
#include <cstdlib>
#include <ostream>
#include <string>
#include <vector>

#include "proto/config.hpp"
#include "proto/default_config.hpp"
#include "proto/input_error.hpp"
#include "server/app.hpp"
#include "server/cli.hpp"
#include "server/cli_commands.hpp"
#include "server/cli_inputs.hpp"

namespace cascade::server {

namespace {

// The [server] keys an environment variable CASCADE_SERVER_<KEY> may set.
constexpr std::string_view server_keys[] = {"bind",
                                            "port",
                                            "io_threads",
                                            "anonymous_role",
                                            "max_connections",
                                            "max_body_bytes",
                                            "max_frame_bytes",
                                            "max_batch",
                                            "send_queue",
                                            "ring_events",
                                            "inbox_capacity",
                                            "projection_interval_ms",
                                            "volatility_half_life_hours",
                                            "risk_horizon_hours"};

absl::Status apply_environment(proto::server_settings& s) {
  for (const std::string_view key : server_keys) {
    const std::string var =
        proto::detail::cat("CASCADE_SERVER_", absl::AsciiStrToUpper(cascade::key(key)));
    if (const char* v = std::getenv(var.c_str())) {
      if (auto st = proto::apply_server_override(s, key, v, var); !st.ok()) return st;
    }
  }
  if (const char* t = std::getenv("CASCADE_TOKENS"); t != nullptr && *t != '\0') {
    if (auto st = proto::add_tokens_from_env(s, t); !st.ok()) return st;
  }
  return absl::OkStatus();
}

}  // namespace

int cmd_serve(command_args args, std::ostream& out, std::ostream& err) {
  constexpr std::string_view known[] = {"config", "scenario", "positions", "port", "bind", "set"};
  const auto fail = [&](const absl::Status& s) {
    err << "cascade serve: " << s.message() << '\n';
    return exit_bad_input;
  };
  auto a = cli_args::parse(args, known);
  if (!a.ok()) return fail(a.status());
  if (!a->positional().empty()) {
    return fail(absl::InvalidArgumentError("takes no positional arguments (use --scenario FILE)"));
  }
  if (a->has("config") && a->has("scenario")) {
    return fail(absl::InvalidArgumentError("give either --config or --scenario, not both"));
  }

  // The market and positions, as every CLI command loads them.
  std::vector<std::string> load_args;
  if (auto sc = a->get("scenario")) load_args.push_back(*sc);
  if (auto c = a->get("config")) load_args.insert(load_args.end(), {"--config", *c});
  if (auto p = a->get("positions")) load_args.insert(load_args.end(), {"--positions", *p});
  std::vector<std::string_view> views(load_args.begin(), load_args.end());
  auto la = cli_args::parse(views, input_options);
  if (!la.ok()) return fail(la.status());

  // [server] settings: from the config file (or the embedded default) unless a scenario
  // gives the market, then the environment, then flags.
  proto::server_settings settings;
  oracle_config oracles;  // none with a scenario: every protocol sees the market
  if (!a->has("scenario")) {
    auto cfg = a->has("config") ? proto::load_config_file(*a->get("config"))
                                : proto::load_default_config();
    if (!cfg.ok()) return fail(cfg.status());
    settings = cfg->server;
    oracles = cfg->oracle;
  }
  if (auto s = apply_environment(settings); !s.ok()) return fail(s);
  for (const std::string& kv : a->all("set")) {
    const auto eq = kv.find('=');
    const std::string_view k = std::string_view(kv).substr(0, eq);
    if (eq == std::string::npos || !k.starts_with("server.")) {
      return fail(absl::InvalidArgumentError(
          proto::detail::cat("--set ", kv, ": expected server.KEY=VALUE")));
    }
    if (auto s = proto::apply_server_override(settings, k.substr(7), kv.substr(eq + 1), "--set");
        !s.ok()) {
      return fail(s);
    }
  }
  if (auto b = a->get("bind")) {
    if (auto s = proto::apply_server_override(settings, "bind", *b, "--bind"); !s.ok())
      return fail(s);
  }
  if (auto p = a->get("port")) {
    if (auto s = proto::apply_server_override(settings, "port", *p, "--port"); !s.ok())
      return fail(s);
  }

  auto w = load_world(*la);
  if (!w.ok()) return fail(w.status());
  auto b = build_book(*w);
  if (!b.ok()) return fail(b.status());
  err << "cascade serve: " << w->positions_note << " (" << w->source << "); " << (*b)->size()
      << " positions in the book\n";

  // Signals are taken by sigwait on this thread only: block them before any thread
  // starts, so every thread inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  // A peer closing mid-write must not kill the process.
  std::signal(SIGPIPE, SIG_IGN);

  app_inputs in;
  in.mkt = std::move(w->mkt);
  in.bk = *std::move(b);
  in.server = settings;
  in.max_rounds = w->max_rounds;
  in.oracles = std::move(oracles);
  app server(std::move(in));
  auto port = server.start();
  if (!port.ok()) {
    err << "cascade serve: " << port.status().message() << '\n';
    return exit_failure;
  }
  out << "listening http://" << settings.bind << ':' << *port << std::endl;
  // The page's address for a browser: a wildcard bind is reached on loopback.
  const bool wildcard = settings.bind == "0.0.0.0" || settings.bind == "::";
  const std::string host = wildcard ? "127.0.0.1"
                           : settings.bind.find(':') != std::string::npos
                               ? "[" + settings.bind + "]"
                               : settings.bind;
  err << "cascade serve: the live page: http://" << host << ':' << *port << "/\n"
      << "cascade serve: WebSocket at ws://" << host << ':' << *port
      << "/v1/ws; metrics at /metrics; Ctrl-C stops\n";

  int sig = 0;
  sigwait(&stop_signals, &sig);
  err << "cascade serve: " << (sig == SIGINT ? "SIGINT" : "SIGTERM") << ", shutting down\n";
  server.stop();
  err << "cascade serve: stopped\n";
  return exit_ok;
}

}  // namespace cascade::server
