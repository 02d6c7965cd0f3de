// The engine thread as a unit: commands in through its queue, events out through the
// sink, in seq order, with the answers after the events they caused.
#include "server/engine_service.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <optional>
#include <thread>

#include "support/fixtures.hpp"

namespace cascade::server {
namespace {

using cascade::testing::aid;
using cascade::testing::must;
using cascade::testing::pid;
using cascade::testing::small_market;
using namespace std::chrono_literals;

struct collector {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<proto::event> events;
  std::vector<apply_result> answers;
  std::vector<std::uint64_t> events_seen_at_answer;  // events.size() when each answer came

  event_sink sink() {
    // As the publisher does: the events first, then the answers that follow them.
    return [this](std::vector<proto::event>&& batch, std::vector<answer>&& after) {
      {
        std::lock_guard lock(mu);
        for (auto& e : batch) events.push_back(std::move(e));
        cv.notify_all();
      }
      for (auto& a : after) a();
    };
  }
  apply_done done() {
    return [this](const apply_result& r) {
      std::lock_guard lock(mu);
      answers.push_back(r);
      events_seen_at_answer.push_back(events.size());
      cv.notify_all();
    };
  }
  template <class Pred>
  bool wait(Pred p) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, 10s, [&] { return p(); });
  }
};

// p1: 10 ETH against 14,000 USDC in lend: HF 10*2000*0.8/14000 = 1.142857 (healthy);
// at ETH 1700 it is 0.971 (liquidatable). p2 holds WBTC only: no ETH tick moves it.
std::vector<position_input> two_positions(const market& m) {
  return {
      {"p1", pid(m, "lend"), "0xabc", {{aid(m, "ETH"), 10.0, 0.0}, {aid(m, "USDC"), 0.0, 14000.0}}},
      {"p2", pid(m, "lend"), "", {{aid(m, "WBTC"), 1.0, 0.0}, {aid(m, "USDC"), 0.0, 10000.0}}}};
}

struct fixture {
  explicit fixture(engine_settings s = {}) {
    auto m = std::make_unique<market>(small_market());
    auto b = std::make_unique<book>(*m);
    must(b->upsert(two_positions(*m)));
    eth = aid(*m, "ETH");
    engine = std::make_unique<engine_service>(std::move(m), std::move(b), std::move(s), c.sink(),
                                              prices_wanted, nullptr);
  }
  command price(double p) {
    return {now_ns(), prices_cmd{{proto::price_tick{eth, p, "test", 0.0}}, c.done()}};
  }
  std::uint64_t digest() {
    std::uint64_t d = 0;
    std::mutex mu;
    std::condition_variable cv;
    bool got = false;
    REQUIRE(engine->submit({now_ns(), query_cmd{[&](const engine_view& v) {
                              std::lock_guard lock(mu);
                              d = v.b.digest();
                              got = true;
                              cv.notify_all();
                            }}}));
    std::unique_lock lock(mu);
    REQUIRE(cv.wait_for(lock, 10s, [&] { return got; }));
    return d;
  }

  collector c;
  std::atomic<bool> prices_wanted{false};
  asset_id eth;
  std::unique_ptr<engine_service> engine;
};

TEST_CASE("a tick that crosses a band yields an alert, a projection, then the answer",
          "[engine_service]") {
  engine_settings s;
  s.projection_interval_ms = 0;
  fixture f(std::move(s));
  f.engine->start();
  REQUIRE(f.engine->submit(f.price(1700.0)));
  REQUIRE(f.c.wait([&] { return !f.c.answers.empty(); }));
  f.engine->stop();

  std::lock_guard lock(f.c.mu);
  REQUIRE(f.c.answers.size() == 1);
  const apply_result& r = f.c.answers[0];
  CHECK_FALSE(r.error);
  CHECK(r.applied == 1);
  // The answer came after every event the tick caused, and names the last seq.
  REQUIRE(f.c.events_seen_at_answer[0] >= 2);
  const auto& first = f.c.events[0];
  REQUIRE(std::holds_alternative<proto::alert_event>(first.body));
  const auto& a = std::get<proto::alert_event>(first.body);
  CHECK(a.position == "p1");
  CHECK(a.owner == "0xabc");
  CHECK(a.from == band::healthy);
  CHECK(a.to == band::liquidatable);
  CHECK(a.hf_before == Approx(10 * 2000 * 0.8 / 14000.0).epsilon(1e-12));
  CHECK(a.hf_after == Approx(10 * 1700 * 0.8 / 14000.0).epsilon(1e-12));
  CHECK(a.cause == f.eth);
  CHECK(a.price == 1700.0);
  CHECK(a.assets.size() == 2);
  const auto& second = f.c.events[1];
  REQUIRE(std::holds_alternative<proto::cascade_event>(second.body));
  const auto& ce = std::get<proto::cascade_event>(second.body);
  CHECK(ce.liquidatable_now == 1);
  CHECK(ce.positions_liquidated == 1);
  CHECK(ce.rounds >= 1);
  CHECK(ce.start_prices[f.eth.index()] == 1700.0);
  CHECK(ce.final_prices[f.eth.index()] < 1700.0);  // the seized ETH was sold into the pool
  // The price path of the one asset the cascade moved: start, then one price per round,
  // ending at the final price.
  REQUIRE(ce.price_path.size() == 1);
  CHECK(ce.price_path[0].first == f.eth);
  const auto& path = ce.price_path[0].second;
  REQUIRE(path.size() == ce.rounds + 1);
  CHECK(path.front() == 1700.0);
  CHECK(path.back() == ce.final_prices[f.eth.index()]);
  CHECK(first.seq == 1);
  CHECK(second.seq == 2);
  CHECK(r.seq == second.seq);
  CHECK(r.alerts == 1);  // alerts only; the projection is an event, not an alert
  CHECK(first.ingest_ns > 0);
}

TEST_CASE("a burst of ticks is coalesced into few projections", "[engine_service]") {
  engine_settings s;
  s.projection_interval_ms = 60'000;  // at most one projection in this test
  fixture f(std::move(s));
  // Queue the whole burst before the engine runs, so it drains it in bulk.
  for (int i = 0; i < 200; ++i) REQUIRE(f.engine->submit(f.price(1700.0 - i)));
  f.engine->start();
  REQUIRE(f.c.wait([&] { return f.c.answers.size() == 200; }));
  f.engine->stop();
  std::lock_guard lock(f.c.mu);
  std::size_t cascades = 0;
  std::uint64_t last = 0;
  for (const auto& e : f.c.events) {
    cascades += std::holds_alternative<proto::cascade_event>(e.body) ? 1 : 0;
    CHECK(e.seq == last + 1);
    last = e.seq;
  }
  CHECK(cascades == 1);
  CHECK(f.c.answers.back().seq == last);
}

TEST_CASE("refused writes change nothing and say why", "[engine_service]") {
  fixture f;
  f.engine->start();
  const std::uint64_t before = f.digest();
  const market& m = f.engine->get_market();
  // vault does not accept WBTC as collateral: the book refuses the whole batch.
  std::vector<position_input> bad = {{"p3", pid(m, "lend"), "", {{aid(m, "ETH"), 1.0, 0.0}}},
                                     {"p4", pid(m, "vault"), "", {{aid(m, "WBTC"), 1.0, 0.0}}}};
  REQUIRE(f.engine->submit({now_ns(), upsert_cmd{bad, f.c.done()}}));
  REQUIRE(f.engine->submit({now_ns(), remove_cmd{{"p1", "nope"}, f.c.done()}}));
  REQUIRE(f.c.wait([&] { return f.c.answers.size() == 2; }));
  CHECK(f.digest() == before);
  f.engine->stop();
  std::lock_guard lock(f.c.mu);
  REQUIRE(f.c.answers[0].error);
  CHECK(f.c.answers[0].error->code == proto::error_code::bad_request);
  CHECK_THAT(f.c.answers[0].error->message, Catch::Contains("p4"));
  REQUIRE(f.c.answers[1].error);
  CHECK(f.c.answers[1].error->code == proto::error_code::unknown_position);
  CHECK_THAT(f.c.answers[1].error->message, Catch::Contains("nope"));
  CHECK(f.c.events.empty());
}

TEST_CASE("a full inbox refuses commands instead of growing", "[engine_service]") {
  engine_settings s;
  s.inbox_capacity = 16;
  fixture f(std::move(s));
  for (int i = 0; i < 16; ++i) CHECK(f.engine->submit(f.price(2000.0 + i)));
  CHECK_FALSE(f.engine->submit(f.price(1.0)));
  CHECK(f.engine->inbox_depth() == 16);
  f.engine->start();
  REQUIRE(f.c.wait([&] { return f.c.answers.size() == 16; }));
  CHECK(f.engine->submit(f.price(2100.0)));
  f.engine->stop();
  CHECK_FALSE(f.engine->submit(f.price(2100.0)));  // stopped
}

TEST_CASE("snapshots run on the worker, on a copy, while the engine moves on", "[engine_service]") {
  fixture f;
  f.engine->start();
  std::mutex mu;
  std::condition_variable cv;
  std::thread::id worker;
  double eth_in_snapshot = 0.0;
  bool done = false;
  std::promise<void> release;
  auto released = release.get_future().share();
  REQUIRE(f.engine->submit(
      {now_ns(), snapshot_cmd{[&, released](const book& b, const volatility_tracker&) {
                                released.wait();  // hold the worker until the tick applied
                                std::lock_guard lock(mu);
                                worker = std::this_thread::get_id();
                                eth_in_snapshot = b.prices()[f.eth.index()];
                                done = true;
                                cv.notify_all();
                              },
                              {}}}));
  REQUIRE(f.engine->submit(f.price(1900.0)));
  REQUIRE(f.c.wait([&] { return f.c.answers.size() == 1; }));  // not blocked by the snapshot
  release.set_value();
  {
    std::unique_lock lock(mu);
    REQUIRE(cv.wait_for(lock, 10s, [&] { return done; }));
  }
  f.engine->stop();
  CHECK(worker != std::this_thread::get_id());
  CHECK(eth_in_snapshot == 2000.0);  // the copy predates the tick
}

TEST_CASE("a tick of a base asset moves its derived assets at their ratio",
          "[engine_service][derived]") {
  market mk;
  must(mk.add_asset({"ETH", 2000.0, pool{1e6, 2e9}}));
  must(
      mk.add_asset({"stETH", 1990.0, std::nullopt, derivation{"ETH", pool{2000.0, 1990.0}, true}}));
  must(mk.add_asset({"USDC", 1.0, std::nullopt}));
  must(mk.add_protocol({"lend", protocol_kind::pooled, 0.5, 0.95, {{"stETH", {0.93, 0.01}}}}));
  auto m = std::make_unique<market>(std::move(mk));
  auto b = std::make_unique<book>(*m);
  // A stETH/ETH loop: HF = 100 * 1990 * 0.93 / (90 * 2000) = 1.0282 at any ETH price,
  // as long as stETH follows ETH.
  must(b->upsert(std::vector<position_input>{
      {"loop",
       pid(*m, "lend"),
       "",
       {{aid(*m, "stETH"), 100.0, 0.0}, {aid(*m, "ETH"), 0.0, 90.0}}}}));
  const asset_id eth = aid(*m, "ETH");
  const asset_id steth = aid(*m, "stETH");
  collector c;
  std::atomic<bool> prices_wanted{false};
  engine_service engine(std::move(m), std::move(b), {}, c.sink(), prices_wanted, nullptr);
  engine.start();
  std::mutex mu;
  std::condition_variable cv;
  std::vector<double> prices;
  std::optional<double> hf;
  const auto read = [&] {
    prices.clear();
    REQUIRE(engine.submit({now_ns(), query_cmd{[&](const engine_view& v) {
                             std::lock_guard lock(mu);
                             prices.assign(v.b.prices().begin(), v.b.prices().end());
                             hf = v.b.health("loop");
                             cv.notify_all();
                           }}}));
    std::unique_lock lock(mu);
    REQUIRE(cv.wait_for(lock, 10s, [&] { return !prices.empty(); }));
  };
  // ETH alone: stETH follows at 0.995.
  REQUIRE(engine.submit({now_ns(), prices_cmd{{{eth, 1500.0, "t", 0.0}}, c.done()}}));
  read();
  CHECK(prices[eth.index()] == 1500.0);
  CHECK(prices[steth.index()] == Approx(1500.0 * 0.995).epsilon(1e-15));
  CHECK(*hf == Approx(100 * 1990 * 0.93 / (90 * 2000.0)).epsilon(1e-12));
  // A batch that prices stETH itself (a depeg) keeps that price, whatever ETH does.
  REQUIRE(engine.submit(
      {now_ns(), prices_cmd{{{eth, 1400.0, "t", 0.0}, {steth, 1300.0, "t", 0.0}}, c.done()}}));
  read();
  CHECK(prices[steth.index()] == 1300.0);
  // The ratio the depeg left (1300/1400) is the one the next ETH tick keeps.
  REQUIRE(engine.submit({now_ns(), prices_cmd{{{eth, 2800.0, "t", 0.0}}, c.done()}}));
  read();
  CHECK(prices[steth.index()] == Approx(2600.0).epsilon(1e-12));
  engine.stop();
}

}  // namespace
}  // namespace cascade::server
