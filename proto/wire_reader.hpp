// Internal to proto/, shared by ws_codec.cpp and rest_codec.cpp: reading one untrusted
// JSON message (a WebSocket frame or a REST body) with simdjson On-Demand, and refusing
// it with a wire_error whose message names the field path ("prices[1].price: ...").
//
// A reader parses a padded copy of its input with a parser borrowed from the calling
// thread (small inputs) or its own (large ones, so a thread never pins a large buffer).
// One reader per message, on one thread; it allocates, and throws nothing but
// std::bad_alloc. Every read returns a `fault`: nullopt when the value was good.
#pragma once

#include <simdjson.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/ids.hpp"
#include "engine/market.hpp"
#include "proto/json_read.hpp"
#include "proto/ws_codec.hpp"

namespace cascade::proto::detail {

namespace od = simdjson::ondemand;

using fault = std::optional<wire_error>;

// `s` in single quotes for a message: cut to a readable length on a character boundary,
// control bytes and invalid UTF-8 escaped as \xNN, so that the message stays valid UTF-8
// whatever the input was.
[[nodiscard]] std::string wire_quoted(std::string_view s);

class wire_reader {
 public:
  explicit wire_reader(std::string_view text);
  ~wire_reader();
  wire_reader(const wire_reader&) = delete;
  wire_reader& operator=(const wire_reader&) = delete;

  // Parses the input (stage 1: UTF-8, strings, structure); bad_json on failure. Called
  // again, starts over from scratch: unlike rewind(), also after a read that failed
  // half-way (simdjson's iterator may then be left in its error state).
  [[nodiscard]] fault start();
  // Back to the document's start for another pass (the path is emptied).
  void rewind();
  // The root as an object: bad_json when the JSON is broken, bad_request when it is
  // another type.
  [[nodiscard]] fault root_object(od::object& out);
  // The root as an object, or false (nothing said why): for a pass that starts over on
  // any refusal. True exactly when root_object() succeeds.
  [[nodiscard]] bool try_root_object(od::object& out) {
    return doc_.get_object().get(out) == simdjson::SUCCESS;
  }
  // After the root was read whole: bad_json when anything but whitespace follows.
  [[nodiscard]] fault finish();

  // A refusal naming the current path: "PATH: REASON" (just REASON at the root).
  [[nodiscard]] wire_error error(error_code c, std::string_view reason) const;
  [[nodiscard]] wire_error json_error(simdjson::error_code e);
  [[nodiscard]] wire_error missing(std::string_view key) const;
  [[nodiscard]] wire_error repeated(std::string_view key) const;
  // `key` must be on the path already (for_each_field pushes it).
  [[nodiscard]] wire_error unknown_key(std::string_view key,
                                       std::span<const std::string_view> known) const;

  // Typed reads. A number that is not finite (1e999, or a NaN or Infinity literal, which
  // JSON cannot carry but some encoders write) is refused with `range_code`.
  [[nodiscard]] fault expect(od::value& v, od::json_type want,
                             error_code range_code = error_code::bad_request);
  [[nodiscard]] fault read_number(od::value& v, double& out,
                                  error_code range_code = error_code::bad_request);
  // An integer in [lo, hi].
  [[nodiscard]] fault read_uint(od::value& v, std::uint64_t lo, std::uint64_t hi,
                                std::uint64_t& out);
  [[nodiscard]] fault read_string(od::value& v, std::string_view& out);
  [[nodiscard]] fault read_object(od::value& v, od::object& out);
  [[nodiscard]] fault read_array(od::value& v, od::array& out);
  // A price: a finite number > 0, else bad_price.
  [[nodiscard]] fault read_price(od::value& v, double& out);
  // An amount: a finite number >= 0, else bad_request.
  [[nodiscard]] fault read_amount(od::value& v, double& out);
  // A known asset or protocol, else unknown_asset / unknown_protocol.
  [[nodiscard]] fault read_asset(od::value& v, const market& m, asset_id& out);
  [[nodiscard]] fault read_protocol(od::value& v, const market& m, protocol_id& out);
  // A scalar re-encoded canonically (numbers shortest, -0 as 0, strings re-escaped): the
  // result read again gives itself. bad_request for an object or an array.
  [[nodiscard]] fault read_scalar_json(od::value& v, std::string& out);
  // Walks any value (bounded depth), so that malformed JSON under an unused field is
  // still refused.
  [[nodiscard]] fault check_value(od::value& v, std::size_t depth = 0);

  // Calls on_field(key, value) for each field of `obj` in document order, the key pushed
  // on the path; stops at the first fault.
  template <class F>
  fault for_each_field(od::object& obj, F&& on_field) {
    for (auto result : obj) {
      od::field f;
      if (const auto e = std::move(result).get(f)) return json_error(e);
      std::string_view k;
      if (const auto e = f.unescaped_key().get(k)) return json_error(e);
      scope s(*this, k);
      if (fault x = on_field(k, f.value())) return x;
    }
    return std::nullopt;
  }
  // Calls on_element(index, value) for each element, the index pushed on the path.
  template <class F>
  fault for_each_element(od::array& arr, F&& on_element) {
    std::size_t i = 0;
    for (auto result : arr) {
      od::value v;
      if (const auto e = std::move(result).get(v)) return json_error(e);
      scope s(*this, i);
      if (fault x = on_element(i, v)) return x;
      ++i;
    }
    return std::nullopt;
  }

  // Pushes one step of the path for its lifetime.
  class scope {
   public:
    scope(wire_reader& r, std::string_view key) : r_(r) { r_.path_.push_back({key, 0, false}); }
    scope(wire_reader& r, std::size_t index) : r_(r) { r_.path_.push_back({{}, index, true}); }
    ~scope() { r_.path_.pop_back(); }
    scope(const scope&) = delete;
    scope& operator=(const scope&) = delete;

   private:
    wire_reader& r_;
  };

  [[nodiscard]] std::string path() const;

 private:
  struct step {
    std::string_view key;
    std::size_t index = 0;
    bool is_index = false;
  };
  struct slot;

  [[nodiscard]] std::size_t offset_of(od::value& v) const;
  [[nodiscard]] wire_error non_finite(std::string_view raw, error_code c) const;

  std::string_view text_;  // the padded copy's contents
  slot* slot_ = nullptr;   // the thread's parser and buffer, when borrowed
  std::unique_ptr<slot> own_;
  od::document doc_;
  bool started_ = false;  // doc_ is valid
  std::vector<step> path_;
};

// The fields of one price tick ({asset, price, source?, ts?}), fed one key at a time so
// that the same rules apply to the ticks of a `prices` array and to a `price` frame,
// whose tick fields sit beside `op` and `id`. `source` is 1..max_source_bytes; `ts` is
// 0..max_ts (a source's later ticks older than one it sent are ignored, so one absurd
// future ts would silence that source for good).
class tick_reader {
 public:
  static constexpr std::size_t max_source_bytes = 128;
  static constexpr double max_ts = 253402300799.0;  // 9999-12-31T23:59:59Z
  static constexpr std::array<std::string_view, 4> names{"asset", "price", "source", "ts"};

  tick_reader(const market& m, std::string_view default_source)
      : m_(m), default_source_(default_source) {}

  // Whether `k` is one of the tick's keys.
  [[nodiscard]] static bool knows(std::string_view k) {
    return k == "asset" || k == "price" || k == "source" || k == "ts";
  }
  // Reads the value of tick key `k` (the key on the reader's path); a repeat is refused.
  [[nodiscard]] fault field(wire_reader& r, std::string_view k, od::value& v);
  // After the object's last field (its path on the reader): refuses a missing asset or
  // price, else writes the tick.
  [[nodiscard]] fault finish(wire_reader& r, price_tick& out);

 private:
  const market& m_;
  std::string_view default_source_;
  key_set<4> keys_{names};
  price_tick tick_;
};

// A tick object.
[[nodiscard]] fault read_tick(wire_reader& r, od::value& v, const market& m,
                              std::string_view default_source, price_tick& out);
// An array of 1..max_batch tick objects (more: too_large), all or nothing.
[[nodiscard]] fault read_ticks(wire_reader& r, od::value& v, const market& m, std::size_t max_batch,
                               std::string_view default_source, std::vector<price_tick>& out);

}  // namespace cascade::proto::detail
