// Health kernels: the inner loops of a full recompute, separate from the book so they
// can be benchmarked and tuned on their own.
//
// Pure functions over spans; no allocation; callable from any thread on data it owns.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "engine/book.hpp"

namespace cascade::kernels {

// The term columns of a book (see book.hpp): per row an offset and the number of
// collateral terms; per term an asset and a coefficient.
struct term_columns {
  std::span<const std::uint32_t> offsets;   // rows + 1
  std::span<const std::uint16_t> ncoll;     // rows
  std::span<const std::uint16_t> assets;    // terms
  std::span<const double> coefficients;     // terms
};

// out[r - begin] = {sum of collateral coef * price, sum of debt coef * price} for every
// row r in [begin, end), summing in term order. The result is bit-identical to
// book::compute_cell for each row.
void recompute_cells(const term_columns& terms, std::span<const double> prices,
                     std::size_t begin, std::size_t end, health_cell* out);

}  // namespace cascade::kernels
