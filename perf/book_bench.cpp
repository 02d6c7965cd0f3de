// Book benchmarks: full recompute, price ticks at several holder fractions (the book's
// own choice, the walk forced, the scan forced), a naive array-of-structs baseline and
// two memory probes, all in one binary so that every ratio comes from one run.
//
// The bench market (built once per process, lazily, through the public API):
//   assets  RARE, MID, COMMON: held by ~1%, ~10%, ~60% of positions;
//           X20, X30, X40: held by ~20%, ~30%, ~40% (the ladder that locates the
//           walk/scan crossover);
//           F00..F63: fillers, ~3.7% each.
//   protocols P0..P3, each accepting every asset as collateral, thresholds 0.50..0.90.
// Each position i draws from its own deterministic stream (splitmix64 of i): it holds
// COMMON with probability 0.60, MID 0.10, RARE 0.01, X20 0.20, X30 0.30, X40 0.40
// (independently; kept to four), then distinct fillers up to exactly four legs. The four
// legs are shuffled; the first 1, 2 or 3 (probability 1/4, 1/2, 1/4) are collateral-only
// legs, the rest debt-only, so every position has exactly four terms. Collateral values
// are log-uniform in [$1k, $20k]; debt is set so that HF is uniform in [1.05, 3.05],
// split over the debt legs by random weights. Ids are "p<i>", protocol i % 4. The
// fractions realised are reported as the `holders` counter.
//
// Books are rows in input order, so an asset's holders are spread at random over the
// rows: a tick touches its holders' cells as a sorted gather.
//
// CASCADE_BENCH_POSITIONS shrinks the book (the CI smoke test uses 20000).
//
// `book_bench --export FILE` writes the bench book for perf/baselines/numpy_health.py
// instead of running benchmarks (format below, at write_export), and the benchmarks'
// JSON context carries the book's digest (`book_digest`) so that a runner can tell that
// numpy read the book the C++ benchmarks ran on.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <cstdio>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/book.hpp"
#include "engine/kernels.hpp"
#include "engine/market.hpp"
#include "perf/bench_common.hpp"

namespace {

using namespace cascade;

constexpr std::size_t default_positions = 1'000'000;
constexpr int filler_count = 64;
constexpr int legs_per_position = 4;

std::size_t bench_positions() {
  static const std::size_t n = [] {
    const char* env = std::getenv("CASCADE_BENCH_POSITIONS");
    if (env == nullptr) return default_positions;
    const long long v = std::atoll(env);
    return v >= 1000 ? static_cast<std::size_t>(v) : default_positions;
  }();
  return n;
}

// A plain asset (no pool) with the given symbol and reference price.
asset_spec plain_asset(std::string symbol, double price) {
  asset_spec spec;
  spec.symbol = std::move(symbol);
  spec.price = price;
  // A constant-product pool $50M deep: unused by the plain health path, sold into by the
  // realizable-value path (book.hpp).
  spec.liquidity = pool{5e7 / price, 5e7};
  return spec;
}

std::uint64_t splitmix64(std::uint64_t& s) {
  std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double uniform(std::uint64_t& s) { return static_cast<double>(splitmix64(s) >> 11) * 0x1.0p-53; }

// The special assets, in the order they are added to the market.
enum special : int { rare, mid, common, x20, x30, x40, special_count };
constexpr double special_share[special_count] = {0.01, 0.10, 0.60, 0.20, 0.30, 0.40};
constexpr const char* special_symbol[special_count] = {"RARE", "MID", "COMMON",
                                                       "X20",  "X30", "X40"};
constexpr double special_price[special_count] = {5.0, 40000.0, 2000.0, 150.0, 30.0, 0.9};

struct bench_market {
  market m;
  std::vector<asset_id> specials;
  std::vector<asset_id> fillers;
  std::vector<protocol_id> protocols;
};

const bench_market& get_market() {
  static const bench_market bm = [] {
    bench_market out;
    std::vector<std::string> symbols;
    for (int s = 0; s < special_count; ++s) {
      out.specials.push_back(*out.m.add_asset(plain_asset(special_symbol[s], special_price[s])));
      symbols.push_back(special_symbol[s]);
    }
    for (int f = 0; f < filler_count; ++f) {
      std::string sym = "F" + std::to_string(100 + f).substr(1);
      const double price = std::exp(0.3 * f - 6.0);  // 0.0025 .. 400
      out.fillers.push_back(*out.m.add_asset(plain_asset(sym, price)));
      symbols.push_back(sym);
    }
    for (int p = 0; p < 4; ++p) {
      protocol_spec spec{"P" + std::to_string(p), protocol_kind::pooled, 0.5, 0.95, {}};
      for (std::size_t a = 0; a < symbols.size(); ++a) {
        const double lt =
            0.50 +
            0.40 * static_cast<double>((a * 7 + static_cast<std::size_t>(p) * 13) % 17) / 16.0;
        spec.assets.push_back({symbols[a], {lt, 0.05}});
      }
      out.protocols.push_back(*out.m.add_protocol(spec));
    }
    return out;
  }();
  return bm;
}

position_input make_position(std::size_t i) {
  const bench_market& bm = get_market();
  std::uint64_t s = 0x5EEDull * 1'000'003ull + i;
  asset_id chosen[legs_per_position];
  int n = 0;
  for (int k = 0; k < special_count; ++k) {
    if (uniform(s) < special_share[k] && n < legs_per_position) chosen[n++] = bm.specials[k];
  }
  while (n < legs_per_position) {
    const asset_id f = bm.fillers[splitmix64(s) % filler_count];
    if (std::find(chosen, chosen + n, f) == chosen + n) chosen[n++] = f;
  }
  for (int k = legs_per_position - 1; k > 0; --k) {
    std::swap(chosen[k], chosen[splitmix64(s) % static_cast<std::uint64_t>(k + 1)]);
  }
  const double u = uniform(s);
  const int ncoll = u < 0.25 ? 1 : (u < 0.75 ? 2 : 3);

  position_input in;
  in.id = "p" + std::to_string(i);
  in.protocol = bm.protocols[i % bm.protocols.size()];
  const protocol& pr = bm.m.get_protocol(in.protocol);
  const std::span<const asset_spec> assets = bm.m.assets();
  double weighted = 0.0;
  for (int k = 0; k < ncoll; ++k) {
    const double usd = 1000.0 * std::exp(3.0 * uniform(s));
    const double price = assets[chosen[k].index()].price;
    in.legs.push_back({chosen[k], usd / price, 0.0});
    weighted += usd * pr.threshold(chosen[k]);
  }
  const double hf = 1.05 + 2.0 * uniform(s);
  const double debt_usd = weighted / hf;
  double w[legs_per_position];
  double wsum = 0.0;
  for (int k = ncoll; k < legs_per_position; ++k) wsum += (w[k] = 0.2 + uniform(s));
  for (int k = ncoll; k < legs_per_position; ++k) {
    const double price = assets[chosen[k].index()].price;
    in.legs.push_back({chosen[k], 0.0, debt_usd * w[k] / wsum / price});
  }
  return in;
}

// A book built once per process and per scan_fraction, through book::upsert in batches.
// Books with the plain health path (realizable off: what P1-P3 measure) and with
// realizable value, pending liquidations and hidden insolvency kept (the server's
// default).
book& bench_book(double scan_fraction, bool realizable = false) {
  struct entry {
    double scan_fraction;
    bool realizable;
    std::unique_ptr<book> b;
  };
  static std::vector<entry> books;
  for (auto& e : books) {
    if (e.scan_fraction == scan_fraction && e.realizable == realizable) return *e.b;
  }
  book_options opt;
  opt.scan_fraction = scan_fraction;
  opt.realizable = realizable;
  auto b = std::make_unique<book>(get_market().m, opt);
  constexpr std::size_t batch = 8192;
  std::vector<position_input> in;
  for (std::size_t begin = 0; begin < bench_positions(); begin += batch) {
    in.clear();
    const std::size_t end = std::min(bench_positions(), begin + batch);
    for (std::size_t i = begin; i < end; ++i) in.push_back(make_position(i));
    if (!b->upsert(in).ok()) std::abort();  // the generator makes only valid positions
  }
  books.push_back({scan_fraction, realizable, std::move(b)});
  return *books.back().b;
}

const double auto_scan = book_options{}.scan_fraction;  // the default scan_fraction
constexpr double force_walk = 1.0;  // holders never exceed the whole book
constexpr double force_scan = 0.0;  // every tick recomputes everything

// Bytes a full recompute reads and writes per row: offset (4), collateral-term count
// (2), per term asset (2) and coefficient (8), the cell written (16).
double recompute_bytes_per_row(const book& b) {
  const double terms = static_cast<double>(b.term_assets().size()) / static_cast<double>(b.rows());
  return 4.0 + 2.0 + 10.0 * terms + 16.0;
}

using perf::add_spread;

void BM_full_recompute(benchmark::State& state) {
  book& b = bench_book(auto_scan);
  for (auto _ : state) {
    b.recompute_all(nullptr);
    benchmark::ClobberMemory();
  }
  const auto rows = static_cast<std::int64_t>(b.rows());
  state.SetItemsProcessed(state.iterations() * rows);
  state.SetBytesProcessed(static_cast<std::int64_t>(static_cast<double>(state.iterations()) *
                                                    static_cast<double>(rows) *
                                                    recompute_bytes_per_row(b)));
  state.counters["bytes_per_row"] = recompute_bytes_per_row(b);
}

// The kernel alone over every row, into a separate cell array.
void BM_kernel_recompute(benchmark::State& state) {
  book& b = bench_book(auto_scan);
  const kernels::term_columns terms{b.term_offsets(), b.collateral_term_counts(), b.term_assets(),
                                    b.term_coefficients()};
  std::vector<health_cell> out(b.rows());
  for (auto _ : state) {
    kernels::recompute_cells(terms, b.prices(), 0, b.rows(), out.data());
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  for (std::size_t r = 0; r < b.rows(); ++r) {
    const health_cell c = b.compute_cell(static_cast<row_t>(r), b.prices());
    if (std::memcmp(&c, &out[r], sizeof c) != 0) {
      state.SkipWithError("kernel differs from book::compute_cell");
      return;
    }
  }
  const auto rows = static_cast<std::int64_t>(b.rows());
  state.SetItemsProcessed(state.iterations() * rows);
  state.SetBytesProcessed(static_cast<std::int64_t>(static_cast<double>(state.iterations()) *
                                                    static_cast<double>(rows) *
                                                    recompute_bytes_per_row(b)));
}

// The naive baseline: an array of structs with a string id and a heap vector of legs,
// thresholds looked up per leg in the protocol table.
struct naive_leg {
  asset_id asset;
  double collateral = 0.0;
  double debt = 0.0;
};
struct naive_position {
  std::string id;
  std::size_t protocol = 0;
  std::vector<naive_leg> legs;
  double hf = 0.0;
};

void BM_aos_recompute(benchmark::State& state) {
  static const std::vector<naive_position> proto_book = [] {
    std::vector<naive_position> out;
    out.reserve(bench_positions());
    for (std::size_t i = 0; i < bench_positions(); ++i) {
      position_input in = make_position(i);
      naive_position p{std::move(in.id), in.protocol.index(), {}, 0.0};
      for (const leg& l : in.legs) p.legs.push_back({l.asset, l.collateral, l.debt});
      out.push_back(std::move(p));
    }
    return out;
  }();
  static std::vector<naive_position> positions = proto_book;
  const market& m = get_market().m;
  const std::vector<double> prices = m.reference_prices();
  const std::span<const protocol> protocols = m.protocols();
  for (auto _ : state) {
    for (naive_position& p : positions) {
      const protocol& pr = protocols[p.protocol];
      double num = 0.0;
      double den = 0.0;
      for (const naive_leg& l : p.legs) {
        const double price = prices[l.asset.index()];
        if (l.collateral > 0.0) num += l.collateral * price * pr.threshold(l.asset);
        den += l.debt * price;
      }
      p.hf = den > 0.0 ? num / den : std::numeric_limits<double>::infinity();
    }
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(positions.size()));
}

// One price tick per iteration on the special asset `s`, alternating between the
// reference price and 0.1% above it so that every iteration really moves the price.
// Steady state has no crossings (hysteresis is 0.5%); every 257th walk of an asset is
// an exact re-anchoring walk (anchor_updates 256), as in production.
void tick_bench(benchmark::State& state, special s, double scan_fraction, bool realizable) {
  book& b = bench_book(scan_fraction, realizable);
  const asset_id a = get_market().specials[s];
  const double p0 = get_market().m.asset(a).price;
  const tick up[1] = {{a, p0 * 1.001}};
  const tick down[1] = {{a, p0}};
  std::vector<crossing> events;
  bool flip = b.prices()[a.index()] == p0;
  const tick_stats before = b.stats();
  for (auto _ : state) {
    if (!b.apply_ticks(flip ? up : down, events).ok()) {
      state.SkipWithError("tick refused");
      return;
    }
    flip = !flip;
    benchmark::DoNotOptimize(events.data());
    events.clear();
    benchmark::ClobberMemory();
  }
  const auto holders = static_cast<std::int64_t>(b.exposure(a).size());
  state.SetItemsProcessed(state.iterations() * holders);
  state.counters["holders"] = static_cast<double>(holders) / static_cast<double>(b.rows());
  if (realizable) {
    // Rows valued from their legs per tick (realizable value, book.hpp).
    const auto per_tick = [&](std::uint64_t n) {
      return static_cast<double>(n) / static_cast<double>(std::max<std::int64_t>(1, state.iterations()));
    };
    state.counters["revalued"] = per_tick(b.stats().revalued - before.revalued);
  }
}

// Streaming read of a buffer far larger than L3: the bandwidth bound.
void BM_probe_read_bandwidth(benchmark::State& state) {
  const std::size_t bytes = std::max<std::size_t>(std::size_t{64} << 20, bench_positions() * 512);
  static std::vector<std::uint64_t> buf(bytes / sizeof(std::uint64_t), 1);
  for (auto _ : state) {
    std::uint64_t s0 = 0;
    std::uint64_t s1 = 0;
    std::uint64_t s2 = 0;
    std::uint64_t s3 = 0;
    const std::uint64_t* p = buf.data();
    for (std::size_t i = 0; i + 4 <= buf.size(); i += 4) {
      s0 += p[i];
      s1 += p[i + 1];
      s2 += p[i + 2];
      s3 += p[i + 3];
    }
    std::uint64_t sum = s0 + s1 + s2 + s3;
    benchmark::DoNotOptimize(sum);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(buf.size() * sizeof(std::uint64_t)));
}

// Read-modify-write of 16-byte records at sorted random indices covering 10% of the
// rows: the least a tick on a 10% asset must touch.
struct gather_probe {
  std::vector<health_cell> cells;
  std::vector<std::uint32_t> index;
  std::vector<exposure_entry> entries;  // the same rows with two coefficients each

  gather_probe() : cells(bench_positions(), health_cell{1.0, 1.0}) {
    std::uint64_t s = 42;
    for (std::uint32_t r = 0; r < cells.size(); ++r) {
      if (uniform(s) < 0.10) {
        index.push_back(r);
        entries.push_back({r, 0, 1.0 + uniform(s), uniform(s)});
      }
    }
  }
};

gather_probe& probe() {
  static gather_probe g;
  return g;
}

void BM_probe_sorted_gather(benchmark::State& state) {
  gather_probe& g = probe();
  health_cell* cells = g.cells.data();
  double dp = 1e-3;
  for (auto _ : state) {
    for (const std::uint32_t r : g.index) {
      cells[r].num += dp;
      cells[r].den += dp;
    }
    dp = -dp;
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(g.index.size()));
  state.counters["holders"] =
      static_cast<double>(g.index.size()) / static_cast<double>(g.cells.size());
}

// The same gather fed by 24-byte exposure entries (row + two coefficients): the floor
// of walk_delta without band judgement.
void BM_probe_walk_floor(benchmark::State& state) {
  gather_probe& g = probe();
  health_cell* cells = g.cells.data();
  double dp = 1e-3;
  for (auto _ : state) {
    for (const exposure_entry& e : g.entries) {
      cells[e.row].num += e.weighted_collateral * dp;
      cells[e.row].den += e.debt * dp;
    }
    dp = -dp;
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(g.entries.size()));
}

struct tick_case {
  const char* name;
  special asset;
  double scan_fraction;
  bool realizable = false;
};

constexpr tick_case tick_cases[] = {
    // The book's own choice (P3: against the better of walk and scan at each rung).
    {"BM_tick_1pct", rare, auto_scan},
    {"BM_tick_10pct", mid, auto_scan},
    {"BM_tick_20pct", x20, auto_scan},
    {"BM_tick_30pct", x30, auto_scan},
    {"BM_tick_40pct", x40, auto_scan},
    {"BM_tick_60pct", common, auto_scan},
    {"BM_tick_1pct_walk", rare, force_walk},
    {"BM_tick_10pct_walk", mid, force_walk},
    {"BM_tick_20pct_walk", x20, force_walk},
    {"BM_tick_30pct_walk", x30, force_walk},
    {"BM_tick_40pct_walk", x40, force_walk},
    {"BM_tick_60pct_walk", common, force_walk},
    {"BM_tick_1pct_scan", rare, force_scan},
    {"BM_tick_10pct_scan", mid, force_scan},
    {"BM_tick_20pct_scan", x20, force_scan},
    {"BM_tick_30pct_scan", x30, force_scan},
    {"BM_tick_40pct_scan", x40, force_scan},
    {"BM_tick_60pct_scan", common, force_scan},
    // The same ticks with realizable value kept (issue 5; compare with BM_tick_*pct
    // above): each also values from their legs the holders whose certificate the move
    // used up (book.hpp; counter `revalued`, rows per tick).
    {"BM_tick_1pct_real", rare, auto_scan, true},
    {"BM_tick_10pct_real", mid, auto_scan, true},
};

int register_all() {
  add_spread(benchmark::RegisterBenchmark("BM_probe_read_bandwidth", BM_probe_read_bandwidth)
                 ->Unit(benchmark::kMillisecond));
  add_spread(benchmark::RegisterBenchmark("BM_probe_sorted_gather", BM_probe_sorted_gather)
                 ->Unit(benchmark::kMicrosecond));
  add_spread(benchmark::RegisterBenchmark("BM_probe_walk_floor", BM_probe_walk_floor)
                 ->Unit(benchmark::kMicrosecond));
  add_spread(benchmark::RegisterBenchmark("BM_full_recompute", BM_full_recompute)
                 ->Unit(benchmark::kMillisecond));
  add_spread(benchmark::RegisterBenchmark("BM_kernel_recompute", BM_kernel_recompute)
                 ->Unit(benchmark::kMillisecond));
  add_spread(benchmark::RegisterBenchmark("BM_aos_recompute", BM_aos_recompute)
                 ->Unit(benchmark::kMillisecond));
  for (const tick_case& c : tick_cases) {
    add_spread(benchmark::RegisterBenchmark(c.name, tick_bench, c.asset, c.scan_fraction,
                                            c.realizable)
                   ->Unit(benchmark::kMicrosecond));
  }
  return 0;
}

const int registered = register_all();

std::string hex64(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// The export: the arrays the health computation reads, and the C++ results to compare
// with. Layout (little-endian):
//   bytes 0..7   "CASCBOOK"
//   bytes 8..11  version (1)
//   bytes 12..15 length H of the JSON header that follows
//   H bytes      header: rows, terms, assets, digest, the tick (asset index, symbol,
//                price before and after), and per array its dtype (numpy notation),
//                byte offset from the file's start and element count
//   arrays, each at a 64-byte aligned offset:
//     term_offsets u32 [rows + 1], collateral_term_counts u16 [rows],
//     term_assets u16 [terms], term_coefficients f64 [terms], prices f64 [assets],
//     cells f64 [rows x 2] (num, den after recompute_all at the reference prices),
//     cells_after_tick f64 [rows x 2] (after one tick of MID, the 10% asset, to 1.001x
//     its reference price, applied by book::apply_ticks: the walk P2 times).
// The book is the one BM_full_recompute and BM_tick_*pct run on (default options).
std::string double_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

int write_export(const char* path) {
  book& b = bench_book(auto_scan);
  b.recompute_all(nullptr);
  const std::string digest = hex64(b.digest());
  const std::vector<health_cell> before(b.cells().begin(), b.cells().end());
  const std::vector<double> prices(b.prices().begin(), b.prices().end());
  const asset_id a = get_market().specials[mid];
  const double p0 = b.prices()[a.index()];
  const double p1 = p0 * 1.001;
  std::vector<crossing> events;
  const tick up[1] = {{a, p1}};
  if (!b.apply_ticks(up, events).ok()) return 1;
  const std::vector<health_cell> after(b.cells().begin(), b.cells().end());

  struct array {
    const char* name;
    const char* dtype;
    const void* data;
    std::size_t count;
    std::size_t size;
    std::size_t offset = 0;
  };
  std::vector<array> arrays = {
      {"term_offsets", "<u4", b.term_offsets().data(), b.term_offsets().size(), 4},
      {"collateral_term_counts", "<u2", b.collateral_term_counts().data(),
       b.collateral_term_counts().size(), 2},
      {"term_assets", "<u2", b.term_assets().data(), b.term_assets().size(), 2},
      {"term_coefficients", "<f8", b.term_coefficients().data(), b.term_coefficients().size(), 8},
      {"prices", "<f8", prices.data(), prices.size(), 8},
      {"cells", "<f8", before.data(), before.size() * 2, 8},
      {"cells_after_tick", "<f8", after.data(), after.size() * 2, 8},
  };
  static_assert(sizeof(health_cell) == 2 * sizeof(double));
  const auto header_for = [&](std::size_t first_offset) {
    std::size_t at = first_offset;
    std::string h = "{\"rows\": " + std::to_string(b.rows()) +
                    ", \"terms\": " + std::to_string(b.term_assets().size()) +
                    ", \"assets\": " + std::to_string(prices.size()) + ", \"digest\": \"" +
                    digest + "\", \"tick\": {\"asset\": " + std::to_string(a.index()) +
                    ", \"symbol\": \"MID\", \"price_before\": " + double_text(p0) +
                    ", \"price_after\": " + double_text(p1) + "}, \"arrays\": {";
    for (std::size_t i = 0; i < arrays.size(); ++i) {
      at = (at + 63) / 64 * 64;
      arrays[i].offset = at;
      h += std::string(i ? ", " : "") + "\"" + arrays[i].name + "\": {\"dtype\": \"" +
           arrays[i].dtype + "\", \"offset\": " + std::to_string(at) +
           ", \"count\": " + std::to_string(arrays[i].count) + "}";
      at += arrays[i].count * arrays[i].size;
    }
    return h + "}}";
  };
  // The header's length moves the first offset: settle it (two passes suffice, the
  // offsets' digits change by at most one when the header grows by less than 64 bytes).
  std::string header = header_for(16 + 256);
  for (int pass = 0; pass < 4; ++pass) {
    const std::string next = header_for(16 + header.size());
    if (next.size() == header.size()) {
      header = next;
      break;
    }
    header = next;
  }
  std::FILE* f = std::fopen(path, "wb");
  if (f == nullptr) {
    std::fprintf(stderr, "book_bench: cannot write %s\n", path);
    return 1;
  }
  const std::uint32_t version = 1;
  const auto hlen = static_cast<std::uint32_t>(header.size());
  bool ok = std::fwrite("CASCBOOK", 1, 8, f) == 8 && std::fwrite(&version, 4, 1, f) == 1 &&
            std::fwrite(&hlen, 4, 1, f) == 1 &&
            std::fwrite(header.data(), 1, header.size(), f) == header.size();
  std::size_t at = 16 + header.size();
  for (const array& x : arrays) {
    static const char zeros[64] = {};
    ok = ok && std::fwrite(zeros, 1, x.offset - at, f) == x.offset - at;
    ok = ok && std::fwrite(x.data, x.size, x.count, f) == x.count;
    at = x.offset + x.count * x.size;
  }
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) {
    std::fprintf(stderr, "book_bench: writing %s failed\n", path);
    return 1;
  }
  std::fprintf(stderr, "book_bench: wrote %s (%zu rows, %zu terms, digest %s)\n", path, b.rows(),
               b.term_assets().size(), digest.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--export") == 0) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "book_bench: --export needs a file name\n");
        return 2;
      }
      return write_export(argv[i + 1]);
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("book_digest", hex64(bench_book(auto_scan).digest()));
  benchmark::AddCustomContext("book_positions", std::to_string(bench_positions()));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
