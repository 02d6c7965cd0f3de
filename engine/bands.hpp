// Health bands with hysteresis.
//
// Bands, from healthy to worst: healthy, warn, danger, liquidatable. A position enters
// a worse band as soon as its HF falls strictly below that band's threshold, and
// leaves it for a better one only once HF is at or above threshold * (1 + hysteresis),
// so a price that flickers around a threshold does not flood subscribers with alerts.
// Equivalently, the new band is the current band clamped into [entry_band(hf),
// exit_band(hf)]. Header-only, pure, no allocation.
#pragma once

#include <absl/status/status.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace cascade {

enum class band : std::uint8_t { healthy = 0, warn = 1, danger = 2, liquidatable = 3 };
inline constexpr std::size_t band_count = 4;

[[nodiscard]] constexpr std::string_view to_string(band b) {
  constexpr std::array<std::string_view, band_count> names{"healthy", "warn", "danger",
                                                           "liquidatable"};
  return names[static_cast<std::size_t>(b)];
}
[[nodiscard]] constexpr std::optional<band> parse_band(std::string_view s) {
  if (s == "healthy") return band::healthy;
  if (s == "warn") return band::warn;
  if (s == "danger") return band::danger;
  if (s == "liquidatable") return band::liquidatable;
  return std::nullopt;
}

struct band_config {
  double warn = 1.10;
  double danger = 1.02;
  double liquidatable = 1.00;
  double hysteresis = 0.005;  // relative: leave a band at threshold * (1 + hysteresis)

  // Thresholds must be finite with warn > danger > liquidatable > 0; hysteresis in
  // [0, 0.5).
  [[nodiscard]] absl::Status validate() const;
};

class band_classifier {
 public:
  explicit band_classifier(const band_config& c)
      : entry_{c.warn, c.danger, c.liquidatable},
        exit_{c.warn * (1 + c.hysteresis), c.danger * (1 + c.hysteresis),
              c.liquidatable * (1 + c.hysteresis)} {}

  // The band a position with health factor hf moves to from band `current`.
  // hf may be +inf (no debt); it is never NaN for a live position.
  [[nodiscard]] band next(band current, double hf) const {
    const int entry = (hf < entry_[0]) + (hf < entry_[1]) + (hf < entry_[2]);
    const int exit = (hf < exit_[0]) + (hf < exit_[1]) + (hf < exit_[2]);
    return static_cast<band>(std::clamp(static_cast<int>(current), entry, exit));
  }

 private:
  std::array<double, 3> entry_;
  std::array<double, 3> exit_;
};

inline absl::Status band_config::validate() const {
  const auto finite = [](double x) { return x > -1e308 && x < 1e308; };
  if (!finite(warn) || !finite(danger) || !finite(liquidatable) || !finite(hysteresis)) {
    return absl::InvalidArgumentError("bands: thresholds and hysteresis must be finite numbers");
  }
  if (!(liquidatable > 0 && danger > liquidatable && warn > danger)) {
    return absl::InvalidArgumentError(
        "bands: thresholds must satisfy warn > danger > liquidatable > 0");
  }
  if (!(hysteresis >= 0 && hysteresis < 0.5)) {
    return absl::InvalidArgumentError("bands: hysteresis must be in [0, 0.5)");
  }
  return absl::OkStatus();
}

}  // namespace cascade
