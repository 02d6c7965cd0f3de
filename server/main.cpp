#include <iostream>
#include <string_view>
#include <vector>

#include "server/cli.hpp"

int main(int argc, char** argv) {
  std::vector<std::string_view> args(argv + 1, argv + argc);
  return cascade::server::run_cli(args, std::cout, std::cerr);
}
