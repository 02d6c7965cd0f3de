// The report is a pure function of its input: the same scenario gives the same bytes,
// run after run, whatever order the positions' ids hash in.
#include <catch2/catch.hpp>

#include "support/process.hpp"

using cascade::testing::run_process;
using cascade::testing::write_temp_file;

TEST_CASE("cli: the same input gives the same report bytes", "[cli]") {
  const std::string bin = CASCADE_BINARY;
  const auto book = run_process({bin, "gen", "--positions", "20000", "--seed", "11"});
  REQUIRE(book.exit_code == 0);
  const std::string csv = write_temp_file("bytes.csv", book.out);
  const std::vector<std::string> argv{bin,       "stress",    "--positions", csv,
                                      "--shock", "ETH=-0.25", "--shock",     "WBTC=-0.1"};
  const auto first = run_process(argv);
  REQUIRE(first.exit_code == 0);
  CHECK(first.out.find("\"rounds\"") != std::string::npos);
  for (int i = 0; i < 3; ++i) CHECK(run_process(argv).out == first.out);
  const std::string scenario =
      std::string(CASCADE_SOURCE_DIR) + "/proto/examples/scenario_multi_protocol.json";
  const auto a = run_process({bin, "stress", scenario});
  const auto b = run_process({bin, "stress", scenario});
  REQUIRE(a.exit_code == 0);
  CHECK(a.out == b.out);
}
