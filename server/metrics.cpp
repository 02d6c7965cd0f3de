#include "server/metrics.hpp"

#include <prometheus/text_serializer.h>

#include <limits>
#include <sstream>

namespace cascade::server {

namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

prometheus::Counter& counter(prometheus::Registry& r, const std::string& name,
                             const std::string& help) {
  return BuildCounter().Name(name).Help(help).Register(r).Add({});
}

prometheus::Family<prometheus::Gauge>& gauges(prometheus::Registry& r, const std::string& name,
                                              const std::string& help) {
  return BuildGauge().Name(name).Help(help).Register(r);
}

prometheus::Gauge& gauge(prometheus::Registry& r, const std::string& name,
                         const std::string& help) {
  return gauges(r, name, help).Add({});
}

// Latency buckets from 5 us to 10 s, about x2 apart.
prometheus::Histogram::BucketBoundaries latency_buckets() {
  return {5e-6, 1e-5,   2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3,
          1e-2, 2.5e-2, 5e-2,   0.1,  0.25, 0.5,    1.0,  2.5,  10.0};
}

}  // namespace

metrics::metrics(const market& m) : metrics(m, std::make_shared<prometheus::Registry>()) {}

metrics::metrics(const market& m, std::shared_ptr<prometheus::Registry> r)
    : ticks_received(counter(*r, "cascade_ticks_received_total",
                             "Valid price ticks received from clients (WebSocket and REST).")),
      ticks_applied(counter(*r, "cascade_ticks_applied_total",
                            "Price ticks the engine applied to the book (after coalescing).")),
      ticks_coalesced(counter(*r, "cascade_ticks_coalesced_total",
                              "Ticks superseded by a later tick of the same asset in one engine "
                              "batch.")),
      alerts(counter(*r, "cascade_alerts_total", "Band crossings streamed as alert events.")),
      tick_to_alert(BuildHistogram()
                        .Name("cascade_tick_to_alert_seconds")
                        .Help("From a price message reaching the server to its alert being "
                              "encoded for subscribers.")
                        .Register(*r)
                        .Add({}, latency_buckets())),
      projections(counter(*r, "cascade_projections_total",
                          "Cascade projections run (no-shock cascade of the live state).")),
      projection_duration(BuildHistogram()
                              .Name("cascade_projection_duration_seconds")
                              .Help("Time to run one cascade projection to its fixed point.")
                              .Register(*r)
                              .Add({}, latency_buckets())),
      engine_queue_depth(
          gauge(*r, "cascade_engine_queue_depth", "Commands waiting in the engine's inbox.")),
      publisher_queue_depth(
          gauge(*r, "cascade_publisher_queue_depth", "Event batches waiting for the publisher.")),
      engine_batch_seconds(BuildHistogram()
                               .Name("cascade_engine_batch_seconds")
                               .Help("Work of one engine duty cycle (apply, project, hand off).")
                               .Register(*r)
                               .Add({}, latency_buckets())),
      events_published(counter(*r, "cascade_events_published_total",
                               "Events (alerts, cascades, prices) given a sequence number.")),
      book_positions(gauge(*r, "cascade_book_positions", "Live positions in the book.")),
      last_seq(gauge(*r, "cascade_last_seq", "Sequence number of the last event published.")),
      pending_events(counter(*r, "cascade_pending_liquidation_events_total",
                             "pending_liquidation events: positions under 1 at market prices "
                             "but not yet at their protocol's oracle (entered or cleared).")),
      insolvency_events(counter(*r, "cascade_insolvency_events_total",
                                "insolvency events: positions solvent at the oracle whose "
                                "collateral, sold now, would not cover the debt (entered or "
                                "cleared).")),
      ws_connections(gauge(*r, "cascade_ws_connections", "Open WebSocket connections.")),
      http_connections(gauge(*r, "cascade_http_connections", "Open HTTP connections.")),
      ws_messages_in(counter(*r, "cascade_ws_messages_received_total",
                             "WebSocket messages received from clients.")),
      ws_messages_out(
          counter(*r, "cascade_ws_messages_sent_total", "WebSocket messages written to clients.")),
      ws_events_dropped(counter(*r, "cascade_ws_events_dropped_total",
                                "Events dropped from full subscriber queues.")),
      ws_gaps(counter(*r, "cascade_ws_gaps_total", "Gap messages sent to subscribers.")),
      http_requests(counter(*r, "cascade_http_requests_total", "HTTP requests answered.")),
      connections_refused(counter(*r, "cascade_connections_refused_total",
                                  "Connections refused over max_connections.")),
      registry_(std::move(r)) {
  auto& reg = *registry_;
  auto& pos = gauges(reg, "cascade_positions", "Live positions per protocol and health band.");
  auto& liq_coll = gauges(reg, "cascade_liquidatable_collateral_usd",
                          "Collateral of positions in the liquidatable band, at oracle prices.");
  auto& liq_debt = gauges(reg, "cascade_liquidatable_debt_usd",
                          "Debt of positions in the liquidatable band, at oracle prices.");
  auto& bad = gauges(reg, "cascade_projected_bad_debt_usd",
                     "Bad debt the latest cascade projection leaves, per protocol.");
  auto& liq = gauges(reg, "cascade_projected_liquidated_positions",
                     "Positions the latest cascade projection liquidates, per protocol.");
  auto& pend = gauges(reg, "cascade_pending_liquidation_positions",
                      "Positions under HF 1 at market prices that their protocol's oracle "
                      "does not yet show as liquidatable.");
  auto& pend_debt = gauges(reg, "cascade_pending_liquidation_debt_usd",
                           "Debt of pending liquidations, at market prices.");
  auto& pend_seize = gauges(reg, "cascade_pending_liquidation_seize_usd",
                            "Collateral the pending liquidations will seize, at market prices.");
  auto& ins = gauges(reg, "cascade_hidden_insolvent_positions",
                     "Positions solvent at the oracle whose realizable collateral is below "
                     "their debt.");
  auto& ins_debt = gauges(reg, "cascade_hidden_insolvency_debt_usd",
                          "Debt of hidden-insolvent positions, at market prices.");
  auto& ins_short = gauges(reg, "cascade_hidden_insolvency_shortfall_usd",
                           "Debt minus realizable collateral over hidden-insolvent positions.");
  for (std::size_t p = 0; p < m.protocol_count(); ++p) {
    const std::string& name = m.get_protocol(protocol_id::from_index(p)).name;
    std::array<prometheus::Gauge*, band_count> row{};
    for (std::size_t b = 0; b < band_count; ++b) {
      row[b] =
          &pos.Add({{"protocol", name}, {"band", std::string(to_string(static_cast<band>(b)))}});
    }
    positions.push_back(row);
    liquidatable_collateral_usd.push_back(&liq_coll.Add({{"protocol", name}}));
    liquidatable_debt_usd.push_back(&liq_debt.Add({{"protocol", name}}));
    projected_bad_debt_usd.push_back(&bad.Add({{"protocol", name}}));
    projected_liquidated.push_back(&liq.Add({{"protocol", name}}));
    pending_positions.push_back(&pend.Add({{"protocol", name}}));
    pending_debt_usd.push_back(&pend_debt.Add({{"protocol", name}}));
    pending_seize_usd.push_back(&pend_seize.Add({{"protocol", name}}));
    insolvent_positions.push_back(&ins.Add({{"protocol", name}}));
    insolvent_debt_usd.push_back(&ins_debt.Add({{"protocol", name}}));
    insolvent_shortfall_usd.push_back(&ins_short.Add({{"protocol", name}}));
  }
  auto& price = gauges(reg, "cascade_price_usd",
                       "Current market price per asset (protocols' oracles: "
                       "cascade_oracle_price_usd).");
  auto& depth = gauges(reg, "cascade_liquidity_depth_scale",
                       "Share of the asset's configured liquidity depth still there (1 = full; "
                       "below 1 when withdrawal under stress is configured and the asset fell "
                       "or turned volatile).");
  auto& queued = gauges(reg, "cascade_queued_liquidation_units",
                        "Units of the asset queued to be seized by liquidations (liquidatable "
                        "and pending positions), which realizable values sell behind.");
  auto& vol = gauges(reg, "cascade_volatility_annual_ratio",
                     "EWMA volatility of the asset's tick stream, annualized (NaN until "
                     "enough ticks).");
  auto& crit = gauges(reg, "cascade_critical_shock_ratio",
                      "Distance to cascade: the smallest price drop of the asset that "
                      "amplifies itself or creates material bad debt (NaN: none up to 90%).");
  auto& prob = gauges(reg, "cascade_critical_shock_probability",
                      "Probability that the asset touches its critical shock within the "
                      "risk horizon (log-normal, EWMA volatility).");
  auto& drop = gauges(reg, "cascade_projected_price_drop_ratio",
                      "Price drop the latest cascade projection ends with, per asset.");
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (std::size_t a = 0; a < m.asset_count(); ++a) {
    const std::string& sym = m.asset(asset_id::from_index(a)).symbol;
    price_usd.push_back(&price.Add({{"asset", sym}}));
    volatility_annual.push_back(&vol.Add({{"asset", sym}}));
    volatility_annual.back()->Set(nan);
    critical_shock.push_back(&crit.Add({{"asset", sym}}));
    critical_shock.back()->Set(nan);
    critical_probability.push_back(&prob.Add({{"asset", sym}}));
    critical_probability.back()->Set(nan);
    projected_price_drop.push_back(&drop.Add({{"asset", sym}}));
    queued_units.push_back(&queued.Add({{"asset", sym}}));
    depth_scale.push_back(&depth.Add({{"asset", sym}}));
  }
  oracle_events_ = &BuildCounter()
                        .Name("cascade_oracle_events_total")
                        .Help("Oracle events by kind: sources invalid or valid again, feeds stale "
                              "or fresh, protocol oracles diverging from or converging to the "
                              "market, assets without a valid source.")
                        .Register(reg);
  for (const char* k : {"source_invalid", "source_valid", "feed_stale", "feed_fresh", "divergence",
                        "convergence", "no_valid_source"}) {
    (void)oracle_events_->Add({{"kind", k}});
  }
  oracle_price_ = &gauges(reg, "cascade_oracle_price_usd",
                          "The price a protocol's oracle feed shows for an asset (feeds only; "
                          "protocols without a feed see cascade_price_usd).");
  oracle_divergence_ = &gauges(reg, "cascade_oracle_divergence_ratio",
                               "|oracle / market - 1| per protocol feed.");
  auto& errs = BuildCounter()
                   .Name("cascade_errors_total")
                   .Help("Requests and messages refused, by error code.")
                   .Register(reg);
  for (int c = 0; c <= static_cast<int>(proto::error_code::internal); ++c) {
    errors_.push_back(
        &errs.Add({{"code", std::string(proto::to_string(static_cast<proto::error_code>(c)))}}));
  }
}

prometheus::Counter& metrics::oracle_event(std::string_view kind) {
  return oracle_events_->Add({{"kind", std::string(kind)}});
}

prometheus::Gauge& metrics::oracle_price(const std::string& protocol, const std::string& asset) {
  return oracle_price_->Add({{"protocol", protocol}, {"asset", asset}});
}

prometheus::Gauge& metrics::oracle_divergence(const std::string& protocol,
                                              const std::string& asset) {
  return oracle_divergence_->Add({{"protocol", protocol}, {"asset", asset}});
}

std::string metrics::serialize() const {
  const prometheus::TextSerializer ser;
  std::ostringstream os;
  ser.Serialize(os, registry_->Collect());
  return std::move(os).str();
}

net_metrics metrics::for_net() {
  net_metrics n;
  n.ws_connections = &ws_connections;
  n.http_connections = &http_connections;
  n.ws_messages_in = &ws_messages_in;
  n.ws_messages_out = &ws_messages_out;
  n.ws_events_dropped = &ws_events_dropped;
  n.ws_gaps = &ws_gaps;
  n.http_requests = &http_requests;
  n.connections_refused = &connections_refused;
  n.refused = [this](std::string_view code) {
    for (int c = 0; c <= static_cast<int>(proto::error_code::internal); ++c) {
      const auto e = static_cast<proto::error_code>(c);
      if (proto::to_string(e) == code) return error(e).Increment();
    }
  };
  return n;
}

}  // namespace cascade::server
