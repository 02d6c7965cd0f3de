// A minimal streaming JSON writer into a std::string.
//
// Doubles are written in the shortest form that reads back to the same bits
// (std::to_chars); NaN and infinities, which JSON cannot carry, are written as null.
// Strings are escaped per RFC 8259. The writer tracks commas itself; callers only say
// what comes next. Not thread-safe; allocates as the output grows; never throws except
// std::bad_alloc.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace cascade::proto {

class json_writer {
 public:
  json_writer& begin_object();
  json_writer& end_object();
  json_writer& begin_array();
  json_writer& end_array();
  json_writer& key(std::string_view k);

  json_writer& value(double v);
  json_writer& value(std::int64_t v);
  json_writer& value(std::uint64_t v);
  json_writer& value(int v) { return value(static_cast<std::int64_t>(v)); }
  json_writer& value(unsigned v) { return value(static_cast<std::uint64_t>(v)); }
  json_writer& value(bool v);
  json_writer& value(std::string_view v);
  json_writer& value(const char* v) { return value(std::string_view(v)); }
  json_writer& null();
  // Inserts already-encoded JSON as one value.
  json_writer& raw(std::string_view json);

  template <class T>
  json_writer& field(std::string_view k, const T& v) {
    key(k);
    return value(v);
  }

  [[nodiscard]] const std::string& str() const { return out_; }
  [[nodiscard]] std::string take() { return std::move(out_); }

 private:
  void separate();

  std::string out_;
  // One entry per open container: true once it holds a value.
  std::vector<bool> has_value_;
  bool after_key_ = false;
};

// Appends `s` to `out` as a JSON string literal, quotes included.
void append_json_string(std::string& out, std::string_view s);
// Appends `v` in its shortest round-trip form, or null when not finite.
void append_json_number(std::string& out, double v);

}  // namespace cascade::proto
