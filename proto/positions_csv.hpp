// Positions in CSV, one row per leg (DESIGN.md "Scenario and report documents"):
//   id,protocol,asset,collateral,debt[,owner]
// The header names the columns, in any order; `owner` is optional. Rows of one position
// need not be adjacent: positions come out in order of their id's first row, legs in
// row order, and every row of an id must agree on protocol and owner. Amounts are
// finite numbers >= 0 in plain decimal or exponent form (std::from_chars). A trailing
// newline, CRLF line ends and a UTF-8 byte-order mark are accepted; a CR anywhere else
// in a row is refused, and so is quoting (ids never hold commas): a quote character is
// refused with its own message. The text must be UTF-8 (ids and owners end up in JSON);
// the first line that is not is named.
//
// The parser is a UTF-8 check (simdjson, at memory speed) and then a single pass over
// the bytes (memchr, from_chars, one hash lookup per new id), built for files of
// millions of rows. Errors read
//   positions.csv:7: column 'debt': 'abc' is not a number
// The writer emits the same format with doubles in shortest round-trip form, so
// write -> parse gives back identical positions, and whatever the parser accepts the
// writer writes back.
//
// Pure functions: any thread, no shared state. They allocate; they throw nothing but
// std::bad_alloc.
#pragma once

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <iosfwd>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/book.hpp"
#include "engine/market.hpp"

namespace cascade::proto {

// Parses CSV text against the market `m` (protocol and asset names resolve to its ids).
[[nodiscard]] absl::StatusOr<std::vector<position_input>> parse_positions_csv(
    std::string_view text, const market& m, std::string_view source_name);

// Reads and parses a CSV file; errors name the path.
[[nodiscard]] absl::StatusOr<std::vector<position_input>> load_positions_csv(
    const std::string& path, const market& m);

// Appends the positions as CSV (header included) to `out`. The `owner` column is
// written only when some position has an owner. Refuses, before appending anything,
// what would not read back the same: an empty or repeated id, an id or owner holding a
// comma, quote or line break, a position without legs, an unknown protocol or asset,
// a negative or non-finite amount, or a collateral leg the protocol does not accept.
[[nodiscard]] absl::Status append_positions_csv(std::string& out,
                                                std::span<const position_input> positions,
                                                const market& m);

// As append_positions_csv, streamed to `os` in chunks; also fails if the stream does.
[[nodiscard]] absl::Status write_positions_csv(std::ostream& os,
                                               std::span<const position_input> positions,
                                               const market& m);

}  // namespace cascade::proto
