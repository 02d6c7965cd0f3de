#include "proto/positions_csv.hpp"

#include <absl/container/flat_hash_map.h>
#include <absl/container/flat_hash_set.h>
#include <absl/strings/str_cat.h>
#include <simdjson.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <ostream>
#include <system_error>

#include "proto/input_error.hpp"

namespace cascade::proto {

namespace {

enum column : std::uint8_t { col_id, col_protocol, col_asset, col_collateral, col_debt, col_owner };
constexpr std::size_t column_count = 6;
constexpr std::array<std::string_view, column_count> column_names{
    "id", "protocol", "asset", "collateral", "debt", "owner"};
constexpr std::string_view expected_columns =
    "expected the columns id, protocol, asset, collateral, debt and optionally owner";

// Splits off the next line of [p, end), without its line end ("\n" or "\r\n").
std::string_view next_line(const char*& p, const char* end) {
  const char* nl =
      static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(end - p)));
  const char* line_end = nl != nullptr ? nl : end;
  std::string_view line(p, static_cast<std::size_t>(line_end - p));
  p = nl != nullptr ? nl + 1 : end;
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

std::size_t count_fields(std::string_view line) {
  std::size_t n = 1;
  for (const char c : line) n += c == ',';
  return n;
}

class csv_parser {
 public:
  csv_parser(std::string_view text, const market& m, std::string_view source)
      : text_(text), market_(m), source_(source) {}

  absl::StatusOr<std::vector<position_input>> run();

 private:
  [[nodiscard]] absl::Status fail(std::string_view reason) const {
    return detail::input_error(source_, line_no_, "", reason);
  }
  [[nodiscard]] absl::Status fail(column c, std::string_view reason) const {
    return detail::input_error(source_, line_no_, detail::cat("column '", column_names[c], "'"),
                               reason);
  }
  absl::Status not_utf8(const char* p, const char* end);
  absl::Status read_header(std::string_view line);
  absl::Status read_row(std::string_view line);
  absl::Status read_amount(column c, std::string_view field, double& out) const;

  std::string_view text_;
  const market& market_;
  std::string_view source_;
  std::size_t line_no_ = 1;

  // Header: the column of each field, in file order.
  std::array<column, column_count> field_column_{};
  std::size_t field_count_ = 0;
  bool has_owner_ = false;

  std::vector<position_input> positions_;
  std::vector<std::size_t> first_line_;  // per position: the line of its first row
  absl::flat_hash_map<absl::string_view, std::uint32_t> index_;  // id -> positions_ slot

  // The previous row's names, to skip lookups when rows repeat them (the usual case).
  std::string_view last_id_, last_protocol_, last_asset_;
  std::uint32_t last_slot_ = 0;
  protocol_id last_protocol_id_;
  asset_id last_asset_id_;
};

// The refusal of text that is not UTF-8, naming the first line that is not. A line end
// is never part of a multi-byte sequence, so that line holds the fault.
absl::Status csv_parser::not_utf8(const char* p, const char* end) {
  constexpr std::string_view reason =
      "not valid UTF-8: ids, owners and names are UTF-8 text (they are sent as JSON)";
  while (p != end) {
    const std::string_view line = next_line(p, end);
    if (!simdjson::validate_utf8(line.data(), line.size())) return fail(reason);
    ++line_no_;
  }
  return fail(reason);
}

absl::Status csv_parser::read_header(std::string_view line) {
  if (line.empty()) return fail(detail::cat("the header line is empty: ", expected_columns));
  if (line.find('"') != std::string_view::npos) {
    return fail("the header holds a quote character: quoted fields are not supported");
  }
  std::array<bool, column_count> seen{};
  std::size_t start = 0;
  for (;;) {
    const std::size_t comma = line.find(',', start);
    const std::string_view name = line.substr(start, comma - start);
    std::size_t c = 0;
    while (c < column_count && column_names[c] != name) ++c;
    if (c == column_count) {
      return fail(detail::cat("unknown column ", detail::quoted(name), ": ", expected_columns));
    }
    if (seen[c]) return fail(detail::cat("column ", detail::quoted(name), " is given twice"));
    seen[c] = true;
    field_column_[field_count_++] = static_cast<column>(c);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  for (std::size_t c = 0; c < col_owner; ++c) {
    if (!seen[c]) {
      return fail(
          detail::cat("missing column ", detail::quoted(column_names[c]), ": ", expected_columns));
    }
  }
  has_owner_ = seen[col_owner];
  return absl::OkStatus();
}

absl::Status csv_parser::read_amount(column c, std::string_view field, double& out) const {
  if (field.empty()) return fail(c, "the value is empty, expected a number");
  const char* const first = field.data();
  const char* const last = first + field.size();
  const auto [ptr, ec] = std::from_chars(first, last, out);
  if (ec == std::errc::result_out_of_range) {
    return fail(c, detail::cat(detail::quoted(field), " is out of the range of a double"));
  }
  if (ec != std::errc() || ptr != last)
    return fail(c, detail::cat(detail::quoted(field), " is not a number"));
  if (!is_nonnegative_finite(out)) {
    return fail(c, detail::cat(detail::quoted(field),
                               " is not allowed: amounts must be finite numbers >= 0"));
  }
  return absl::OkStatus();
}

absl::Status csv_parser::read_row(std::string_view line) {
  if (line.empty()) return fail("blank line: every row is one leg");
  if (std::memchr(line.data(), '"', line.size()) != nullptr) {
    return fail("a quote character: quoted fields are not supported (ids hold no commas)");
  }
  // The writer cannot write a CR inside a field (it would read back as a line end).
  if (std::memchr(line.data(), '\r', line.size()) != nullptr) {
    return fail("a carriage return inside the row: a line ends with \\n or \\r\\n only");
  }
  std::array<std::string_view, column_count> f{};
  const char* q = line.data();
  const char* const end = q + line.size();
  for (std::size_t k = 0; k + 1 < field_count_; ++k) {
    const char* comma =
        static_cast<const char*>(std::memchr(q, ',', static_cast<std::size_t>(end - q)));
    if (comma == nullptr) {
      return fail(detail::cat("the row has ", k + 1, " fields, the header ", field_count_));
    }
    f[field_column_[k]] = std::string_view(q, static_cast<std::size_t>(comma - q));
    q = comma + 1;
  }
  const std::string_view tail(q, static_cast<std::size_t>(end - q));
  if (tail.find(',') != std::string_view::npos) {
    return fail(
        detail::cat("the row has ", count_fields(line), " fields, the header ", field_count_));
  }
  f[field_column_[field_count_ - 1]] = tail;

  const std::string_view id = f[col_id];
  if (id.empty()) return fail(col_id, "the id is empty");

  if (f[col_protocol] != last_protocol_ || !last_protocol_id_.valid()) {
    const auto p = market_.find_protocol(f[col_protocol]);
    if (!p)
      return fail(col_protocol, detail::cat("unknown protocol ", detail::quoted(f[col_protocol])));
    last_protocol_ = f[col_protocol];
    last_protocol_id_ = *p;
  }
  const protocol_id pid = last_protocol_id_;

  if (f[col_asset] != last_asset_ || !last_asset_id_.valid()) {
    const auto a = market_.find_asset(f[col_asset]);
    if (!a) return fail(col_asset, detail::cat("unknown asset ", detail::quoted(f[col_asset])));
    last_asset_ = f[col_asset];
    last_asset_id_ = *a;
  }
  const asset_id aid = last_asset_id_;

  leg l{aid, 0.0, 0.0};
  if (auto s = read_amount(col_collateral, f[col_collateral], l.collateral); !s.ok()) return s;
  if (auto s = read_amount(col_debt, f[col_debt], l.debt); !s.ok()) return s;
  const protocol& proto = market_.get_protocol(pid);
  if (l.collateral > 0.0 && proto.params(aid) == nullptr) {
    return fail(col_collateral,
                detail::cat("protocol ", detail::quoted(proto.name), " does not accept ",
                            detail::quoted(f[col_asset]), " as collateral"));
  }

  const std::string_view owner = f[col_owner];
  std::uint32_t slot = last_slot_;
  if (id != last_id_ || positions_.empty()) {
    const auto [it, inserted] =
        index_.try_emplace(key(id), static_cast<std::uint32_t>(positions_.size()));
    if (inserted) {
      positions_.push_back({std::string(id), pid, std::string(owner), {}});
      positions_.back().legs.reserve(2);  // the usual position: collateral and debt
      first_line_.push_back(line_no_);
    }
    slot = it->second;
    last_id_ = id;
    last_slot_ = slot;
  }
  position_input& p = positions_[slot];
  if (p.protocol != pid) {
    return fail(col_protocol,
                detail::cat("position ", detail::quoted(id), " is in protocol ",
                            detail::quoted(market_.get_protocol(p.protocol).name), " on line ",
                            first_line_[slot], ", not ", detail::quoted(f[col_protocol])));
  }
  if (p.owner != owner) {
    return fail(col_owner,
                detail::cat("position ", detail::quoted(id), " has owner ", detail::quoted(p.owner),
                            " on line ", first_line_[slot], ", not ", detail::quoted(owner)));
  }
  p.legs.push_back(l);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<position_input>> csv_parser::run() {
  const char* p = text_.data();
  const char* const end = p + text_.size();
  constexpr std::string_view bom = "\xEF\xBB\xBF";
  if (text_.substr(0, bom.size()) == bom) p += bom.size();
  if (p == end) return fail(detail::cat("empty file: ", expected_columns));
  if (!simdjson::validate_utf8(p, static_cast<std::size_t>(end - p))) return not_utf8(p, end);
  if (auto s = read_header(next_line(p, end)); !s.ok()) return s;
  // At most one position per row. Reserving that much address space up front avoids
  // moving a large array as it grows; pages that are never written cost nothing.
  const auto rows = static_cast<std::size_t>(std::count(p, end, '\n')) + 1;
  positions_.reserve(rows);
  first_line_.reserve(rows);
  index_.reserve(rows);
  while (p != end) {
    ++line_no_;
    if (auto s = read_row(next_line(p, end)); !s.ok()) return s;
  }
  return std::move(positions_);
}

// Why `p` cannot be written so that it reads back the same, or empty.
std::string unwritable(const position_input& p, const market& m) {
  const auto bad_text = [](std::string_view s) {
    return s.find_first_of(",\"\r\n") != std::string_view::npos;
  };
  if (p.id.empty()) return "the id is empty";
  if (bad_text(p.id)) return "the id holds a comma, quote or line break";
  if (bad_text(p.owner)) return "the owner holds a comma, quote or line break";
  if (p.legs.empty()) return "a position without legs has no row";
  if (!p.protocol.valid() || p.protocol.index() >= m.protocol_count()) return "unknown protocol";
  const protocol& proto = m.get_protocol(p.protocol);
  for (std::size_t j = 0; j < p.legs.size(); ++j) {
    const leg& l = p.legs[j];
    if (!l.asset.valid() || l.asset.index() >= m.asset_count()) {
      return detail::cat("leg ", j + 1, ": unknown asset");
    }
    if (!is_nonnegative_finite(l.collateral) || !is_nonnegative_finite(l.debt)) {
      return detail::cat("leg ", j + 1, ": amounts must be finite numbers >= 0");
    }
    if (l.collateral > 0.0 && proto.params(l.asset) == nullptr) {
      return detail::cat("leg ", j + 1, ": protocol '", proto.name, "' does not accept ",
                         m.asset(l.asset).symbol, " as collateral");
    }
  }
  return {};
}

// Checks every position; says whether an owner column is needed.
absl::StatusOr<bool> check_writable(std::span<const position_input> positions, const market& m) {
  absl::flat_hash_set<absl::string_view> ids;
  ids.reserve(positions.size());
  bool owners = false;
  for (std::size_t i = 0; i < positions.size(); ++i) {
    const position_input& p = positions[i];
    if (std::string why = unwritable(p, m); !why.empty()) {
      return absl::InvalidArgumentError(
          detail::cat("position #", i + 1, " ", detail::quoted(p.id), ": ", why));
    }
    if (!ids.insert(key(p.id)).second) {
      return absl::InvalidArgumentError(
          detail::cat("position #", i + 1, " ", detail::quoted(p.id), ": duplicate id"));
    }
    owners = owners || !p.owner.empty();
  }
  return owners;
}

void append_header(std::string& out, bool owners) {
  out +=
      owners ? "id,protocol,asset,collateral,debt,owner\n" : "id,protocol,asset,collateral,debt\n";
}

void append_number(std::string& out, double v) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void append_rows(std::string& out, const position_input& p, const market& m, bool owners) {
  const std::string& proto = m.get_protocol(p.protocol).name;
  for (const leg& l : p.legs) {
    out += p.id;
    out += ',';
    out += proto;
    out += ',';
    out += m.asset(l.asset).symbol;
    out += ',';
    append_number(out, l.collateral);
    out += ',';
    append_number(out, l.debt);
    if (owners) {
      out += ',';
      out += p.owner;
    }
    out += '\n';
  }
}

}  // namespace

absl::StatusOr<std::vector<position_input>> parse_positions_csv(std::string_view text,
                                                                const market& m,
                                                                std::string_view source_name) {
  csv_parser parser(text, m, source_name);
  return parser.run();
}

absl::StatusOr<std::vector<position_input>> load_positions_csv(const std::string& path,
                                                               const market& m) {
  auto text = detail::read_file(path);
  if (!text.ok()) return text.status();
  return parse_positions_csv(*text, m, path);
}

absl::Status append_positions_csv(std::string& out, std::span<const position_input> positions,
                                  const market& m) {
  const auto owners = check_writable(positions, m);
  if (!owners.ok()) return owners.status();
  append_header(out, *owners);
  for (const position_input& p : positions) append_rows(out, p, m, *owners);
  return absl::OkStatus();
}

absl::Status write_positions_csv(std::ostream& os, std::span<const position_input> positions,
                                 const market& m) {
  const auto owners = check_writable(positions, m);
  if (!owners.ok()) return owners.status();
  constexpr std::size_t chunk = std::size_t{1} << 20;
  std::string buf;
  buf.reserve(chunk + 4096);
  append_header(buf, *owners);
  for (const position_input& p : positions) {
    append_rows(buf, p, m, *owners);
    if (buf.size() >= chunk) {
      os.write(buf.data(), static_cast<std::streamsize>(buf.size()));
      buf.clear();
    }
  }
  os.write(buf.data(), static_cast<std::streamsize>(buf.size()));
  os.flush();
  if (!os) return absl::InternalError("writing positions CSV: the output stream failed");
  return absl::OkStatus();
}

}  // namespace cascade::proto
