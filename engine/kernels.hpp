// Health kernels: the inner loops of a full recompute and of band judgement, separate
// from the book so they can be benchmarked and tuned on their own.
//
// Pure functions over spans; no allocation; callable from any thread on data it owns.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>

#include "engine/bands.hpp"
#include "engine/book.hpp"

namespace cascade::kernels {

// The term columns of a book (see book.hpp): per row an offset and the number of
// collateral terms; per term an asset and a coefficient.
struct term_columns {
  std::span<const std::uint32_t> offsets;  // rows + 1
  std::span<const std::uint16_t> ncoll;    // rows
  std::span<const std::uint16_t> assets;   // terms
  std::span<const double> coefficients;    // terms
};

// out[r - begin] = {sum of collateral coef * price, sum of debt coef * price} for every
// row r in [begin, end), summing in term order. The result is bit-identical to
// book::compute_cell for each row.
void recompute_cells(const term_columns& terms, std::span<const double> prices, std::size_t begin,
                     std::size_t end, health_cell* out);

// A division-free, conservative test that a position keeps its band: stays(b, cell)
// is true only when band_classifier(config).next(b, health_of(cell)) == b. False means
// "ask the classifier" (the band may still stay). The bounds carry a 2^-40 relative
// margin, far above the rounding of num / den and of the products below, so the test
// never disagrees with the classifier; cells whose HF is within that margin of a
// threshold, or whose den is not a normal number (or 0 with band healthy), take the
// exact path. Thresholds outside [2^-30, 2^30] disable the test (always false).
class band_filter {
 public:
  explicit band_filter(const band_config& c) {
    constexpr double margin = 0x1p-40;
    constexpr double inf = std::numeric_limits<double>::infinity();
    const double h = 1 + c.hysteresis;
    const auto sane = [](double t) { return t >= 0x1p-30 && t <= 0x1p30; };
    if (!(sane(c.warn) && sane(c.danger) && sane(c.liquidatable) && sane(c.warn * h))) {
      for (bound& x : bounds_) x = {inf, -inf};  // never stays: always ask the classifier
      return;
    }
    // Band b stays iff entry(b) <= hf < exit(b - 1): see band_classifier::next.
    bounds_[0] = {c.warn * (1 + margin), inf};
    bounds_[1] = {c.danger * (1 + margin), c.warn * h * (1 - margin)};
    bounds_[2] = {c.liquidatable * (1 + margin), c.danger * h * (1 - margin)};
    bounds_[3] = {-inf, c.liquidatable * h * (1 - margin)};
  }

  // b is a live band (0..3).
  [[nodiscard]] bool stays(std::uint8_t b, double num, double den) const {
    // One unsigned compare: den (>= 0) lies in [2^-900, 2^900], where the products
    // below neither underflow nor overflow.
    if (std::bit_cast<std::uint64_t>(den) - den_min_bits <= den_span_bits) [[likely]] {
      const bound& x = bounds_[b & 3];
      return num >= x.lo * den && num < x.hi * den;
    }
    return den == 0.0 && b == 0;  // HF is +inf: healthy stays healthy
  }

  // Band b stays when lo[b] * den <= num < hi[b] * den, den in [2^-900, 2^900].
  struct bound {
    double lo;
    double hi;
  };
  [[nodiscard]] const bound* bounds() const { return bounds_; }
  static constexpr double den_min = 0x1p-900;
  static constexpr double den_max = 0x1p900;

 private:
  static constexpr std::uint64_t den_min_bits = std::bit_cast<std::uint64_t>(den_min);
  static constexpr std::uint64_t den_span_bits =
      std::bit_cast<std::uint64_t>(den_max) - den_min_bits;
  bound bounds_[4];
};

// After a recompute of rows [begin, begin + n): for every live row (bands[r] != dead)
// whose band certainly stays, copies fresh[r - begin] into cells[r]; lists every other
// live row in `pending` (ascending) and leaves its cell alone. Returns the number of
// rows listed. Dead rows are untouched.
std::size_t settle_cells(const health_cell* fresh, const std::uint8_t* bands, std::size_t begin,
                         std::size_t n, const band_filter& filter, health_cell* cells,
                         row_t* pending);

// For n <= 64 cells, each with its live band: a mask with bit j set for every cell
// whose band may change (band_filter::stays would not clear it), to be judged exactly.
[[nodiscard]] std::uint64_t unsettled(const health_cell* cells, const std::uint8_t* bands,
                                      std::size_t n, const band_filter& filter);

}  // namespace cascade::kernels
