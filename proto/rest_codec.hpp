// The REST bodies of PROTOCOL.md: request bodies and query strings decoded into values,
// and answers encoded from engine state. Decoders check everything and name the field
// path on refusal (same rules as ws_codec.hpp: simdjson On-Demand, unknown keys
// refused, UTF-8 checked). Encoders read the book and market they are given, so the
// engine thread calls them (the book is its own); they never write.
//
// Pure functions; they allocate and throw nothing but std::bad_alloc.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "engine/book.hpp"
#include "engine/oracle.hpp"
#include "engine/cascade.hpp"
#include "engine/curves.hpp"
#include "engine/market.hpp"
#include "proto/events.hpp"
#include "proto/ws_codec.hpp"

namespace cascade::proto {

template <class T>
using decoded = std::variant<wire_error, T>;

// POST /v1/positions: {"positions": [{id, protocol, owner?, legs: [{asset, collateral?,
// debt?}]}]}, 1..max_batch positions, ids unique within the batch. Amounts must be
// finite and >= 0; a leg's asset must be known; the protocol known. (Whether the
// protocol accepts a collateral asset is the book's check, at apply time.)
[[nodiscard]] decoded<std::vector<position_input>> decode_positions_body(std::string_view body,
                                                                         const market& m,
                                                                         std::size_t max_batch);

// POST /v1/prices: {"prices": [{asset, price, source?, ts?}]}, 1..max_batch ticks.
// Missing source: "rest".
[[nodiscard]] decoded<std::vector<price_tick>> decode_prices_body(std::string_view body,
                                                                  const market& m,
                                                                  std::size_t max_batch);

// POST /v1/stress without "positions": {shocks?, max_rounds?, assets?, protocols?}.
// Shocks name live assets (fraction > -1, finite); max_rounds in [1, 1e6], default 100;
// assets/protocols, if present, are arrays of objects whose "symbol"/"name" must exist
// in `m` (their other fields are not used).
struct live_stress {
  std::vector<shock> shocks;
  std::uint32_t max_rounds = 100;
};
[[nodiscard]] decoded<live_stress> decode_live_stress(std::string_view body, const market& m);
// True when the body is a JSON object with a top-level "positions" key (a full
// scenario, decoded by parse_scenario); false otherwise, including for invalid JSON.
[[nodiscard]] bool body_has_positions(std::string_view body);

// Query strings: "a=1&b=x%20y" -> decoded pairs, in order ('+' is a space, a leading
// '?' and empty parts are skipped). Refuses bad %-escapes, text that is not UTF-8 once
// decoded, keys not in `known` (bad_request naming the key), and repeated keys.
using query_params = std::vector<std::pair<std::string, std::string>>;
[[nodiscard]] decoded<query_params> decode_query(std::string_view query,
                                                 std::span<const std::string_view> known);

// One %-escaped path segment (e.g. the id of /v1/positions/{id}); '+' stays '+'.
// bad_request, naming `what`, when it is empty, holds an unescaped '/' or a bad escape,
// or is not UTF-8 once decoded (no JSON string could hold it).
[[nodiscard]] decoded<std::string> decode_path_segment(std::string_view raw,
                                                       std::string_view what);

// GET /v1/positions query: max_hf (finite > 0, default 1.1), protocol, asset, limit
// (1..10000, default 100), cursor (from encode_positions_page).
struct at_risk_query {
  double max_hf = 1.1;
  std::optional<protocol_id> protocol;
  std::optional<asset_id> asset;
  std::size_t limit = 100;
  // Resume after this (hf, id); hf may be +inf.
  std::optional<std::pair<double, std::string>> after;
};
[[nodiscard]] decoded<at_risk_query> decode_at_risk_query(std::string_view query, const market& m);

// Answers.
[[nodiscard]] std::string encode_error_body(const wire_error& e);
[[nodiscard]] std::string encode_assets(const book& b);
[[nodiscard]] std::string encode_protocols(const market& m);
[[nodiscard]] std::string encode_position(const book& b, row_t r);
// `rows` ascending by (hf, id); next_cursor written when `more` (after the last row).
// The cursor is URL-safe base64 of a version byte, the hf's 8 bytes and the id: any hf
// (+inf too) and any id round-trip exactly through decode_at_risk_query.
[[nodiscard]] std::string encode_positions_page(const book& b, std::span<const row_t> rows,
                                                bool more);
[[nodiscard]] std::string encode_summary(const book& b, std::uint64_t seq);
// GET /v1/hidden: pending liquidations and hidden insolvency per protocol and in total,
// and the units queued to be seized per asset (book.hpp, realizable value).
[[nodiscard]] std::string encode_hidden(const book& b, std::uint64_t seq);
// GET /v1/oracles: every asset's sources (price, ts, valid or why not) and market price,
// every protocol feed (the price it shows, its aggregate, divergence from the market,
// last publication, staleness), and the oracles' counters.
[[nodiscard]] std::string encode_oracles(const book& b, const oracle_set& o, std::uint64_t seq);
class json_writer;
void write_hidden_fields(json_writer& w, const book& b);
// GET /v1/cascade: the cascade fields plus "seq" and "stale": false.
[[nodiscard]] std::string encode_projection(const cascade_event& c, std::uint64_t seq,
                                            const market& m);

// `cascade curves` output (CLI and GET /v1/curves): asset, price, liquidation_curve,
// cascade_curve, critical_shock{shock, baseline_drop, baseline_bad_debt_usd,
// material_bad_debt_usd, reason, amplifies, bad_debt, amplification}.
[[nodiscard]] std::string encode_curves(const book& b, asset_id a,
                                        std::span<const liquidation_point> liq,
                                        std::span<const cascade_point> casc,
                                        const critical_shock& crit,
                                        const critical_shock_options& co);
// Why a shock is critical, in words: "amplifies", "bad debt", both, or "none up to 90%".
[[nodiscard]] std::string_view critical_reason(const critical_shock& c);

}  // namespace cascade::proto
