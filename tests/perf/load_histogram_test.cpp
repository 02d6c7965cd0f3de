#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "perf/load/histogram.hpp"

using cascade::load::histogram;

TEST_CASE("histogram buckets tile the uint64 range with bounded width", "[load]") {
  // Exact below 2 * half; above, a bucket is never wider than 1/half of its lowest value.
  for (std::uint64_t v = 0; v < 2 * histogram::half; ++v) {
    CHECK(histogram::bucket_of(v) == v);
  }
  std::mt19937_64 rng(7);
  for (int i = 0; i < 100000; ++i) {
    const std::uint64_t v = rng() >> (rng() % 64);
    const std::size_t b = histogram::bucket_of(v);
    REQUIRE(histogram::lowest_in(b) <= v);
    REQUIRE(v <= histogram::highest_in(b));
    if (v >= 2 * histogram::half) {
      REQUIRE(histogram::highest_in(b) - histogram::lowest_in(b) + 1 <=
              histogram::lowest_in(b) / histogram::half);
    }
  }
  // Consecutive buckets meet with no hole or overlap, up to the largest value.
  const std::size_t last = histogram::bucket_of(std::numeric_limits<std::uint64_t>::max());
  for (std::size_t b = 0; b < last; ++b) {
    REQUIRE(histogram::highest_in(b) + 1 == histogram::lowest_in(b + 1));
  }
  CHECK(histogram::highest_in(last) == std::numeric_limits<std::uint64_t>::max());
}

TEST_CASE("histogram quantiles agree with sorting to the bucket width", "[load]") {
  std::mt19937_64 rng(11);
  std::lognormal_distribution<double> lat(10.0, 1.5);  // a latency-like long tail, ns
  histogram h;
  std::vector<std::uint64_t> all;
  for (int i = 0; i < 200000; ++i) {
    const auto v = static_cast<std::uint64_t>(lat(rng));
    h.record(v);
    all.push_back(v);
  }
  std::sort(all.begin(), all.end());
  for (const double q : {0.5, 0.9, 0.99, 0.999}) {
    const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(all.size())));
    const std::uint64_t exact = all[rank - 1];
    const std::uint64_t got = h.quantile(q);
    // The bucket's highest value: never below the exact one, at most one bucket above.
    CHECK(got >= exact);
    CHECK(static_cast<double>(got - exact) <=
          static_cast<double>(exact) / static_cast<double>(histogram::half) + 1.0);
  }
  CHECK(h.quantile(1.0) == all.back());
  CHECK(h.max() == all.back());
  CHECK(h.min() == all.front());
  CHECK(h.count() == all.size());
}

TEST_CASE("histogram merge equals recording everything in one", "[load]") {
  histogram a, b, both;
  for (std::uint64_t v = 1; v < 50000; v += 7) {
    ((v % 3 == 0) ? a : b).record(v * 13);
    both.record(v * 13);
  }
  b.record_signed(-5);
  a.merge(b);
  CHECK(a.count() == both.count());
  CHECK(a.negative() == 1);
  for (const double q : {0.0, 0.25, 0.5, 0.75, 0.99, 1.0}) CHECK(a.quantile(q) == both.quantile(q));
  CHECK(histogram().quantile(0.5) == 0);
}
