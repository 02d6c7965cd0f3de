// The load tool's network side: price publishers paced by the clock, WebSocket
// subscribers that check what they receive, and a small HTTP client. Boost.Beast is
// confined to load_net.cpp; this header holds plain types only.
//
// Threads: a load_run owns one thread for every publisher (one io_context, so the
// price walks and the send log need no locks between publishers) and `sub_threads`
// threads for the subscribers (each subscriber lives on one of them; each thread keeps
// its own histograms and counters, merged in finish()). The caller's thread drives the
// phases: connect() -> start() -> wait_published() -> sync() -> finish().
//
// What the subscribers measure, per alert caused by a tick (`cause` not null):
//  - tick_to_alert: receive time (CLOCK_REALTIME, read when the frame is handed over)
//    minus the time the tick was written to the publisher's socket, the tick found by
//    (cause, price): every price sent carries a per-asset counter in the last 18 bits of
//    its mantissa (a relative change under 2^-34), which the alert's `price` echoes. An
//    engine cycle moves each asset once (it coalesces the ticks of one asset, the last
//    price winning), so an alert names the last tick of its asset in that cycle.
//  - ingest_to_receive: receive time minus the server's ingest_ns (the same clock over
//    loopback).
//  - server: emit_ns - ingest_ns, the server's own part (engine and encoding).
//  - outside_server: tick_to_alert - (emit_ns - ingest_ns) of the same alert: the
//    publisher's socket to the server's read, and the fan-out to the subscriber's read;
//    split into its two parts: write_to_ingest (ingest_ns minus the tick's write time:
//    the publisher's socket, the server's read and decode) and emit_to_receive
//    (receive time minus emit_ns: the server's write queue, the socket, the client's
//    read).
// Only alerts received inside the measured window are recorded.
#pragma once

#include <absl/status/statusor.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "perf/load/histogram.hpp"

namespace cascade::load {

struct ws_endpoint {
  std::string host;
  std::uint16_t port = 0;
  std::string target = "/v1/ws";  // path and query
};

// A blocking HTTP/1.1 client on one keep-alive connection (reopened when the server
// closes it). Not thread-safe: one caller thread.
class http_client {
 public:
  http_client(std::string host, std::uint16_t port, std::string token);
  ~http_client();
  http_client(const http_client&) = delete;
  http_client& operator=(const http_client&) = delete;

  struct reply {
    unsigned status = 0;
    std::string body;
  };
  [[nodiscard]] absl::StatusOr<reply> request(std::string_view method, std::string_view target,
                                              std::string_view body = {});

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

// A subscriber's digest of the seqs it received is the sum (mod 2^64) of this over them:
// equal sets give equal digests whatever the order.
[[nodiscard]] std::uint64_t seq_digest_term(std::uint64_t seq);

// One asset's price path: a mean-reverting random walk of the log price around `start`
// (Ornstein-Uhlenbeck, discretized per tick): each tick moves the log price by a normal
// step of standard deviation `step` and pulls it back so that, at equilibrium, its
// standard deviation around log(start) is `band`.
struct asset_walk {
  std::string symbol;
  double start = 0.0;
  double step = 1e-4;
  double band = 0.03;
};

struct run_plan {
  ws_endpoint ep;
  std::string token;
  // Publishing: `rate` ticks per second in all, spread over `publishers` connections,
  // `batch` ticks per message (1: the `price` op; more: `prices`). Ticks go to the
  // assets in turn.
  unsigned publishers = 1;
  double rate = 10'000.0;
  unsigned batch = 1;
  std::vector<asset_walk> assets;
  std::uint64_t seed = 1;
  // A message written more than `late_ns` after its slot counts as late. Messages that
  // would wait behind more than `max_backlog_s` of earlier ones are not sent: missed.
  std::int64_t late_ns = 1'000'000;
  double max_backlog_s = 1.0;
  // Subscribing: `subscribers` connections with `channels` (a JSON array) and no filter,
  // and `filtered` more with `filter` (a JSON object) too.
  unsigned subscribers = 10;
  std::string channels = R"(["alerts","cascades","pending","insolvency","oracle"])";
  unsigned filtered = 0;
  std::string filter;
  unsigned sub_threads = 1;
  // Timing: publishing runs warmup_s + duration_s; the window is the last duration_s.
  double warmup_s = 5.0;
  double duration_s = 30.0;
};

// What one subscriber saw.
struct subscriber_report {
  unsigned index = 0;
  std::string subscription;  // the subscribe message's channels and filter
  bool full = false;         // no filter, every channel but prices: sees every event
  std::uint64_t events = 0;  // every event, whole run
  std::uint64_t alerts = 0;
  std::uint64_t reordered = 0;    // events whose seq was not above the previous one
  std::uint64_t gap_messages = 0;
  std::uint64_t gap_seqs = 0;     // sum of (to - from + 1) over gap messages
  std::uint64_t errors = 0;       // error messages and a lost connection
  bool disconnected = false;
  bool synced = false;            // its pong came back after the final acks
  // Events with base_seq < seq <= end_seq: how many, and an order-independent digest.
  std::uint64_t in_range = 0;
  std::uint64_t digest = 0;
  bool tail_overflow = false;     // too many events past end_seq to subtract them
};

struct run_results {
  // Publishing, counted by the slot time of each message.
  std::uint64_t ticks_sent = 0;          // whole run
  std::uint64_t messages_sent = 0;
  std::uint64_t ticks_window = 0;        // slots inside the window
  std::uint64_t messages_window = 0;
  std::uint64_t late_window = 0;
  std::uint64_t missed_window = 0;       // slots skipped: backlog over max_backlog_s
  std::uint64_t backlog_max = 0;         // most messages waiting in one publisher
  histogram lateness;                    // ns, window messages
  // Subscribing.
  histogram tick_to_alert;               // ns
  histogram ingest_to_receive;           // ns
  histogram server_emit;                 // ns, emit_ns - ingest_ns
  histogram outside_server;              // ns, tick_to_alert - server_emit
  histogram write_to_ingest;             // ns, ingest_ns - tick written
  histogram emit_to_receive;             // ns, receive - emit_ns
  std::uint64_t unattributed = 0;        // alerts with a cause whose tick was not found
  std::uint64_t update_alerts_window = 0;  // alerts caused by position updates
  std::uint64_t alerts_window = 0;       // alerts received in the window, all subscribers
  std::uint64_t events_window = 0;
  std::vector<subscriber_report> subscribers;
  std::map<std::string, std::uint64_t> error_codes;  // code -> count, both sides
  std::uint64_t disconnects = 0;
  // Sequence range every subscriber is checked over: (base_seq, end_seq].
  std::uint64_t base_seq = 0;
  std::uint64_t end_seq = 0;
  bool prices_subscribed = false;  // price events take seqs too
  double drain_s = 0.0;  // from the last slot to the last final ack
  std::uint64_t sync_retries = 0;  // final ticks refused `overloaded` and sent again
  bool sync_ok = false;
};

class load_run {
 public:
  explicit load_run(run_plan plan);
  ~load_run();
  load_run(const load_run&) = delete;
  load_run& operator=(const load_run&) = delete;

  // Opens every connection, subscribes, and reads the acks (nothing publishes yet).
  [[nodiscard]] absl::Status connect();
  // Starts the threads; publishing begins now.
  void start();
  [[nodiscard]] std::chrono::steady_clock::time_point started() const;
  // Blocks until every publisher has written its last slot (or the timeout).
  [[nodiscard]] bool wait_published(std::chrono::steady_clock::duration timeout);
  // Ticks written so far (any thread).
  [[nodiscard]] std::uint64_t ticks_sent() const;
  // After wait_published: every publisher sends a final price with an id; once all are
  // acknowledged (every event up to the last ack's seq is then in every subscriber's
  // queue), every subscriber pings and waits for its pong. False on timeout.
  bool sync(std::chrono::steady_clock::duration timeout);
  // Closes every connection, joins the threads and merges what they counted.
  [[nodiscard]] run_results finish();

  struct impl;  // defined in load_net.cpp, where the connections' state refers to it

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace cascade::load
