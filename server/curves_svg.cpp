#include "server/curves_svg.hpp"

#include <absl/strings/str_format.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "proto/input_error.hpp"

namespace cascade::server {

namespace {

using proto::detail::append;
using proto::detail::cat;

// Canvas and plot area (SVG user units = CSS pixels).
constexpr double width = 920.0;
constexpr double height = 500.0;
constexpr double left = 86.0;
constexpr double right = 24.0;
constexpr double top = 84.0;
constexpr double bottom = 56.0;
constexpr double plot_w = width - left - right;
constexpr double plot_h = height - top - bottom;

constexpr std::string_view liquidation_color = "#2563eb";
constexpr std::string_view seized_color = "#ea580c";
constexpr std::string_view bad_debt_color = "#dc2626";
constexpr std::string_view critical_color = "#991b1b";
constexpr std::string_view ink = "#1f2937";
constexpr std::string_view muted = "#6b7280";
constexpr std::string_view grid_color = "#e5e7eb";

// Ticks at 1, 2 or 5 x 10^k from lo up to at least hi, about n intervals.
struct axis {
  double lo = 0.0;
  double hi = 1.0;
  double step = 1.0;
  std::vector<double> ticks;
};

axis nice_axis(double lo, double hi, int n) {
  if (!(hi > lo)) hi = lo + 1.0;
  const double raw = (hi - lo) / n;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = 10.0 * mag;
  for (const double m : {1.0, 2.0, 5.0}) {
    if (m * mag >= raw * (1 - 1e-9)) {
      step = m * mag;
      break;
    }
  }
  axis a;
  a.step = step;
  a.lo = std::floor(lo / step + 1e-9) * step;
  a.hi = std::ceil(hi / step - 1e-9) * step;
  const auto count = static_cast<long>(std::lround((a.hi - a.lo) / step));
  for (long i = 0; i <= count; ++i) a.ticks.push_back(a.lo + static_cast<double>(i) * step);
  return a;
}

std::string escape(std::string_view s) {
  std::string out;
  for (const char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

std::string coord(double v) { return absl::StrFormat("%.1f", v); }

// Fewest decimals that still tell the ticks apart: $0, $500k, $1.5M ...
std::string usd_tick(double v, double step) {
  if (v == 0.0) return "$0";
  const double a = std::max(std::abs(v), step);
  double unit = 1.0;
  std::string_view suffix;
  if (a >= 1e9) {
    unit = 1e9;
    suffix = "B";
  } else if (a >= 1e6) {
    unit = 1e6;
    suffix = "M";
  } else if (a >= 1e3) {
    unit = 1e3;
    suffix = "k";
  }
  const int decimals =
      std::clamp(static_cast<int>(std::ceil(-std::log10(step / unit) - 1e-9)), 0, 6);
  return cat("$", absl::StrFormat("%.*f", decimals, v / unit), suffix);
}

std::string percent(double fraction, int decimals) {
  return absl::StrFormat("%.*f%%", decimals, fraction * 100.0);
}

std::string price_text(double p) {
  if (p >= 1000.0) {
    // Thousands separated: $3,000 and $60,000.
    std::string digits = absl::StrFormat("%.0f", p);
    for (auto i = static_cast<std::ptrdiff_t>(digits.size()) - 3; i > 0; i -= 3) {
      digits.insert(static_cast<std::size_t>(i), ",");
    }
    return "$" + digits;
  }
  if (p >= 1.0) return absl::StrFormat("$%.2f", p);
  return absl::StrFormat("$%.6g", p);
}

struct series {
  std::string_view id;
  std::string_view label;
  std::string_view color;
  std::string_view dash;  // empty: solid
  std::vector<std::pair<double, double>> points;
};

}  // namespace

std::string curves_svg(const curves_svg_input& in) {
  const asset_curves& c = *in.curves;
  std::vector<series> all = {
      {"liquidation-curve", "liquidation curve: liquidatable collateral", liquidation_color, "",
       {}},
      {"cascade-curve", "cascade curve: collateral seized", seized_color, "", {}},
      {"bad-debt-curve", "cascade bad debt", bad_debt_color, "6 4", {}},
  };
  for (const auto& p : c.liquidation) all[0].points.emplace_back(p.drop, p.collateral_usd);
  for (const auto& p : c.cascade) {
    all[1].points.emplace_back(p.shock, p.seized_usd);
    all[2].points.emplace_back(p.shock, p.bad_debt_usd);
  }

  double x_max = 0.0;
  double y_max = 0.0;
  for (const auto& s : all) {
    for (const auto& [x, y] : s.points) {
      if (std::isfinite(x)) x_max = std::max(x_max, x);
      if (std::isfinite(y)) y_max = std::max(y_max, y);
    }
  }
  const axis xa = nice_axis(0.0, x_max > 0.0 ? x_max : 1.0, 9);
  const axis ya = nice_axis(0.0, y_max > 0.0 ? y_max * 1.04 : 1.0, 6);
  const auto px = [&](double x) { return left + (x - xa.lo) / (xa.hi - xa.lo) * plot_w; };
  const auto py = [&](double y) { return top + plot_h - (y - ya.lo) / (ya.hi - ya.lo) * plot_h; };
  const int x_decimals = xa.step >= 0.01 - 1e-12 ? 0 : 1;

  std::string o;
  append(&o, R"(<?xml version="1.0" encoding="UTF-8"?>)", "\n");
  append(&o, R"(<svg xmlns="http://www.w3.org/2000/svg" width=")", width,
                  R"(" height=")", height, R"(" viewBox="0 0 )", width, " ", height,
                  R"(" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">)",
                  "\n");
  const std::string asset = escape(in.asset);
  append(&o, "<title>", asset, ": liquidation and cascade curves</title>\n");
  append(&o, R"(<rect width="100%" height="100%" fill="#ffffff"/>)", "\n");

  // Title and what the critical shock is.
  append(&o, R"(<text x=")", left, R"(" y="28" font-size="17" font-weight="bold" fill=")",
                  ink, R"(">)", asset, ": liquidation and cascade curves</text>\n");
  std::string sub = cat(asset, " at ", price_text(in.price), " · ");
  if (c.critical.shock) {
    append(&sub, "critical shock ", percent(*c.critical.shock, 1), " (",
                    c.critical.amplifies && c.critical.bad_debt
                        ? "amplifies and leaves bad debt"
                        : (c.critical.bad_debt ? "leaves bad debt" : "amplifies"),
                    ": final drop at least ", absl::StrFormat("%g", in.amplification),
                    "x the shock, or material bad debt)");
  } else {
    append(&sub, "no critical shock up to 90%");
  }
  append(&o, R"(<text x=")", left, R"(" y="48" fill=")", muted, R"(">)", sub,
                  "</text>\n");

  // Grid, ticks and axis labels.
  append(&o, R"(<g id="grid" stroke=")", grid_color, R"(" stroke-width="1">)", "\n");
  for (const double t : ya.ticks) {
    append(&o, R"(<line x1=")", coord(left), R"(" x2=")", coord(left + plot_w),
                    R"(" y1=")", coord(py(t)), R"(" y2=")", coord(py(t)), R"("/>)", "\n");
  }
  for (const double t : xa.ticks) {
    append(&o, R"(<line x1=")", coord(px(t)), R"(" x2=")", coord(px(t)), R"(" y1=")",
                    coord(top), R"(" y2=")", coord(top + plot_h), R"("/>)", "\n");
  }
  append(&o, "</g>\n");
  append(&o, R"(<g id="y-ticks" fill=")", muted, R"(" text-anchor="end">)", "\n");
  for (const double t : ya.ticks) {
    append(&o, R"(<text x=")", coord(left - 8), R"(" y=")", coord(py(t) + 4), R"(">)",
                    usd_tick(t, ya.step), "</text>\n");
  }
  append(&o, "</g>\n");
  append(&o, R"(<g id="x-ticks" fill=")", muted, R"(" text-anchor="middle">)", "\n");
  for (const double t : xa.ticks) {
    append(&o, R"(<text x=")", coord(px(t)), R"(" y=")", coord(top + plot_h + 18),
                    R"(">)", percent(t, x_decimals), "</text>\n");
  }
  append(&o, "</g>\n");
  append(&o, R"(<path d="M)", coord(left), " ", coord(top), " V", coord(top + plot_h),
                  " H", coord(left + plot_w), R"(" fill="none" stroke=")", ink,
                  R"(" stroke-width="1"/>)", "\n");
  append(&o, R"(<text id="x-label" x=")", coord(left + plot_w / 2), R"(" y=")",
                  coord(height - 12), R"(" text-anchor="middle" fill=")", ink, R"(">)",
                  "price drop of ", asset,
                  " (liquidation curve: drop; cascade curves: initial shock)</text>\n");
  append(&o, "<text id=\"y-label\" transform=\"translate(18 ", coord(top + plot_h / 2),
         ") rotate(-90)\" text-anchor=\"middle\" fill=\"", ink, "\">",
                  "USD (collateral at the dropped price)</text>\n");

  // The curves; the liquidation curve's area lightly filled.
  if (!all[0].points.empty()) {
    append(&o, R"(<polygon fill=")", liquidation_color, R"(" fill-opacity="0.08" points=")",
                    coord(px(all[0].points.front().first)), ",", coord(py(0.0)));
    for (const auto& [x, y] : all[0].points) append(&o, " ", coord(px(x)), ",", coord(py(y)));
    append(&o, " ", coord(px(all[0].points.back().first)), ",", coord(py(0.0)),
                    R"("/>)", "\n");
  }
  for (const auto& s : all) {
    append(&o, R"(<polyline id=")", s.id, R"(" fill="none" stroke=")", s.color,
                    R"(" stroke-width="2" stroke-linejoin="round")");
    if (!s.dash.empty()) append(&o, R"( stroke-dasharray=")", s.dash, R"(")");
    append(&o, R"( points=")");
    bool first = true;
    for (const auto& [x, y] : s.points) {
      append(&o, first ? "" : " ", coord(px(x)), ",", coord(py(y)));
      first = false;
    }
    append(&o, R"("/>)", "\n");
  }

  // The critical shock.
  if (c.critical.shock) {
    const double x = px(*c.critical.shock);
    append(&o, R"(<g id="critical-shock">)", "\n", R"(<line x1=")", coord(x),
                    R"(" x2=")", coord(x), R"(" y1=")", coord(top), R"(" y2=")",
                    coord(top + plot_h), R"(" stroke=")", critical_color,
                    R"(" stroke-width="1.5" stroke-dasharray="4 3"/>)", "\n");
    const bool flip = x > left + plot_w * 0.75;
    append(&o, R"(<text x=")", coord(flip ? x - 6 : x + 6), R"(" y=")", coord(top + 16),
                    R"(" text-anchor=")", flip ? "end" : "start", R"(" fill=")", critical_color,
                    R"(" font-weight="bold">critical shock )", percent(*c.critical.shock, 1),
                    "</text>\n</g>\n");
  }

  // Legend, in a row under the subtitle.
  append(&o, R"(<g id="legend" fill=")", ink, R"(">)", "\n");
  double lx = left;
  for (const auto& s : all) {
    append(&o, R"(<line x1=")", coord(lx), R"(" x2=")", coord(lx + 22),
                    R"(" y1="67" y2="67" stroke=")", s.color, R"(" stroke-width="2.5")");
    if (!s.dash.empty()) append(&o, R"( stroke-dasharray=")", s.dash, R"(")");
    append(&o, "/>\n", R"(<text x=")", coord(lx + 28), R"(" y="71">)", s.label,
                    "</text>\n");
    lx += 40.0 + 6.3 * static_cast<double>(s.label.size());
  }
  append(&o, "</g>\n</svg>\n");
  return o;
}

}  // namespace cascade::server
