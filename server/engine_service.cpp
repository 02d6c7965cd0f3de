#include "server/engine_service.hpp"

#include <concurrentqueue/blockingconcurrentqueue.h>
#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <span>
#include <type_traits>
#include <utility>

#include "absl/time/clock.h"
#include "server/metrics.hpp"

namespace cascade::server {

std::int64_t now_ns() { return absl::GetCurrentTimeNanos(); }

namespace {

// Snapshot jobs that may wait for the worker at once; more are answered `overloaded`.
constexpr int max_pending_snapshots = 4;
// Liquidatable collateral and debt need a pass over the book: at most this often.
constexpr std::int64_t totals_interval_ns = 1'000'000'000;
// The engine wakes at least this often with an empty inbox (heartbeat, due projection).
constexpr std::int64_t idle_wait_us = 50'000;

proto::wire_error refusal(proto::error_code code, const absl::Status& s) {
  return {code, std::string(s.message().data(), s.message().size())};
}

}  // namespace

struct engine_service::impl {
  impl(const market& m, std::unique_ptr<book> b, engine_settings s, event_sink snk,
       const std::atomic<bool>& prices, metrics* mt, engine_service& o)
      : mkt(m),
        bk(std::move(b)),
        settings(s),
        sink(std::move(snk)),
        prices_wanted(prices),
        met(mt),
        owner(o),
        vol(m.asset_count(), volatility_options{s.volatility_half_life_s, 20}),
        oracles(make_oracles(m, settings.oracle)),
        inbox(s.inbox_capacity) {}

  static oracle_set make_oracles(const market& m, const oracle_config& c) {
    auto o = oracle_set::make(m, c);
    // The config loader checked the feeds against this market (proto/config.cpp).
    if (!o.ok()) throw std::invalid_argument(std::string(o.status().message()));
    return *std::move(o);
  }
  // Turns what the oracles changed into book ticks, volatility samples and events.
  void take_oracle_output(double ts, std::int64_t ingest);

  void run();
  void process(std::span<command> cmds);
  void apply_prices(std::span<command> cmds);
  void apply_upsert(command& c);
  void apply_remove(command& c);
  void snapshot(command& c);
  // Runs the no-shock projection; appends its event when `emit`.
  void project(std::int64_t ingest, bool emit);
  void maybe_project();
  // Pending-liquidation and insolvency events, after the alerts of the same batch.
  void add_statuses(std::int64_t ingest);
  void add_alerts(const std::vector<crossing>& xs, std::int64_t ingest,
                  std::span<const std::int64_t> ingest_by_asset);
  void flush();
  void update_gauges(bool force_totals);
  [[nodiscard]] std::uint64_t liquidatable() const;

  const market& mkt;
  std::unique_ptr<book> bk;
  engine_settings settings;
  event_sink sink;
  const std::atomic<bool>& prices_wanted;
  metrics* met;
  engine_service& owner;

  cascade_simulator sim;
  volatility_tracker vol;
  std::uint64_t seq = 0;
  std::vector<proto::event> events;  // the batch's outbox
  // The answers that follow the batch's events; their seq is filled in at flush, so it
  // covers the projection the batch caused too.
  struct pending_answer {
    apply_done done;
    apply_result result;
  };
  std::vector<pending_answer> answers;
  std::vector<crossing> crossings;  // scratch
  std::vector<status_change> statuses;  // scratch
  std::vector<tick> ticks;          // scratch
  std::vector<std::uint8_t> refused;  // scratch, per command
  std::vector<std::int64_t> ingest_by_asset;
  oracle_set oracles;
  oracle_output oracle_out;  // scratch
  std::vector<book::liquidity_observation> liq_obs;  // scratch

  // The latest projection and whether the book changed since it ran.
  proto::cascade_event projection;
  std::uint64_t projection_seq = 0;
  bool have_projection = false;
  bool dirty = true;
  std::int64_t dirty_ingest = 0;
  std::int64_t last_projection_ns = 0;
  std::int64_t last_totals_ns = 0;
  std::int64_t last_periodic_ns = 0;

  moodycamel::BlockingConcurrentQueue<command> inbox;
  std::atomic<std::int64_t> queued{0};
  std::atomic<bool> stopping{false};
  std::thread thread;

  moodycamel::BlockingConcurrentQueue<std::function<void()>> jobs;
  std::atomic<int> pending_snapshots{0};
  // The book a snapshot job last read, kept to copy the next snapshot into: copying
  // into memory already mapped takes a few ms on the default book, into fresh memory
  // a hundred or more (page faults), on the engine thread either way. `spare_busy` is
  // cleared by the worker once its job no longer reads the book.
  std::shared_ptr<book> spare;
  std::shared_ptr<std::atomic<bool>> spare_busy;
  std::thread worker;
};

// --- construction and threads ----------------------------------------------------

engine_service::engine_service(std::unique_ptr<market> m, std::unique_ptr<book> b,
                               engine_settings settings, event_sink sink,
                               const std::atomic<bool>& prices_wanted, metrics* mt)
    : market_(std::move(m)) {
  impl_ = std::make_unique<impl>(*market_, std::move(b), settings, std::move(sink), prices_wanted,
                                 mt, *this);
  impl_->ingest_by_asset.assign(market_->asset_count(), 0);
}

engine_service::~engine_service() { stop(); }

void engine_service::start() {
  if (running_.exchange(true)) return;
  heartbeat_ns_ = now_ns();
  impl_->update_gauges(true);
  // Thread names show in top -H and /proc/PID/task/*/comm (perf/load reads them).
  impl_->thread = std::thread([this] {
    pthread_setname_np(pthread_self(), "engine");
    impl_->run();
  });
  impl_->worker = std::thread([this] {
    pthread_setname_np(pthread_self(), "engine-worker");
    std::function<void()> job;
    for (;;) {
      impl_->jobs.wait_dequeue(job);
      if (!job) return;  // the stop sentinel
      job();
      job = nullptr;
    }
  });
}

void engine_service::stop() {
  if (!running_.exchange(false)) return;
  impl_->stopping = true;
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->jobs.enqueue(std::function<void()>());
  if (impl_->worker.joinable()) impl_->worker.join();
}

bool engine_service::submit(command&& c) {
  if (impl_->stopping.load(std::memory_order_relaxed)) return false;
  const auto cap = static_cast<std::int64_t>(impl_->settings.inbox_capacity);
  if (impl_->queued.fetch_add(1, std::memory_order_relaxed) >= cap) {
    impl_->queued.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  if (!impl_->inbox.enqueue(std::move(c))) {
    impl_->queued.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  return true;
}

std::size_t engine_service::inbox_depth() const {
  return static_cast<std::size_t>(std::max<std::int64_t>(0, impl_->queued.load()));
}

// --- the duty cycle ----------------------------------------------------------------

void engine_service::impl::run() {
  // The most commands one cycle takes. A cycle's cost is mostly per asset moved, not
  // per tick, so when ticks arrive faster than cycles end the next cycle must take all
  // that waits: capped at 256, 10k single-tick messages/s on the default book outran the
  // engine (perf/load/README.md, "End to end").
  std::vector<command> buf(4096);
  for (;;) {
    std::int64_t wait = idle_wait_us;
    if (dirty && liquidatable() > 0) {
      const std::int64_t due =
          last_projection_ns + std::int64_t{settings.projection_interval_ms} * 1'000'000 - now_ns();
      wait = std::clamp<std::int64_t>(due / 1000, 0, idle_wait_us);
    }
    const std::size_t n = inbox.wait_dequeue_bulk_timed(buf.begin(), buf.size(), wait);
    const std::int64_t t0 = now_ns();
    owner.heartbeat_ns_.store(t0, std::memory_order_relaxed);
    if (n == 0 && stopping.load()) break;
    queued.fetch_sub(static_cast<std::int64_t>(n), std::memory_order_relaxed);
    if (n > 0) process(std::span<command>(buf.data(), n));
    maybe_project();
    flush();
    update_gauges(false);
    if (settings.periodic &&
        (last_periodic_ns == 0 ||
         static_cast<double>(t0 - last_periodic_ns) * 1e-9 >= settings.periodic_interval_s)) {
      last_periodic_ns = t0;
      command pc{t0, snapshot_cmd{settings.periodic, {}}};
      snapshot(pc);
    }
    for (std::size_t i = 0; i < n; ++i) buf[i] = command{};
    if (met != nullptr && n > 0) {
      met->engine_batch_seconds.Observe(static_cast<double>(now_ns() - t0) * 1e-9);
    }
  }
}

void engine_service::impl::process(std::span<command> cmds) {
  std::size_t i = 0;
  while (i < cmds.size()) {
    if (std::holds_alternative<prices_cmd>(cmds[i].body)) {
      std::size_t j = i;
      while (j < cmds.size() && std::holds_alternative<prices_cmd>(cmds[j].body)) ++j;
      apply_prices(cmds.subspan(i, j - i));
      i = j;
      continue;
    }
    command& c = cmds[i++];
    std::visit(
        [&](auto& body) {
          using T = std::decay_t<decltype(body)>;
          if constexpr (std::is_same_v<T, upsert_cmd>) {
            apply_upsert(c);
          } else if constexpr (std::is_same_v<T, remove_cmd>) {
            apply_remove(c);
          } else if constexpr (std::is_same_v<T, query_cmd>) {
            flush();  // a query sees every event before it stamped
            body.run(engine_view{*bk, mkt, seq, vol, oracles});
          } else if constexpr (std::is_same_v<T, projection_cmd>) {
            if (dirty || !have_projection) project(c.ingest_ns, false);
            body.run(projection, projection_seq);
          } else if constexpr (std::is_same_v<T, snapshot_cmd>) {
            snapshot(c);
          }
        },
        c.body);
  }
}

// Consecutive price commands become one tick batch; if the merged batch is refused
// (the codec validates every tick, so only an engine-side check could), each command
// is applied on its own so one bad message cannot take the others down with it.
void engine_service::impl::apply_prices(std::span<command> cmds) {
  ticks.clear();
  liq_obs.clear();
  std::fill(ingest_by_asset.begin(), ingest_by_asset.end(), 0);
  const bool want_prices = prices_wanted.load(std::memory_order_relaxed);
  const double now_s = static_cast<double>(now_ns()) * 1e-9;
  std::size_t received = 0;
  crossings.clear();
  statuses.clear();
  // Every tick is a source's quote to the oracles; what they change becomes the book's
  // batch. A command with a tick the oracles or the book would refuse (an unknown
  // asset, a price that is not finite and > 0: the codec refuses both, so only a direct
  // caller can send one) is refused whole before anything is touched, alone.
  refused.assign(cmds.size(), 0);
  for (std::size_t i = 0; i < cmds.size(); ++i) {
    for (const proto::price_tick& t : std::get<prices_cmd>(cmds[i].body).ticks) {
      if (!t.asset.valid() || t.asset.index() >= mkt.asset_count() ||
          !is_positive_finite(t.price) || !(std::isfinite(t.ts) && t.ts >= 0.0)) {
        refused[i] = 1;
      }
    }
  }
  for (std::size_t i = 0; i < cmds.size(); ++i) {
    if (refused[i] != 0) continue;
    command& c = cmds[i];
    auto& pc = std::get<prices_cmd>(c.body);
    for (const proto::price_tick& t : pc.ticks) {
      const double ts = t.ts > 0.0 ? t.ts : now_s;
      oracle_out.clear();
      const absl::Status s =
          oracles.update(t.asset, t.source.empty() ? "ws" : t.source, t.price, ts, oracle_out);
      (void)s;  // checked above: an update of a known asset at a finite positive price
      take_oracle_output(ts, c.ingest_ns);
      ingest_by_asset[t.asset.index()] = c.ingest_ns;
      if (want_prices) {
        proto::event e;
        e.seq = ++seq;
        e.ingest_ns = c.ingest_ns;
        e.body = proto::price_event{t.asset, t.price, t.source, t.ts > 0.0 ? t.ts : now_s};
        events.push_back(std::move(e));
      }
    }
    received += pc.ticks.size();
  }
  const std::uint64_t ticks_before = bk->stats().ticks;
  const absl::Status st = bk->apply_ticks(ticks, crossings, &statuses);
  (void)st;  // the oracles only output finite positive prices of known assets
  // Liquidity withdrawal follows the moves (assets whose venues configure it).
  bk->observe_liquidity(liq_obs, &statuses);
  add_alerts(crossings, 0, ingest_by_asset);
  add_statuses(cmds.back().ingest_ns);
  dirty = true;
  dirty_ingest = cmds.back().ingest_ns;
  if (met != nullptr) {
    const std::uint64_t applied = bk->stats().ticks - ticks_before;
    met->ticks_applied.Increment(static_cast<double>(applied));
    if (received > applied) {
      met->ticks_coalesced.Increment(static_cast<double>(received - applied));
    }
  }
  // Answers go out after the batch's events are handed to the publisher, so an `ack`
  // never overtakes the alerts its ticks caused.
  for (std::size_t i = 0; i < cmds.size(); ++i) {
    auto& pc = std::get<prices_cmd>(cmds[i].body);
    if (!pc.done) continue;
    apply_result r;
    if (refused[i] != 0) {
      r.error = proto::wire_error{proto::error_code::bad_price,
                                  "a tick names an unknown asset or a price that is not a "
                                  "finite number > 0; nothing of this message was applied"};
    } else {
      r.applied = pc.ticks.size();
      r.alerts = crossings.size();
    }
    answers.push_back({std::move(pc.done), r});
  }
}

void engine_service::impl::take_oracle_output(double ts, std::int64_t ingest) {
  for (const market_change& mc : oracle_out.market) {
    vol.observe(mc.asset, mc.price, ts);
    const auto v = vol.annualized(mc.asset);
    liq_obs.push_back({mc.asset, ts, v ? *v : 0.0});
    if (!oracles.has_feeds(mc.asset)) {
      ticks.push_back({mc.asset, mc.price});  // every protocol reads the market
      continue;
    }
    ticks.push_back({mc.asset, mc.price, price_scope::market});
    for (const protocol_id p : oracles.direct_protocols(mc.asset)) {
      ticks.push_back({mc.asset, mc.price, price_scope::oracle, p});
    }
  }
  for (const oracle_change& oc : oracle_out.oracle) {
    ticks.push_back({oc.asset, oc.price, price_scope::oracle, oc.protocol});
  }
  for (const oracle_event& oe : oracle_out.events) {
    static constexpr std::string_view kinds[] = {"source_invalid", "source_valid", "feed_stale",
                                                 "feed_fresh",     "divergence",   "convergence",
                                                 "no_valid_source"};
    const std::string_view kind = kinds[static_cast<std::size_t>(oe.what)];
    proto::oracle_notice n{std::string(kind), oe.asset, oe.protocol, oe.source, oe.reason,
                           oe.price, oe.reference, oe.t};
    proto::event e;
    e.seq = ++seq;
    e.ingest_ns = ingest;
    e.body = std::move(n);
    events.push_back(std::move(e));
    if (met != nullptr) met->oracle_event(kind).Increment();
  }
}

void engine_service::impl::apply_upsert(command& c) {
  auto& uc = std::get<upsert_cmd>(c.body);
  crossings.clear();
  statuses.clear();
  absl::Status st = bk->upsert(uc.positions, &crossings, &statuses);
  apply_result r;
  if (!st.ok()) {
    r.error = refusal(proto::error_code::bad_request, st);
  } else {
    add_alerts(crossings, c.ingest_ns, {});
    add_statuses(c.ingest_ns);
    dirty = true;
    dirty_ingest = c.ingest_ns;
    r.applied = uc.positions.size();
    r.alerts = crossings.size();
  }
  if (uc.done) answers.push_back({std::move(uc.done), r});
}

void engine_service::impl::apply_remove(command& c) {
  auto& rc = std::get<remove_cmd>(c.body);
  statuses.clear();
  absl::Status st = bk->remove(rc.ids, &statuses);
  apply_result r;
  if (!st.ok()) {
    r.error = refusal(
        absl::IsNotFound(st) ? proto::error_code::unknown_position : proto::error_code::bad_request,
        st);
  } else {
    add_statuses(c.ingest_ns);
    if (bk->needs_compaction()) bk->compact();
    dirty = true;
    dirty_ingest = c.ingest_ns;
    r.applied = rc.ids.size();
  }
  if (rc.done) answers.push_back({std::move(rc.done), r});
}

void engine_service::impl::snapshot(command& c) {
  auto& sc = std::get<snapshot_cmd>(c.body);
  if (pending_snapshots.load() >= max_pending_snapshots) {
    if (sc.overloaded) sc.overloaded();
    return;
  }
  ++pending_snapshots;
  // Ids and owners stay behind (book::snapshot_to): the jobs read columns only.
  if (!spare || spare_busy->load(std::memory_order_acquire)) {
    spare = std::make_shared<book>(mkt, bk->options());
    spare_busy = std::make_shared<std::atomic<bool>>(false);
  }
  bk->snapshot_to(*spare);
  spare_busy->store(true, std::memory_order_relaxed);
  std::shared_ptr<const book> snap = spare;
  auto v = std::make_shared<const volatility_tracker>(vol);
  jobs.enqueue([this, snap, v, busy = spare_busy, run = std::move(sc.run)] {
    run(*snap, *v);
    busy->store(false, std::memory_order_release);
    --pending_snapshots;
  });
}

void engine_service::impl::add_alerts(const std::vector<crossing>& xs, std::int64_t ingest,
                                      std::span<const std::int64_t> ingest_by) {
  for (const crossing& x : xs) {
    proto::alert_event a;
    a.position = bk->id_at(x.row);
    a.owner = bk->owner_at(x.row);
    a.protocol = x.protocol;
    a.from = x.from;
    a.to = x.to;
    a.hf_before = x.hf_before;
    a.hf_after = x.hf_after;
    a.cause = x.cause;
    a.price = x.price;
    const auto legs = bk->leg_assets(x.row);
    a.assets.assign(legs.begin(), legs.end());
    std::sort(a.assets.begin(), a.assets.end());
    a.assets.erase(std::unique(a.assets.begin(), a.assets.end()), a.assets.end());
    proto::event e;
    e.seq = ++seq;
    e.ingest_ns = ingest;
    if (x.cause.valid() && !ingest_by.empty()) {
      // A derived asset moved by its base's tick (book.hpp) was ingested with the base.
      const auto base = mkt.base_of(x.cause);
      e.ingest_ns = ingest_by[x.cause.index()] != 0 || !base ? ingest_by[x.cause.index()]
                                                             : ingest_by[base->index()];
    }
    e.body = std::move(a);
    events.push_back(std::move(e));
  }
  if (met != nullptr) met->alerts.Increment(static_cast<double>(xs.size()));
}

void engine_service::impl::add_statuses(std::int64_t ingest) {
  for (const status_change& x : statuses) {
    proto::status_event s;
    s.position = bk->id_at(x.row);
    s.owner = bk->owner_at(x.row);
    s.protocol = x.protocol;
    s.kind = x.kind;
    s.entered = x.entered;
    s.hf = x.hf;
    s.value = x.value;
    const auto legs = bk->leg_assets(x.row);
    s.assets.assign(legs.begin(), legs.end());
    std::sort(s.assets.begin(), s.assets.end());
    s.assets.erase(std::unique(s.assets.begin(), s.assets.end()), s.assets.end());
    proto::event e;
    e.seq = ++seq;
    e.ingest_ns = ingest;
    e.body = std::move(s);
    events.push_back(std::move(e));
    if (met != nullptr) {
      (x.kind == status_kind::pending ? met->pending_events : met->insolvency_events)
          .Increment();
    }
  }
}

std::uint64_t engine_service::impl::liquidatable() const {
  std::uint64_t n = 0;
  for (const auto& row : bk->band_counts()) n += row[static_cast<std::size_t>(band::liquidatable)];
  return n;
}

void engine_service::impl::maybe_project() {
  if (!dirty) return;
  if (liquidatable() == 0) {
    // Nothing can start a cascade: the projection is empty, no need to run or stream it.
    project(dirty_ingest, false);
    return;
  }
  const std::int64_t now = now_ns();
  if (now - last_projection_ns < std::int64_t{settings.projection_interval_ms} * 1'000'000) return;
  project(dirty_ingest, true);
}

void engine_service::impl::project(std::int64_t ingest, bool emit) {
  const std::int64_t t0 = now_ns();
  proto::cascade_event ce;
  ce.liquidatable_now = liquidatable();
  ce.start_prices.assign(bk->prices().begin(), bk->prices().end());
  if (ce.liquidatable_now == 0) {
    ce.final_prices = ce.start_prices;
    ce.bad_debt_usd.assign(mkt.protocol_count(), 0.0);
    ce.liquidated.assign(mkt.protocol_count(), 0);
  } else {
    cascade_options o;
    o.max_rounds = static_cast<std::uint32_t>(settings.max_rounds);
    auto rep = sim.run(*bk, {}, o);
    if (!rep.ok()) return;  // a no-shock run on a valid book cannot be refused
    ce.rounds = static_cast<std::uint32_t>(rep->rounds.size());
    ce.positions_liquidated = rep->positions_liquidated;
    ce.repaid_usd = rep->total_repaid_usd;
    ce.seized_usd = rep->total_seized_usd;
    for (const auto& p : rep->protocols) {
      ce.bad_debt_usd.push_back(p.bad_debt_usd);
      ce.liquidated.push_back(p.liquidated);
    }
    std::vector<double> sold(mkt.asset_count(), 0.0);
    for (const auto& r : rep->rounds) {
      for (const auto& [a, q] : r.sold) sold[a.index()] += q;
    }
    for (std::size_t a = 0; a < sold.size(); ++a) {
      if (sold[a] > 0.0) ce.sold.emplace_back(asset_id::from_index(a), sold[a]);
    }
    ce.final_prices = rep->final_prices;
    for (std::size_t a = 0; a < mkt.asset_count(); ++a) {
      if (ce.final_prices[a] == ce.start_prices[a]) continue;
      std::vector<double> path{ce.start_prices[a]};
      path.reserve(rep->rounds.size() + 1);
      for (const auto& r : rep->rounds) path.push_back(r.prices[a]);
      ce.price_path.emplace_back(asset_id::from_index(a), std::move(path));
    }
  }
  const std::int64_t t1 = now_ns();
  ce.duration_ms = static_cast<double>(t1 - t0) * 1e-6;
  dirty = false;
  have_projection = true;
  if (ce.liquidatable_now > 0) last_projection_ns = t1;
  if (met != nullptr) {
    for (std::size_t p = 0; p < mkt.protocol_count(); ++p) {
      met->projected_bad_debt_usd[p]->Set(ce.bad_debt_usd[p]);
      met->projected_liquidated[p]->Set(static_cast<double>(ce.liquidated[p]));
    }
    for (std::size_t a = 0; a < mkt.asset_count(); ++a) {
      met->projected_price_drop[a]->Set(1.0 - ce.final_prices[a] / ce.start_prices[a]);
    }
    if (ce.liquidatable_now > 0) {
      met->projections.Increment();
      met->projection_duration.Observe(static_cast<double>(t1 - t0) * 1e-9);
    }
  }
  if (emit) {
    proto::event e;
    e.seq = ++seq;
    e.ingest_ns = ingest;
    e.body = ce;
    events.push_back(std::move(e));
  }
  projection = std::move(ce);
  projection_seq = seq;
}

void engine_service::impl::flush() {
  if (events.empty() && answers.empty()) return;
  if (met != nullptr && !events.empty()) {
    met->events_published.Increment(static_cast<double>(events.size()));
    met->last_seq.Set(static_cast<double>(seq));
  }
  std::vector<answer> after;
  after.reserve(answers.size());
  for (pending_answer& a : answers) {
    a.result.seq = seq;
    after.emplace_back([done = std::move(a.done), r = a.result] { done(r); });
  }
  sink(std::move(events), std::move(after));
  events.clear();
  answers.clear();
}

void engine_service::impl::update_gauges(bool force_totals) {
  if (met == nullptr) return;
  met->engine_queue_depth.Set(static_cast<double>(std::max<std::int64_t>(0, queued.load())));
  met->book_positions.Set(static_cast<double>(bk->size()));
  const auto& counts = bk->band_counts();
  for (std::size_t p = 0; p < counts.size(); ++p) {
    for (std::size_t b = 0; b < band_count; ++b) {
      met->positions[p][b]->Set(static_cast<double>(counts[p][b]));
    }
  }
  const auto& hidden = bk->hidden();
  for (std::size_t p = 0; p < hidden.size(); ++p) {
    const hidden_totals& h = hidden[p];
    met->pending_positions[p]->Set(static_cast<double>(h.pending));
    met->pending_debt_usd[p]->Set(h.pending_debt_usd);
    met->pending_seize_usd[p]->Set(h.pending_seize_usd);
    met->insolvent_positions[p]->Set(static_cast<double>(h.insolvent));
    met->insolvent_debt_usd[p]->Set(h.insolvent_debt_usd);
    met->insolvent_shortfall_usd[p]->Set(h.insolvent_shortfall_usd);
  }
  for (const feed_state& f : oracles.feeds()) {
    const std::string& proto_name = mkt.get_protocol(f.protocol).name;
    const std::string& sym = mkt.asset(f.asset).symbol;
    const double market_price = bk->prices()[f.asset.index()];
    met->oracle_price(proto_name, sym).Set(f.visible);
    met->oracle_divergence(proto_name, sym).Set(std::abs(f.visible / market_price - 1.0));
  }
  const auto prices = bk->prices();
  const auto queued_units = bk->queued_units();
  for (std::size_t a = 0; a < prices.size(); ++a) {
    met->price_usd[a]->Set(prices[a]);
    met->queued_units[a]->Set(queued_units[a]);
    met->depth_scale[a]->Set(bk->depth_scale(asset_id::from_index(a)));
    const auto v = vol.annualized(asset_id::from_index(a));
    met->volatility_annual[a]->Set(v ? *v : std::nan(""));
  }
  const std::int64_t now = now_ns();
  if (!force_totals && now - last_totals_ns < totals_interval_ns) return;
  last_totals_ns = now;
  const auto totals = bk->totals();
  constexpr auto liq = static_cast<std::size_t>(band::liquidatable);
  for (std::size_t p = 0; p < totals.size(); ++p) {
    met->liquidatable_collateral_usd[p]->Set(totals[p][liq].collateral_usd);
    met->liquidatable_debt_usd[p]->Set(totals[p][liq].debt_usd);
  }
}

}  // namespace cascade::server
