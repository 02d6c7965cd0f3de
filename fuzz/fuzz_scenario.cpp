// Fuzz target: a scenario document through proto::parse_scenario (`cascade stress FILE`
// and POST /v1/stress with positions), then, when accepted, the run that follows it:
// fuzz_support.hpp check_scenario (the promises of scenario.hpp, a consistent book,
// and a cascade that accepts the run and repeats it byte for byte). A refusal must be
// an InvalidArgument whose message starts with the source name.
#include <cstdint>

#include "fuzz_support.hpp"
#include "proto/scenario.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace cascade;
  const auto sc = proto::parse_scenario(fuzz::as_text(data, size), "fuzz.json");
  if (!sc.ok()) {
    fuzz::check_refusal(sc.status(), "fuzz.json");
    return 0;
  }
  fuzz::check_scenario(*sc);
  return 0;
}
