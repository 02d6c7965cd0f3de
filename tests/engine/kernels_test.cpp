// The health kernels against plain restatements: the recompute kernel is bit-identical
// to mul-then-add in term order, and the band filter never disagrees with the
// classifier.
#include "engine/kernels.hpp"

#include <bit>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

using namespace cascade;

namespace {

// Rounds x as a stored double: keeps the compiler from fusing a product into a sum.
double stored(double x) {
  volatile double v = x;
  return v;
}

health_cell plain_cell(const kernels::term_columns& t, std::span<const double> prices,
                       std::size_t r) {
  const std::uint32_t b = t.offsets[r];
  const std::uint32_t mid = b + t.ncoll[r];
  const std::uint32_t e = t.offsets[r + 1];
  double num = 0.0;
  double den = 0.0;
  for (std::uint32_t k = b; k < mid; ++k)
    num = stored(num + stored(t.coefficients[k] * prices[t.assets[k]]));
  for (std::uint32_t k = mid; k < e; ++k)
    den = stored(den + stored(t.coefficients[k] * prices[t.assets[k]]));
  return {num, den};
}

}  // namespace

TEST_CASE("recompute kernel is bit-identical to mul-then-add in term order", "[kernels]") {
  std::mt19937_64 rng(20240611);
  std::uniform_real_distribution<double> u(0, 1);
  for (int round = 0; round < 20; ++round) {
    const std::size_t n_assets = 1 + rng() % 40;
    std::vector<double> prices(n_assets);
    for (double& p : prices) p = std::exp(u(rng) * 30 - 15);
    std::vector<std::uint32_t> off{0};
    std::vector<std::uint16_t> ncoll;
    std::vector<std::uint16_t> assets;
    std::vector<double> coef;
    const std::size_t rows = 1 + rng() % 300;
    for (std::size_t r = 0; r < rows; ++r) {
      // Mostly short rows (the kernel's fast path), some long ones, some empty.
      const std::size_t len = (rng() % 5 == 0) ? rng() % 12 : rng() % 5;
      const std::size_t nc = len == 0 ? 0 : rng() % (len + 1);
      for (std::size_t k = 0; k < len; ++k) {
        assets.push_back(static_cast<std::uint16_t>(rng() % n_assets));
        coef.push_back(std::exp(u(rng) * 40 - 20));
      }
      ncoll.push_back(static_cast<std::uint16_t>(nc));
      off.push_back(static_cast<std::uint32_t>(assets.size()));
    }
    const kernels::term_columns t{off, ncoll, assets, coef};
    const std::size_t begin = rng() % rows;
    std::vector<health_cell> out(rows - begin);
    kernels::recompute_cells(t, prices, begin, rows, out.data());
    for (std::size_t r = begin; r < rows; ++r) {
      const health_cell want = plain_cell(t, prices, r);
      INFO("round " << round << " row " << r);
      CHECK(std::memcmp(&want, &out[r - begin], sizeof want) == 0);
    }
  }
}

TEST_CASE("band filter says a band stays only when the classifier keeps it", "[kernels]") {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(0, 1);
  const double specials[] = {0.0,    std::numeric_limits<double>::denorm_min(),
                             1e-310, 0x1p-900,
                             1e-200, 1.0,
                             1e200,  0x1p900,
                             1e308,  std::numeric_limits<double>::infinity()};
  for (int cfg = 0; cfg < 50; ++cfg) {
    band_config c;
    if (cfg > 0) {
      c.liquidatable = 0.5 + u(rng);
      c.danger = c.liquidatable * (1 + 0.2 * u(rng) + 1e-9);
      c.warn = c.danger * (1 + 0.2 * u(rng) + 1e-9);
      c.hysteresis = cfg % 5 == 0 ? 0.0 : 0.4 * u(rng);
    }
    const band_classifier cls(c);
    const kernels::band_filter filter(c);
    const double thresholds[] = {c.warn,
                                 c.danger,
                                 c.liquidatable,
                                 c.warn * (1 + c.hysteresis),
                                 c.danger * (1 + c.hysteresis),
                                 c.liquidatable * (1 + c.hysteresis)};
    int stayed = 0;
    for (int i = 0; i < 20000; ++i) {
      double den = i % 10 == 0 ? specials[rng() % std::size(specials)] : std::exp(u(rng) * 80 - 40);
      double hf;
      if (i % 3 == 0) {
        // Right at a threshold, a few ulps either way.
        hf = thresholds[rng() % 6];
        const int steps = static_cast<int>(rng() % 9) - 4;
        for (int s = 0; s < std::abs(steps); ++s) {
          hf = std::nextafter(hf, steps > 0 ? 10.0 : 0.0);
        }
      } else {
        hf = u(rng) * 3;
      }
      const double num = i % 17 == 0 ? specials[rng() % std::size(specials)] : hf * den;
      const health_cell cell{num, den};
      for (std::uint8_t b = 0; b < band_count; ++b) {
        if (filter.stays(b, num, den)) {
          ++stayed;
          INFO("num " << num << " den " << den << " band " << int(b));
          REQUIRE(cls.next(static_cast<band>(b), health_of(cell)) == static_cast<band>(b));
        }
      }
    }
    CHECK(stayed > 0);
  }
}
