// Strong index types for the engine's dense tables.
//
// Assets and protocols are numbered densely from 0 in the order they are added to
// a market; a position's row is its slot in the book's columns (rows change only on
// compaction). Distinct types keep an asset id from being passed where a protocol id
// is expected. Header-only, no allocation, usable from any thread.
#pragma once

#include <absl/strings/string_view.h>

#include <compare>
#include <cstdint>
#include <functional>
#include <limits>
#include <string_view>

namespace cascade {

template <class Tag, class Rep>
struct strong_id {
  using rep_type = Rep;
  static constexpr Rep invalid_value = std::numeric_limits<Rep>::max();

  Rep value = invalid_value;

  constexpr strong_id() = default;
  constexpr explicit strong_id(Rep v) : value(v) {}
  template <class I>
  static constexpr strong_id from_index(I i) {
    return strong_id(static_cast<Rep>(i));
  }

  [[nodiscard]] constexpr bool valid() const { return value != invalid_value; }
  [[nodiscard]] constexpr std::size_t index() const { return value; }
  friend constexpr auto operator<=>(strong_id, strong_id) = default;
};

using asset_id = strong_id<struct asset_tag, std::uint16_t>;
using protocol_id = strong_id<struct protocol_tag, std::uint16_t>;

// A book row. Plain integer: rows index columns in hot loops.
using row_t = std::uint32_t;

// Debian's abseil keeps its own string_view type; hash-map lookups by view need it.
[[nodiscard]] inline absl::string_view key(std::string_view s) { return {s.data(), s.size()}; }

}  // namespace cascade

template <class Tag, class Rep>
struct std::hash<cascade::strong_id<Tag, Rep>> {
  std::size_t operator()(cascade::strong_id<Tag, Rep> id) const noexcept {
    return std::hash<Rep>{}(id.value);
  }
};
