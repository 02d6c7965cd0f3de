// Reading JSON that the encoders wrote back, for the codec tests (simdjson DOM).
#pragma once

#include <simdjson.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <string_view>

namespace cascade::testing {

// Parses `text` (which must be valid JSON); the element lives as long as `p`'s next parse.
inline simdjson::dom::element json_parse(simdjson::dom::parser& p, const std::string& text) {
  simdjson::dom::element doc;
  INFO(text);
  REQUIRE(p.parse(text).get(doc) == simdjson::SUCCESS);
  return doc;
}

inline std::string_view json_str(simdjson::dom::element e, const char* k) {
  std::string_view s;
  INFO(k);
  REQUIRE(e[k].get(s) == simdjson::SUCCESS);
  return s;
}

inline double json_num(simdjson::dom::element e, const char* k) {
  double d = 0.0;
  INFO(k);
  REQUIRE(e[k].get(d) == simdjson::SUCCESS);
  return d;
}

inline std::uint64_t json_uint(simdjson::dom::element e, const char* k) {
  std::uint64_t u = 0;
  INFO(k);
  REQUIRE(e[k].get(u) == simdjson::SUCCESS);
  return u;
}

inline bool json_is_null(simdjson::dom::element e, const char* k) {
  simdjson::dom::element v;
  INFO(k);
  REQUIRE(e[k].get(v) == simdjson::SUCCESS);
  return v.is_null();
}

}  // namespace cascade::testing
