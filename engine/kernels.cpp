#include "engine/kernels.hpp"

namespace cascade::kernels {

void recompute_cells(const term_columns& terms, std::span<const double> prices,
                     std::size_t begin, std::size_t end, health_cell* out) {
  const std::uint32_t* off = terms.offsets.data();
  const std::uint16_t* ncoll = terms.ncoll.data();
  const std::uint16_t* asset = terms.assets.data();
  const double* coef = terms.coefficients.data();
  const double* p = prices.data();
  for (std::size_t r = begin; r < end; ++r) {
    const std::uint32_t b = off[r];
    const std::uint32_t mid = b + ncoll[r];
    const std::uint32_t e = off[r + 1];
    double num = 0.0;
    double den = 0.0;
    for (std::uint32_t k = b; k < mid; ++k) num += coef[k] * p[asset[k]];
    for (std::uint32_t k = mid; k < e; ++k) den += coef[k] * p[asset[k]];
    out[r - begin] = {num, den};
  }
}

}  // namespace cascade::kernels
