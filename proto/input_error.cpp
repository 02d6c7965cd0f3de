#include "proto/input_error.hpp"

#include <absl/strings/str_cat.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>

namespace cascade::proto::detail {

absl::StatusOr<std::string> read_file(const std::string& path, std::size_t reserve_extra) {
  const auto cannot = [&](int err) {
    std::string msg = cat(path, ": cannot read: ", std::strerror(err));
    return err == ENOENT ? absl::NotFoundError(msg) : absl::InvalidArgumentError(msg);
  };
  errno = 0;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) return cannot(errno);
  std::string out;
  // The size is a hint (a pipe has none, a file may grow); reading to EOF decides.
  std::size_t hint = 0;
  struct stat st {};
  if (::fstat(::fileno(f.get()), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return cannot(EISDIR);
    if (S_ISREG(st.st_mode) && st.st_size > 0) hint = static_cast<std::size_t>(st.st_size);
  }
  out.reserve(hint + reserve_extra);
  out.resize(hint);
  const std::size_t got = std::fread(out.data(), 1, hint, f.get());
  out.resize(got);
  if (got == hint) {
    char buf[1 << 16];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f.get())) > 0;) out.append(buf, n);
  }
  if (std::ferror(f.get())) return cannot(errno != 0 ? errno : EIO);
  if (out.capacity() < out.size() + reserve_extra) out.reserve(out.size() + reserve_extra);
  return out;
}

absl::Status input_error(std::string_view source, std::size_t line, std::string_view path,
                         std::string_view reason) {
  std::string msg(source);
  if (line != 0) append(&msg, ":", line);
  append(&msg, ": ");
  if (!path.empty()) append(&msg, path, ": ");
  append(&msg, reason);
  return absl::InvalidArgumentError(msg);
}

std::size_t line_of(std::string_view text, std::size_t offset) {
  offset = std::min(offset, text.size());
  return 1 + static_cast<std::size_t>(std::count(
                 text.begin(), text.begin() + static_cast<std::ptrdiff_t>(offset), '\n'));
}

std::string quoted(std::string_view s) {
  constexpr std::size_t max_shown = 64;
  // A long text is cut at a character boundary: the loaders check that their input is
  // UTF-8, and a message cut inside a character would not be (it may end up in JSON).
  std::size_t shown = std::min(s.size(), max_shown);
  if (shown < s.size()) {
    while (shown > 0 && (static_cast<unsigned char>(s[shown]) & 0xC0) == 0x80) --shown;
  }
  std::string out = "'";
  for (std::size_t i = 0; i < shown; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7F) {
      constexpr std::string_view hex = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 0xF];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (shown < s.size()) out += "...";
  out += '\'';
  return out;
}

std::string path_key(std::string_view key) {
  constexpr std::size_t max_plain = 64;
  const bool plain =
      !key.empty() && key.size() <= max_plain && std::all_of(key.begin(), key.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '-' || c == '$' || c == '@' || c == ':' || c == '/';
      });
  return plain ? std::string(key) : quoted(key);
}

namespace {

// market::add_asset's pool rule: finite positive reserves whose quote/base is `price`.
bool pool_fits(const pool& p, double price) {
  return is_positive_finite(p.base) && is_positive_finite(p.quote) &&
         std::abs(p.quote / p.base / price - 1.0) <= pool_price_tolerance;
}

}  // namespace

spec_fault locate_asset_fault(const market& m, const asset_spec& spec) {
  if (spec.symbol.empty() || m.find_asset(spec.symbol)) return {spec_field::symbol};
  if (!is_positive_finite(spec.price)) return {spec_field::price};
  if (spec.liquidity && (!spec.derived || !pool_fits(*spec.liquidity, spec.price))) {
    return {spec_field::pool};
  }
  if (!spec.derived) return {};
  // The order of market::add_asset's derived checks.
  const auto base = m.find_asset(spec.derived->base);
  if (!base || m.base_of(*base)) return {spec_field::derived_base};
  if (spec.liquidity) return {spec_field::pool};  // a pool where a ratio_pool belongs
  if (spec.derived->ratio_pool) return {spec_field::ratio_pool};
  return {spec_field::derived};
}

spec_fault locate_protocol_fault(const market& m, const protocol_spec& spec) {
  if (spec.name.empty() || m.find_protocol(spec.name)) return {spec_field::name};
  if (!(spec.close_factor > 0.0 && spec.close_factor <= 1.0)) return {spec_field::close_factor};
  if (!(spec.full_liquidation_hf >= 0.0 && spec.full_liquidation_hf <= 1.0)) {
    return {spec_field::full_liquidation_hf};
  }
  for (std::size_t i = 0; i < spec.assets.size(); ++i) {
    // Named references, not a structured binding: clang 14 (the fuzz preset) cannot
    // capture a binding in the lambda below.
    const auto& symbol = spec.assets[i].first;
    const auto& params = spec.assets[i].second;
    const bool repeated =
        std::any_of(spec.assets.begin(), spec.assets.begin() + static_cast<std::ptrdiff_t>(i),
                    [&](const auto& e) { return e.first == symbol; });
    if (!m.find_asset(symbol) || repeated) return {spec_field::collateral_entry, i};
    if (!(params.liquidation_threshold > 0.0 && params.liquidation_threshold <= 1.0)) {
      return {spec_field::liquidation_threshold, i};
    }
    if (!(params.liquidation_bonus >= 0.0 && params.liquidation_bonus < 1.0)) {
      return {spec_field::liquidation_bonus, i};
    }
  }
  return {};
}

std::string fault_path(const spec_fault& f, const protocol_spec* p) {
  const auto entry = [&] {
    return p != nullptr && f.entry < p->assets.size()
               ? cat("assets.", path_key(p->assets[f.entry].first))
               : std::string("assets");
  };
  switch (f.field) {
    case spec_field::none:
      return {};
    case spec_field::symbol:
      return "symbol";
    case spec_field::price:
      return "price";
    case spec_field::pool:
      return "pool";
    case spec_field::derived:
      return "derived";
    case spec_field::derived_base:
      return "derived.base";
    case spec_field::ratio_pool:
      return "derived.ratio_pool";
    case spec_field::name:
      return "name";
    case spec_field::close_factor:
      return "close_factor";
    case spec_field::full_liquidation_hf:
      return "full_liquidation_hf";
    case spec_field::collateral_entry:
      return entry();
    case spec_field::liquidation_threshold:
      return cat(entry(), ".liquidation_threshold");
    case spec_field::liquidation_bonus:
      return cat(entry(), ".liquidation_bonus");
  }
  return {};
}

}  // namespace cascade::proto::detail
