#include "server/hub.hpp"

#include <absl/strings/str_cat.h>
#include <pthread.h>

#include <algorithm>
#include <utility>

#include "proto/input_error.hpp"
#include "server/engine_service.hpp"
#include "server/metrics.hpp"

namespace cascade::server {

hub::hub(const market& m, std::size_t ring_events, metrics* mt)
    : mkt_(m), ring_limit_(std::max<std::size_t>(1, ring_events)), met_(mt) {}

hub::~hub() { stop(); }

void hub::start() {
  if (running_.exchange(true)) return;
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "publisher");
    run();
  });
}

void hub::stop() {
  if (!running_.exchange(false)) return;
  stopping_ = true;
  queue_.enqueue(handoff{{}, {}, true});
  if (thread_.joinable()) thread_.join();
}

void hub::publish(std::vector<proto::event>&& batch, std::vector<std::function<void()>>&& after) {
  if (batch.empty() && after.empty()) return;
  queue_.enqueue(handoff{std::move(batch), std::move(after), false});
}

void hub::run() {
  std::vector<handoff> batches(64);
  std::vector<retained> encoded;
  std::vector<std::function<void()>> after;
  bool stop = false;
  while (!stop) {
    const std::size_t n = queue_.wait_dequeue_bulk(batches.begin(), batches.size());
    if (met_ != nullptr) met_->publisher_queue_depth.Set(static_cast<double>(queue_.size_approx()));
    encoded.clear();
    after.clear();
    for (std::size_t i = 0; i < n; ++i) {
      handoff& h = batches[i];
      stop = stop || h.stop;
      for (proto::event& e : h.events) {
        e.emit_ns = now_ns();
        auto msg = std::make_shared<const std::string>(proto::encode_event(e, mkt_));
        if (met_ != nullptr && std::holds_alternative<proto::alert_event>(e.body) &&
            e.ingest_ns > 0) {
          met_->tick_to_alert.Observe(static_cast<double>(e.emit_ns - e.ingest_ns) * 1e-9);
        }
        const std::uint64_t seq = e.seq;
        encoded.push_back(
            {seq, std::make_shared<const proto::event>(std::move(e)), std::move(msg)});
      }
      for (auto& a : h.after) after.push_back(std::move(a));
      h = handoff{};
    }
    if (!encoded.empty()) fan_out(encoded);
    for (auto& a : after) a();
  }
}

void hub::fan_out(std::vector<retained>& batch) {
  std::vector<std::pair<std::shared_ptr<ws_peer>, std::vector<ws_peer::event_ref>>> out;
  {
    std::lock_guard lock(mu_);
    for (const retained& r : batch) {
      ring_.push_back(r);
      if (ring_.size() > ring_limit_) ring_.pop_front();
    }
    last_seq_.store(batch.back().seq);
    for (auto& [id, s] : subs_) {
      if (!s.subscribed) continue;
      std::vector<ws_peer::event_ref> mine;
      for (const retained& r : batch) {
        if (s.sub.matches(r.ev->body)) mine.emplace_back(r.seq, r.msg);
      }
      if (mine.empty()) continue;
      if (auto p = s.peer.lock()) out.emplace_back(std::move(p), std::move(mine));
    }
  }
  for (auto& [peer, events] : out) peer->send_events(std::move(events));
}

void hub::add(const std::shared_ptr<ws_peer>& peer) {
  std::uint64_t last = 0;
  std::uint64_t oldest = 0;
  {
    std::lock_guard lock(mu_);
    subs_[peer->id()] = subscriber{peer, {}, false};
    last = last_seq_.load();
    oldest = ring_.empty() ? last + 1 : ring_.front().seq;
  }
  peer->send_control(proto::encode_hello(last, oldest));
}

void hub::remove(std::uint64_t peer_id) {
  std::lock_guard lock(mu_);
  subs_.erase(peer_id);
  update_prices_wanted();
}

void hub::subscribe(std::uint64_t peer_id, proto::subscription sub) {
  std::lock_guard lock(mu_);
  auto it = subs_.find(peer_id);
  if (it == subs_.end()) return;
  it->second.sub = std::move(sub);
  it->second.subscribed = true;
  update_prices_wanted();
}

void hub::unsubscribe(std::uint64_t peer_id, std::uint8_t channels) {
  std::lock_guard lock(mu_);
  auto it = subs_.find(peer_id);
  if (it == subs_.end()) return;
  it->second.sub.channels = static_cast<std::uint8_t>(it->second.sub.channels & ~channels);
  update_prices_wanted();
}

void hub::update_prices_wanted() {
  bool any = false;
  for (const auto& [id, s] : subs_) {
    if (s.subscribed && (s.sub.channels & proto::ch_prices) != 0) any = true;
  }
  prices_wanted_.store(any);
}

std::optional<proto::wire_error> hub::resume(const std::shared_ptr<ws_peer>& peer,
                                             std::uint64_t from_seq) {
  {
    std::lock_guard lock(mu_);
    const std::uint64_t last = last_seq_.load();
    const std::uint64_t oldest = ring_.empty() ? last + 1 : ring_.front().seq;
    // Events in [from_seq, oldest) existed and were evicted.
    if (std::max<std::uint64_t>(from_seq, 1) < oldest) {
      return proto::wire_error{
          proto::error_code::resume_unavailable,
          proto::detail::cat("from_seq ", from_seq,
                             " is no longer retained: the oldest event kept is ", oldest)};
    }
    // A seq this server never published: the client's history is another run's (the
    // server restarted). Acknowledging it would let the client drop new events as
    // repeats of seqs it saw before.
    if (from_seq > last + 1) {
      return proto::wire_error{
          proto::error_code::resume_unavailable,
          proto::detail::cat("from_seq ", from_seq, " is past the last event published, ", last,
                             " (the server may have restarted): subscribe afresh")};
    }
  }
  const std::uint64_t id = peer->id();
  peer->resume(from_seq, [this, id, from_seq] {
    std::vector<ws_peer::event_ref> replay;
    std::lock_guard lock(mu_);
    auto it = subs_.find(id);
    if (it == subs_.end() || !it->second.subscribed) return replay;
    const proto::subscription& sub = it->second.sub;
    // The ring is in seq order: find the first retained event at or after from_seq.
    auto first = std::lower_bound(ring_.begin(), ring_.end(), from_seq,
                                  [](const retained& r, std::uint64_t s) { return r.seq < s; });
    for (auto r = first; r != ring_.end(); ++r) {
      if (sub.matches(r->ev->body)) replay.emplace_back(r->seq, r->msg);
    }
    return replay;
  });
  return std::nullopt;
}

std::size_t hub::subscribers() const {
  std::lock_guard lock(mu_);
  return subs_.size();
}

}  // namespace cascade::server
