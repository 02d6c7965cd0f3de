#include "proto/json_writer.hpp"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <limits>

using cascade::proto::json_writer;

TEST_CASE("json writer places commas and escapes strings", "[proto][json]") {
  json_writer w;
  w.begin_object()
      .field("a", 1)
      .field("s", std::string_view("q\"\\\n\x01"))
      .key("arr")
      .begin_array()
      .value(true)
      .null()
      .begin_object()
      .end_object()
      .end_array()
      .key("empty")
      .begin_array()
      .end_array()
      .end_object();
  CHECK(w.str() == R"({"a":1,"s":"q\"\\\n\u0001","arr":[true,null,{}],"empty":[]})");
}

TEST_CASE("json writer writes doubles that read back to the same bits", "[proto][json]") {
  for (double v : {0.1, 1.0 / 3.0, 2290.5, 1e-300, 6.02214076e23, -0.0, 123456789.12345678}) {
    json_writer w;
    w.value(v);
    CHECK(std::strtod(w.str().c_str(), nullptr) == v);
  }
  json_writer w;
  w.begin_array()
      .value(std::numeric_limits<double>::quiet_NaN())
      .value(std::numeric_limits<double>::infinity())
      .end_array();
  CHECK(w.str() == "[null,null]");
}
