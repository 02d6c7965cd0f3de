// Numbers for people, shared by the commands that print to a terminal (demo, replay).
// Pure, header-only; allocate the returned string.
#pragma once

#include <absl/strings/str_format.h>

#include <cmath>
#include <cstdint>
#include <string>

namespace cascade::server {

// 1234567.8 -> "1.23M"; compact USD amounts for a terminal table.
inline std::string usd(double v) {
  const double a = std::abs(v);
  if (a >= 1e9) return absl::StrFormat("%.2fB", v / 1e9);
  if (a >= 1e6) return absl::StrFormat("%.2fM", v / 1e6);
  if (a >= 1e3) return absl::StrFormat("%.1fk", v / 1e3);
  return absl::StrFormat("%.2f", v);
}

// 1234567 -> "1,234,567".
inline std::string thousands(std::uint64_t n) {
  std::string s = std::to_string(n);
  for (std::size_t i = s.size(); i > 3; i -= 3) s.insert(i - 3, ",");
  return s;
}

}  // namespace cascade::server
