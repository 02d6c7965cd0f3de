// The events the engine streams to subscribers, as plain data: what happened, with the
// ids and names already resolved, so the publisher can encode them on its own thread
// without touching engine state. Encoders live in ws_codec.hpp.
//
// Values only: built by the engine thread, moved to the publisher thread, read there.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "engine/bands.hpp"
#include "engine/book.hpp"
#include "engine/ids.hpp"

namespace cascade::proto {

// A position crossed a band. `cause` is the asset whose tick moved it (invalid for an
// upsert), `price` that tick's price. `assets` are the assets the position holds (for
// the subscribers' asset filter).
struct alert_event {
  std::string position;
  std::string owner;
  protocol_id protocol;
  band from = band::healthy;
  band to = band::healthy;
  double hf_before = 0.0;
  double hf_after = 0.0;
  asset_id cause;
  double price = 0.0;
  std::vector<asset_id> assets;
};

// The projection the engine ran after a batch that left positions liquidatable: the
// cascade the current state sets off (no shock), summarized.
struct cascade_event {
  std::uint32_t rounds = 0;
  std::uint64_t liquidatable_now = 0;  // positions in the liquidatable band before it ran
  std::uint64_t positions_liquidated = 0;
  double repaid_usd = 0.0;
  double seized_usd = 0.0;
  std::vector<double> bad_debt_usd;                 // per protocol
  std::vector<std::uint64_t> liquidated;            // per protocol
  std::vector<std::pair<asset_id, double>> sold;    // total units sold per asset
  std::vector<double> start_prices;                 // per asset
  std::vector<double> final_prices;                 // per asset
  // Per asset whose price the cascade moved: the start price, then the price after
  // each round (rounds + 1 values).
  std::vector<std::pair<asset_id, std::vector<double>>> price_path;
  double duration_ms = 0.0;
};

struct price_event {
  asset_id asset;
  double price = 0.0;
  std::string source;
  double ts = 0.0;  // the tick's own timestamp (unix seconds); 0 when the client gave none
};

// A position entered or left the pending-liquidation status (under 1 at market prices,
// not yet at its protocol's oracle) or the hidden-insolvency status (solvent at the
// oracle, its collateral sold now would not cover its debt): see book.hpp.
struct status_event {
  std::string position;
  std::string owner;
  protocol_id protocol;
  status_kind kind = status_kind::pending;
  bool entered = true;
  double hf = 0.0;  // at the protocol's oracle
  realizable_cell value;
  std::vector<asset_id> assets;
};

// Oracle health (engine/oracle.hpp): a source stale, an outlier, non-positive or too
// volatile (and valid again), a feed stale (and fresh again), a protocol's oracle
// diverging from the market beyond the threshold (and converging), or an asset with no
// valid source. `protocol` is invalid for source events, `source` empty for feed ones.
struct oracle_notice {
  std::string kind;
  asset_id asset;
  protocol_id protocol;
  std::string source;
  std::string reason;
  double price = 0.0;      // the source's price, or the protocol's oracle price
  double reference = 0.0;  // the median of the other sources, or the market price
  double ts = 0.0;         // oracle clock, unix seconds
};

using event_body =
    std::variant<alert_event, cascade_event, price_event, status_event, oracle_notice>;

// One event of the global stream. seq is stamped by the engine thread in the order the
// events happened; ingest_ns is when the message that caused it reached the server,
// emit_ns when it was encoded for subscribers (unix nanoseconds).
struct event {
  std::uint64_t seq = 0;
  std::int64_t ingest_ns = 0;
  std::int64_t emit_ns = 0;
  event_body body;
};

}  // namespace cascade::proto
