#include "proto/price_series.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "proto/input_error.hpp"

namespace cascade::proto {

namespace {

std::vector<std::string_view> split(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t comma = line.find(',', start);
    if (comma == std::string_view::npos) {
      out.push_back(line.substr(start));
      return out;
    }
    out.push_back(line.substr(start, comma - start));
    start = comma + 1;
  }
}

constexpr double max_unix_s = 253402300799.0;  // 9999-12-31T23:59:59Z

std::optional<double> number(std::string_view s) {
  double v = 0.0;
  const auto res = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || res.ec != std::errc{} || res.ptr != s.data() + s.size() || !std::isfinite(v)) {
    return std::nullopt;
  }
  return v;
}

}  // namespace

absl::StatusOr<price_series> parse_price_series(std::string_view text, std::string_view source,
                                                std::optional<int> decimals) {
  if (decimals && (*decimals < 0 || *decimals > 30)) {
    return detail::input_error(source, 0, "",
                               detail::cat("decimals ", *decimals, " is outside [0, 30]"));
  }
  std::vector<std::string_view> lines;
  for (std::size_t start = 0; start < text.size();) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    start = end + 1;
  }
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  if (lines.empty()) return detail::input_error(source, 0, "", "empty file: no header");

  const auto header = split(lines[0]);
  const auto column = [&](std::string_view name) -> std::optional<std::size_t> {
    const auto it = std::find(header.begin(), header.end(), name);
    if (it == header.end()) return std::nullopt;
    return static_cast<std::size_t>(it - header.begin());
  };
  price_series out;
  std::size_t ts_col = 0, price_col = 0;
  double ts_scale = 1.0;
  std::optional<std::size_t> update_col;
  std::optional<std::size_t> symbol_col;
  if (column("USD_price") && column("timestamp")) {
    out.format = "hourly";
    symbol_col = column("symbol");
    ts_col = *column("timestamp");
    price_col = *column("USD_price");
    ts_scale = 1e-3;
  } else if (column("open_time_ms") && column("close")) {
    out.format = "klines";
    ts_col = *column("open_time_ms");
    price_col = *column("close");
    ts_scale = 1e-3;
  } else if (column("answer") && column("update")) {
    out.format = "chainlink";
    ts_col = *column("update");
    price_col = *column("answer");
    update_col = ts_col;
  } else {
    return detail::input_error(
        source, 1, "",
        "unknown price series header: expected symbol,timestamp,USD_price (hourly), "
        "open_time_ms,...,close (klines) or ,round,answer,start,update (chainlink)");
  }

  for (std::size_t i = 1; i < lines.size(); ++i) {
    const auto fields = split(lines[i]);
    if (fields.size() != header.size()) {
      return detail::input_error(
          source, i + 1, "", detail::cat(fields.size(), " fields, the header has ", header.size()));
    }
    const auto ts = number(fields[ts_col]);
    if (!ts) {
      return detail::input_error(source, i + 1, detail::cat("column '", header[ts_col], "'"),
                                 detail::cat(detail::quoted(fields[ts_col]), " is not a number"));
    }
    if (update_col && *ts == 0.0) continue;  // a round that never completed
    // A price server refuses a tick's ts outside these; a replay must not find out
    // half-way through the file.
    if (const double t = *ts * ts_scale; !(t >= 0.0 && t <= max_unix_s)) {
      return detail::input_error(
          source, i + 1, detail::cat("column '", header[ts_col], "'"),
          detail::cat(detail::quoted(fields[ts_col]), " is not a time from 1970 to 9999-12-31 (unix ",
                      ts_scale == 1.0 ? "seconds" : "milliseconds", ")"));
    }
    const auto price = number(fields[price_col]);
    if (!price || !(*price > 0.0)) {
      return detail::input_error(
          source, i + 1, detail::cat("column '", header[price_col], "'"),
          detail::cat(detail::quoted(fields[price_col]), " is not a number > 0"));
    }
    out.points.push_back({*ts * ts_scale, *price, i + 1});
    if (symbol_col) {
      const std::string_view sym = fields[*symbol_col];
      if (out.points.size() == 1) {
        out.symbol = std::string(sym);
      } else if (out.symbol != sym) {
        symbol_col.reset();  // several symbols: the file names no single asset
        out.symbol.clear();
      }
    }
  }
  if (out.points.empty()) return detail::input_error(source, 0, "", "no prices after the header");
  if (out.format == "chainlink") {
    double largest = 0.0;
    for (const auto& p : out.points) largest = std::max(largest, p.price);
    const int d = decimals ? *decimals : (largest > 1e15 ? 18 : 8);
    const double scale = std::pow(10.0, -d);
    for (auto& p : out.points) p.price *= scale;
  }
  std::stable_sort(out.points.begin(), out.points.end(),
                   [](const price_point& a, const price_point& b) { return a.ts < b.ts; });
  return out;
}

absl::StatusOr<price_series> load_price_series(const std::string& path,
                                               std::optional<int> decimals) {
  auto text = detail::read_file(path);
  if (!text.ok()) return text.status();
  return parse_price_series(*text, path, decimals);
}

}  // namespace cascade::proto
