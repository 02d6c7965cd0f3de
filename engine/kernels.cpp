#include "engine/kernels.hpp"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <array>

namespace cascade::kernels {

namespace {

// Term order is the contract: bit-identical to book::compute_cell, which rounds every
// product and then every sum (mul, then add). Two things can break that silently:
//  - the compiler fusing a product into the following add (GCC contracts across
//    statements by default): `rounded` pins each product to a register first;
//  - nothing else: selection (below) keeps each sum's operands and order.
[[gnu::always_inline]] inline double rounded(double x) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  __asm__("" : "+x"(x));
#elif defined(__GNUC__) && defined(__aarch64__)
  __asm__("" : "+w"(x));
#endif
  return x;
}

// Rows of up to four terms, the common shape, take a branch-free path: read four terms
// from the row's first (those past the row's end belong to later rows: they are
// computed but never summed), then add each product to num, to den or to neither
// under a mask, so that no branch depends on the row's shape.
#if defined(__AVX512F__) && defined(__AVX512VL__)
// Lane 0 of the accumulator is num, lane 1 den. Term k's two mask bits (2k: goes to
// num, 2k + 1: goes to den), for every (collateral count, term count) <= 4.
constexpr std::array<std::uint8_t, 25> lane_masks = [] {
  std::array<std::uint8_t, 25> m{};
  for (unsigned nc = 0; nc <= 4; ++nc) {
    for (unsigned len = nc; len <= 4; ++len) {
      unsigned bits = 0;
      for (unsigned k = 0; k < 4; ++k) {
        if (k < nc)
          bits |= 1u << (2 * k);
        else if (k < len)
          bits |= 2u << (2 * k);
      }
      m[nc * 5 + len] = static_cast<std::uint8_t>(bits);
    }
  }
  return m;
}();

inline __m128d term(const std::uint16_t* asset, const double* coef, const double* p,
                    std::uint32_t k) {
  return _mm_mul_pd(_mm_set1_pd(coef[k]), _mm_set1_pd(p[asset[k]]));
}

inline void short_row(const std::uint16_t* asset, const double* coef, const double* p,
                      std::uint32_t b, std::uint32_t nc, std::uint32_t len, health_cell* out) {
  const __m128d t0 = term(asset, coef, p, b);
  const __m128d t1 = term(asset, coef, p, b + 1);
  const __m128d t2 = term(asset, coef, p, b + 2);
  const __m128d t3 = term(asset, coef, p, b + 3);
  const unsigned m = lane_masks[nc * 5 + len];
  __m128d acc = _mm_setzero_pd();
  acc = _mm_mask_add_pd(acc, static_cast<__mmask8>(m), acc, t0);
  acc = _mm_mask_add_pd(acc, static_cast<__mmask8>(m >> 2), acc, t1);
  acc = _mm_mask_add_pd(acc, static_cast<__mmask8>(m >> 4), acc, t2);
  acc = _mm_mask_add_pd(acc, static_cast<__mmask8>(m >> 6), acc, t3);
  _mm_storeu_pd(&out->num, acc);
}
#else
inline void short_row(const std::uint16_t* asset, const double* coef, const double* p,
                      std::uint32_t b, std::uint32_t nc, std::uint32_t len, health_cell* out) {
  double num = 0.0;
  double den = 0.0;
  for (std::uint32_t k = 0; k < 4; ++k) {
    const double t = rounded(coef[b + k] * p[asset[b + k]]);
    const double n1 = num + t;
    const double d1 = den + t;
    num = k < nc ? n1 : num;
    den = (k >= nc && k < len) ? d1 : den;
  }
  *out = {num, den};
}
#endif

}  // namespace

void recompute_cells(const term_columns& terms, std::span<const double> prices, std::size_t begin,
                     std::size_t end, health_cell* out) {
  const std::uint32_t* off = terms.offsets.data();
  const std::uint16_t* ncoll = terms.ncoll.data();
  const std::uint16_t* asset = terms.assets.data();
  const double* coef = terms.coefficients.data();
  const double* p = prices.data();
  // The short path reads four terms from a row's first: rows from `tail` on might read
  // past the last term, so they take the plain loops.
  const std::size_t n_terms = terms.assets.size();
  std::size_t tail = end;
  while (tail > begin && std::size_t{off[tail - 1]} + 4 > n_terms) --tail;
  for (std::size_t r = begin; r < end; ++r) {
    const std::uint32_t b = off[r];
    const std::uint32_t e = off[r + 1];
    const std::uint32_t nc = ncoll[r];
    if (e - b <= 4 && r < tail) [[likely]] {
      short_row(asset, coef, p, b, nc, e - b, out + (r - begin));
      continue;
    }
    const std::uint32_t mid = b + nc;
    double num = 0.0;
    double den = 0.0;
    for (std::uint32_t k = b; k < mid; ++k) num += rounded(coef[k] * p[asset[k]]);
    for (std::uint32_t k = mid; k < e; ++k) den += rounded(coef[k] * p[asset[k]]);
    out[r - begin] = {num, den};
  }
}

namespace {

std::size_t settle_scalar(const health_cell* fresh, const std::uint8_t* bands, std::size_t begin,
                          std::size_t from, std::size_t to, const band_filter& filter,
                          health_cell* cells, row_t* pending, std::size_t count) {
  for (std::size_t i = from; i < to; ++i) {
    const std::size_t r = begin + i;
    const std::uint8_t b = bands[r];
    if (b == book::dead) continue;
    const health_cell c = fresh[i];
    if (filter.stays(b, c.num, c.den)) [[likely]] {
      cells[r] = c;
    } else {
      pending[count++] = static_cast<row_t>(r);
    }
  }
  return count;
}

#if defined(__AVX512F__)
// band_filter::stays for eight cells (num/den interleaved) and their live bands: bit j
// set when cell j certainly keeps its band.
class filter8 {
 public:
  explicit filter8(const band_filter& f) {
    const band_filter::bound* b = f.bounds();
    lo_ = _mm512_setr_pd(b[0].lo, b[1].lo, b[2].lo, b[3].lo, b[0].lo, b[1].lo, b[2].lo, b[3].lo);
    hi_ = _mm512_setr_pd(b[0].hi, b[1].hi, b[2].hi, b[3].hi, b[0].hi, b[1].hi, b[2].hi, b[3].hi);
  }

  [[nodiscard]] __mmask8 stays(__m512d v0, __m512d v1, __m512i band) const {
    const __m512d num =
        _mm512_permutex2var_pd(v0, _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14), v1);
    const __m512d den =
        _mm512_permutex2var_pd(v0, _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15), v1);
    const __m512i idx = _mm512_and_si512(band, _mm512_set1_epi64(3));
    const __m512d lo = _mm512_permutexvar_pd(idx, lo_);
    const __m512d hi = _mm512_permutexvar_pd(idx, hi_);
    __mmask8 ok = _mm512_cmp_pd_mask(den, _mm512_set1_pd(band_filter::den_min), _CMP_GE_OQ);
    ok = _mm512_mask_cmp_pd_mask(ok, den, _mm512_set1_pd(band_filter::den_max), _CMP_LE_OQ);
    ok = _mm512_mask_cmp_pd_mask(ok, num, _mm512_mul_pd(lo, den), _CMP_GE_OQ);
    return _mm512_mask_cmp_pd_mask(ok, num, _mm512_mul_pd(hi, den), _CMP_LT_OQ);
  }

  static __m512i load_bands(const std::uint8_t* b) {
    return _mm512_cvtepu8_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b)));
  }

 private:
  __m512d lo_;
  __m512d hi_;
};
#endif

}  // namespace

std::size_t settle_cells(const health_cell* fresh, const std::uint8_t* bands, std::size_t begin,
                         std::size_t n, const band_filter& filter, health_cell* cells,
                         row_t* pending) {
  std::size_t count = 0;
  std::size_t i = 0;
#if defined(__AVX512F__)
  // Eight rows at a time: when all eight are live and certainly keep their band, copy
  // their cells; otherwise judge them one by one.
  const filter8 f8(filter);
  const __m512i dead = _mm512_set1_epi64(book::dead);
  for (; i + 8 <= n; i += 8) {
    const std::size_t r = begin + i;
    const __m512d v0 = _mm512_loadu_pd(&fresh[i].num);
    const __m512d v1 = _mm512_loadu_pd(&fresh[i + 4].num);
    const __m512i b = filter8::load_bands(bands + r);
    const __mmask8 live = _mm512_cmpneq_epi64_mask(b, dead);
    if (live == 0xFF && f8.stays(v0, v1, b) == 0xFF) [[likely]] {
      _mm512_storeu_pd(&cells[r].num, v0);
      _mm512_storeu_pd(&cells[r + 4].num, v1);
    } else {
      count = settle_scalar(fresh, bands, begin, i, i + 8, filter, cells, pending, count);
    }
  }
#endif
  return settle_scalar(fresh, bands, begin, i, n, filter, cells, pending, count);
}

std::uint64_t unsettled(const health_cell* cells, const std::uint8_t* bands, std::size_t n,
                        const band_filter& filter) {
  std::uint64_t mask = 0;
  std::size_t j = 0;
#if defined(__AVX512F__)
  const filter8 f8(filter);
  for (; j + 8 <= n; j += 8) {
    const __mmask8 ok = f8.stays(_mm512_loadu_pd(&cells[j].num), _mm512_loadu_pd(&cells[j + 4].num),
                                 filter8::load_bands(bands + j));
    mask |= std::uint64_t{static_cast<std::uint8_t>(~ok)} << j;
  }
#endif
  for (; j < n; ++j) {
    if (!filter.stays(bands[j], cells[j].num, cells[j].den)) mask |= std::uint64_t{1} << j;
  }
  return mask;
}

}  // namespace cascade::kernels
