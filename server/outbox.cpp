#include "server/outbox.hpp"

#include <string>
#include <utility>

namespace cascade::server {

namespace {

// Built here rather than by proto's encoder so the outbox stays independent of proto.
outbox::message gap_message(std::uint64_t from, std::uint64_t to) {
  std::string s = "{\"type\":\"gap\",\"from\":";
  s += std::to_string(from);
  s += ",\"to\":";
  s += std::to_string(to);
  s += '}';
  return std::make_shared<const std::string>(std::move(s));
}

}  // namespace

void outbox::push_control(message m) {
  // A control answers something the client did after the dropped events (an ack's seq
  // covers them): the client must learn of the gap first.
  if (gap_) announce_gap();
  queue_.push_back(entry{std::move(m), false, false});
}

bool outbox::push_event(std::uint64_t seq, message m) {
  if (seq <= last_seq_) return false;
  // Dropped seqs count as seen too: once a gap names them, they never arrive late.
  last_seq_ = seq;
  if (events_ >= limit_) {
    ++dropped_;
    if (gap_) {
      gap_->to = seq;
    } else {
      gap_ = gap_range{seq, seq};
    }
    return false;
  }
  if (gap_) announce_gap();
  queue_.push_back(entry{std::move(m), true, false});
  ++events_;
  return true;
}

void outbox::rewind(std::uint64_t from_seq) {
  const std::uint64_t before = from_seq == 0 ? 0 : from_seq - 1;
  if (last_seq_ > before) last_seq_ = before;
  if (!gap_) return;
  // The replay brings back [from_seq, ...]; what the gap names below that stays missed.
  if (gap_->from >= from_seq) {
    gap_.reset();
  } else if (gap_->to >= from_seq) {
    gap_->to = before;
  }
}

outbox::message outbox::pop() {
  if (queue_.empty()) {
    if (!gap_) return nullptr;
    // Drained with a gap pending: announce it now rather than wait for the next event.
    announce_gap();
  }
  entry e = std::move(queue_.front());
  queue_.pop_front();
  if (e.is_event) --events_;
  if (e.is_gap) ++gaps_sent_;
  return std::move(e.msg);
}

void outbox::announce_gap() {
  queue_.push_back(entry{gap_message(gap_->from, gap_->to), false, true});
  gap_.reset();
}

}  // namespace cascade::server
