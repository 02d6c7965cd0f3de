// The WebSocket messages of PROTOCOL.md: client frames decoded into values, and server
// messages encoded. Decoding uses simdjson On-Demand on a padded copy; everything is
// checked (UTF-8, syntax, trailing content, types, ranges, known assets/protocols/bands,
// batch size) and a refusal names the field path, e.g. "prices[1].price: must be a
// finite number > 0, got -3". Unknown keys are refused (a typo in a filter must not
// silently widen it). A NaN or Infinity literal (not JSON, but what some encoders write)
// or an out-of-range number like 1e999 is refused as bad_price in a price field and as
// bad_request elsewhere; any other malformed JSON is bad_json. The first fault in
// document order decides the code.
//
// Pure functions: callable from any thread; the market is only read (it never changes
// while the server runs). They allocate and throw nothing but std::bad_alloc.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "engine/bands.hpp"
#include "engine/ids.hpp"
#include "engine/market.hpp"
#include "proto/events.hpp"

namespace cascade::proto {

// Error codes of PROTOCOL.md "Errors".
enum class error_code : std::uint8_t {
  bad_json,
  bad_request,
  unknown_op,
  unknown_asset,
  unknown_protocol,
  unknown_position,
  bad_price,
  too_large,
  binary_frame,
  unauthorized,
  forbidden,
  not_found,
  method_not_allowed,
  resume_unavailable,
  overloaded,
  internal,
};
[[nodiscard]] std::string_view to_string(error_code c);
// The HTTP status REST answers a code with (400, 401, 403, 404, 405, 413, 503, 500).
[[nodiscard]] unsigned http_status(error_code c);

struct wire_error {
  error_code code = error_code::bad_request;
  std::string message;
  friend bool operator==(const wire_error&, const wire_error&) = default;
};

// Channel bits.
enum channel : std::uint8_t {
  ch_alerts = 1,
  ch_cascades = 2,
  ch_prices = 4,
  ch_pending = 8,      // pending_liquidation events
  ch_insolvency = 16,  // insolvency events
  ch_oracle = 32,      // oracle events
};
inline constexpr std::uint8_t all_channels =
    ch_alerts | ch_cascades | ch_prices | ch_pending | ch_insolvency | ch_oracle;
inline constexpr std::uint8_t default_channels = ch_alerts | ch_cascades;

// A subscription's filter. Empty lists match everything; lists are sorted and unique.
struct subscription {
  std::uint8_t channels = default_channels;
  std::vector<protocol_id> protocols;
  std::vector<asset_id> assets;
  band min_band = band::healthy;
  std::vector<std::string> positions;
  std::vector<std::string> owners;

  // Whether an event passes this subscription (channel and filter).
  [[nodiscard]] bool matches(const event_body& e) const;
  friend bool operator==(const subscription&, const subscription&) = default;
};

// One price tick as a client sent it. `ts` is 0 when the client gave none (the server
// stamps its clock); `source` (1 to 128 bytes) is "ws" or "rest" when absent.
struct price_tick {
  asset_id asset;
  double price = 0.0;
  std::string source;
  double ts = 0.0;
  friend bool operator==(const price_tick&, const price_tick&) = default;
};

// Equal when every field is (the two decoding paths are compared this way).
struct subscribe_msg {
  subscription sub;
  friend bool operator==(const subscribe_msg&, const subscribe_msg&) = default;
};
struct unsubscribe_msg {
  std::uint8_t channels = all_channels;
  friend bool operator==(const unsubscribe_msg&, const unsubscribe_msg&) = default;
};
struct prices_msg {  // both `price` (one tick) and `prices`
  std::vector<price_tick> ticks;
  friend bool operator==(const prices_msg&, const prices_msg&) = default;
};
struct resume_msg {
  std::uint64_t from_seq = 0;
  friend bool operator==(const resume_msg&, const resume_msg&) = default;
};
struct ping_msg {
  friend bool operator==(const ping_msg&, const ping_msg&) = default;
};

using client_body =
    std::variant<wire_error, subscribe_msg, unsubscribe_msg, prices_msg, resume_msg, ping_msg>;

struct client_message {
  // The request's `id`, as the raw JSON text of a scalar (number, string, true/false/null),
  // re-encoded canonically; empty when absent or unreadable (answers then carry null).
  std::string id;
  client_body body;  // wire_error when the frame was refused
  friend bool operator==(const client_message&, const client_message&) = default;
};

struct decode_limits {
  std::size_t max_batch = 10'000;  // ticks per `prices`
  std::size_t max_list = 10'000;   // entries per filter list
};

// Decodes one text frame. Never fails as a whole: a refused frame comes back with a
// wire_error body and its id, wherever the id is in the object, unless the JSON breaks
// before it (then, and for an id that is an object or array, the id is empty).
//
// Two paths give the same result for every frame (tests/proto/ws_decode_paths_test.cpp
// and fuzz/fuzz_ws_message.cpp compare them): a `price` or `prices` frame whose first
// key is `op` (what clients send) is decoded in a single pass, which gives up on
// anything it would refuse or does not expect; every other frame, and one given up on,
// takes the reference path: a first pass that finds `id` and `op` wherever they are (so
// that any refusal echoes the id), then the op's fields.
[[nodiscard]] client_message decode_client_message(std::string_view frame, const market& m,
                                                   const decode_limits& limits = {});

namespace detail {
// The two paths of decode_client_message on their own, to compare them. The single
// pass gives nullopt whenever it gives up: the frame is not `{"op": "price"` or
// `{"op": "prices"` (keys unescaped), or anything in it is refused or unusual.
[[nodiscard]] client_message decode_client_message_reference(std::string_view frame,
                                                             const market& m,
                                                             const decode_limits& limits = {});
[[nodiscard]] std::optional<client_message> decode_client_message_single_pass(
    std::string_view frame, const market& m, const decode_limits& limits = {});
}  // namespace detail

// Server messages. `id` is client_message::id (empty -> null).
[[nodiscard]] std::string encode_hello(std::uint64_t seq, std::uint64_t oldest_seq);
[[nodiscard]] std::string encode_ack(std::string_view id, std::uint64_t seq);
[[nodiscard]] std::string encode_pong(std::string_view id);
[[nodiscard]] std::string encode_error(std::string_view id, const wire_error& e);
[[nodiscard]] std::string encode_gap(std::uint64_t from, std::uint64_t to);

// An event as a server message (PROTOCOL.md): alert, cascade or price, with seq,
// ingest_ns and emit_ns. Names are resolved through `m`. Written as null: an alert's
// empty owner, invalid cause and infinite hf (no debt); a price's ts of 0.
[[nodiscard]] std::string encode_event(const event& e, const market& m);

// The body of a cascade event without the envelope (for GET /v1/cascade): every field
// of the `cascade` message except type, seq, ingest_ns and emit_ns, as an open JSON
// object's members appended to `w`.
class json_writer;
void write_cascade_fields(json_writer& w, const cascade_event& c, const market& m);

}  // namespace cascade::proto
