// Fuzz target: one WebSocket text frame through proto::decode_client_message (the
// decoder every client frame meets), against the default market.
//
// Beyond "no crash, no sanitizer report" it checks what the server relies on:
//  - the decoder's two paths agree (ws_codec.hpp): the result is the reference path's
//    (two passes), and the single pass for price frames, when it takes the frame, gives
//    exactly that too (the decoded ticks, or the error and echoed id it gave up on);
//  - a refusal has a message (valid UTF-8) and encodes to a valid `error` message;
//  - an echoed id is a JSON scalar in canonical form (sent back, it is echoed unchanged)
//    that encodes into valid `ack` and `pong` messages;
//  - `prices`: 1..max_batch ticks of known assets, finite prices > 0, ts >= 0, source
//    1..128 bytes; applied to a live book through the oracles the book stays consistent
//    (fuzz_support.hpp check_book), and each tick and alert encodes to valid JSON;
//  - `subscribe`: filter lists sorted and unique, known channels only; against the
//    events of a fixed price drop, a channel the subscription leaves out never matches.
#include <algorithm>
#include <cstdint>
#include <string>
#include <variant>

#include "fuzz_support.hpp"
#include "proto/ws_codec.hpp"

namespace {

using namespace cascade;
using cascade::fuzz::valid_json;

// Small limits so that too_large is within reach of short inputs.
constexpr proto::decode_limits limits{.max_batch = 16, .max_list = 16};

template <class T>
bool sorted_unique(const std::vector<T>& v) {
  return std::adjacent_find(v.begin(), v.end(), [](const T& a, const T& b) { return !(a < b); }) ==
         v.end();
}

proto::event alert_of(const book& b, const crossing& c) {
  proto::alert_event a{b.id_at(c.row), b.owner_at(c.row), c.protocol, c.from,  c.to,
                       c.hf_before,    c.hf_after,        c.cause,    c.price, {}};
  for (const asset_id x : b.leg_assets(c.row)) a.assets.push_back(x);
  std::sort(a.assets.begin(), a.assets.end());
  a.assets.erase(std::unique(a.assets.begin(), a.assets.end()), a.assets.end());
  return {.seq = 1, .body = std::move(a)};
}

// The events a 10% ETH drop on the base book gives, plus a price event per asset.
const std::vector<proto::event>& sample_events() {
  static const std::vector<proto::event> events = [] {
    fuzz::live_state s;
    const market& m = fuzz::fixed_market();
    const asset_id eth = *m.find_asset("ETH");
    const proto::price_tick drop{eth, m.asset(eth).price * 0.9, "ws", 0.0};
    s.apply_prices({&drop, 1});
    std::vector<proto::event> out;
    for (const crossing& c : s.crossings) out.push_back(alert_of(s.b, c));
    for (std::size_t i = 0; i < m.asset_count(); ++i) {
      const auto a = asset_id::from_index(i);
      out.push_back({.seq = 1, .body = proto::price_event{a, s.b.prices()[i], "ws", 0.0}});
    }
    if (out.size() <= m.asset_count()) {
      fuzz::fail(__FILE__, __LINE__, "sample_events", "a 10% ETH drop made no alert");
    }
    return out;
  }();
  return events;
}

std::uint8_t channel_of(const proto::event_body& e) {
  if (std::holds_alternative<proto::alert_event>(e)) return proto::ch_alerts;
  if (std::holds_alternative<proto::price_event>(e)) return proto::ch_prices;
  return 0;
}

void check_subscription(const proto::subscription& sub) {
  const market& m = fuzz::fixed_market();
  FUZZ_CHECK(sub.channels != 0 && (sub.channels & ~proto::all_channels) == 0,
             "subscribe: channels outside the known set, or none");
  FUZZ_CHECK(sorted_unique(sub.protocols) && sorted_unique(sub.assets) &&
                 sorted_unique(sub.positions) && sorted_unique(sub.owners),
             "subscribe: a filter list is not sorted and unique");
  for (const protocol_id p : sub.protocols) {
    FUZZ_CHECK(p.valid() && p.index() < m.protocol_count(), "subscribe: unknown protocol id");
  }
  for (const asset_id a : sub.assets) {
    FUZZ_CHECK(a.valid() && a.index() < m.asset_count(), "subscribe: unknown asset id");
  }
  FUZZ_CHECK(sub.protocols.size() <= limits.max_list && sub.assets.size() <= limits.max_list &&
                 sub.positions.size() <= limits.max_list && sub.owners.size() <= limits.max_list,
             "subscribe: a filter list longer than max_list");
  for (const proto::event& e : sample_events()) {
    if (sub.matches(e.body)) {
      FUZZ_CHECK((sub.channels & channel_of(e.body)) != 0,
                 "subscribe: an event matched a channel the subscription left out");
    }
  }
}

void check_prices(const proto::prices_msg& msg) {
  FUZZ_CHECK(!msg.ticks.empty() && msg.ticks.size() <= limits.max_batch,
             "prices: batch size outside 1..max_batch");
  for (const proto::price_tick& t : msg.ticks) {
    FUZZ_CHECK(!t.source.empty() && t.source.size() <= 128 && fuzz::valid_utf8(t.source),
               "prices: source not 1..128 bytes of UTF-8");
  }
  fuzz::live_state s;
  s.apply_prices(msg.ticks);
  for (const proto::price_tick& t : msg.ticks) {
    const proto::event e{.seq = 2, .body = proto::price_event{t.asset, t.price, t.source, t.ts}};
    const std::string text = proto::encode_event(e, fuzz::fixed_market());
    FUZZ_CHECK(valid_json(text), "encode_event(price) is not JSON: " + text);
  }
  for (const crossing& c : s.crossings) {
    const std::string text = proto::encode_event(alert_of(s.b, c), fuzz::fixed_market());
    FUZZ_CHECK(valid_json(text), "encode_event(alert) is not JSON: " + text);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view frame = fuzz::as_text(data, size);
  const proto::client_message msg =
      proto::decode_client_message(frame, fuzz::fixed_market(), limits);
  const proto::client_message reference =
      proto::detail::decode_client_message_reference(frame, fuzz::fixed_market(), limits);
  FUZZ_CHECK(msg == reference, "decode_client_message differs from its reference path");
  if (const auto single =
          proto::detail::decode_client_message_single_pass(frame, fuzz::fixed_market(), limits)) {
    FUZZ_CHECK(*single == reference, "the single pass differs from the reference path");
  }

  if (!msg.id.empty()) {
    FUZZ_CHECK(valid_json(msg.id), "the echoed id is not JSON: " + msg.id);
    FUZZ_CHECK(msg.id.front() != '{' && msg.id.front() != '[',
               "the echoed id is not a scalar: " + msg.id);
    // The echo is canonical: sent back as an id, it is echoed unchanged.
    const std::string again = R"({"op":"ping","id":)" + msg.id + "}";
    const proto::client_message echo =
        proto::decode_client_message(again, fuzz::fixed_market(), limits);
    FUZZ_CHECK(echo.id == msg.id && std::holds_alternative<proto::ping_msg>(echo.body),
               "the echoed id, sent back, is not echoed the same: " + msg.id + " -> " + echo.id);
  }
  const std::string ack = proto::encode_ack(msg.id, 7);
  FUZZ_CHECK(valid_json(ack), "encode_ack is not JSON: " + ack);
  const std::string pong = proto::encode_pong(msg.id);
  FUZZ_CHECK(valid_json(pong), "encode_pong is not JSON: " + pong);

  if (const auto* e = std::get_if<proto::wire_error>(&msg.body)) {
    FUZZ_CHECK(!e->message.empty() && fuzz::valid_utf8(e->message),
               "a refusal without a UTF-8 message");
    const std::string text = proto::encode_error(msg.id, *e);
    FUZZ_CHECK(valid_json(text), "encode_error is not JSON: " + text);
  } else if (const auto* sub = std::get_if<proto::subscribe_msg>(&msg.body)) {
    check_subscription(sub->sub);
  } else if (const auto* prices = std::get_if<proto::prices_msg>(&msg.body)) {
    check_prices(*prices);
  } else if (const auto* un = std::get_if<proto::unsubscribe_msg>(&msg.body)) {
    FUZZ_CHECK(un->channels != 0 && (un->channels & ~proto::all_channels) == 0,
               "unsubscribe: channels outside the known set, or none");
  }
  return 0;
}
