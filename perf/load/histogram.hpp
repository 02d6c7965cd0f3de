// A log-linear latency histogram in the manner of HdrHistogram: values (nanoseconds,
// any uint64) fall into buckets that are exact below 2^sub_bits and, above, split every
// power of two into 2^(sub_bits-1) equal parts, so a bucket is never wider than
// 1/2^(sub_bits-1) of its values (0.8% with sub_bits = 8). The exact minimum, maximum,
// count and sum are kept beside the buckets.
//
// One thread records into one histogram; merge() adds another's counts. Allocates once
// at construction (about 60 KiB); throws nothing after that.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace cascade::load {

class histogram {
 public:
  static constexpr unsigned sub_bits = 8;
  static constexpr std::uint64_t half = std::uint64_t{1} << (sub_bits - 1);

  histogram() : counts_(bucket_of(std::numeric_limits<std::uint64_t>::max()) + 1, 0) {}

  void record(std::uint64_t v) {
    ++counts_[bucket_of(v)];
    ++count_;
    sum_ += static_cast<double>(v);
    min_ = std::min(min_, v);
    max_ = std::max(max_, v);
  }
  // A signed sample: negative ones (clocks that disagree) are counted apart, not recorded.
  void record_signed(std::int64_t v) {
    if (v < 0) {
      ++negative_;
      return;
    }
    record(static_cast<std::uint64_t>(v));
  }

  void merge(const histogram& o) {
    for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += o.counts_[i];
    count_ += o.count_;
    negative_ += o.negative_;
    sum_ += o.sum_;
    min_ = std::min(min_, o.min_);
    max_ = std::max(max_, o.max_);
  }

  // The highest value of the first bucket at which ceil(q * count) samples are reached
  // (q in [0, 1]), clamped to the exact min and max; the exact maximum for q = 1; 0 when
  // empty.
  [[nodiscard]] std::uint64_t quantile(double q) const {
    if (count_ == 0) return 0;
    if (q >= 1.0) return max_;
    const auto rank = static_cast<std::uint64_t>(
        std::max(1.0, std::ceil(static_cast<double>(count_) * std::max(q, 0.0))));
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= rank) return std::clamp(highest_in(i), min_, max_);
    }
    return max_;
  }

  [[nodiscard]] std::uint64_t count() const { return count_; }
  [[nodiscard]] std::uint64_t negative() const { return negative_; }
  [[nodiscard]] std::uint64_t min() const { return count_ == 0 ? 0 : min_; }
  [[nodiscard]] std::uint64_t max() const { return max_; }
  [[nodiscard]] double mean() const { return count_ == 0 ? 0.0 : sum_ / static_cast<double>(count_); }

  // Bucket arithmetic, public for the tests.
  [[nodiscard]] static std::size_t bucket_of(std::uint64_t v) {
    if (v < 2 * half) return static_cast<std::size_t>(v);
    const unsigned shift = static_cast<unsigned>(std::bit_width(v)) - sub_bits;
    return static_cast<std::size_t>(shift * half + (v >> shift));
  }
  [[nodiscard]] static std::uint64_t lowest_in(std::size_t b) {
    if (b < 2 * half) return b;
    const std::uint64_t shift = b / half - 1;
    return (b - shift * half) << shift;
  }
  [[nodiscard]] static std::uint64_t highest_in(std::size_t b) {
    if (b < 2 * half) return b;
    const std::uint64_t shift = b / half - 1;
    return lowest_in(b) + ((std::uint64_t{1} << shift) - 1);
  }

 private:
  std::vector<std::uint64_t> counts_;
  std::uint64_t count_ = 0;
  std::uint64_t negative_ = 0;
  double sum_ = 0.0;
  std::uint64_t min_ = std::numeric_limits<std::uint64_t>::max();
  std::uint64_t max_ = 0;
};

}  // namespace cascade::load
