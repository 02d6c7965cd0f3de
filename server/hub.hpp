// The publisher: takes the engine's event batches (already seq-stamped, in order),
// encodes each event once into a shared buffer, keeps the most recent ones in a ring
// for `resume`, and offers each subscriber the events its subscription matches. A
// subscriber's outbox is bounded (server/outbox.hpp): one that falls behind loses
// events and is told with a `gap`, never slowing the engine or anyone else.
//
// Threads: publish() is called by the engine thread and only enqueues; the publisher
// thread does the rest. Subscribers are added, changed and removed from I/O threads;
// a mutex guards the subscriber table and the ring (held while matching one batch,
// never while encoding or writing).
#pragma once

#include <concurrentqueue/blockingconcurrentqueue.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "engine/market.hpp"
#include "proto/events.hpp"
#include "proto/ws_codec.hpp"
#include "server/net.hpp"

namespace cascade::server {

class metrics;

class hub {
 public:
  hub(const market& m, std::size_t ring_events, metrics* mt);
  ~hub();  // stops and joins
  hub(const hub&) = delete;
  hub& operator=(const hub&) = delete;

  void start();
  // Publishes what was handed over, then stops. Idempotent.
  void stop();

  // Engine thread. `after` runs on the publisher thread once the batch's events have
  // been offered to every subscriber (the answers to the commands that caused them).
  void publish(std::vector<proto::event>&& batch, std::vector<std::function<void()>>&& after);
  [[nodiscard]] const std::atomic<bool>& prices_wanted() const { return prices_wanted_; }

  // I/O threads. add() sends the hello message.
  void add(const std::shared_ptr<ws_peer>& peer);
  void remove(std::uint64_t peer_id);
  void subscribe(std::uint64_t peer_id, proto::subscription sub);
  void unsubscribe(std::uint64_t peer_id, std::uint8_t channels);
  // Replays retained events from from_seq on (per the peer's subscription), then live.
  // Refused when from_seq is older than the oldest event retained, or later than the
  // next seq to be published.
  [[nodiscard]] std::optional<proto::wire_error> resume(const std::shared_ptr<ws_peer>& peer,
                                                        std::uint64_t from_seq);

  [[nodiscard]] std::uint64_t last_seq() const { return last_seq_.load(); }
  [[nodiscard]] std::size_t subscribers() const;
  [[nodiscard]] std::size_t queue_depth() const { return queue_.size_approx(); }

 private:
  struct retained {
    std::uint64_t seq;
    std::shared_ptr<const proto::event> ev;
    std::shared_ptr<const std::string> msg;
  };
  struct subscriber {
    std::weak_ptr<ws_peer> peer;
    proto::subscription sub;
    bool subscribed = false;
  };
  void run();
  void fan_out(std::vector<retained>& batch);
  void update_prices_wanted();  // mutex held

  const market& mkt_;
  std::size_t ring_limit_;
  metrics* met_;
  struct handoff {
    std::vector<proto::event> events;
    std::vector<std::function<void()>> after;
    bool stop = false;
  };
  moodycamel::BlockingConcurrentQueue<handoff> queue_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> running_{false};
  std::thread thread_;
  std::atomic<bool> prices_wanted_{false};
  std::atomic<std::uint64_t> last_seq_{0};

  mutable std::mutex mu_;
  absl::flat_hash_map<std::uint64_t, subscriber> subs_;
  std::deque<retained> ring_;
};

}  // namespace cascade::server
