// Fan-out benchmarks (issue 7): the publisher (server/hub) encoding an alert once and
// offering it to N subscribers, each delivery landing in the subscriber's bounded
// outbox (server/outbox) on an I/O thread, as in the server.
//
// What runs is the server's own code: a started hub (its publisher thread), alerts
// handed over with hub::publish as the engine thread does, and N subscribers whose
// ws_peer posts each delivery to its own strand on one Boost.Asio I/O thread (the
// server's default io_threads), where it is pushed into an outbox and popped again as
// a writer that keeps up would (no socket: the kernel's send path is the end-to-end
// load tool's business). An iteration publishes a batch of `alerts` alerts and waits
// until every subscriber's outbox has taken every one of them, so the time (wall
// clock: three threads work) covers the hand-over to the publisher, one encoding per
// alert, matching and N deliveries per alert, and the wake-ups between the threads.
//
// Counters: deliveries/s (alerts x subscribers), alerts/s.
#include <benchmark/benchmark.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "perf/bench_common.hpp"
#include "proto/events.hpp"
#include "server/hub.hpp"
#include "server/outbox.hpp"

namespace {

using namespace cascade;
namespace asio = boost::asio;

using perf::default_market;

// Counts deliveries across all subscribers; wakes the benchmark thread when the
// expected number has arrived.
struct tally {
  std::atomic<std::uint64_t> delivered{0};
  std::atomic<std::uint64_t> target{0};

  void add(std::uint64_t n) {
    const std::uint64_t now = delivered.fetch_add(n, std::memory_order_acq_rel) + n;
    if (now >= target.load(std::memory_order_acquire)) delivered.notify_all();
  }
  void wait_for(std::uint64_t want) {
    for (std::uint64_t seen = delivered.load(std::memory_order_acquire); seen < want;
         seen = delivered.load(std::memory_order_acquire)) {
      delivered.wait(seen, std::memory_order_acquire);
    }
  }
};

// A subscriber as the hub sees it: deliveries are posted to its strand, where they
// enter its outbox (the server's limit) and are taken out again.
class bench_peer final : public server::ws_peer {
 public:
  bench_peer(std::uint64_t id, asio::io_context& ioc, tally& t)
      : id_(id), strand_(asio::make_strand(ioc)), tally_(t), out_(32'768) {}

  [[nodiscard]] std::uint64_t id() const override { return id_; }
  [[nodiscard]] int role() const override { return 1; }
  void send_control(std::string msg) override {
    asio::post(strand_, [this, m = std::make_shared<const std::string>(std::move(msg))]() mutable {
      out_.push_control(std::move(m));
      drain();
    });
  }
  void send_events(std::vector<event_ref> events) override {
    asio::post(strand_, [this, e = std::move(events)]() mutable {
      std::uint64_t taken = 0;
      for (auto& [seq, msg] : e) taken += out_.push_event(seq, std::move(msg)) ? 1 : 0;
      drain();
      tally_.add(taken);
    });
  }
  void resume(std::uint64_t, std::function<std::vector<event_ref>()>) override {}
  void close() override {}
  [[nodiscard]] std::uint64_t bytes() const { return bytes_; }

 private:
  void drain() {
    while (auto m = out_.pop()) bytes_ += m->size();
  }

  std::uint64_t id_;
  asio::strand<asio::io_context::executor_type> strand_;
  tally& tally_;
  server::outbox out_;
  std::uint64_t bytes_ = 0;
};

void BM_fanout(benchmark::State& state) {
  const auto subscribers = static_cast<std::size_t>(state.range(0));
  const auto alerts = static_cast<std::size_t>(state.range(1));
  const market& m = default_market();
  asio::io_context ioc(1);
  auto guard = asio::make_work_guard(ioc);
  std::thread io([&ioc] { ioc.run(); });
  tally t;
  std::vector<std::shared_ptr<bench_peer>> peers;  // outlive the I/O thread
  {
    server::hub h(m, 4096, nullptr);
    h.start();
    for (std::size_t i = 0; i < subscribers; ++i) {
      peers.push_back(std::make_shared<bench_peer>(i + 1, ioc, t));
      h.add(peers.back());
      h.subscribe(peers.back()->id(), proto::subscription{});  // alerts and cascades
    }
    std::uint64_t seq = 0;
    std::uint64_t expected = 0;
    for (auto _ : state) {
      std::vector<proto::event> batch;
      batch.reserve(alerts);
      for (std::size_t k = 0; k < alerts; ++k) {
        ++seq;
        batch.push_back({seq, static_cast<std::int64_t>(seq), 0,
                         perf::sample_alert(m, "aave-v3-" + std::to_string(100'000 + seq % 100'000))});
      }
      expected += alerts * subscribers;
      t.target.store(expected, std::memory_order_release);
      h.publish(std::move(batch), {});
      t.wait_for(expected);
    }
    h.stop();
    const auto its = static_cast<double>(state.iterations());
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(alerts * subscribers));
    state.counters["alerts/s"] =
        benchmark::Counter(its * static_cast<double>(alerts), benchmark::Counter::kIsRate);
    state.counters["deliveries/s"] = benchmark::Counter(
        its * static_cast<double>(alerts * subscribers), benchmark::Counter::kIsRate);
  }
  guard.reset();
  io.join();  // runs what is left (the posts of the hub's last calls), then returns
  std::uint64_t bytes = 0;
  for (const auto& p : peers) bytes += p->bytes();
  state.counters["bytes_per_alert"] =
      static_cast<double>(bytes) / static_cast<double>(std::max<std::uint64_t>(
                                       1, t.delivered.load() + subscribers));
}

BENCHMARK(BM_fanout)
    ->ArgNames({"subscribers", "alerts"})
    ->ArgsProduct({{1, 100, 1000}, {1, 64}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond)
    ->Apply(perf::add_spread);

}  // namespace

BENCHMARK_MAIN();
