#include "server/app.hpp"

#include <absl/strings/str_cat.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <utility>

#include "engine/cascade.hpp"
#include "engine/curves.hpp"
#include "engine/volatility.hpp"
#include "proto/input_error.hpp"
#include "proto/json_writer.hpp"
#include "proto/report.hpp"
#include "proto/rest_codec.hpp"
#include "proto/scenario.hpp"
#include "proto/ws_codec.hpp"
#include "server/engine_service.hpp"
#include "server/hub.hpp"
#include "server/metrics.hpp"
#include "server/static_files.hpp"

namespace cascade::server {

namespace {

using proto::error_code;
using proto::role;
using proto::wire_error;

constexpr std::string_view json_type = "application/json";
// The engine counts as stalled when it has not cycled for this long (it wakes at least
// every 50 ms when idle).
constexpr std::int64_t stalled_ns = 2'000'000'000;

http_response json(unsigned status, std::string body) {
  http_response r;
  r.status = status;
  r.body = std::move(body);
  r.body.push_back('\n');
  return r;
}

// Compares without an early exit, so a token's prefix cannot be found by timing.
bool same_token(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff = static_cast<unsigned char>(
        diff | (static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(b[i])));
  }
  return diff == 0;
}

}  // namespace

std::string compute_risk(const book& snap, const volatility_tracker& vol, double horizon_h,
                         double half_life_h, std::uint32_t rounds, metrics& mt);

struct app::impl {
  explicit impl(app_inputs in)
      : settings(std::move(in.server)),
        max_rounds(in.max_rounds),
        met(*in.mkt),
        pub(*in.mkt, settings.ring_events, &met),
        engine(
            std::move(in.mkt), std::move(in.bk),
            engine_settings{settings.projection_interval_ms, settings.inbox_capacity, in.max_rounds,
                            settings.volatility_half_life_hours * 3600.0,
                            [this](const book& snap, const volatility_tracker& vol) {
                              (void)compute_risk(snap, vol, settings.risk_horizon_hours,
                                                 settings.volatility_half_life_hours, max_rounds,
                                                 met);
                            },
                            60.0, std::move(in.oracles)},
            [this](std::vector<proto::event>&& batch, std::vector<answer>&& answers) {
              pub.publish(std::move(batch), std::move(answers));
            },
            pub.prices_wanted(), &met) {}

  [[nodiscard]] const market& mkt() const { return engine.get_market(); }

  // The role a token grants: anonymous for none, nullopt for an unknown token.
  [[nodiscard]] std::optional<role> role_of(std::string_view token) const {
    if (token.empty()) return settings.anonymous;
    std::optional<role> found;
    for (const auto& t : settings.tokens) {
      if (same_token(t.token, token)) found = t.grants;
    }
    return found;
  }

  http_response refuse(const wire_error& e) {
    met.error(e.code).Increment();
    return json(proto::http_status(e.code), proto::encode_error_body(e));
  }
  void refuse(const http_reply& reply, error_code code, std::string message) {
    reply(refuse(wire_error{code, std::move(message)}));
  }
  // The answer when the worker already has its fill of snapshot jobs.
  std::function<void()> snapshot_overloaded(const http_reply& reply) {
    return [this, reply] {
      refuse(reply, error_code::overloaded, "too many stress and curve requests are running");
    };
  }
  // Submits to the engine, or answers `overloaded`.
  bool submit(command&& c, const http_reply& reply) {
    if (engine.submit(std::move(c))) return true;
    refuse(reply, error_code::overloaded,
           "the engine's inbox is full (or the server is stopping); retry later");
    return false;
  }

  void route(http_request& req, const http_reply& reply);
  void get_positions(const http_request& req, const http_reply& reply);
  void write_positions(http_request& req, const http_reply& reply);
  void post_prices(const http_request& req, const http_reply& reply);
  void post_stress(http_request& req, const http_reply& reply);
  void get_curves(const http_request& req, const http_reply& reply);
  void get_risk(const http_reply& reply);
  void readyz(const http_reply& reply);

  void ws_prices(const std::shared_ptr<ws_peer>& peer, proto::client_message& msg,
                 std::int64_t ingest);

  proto::server_settings settings;
  std::uint32_t max_rounds;
  metrics met;
  hub pub;
  engine_service engine;
  std::unique_ptr<net_server> net;
};

app::app(app_inputs in) : impl_(std::make_unique<impl>(std::move(in))) {}

app::~app() { stop(); }

absl::StatusOr<std::uint16_t> app::start() {
  impl_->pub.start();
  impl_->engine.start();
  net_settings ns;
  ns.bind = impl_->settings.bind;
  ns.port = impl_->settings.port;
  ns.io_threads = impl_->settings.io_threads;
  ns.max_connections = impl_->settings.max_connections;
  ns.max_body_bytes = impl_->settings.max_body_bytes;
  ns.max_frame_bytes = impl_->settings.max_frame_bytes;
  ns.send_queue = impl_->settings.send_queue;
  impl_->net = std::make_unique<net_server>(ns, *this, impl_->met.for_net());
  auto port = impl_->net->start();
  if (!port.ok()) stop();
  return port;
}

void app::stop() {
  if (impl_->net) impl_->net->stop();
  impl_->engine.stop();
  impl_->pub.stop();
}

// --- HTTP --------------------------------------------------------------------------

void app::on_http(http_request req, http_reply reply) { impl_->route(req, reply); }

void app::impl::route(http_request& req, const http_reply& reply) {
  const std::string_view path = req.path;
  const std::string_view method = req.method;
  const bool get = method == "GET" || method == "HEAD";

  // RFC 3986: a target is printable ASCII, anything else %-escaped. Refused first, so no
  // answer ever echoes raw bytes that may not be UTF-8.
  for (const std::string_view part : {path, std::string_view(req.query)}) {
    for (const char ch : part) {
      const auto c = static_cast<unsigned char>(ch);
      if (c <= 0x20 || c >= 0x7F) {
        return refuse(reply, error_code::bad_request,
                      absl::StrCat("the request target holds the byte 0x",
                                   absl::Hex(c, absl::kZeroPad2), ": %-escape it (RFC 3986)"));
      }
    }
  }

  if (path == "/healthz" || path == "/readyz" || path == "/metrics") {
    if (!get) return refuse(reply, error_code::method_not_allowed, "use GET");
    if (path == "/healthz") return reply(json(200, R"({"status":"ok"})"));
    if (path == "/readyz") return readyz(reply);
    http_response r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = met.serialize();
    return reply(std::move(r));
  }
  if (path == "/v1/ws") {
    // A plain request to the WebSocket endpoint (a browser, curl): say how to connect.
    met.error(error_code::bad_request).Increment();
    http_response r = json(
        426, proto::encode_error_body({error_code::bad_request,
                                       "/v1/ws is the WebSocket endpoint: connect with a WebSocket "
                                       "client (Upgrade: websocket), e.g. ws://HOST:PORT/v1/ws"}));
    r.headers.emplace_back("Upgrade", "websocket");
    return reply(std::move(r));
  }
  if (auto page = serve_page(req)) {
    if (auto* e = std::get_if<wire_error>(&*page)) return reply(refuse(*e));
    return reply(std::get<http_response>(std::move(*page)));
  }
  if (!path.starts_with("/v1/")) {
    return refuse(reply, error_code::not_found, proto::detail::cat("no resource at '", path, "'"));
  }
  const auto who = role_of(req.token);
  if (!who) return refuse(reply, error_code::unauthorized, "unknown token");
  const auto need = [&](role r) {
    if (*who >= r) return true;
    if (req.token.empty()) {
      refuse(reply, error_code::unauthorized,
             proto::detail::cat("this request needs a token with the ", proto::to_string(r),
                                " role (Authorization: Bearer TOKEN)"));
    } else {
      refuse(reply, error_code::forbidden,
             proto::detail::cat("this request needs the ", proto::to_string(r),
                                " role; the token has ", proto::to_string(*who)));
    }
    return false;
  };

  // Every route under /v1 but GET /v1/positions and /v1/curves takes no parameters: one
  // given anyway is refused rather than ignored (a filter the route does not have).
  const auto no_query = [&] {
    auto q = proto::decode_query(req.query, {});
    if (const auto* e = std::get_if<wire_error>(&q)) {
      reply(refuse(*e));
      return false;
    }
    return true;
  };

  const auto method_is = [&](std::initializer_list<std::string_view> allowed) {
    for (auto m : allowed) {
      if (method == m || (m == "GET" && method == "HEAD")) return true;
    }
    std::string list;
    for (auto m : allowed) proto::detail::append(&list, list.empty() ? "" : ", ", m);
    refuse(reply, error_code::method_not_allowed,
           proto::detail::cat(method, " is not allowed on ", path, "; use ", list));
    return false;
  };

  if (path == "/v1/assets") {
    if (!method_is({"GET"}) || !need(role::read) || !no_query()) return;
    submit({now_ns(), query_cmd{[reply](const engine_view& v) {
              reply(json(200, proto::encode_assets(v.b)));
            }}},
           reply);
    return;
  }
  if (path == "/v1/protocols") {
    if (!method_is({"GET"}) || !need(role::read) || !no_query()) return;
    return reply(json(200, proto::encode_protocols(mkt())));
  }
  if (path == "/v1/summary") {
    if (!method_is({"GET"}) || !need(role::read) || !no_query()) return;
    submit({now_ns(), query_cmd{[reply](const engine_view& v) {
              reply(json(200, proto::encode_summary(v.b, v.seq)));
            }}},
           reply);
    return;
  }
  if (path == "/v1/oracles") {
    if (!method_is({"GET"}) || !need(role::read) || !no_query()) return;
    submit({now_ns(), query_cmd{[reply](const engine_view& v) {
              reply(json(200, proto::encode_oracles(v.b, v.oracles, v.seq)));
            }}},
           reply);
    return;
  }
  if (path == "/v1/hidden") {
    if (!method_is({"GET"}) || !need(role::read) || !no_query()) return;
    submit({now_ns(), query_cmd{[reply](const engine_view& v) {
              reply(json(200, proto::encode_hidden(v.b, v.seq)));
            }}},
           reply);
    return;
  }
  if (path == "/v1/digest") {
    if (!method_is({"GET"}) || !need(role::read) || !no_query()) return;
    submit({now_ns(), query_cmd{[reply](const engine_view& v) {
              proto::json_writer w;
              char hex[17];
              std::snprintf(hex, sizeof hex, "%016llx",
                            static_cast<unsigned long long>(v.b.digest()));
              w.begin_object()
                  .field("digest", std::string_view(hex))
                  .field("seq", v.seq)
                  .field("positions", static_cast<std::uint64_t>(v.b.size()))
                  .end_object();
              reply(json(200, w.take()));
            }}},
           reply);
    return;
  }
  if (path == "/v1/cascade") {
    if (!method_is({"GET"}) || !need(role::read) || !no_query()) return;
    const market* m = &mkt();
    submit({now_ns(), projection_cmd{[reply, m](const proto::cascade_event& c, std::uint64_t seq) {
              reply(json(200, proto::encode_projection(c, seq, *m)));
            }}},
           reply);
    return;
  }
  if (path == "/v1/curves") {
    if (!method_is({"GET"}) || !need(role::read)) return;
    return get_curves(req, reply);
  }
  if (path == "/v1/risk") {
    if (!method_is({"GET"}) || !need(role::read) || !no_query()) return;
    return get_risk(reply);
  }
  if (path == "/v1/prices") {
    if (!method_is({"POST"}) || !need(role::price) || !no_query()) return;
    return post_prices(req, reply);
  }
  if (path == "/v1/stress") {
    if (!method_is({"POST"}) || !need(role::read) || !no_query()) return;
    return post_stress(req, reply);
  }
  if (path == "/v1/positions") {
    if (!method_is({"GET", "POST"})) return;
    if (get) {
      if (!need(role::read)) return;
      return get_positions(req, reply);
    }
    if (!need(role::admin) || !no_query()) return;
    return write_positions(req, reply);
  }
  if (path.starts_with("/v1/positions/")) {
    if (!method_is({"GET", "DELETE"})) return;
    if (!need(get ? role::read : role::admin) || !no_query()) return;
    return write_positions(req, reply);
  }
  refuse(reply, error_code::not_found, proto::detail::cat("no resource at '", path, "'"));
}

void app::impl::readyz(const http_reply& reply) {
  const bool running = engine.running();
  const std::int64_t age = now_ns() - engine.heartbeat_ns();
  proto::json_writer w;
  const bool ready = running && age < stalled_ns;
  w.begin_object()
      .field("status", ready ? "ready" : (running ? "stalled" : "stopped"))
      .field("engine_queue", static_cast<std::uint64_t>(engine.inbox_depth()))
      .field("publisher_queue", static_cast<std::uint64_t>(pub.queue_depth()))
      .field("last_seq", pub.last_seq())
      .field("engine_heartbeat_age_ms", static_cast<double>(age) * 1e-6)
      .end_object();
  reply(json(ready ? 200 : 503, w.take()));
}

void app::impl::get_positions(const http_request& req, const http_reply& reply) {
  auto q = proto::decode_at_risk_query(req.query, mkt());
  if (const auto* e = std::get_if<wire_error>(&q)) return reply(refuse(*e));
  proto::at_risk_query query = std::get<proto::at_risk_query>(std::move(q));
  submit({now_ns(), query_cmd{[reply, query = std::move(query)](const engine_view& v) {
            auto all = v.b.below(query.max_hf, std::numeric_limits<std::size_t>::max(),
                                 query.protocol, query.asset);
            // Pages are ordered by (hf, id), which survives row renumbering; the cursor
            // is the last (hf, id) served.
            const auto less = [&](const at_risk_entry& x, const at_risk_entry& y) {
              return x.hf < y.hf || (x.hf == y.hf && v.b.id_at(x.row) < v.b.id_at(y.row));
            };
            if (query.after) {
              const auto& [hf, id] = *query.after;
              std::erase_if(all, [&](const at_risk_entry& e) {
                return e.hf < hf || (e.hf == hf && v.b.id_at(e.row) <= id);
              });
            }
            const std::size_t take = std::min(all.size(), query.limit);
            std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(take),
                              all.end(), less);
            std::vector<row_t> rows;
            rows.reserve(take);
            for (std::size_t i = 0; i < take; ++i) rows.push_back(all[i].row);
            reply(json(200, proto::encode_positions_page(v.b, rows, all.size() > take)));
          }}},
         reply);
}

void app::impl::write_positions(http_request& req, const http_reply& reply) {
  const std::int64_t ingest = now_ns();
  const auto done = [this, reply](const apply_result& r) {
    if (r.error) return reply(refuse(*r.error));
    proto::json_writer w;
    w.begin_object();
    w.field("upserted", r.applied).field("alerts", r.alerts).field("seq", r.seq);
    w.end_object();
    reply(json(200, w.take()));
  };
  if (req.path == "/v1/positions") {  // POST: batch upsert
    auto body = proto::decode_positions_body(req.body, mkt(), settings.max_batch);
    if (const auto* e = std::get_if<wire_error>(&body)) return reply(refuse(*e));
    submit({ingest, upsert_cmd{std::get<std::vector<position_input>>(std::move(body)), done}},
           reply);
    return;
  }
  // One path segment: an id holding '/' is written %2F there.
  auto segment = proto::decode_path_segment(
      std::string_view(req.path).substr(std::string_view("/v1/positions/").size()),
      "the position id in the path");
  if (const auto* e = std::get_if<wire_error>(&segment)) return reply(refuse(*e));
  const std::string& id = std::get<std::string>(segment);
  if (req.method == "DELETE") {
    submit({ingest,
            remove_cmd{{id},
                       [this, reply, key = id](const apply_result& r) {
                         if (r.error) return reply(refuse(*r.error));
                         proto::json_writer w;
                         w.begin_object().field("removed", key).field("seq", r.seq).end_object();
                         reply(json(200, w.take()));
                       }}},
           reply);
    return;
  }
  submit({ingest, query_cmd{[this, reply, key = id](const engine_view& v) {
            const auto row = v.b.find(key);
            if (!row) {
              return refuse(reply, error_code::unknown_position,
                            proto::detail::cat("no position with id ", proto::detail::quoted(key)));
            }
            reply(json(200, proto::encode_position(v.b, *row)));
          }}},
         reply);
}

void app::impl::post_prices(const http_request& req, const http_reply& reply) {
  const std::int64_t ingest = now_ns();
  auto body = proto::decode_prices_body(req.body, mkt(), settings.max_batch);
  if (const auto* e = std::get_if<wire_error>(&body)) return reply(refuse(*e));
  auto ticks = std::get<std::vector<proto::price_tick>>(std::move(body));
  const auto n = ticks.size();
  if (submit(
          {ingest,
           prices_cmd{std::move(ticks),
                      [this, reply](const apply_result& r) {
                        if (r.error) return reply(refuse(*r.error));
                        proto::json_writer w;
                        w.begin_object();
                        w.field("applied", r.applied).field("alerts", r.alerts).field("seq", r.seq);
                        w.end_object();
                        reply(json(200, w.take()));
                      }}},
          reply)) {
    met.ticks_received.Increment(static_cast<double>(n));
  }
}

void app::impl::post_stress(http_request& req, const http_reply& reply) {
  const market* m = &mkt();
  const auto overloaded = snapshot_overloaded(reply);
  if (proto::body_has_positions(req.body)) {
    // A self-contained scenario: exactly `cascade stress`, on a worker, never touching
    // the live book.
    submit({now_ns(),
            snapshot_cmd{
                [this, reply, body = std::move(req.body)](const book&, const volatility_tracker&) {
                  auto sc = proto::parse_scenario(body, "POST /v1/stress body");
                  if (!sc.ok()) {
                    return refuse(reply, error_code::bad_request,
                                  std::string(proto::detail::text(sc.status())));
                  }
                  book b(sc->mkt, book_options{.realizable = false});  // the cascade reads legs
                  if (auto s = b.upsert(sc->positions); !s.ok()) {
                    return refuse(
                        reply, error_code::bad_request,
                        proto::detail::cat("POST /v1/stress body: ", proto::detail::text(s)));
                  }
                  std::vector<shock> shocks;
                  for (const auto& [a, f] : sc->shocks) shocks.push_back({a, f});
                  cascade_options o = proto::cascade_options_of(*sc);
                  cascade_simulator sim;
                  auto rep = sim.run(b, shocks, o);
                  if (!rep.ok()) {
                    return refuse(reply, error_code::bad_request,
                                  std::string(proto::detail::text(rep.status())));
                  }
                  reply(json(200, proto::encode_report(*rep, sc->mkt)));
                },
                overloaded}},
           reply);
    return;
  }
  auto live = proto::decode_live_stress(req.body, *m);
  if (const auto* e = std::get_if<wire_error>(&live)) return reply(refuse(*e));
  submit(
      {now_ns(), snapshot_cmd{[this, reply, m, ls = std::get<proto::live_stress>(std::move(live))](
                                  const book& snap, const volatility_tracker&) {
                                cascade_options o;
                                o.max_rounds = ls.max_rounds;
                                cascade_simulator sim;
                                auto rep = sim.run(snap, ls.shocks, o);
                                if (!rep.ok()) {
                                  return refuse(reply, error_code::bad_request,
                                                std::string(proto::detail::text(rep.status())));
                                }
                                reply(json(200, proto::encode_report(*rep, *m)));
                              },
                              overloaded}},
      reply);
}

void app::impl::get_curves(const http_request& req, const http_reply& reply) {
  constexpr std::string_view known[] = {"asset"};
  auto q = proto::decode_query(req.query, known);
  if (const auto* e = std::get_if<wire_error>(&q)) return reply(refuse(*e));
  const auto& params = std::get<proto::query_params>(q);
  if (params.empty()) return refuse(reply, error_code::bad_request, "asset: missing (?asset=ETH)");
  const auto a = mkt().find_asset(params[0].second);
  if (!a) {
    return refuse(
        reply, error_code::unknown_asset,
        proto::detail::cat("asset: unknown asset ", proto::detail::quoted(params[0].second)));
  }
  const std::uint32_t rounds = max_rounds;
  submit({now_ns(),
          snapshot_cmd{[this, reply, a = *a, rounds](const book& snap, const volatility_tracker&) {
                         critical_shock_options co;
                         co.max_rounds = rounds;
                         cascade_simulator sim;
                         auto c = standard_curves(snap, a, sim, co);
                         if (!c.ok()) {
                           return refuse(reply, error_code::internal,
                                         "the curves could not be computed");
                         }
                         reply(json(200, proto::encode_curves(snap, a, c->liquidation, c->cascade,
                                                              c->critical, co)));
                       },
                       snapshot_overloaded(reply)}},
         reply);
}

// Per asset: EWMA volatility, critical shock and the probability of touching it within
// the horizon; sets the risk gauges as it goes. Runs on the worker, on a snapshot.
std::string compute_risk(const book& snap, const volatility_tracker& vol, double horizon_h,
                         double half_life_h, std::uint32_t rounds, metrics& mt) {
  const market& m = snap.get_market();
  critical_shock_options co;
  co.max_rounds = rounds;
  cascade_simulator sim;
  proto::json_writer w;
  w.begin_object().field("horizon_hours", horizon_h).field("half_life_hours", half_life_h);
  w.key("assets").begin_array();
  const auto maybe = [&](std::optional<double> v) {
    if (v) {
      w.value(*v);
    } else {
      w.null();
    }
  };
  for (std::size_t i = 0; i < m.asset_count(); ++i) {
    const auto a = asset_id::from_index(i);
    auto crit = find_critical_shock(snap, a, sim, co);
    if (!crit.ok()) continue;
    const auto var = vol.variance_per_second(a);
    std::optional<double> annual;
    if (var) annual = std::sqrt(*var * seconds_per_year);
    std::optional<double> p;
    if (var && crit->shock) p = probability_of_touching(*var, horizon_h * 3600.0, *crit->shock);
    w.begin_object().field("asset", m.asset(a).symbol).field("price", snap.prices()[i]);
    w.field("samples", vol.samples(a));
    w.key("volatility_annual");
    maybe(annual);
    w.key("critical_shock");
    maybe(crit->shock);
    w.field("reason", proto::critical_reason(*crit));
    w.key("probability_touch");
    maybe(p);
    w.end_object();
    mt.critical_shock[i]->Set(crit->shock ? *crit->shock : std::nan(""));
    mt.critical_probability[i]->Set(p ? *p : std::nan(""));
  }
  w.end_array().end_object();
  return w.take();
}

void app::impl::get_risk(const http_reply& reply) {
  submit(
      {now_ns(), snapshot_cmd{[this, reply](const book& snap, const volatility_tracker& vol) {
                                reply(json(200, compute_risk(snap, vol, settings.risk_horizon_hours,
                                                             settings.volatility_half_life_hours,
                                                             max_rounds, met)));
                              },
                              snapshot_overloaded(reply)}},
      reply);
}

// --- WebSocket -----------------------------------------------------------------------

std::variant<int, http_response> app::on_upgrade(const http_request& req) {
  const auto who = impl_->role_of(req.token);
  if (!who) {
    return impl_->refuse(wire_error{error_code::unauthorized, "unknown token"});
  }
  if (*who < role::read) {
    return impl_->refuse(
        wire_error{error_code::unauthorized,
                   "the WebSocket needs a token (Authorization: Bearer TOKEN or ?token=TOKEN)"});
  }
  return static_cast<int>(*who);
}

void app::on_open(const std::shared_ptr<ws_peer>& peer) { impl_->pub.add(peer); }

void app::on_close(const ws_peer& peer) { impl_->pub.remove(peer.id()); }

void app::on_message(const std::shared_ptr<ws_peer>& peer, std::string_view data, bool binary) {
  const std::int64_t ingest = now_ns();
  auto& s = *impl_;
  const auto fail = [&](const std::string& id, wire_error e) {
    s.met.error(e.code).Increment();
    peer->send_control(proto::encode_error(id, e));
  };
  if (binary) {
    return fail({}, {error_code::binary_frame, "binary frames are not accepted: send JSON text"});
  }
  proto::decode_limits limits;
  limits.max_batch = s.settings.max_batch;
  auto msg = proto::decode_client_message(data, s.mkt(), limits);
  if (auto* e = std::get_if<wire_error>(&msg.body)) return fail(msg.id, std::move(*e));
  const auto who = static_cast<role>(peer->role());
  if (auto* sub = std::get_if<proto::subscribe_msg>(&msg.body)) {
    s.pub.subscribe(peer->id(), std::move(sub->sub));
    return peer->send_control(proto::encode_ack(msg.id, s.pub.last_seq()));
  }
  if (auto* uns = std::get_if<proto::unsubscribe_msg>(&msg.body)) {
    s.pub.unsubscribe(peer->id(), uns->channels);
    return peer->send_control(proto::encode_ack(msg.id, s.pub.last_seq()));
  }
  if (std::holds_alternative<proto::ping_msg>(msg.body)) {
    return peer->send_control(proto::encode_pong(msg.id));
  }
  if (auto* r = std::get_if<proto::resume_msg>(&msg.body)) {
    if (auto e = s.pub.resume(peer, r->from_seq)) return fail(msg.id, std::move(*e));
    // Posted after the replay: the ack marks its end.
    return peer->send_control(proto::encode_ack(msg.id, s.pub.last_seq()));
  }
  if (std::holds_alternative<proto::prices_msg>(msg.body)) {
    if (who < role::price) {
      return fail(msg.id,
                  {error_code::forbidden,
                   proto::detail::cat("pushing prices needs the price role; this connection has ",
                                      proto::to_string(who))});
    }
    return s.ws_prices(peer, msg, ingest);
  }
  fail(msg.id, {error_code::internal, "unhandled message"});
}

void app::impl::ws_prices(const std::shared_ptr<ws_peer>& peer, proto::client_message& msg,
                          std::int64_t ingest) {
  auto& pm = std::get<proto::prices_msg>(msg.body);
  const auto n = pm.ticks.size();
  command c{ingest, prices_cmd{std::move(pm.ticks), {}}};
  // Only a request with an id is answered: a feed pushing thousands of ticks a second
  // needs no answer to each, and the engine refuses only what the codec already has (an
  // unknown asset, a price that is not finite and > 0), so an id-less message has no
  // error to hear either. It then costs no callback (and no allocation for one).
  if (!msg.id.empty()) {
    std::get<prices_cmd>(c.body).done = [this, weak = std::weak_ptr<ws_peer>(peer),
                                         id = msg.id](const apply_result& r) {
      auto p = weak.lock();
      if (!p) return;
      if (r.error) {
        met.error(r.error->code).Increment();
        return p->send_control(proto::encode_error(id, *r.error));
      }
      p->send_control(proto::encode_ack(id, r.seq));
    };
  }
  if (!engine.submit(std::move(c))) {
    met.error(error_code::overloaded).Increment();
    peer->send_control(proto::encode_error(
        msg.id, {error_code::overloaded, "the engine's inbox is full; retry later"}));
    return;
  }
  met.ticks_received.Increment(static_cast<double>(n));
}

}  // namespace cascade::server
