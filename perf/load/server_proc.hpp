// The server process as the load tool sees it: start `cascade serve` on a free port and
// stop it, and read its CPU time and resident memory from /proc. Linux only.
//
// Called from the tool's main thread only. Throws nothing; allocates.
#pragma once

#include <absl/status/statusor.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace cascade::load {

struct spawned_server {
  pid_t pid = 0;
  std::uint16_t port = 0;
  std::string host;
  std::string token;  // an admin token made for this run
};

// Runs `binary serve [--config config] --port 0 [--set ...] [extra ...]` with a fresh admin token in
// CASCADE_TOKENS and waits (up to `timeout_s`) for its `listening http://HOST:PORT`
// line. The child dies with this process (PR_SET_PDEATHSIG); its stderr is ours.
[[nodiscard]] absl::StatusOr<spawned_server> spawn_server(const std::string& binary,
                                                          const std::string& config,
                                                          const std::vector<std::string>& sets,
                                                          const std::vector<std::string>& extra,
                                                          double timeout_s);
// SIGTERM, then SIGKILL if it has not exited after `grace_s`. Returns its exit status
// (as waitpid reports it) or -1.
int stop_server(pid_t pid, double grace_s);

struct proc_sample {
  double cpu_s = 0.0;      // user + system, every thread
  std::uint64_t rss_kb = 0;
};
[[nodiscard]] absl::StatusOr<proc_sample> read_proc(pid_t pid);

struct thread_cpu {
  pid_t tid = 0;
  std::string name;
  double cpu_s = 0.0;
};
// Every thread of `pid` with its CPU time so far.
[[nodiscard]] std::vector<thread_cpu> read_threads(pid_t pid);

// This process's own CPU time (user + system).
[[nodiscard]] double self_cpu_s();

}  // namespace cascade::load
