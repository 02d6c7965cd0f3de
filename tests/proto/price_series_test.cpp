#include "proto/price_series.hpp"

#include <catch2/catch.hpp>
#include <filesystem>

using cascade::proto::load_price_series;
using cascade::proto::parse_price_series;

TEST_CASE("price series: the three formats of the shared data", "[proto][prices]") {
  auto hourly = parse_price_series(
      "symbol,timestamp,USD_price\nWETH,1609463014882,735.8\nWETH,1609460789131,732.0\n", "h.csv");
  REQUIRE(hourly.ok());
  CHECK(hourly->format == "hourly");
  REQUIRE(hourly->points.size() == 2);
  CHECK(hourly->points[0].ts == Approx(1609460789.131));  // sorted by time
  CHECK(hourly->points[0].price == 732.0);

  auto klines = parse_price_series(
      "open_time_ms,open,high,low,close,volume_eth\r\n1584012660000,138.35,139.71,137.21,139.36,"
      "8781.2\r\n",
      "k.csv");
  REQUIRE(klines.ok());
  CHECK(klines->format == "klines");
  CHECK(klines->points[0].price == 139.36);
  CHECK(klines->points[0].ts == 1584012660.0);

  auto usd = parse_price_series(
      ",round,answer,start,update,answeredInRound\n0,1,229750276106,1706558123,1706558123,1\n1,2,"
      "229738000000,1706554523,0,2\n",
      "c.csv");
  REQUIRE(usd.ok());
  CHECK(usd->format == "chainlink");
  REQUIRE(usd->points.size() == 1);  // update == 0: the round never completed
  CHECK(usd->points[0].price == Approx(2297.50276106));
  auto eth = parse_price_series(
      ",round,answer,start,update,answeredInRound\n0,1,999692734093987600,1706484887,1706484887,"
      "1\n",
      "s.csv");
  CHECK(eth->points[0].price == Approx(0.9996927340939876));
  auto forced = parse_price_series(",round,answer,start,update,answeredInRound\n0,1,5000,1,1,1\n",
                                   "d.csv", 2);
  CHECK(forced->points[0].price == 50.0);
}

TEST_CASE("price series: bad files are refused with line and column",
          "[proto][prices][bad-input]") {
  struct bad_case {
    std::string text;
    std::string expect;
  };
  const std::vector<bad_case> cases{
      {"", "p.csv: empty file"},
      {"a,b,c\n1,2,3\n", "p.csv:1: unknown price series header"},
      {"symbol,timestamp,USD_price\nWETH,abc,1.0\n",
       "p.csv:2: column 'timestamp': 'abc' is not a number"},
      {"symbol,timestamp,USD_price\nWETH,1,-3\n",
       "p.csv:2: column 'USD_price': '-3' is not a number > 0"},
      {"symbol,timestamp,USD_price\nWETH,1,nan\n", "is not a number > 0"},
      {"symbol,timestamp,USD_price\nWETH,1\n", "p.csv:2: 2 fields, the header has 3"},
      {"symbol,timestamp,USD_price\n", "no prices after the header"},
      {"symbol,timestamp,USD_price\nWETH,-5,1.0\n",
       "p.csv:2: column 'timestamp': '-5' is not a time from 1970 to 9999-12-31 (unix "
       "milliseconds)"},
      {"open_time_ms,open,high,low,close\n1e30,1,1,1,1\n",
       "p.csv:2: column 'open_time_ms': '1e30' is not a time from 1970 to 9999-12-31"},
      {",round,answer,start,update\n0,1,5,1,253402300800\n",
       "p.csv:2: column 'update': '253402300800' is not a time from 1970 to 9999-12-31 (unix "
       "seconds)"},
  };
  for (const auto& c : cases) {
    const auto r = parse_price_series(c.text, "p.csv");
    INFO(c.expect);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(std::string(r.status().message()), Catch::Contains(c.expect));
  }
  CHECK_FALSE(parse_price_series("symbol,timestamp,USD_price\nX,1,1\n", "p.csv", 99).ok());
  CHECK_FALSE(load_price_series("/nonexistent/prices.csv").ok());
}

TEST_CASE("price series: every file in ../shared/data reads", "[proto][prices][data]") {
  const std::filesystem::path root = CASCADE_SHARED_DATA_DIR;
  if (!std::filesystem::exists(root / "prices_hourly_2021_2023")) {
    WARN("../shared/data is missing: skipped");
    return;
  }
  std::size_t files = 0;
  for (const char* dir : {"prices_hourly_2021_2023", "binance_ethusdt_1m_black_thursday",
                          "chainlink_rounds_sajanrajdev"}) {
    for (const auto& e : std::filesystem::directory_iterator(root / dir)) {
      const auto s = load_price_series(e.path().string());
      INFO(e.path().string() << ": " << s.status().message());
      REQUIRE(s.ok());
      CHECK(s->points.size() > 100);
      ++files;
    }
  }
  CHECK(files == 13);
  const auto steth =
      load_price_series((root / "chainlink_rounds_sajanrajdev/stETH_ETH_0x86392dC1.csv").string());
  double lowest = 2.0;
  for (const auto& p : steth->points) lowest = std::min(lowest, p.price);
  CHECK(lowest == Approx(0.93502).epsilon(1e-4));  // 2022-06-18, per the data README
  const auto eth = load_price_series(
      (root / "binance_ethusdt_1m_black_thursday/leg2_2020-03-13_0054-0323UTC.csv").string());
  double low_close = 1e9;
  for (const auto& p : eth->points) low_close = std::min(low_close, p.price);
  CHECK(low_close < 110.0);  // the crash to the 80s-90s on 13 March 2020
}

TEST_CASE("price series: points keep their file line; an hourly file names its symbol",
          "[proto][prices]") {
  auto h =
      parse_price_series("symbol,timestamp,USD_price\nWETH,2000,2.0\nWETH,1000,1.0\n", "h.csv");
  REQUIRE(h.ok());
  CHECK(h->symbol == "WETH");
  REQUIRE(h->points.size() == 2);
  CHECK(h->points[0].line == 3);  // sorted by time, each with the line it came from
  CHECK(h->points[1].line == 2);
  auto mixed =
      parse_price_series("symbol,timestamp,USD_price\nWETH,1000,1.0\nWBTC,2000,2.0\n", "m.csv");
  REQUIRE(mixed.ok());
  CHECK(mixed->symbol.empty());  // several symbols: no single asset
  auto rounds = parse_price_series(
      ",round,answer,start,update,answeredInRound\n0,1,100000000,5,0,1\n1,2,200000000,9,9,2\n",
      "c.csv");
  REQUIRE(rounds.ok());
  CHECK(rounds->symbol.empty());
  REQUIRE(rounds->points.size() == 1);  // the unfinished round (line 2) is dropped
  CHECK(rounds->points[0].line == 3);
}
