// The server's Prometheus metrics (prometheus-cpp core), exposed at /metrics in the text
// format by our own HTTP server. Names follow Prometheus conventions: `cascade_` prefix,
// `_total` counters, base units (`_seconds`, `_usd`, `_ratio`).
//
// Threads: metric objects are thread-safe (atomics inside prometheus-cpp); the engine
// thread sets the per-protocol and per-asset gauges, the edge and publisher count their
// own. serialize() may run on any thread. Created once at start-up; allocates then.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/bands.hpp"
#include "engine/market.hpp"
#include "proto/ws_codec.hpp"
#include "server/net.hpp"

namespace cascade::server {

class metrics {
 public:
  explicit metrics(const market& m);
  metrics(const metrics&) = delete;
  metrics& operator=(const metrics&) = delete;

  // The Prometheus text exposition of every metric.
  [[nodiscard]] std::string serialize() const;
  [[nodiscard]] net_metrics for_net();

  prometheus::Counter& ticks_received;  // valid ticks accepted from clients
  prometheus::Counter& ticks_applied;  // ticks the engine applied (after coalescing: moved a price)
  prometheus::Counter& ticks_coalesced;  // ticks superseded by a later one of the same batch
  prometheus::Counter& alerts;           // alert events
  prometheus::Histogram& tick_to_alert;  // ingest -> encoded for subscribers, seconds
  prometheus::Counter& projections;
  prometheus::Histogram& projection_duration;
  prometheus::Gauge& engine_queue_depth;
  prometheus::Gauge& publisher_queue_depth;
  prometheus::Histogram& engine_batch_seconds;  // one duty cycle's work
  prometheus::Counter& events_published;
  prometheus::Gauge& book_positions;
  prometheus::Gauge& last_seq;
  prometheus::Counter& pending_events;     // pending_liquidation events (entered or cleared)
  prometheus::Counter& insolvency_events;  // insolvency events (entered or cleared)

  // Per protocol (by id) and band.
  std::vector<std::array<prometheus::Gauge*, band_count>> positions;
  std::vector<prometheus::Gauge*> liquidatable_collateral_usd;
  std::vector<prometheus::Gauge*> liquidatable_debt_usd;
  std::vector<prometheus::Gauge*> projected_bad_debt_usd;
  std::vector<prometheus::Gauge*> projected_liquidated;
  std::vector<prometheus::Gauge*> pending_positions;
  std::vector<prometheus::Gauge*> pending_debt_usd;
  std::vector<prometheus::Gauge*> pending_seize_usd;
  std::vector<prometheus::Gauge*> insolvent_positions;
  std::vector<prometheus::Gauge*> insolvent_debt_usd;
  std::vector<prometheus::Gauge*> insolvent_shortfall_usd;
  // Per asset (by id).
  std::vector<prometheus::Gauge*> price_usd;
  std::vector<prometheus::Gauge*> volatility_annual;
  std::vector<prometheus::Gauge*> critical_shock;
  std::vector<prometheus::Gauge*> critical_probability;
  std::vector<prometheus::Gauge*> projected_price_drop;
  std::vector<prometheus::Gauge*> queued_units;  // Q_a: units queued to be seized
  std::vector<prometheus::Gauge*> depth_scale;   // liquidity withdrawal: 1 = full depth

  // Edge.
  prometheus::Gauge& ws_connections;
  prometheus::Gauge& http_connections;
  prometheus::Counter& ws_messages_in;
  prometheus::Counter& ws_messages_out;
  prometheus::Counter& ws_events_dropped;
  prometheus::Counter& ws_gaps;
  prometheus::Counter& http_requests;
  prometheus::Counter& connections_refused;

  // Refusals by error code.
  [[nodiscard]] prometheus::Counter& error(proto::error_code c) {
    return *errors_[static_cast<std::size_t>(c)];
  }

  // Oracle events by kind (engine/oracle.hpp), and per (protocol, asset) feed the
  // oracle price and its divergence from the market (|oracle / market - 1|); created on
  // first use. Engine thread.
  [[nodiscard]] prometheus::Counter& oracle_event(std::string_view kind);
  [[nodiscard]] prometheus::Gauge& oracle_price(const std::string& protocol,
                                                const std::string& asset);
  [[nodiscard]] prometheus::Gauge& oracle_divergence(const std::string& protocol,
                                                     const std::string& asset);

 private:
  metrics(const market& m, std::shared_ptr<prometheus::Registry> r);
  prometheus::Family<prometheus::Counter>* oracle_events_ = nullptr;
  prometheus::Family<prometheus::Gauge>* oracle_price_ = nullptr;
  prometheus::Family<prometheus::Gauge>* oracle_divergence_ = nullptr;
  std::shared_ptr<prometheus::Registry> registry_;
  std::vector<prometheus::Counter*> errors_;
};

}  // namespace cascade::server
