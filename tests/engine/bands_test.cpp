#include "engine/bands.hpp"

#include <catch2/catch.hpp>
#include <limits>

using namespace cascade;

TEST_CASE("bands are entered below their threshold, strictly", "[bands]") {
  band_classifier c(band_config{});
  CHECK(c.next(band::healthy, 1.2) == band::healthy);
  CHECK(c.next(band::healthy, 1.10) == band::healthy);
  CHECK(c.next(band::healthy, 1.0999) == band::warn);
  CHECK(c.next(band::healthy, 1.01) == band::danger);
  CHECK(c.next(band::healthy, 1.00) == band::danger);
  CHECK(c.next(band::healthy, 0.9999) == band::liquidatable);
  CHECK(c.next(band::liquidatable, std::numeric_limits<double>::infinity()) == band::healthy);
}

TEST_CASE("hysteresis: a band is left only at threshold * (1 + h)", "[bands]") {
  band_config cfg;
  cfg.hysteresis = 0.01;
  band_classifier c(cfg);
  // In liquidatable: 1.005 is above 1.00 but below 1.01, so the position stays.
  CHECK(c.next(band::liquidatable, 1.005) == band::liquidatable);
  CHECK(c.next(band::liquidatable, 1.01) == band::danger);
  // From danger, rising to 1.105: left danger (>= 1.0302) but warn's exit is 1.111.
  CHECK(c.next(band::danger, 1.105) == band::warn);
  CHECK(c.next(band::danger, 1.1111) == band::healthy);
  // Falling never waits.
  CHECK(c.next(band::warn, 1.0199) == band::danger);
}

TEST_CASE("band config validation names the rule broken", "[bands][bad-input]") {
  CHECK(band_config{}.validate().ok());
  CHECK_FALSE(band_config{1.0, 1.02, 1.0, 0.0}.validate().ok());
  CHECK_FALSE(band_config{1.1, 1.02, 0.0, 0.0}.validate().ok());
  CHECK_FALSE(band_config{1.1, 1.02, 1.0, -0.1}.validate().ok());
  CHECK_FALSE(
      band_config{std::numeric_limits<double>::quiet_NaN(), 1.02, 1.0, 0.0}.validate().ok());
  CHECK_THAT(std::string(band_config{1.1, 1.2, 1.0, 0.0}.validate().message()),
             Catch::Contains("warn > danger > liquidatable"));
}

TEST_CASE("band names round-trip", "[bands]") {
  for (auto b : {band::healthy, band::warn, band::danger, band::liquidatable}) {
    CHECK(parse_band(to_string(b)) == b);
  }
  CHECK_FALSE(parse_band("ok").has_value());
}
