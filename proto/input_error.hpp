// Internal to proto/, shared by the loaders (scenario JSON, positions CSV, TOML config):
// reading a file, how an error in an input names its place, and which field of an
// asset or protocol the market refused.
//
// Every loader error reads "SOURCE:LINE: PATH: REASON" (the line or the path left out
// where unknown), so that a user can go straight to the offending value. Functions
// only (no state): any thread. They allocate only to build an error or read a file, and
// throw nothing but std::bad_alloc.
#pragma once

#include <absl/status/status.h>
#include <absl/status/statusor.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/string_view.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

#include "engine/market.hpp"

namespace cascade::proto::detail {

// absl::StrCat and StrAppend over arguments that may include std::string_view, which
// Debian's abseil (with its own string_view type) does not take directly.
template <class T>
decltype(auto) alpha(const T& v) {
  if constexpr (std::is_convertible_v<const T&, std::string_view> &&
                !std::is_convertible_v<const T&, absl::string_view>) {
    const std::string_view s(v);
    return absl::string_view(s.data(), s.size());
  } else {
    return (v);
  }
}
template <class... T>
[[nodiscard]] std::string cat(const T&... v) {
  return absl::StrCat(alpha(v)...);
}
template <class... T>
void append(std::string* out, const T&... v) {
  absl::StrAppend(out, alpha(v)...);
}

// A status message as std::string_view.
[[nodiscard]] inline std::string_view text(const absl::Status& s) {
  return {s.message().data(), s.message().size()};
}

// Reads a whole file. `reserve_extra` spare bytes of capacity are left after the
// contents (simdjson parses in place when its padding fits). NotFound for a missing
// file, InvalidArgument for any other failure, both naming the path and the cause.
[[nodiscard]] absl::StatusOr<std::string> read_file(const std::string& path,
                                                    std::size_t reserve_extra = 0);

// InvalidArgument "source:line: path: reason"; line 0 and an empty path are left out.
[[nodiscard]] absl::Status input_error(std::string_view source, std::size_t line,
                                       std::string_view path, std::string_view reason);

// The 1-based line of byte `offset` in `text` (offsets past the end count as the end).
[[nodiscard]] std::size_t line_of(std::string_view text, std::size_t offset);

// `s` in single quotes for a message, cut to a readable length (at a UTF-8 character
// boundary), control bytes escaped.
[[nodiscard]] std::string quoted(std::string_view s);

// A key from the input as one step of a path: as written when it is short and plain
// (letters, digits, '_', '-', '$', '@', ':', '/'), else quoted().
[[nodiscard]] std::string path_key(std::string_view key);

// Which part of a spec the market refused. The market's own message says why; this
// says where, so the loaders can point at the field (JSON path, TOML line).
enum class spec_field : std::uint8_t {
  none,  // not located: point at the whole asset or protocol
  symbol,
  price,
  pool,
  derived,       // the asset's derived table as a whole
  derived_base,  // derived.base: unknown, or itself derived
  ratio_pool,    // derived.ratio_pool: bad reserves, or a ratio off the prices
  name,
  close_factor,
  full_liquidation_hf,
  collateral_entry,       // protocol assets.SYMBOL: unknown or repeated asset
  liquidation_threshold,  // protocol assets.SYMBOL.liquidation_threshold
  liquidation_bonus,      // protocol assets.SYMBOL.liquidation_bonus
};

struct spec_fault {
  spec_field field = spec_field::none;
  std::size_t entry = 0;  // index into protocol_spec::assets for the collateral fields
};

// Called after market::add_asset refused `spec` (with the market as it was).
[[nodiscard]] spec_fault locate_asset_fault(const market& m, const asset_spec& spec);
// Called after market::add_protocol refused `spec` (with the market as it was).
[[nodiscard]] spec_fault locate_protocol_fault(const market& m, const protocol_spec& spec);

// The path suffix of a fault below an asset or protocol: "price", "pool",
// "derived.ratio_pool", "assets.ETH.liquidation_threshold", ...; empty for
// spec_field::none.
[[nodiscard]] std::string fault_path(const spec_fault& f, const protocol_spec* p);

}  // namespace cascade::proto::detail
