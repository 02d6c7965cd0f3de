// Small text helpers of the load tool over std::string_view (Debian's abseil has its
// own string_view type, which its StrSplit and SimpleAtoi want). Pure; no allocation
// except the returned vector.
#pragma once

#include <charconv>
#include <cmath>
#include <string_view>
#include <type_traits>
#include <vector>

#include "proto/input_error.hpp"

namespace cascade::load {

using proto::detail::append;
using proto::detail::cat;

// The pieces of `s` between `sep`s, empty pieces left out.
inline std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  while (!s.empty()) {
    const std::size_t at = s.find(sep);
    const std::string_view piece = s.substr(0, at);
    if (!piece.empty()) out.push_back(piece);
    if (at == std::string_view::npos) break;
    s.remove_prefix(at + 1);
  }
  return out;
}

// The whole of `s` as a number (a finite one for floating point); false otherwise.
template <class T>
bool parse_number(std::string_view s, T& out) {
  T v{};
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size()) return false;
  if constexpr (std::is_floating_point_v<T>) {
    if (!std::isfinite(v)) return false;
  }
  out = v;
  return true;
}

}  // namespace cascade::load
