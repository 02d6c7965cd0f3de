#include "proto/config.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "engine/oracle.hpp"
#include "proto/default_config.hpp"
#include "proto/positions_csv.hpp"
#include "support/fixtures.hpp"

namespace {

using cascade::proto::load_config_file;
using cascade::proto::load_default_config;
using cascade::proto::parse_config;
using cascade::testing::aid;
using cascade::testing::must;
using cascade::testing::pid;

std::string source_path(const char* rel) { return std::string(CASCADE_SOURCE_DIR) + "/" + rel; }

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

using cascade::testing::minimal_config_toml;
constexpr std::string_view minimal = minimal_config_toml;

}  // namespace

TEST_CASE("a full config decodes every section", "[proto][config]") {
  const auto cfg = must(load_config_file(source_path("tests/data/config_good.toml")));
  CHECK(cfg.server.bind == "0.0.0.0");
  CHECK(cfg.server.port == 0);
  CHECK(cfg.book.bands.warn == 1.2);
  CHECK(cfg.book.bands.danger == 1.05);
  CHECK(cfg.book.bands.liquidatable == 1.0);
  CHECK(cfg.book.bands.hysteresis == 0.01);
  CHECK(cfg.book.scan_fraction == 0.25);
  CHECK(cfg.book.anchor_updates == 128);
  CHECK(cfg.book.anchor_range == 2.0);
  CHECK(cfg.book.max_legs == 16);
  CHECK(cfg.positions.generate == 0);
  // Resolved against the config file's directory.
  CHECK(cfg.positions.file ==
        (std::filesystem::path(source_path("tests/data")) / "positions_good.csv")
            .lexically_normal()
            .string());

  const cascade::market& m = cfg.mkt;
  REQUIRE(m.asset_count() == 5);
  CHECK(m.asset(aid(m, "ETH")).price == 3000.0);  // an integer where a float is expected
  CHECK(m.asset(aid(m, "WBTC")).liquidity->quote == 120000000.0);
  CHECK_FALSE(m.asset(aid(m, "USDC")).liquidity.has_value());
  REQUIRE(cfg.betas.size() == 5);
  CHECK(cfg.betas[aid(m, "ETH").index()] == 1.2);
  CHECK(cfg.betas[aid(m, "WBTC").index()] == 0.9);
  CHECK(cfg.betas[aid(m, "stETH").index()] == 1.0);  // default
  CHECK(cfg.betas[aid(m, "USDC").index()] == 0.0);

  REQUIRE(m.protocol_count() == 4);
  const cascade::protocol& maker = m.get_protocol(pid(m, "maker"));
  CHECK(maker.kind == cascade::protocol_kind::cdp);
  CHECK(maker.close_factor == 1.0);
  CHECK(maker.threshold(aid(m, "ETH")) == 0.6667);
  CHECK(maker.params(aid(m, "USDC")) == nullptr);
  // liquidation_bonus is optional (0).
  CHECK(m.get_protocol(pid(m, "compound-v3")).params(aid(m, "WBTC"))->liquidation_bonus == 0.0);

  // The positions file it names loads into a book with its options.
  const auto ps = must(cascade::proto::load_positions_csv(cfg.positions.file, m));
  cascade::book b(m, cfg.book);
  must(b.upsert(ps));
  CHECK(b.size() == ps.size());
}

TEST_CASE("config/default.toml loads from disk and embedded", "[proto][config]") {
  const std::string path = source_path("config/default.toml");
  const auto from_disk = must(load_config_file(path));
  CHECK(from_disk.mkt.asset_count() > 0);
  CHECK(from_disk.mkt.protocol_count() > 0);
  CHECK(from_disk.betas.size() == from_disk.mkt.asset_count());
  CHECK((from_disk.positions.generate > 0) != !from_disk.positions.file.empty());

  // The embedded copy is the file as of this build.
  CHECK(cascade::proto::default_config_text() == read(path));
  const auto embedded = must(load_default_config());
  CHECK(embedded.mkt.asset_count() == from_disk.mkt.asset_count());
  CHECK(embedded.mkt.protocol_count() == from_disk.mkt.protocol_count());
  CHECK(embedded.server.port == from_disk.server.port);
  CHECK(embedded.positions.generate == from_disk.positions.generate);
  CHECK(embedded.positions.seed == from_disk.positions.seed);
  CHECK(embedded.source == "default.toml (embedded)");
}

TEST_CASE("config defaults apply to optional sections and keys", "[proto][config]") {
  const auto cfg = must(parse_config(minimal, "minimal.toml", ""));
  CHECK(cfg.server.bind == "127.0.0.1");
  CHECK(cfg.server.port == 8080);
  CHECK(cfg.book.scan_fraction == cascade::book_options{}.scan_fraction);
  CHECK(cfg.book.bands.warn == cascade::band_config{}.warn);
  CHECK(cfg.positions.generate == 1000);
  CHECK(cfg.positions.seed == 42);
  CHECK(cfg.positions.file.empty());
  CHECK(cfg.betas == std::vector<double>{1.0});
  CHECK(cfg.source == "minimal.toml");
}

TEST_CASE("positions.file resolves against base_dir unless absolute", "[proto][config]") {
  std::string text(minimal);
  text.replace(text.find("generate = 1000"), 15, R"(file = "books/p.csv")");
  CHECK(must(parse_config(text, "c.toml", "/etc/cascade")).positions.file ==
        "/etc/cascade/books/p.csv");
  CHECK(must(parse_config(text, "c.toml", "")).positions.file == "books/p.csv");
  text.replace(text.find("books/p.csv"), 11, "/data/p.csv");
  CHECK(must(parse_config(text, "c.toml", "/etc/cascade")).positions.file == "/data/p.csv");
}

TEST_CASE("config errors name the file, line, key and reason", "[proto][config]") {
  std::string text(minimal);
  text.replace(text.find("price = 2000"), 12, "price = 2000\nbeta = nan");
  const auto bad = parse_config(text, "c.toml", "");
  REQUIRE_FALSE(bad.ok());
  CHECK(std::string(bad.status().message()) ==
        "c.toml:8: assets[0].beta: beta must be a finite number");

  const auto missing = load_config_file(source_path("tests/data/no_such.toml"));
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == absl::StatusCode::kNotFound);
  CHECK_THAT(std::string(missing.status().message()), Catch::Contains("no_such.toml"));
}

TEST_CASE("a derived asset decodes from an inline table or a sub-table", "[proto][config]") {
  std::string text(minimal);
  text += R"(
[[assets]]
symbol = "stETH"
price = 1990.0
derived = { base = "ETH", ratio_pool = { base = 20000.0, quote = 19900.0 }, sell_through = false }
beta = 1.1

[[assets]]
symbol = "BTC"
price = 40000

[[assets]]
symbol = "WBTC"
price = 40000
[assets.derived]
base = "BTC"
)";
  const auto cfg = must(parse_config(text, "derived.toml", ""));
  const cascade::market& m = cfg.mkt;
  REQUIRE(m.asset_count() == 4);
  CHECK(m.has_derived());
  CHECK_FALSE(m.base_of(aid(m, "ETH")).has_value());
  CHECK(m.base_of(aid(m, "stETH")) == aid(m, "ETH"));
  CHECK(m.base_of(aid(m, "WBTC")) == aid(m, "BTC"));

  const cascade::asset_spec& steth = m.asset(aid(m, "stETH"));
  REQUIRE(steth.derived.has_value());
  CHECK(steth.derived->base == "ETH");
  REQUIRE(steth.derived->ratio_pool.has_value());
  CHECK(steth.derived->ratio_pool->base == 20000.0);
  CHECK(steth.derived->ratio_pool->quote == 19900.0);
  CHECK_FALSE(steth.derived->sell_through);
  CHECK_FALSE(steth.liquidity.has_value());

  // Omitted: a fixed peg, sold through to the base.
  const cascade::asset_spec& wbtc = m.asset(aid(m, "WBTC"));
  REQUIRE(wbtc.derived.has_value());
  CHECK(wbtc.derived->base == "BTC");
  CHECK_FALSE(wbtc.derived->ratio_pool.has_value());
  CHECK(wbtc.derived->sell_through);

  CHECK(cfg.betas == std::vector<double>{1.0, 1.1, 1.0, 1.0});
}

TEST_CASE("derived errors point at the key inside the derived table", "[proto][config]") {
  const auto with = [](std::string_view derived) {
    std::string text(minimal);
    text += "\n[[assets]]\nsymbol = \"stETH\"\nprice = 1990.0\nderived = ";
    text += derived;
    text += "\n";
    return text;
  };
  const auto message = [&](std::string_view derived) {
    const auto r = parse_config(with(derived), "c.toml", "");
    REQUIRE_FALSE(r.ok());
    return std::string(r.status().message());
  };
  CHECK(
      message(R"({ base = "ETH", ratio_pool = { base = 1.0, quote = 0.995, k = 1 } })") ==
      "c.toml:19: assets[1].derived.ratio_pool.k: unknown key 'k' (expected one of: base, quote)");
  CHECK(message(R"({ base = 1 })") ==
        "c.toml:19: assets[1].derived.base: expected a string, got an integer");
  CHECK(message(R"({ base = "ETH", ratio_pool = { base = 1.0 } })") ==
        "c.toml:19: assets[1].derived.ratio_pool: missing required key 'quote'");
  CHECK(message(R"("ETH")") == "c.toml:19: assets[1].derived: expected a table, got a string");
  CHECK(message(R"({ base = "stETH" })") ==
        "c.toml:19: assets[1].derived.base: asset 'stETH': derived: unknown base asset 'stETH' "
        "(list it before its derivatives)");
}

namespace {

// The minimal config with a second protocol, then `oracle` (TOML text) appended.
std::string with_oracle(std::string_view oracle) {
  std::string text(minimal);
  text += R"(
[[protocols]]
name = "vault"
kind = "cdp"
close_factor = 1.0
full_liquidation_hf = 1.0
assets = { ETH = { liquidation_threshold = 0.66, liquidation_bonus = 0.13 } }
)";
  text += oracle;
  return text;
}

// The 1-based line of the first occurrence of `needle` in `text`.
std::size_t line_of(std::string_view text, std::string_view needle) {
  const std::size_t at = text.find(needle);
  REQUIRE(at != std::string_view::npos);
  return 1 + static_cast<std::size_t>(std::count(text.begin(), text.begin() + at, '\n'));
}

}  // namespace

TEST_CASE("an [oracle] table with two feeds decodes", "[proto][config][oracle]") {
  const std::string text = with_oracle(R"(
[oracle]
max_age_s = 60
outlier = 0.05
max_move = 0.2
divergence = 0.01

[[oracle.feed]]
protocol = "lend"
asset = "ETH"
sources = ["chainlink", "uniswap"]
deviation = 0.005
heartbeat_s = 3600
stale_s = 7200
min_sources = 2

[[oracle.feed]]
protocol = "vault"
asset = "ETH"
delay_s = 3600
heartbeat_s = 3600
deviation = 1e9
)");
  const auto cfg = must(parse_config(text, "oracle.toml", ""));
  const cascade::oracle_config& o = cfg.oracle;
  CHECK(o.rules.max_age_s == 60.0);
  CHECK(o.rules.outlier == 0.05);
  CHECK(o.rules.max_move == 0.2);
  CHECK(o.divergence == 0.01);
  REQUIRE(o.feeds.size() == 2);
  CHECK(o.feeds[0].protocol == "lend");
  CHECK(o.feeds[0].asset == "ETH");
  CHECK(o.feeds[0].sources == std::vector<std::string>{"chainlink", "uniswap"});
  CHECK(o.feeds[0].deviation == 0.005);
  CHECK(o.feeds[0].heartbeat_s == 3600.0);
  CHECK(o.feeds[0].stale_s == 7200.0);
  CHECK(o.feeds[0].min_sources == 2);
  CHECK(o.feeds[0].delay_s == 0.0);
  CHECK(o.feeds[1].protocol == "vault");
  CHECK(o.feeds[1].sources.empty());
  CHECK(o.feeds[1].delay_s == 3600.0);
  CHECK(o.feeds[1].deviation == 1e9);
  CHECK(o.feeds[1].min_sources == 1);
  // It builds against the market it came with.
  const auto set = must(cascade::oracle_set::make(cfg.mkt, o));
  CHECK(set.has_feeds(aid(cfg.mkt, "ETH")));
  CHECK(set.direct_protocols(aid(cfg.mkt, "ETH")).empty());
}

TEST_CASE("without [oracle] the defaults apply and there are no feeds", "[proto][config][oracle]") {
  const auto cfg = must(parse_config(minimal, "minimal.toml", ""));
  CHECK(cfg.oracle.feeds.empty());
  CHECK(cfg.oracle.rules.outlier == cascade::source_rules{}.outlier);
  CHECK(cfg.oracle.divergence == cascade::oracle_config{}.divergence);
  const auto dflt = must(load_config_file(source_path("config/default.toml")));
  CHECK(dflt.oracle.feeds.empty());
}

TEST_CASE("bad [oracle] values are refused naming the key and its line",
          "[proto][config][oracle][bad-input]") {
  struct bad {
    std::string oracle;   // appended TOML
    std::string at;       // the text on the offending line
    std::string message;  // after "c.toml:LINE: "
  };
  const std::string feed = "\n[[oracle.feed]]\nprotocol = \"vault\"\nasset = \"ETH\"\n";
  const std::vector<bad> cases{
      {"\n[oracle]\nmax_age_s = -1\n", "max_age_s = -1",
       "oracle.max_age_s: max_age_s -1 must be a finite number >= 0"},
      {"\n[oracle]\noutlier = 1.0\n", "outlier = 1.0",
       "oracle.outlier: outlier 1 is outside [0, 1)"},
      {"\n[oracle]\nmax_move = -0.5\n", "max_move = -0.5",
       "oracle.max_move: max_move -0.5 is outside [0, 1)"},
      {"\n[oracle]\ndivergence = \"2%\"\n",
       "divergence = ", "oracle.divergence: expected a number, got a string"},
      {"\n[oracle]\nmax_age = 60\n", "max_age = 60",
       "oracle.max_age: unknown key 'max_age' (expected one of: max_age_s, outlier, max_move, "
       "divergence, oracle_only, feed)"},
      {"\n[oracle]\nfeed = 3\n", "feed = 3",
       "oracle.feed: expected an array of tables, got an integer"},
      {feed + "deviation = -0.01\n", "deviation = -0.01",
       "oracle.feed[0].deviation: oracle feed 'vault'/'ETH': deviation -0.01 must be a finite "
       "number >= 0"},
      {feed + "heartbeat_s = nan\n", "heartbeat_s = nan",
       "oracle.feed[0].heartbeat_s: oracle feed 'vault'/'ETH': heartbeat_s nan must be a finite "
       "number >= 0"},
      {feed + "delay_s = -1\n", "delay_s = -1",
       "oracle.feed[0].delay_s: oracle feed 'vault'/'ETH': delay_s -1 must be a finite "
       "number >= 0"},
      {feed + "stale_s = inf\n", "stale_s = inf",
       "oracle.feed[0].stale_s: oracle feed 'vault'/'ETH': stale_s inf must be a finite "
       "number >= 0"},
      {feed + "min_sources = 0\n", "min_sources = 0",
       "oracle.feed[0].min_sources: oracle feed 'vault'/'ETH': min_sources 0 must be >= 1"},
      {feed + "min_sources = 1.5\n", "min_sources = 1.5",
       "oracle.feed[0].min_sources: expected an integer, got a float"},
      {feed + "sources = [\"a\", 2]\n",
       "sources = ", "oracle.feed[0].sources[1]: expected a string, got an integer"},
      {feed + "sources = [\"a\", \"a\"]\n",
       "sources = ", "oracle.feed[0].sources: oracle feed 'vault'/'ETH': sources names 'a' twice"},
      {"\n[[oracle.feed]]\nprotocol = \"vault\"\n", "[[oracle.feed]]",
       "oracle.feed[0]: missing required key 'asset'"},
      {"\n[[oracle.feed]]\nprotocol = \"bank\"\nasset = \"ETH\"\n", "protocol = \"bank\"",
       "oracle.feed[0].protocol: oracle feed 'bank'/'ETH': unknown protocol 'bank'"},
      {"\n[[oracle.feed]]\nprotocol = \"vault\"\nasset = \"BTC\"\n", "asset = \"BTC\"",
       "oracle.feed[0].asset: oracle feed 'vault'/'BTC': unknown asset 'BTC'"},
      {feed + "delay = 3600\n", "delay = 3600",
       "oracle.feed[0].delay: unknown key 'delay' (expected one of: protocol, asset, sources, "
       "deviation, heartbeat_s, delay_s, stale_s, min_sources)"},
  };
  for (const bad& b : cases) {
    const std::string text = with_oracle(b.oracle);
    INFO(text);
    const auto r = parse_config(text, "c.toml", "");
    REQUIRE_FALSE(r.ok());
    CHECK(std::string(r.status().message()) ==
          "c.toml:" + std::to_string(line_of(text, b.at)) + ": " + b.message);
  }
}

namespace {

// The minimal config plus a WBTC asset whose body (TOML lines) is `body`.
std::string with_wbtc(std::string_view body) {
  std::string text(minimal);
  text += "\n[[assets]]\nsymbol = \"WBTC\"\nprice = 50000.0\n";
  text += body;
  return text;
}

}  // namespace

TEST_CASE("an asset's venues and withdrawal decode from [[assets]]", "[proto][config][liquidity]") {
  const std::string text = with_wbtc(R"(
[[assets.venues]]
name = "univ3"
pool = { base = 100.0, quote = 5000000.0 }

[[assets.venues]]
name = "binance"
depth = [{ drop = 0.01, usd = 2e6 }, { drop = 0.05, usd = 8e6 }]

[assets.withdrawal]
drawdown_sensitivity = 2.0
volatility_sensitivity = 0.5
floor = 0.2
half_life_s = 1800
)");
  const auto cfg = must(parse_config(text, "venues.toml", ""));
  const cascade::asset_spec& w = cfg.mkt.asset(aid(cfg.mkt, "WBTC"));
  REQUIRE(w.venues.has_value());
  REQUIRE(w.venues->venues.size() == 2);
  CHECK(w.venues->venues[0].name == "univ3");
  REQUIRE(w.venues->venues[0].cp.has_value());
  CHECK(w.venues->venues[0].cp->base == 100.0);
  CHECK(w.venues->venues[0].cp->quote == 5e6);
  CHECK(w.venues->venues[1].name == "binance");
  CHECK_FALSE(w.venues->venues[1].cp.has_value());
  REQUIRE(w.venues->venues[1].depth.size() == 2);
  CHECK(w.venues->venues[1].depth[1].drop == 0.05);
  CHECK(w.venues->venues[1].depth[1].usd == 8e6);
  CHECK(w.venues->withdrawal.drawdown_sensitivity == 2.0);
  CHECK(w.venues->withdrawal.volatility_sensitivity == 0.5);
  CHECK(w.venues->withdrawal.floor == 0.2);
  CHECK(w.venues->withdrawal.half_life_s == 1800.0);
  // The asset without venues keeps none.
  CHECK_FALSE(cfg.mkt.asset(aid(cfg.mkt, "ETH")).venues.has_value());
}

TEST_CASE("bad venues and withdrawal are refused naming the key and its line",
          "[proto][config][liquidity][bad-input]") {
  struct bad {
    std::string body;
    std::string at;
    std::string message;
  };
  const std::string venue = "\n[[assets.venues]]\nname = \"amm\"\n";
  const std::vector<bad> cases{
      {"venues = 3\n", "venues = 3", "assets[1].venues: expected an array of tables, got an integer"},
      {"\n[[assets.venues]]\npool = { base = 1.0, quote = 50000.0 }\n", "[[assets.venues]]",
       "assets[1].venues[0]: missing required key 'name'"},
      {venue + "type = \"cp\"\n", "type = ",
       "assets[1].venues[0].type: unknown key 'type' (expected one of: name, pool, depth)"},
      {venue + "depth = [{ drop = 0.01 }]\n", "depth = ",
       "assets[1].venues[0].depth[0]: missing required key 'usd'"},
      {venue + "depth = [{ drop = \"1%\", usd = 1e6 }]\n", "depth = ",
       "assets[1].venues[0].depth[0].drop: expected a number, got a string"},
      {"\n[assets.withdrawal]\nfloor = 0.5\n", "[assets.withdrawal]",
       "assets[1].withdrawal: withdrawal applies to venues: give the asset venues"},
      {venue + "pool = { base = 1.0, quote = 50000.0 }\n[assets.withdrawal]\nhalf_life = 60\n",
       "half_life = 60",
       "assets[1].withdrawal.half_life: unknown key 'half_life' (expected one of: "
       "drawdown_sensitivity, volatility_sensitivity, floor, half_life_s)"},
  };
  for (const bad& b : cases) {
    const std::string text = with_wbtc(b.body);
    INFO(text);
    const auto r = parse_config(text, "c.toml", "");
    REQUIRE_FALSE(r.ok());
    CHECK(std::string(r.status().message()) ==
          "c.toml:" + std::to_string(line_of(text, b.at)) + ": " + b.message);
  }
  // Values the liquidity rules refuse (validated with the asset) name the venue.
  for (const std::string& body :
       {venue + "pool = { base = 1.0, quote = 40000.0 }\n",
        venue + "depth = [{ drop = 0.05, usd = 2e6 }, { drop = 0.01, usd = 3e6 }]\n",
        venue + "pool = { base = 1.0, quote = 50000.0 }\n[assets.withdrawal]\nfloor = 0\n"}) {
    INFO(body);
    const auto r = parse_config(with_wbtc(body), "c.toml", "");
    REQUIRE_FALSE(r.ok());
    CHECK(std::string(r.status().message()).find("WBTC") != std::string::npos);
  }
}
