// Recorded price series, read from the CSV formats of ../shared/data, for volatility
// estimates and replays. The format is recognized from the header:
//   hourly:    symbol,timestamp,USD_price          (timestamp in unix ms)
//   klines:    open_time_ms,open,high,low,close,... (Binance; the close is used)
//   chainlink: ,round,answer,start,update,...      (answer / 10^decimals at `update`,
//              unix s; rows with update == 0 are dropped; decimals 18 when answers
//              exceed 1e15 (ETH-denominated feeds), else 8, unless given)
// Points come out sorted by time, each with its line in the file (for messages about a
// row). `symbol` is the hourly format's symbol column when every row has the same one
// (empty otherwise, and in the other formats, which do not name the asset). Pure
// functions; allocate; errors name the file, the line and the column.
#pragma once

#include <absl/status/statusor.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cascade::proto {

struct price_point {
  double ts = 0.0;       // unix seconds
  double price = 0.0;    // > 0
  std::size_t line = 0;  // 1-based line of the file it came from
};

struct price_series {
  std::string format;  // "hourly", "klines" or "chainlink"
  std::string symbol;  // the file's symbol column, when it has one value throughout
  std::vector<price_point> points;
};

[[nodiscard]] absl::StatusOr<price_series> parse_price_series(std::string_view text,
                                                              std::string_view source,
                                                              std::optional<int> decimals = {});
[[nodiscard]] absl::StatusOr<price_series> load_price_series(const std::string& path,
                                                             std::optional<int> decimals = {});

}  // namespace cascade::proto
