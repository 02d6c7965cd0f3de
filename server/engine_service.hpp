// The engine thread: the one owner of the book, the cascade simulator and the volatility
// tracker. Network threads submit commands through a moodycamel BlockingConcurrentQueue
// (one producer token per submitting thread is not required: the queue is FIFO per
// producer, and the engine stamps the global sequence number when it dequeues).
//
// Duty cycle: drain the inbox in bulk; apply the commands in order (consecutive price
// commands are merged into one tick batch, so ticks of one asset coalesce, the last
// price winning, as engine/book.hpp says); collect the events they cause (alerts, and
// price events when anyone subscribes to prices); if positions are liquidatable and the
// last projection is older than projection_interval, run the no-shock cascade (the
// cascade the current state sets off) and add a cascade event; stamp seq; hand the
// batch to the publisher; answer the commands' callbacks. An empty inbox blocks with a
// timeout (no spinning on an idle server).
//
// Heavy read-only work (curves, live-book stress, risk) runs on a snapshot: the engine
// thread copies the book's columns (book::snapshot_to: no ids or owners; a few ms for
// 200k positions into the memory of the previous snapshot) and a worker thread
// computes, so ticks keep flowing meanwhile.
//
// Write commands' callbacks run on the publisher thread (after the events they caused),
// queries' on the engine thread, snapshot jobs' on the worker: they must only post
// elsewhere.
#pragma once

#include <absl/status/status.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "engine/book.hpp"
#include "engine/cascade.hpp"
#include "engine/market.hpp"
#include "engine/oracle.hpp"
#include "engine/volatility.hpp"
#include "proto/events.hpp"
#include "proto/ws_codec.hpp"

namespace cascade::server {

class metrics;

// What a write command answers.
struct apply_result {
  std::optional<proto::wire_error> error;  // set when refused (nothing changed)
  std::uint64_t applied = 0;               // ticks or positions
  std::uint64_t alerts = 0;                // alert events it caused
  std::uint64_t seq = 0;                   // last seq published once it applied
};
using apply_done = std::function<void(const apply_result&)>;

// The state a query may read, on the engine thread only.
struct engine_view {
  const book& b;
  const market& m;
  std::uint64_t seq;  // last seq stamped
  const volatility_tracker& vol;
  const oracle_set& oracles;
};

struct prices_cmd {
  std::vector<proto::price_tick> ticks;
  apply_done done;  // may be empty
};
struct upsert_cmd {
  std::vector<position_input> positions;
  apply_done done;
};
struct remove_cmd {
  std::vector<std::string> ids;
  apply_done done;
};
// Runs on the engine thread between batches.
struct query_cmd {
  std::function<void(const engine_view&)> run;
};
// Latest projection (run first when the book changed since), then `run` with it.
struct projection_cmd {
  std::function<void(const proto::cascade_event&, std::uint64_t seq)> run;
};
// Copies the book on the engine thread; runs `run` on the worker with the copy, which
// has the columns but no ids or owners (book::snapshot_to), and must not be kept.
// At most a few snapshots wait at once; past that `overloaded` is called instead.
struct snapshot_cmd {
  std::function<void(const book& snapshot, const volatility_tracker& vol)> run;
  std::function<void()> overloaded;
};

struct command {
  std::int64_t ingest_ns = 0;
  std::variant<prices_cmd, upsert_cmd, remove_cmd, query_cmd, projection_cmd, snapshot_cmd> body;
};

// Where the engine hands each batch of events (seq-stamped, in order), with the answers
// to the commands that caused them: the publisher runs `answers` after it has offered
// the events to every subscriber, so an `ack` never overtakes its own alerts. Called on
// the engine thread; must not block for long.
using answer = std::function<void()>;
using event_sink = std::function<void(std::vector<proto::event>&&, std::vector<answer>&&)>;

struct engine_settings {
  std::uint32_t projection_interval_ms = 100;
  std::size_t inbox_capacity = 65'536;
  std::size_t max_rounds = 100;
  double volatility_half_life_s = 86'400.0;
  // Run on a snapshot by the worker every `periodic_interval_s` (first at start), e.g.
  // the critical shocks behind the risk metrics. Empty: none.
  std::function<void(const book& snapshot, const volatility_tracker& vol)> periodic;
  double periodic_interval_s = 60.0;
  // Price sources and per-protocol oracle feeds (engine/oracle.hpp). Every price tick
  // is a source's quote (`source`, default "ws"/"rest"; `ts`, default the server's
  // clock): the market price is the median of the asset's valid sources, and each
  // protocol sees its feed's published price, or the market price without one.
  oracle_config oracle;
};

class engine_service {
 public:
  // Takes the book (loaded already). `sink` receives events; `prices_wanted` tells
  // whether anyone subscribes to prices (read each batch).
  engine_service(std::unique_ptr<market> m, std::unique_ptr<book> b, engine_settings settings,
                 event_sink sink, const std::atomic<bool>& prices_wanted, metrics* metrics);
  ~engine_service();  // stops and joins
  engine_service(const engine_service&) = delete;
  engine_service& operator=(const engine_service&) = delete;

  void start();
  // Finishes the commands already queued, then stops both threads. Idempotent.
  void stop();

  // Any thread. False when the inbox is full (the caller answers `overloaded`) or the
  // engine is stopping; the command is then dropped unanswered.
  [[nodiscard]] bool submit(command&& c);

  // Any thread: read-only facts that never change after construction.
  [[nodiscard]] const market& get_market() const { return *market_; }
  [[nodiscard]] std::size_t inbox_depth() const;
  // Unix ns of the engine's last duty cycle (it cycles at least every 200 ms).
  [[nodiscard]] std::int64_t heartbeat_ns() const { return heartbeat_ns_.load(); }
  [[nodiscard]] bool running() const { return running_.load(); }

 private:
  struct impl;
  std::unique_ptr<market> market_;
  std::unique_ptr<impl> impl_;
  std::atomic<std::int64_t> heartbeat_ns_{0};
  std::atomic<bool> running_{false};
};

// Unix time in nanoseconds (the clock of ingest_ns / emit_ns): Abseil's clock, which
// reads the cycle counter and scales it against the system clock, 12 ns of CPU a call
// here against 27 ns for std::chrono::system_clock (kvm-clock); every frame pays one.
[[nodiscard]] std::int64_t now_ns();

}  // namespace cascade::server
