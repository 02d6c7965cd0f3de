#include "server/cli_args.hpp"

#include <absl/strings/str_cat.h>

#include <algorithm>
#include <charconv>
#include <cmath>

namespace cascade::server {

namespace {

absl::string_view sv(std::string_view s) { return {s.data(), s.size()}; }

}  // namespace

absl::StatusOr<double> parse_number(std::string_view text, std::string_view what) {
  double v = 0.0;
  const auto* end = text.data() + text.size();
  const auto res = std::from_chars(text.data(), end, v);
  if (text.empty() || res.ec != std::errc{} || res.ptr != end || !std::isfinite(v)) {
    return absl::InvalidArgumentError(
        absl::StrCat(sv(what), ": '", sv(text), "' is not a finite number"));
  }
  return v;
}

absl::StatusOr<cli_args> cli_args::parse(std::span<const std::string_view> args,
                                         std::span<const std::string_view> known,
                                         std::span<const std::string_view> flags) {
  cli_args out;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string_view a = args[i];
    if (!a.starts_with("--")) {
      out.positional_.emplace_back(a);
      continue;
    }
    std::string_view name = a.substr(2);
    std::optional<std::string_view> value;
    if (const auto eq = name.find('='); eq != std::string_view::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    const bool is_flag = std::find(flags.begin(), flags.end(), name) != flags.end();
    if (!is_flag && std::find(known.begin(), known.end(), name) == known.end()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown option --", sv(name)));
    }
    if (is_flag) {
      if (value) {
        return absl::InvalidArgumentError(absl::StrCat("option --", sv(name), " takes no value"));
      }
      out.options_.emplace_back(name, "");
      continue;
    }
    if (!value) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(absl::StrCat("option --", sv(name), " needs a value"));
      }
      value = args[++i];
    }
    out.options_.emplace_back(name, *value);
  }
  return out;
}

bool cli_args::has(std::string_view name) const {
  return std::any_of(options_.begin(), options_.end(),
                     [&](const auto& o) { return o.first == name; });
}

std::optional<std::string> cli_args::get(std::string_view name) const {
  std::optional<std::string> v;
  for (const auto& [n, value] : options_) {
    if (n == name) v = value;
  }
  return v;
}

std::vector<std::string> cli_args::all(std::string_view name) const {
  std::vector<std::string> out;
  for (const auto& [n, value] : options_) {
    if (n == name) out.push_back(value);
  }
  return out;
}

absl::StatusOr<double> cli_args::number(std::string_view name, double fallback) const {
  const auto v = get(name);
  if (!v) return fallback;
  return parse_number(*v, absl::StrCat("--", sv(name)));
}

absl::StatusOr<std::uint64_t> cli_args::count(std::string_view name, std::uint64_t fallback,
                                              std::uint64_t min, std::uint64_t max) const {
  const auto v = get(name);
  if (!v) return fallback;
  std::uint64_t n = 0;
  const auto* end = v->data() + v->size();
  const auto res = std::from_chars(v->data(), end, n);
  if (v->empty() || res.ec != std::errc{} || res.ptr != end || n < min || n > max) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", sv(name), ": '", *v, "' is not a whole number in [", min, ", ", max, "]"));
  }
  return n;
}

}  // namespace cascade::server
