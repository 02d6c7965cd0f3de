// cascade curves SCENARIO.json | --config FILE  --asset A [--positions FILE.csv]
//   [--amplification X] [--max-rounds N] [--svg FILE]
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <ostream>
#include <string>

#include "engine/curves.hpp"
#include "proto/rest_codec.hpp"
#include "server/cli.hpp"
#include "server/cli_commands.hpp"
#include "server/cli_inputs.hpp"
#include "server/curves_svg.hpp"

namespace cascade::server {

namespace {

// The image goes to a new temporary file beside FILE, renamed over FILE once complete, so a
// failure never leaves a truncated image (nor touches an existing one). The temporary
// file is opened before the curves are computed: a path that cannot be written fails
// at once.
class svg_output {
 public:
  static absl::StatusOr<svg_output> open(const std::string& path) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) {
      return absl::InvalidArgumentError("--svg " + path + ": is a directory");
    }
    svg_output o;
    o.path_ = path;
    o.tmp_ = path + ".XXXXXX";
    const int fd = ::mkstemp(o.tmp_.data());
    if (fd < 0) {
      return absl::InvalidArgumentError("--svg " + path + ": cannot write: " +
                                        std::strerror(errno));
    }
    // mkstemp makes the file private (0600); an image for reports gets the usual mode.
    const mode_t mask = ::umask(0);
    ::umask(mask);
    (void)::fchmod(fd, 0666 & ~mask);
    o.f_ = ::fdopen(fd, "wb");
    if (o.f_ == nullptr) {
      const int e = errno;
      ::close(fd);
      std::remove(o.tmp_.c_str());
      return absl::InternalError(std::string("--svg: fdopen: ") + std::strerror(e));
    }
    return o;
  }
  svg_output(svg_output&& other) noexcept
      : path_(std::move(other.path_)), tmp_(std::move(other.tmp_)), f_(other.f_) {
    other.f_ = nullptr;
  }
  svg_output& operator=(svg_output&&) = delete;
  svg_output(const svg_output&) = delete;
  svg_output& operator=(const svg_output&) = delete;
  ~svg_output() {
    if (f_ != nullptr) {
      std::fclose(f_);
      std::remove(tmp_.c_str());
    }
  }

  absl::Status commit(const std::string& text) {
    const bool wrote = std::fwrite(text.data(), 1, text.size(), f_) == text.size();
    const int write_errno = errno;
    const bool closed = std::fclose(f_) == 0;
    const int close_errno = errno;
    f_ = nullptr;
    if (!wrote || !closed) {
      std::remove(tmp_.c_str());
      return absl::InvalidArgumentError("--svg " + path_ + ": cannot write: " +
                                        std::strerror(wrote ? close_errno : write_errno));
    }
    if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
      const int e = errno;
      std::remove(tmp_.c_str());
      return absl::InvalidArgumentError("--svg " + path_ + ": cannot write: " +
                                        std::strerror(e));
    }
    return absl::OkStatus();
  }

 private:
  svg_output() = default;
  std::string path_;
  std::string tmp_;
  std::FILE* f_ = nullptr;
};

}  // namespace

int cmd_curves(command_args args, std::ostream& out, std::ostream& err) {
  constexpr std::string_view known[] = {"config",     "positions",         "asset",
                                        "amplification", "bad-debt-fraction", "max-rounds",
                                        "svg"};
  const auto fail = [&](const absl::Status& s) {
    err << "cascade curves: " << s.message() << '\n';
    return exit_bad_input;
  };
  auto a = cli_args::parse(args, known);
  if (!a.ok()) return fail(a.status());
  const auto symbol = a->get("asset");
  if (!symbol) return fail(absl::InvalidArgumentError("--asset SYMBOL is required"));
  auto w = load_world(*a);
  if (!w.ok()) return fail(w.status());
  const auto asset = w->mkt->find_asset(*symbol);
  if (!asset) return fail(absl::InvalidArgumentError("--asset: unknown asset '" + *symbol + "'"));
  critical_shock_options co;
  if (auto s = apply_critical_options(*a, co); !s.ok()) return fail(s);
  auto rounds = a->count("max-rounds", w->max_rounds, 1, 1'000'000);
  if (!rounds.ok()) return fail(rounds.status());
  co.max_rounds = static_cast<std::uint32_t>(*rounds);
  auto b = build_book(*w);
  if (!b.ok()) return fail(b.status());
  std::optional<svg_output> svg;
  if (const auto path = a->get("svg")) {
    if (path->empty()) return fail(absl::InvalidArgumentError("--svg: needs a file name"));
    auto o = svg_output::open(*path);
    if (!o.ok()) return fail(o.status());
    svg.emplace(*std::move(o));
  }

  cascade_simulator sim;
  auto curves = standard_curves(**b, *asset, sim, co);
  if (!curves.ok()) return fail(curves.status());
  if (svg) {
    const std::string image = curves_svg({.asset = *symbol,
                                          .price = (*b)->prices()[asset->index()],
                                          .curves = &*curves,
                                          .amplification = co.amplification});
    if (auto s = svg->commit(image); !s.ok()) return fail(s);
  }
  out << proto::encode_curves(**b, *asset, curves->liquidation, curves->cascade, curves->critical,
                              co)
      << '\n';
  return exit_ok;
}

}  // namespace cascade::server
