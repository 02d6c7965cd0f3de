#include "perf/load/server_proc.hpp"

#include "perf/load/text.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

extern char** environ;

namespace cascade::load {

namespace {

std::string fresh_token() {
  std::random_device rd;
  std::string t = "load-";
  static constexpr char hex[] = "0123456789abcdef";
  for (int i = 0; i < 32; ++i) t += hex[rd() % 16];
  return t;
}

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// utime + stime (fields 14 and 15) of a /proc/.../stat line, in seconds. The command
// name (field 2) is in parentheses and may hold spaces: fields are counted after ')'.
absl::StatusOr<std::pair<std::string, double>> parse_stat(const std::string& text) {
  const std::size_t open = text.find('(');
  const std::size_t close = text.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open) {
    return absl::DataLossError("unreadable stat line");
  }
  const std::vector<std::string_view> f =
      split(std::string_view(text).substr(close + 2), ' ');
  // After ')': field 3 (state) is f[0], so field N is f[N - 3].
  if (f.size() < 13) return absl::DataLossError("short stat line");
  std::uint64_t ut = 0, st = 0;
  if (!parse_number(f[11], ut) || !parse_number(f[12], st)) {
    return absl::DataLossError("bad utime/stime in stat line");
  }
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  return std::pair{text.substr(open + 1, close - open - 1), static_cast<double>(ut + st) / tick};
}

}  // namespace

absl::StatusOr<spawned_server> spawn_server(const std::string& binary, const std::string& config,
                                            const std::vector<std::string>& sets,
                                            const std::vector<std::string>& extra,
                                            double timeout_s) {
  if (access(binary.c_str(), X_OK) != 0) {
    return absl::InvalidArgumentError(cat("--spawn ", binary, ": not an executable file"));
  }
  spawned_server s;
  s.token = fresh_token();
  std::vector<std::string> args = {binary, "serve", "--port", "0", "--bind", "127.0.0.1"};
  if (!config.empty()) args.insert(args.end(), {"--config", config});
  for (const std::string& kv : sets) args.insert(args.end(), {"--set", kv});
  args.insert(args.end(), extra.begin(), extra.end());

  int out[2];
  if (pipe(out) != 0) return absl::InternalError(cat("pipe: ", std::strerror(errno)));
  const std::string tokens = cat("CASCADE_TOKENS=", s.token, ":admin");
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError(cat("fork: ", std::strerror(errno)));
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    close(out[1]);
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
      if (std::strncmp(*e, "CASCADE_TOKENS=", 15) != 0) env.emplace_back(*e);
    }
    env.push_back(tokens);
    std::vector<char*> argv, envp;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    execve(binary.c_str(), argv.data(), envp.data());
    std::fprintf(stderr, "cascade_load: exec %s: %s\n", binary.c_str(), std::strerror(errno));
    _exit(127);
  }
  close(out[1]);
  s.pid = pid;
  // Read its stdout until the listening line (the book loads first: seconds).
  std::string got;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<int>(timeout_s * 1e3));
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) {
      stop_server(pid, 1.0);
      close(out[0]);
      return absl::DeadlineExceededError(
          cat("the server did not print its listening line within ", timeout_s, " s"));
    }
    pollfd p{out[0], POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    char buf[512];
    const ssize_t n = read(out[0], buf, sizeof buf);
    if (n <= 0) {
      int status = 0;
      waitpid(pid, &status, 0);
      close(out[0]);
      return absl::UnavailableError(cat(
          "the server exited before listening (status ", status, "); its stderr says why"));
    }
    got.append(buf, static_cast<std::size_t>(n));
    const std::size_t at = got.find("listening http://");
    if (at == std::string::npos) continue;
    const std::size_t eol = got.find('\n', at);
    if (eol == std::string::npos) continue;
    const std::string hostport = got.substr(at + 17, eol - at - 17);
    const std::size_t colon = hostport.rfind(':');
    unsigned port = 0;
    if (colon == std::string::npos || !parse_number(std::string_view(hostport).substr(colon + 1), port)) {
      stop_server(pid, 1.0);
      close(out[0]);
      return absl::DataLossError(cat("unreadable listening line: ", hostport));
    }
    s.host = hostport.substr(0, colon);
    s.port = static_cast<std::uint16_t>(port);
    break;
  }
  // The server writes nothing more to stdout; the pipe stays open so it never gets
  // SIGPIPE, and closes with this process.
  return s;
}

int stop_server(pid_t pid, double grace_s) {
  if (pid <= 0) return -1;
  kill(pid, SIGTERM);
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<int>(grace_s * 1e3));
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(pid, SIGKILL);
  if (waitpid(pid, &status, 0) == pid) return status;
  return -1;
}

absl::StatusOr<proc_sample> read_proc(pid_t pid) {
  const std::string base = cat("/proc/", pid);
  const std::string stat = slurp(base + "/stat");
  if (stat.empty()) return absl::NotFoundError(cat("no process ", pid));
  auto cpu = parse_stat(stat);
  if (!cpu.ok()) return cpu.status();
  proc_sample s;
  s.cpu_s = cpu->second;
  const std::string status = slurp(base + "/status");
  const std::size_t at = status.find("VmRSS:");
  if (at != std::string::npos) {
    const std::size_t eol = status.find('\n', at);
    // "VmRSS:\t  123456 kB"
    std::string_view v = std::string_view(status).substr(at + 6, eol - at - 6);
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    const std::vector<std::string_view> parts = split(v, ' ');
    if (parts.empty() || !parse_number(parts[0], s.rss_kb)) {
      return absl::DataLossError(cat("unreadable VmRSS in ", base, "/status"));
    }
  }
  return s;
}

std::vector<thread_cpu> read_threads(pid_t pid) {
  std::vector<thread_cpu> out;
  const std::string dir = cat("/proc/", pid, "/task");
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    int tid = 0;
    if (!parse_number(std::string_view(e->d_name), tid)) continue;
    auto st = parse_stat(slurp(cat(dir, "/", tid, "/stat")));
    if (!st.ok()) continue;
    out.push_back({tid, st->first, st->second});
  }
  closedir(d);
  return out;
}

double self_cpu_s() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

}  // namespace cascade::load
