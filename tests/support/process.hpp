// Runs a program and captures its exit code, stdout and stderr: the way tests drive the
// real `cascade` binary. POSIX only; blocks until the program ends.
#pragma once

#include <string>
#include <vector>

namespace cascade::testing {

struct process_result {
  int exit_code = -1;
  std::string out;
  std::string err;
};

process_result run_process(const std::vector<std::string>& argv,
                           const std::string& stdin_text = "");

// Writes `text` to a fresh file under the test output directory and returns its path.
std::string write_temp_file(const std::string& name, const std::string& text);

std::string read_file(const std::string& path);

}  // namespace cascade::testing
