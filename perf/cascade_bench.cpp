// Cascade benchmarks (P7): cascade model v1 on a 1M-position book with a 20% shock on
// its most held asset, against one full recompute of the same book in the same run.
//
// The book is the default market's (config/default.toml, embedded) generated at
// CASCADE_BENCH_POSITIONS positions (default 1,000,000; seed 42), with every pool's
// base and quote scaled by positions / 200,000: the default market's pools are sized
// for its 200k-position book, and a book five times larger against the same depth
// simply collapses (every position liquidated), which measures something else. With
// the scaling the 20% ETH shock liquidates ~5% of positions over ~7 rounds.
//
// The warm benchmark reuses one simulator, as the server does (its per-row scratch is
// allocated once); the cold one builds a simulator per run.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdlib>
#include <vector>
#include <memory>

#include "engine/book.hpp"
#include "engine/cascade.hpp"
#include "engine/curves.hpp"
#include "engine/generator.hpp"
#include "perf/bench_common.hpp"
#include "proto/default_config.hpp"

namespace {

using namespace cascade;

std::size_t bench_positions() {
  const char* env = std::getenv("CASCADE_BENCH_POSITIONS");
  const long long v = env != nullptr ? std::atoll(env) : 0;
  return v >= 1000 ? static_cast<std::size_t>(v) : 1'000'000;
}

struct fixture {
  market mkt;
  std::unique_ptr<book> b;
  asset_id shocked;

  fixture() {
    auto cfg = proto::load_default_config();
    if (!cfg.ok()) std::abort();
    const double scale = static_cast<double>(bench_positions()) / 200'000.0;
    for (const asset_spec& a : cfg->mkt.assets()) {
      asset_spec s = a;
      if (s.liquidity) s.liquidity = pool{s.liquidity->base * scale, s.liquidity->quote * scale};
      if (!mkt.add_asset(s).ok()) std::abort();
    }
    for (const protocol& p : cfg->mkt.protocols()) {
      protocol_spec spec{p.name, p.kind, p.close_factor, p.full_liquidation_hf, {}};
      for (std::size_t a = 0; a < mkt.asset_count(); ++a) {
        if (p.collateral[a]) spec.assets.emplace_back(mkt.assets()[a].symbol, *p.collateral[a]);
      }
      if (!mkt.add_protocol(spec).ok()) std::abort();
    }
    auto positions = generate_positions(mkt, {bench_positions(), 42});
    if (!positions.ok()) std::abort();
    book_options opt = cfg->book;
    opt.realizable = false;  // P7 compares with one plain full HF recompute
    b = std::make_unique<book>(mkt, opt);
    if (!b->upsert(*positions).ok()) std::abort();
    // The most held pooled asset, by collateral value.
    double best = 0.0;
    for (std::size_t a = 0; a < mkt.asset_count(); ++a) {
      if (!mkt.assets()[a].liquidity) continue;
      double v = 0.0;
      for (const exposure_entry& e : b->exposure(asset_id::from_index(a)))
        v += e.weighted_collateral;
      v *= b->prices()[a];
      if (v > best) {
        best = v;
        shocked = asset_id::from_index(a);
      }
    }
  }
};

fixture& bench() {
  static fixture f;
  return f;
}

void report(benchmark::State& state, const cascade_report& r) {
  state.counters["rounds"] = static_cast<double>(r.rounds.size());
  state.counters["liquidated"] = static_cast<double>(r.positions_liquidated);
  state.counters["evaluations"] = static_cast<double>(r.evaluations);
  state.counters["estimates"] = static_cast<double>(r.estimates);
}

void BM_full_recompute(benchmark::State& state) {
  fixture& f = bench();
  for (auto _ : state) {
    f.b->recompute_all();
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * f.b->size()));
}

void BM_cascade_warm(benchmark::State& state) {
  fixture& f = bench();
  static cascade_simulator sim;
  const shock s{f.shocked, -0.20};
  cascade_report last;
  for (auto _ : state) {
    auto r = sim.run(*f.b, std::span<const shock>(&s, 1));
    if (!r.ok()) std::abort();
    benchmark::DoNotOptimize(r->total_repaid_usd);
    last = *std::move(r);
  }
  report(state, last);
}

void BM_cascade_cold(benchmark::State& state) {
  fixture& f = bench();
  const shock s{f.shocked, -0.20};
  cascade_report last;
  for (auto _ : state) {
    cascade_simulator sim;
    auto r = sim.run(*f.b, std::span<const shock>(&s, 1));
    if (!r.ok()) std::abort();
    last = *std::move(r);
  }
  report(state, last);
}

void BM_critical_shock(benchmark::State& state) {
  fixture& f = bench();
  static cascade_simulator sim;
  std::uint32_t cascades = 0;
  for (auto _ : state) {
    auto c = find_critical_shock(*f.b, f.shocked, sim);
    if (!c.ok()) std::abort();
    cascades = c->cascades_run;
    benchmark::DoNotOptimize(c->shock);
  }
  state.counters["cascades"] = cascades;
}

BENCHMARK(BM_full_recompute)->Unit(benchmark::kMillisecond)->Apply(perf::add_spread);
BENCHMARK(BM_cascade_warm)->Unit(benchmark::kMillisecond)->Apply(perf::add_spread);
BENCHMARK(BM_cascade_cold)->Unit(benchmark::kMillisecond)->Apply(perf::add_spread);
BENCHMARK(BM_critical_shock)->Unit(benchmark::kMillisecond)->Iterations(1);

}  // namespace

BENCHMARK_MAIN();
