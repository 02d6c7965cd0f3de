// A small CSV reader for the tests that replay real data (../shared/data).
//
// The whole file is read into memory: a header row, then rows of text fields. Fields
// may be quoted ("a,b" and "" for a quote); a trailing \r is dropped; blank lines are
// skipped. Every row must have as many fields as the header. Column names are kept
// as written, including an empty one (pandas' unnamed index column) and "Unnamed: 0".
// Numbers are parsed on demand as double with std::from_chars (correctly rounded, so
// "1.4397462924606643e+25" or an integer wider than 2^53 reads as the nearest double).
//
// Errors: read() returns nullopt when the file cannot be opened (the caller decides
// to skip); a malformed file, an unknown column or a field that is not a number throws
// std::runtime_error naming the file, the row (1-based line of data) and the column.
// Header-only, no dependencies beyond the standard library; not thread-safe.
#pragma once

#include <charconv>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace cascade::testing {

class csv_table {
 public:
  // Reads `path`; nullopt when it cannot be opened.
  static std::optional<csv_table> read(const std::filesystem::path& path, char sep = ',') {
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    std::ostringstream text;
    text << in.rdbuf();
    return parse(text.str(), sep, path.string());
  }

  // Parses CSV text; `name` only labels error messages.
  static csv_table parse(std::string_view text, char sep = ',', std::string name = "<csv>") {
    csv_table t;
    t.name_ = std::move(name);
    std::size_t pos = 0;
    bool first = true;
    while (pos < text.size()) {
      std::vector<std::string> fields = t.split_record(text, pos, sep);
      if (fields.size() == 1 && fields[0].empty()) continue;  // blank line
      if (first) {
        t.header_ = std::move(fields);
        first = false;
        continue;
      }
      if (fields.size() != t.header_.size()) {
        t.fail(t.rows_.size(), "has " + std::to_string(fields.size()) + " fields, the header " +
                                   std::to_string(t.header_.size()));
      }
      t.rows_.push_back(std::move(fields));
    }
    if (first) throw std::runtime_error(t.name_ + ": no header row");
    return t;
  }

  [[nodiscard]] const std::string& name() const { return name_; }
  [[nodiscard]] const std::vector<std::string>& header() const { return header_; }
  [[nodiscard]] std::size_t size() const { return rows_.size(); }

  [[nodiscard]] std::optional<std::size_t> find_column(std::string_view column) const {
    for (std::size_t c = 0; c < header_.size(); ++c) {
      if (header_[c] == column) return c;
    }
    return std::nullopt;
  }
  [[nodiscard]] bool has_column(std::string_view column) const {
    return find_column(column).has_value();
  }
  // The column's index; throws when there is no such column.
  [[nodiscard]] std::size_t column(std::string_view column) const {
    if (const auto c = find_column(column)) return *c;
    throw std::runtime_error(name_ + ": no column '" + std::string(column) + "'");
  }

  [[nodiscard]] const std::string& text(std::size_t row, std::size_t col) const {
    return rows_.at(row).at(col);
  }
  [[nodiscard]] const std::string& text(std::size_t row, std::string_view col) const {
    return text(row, column(col));
  }

  // The field as a double; surrounding blanks and a leading '+' are allowed, anything
  // else that is not a whole number in decimal or exponent notation throws. "inf" and
  // "nan" are read as such (from_chars accepts them); callers check finiteness.
  [[nodiscard]] double number(std::size_t row, std::size_t col) const {
    std::string_view s = text(row, col);
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    if (s.size() > 1 && s.front() == '+' && s[1] != '-') s.remove_prefix(1);
    double v = 0.0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc{} || end != s.data() + s.size()) {
      fail(row, "column '" + header_.at(col) + "': '" + text(row, col) + "' is not a number");
    }
    return v;
  }
  [[nodiscard]] double number(std::size_t row, std::string_view col) const {
    return number(row, column(col));
  }

 private:
  [[noreturn]] void fail(std::size_t row, const std::string& what) const {
    throw std::runtime_error(name_ + ": data row " + std::to_string(row + 1) + " " + what);
  }

  // Splits the record starting at `pos` and moves `pos` past its line end.
  std::vector<std::string> split_record(std::string_view text, std::size_t& pos, char sep) const {
    std::vector<std::string> fields(1);
    bool quoted = false;
    while (pos < text.size()) {
      const char ch = text[pos++];
      if (quoted) {
        if (ch != '"') {
          fields.back() += ch;
        } else if (pos < text.size() && text[pos] == '"') {
          fields.back() += '"';
          ++pos;
        } else {
          quoted = false;
        }
      } else if (ch == '"') {
        quoted = true;
      } else if (ch == sep) {
        fields.emplace_back();
      } else if (ch == '\n') {
        break;
      } else if (ch != '\r' || (pos < text.size() && text[pos] != '\n')) {
        fields.back() += ch;
      }
    }
    if (quoted) fail(rows_.size(), "has an unterminated quote");
    return fields;
  }

  std::string name_;
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace cascade::testing
