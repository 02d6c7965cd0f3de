// Oracle failure modelling: named price sources per asset -> the market price of each
// asset, and the oracle price each protocol sees, with Chainlink-style publication
// (deviation threshold, heartbeat) and Maker-OSM-style delay.
//
// Sources. A source is a name (an exchange, a Chainlink node, a TWAP) with its last
// price and the time of that price; it registers on its first update (at most
// max_sources_per_asset per asset). A source is invalid, for the first reason that
// holds:
//   non_positive  its last price is <= 0
//   too_volatile  its last update moved it by more than rules.max_move from its previous
//                 price (none judged on a first update or after a price <= 0); it stays
//                 invalid until an update within max_move of the one before, so a jump
//                 is believed once a second update confirms it
//   stale         now - its last update time > rules.max_age_s
//   outlier       |p / median - 1| > rules.outlier, the median taken over the asset's
//                 sources valid on the three counts above, itself included (with itself
//                 left out, one bad source among three would make the two honest ones
//                 look like outliers too); judged only when there are >= 3 of them.
//                 Validity is per source, over all the asset's sources, not per feed.
// Market price of an asset = median of its valid sources (even count: mean of the two
// middle ones); with none valid it keeps its last value.
//
// Feeds. A feed is the oracle one protocol reads for one asset. Its aggregate is the
// median of its valid sources (all the asset's sources, or those it lists). It
// publishes the aggregate when it moved by >= deviation from the last publication (any
// change with deviation 0) or when heartbeat_s passed since the last publication, and
// only with >= min_sources valid sources. The protocol sees the latest publication made
// at or before now - delay_s. A (protocol, asset) with no feed sees the market price
// directly (direct_protocols()). Maker's OSM is heartbeat_s = delay_s = the hop (3600)
// with a deviation the price never reaches (e.g. 1e9): it publishes on the heartbeat only.
//
// Time comes only from the caller (seconds, from tick timestamps), so a replay is
// deterministic. The clock never moves back (an earlier time is ignored). The initial
// state is every market and oracle price at the market's reference price, published at
// the first time the set is given (the first update() or advance()): a replay that
// starts at a Unix timestamp does not begin with every feed stale and every heartbeat
// due. Publications and events are stamped with the clock (now()), which may be later
// than the update's own time; heartbeats fire at the first call at or after they are
// due (one publication however long the gap). Before any source of an asset has
// reported, its feeds publish nothing and nothing about it is reported.
//
// Events are transitions, never repeated while a state holds: source_invalid when a
// source becomes invalid or its reason changes, source_valid when it becomes valid;
// feed_stale / feed_fresh when a feed's last publication becomes older than stale_s /
// is renewed; divergence / convergence when |visible / market - 1| of a feed goes above
// / back to <= divergence; no_valid_source when an asset loses its last valid source
// (protocol invalid) or a feed falls below min_sources (protocol set, reason
// "min_sources"); its end shows as the source_valid events that end it.
//
// Threading: one thread owns an oracle_set (the engine thread); nothing is thread-safe.
// Allocation: make() allocates; update() allocates only when a source registers (its
// name) and to append to the output vectors (events carry strings); a delayed feed's
// queue of waiting publications grows to its high-water mark and is then reused. Each
// asset keeps the time its next change falls due (a source going stale, a heartbeat, a
// publication maturing, a feed going stale), so update() and advance() cost O(assets)
// for that check plus O(sources + feeds of the asset) for each asset they evaluate (the
// updated one, and those with something due); each asset is evaluated at most once per
// call, so a call gives at most one change per price. No exceptions: bad input is
// refused with an absl::Status and changes nothing.
#pragma once

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/ids.hpp"
#include "engine/market.hpp"

namespace cascade {

// Most sources one asset may have.
inline constexpr std::size_t max_sources_per_asset = 64;

// Validity of every source.
struct source_rules {
  double max_age_s = 0.0;  // stale when not updated for longer (0: never stale)
  double outlier = 0.10;   // in [0, 1): outlier beyond this fraction of the median (0: off)
  double max_move = 0.0;   // in [0, 1): too volatile beyond this move in one update (0: off)

  [[nodiscard]] absl::Status validate() const;
};

// The oracle one protocol reads for one asset.
struct feed_spec {
  std::string protocol;
  std::string asset;
  std::vector<std::string> sources;  // empty: every source of the asset
  double deviation = 0.0;    // publish when the aggregate moved >= this fraction (0: any change)
  double heartbeat_s = 0.0;  // publish when this long passed since the last (0: no heartbeat)
  double delay_s = 0.0;      // the protocol sees the latest publication <= now - delay_s
  double stale_s = 0.0;      // stale when the last publication is older (0: never)
  std::uint32_t min_sources = 1;  // fewer valid sources: no publication

  // Numbers and the source list only (names are checked against a market by make()).
  [[nodiscard]] absl::Status validate() const;
};

struct oracle_config {
  source_rules rules;
  std::vector<feed_spec> feeds;
  double divergence = 0.02;  // report a feed whose price differs from market beyond this
  // Sources that are oracles, not markets (e.g. "chainlink" replayed from its rounds):
  // they feed the feeds that list them, are judged stale, non-positive or too volatile
  // like any source, but never count in an asset's market median nor in the median
  // outliers are judged against, and are never outliers themselves (an oracle that
  // lags the market is what this module exists to show, not a faulty quote).
  std::vector<std::string> oracle_only;

  // Everything that needs no market: numbers, repeated (protocol, asset) feeds.
  [[nodiscard]] absl::Status validate() const;
};

struct market_change {
  asset_id asset;
  double price = 0.0;
};

struct oracle_change {
  protocol_id protocol;
  asset_id asset;
  double price = 0.0;
};

struct oracle_event {
  enum kind : std::uint8_t {
    source_invalid,
    source_valid,
    feed_stale,
    feed_fresh,
    divergence,
    convergence,
    no_valid_source,
  };
  kind what = source_invalid;
  asset_id asset;
  protocol_id protocol;    // invalid for source events and an asset's no_valid_source
  std::string source;      // source events only
  std::string reason;      // "stale", "outlier", "non_positive", "too_volatile", "min_sources"
  double price = 0.0;      // the source's price, or the feed's visible price
  double reference = 0.0;  // the median an outlier is judged against, else the market price
  double t = 0.0;          // the clock when it happened
};

// What one call changed: one entry per price that changed (market: assets whose median
// moved; oracle: (protocol, asset) feeds whose visible price moved), and the events.
struct oracle_output {
  std::vector<market_change> market;
  std::vector<oracle_change> oracle;
  std::vector<oracle_event> events;
  void clear() {
    market.clear();
    oracle.clear();
    events.clear();
  }
};

struct source_state {
  std::string name;
  double price = 0.0;
  double t = 0.0;
  bool valid = true;
  std::string_view reason;  // empty when valid (static text)
};

struct feed_state {
  protocol_id protocol;
  asset_id asset;
  double visible = 0.0;    // what the protocol sees
  double aggregate = 0.0;  // the last median of the feed's valid sources
  double last_publish_t = 0.0;
  bool stale = false;
  std::uint32_t valid_sources = 0;
};

struct oracle_stats {
  std::uint64_t updates = 0;       // accepted source updates (non-positive prices included)
  std::uint64_t out_of_order = 0;  // updates older than their source's last, ignored
  std::uint64_t publications = 0;  // heartbeats included
  std::uint64_t heartbeats = 0;    // publications made only because the heartbeat was due
  std::uint64_t invalid_now = 0;   // sources invalid at present
};

class oracle_set {
 public:
  // Refuses what oracle_config::validate() refuses, an unknown protocol or asset, and a
  // min_sources above the number of sources a feed lists. Messages name the feed:
  //   oracle feed 'maker'/'ETH': delay_s -1 must be a finite number >= 0
  [[nodiscard]] static absl::StatusOr<oracle_set> make(const market& m, const oracle_config& c);

  // A source's new price at time t (seconds). Refuses (changing nothing) an unknown
  // asset, an empty source name, a non-finite price or t, and a new source beyond
  // max_sources_per_asset. Advances the clock to t first. A price <= 0 is accepted and
  // makes the source invalid. An update older than the source's last is ignored and
  // counted in stats().out_of_order.
  [[nodiscard]] absl::Status update(asset_id a, std::string_view source, double price, double t,
                                    oracle_output& out);

  // Moves the clock to t (an earlier or non-finite t is ignored): sources go stale,
  // heartbeats fire, delayed publications mature, feeds go stale.
  void advance(double t, oracle_output& out);

  // --- queries (an id out of range gives NaN / empty) -------------------------------
  [[nodiscard]] double market_price(asset_id a) const;
  [[nodiscard]] double oracle_price(protocol_id p, asset_id a) const;
  [[nodiscard]] bool has_feeds(asset_id a) const;
  // The protocols without a feed for `a`: they see its market price directly.
  [[nodiscard]] std::span<const protocol_id> direct_protocols(asset_id a) const;
  [[nodiscard]] std::vector<source_state> sources(asset_id a) const;
  [[nodiscard]] std::vector<feed_state> feeds() const;  // in config order
  [[nodiscard]] double now() const { return now_; }
  [[nodiscard]] const oracle_stats& stats() const { return stats_; }
  [[nodiscard]] const oracle_config& config() const { return config_; }

 private:
  enum class fault : std::uint8_t { none, non_positive, too_volatile, stale, outlier };

  struct source {
    std::string name;
    double price = 0.0;
    double t = 0.0;
    bool jumped = false;  // the last update moved beyond max_move
    bool oracle_only = false;  // listed in oracle_config::oracle_only
    fault state = fault::none;
  };

  struct publication {
    double t;
    double price;
  };

  struct feed {
    protocol_id protocol;
    asset_id asset;
    std::uint64_t members = 0;  // bit i: the asset's source i belongs to the feed
    double aggregate = 0.0;
    double last_price = 0.0;  // of the last publication
    double last_t = 0.0;
    double visible = 0.0;
    // Publications not yet visible after the one at `head` (the visible one).
    std::vector<publication> queue;
    std::size_t head = 0;
    std::uint32_t valid = 0;
    bool stale = false;
    bool diverged = false;
    bool starved = false;
  };

  struct asset_state {
    std::vector<source> sources;
    std::vector<std::uint32_t> feeds;  // indices into feeds_
    std::vector<protocol_id> direct;
    double market = 0.0;
    double due = std::numeric_limits<double>::infinity();  // next time something changes
    bool starved = false;
  };

  oracle_set() = default;

  void start(double t);
  void evaluate(asset_id a, oracle_output& out);
  void evaluate_feed(feed& f, const asset_state& s, std::uint64_t valid, double* scratch,
                     oracle_output& out);
  void emit(oracle_output& out, oracle_event::kind k, asset_id a, protocol_id p,
            std::string_view source_name, std::string_view reason, double price, double reference);

  oracle_config config_;
  std::vector<asset_state> assets_;
  std::vector<feed> feeds_;
  std::vector<std::int32_t> feed_index_;  // [asset * protocols + protocol], -1: none
  std::size_t protocols_ = 0;
  double now_ = 0.0;
  bool started_ = false;
  oracle_stats stats_;
};

}  // namespace cascade
