// Internal to proto/: small pieces every simdjson On-Demand decoder here needs (the
// scenario document, WebSocket frames, REST bodies), so each names JSON types, trims
// tokens, locates the root's end and tracks known keys the same way. Pure, header-only;
// no allocation.
#pragma once

#include <simdjson.h>

#include <array>
#include <cstddef>
#include <span>
#include <string_view>
#include <utility>

namespace cascade::proto::detail {

// "an array", "a number", ...: for "expected X, got Y" messages.
[[nodiscard]] inline std::string_view type_name(simdjson::ondemand::json_type t) {
  using simdjson::ondemand::json_type;
  switch (t) {
    case json_type::array:
      return "an array";
    case json_type::object:
      return "an object";
    case json_type::number:
      return "a number";
    case json_type::string:
      return "a string";
    case json_type::boolean:
      return "a boolean";
    case json_type::null:
      return "null";
  }
  return "a value";
}

[[nodiscard]] inline bool json_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// The text of a scalar token, without the whitespace after it.
[[nodiscard]] inline std::string_view trimmed_token(simdjson::ondemand::value& v) {
  std::string_view raw = v.raw_json_token();
  while (!raw.empty() && json_space(raw.back())) raw.remove_suffix(1);
  return raw;
}

// Where the root container of `text` ends (one past its closing bracket), by bracket
// matching outside strings; npos when it never closes. Only used to explain an error
// that simdjson reports without saying whether the input is cut short or followed by
// more content.
[[nodiscard]] inline std::size_t root_end(std::string_view text) {
  std::size_t depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (depth == 0) return i;  // a stray closer: content after the document
      if (--depth == 0) return i + 1;
    }
  }
  return std::string_view::npos;
}

// Tracks which known keys of one object were seen, to refuse repeats and unknown keys
// and to report missing required keys.
template <std::size_t N>
class key_set {
 public:
  explicit constexpr key_set(std::array<std::string_view, N> names) : names_(names) {}
  // Index of `k` among the known names, or N.
  [[nodiscard]] std::size_t find(std::string_view k) const {
    for (std::size_t i = 0; i < N; ++i) {
      if (names_[i] == k) return i;
    }
    return N;
  }
  // False when the key was seen before.
  bool mark(std::size_t i) { return !std::exchange(seen_[i], true); }
  [[nodiscard]] bool seen(std::size_t i) const { return seen_[i]; }
  [[nodiscard]] std::string_view name(std::size_t i) const { return names_[i]; }
  [[nodiscard]] std::span<const std::string_view> names() const { return names_; }

 private:
  std::array<std::string_view, N> names_;
  std::array<bool, N> seen_{};
};

}  // namespace cascade::proto::detail
