// The publisher: one encoding per event, per-subscriber filters, the resume ring.
#include "server/hub.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "support/fixtures.hpp"

namespace cascade::server {
namespace {

using cascade::testing::aid;
using cascade::testing::pid;
using cascade::testing::small_market;
using namespace std::chrono_literals;

// A peer that records what it is sent, synchronously (no strand: the hub's calls come
// from the publisher thread and the test thread, so a mutex orders them).
class fake_peer final : public ws_peer {
 public:
  explicit fake_peer(std::uint64_t id) : id_(id) {}
  std::uint64_t id() const override { return id_; }
  int role() const override { return 1; }
  void send_control(std::string msg) override {
    std::lock_guard lock(mu_);
    controls_.push_back(std::move(msg));
  }
  void send_events(std::vector<event_ref> events) override {
    std::lock_guard lock(mu_);
    for (auto& e : events) events_.push_back(std::move(e));
    cv_.notify_all();
  }
  void resume(std::uint64_t, std::function<std::vector<event_ref>()> replay) override {
    auto r = replay();
    std::lock_guard lock(mu_);
    replayed_ = std::move(r);
  }
  void close() override {}

  std::vector<std::uint64_t> seqs() {
    std::lock_guard lock(mu_);
    std::vector<std::uint64_t> out;
    for (const auto& e : events_) out.push_back(e.first);
    return out;
  }
  bool wait_for(std::size_t n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, 10s, [&] { return events_.size() >= n; });
  }

  std::uint64_t id_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> controls_;
  std::vector<event_ref> events_;
  std::vector<event_ref> replayed_;
};

proto::event alert(const market& m, std::uint64_t seq, std::string_view protocol, band to,
                   std::vector<asset_id> assets) {
  proto::alert_event a;
  a.position = "p" + std::to_string(seq);
  a.protocol = pid(m, protocol);
  a.from = band::healthy;
  a.to = to;
  a.assets = std::move(assets);
  return {seq, 1, 0, a};
}

TEST_CASE("subscribers get the events their filters match, each encoded once", "[hub]") {
  const market m = small_market();
  hub h(m, 1000, nullptr);
  h.start();
  auto all = std::make_shared<fake_peer>(1);
  auto vault_only = std::make_shared<fake_peer>(2);
  auto idle = std::make_shared<fake_peer>(3);  // connected, never subscribed
  h.add(all);
  h.add(vault_only);
  h.add(idle);
  h.subscribe(1, {});
  proto::subscription s;
  s.protocols = {pid(m, "vault")};
  s.min_band = band::danger;
  h.subscribe(2, s);
  CHECK_FALSE(h.prices_wanted().load());

  std::vector<proto::event> batch;
  batch.push_back(alert(m, 1, "lend", band::liquidatable, {aid(m, "ETH")}));
  batch.push_back(alert(m, 2, "vault", band::warn, {aid(m, "ETH")}));
  batch.push_back(alert(m, 3, "vault", band::liquidatable, {aid(m, "ETH")}));
  batch.push_back({4, 1, 0, proto::price_event{aid(m, "ETH"), 1900.0, "x", 0.0}});
  h.publish(std::move(batch), {});
  REQUIRE(all->wait_for(3));
  REQUIRE(vault_only->wait_for(1));
  h.stop();

  CHECK(all->seqs() == std::vector<std::uint64_t>{1, 2, 3});  // no prices channel
  CHECK(vault_only->seqs() == std::vector<std::uint64_t>{3});
  CHECK(idle->seqs().empty());
  // The same buffer reaches every subscriber of an event.
  CHECK(all->events_[2].second.get() == vault_only->events_[0].second.get());
  CHECK_THAT(*all->events_[0].second, Catch::Contains(R"("type":"alert")"));
  // Every connection is greeted with the stream's position.
  REQUIRE(idle->controls_.size() == 1);
  CHECK_THAT(idle->controls_[0], Catch::Contains(R"("type":"hello")"));
}

TEST_CASE("resume replays retained events and refuses what the ring lost", "[hub]") {
  const market m = small_market();
  hub h(m, 4, nullptr);
  h.start();
  auto p = std::make_shared<fake_peer>(7);
  h.add(p);
  h.subscribe(7, {});
  std::vector<proto::event> batch;
  for (std::uint64_t s = 1; s <= 10; ++s) {
    batch.push_back(alert(m, s, "lend", band::warn, {aid(m, "ETH")}));
  }
  h.publish(std::move(batch), {});
  REQUIRE(p->wait_for(10));
  CHECK(h.last_seq() == 10);

  const auto lost = h.resume(p, 5);  // the ring keeps 7..10
  REQUIRE(lost);
  CHECK(lost->code == proto::error_code::resume_unavailable);
  CHECK_THAT(lost->message, Catch::Contains("7"));
  CHECK_FALSE(h.resume(p, 8));
  std::vector<std::uint64_t> replayed;
  for (const auto& e : p->replayed_) replayed.push_back(e.first);
  CHECK(replayed == std::vector<std::uint64_t>{8, 9, 10});
  CHECK_FALSE(h.resume(p, 11));  // nothing missed yet: fine, live from here
  // A seq never published (a client of an earlier run of the server) is refused.
  const auto future = h.resume(p, 12);
  REQUIRE(future);
  CHECK(future->code == proto::error_code::resume_unavailable);
  CHECK_THAT(future->message, Catch::Contains("from_seq 12 is past the last event published, 10"));
  h.stop();
}

TEST_CASE("the engine is told whether anyone wants price events", "[hub]") {
  const market m = small_market();
  hub h(m, 16, nullptr);
  auto p = std::make_shared<fake_peer>(1);
  h.add(p);
  proto::subscription s;
  s.channels = proto::ch_prices;
  h.subscribe(1, s);
  CHECK(h.prices_wanted().load());
  h.unsubscribe(1, proto::ch_prices);
  CHECK_FALSE(h.prices_wanted().load());
  h.subscribe(1, s);
  h.remove(1);
  CHECK_FALSE(h.prices_wanted().load());
}

}  // namespace
}  // namespace cascade::server
