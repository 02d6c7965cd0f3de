#include "engine/oracle.hpp"

#include <absl/strings/str_cat.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "support/fixtures.hpp"

using namespace cascade;
using cascade::testing::aid;
using cascade::testing::must;
using cascade::testing::pid;

namespace {

// ETH at 100 and USDC at 1; three protocols that all accept ETH.
market oracle_market() {
  market m;
  must(m.add_asset({"ETH", 100.0, std::nullopt}));
  must(m.add_asset({"USDC", 1.0, std::nullopt}));
  must(m.add_protocol({"aave", protocol_kind::pooled, 0.5, 0.95, {{"ETH", {0.8, 0.05}}}}));
  must(m.add_protocol({"maker", protocol_kind::cdp, 1.0, 1.0, {{"ETH", {0.66, 0.13}}}}));
  must(m.add_protocol({"comp", protocol_kind::pooled, 1.0, 1.0, {{"ETH", {0.85, 0.05}}}}));
  return m;
}

feed_spec feed(std::string protocol, std::string asset) {
  feed_spec f;
  f.protocol = std::move(protocol);
  f.asset = std::move(asset);
  return f;
}

// Counts the events of one kind (and, if given, one source or reason).
std::size_t count(const oracle_output& out, oracle_event::kind k, std::string_view source = {},
                  std::string_view reason = {}) {
  std::size_t n = 0;
  for (const oracle_event& e : out.events) {
    n += e.what == k && (source.empty() || e.source == source) &&
         (reason.empty() || e.reason == reason);
  }
  return n;
}

const oracle_event& only_event(const oracle_output& out) {
  REQUIRE(out.events.size() == 1);
  return out.events.front();
}

// Everything the queries show, as text at full precision.
std::string dump(const oracle_set& o, const market& m) {
  std::string s = absl::StrCat("now ", o.now(), "\n");
  const oracle_stats& st = o.stats();
  absl::StrAppend(&s, "stats ", st.updates, " ", st.out_of_order, " ", st.publications, " ",
                  st.heartbeats, " ", st.invalid_now, "\n");
  for (std::size_t a = 0; a < m.asset_count(); ++a) {
    const auto id = asset_id::from_index(a);
    absl::StrAppend(&s, "market ", a, " ", absl::SixDigits(o.market_price(id)), " ",
                    o.market_price(id) * 1e9, "\n");
    for (std::size_t p = 0; p < m.protocol_count(); ++p) {
      absl::StrAppend(&s, "oracle ", p, " ", o.oracle_price(protocol_id::from_index(p), id) * 1e9,
                      "\n");
    }
    for (const source_state& x : o.sources(id)) {
      absl::StrAppend(&s, "source ", x.name, " ", x.price, " ", x.t, " ", x.valid, " ",
                      std::string(x.reason), "\n");
    }
  }
  for (const feed_state& f : o.feeds()) {
    absl::StrAppend(&s, "feed ", f.protocol.value, " ", f.asset.value, " ", f.visible, " ",
                    f.aggregate, " ", f.last_publish_t, " ", f.stale, " ", f.valid_sources, "\n");
  }
  return s;
}

}  // namespace

TEST_CASE("market price is the median of valid sources: stale and outlier left out", "[oracle]") {
  const market m = oracle_market();
  oracle_config c;
  c.rules.max_age_s = 60.0;
  c.rules.outlier = 0.1;
  oracle_set o = must(oracle_set::make(m, c));
  const asset_id eth = aid(m, "ETH");
  oracle_output out;

  must(o.update(eth, "a", 100.0, 0.0, out));
  must(o.update(eth, "b", 101.0, 0.0, out));
  must(o.update(eth, "d", 99.0, 0.0, out));
  CHECK(out.events.empty());
  CHECK(o.market_price(eth) == 100.0);  // median(99, 100, 101)
  out.clear();

  // c = 150 against median(99, 100, 101, 150) = 100.5: an outlier from the start.
  must(o.update(eth, "c", 150.0, 0.0, out));
  const oracle_event& e = only_event(out);
  CHECK(e.what == oracle_event::source_invalid);
  CHECK(e.source == "c");
  CHECK(e.reason == "outlier");
  CHECK(e.price == 150.0);
  CHECK(e.reference == 100.5);
  CHECK(e.asset == eth);
  CHECK_FALSE(e.protocol.valid());
  CHECK(out.market.empty());  // still median(99, 100, 101)
  CHECK(o.market_price(eth) == 100.0);
  out.clear();

  // a, b, c report again at t = 50; d does not.
  must(o.update(eth, "a", 100.0, 50.0, out));
  must(o.update(eth, "b", 101.0, 50.0, out));
  must(o.update(eth, "c", 150.0, 50.0, out));
  CHECK(out.events.empty());  // c stays an outlier: no repeat
  o.advance(60.0, out);       // d is exactly 60 s old: not yet stale
  CHECK(out.events.empty());

  o.advance(100.0, out);
  const oracle_event& stale = only_event(out);
  CHECK(stale.what == oracle_event::source_invalid);
  CHECK(stale.source == "d");
  CHECK(stale.reason == "stale");
  CHECK(stale.t == 100.0);
  REQUIRE(out.market.size() == 1);
  CHECK(out.market[0].asset == eth);
  CHECK(out.market[0].price == 100.5);  // median(100, 101): c outlier, d stale
  CHECK(o.market_price(eth) == 100.5);
  CHECK(o.stats().invalid_now == 2);

  const auto states = o.sources(eth);
  REQUIRE(states.size() == 4);
  CHECK(states[2].name == "d");
  CHECK_FALSE(states[2].valid);
  CHECK(states[2].reason == "stale");
  CHECK(states[3].name == "c");
  CHECK(states[3].reason == "outlier");
  CHECK(states[0].valid);
  CHECK(states[0].reason.empty());
  out.clear();

  // c comes back near the others: median(100, 101, 100.7) = 100.7.
  must(o.update(eth, "c", 100.7, 101.0, out));
  const oracle_event& back = only_event(out);
  CHECK(back.what == oracle_event::source_valid);
  CHECK(back.source == "c");
  CHECK(back.reason.empty());
  CHECK(o.market_price(eth) == 100.7);
  CHECK(o.stats().invalid_now == 1);
}

TEST_CASE("even count: the market is the mean of the two middle sources", "[oracle]") {
  const market m = oracle_market();
  oracle_set o = must(oracle_set::make(m, {}));
  const asset_id eth = aid(m, "ETH");
  oracle_output out;
  must(o.update(eth, "a", 90.0, 0.0, out));
  must(o.update(eth, "b", 104.0, 0.0, out));
  CHECK(o.market_price(eth) == 97.0);
  REQUIRE(out.market.size() == 2);  // one per call that moved it
  CHECK(out.market[0].price == 90.0);
  CHECK(out.market[1].price == 97.0);
  CHECK(o.market_price(aid(m, "USDC")) == 1.0);  // nothing reported: the reference price
}

TEST_CASE("a non-positive source is invalid; a volatile one until a sane update", "[oracle]") {
  const market m = oracle_market();
  oracle_config c;
  c.rules.max_move = 0.2;
  c.rules.outlier = 0.0;
  oracle_set o = must(oracle_set::make(m, c));
  const asset_id eth = aid(m, "ETH");
  oracle_output out;
  must(o.update(eth, "x", 100.0, 1.0, out));
  must(o.update(eth, "y", 102.0, 1.0, out));
  CHECK(o.market_price(eth) == 101.0);
  out.clear();

  must(o.update(eth, "y", 0.0, 2.0, out));  // not refused: reported
  const oracle_event& zero = only_event(out);
  CHECK(zero.what == oracle_event::source_invalid);
  CHECK(zero.reason == "non_positive");
  CHECK(zero.price == 0.0);
  CHECK(o.market_price(eth) == 100.0);
  out.clear();
  must(o.update(eth, "y", -5.0, 2.5, out));
  CHECK(out.events.empty());  // same state, no repeat
  CHECK(o.sources(eth)[1].price == -5.0);
  CHECK(o.stats().updates == 4);

  // Back from a non-positive price there is nothing to measure a move against.
  must(o.update(eth, "y", 103.0, 3.0, out));
  CHECK(count(out, oracle_event::source_valid, "y") == 1);
  CHECK(o.market_price(eth) == 101.5);
  out.clear();

  // x jumps 50%: too volatile, and stays so until a move within 20%.
  must(o.update(eth, "x", 150.0, 4.0, out));
  const oracle_event& jump = only_event(out);
  CHECK(jump.what == oracle_event::source_invalid);
  CHECK(jump.source == "x");
  CHECK(jump.reason == "too_volatile");
  CHECK(o.market_price(eth) == 103.0);
  out.clear();
  must(o.update(eth, "x", 200.0, 4.5, out));  // 33% more: still too volatile
  CHECK(out.events.empty());
  CHECK(o.market_price(eth) == 103.0);
  must(o.update(eth, "x", 201.0, 5.0, out));  // 0.5%: believed
  CHECK(count(out, oracle_event::source_valid, "x") == 1);
  CHECK(o.market_price(eth) == 152.0);  // (201 + 103) / 2
  CHECK(o.stats().invalid_now == 0);
}

TEST_CASE("an asset whose every source is invalid keeps its price and is reported once",
          "[oracle]") {
  const market m = oracle_market();
  oracle_set o = must(oracle_set::make(m, {}));
  const asset_id eth = aid(m, "ETH");
  oracle_output out;
  must(o.update(eth, "a", 90.0, 0.0, out));
  out.clear();
  must(o.update(eth, "a", -1.0, 1.0, out));
  CHECK(o.market_price(eth) == 90.0);
  CHECK(out.market.empty());
  CHECK(count(out, oracle_event::source_invalid, "a", "non_positive") == 1);
  CHECK(count(out, oracle_event::no_valid_source) == 1);
  out.clear();
  must(o.update(eth, "a", 0.0, 2.0, out));
  CHECK(out.events.empty());
}

TEST_CASE("a feed publishes past its deviation threshold", "[oracle]") {
  const market m = oracle_market();
  oracle_config c;
  feed_spec f = feed("aave", "ETH");
  f.deviation = 0.01;
  c.feeds.push_back(f);
  oracle_set o = must(oracle_set::make(m, c));
  const asset_id eth = aid(m, "ETH");
  const protocol_id aave = pid(m, "aave");
  oracle_output out;

  must(o.update(eth, "s", 100.0, 0.0, out));
  must(o.update(eth, "s", 100.5, 10.0, out));  // 0.5%: no publication
  CHECK(o.market_price(eth) == 100.5);
  CHECK(o.oracle_price(aave, eth) == 100.0);
  CHECK(o.oracle_price(pid(m, "maker"), eth) == 100.5);  // no feed: the market
  CHECK(o.stats().publications == 0);
  CHECK(out.oracle.empty());
  CHECK(o.feeds()[0].aggregate == 100.5);

  must(o.update(eth, "s", 101.2, 20.0, out));  // 1.2%: published
  CHECK(o.stats().publications == 1);
  CHECK(o.stats().heartbeats == 0);
  CHECK(o.oracle_price(aave, eth) == 101.2);
  REQUIRE(out.oracle.size() == 1);
  CHECK(out.oracle[0].protocol == aave);
  CHECK(out.oracle[0].asset == eth);
  CHECK(out.oracle[0].price == 101.2);
  CHECK(o.feeds()[0].last_publish_t == 20.0);
}

TEST_CASE("a heartbeat republishes an unchanged or slightly moved aggregate", "[oracle]") {
  const market m = oracle_market();
  oracle_config c;
  feed_spec f = feed("aave", "ETH");
  f.deviation = 0.01;
  f.heartbeat_s = 3600.0;
  c.feeds.push_back(f);
  oracle_set o = must(oracle_set::make(m, c));
  const asset_id eth = aid(m, "ETH");
  oracle_output out;

  must(o.update(eth, "s", 100.0, 0.0, out));  // t = 0 is the initial publication's time
  o.advance(3599.0, out);
  CHECK(o.stats().publications == 0);
  o.advance(3600.0, out);
  CHECK(o.stats().publications == 1);
  CHECK(o.stats().heartbeats == 1);
  CHECK(out.oracle.empty());  // same price: nothing changed
  CHECK(o.feeds()[0].last_publish_t == 3600.0);

  must(o.update(eth, "s", 100.5, 4000.0, out));  // under the deviation
  CHECK(o.oracle_price(pid(m, "aave"), eth) == 100.0);
  o.advance(7199.0, out);
  CHECK(out.oracle.empty());
  o.advance(7200.0, out);
  CHECK(o.stats().publications == 2);
  CHECK(o.stats().heartbeats == 2);
  REQUIRE(out.oracle.size() == 1);
  CHECK(out.oracle[0].price == 100.5);
  CHECK(o.oracle_price(pid(m, "aave"), eth) == 100.5);
  // A move past the deviation is a publication, not a heartbeat.
  must(o.update(eth, "s", 102.0, 7300.0, out));
  CHECK(o.stats().publications == 3);
  CHECK(o.stats().heartbeats == 2);
  CHECK(o.feeds()[0].last_publish_t == 7300.0);
}

TEST_CASE("the initial publication is stamped with the first time given", "[oracle]") {
  const market m = oracle_market();
  oracle_config c;
  feed_spec f = feed("aave", "ETH");
  f.heartbeat_s = 3600.0;
  f.stale_s = 7200.0;
  c.feeds.push_back(f);
  oracle_set o = must(oracle_set::make(m, c));
  oracle_output out;
  CHECK(o.now() == 0.0);
  const double epoch = 1.7e9;  // a replay starting at a Unix timestamp
  must(o.update(aid(m, "ETH"), "s", 100.0, epoch, out));
  CHECK(o.now() == epoch);
  CHECK(o.feeds()[0].last_publish_t == epoch);
  CHECK(o.stats().publications == 0);
  CHECK(out.events.empty());
}

TEST_CASE("an OSM delay shows each publication delay_s later", "[oracle]") {
  const market m = oracle_market();
  oracle_config c;
  feed_spec f = feed("maker", "ETH");
  f.delay_s = 3600.0;
  c.feeds.push_back(f);
  oracle_set o = must(oracle_set::make(m, c));
  const asset_id eth = aid(m, "ETH");
  const protocol_id maker = pid(m, "maker");
  oracle_output out;

  must(o.update(eth, "s", 100.0, 0.0, out));
  must(o.update(eth, "s", 80.0, 10.0, out));
  CHECK(o.stats().publications == 1);
  CHECK(o.oracle_price(maker, eth) == 100.0);
  CHECK(o.oracle_price(pid(m, "aave"), eth) == 80.0);  // direct: no lag
  CHECK(out.oracle.empty());
  CHECK(o.feeds()[0].aggregate == 80.0);
  CHECK(o.feeds()[0].visible == 100.0);
  CHECK(o.feeds()[0].last_publish_t == 10.0);
  // Lagging by 25%: diverged.
  CHECK(count(out, oracle_event::divergence) == 1);
  out.clear();

  o.advance(3609.5, out);
  CHECK(o.oracle_price(maker, eth) == 100.0);
  CHECK(out.oracle.empty());
  o.advance(3610.0, out);
  REQUIRE(out.oracle.size() == 1);
  CHECK(out.oracle[0].protocol == maker);
  CHECK(out.oracle[0].price == 80.0);
  CHECK(o.oracle_price(maker, eth) == 80.0);
  CHECK(count(out, oracle_event::convergence) == 1);
}

TEST_CASE("a delayed feed shows every publication in turn", "[oracle]") {
  const market m = oracle_market();
  oracle_config c;
  feed_spec f = feed("maker", "ETH");
  f.delay_s = 100.0;
  c.feeds.push_back(f);
  oracle_set o = must(oracle_set::make(m, c));
  const asset_id eth = aid(m, "ETH");
  const protocol_id maker = pid(m, "maker");
  oracle_output out;
  must(o.update(eth, "s", 100.0, 0.0, out));
  for (int i = 1; i <= 50; ++i) must(o.update(eth, "s", 100.0 + i, i, out));
  CHECK(o.oracle_price(maker, eth) == 100.0);
  for (int i = 1; i <= 50; ++i) {
    o.advance(100.0 + i, out);
    CHECK(o.oracle_price(maker, eth) == 100.0 + i);
  }
  // A long jump shows the latest matured publication only.
  must(o.update(eth, "s", 70.0, 200.0, out));
  must(o.update(eth, "s", 60.0, 210.0, out));
  out.clear();
  o.advance(1000.0, out);
  REQUIRE(out.oracle.size() == 1);
  CHECK(out.oracle[0].price == 60.0);
}

TEST_CASE("a feed goes stale without publications and fresh with the next", "[oracle]") {
  const market m = oracle_market();
  oracle_config c;
  feed_spec f = feed("aave", "ETH");
  f.deviation = 0.5;
  f.stale_s = 60.0;
  c.feeds.push_back(f);
  oracle_set o = must(oracle_set::make(m, c));
  const asset_id eth = aid(m, "ETH");
  oracle_output out;
  must(o.update(eth, "s", 100.0, 0.0, out));
  o.advance(60.0, out);
  CHECK(out.events.empty());
  o.advance(61.0, out);
  const oracle_event& e = only_event(out);
  CHECK(e.what == oracle_event::feed_stale);
  CHECK(e.protocol == pid(m, "aave"));
  CHECK(e.asset == eth);
  CHECK(e.t == 61.0);
  CHECK(o.feeds()[0].stale);
  out.clear();
  o.advance(70.0, out);
  must(o.update(eth, "s", 120.0, 75.0, out));  // 20%: under the deviation, still stale
  CHECK(count(out, oracle_event::feed_stale) == 0);
  CHECK(count(out, oracle_event::feed_fresh) == 0);
  out.clear();
  must(o.update(eth, "s", 200.0, 80.0, out));  // published
  CHECK(count(out, oracle_event::feed_fresh) == 1);
  CHECK_FALSE(o.feeds()[0].stale);
}

TEST_CASE("divergence is reported when a feed lags the market beyond the limit, once", "[oracle]") {
  const market m = oracle_market();
  oracle_config c;
  feed_spec f = feed("aave", "ETH");
  f.deviation = 0.05;
  c.feeds.push_back(f);
  oracle_set o = must(oracle_set::make(m, c));
  const asset_id eth = aid(m, "ETH");
  oracle_output out;
  must(o.update(eth, "s", 100.0, 0.0, out));
  must(o.update(eth, "s", 98.5, 1.0, out));  // 1.5%: within 2%
  CHECK(out.events.empty());
  must(o.update(eth, "s", 97.0, 2.0, out));  // 3.1%
  const oracle_event& e = only_event(out);
  CHECK(e.what == oracle_event::divergence);
  CHECK(e.protocol == pid(m, "aave"));
  CHECK(e.price == 100.0);
  CHECK(e.reference == 97.0);
  CHECK(e.reason.empty());
  out.clear();
  must(o.update(eth, "s", 96.0, 3.0, out));  // 4.2%, under the deviation: no repeat
  CHECK(out.events.empty());
  must(o.update(eth, "s", 99.0, 4.0, out));  // 1.0%
  CHECK(count(out, oracle_event::convergence) == 1);
}

TEST_CASE("a feed below min_sources publishes nothing and is reported", "[oracle]") {
  const market m = oracle_market();
  oracle_config c;
  feed_spec f = feed("maker", "ETH");
  f.sources = {"chainlink", "uniswap"};
  f.min_sources = 2;
  c.feeds.push_back(f);
  oracle_set o = must(oracle_set::make(m, c));
  const asset_id eth = aid(m, "ETH");
  const protocol_id maker = pid(m, "maker");
  oracle_output out;
  must(o.update(eth, "chainlink", 90.0, 0.0, out));
  REQUIRE(count(out, oracle_event::no_valid_source) == 1);
  const oracle_event& e = out.events.front();
  CHECK(e.what == oracle_event::no_valid_source);
  CHECK(e.protocol == maker);
  CHECK(e.reason == "min_sources");
  CHECK(o.oracle_price(maker, eth) == 100.0);
  CHECK(o.feeds()[0].valid_sources == 1);
  out.clear();
  must(o.update(eth, "binance", 50.0, 1.0, out));  // not one of the feed's sources
  CHECK(o.oracle_price(maker, eth) == 100.0);
  CHECK(count(out, oracle_event::no_valid_source) == 0);
  must(o.update(eth, "uniswap", 94.0, 2.0, out));
  CHECK(o.oracle_price(maker, eth) == 92.0);  // median(90, 94), binance not listed
  CHECK(o.market_price(eth) == 92.0);         // binance is an outlier against median 90
  CHECK(count(out, oracle_event::source_invalid, "binance", "outlier") == 1);
  CHECK(o.feeds()[0].valid_sources == 2);
  CHECK(o.stats().publications == 1);
}

TEST_CASE("direct protocols follow the market with no lag", "[oracle]") {
  const market m = oracle_market();
  oracle_config c;
  feed_spec f = feed("maker", "ETH");
  f.deviation = 0.5;
  c.feeds.push_back(f);
  oracle_set o = must(oracle_set::make(m, c));
  const asset_id eth = aid(m, "ETH");
  const asset_id usdc = aid(m, "USDC");
  CHECK(o.has_feeds(eth));
  CHECK_FALSE(o.has_feeds(usdc));
  const auto direct = o.direct_protocols(eth);
  REQUIRE(direct.size() == 2);
  CHECK(direct[0] == pid(m, "aave"));
  CHECK(direct[1] == pid(m, "comp"));
  CHECK(o.direct_protocols(usdc).size() == 3);

  oracle_output out;
  must(o.update(eth, "s", 110.0, 1.0, out));
  CHECK(o.oracle_price(pid(m, "aave"), eth) == 110.0);
  CHECK(o.oracle_price(pid(m, "comp"), eth) == 110.0);
  CHECK(o.oracle_price(pid(m, "maker"), eth) == 100.0);
  CHECK(out.oracle.empty());  // oracle changes are for feeds; direct ones follow `market`
  REQUIRE(out.market.size() == 1);
  CHECK(out.market[0].price == 110.0);
  must(o.update(usdc, "s", 0.999, 2.0, out));
  CHECK(o.oracle_price(pid(m, "maker"), usdc) == 0.999);
}

TEST_CASE("an update older than its source's last is ignored and counted", "[oracle]") {
  const market m = oracle_market();
  oracle_set o = must(oracle_set::make(m, {}));
  const asset_id eth = aid(m, "ETH");
  oracle_output out;
  must(o.update(eth, "s", 110.0, 10.0, out));
  out.clear();
  must(o.update(eth, "s", 50.0, 5.0, out));
  CHECK(o.stats().out_of_order == 1);
  CHECK(o.stats().updates == 1);
  CHECK(o.market_price(eth) == 110.0);
  CHECK(o.sources(eth)[0].t == 10.0);
  CHECK(out.market.empty());
  must(o.update(eth, "s", 111.0, 10.0, out));  // the same time is not older
  CHECK(o.market_price(eth) == 111.0);
  // Another source may report an earlier time than the clock.
  must(o.update(eth, "t", 113.0, 7.0, out));
  CHECK(o.stats().out_of_order == 1);
  CHECK(o.market_price(eth) == 112.0);
  CHECK(o.now() == 10.0);
  o.advance(3.0, out);  // the clock never moves back
  CHECK(o.now() == 10.0);
}

TEST_CASE("refused updates change nothing", "[oracle][bad-input]") {
  const market m = oracle_market();
  oracle_config c;
  c.rules.max_age_s = 30.0;
  feed_spec f = feed("maker", "ETH");
  f.delay_s = 10.0;
  f.heartbeat_s = 20.0;
  c.feeds.push_back(f);
  oracle_set o = must(oracle_set::make(m, c));
  const asset_id eth = aid(m, "ETH");
  oracle_output out;
  must(o.update(eth, "s", 105.0, 1.0, out));
  for (int i = 1; i < 64; ++i) must(o.update(eth, absl::StrCat("s", i), 105.0, 2.0, out));
  out.clear();
  const std::string before = dump(o, m);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  struct bad {
    asset_id asset;
    std::string source;
    double price;
    double t;
    std::string expect;
  };
  const std::vector<bad> cases{
      {eth, "s", nan, 50.0, "price nan is not a finite number"},
      {eth, "s", inf, 50.0, "price inf is not a finite number"},
      {eth, "s", 100.0, nan, "time nan is not a finite number"},
      {eth, "s", 100.0, -inf, "time -inf is not a finite number"},
      {asset_id{7}, "s", 100.0, 50.0, "unknown asset id 7"},
      {eth, "", 100.0, 50.0, "source name is empty"},
      {eth, "s64", 100.0, 50.0, "already has 64 sources"},
  };
  for (const bad& b : cases) {
    INFO(b.expect);
    const absl::Status s = o.update(b.asset, b.source, b.price, b.t, out);
    REQUIRE_FALSE(s.ok());
    CHECK(s.code() == absl::StatusCode::kInvalidArgument);
    CHECK_THAT(std::string(s.message()), Catch::Contains(b.expect));
    CHECK(dump(o, m) == before);
    CHECK(out.events.empty());
    CHECK(out.market.empty());
    CHECK(out.oracle.empty());
  }
  // An unreachable clock does not move it either.
  o.advance(nan, out);
  CHECK(dump(o, m) == before);
}

TEST_CASE("bad oracle configs are refused naming the feed and the field", "[oracle][bad-input]") {
  const market m = oracle_market();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  struct bad {
    oracle_config config;
    std::string expect;
  };
  const auto with_feed = [](auto change) {
    oracle_config c;
    feed_spec f = feed("maker", "ETH");
    change(f);
    c.feeds.push_back(f);
    return c;
  };
  std::vector<bad> cases;
  {
    oracle_config c;
    c.rules.max_age_s = -1.0;
    cases.push_back({c, "oracle: max_age_s -1 must be a finite number >= 0"});
    c = {};
    c.rules.outlier = 1.0;
    cases.push_back({c, "oracle: outlier 1 is outside [0, 1)"});
    c = {};
    c.rules.max_move = -0.1;
    cases.push_back({c, "oracle: max_move -0.1 is outside [0, 1)"});
    c = {};
    c.divergence = nan;
    cases.push_back({c, "oracle: divergence nan must be a finite number >= 0"});
  }
  cases.push_back({with_feed([](feed_spec& f) { f.delay_s = -1.0; }),
                   "oracle feed 'maker'/'ETH': delay_s -1 must be a finite number >= 0"});
  cases.push_back({with_feed([&](feed_spec& f) { f.heartbeat_s = nan; }),
                   "oracle feed 'maker'/'ETH': heartbeat_s nan must be"});
  cases.push_back({with_feed([](feed_spec& f) { f.stale_s = -5.0; }), "stale_s -5 must be"});
  cases.push_back({with_feed([](feed_spec& f) { f.deviation = -0.01; }), "deviation -0.01"});
  cases.push_back({with_feed([](feed_spec& f) { f.min_sources = 0; }),
                   "oracle feed 'maker'/'ETH': min_sources 0 must be >= 1"});
  cases.push_back({with_feed([](feed_spec& f) {
                     f.sources = {"a", "b"};
                     f.min_sources = 3;
                   }),
                   "min_sources 3 is more than the 2 sources it lists"});
  cases.push_back({with_feed([](feed_spec& f) {
                     f.sources = {"a", "a"};
                   }),
                   "sources names 'a' twice"});
  cases.push_back({with_feed([](feed_spec& f) { f.sources = {"a", ""}; }), "sources[1] is empty"});
  cases.push_back({with_feed([](feed_spec& f) { f.protocol = "aave-v9"; }),
                   "oracle feed 'aave-v9'/'ETH': unknown protocol 'aave-v9'"});
  cases.push_back({with_feed([](feed_spec& f) { f.asset = "SOL"; }),
                   "oracle feed 'maker'/'SOL': unknown asset 'SOL'"});
  {
    oracle_config c;
    c.feeds = {feed("maker", "ETH"), feed("aave", "ETH"), feed("maker", "ETH")};
    cases.push_back({c, "oracle feed 'maker'/'ETH': repeated (also feed 0)"});
  }
  for (const bad& b : cases) {
    INFO(b.expect);
    const auto r = oracle_set::make(m, b.config);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK_THAT(std::string(r.status().message()), Catch::Contains(b.expect));
  }
  // The limits themselves are accepted.
  oracle_config edge;
  edge.rules.outlier = 0.0;
  edge.rules.max_move = 0.999;
  edge.divergence = 0.0;
  edge.feeds.push_back(feed("maker", "USDC"));
  edge.feeds.back().deviation = 1e9;  // publishes on the heartbeat only
  CHECK(oracle_set::make(m, edge).ok());
}

TEST_CASE("oracle-only sources feed their feeds and stay out of the market", "[oracle]") {
  const market m = oracle_market();
  oracle_config c;
  c.oracle_only = {"chainlink"};
  feed_spec f = feed("aave", "ETH");
  f.sources = {"chainlink"};
  c.feeds.push_back(f);
  auto o = oracle_set::make(m, c);
  REQUIRE(o.ok());
  const asset_id eth = aid(m, "ETH");
  oracle_output out;
  // Markets quote 90, 91 and 92; Chainlink still shows 100 (a lagging oracle 10% away).
  must(o->update(eth, "chainlink", 100.0, 1.0, out));
  for (const auto& [name, price] : {std::pair{"cex", 90.0}, {"dex", 91.0}, {"otc", 92.0}}) {
    must(o->update(eth, name, price, 2.0, out));
  }
  // The market is the median of the three quotes alone (with chainlink it would be
  // 91.5), and chainlink, 9.9% above it, is not an outlier (the others would be judged
  // against 91 and chainlink left out at outlier 0.10 only beyond 100.1).
  CHECK(o->market_price(eth) == 91.0);
  CHECK(o->oracle_price(pid(m, "aave"), eth) == 100.0);
  CHECK(o->oracle_price(pid(m, "maker"), eth) == 91.0);  // no feed: the market
  for (const source_state& s : o->sources(eth)) CHECK(s.valid);
  // Chainlink at 120 (31.9% away): still valid, the feed publishes it.
  out.clear();
  must(o->update(eth, "chainlink", 120.0, 3.0, out));
  CHECK(count(out, oracle_event::source_invalid) == 0);
  CHECK(o->market_price(eth) == 91.0);
  CHECK(o->oracle_price(pid(m, "aave"), eth) == 120.0);
}
