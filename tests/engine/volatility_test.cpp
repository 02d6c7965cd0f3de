#include "engine/volatility.hpp"

#include <catch2/catch.hpp>
#include <cmath>
#include <random>

using namespace cascade;

TEST_CASE("EWMA volatility recovers the volatility of a simulated log-normal walk",
          "[volatility]") {
  std::mt19937_64 rng(5);
  std::normal_distribution<double> z(0.0, 1.0);
  const double sigma_annual = 0.8;
  const double sigma_per_s = sigma_annual / std::sqrt(seconds_per_year);
  volatility_options o;
  o.half_life_seconds = 30 * 86400.0;
  volatility_tracker v(1, o);
  const asset_id a{0};
  double price = 3000.0, ts = 0.0;
  std::uniform_real_distribution<double> gap(60.0, 7200.0);  // irregular ticks
  for (int i = 0; i < 20000; ++i) {
    const double dt = gap(rng);
    ts += dt;
    price *= std::exp(sigma_per_s * std::sqrt(dt) * z(rng));
    v.observe(a, price, ts);
  }
  REQUIRE(v.annualized(a).has_value());
  CHECK(*v.annualized(a) == Approx(sigma_annual).epsilon(0.12));
}

TEST_CASE("no estimate before min_samples; bad prices and repeated times make no return",
          "[volatility]") {
  volatility_tracker v(2);
  const asset_id a{1};
  v.observe(a, 100.0, 0.0);
  v.observe(a, std::nan(""), 10.0);
  v.observe(a, -5.0, 10.0);
  v.observe(a, 101.0, 0.0);  // same time: replaces the price
  CHECK(v.samples(a) == 0);
  for (int i = 1; i <= 19; ++i) v.observe(a, 100.0 + (i % 2), i * 60.0);
  CHECK(v.samples(a) == 19);
  CHECK_FALSE(v.annualized(a).has_value());
  v.observe(a, 100.5, 20 * 60.0);
  CHECK(v.annualized(a).has_value());
  CHECK(v.samples(asset_id{0}) == 0);
}

TEST_CASE("probability of touching a drop: reflection principle, by hand", "[volatility]") {
  // sigma * sqrt(H) = 0.1, drop 10%: z = ln(0.9) / 0.1 = -1.05361, Phi(z) = 0.14603.
  const double variance = 0.01 / 86400.0;
  CHECK(probability_at_horizon(variance, 86400.0, 0.10) == Approx(0.146027).epsilon(1e-4));
  CHECK(probability_of_touching(variance, 86400.0, 0.10) == Approx(2 * 0.146027).epsilon(1e-4));
  CHECK(probability_of_touching(variance, 86400.0, 1e-9) == Approx(1.0));
  CHECK(probability_of_touching(0.0, 86400.0, 0.1) == 0.0);
  // Longer horizons and bigger volatility make a fall more likely.
  CHECK(probability_of_touching(variance, 2 * 86400.0, 0.10) >
        probability_of_touching(variance, 86400.0, 0.10));
}
