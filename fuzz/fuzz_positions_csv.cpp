// Fuzz target: positions CSV through proto::parse_positions_csv against the default
// market (`positions.file` of a config, `cascade` commands reading a book).
//
// Checks: a refusal is an InvalidArgument naming the source (in UTF-8). An accepted file
// gives positions with non-empty unique UTF-8 ids and owners and finite amounts >= 0;
// writing them back with append_positions_csv and parsing that gives identical
// positions (positions_csv.hpp: "write -> parse gives back identical positions",
// amounts bit for bit); a book takes them (the parser refuses what the book would, more
// than max_legs legs aside), stays consistent, and removing them all leaves it empty.
#include <cstdint>
#include <cstring>
#include <string>
#include <unordered_set>

#include "fuzz_support.hpp"
#include "proto/positions_csv.hpp"

namespace {

using namespace cascade;

bool same_bits(double x, double y) { return std::memcmp(&x, &y, sizeof x) == 0; }

bool same_positions(const std::vector<position_input>& a, const std::vector<position_input>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].id != b[i].id || a[i].protocol != b[i].protocol || a[i].owner != b[i].owner ||
        a[i].legs.size() != b[i].legs.size()) {
      return false;
    }
    for (std::size_t j = 0; j < a[i].legs.size(); ++j) {
      const leg& x = a[i].legs[j];
      const leg& y = b[i].legs[j];
      if (x.asset != y.asset || !same_bits(x.collateral, y.collateral) ||
          !same_bits(x.debt, y.debt)) {
        return false;
      }
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const market& m = fuzz::fixed_market();
  const auto parsed = proto::parse_positions_csv(fuzz::as_text(data, size), m, "fuzz.csv");
  if (!parsed.ok()) {
    fuzz::check_refusal(parsed.status(), "fuzz.csv");
    return 0;
  }
  const std::vector<position_input>& ps = *parsed;
  std::unordered_set<std::string> ids;
  bool too_many_legs = false;
  for (const position_input& p : ps) {
    FUZZ_CHECK(!p.id.empty() && ids.insert(p.id).second, "empty or repeated id " + p.id);
    FUZZ_CHECK(!p.legs.empty(), "a position without legs: " + p.id);
    FUZZ_CHECK(fuzz::valid_utf8(p.id) && fuzz::valid_utf8(p.owner),
               "an id or owner that is not UTF-8 (it would be sent as JSON)");
    for (const leg& l : p.legs) {
      FUZZ_CHECK(
          std::isfinite(l.collateral) && l.collateral >= 0 && std::isfinite(l.debt) && l.debt >= 0,
          "an amount not finite >= 0 in " + p.id);
    }
    too_many_legs = too_many_legs || p.legs.size() > book_options{}.max_legs;
  }

  std::string written;
  const auto w = proto::append_positions_csv(written, ps, m);
  FUZZ_CHECK(w.ok(), "append_positions_csv refused parsed positions: " + w.ToString());
  const auto again = proto::parse_positions_csv(written, m, "written.csv");
  FUZZ_CHECK(again.ok(), "the written CSV does not parse: " + again.status().ToString());
  FUZZ_CHECK(same_positions(ps, *again), "write -> parse changed the positions:\n" + written);

  book b(m);
  const auto st = b.upsert(ps);
  FUZZ_CHECK(st.ok() || too_many_legs, "the book refused parsed positions: " + st.ToString());
  if (!st.ok()) return 0;
  FUZZ_CHECK(b.size() == ps.size(), "size() != the number of positions");
  fuzz::check_book(b);
  std::vector<std::string> all(ids.begin(), ids.end());
  const auto removed = b.remove(all);
  FUZZ_CHECK(removed.ok() && b.size() == 0, "removing every position: " + removed.ToString());
  fuzz::check_book(b);
  return 0;
}
