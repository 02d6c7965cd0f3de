// A WebSocket connection's bounded send queue, with gap accounting. Pure data
// structure: no I/O, no locks; owned by one connection and used on its strand only.
//
// Control messages (hello, ack, pong, error) always queue. Events queue while fewer than
// `limit` events are waiting; past that they are dropped and the dropped seq range
// [from, to] is remembered. The gap is announced (a gap message, queued as control)
// before the next event that fits or the next control message, or as soon as the queue
// drains empty, so a client always learns of a gap before it sees anything newer. Events with seq
// at or below the last one queued are skipped (a resume races with live delivery; seq never goes
// back).
//
// Allocates as messages queue; throws nothing but std::bad_alloc.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>

namespace cascade::server {

class outbox {
 public:
  using message = std::shared_ptr<const std::string>;

  explicit outbox(std::size_t limit) : limit_(limit) {}

  void push_control(message m);
  // Returns false when the event was dropped (queue full) or skipped (seq not new).
  bool push_event(std::uint64_t seq, message m);
  // Lets events with seq >= from_seq through again (resume), and forgets a pending gap
  // that starts at or after from_seq (the replay covers it).
  void rewind(std::uint64_t from_seq);

  // The next message to write, or null when nothing waits.
  [[nodiscard]] message pop();
  [[nodiscard]] bool empty() const { return queue_.empty() && !gap_; }
  [[nodiscard]] std::size_t events_waiting() const { return events_; }
  [[nodiscard]] std::uint64_t dropped() const { return dropped_; }
  // Gap messages handed out by pop() so far.
  [[nodiscard]] std::uint64_t gaps_sent() const { return gaps_sent_; }

 private:
  struct entry {
    message msg;
    bool is_event;
    bool is_gap;
  };
  void announce_gap();

  std::size_t limit_;
  std::deque<entry> queue_;
  std::size_t events_ = 0;  // events in queue_
  std::uint64_t last_seq_ = 0;
  struct gap_range {
    std::uint64_t from, to;
  };
  std::optional<gap_range> gap_;
  std::uint64_t dropped_ = 0;
  std::uint64_t gaps_sent_ = 0;
};

}  // namespace cascade::server
