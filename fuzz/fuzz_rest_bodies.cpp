// Fuzz target: the REST request decoders of proto/rest_codec.hpp, each followed by what
// the server does with an accepted request, on a live book of the default market.
//
// The first byte picks the endpoint; the rest is its body, path segment or query:
//   P  POST /v1/positions body   upsert: a refusal by the book leaves its digest
//      unchanged; an accepted batch is found with the legs it was given, the book stays
//      consistent, each position encodes to JSON, and removing the batch again works
//   D  DELETE /v1/positions/{id} the segment re-escaped decodes to itself; removing an
//      unknown id changes nothing, a known one removes exactly it
//   T  POST /v1/prices body      ticks applied through the oracles keep the book consistent
//   S  POST /v1/stress body      a body with "positions" is a scenario (check_scenario);
//      otherwise decode_live_stress refuses "positions", and an accepted body runs the
//      cascade on the live book twice to the same report
//   Q  GET /v1/positions query   pages ascend by HF, below max_hf, of the asked protocol
//   C  a query of two known keys decode_query (as GET /v1/curves's): known keys, given
//      once, UTF-8 values
//   K  cursor round trip         a position with a debt from the next 8 bytes and the rest
//      of the input as id: the page's next_cursor decodes back to exactly its (hf, id)
// Any other first byte picks by its value modulo 7, so no input is wasted.
// Every refusal has a message and encodes to a valid JSON error body.
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <unordered_set>
#include <variant>

#include "fuzz_support.hpp"
#include "proto/rest_codec.hpp"
#include "proto/scenario.hpp"

namespace {

using namespace cascade;
using cascade::fuzz::valid_json;

constexpr std::size_t max_batch = 16;

// A refusal's message and its JSON body.
template <class T>
bool refused(const proto::decoded<T>& d) {
  const auto* e = std::get_if<proto::wire_error>(&d);
  if (e == nullptr) return false;
  FUZZ_CHECK(!e->message.empty() && fuzz::valid_utf8(e->message),
             "a refusal without a UTF-8 message");
  const std::string body = proto::encode_error_body(*e);
  FUZZ_CHECK(valid_json(body), "encode_error_body is not JSON: " + body);
  return true;
}

bool same_legs(std::span<const leg> want, const book& b, row_t r) {
  const auto assets = b.leg_assets(r);
  const auto coll = b.leg_collateral(r);
  const auto debt = b.leg_debt(r);
  if (assets.size() != want.size()) return false;
  for (std::size_t i = 0; i < want.size(); ++i) {
    if (assets[i] != want[i].asset || coll[i] != want[i].collateral || debt[i] != want[i].debt) {
      return false;
    }
  }
  return true;
}

void post_positions(std::string_view body) {
  const auto d = proto::decode_positions_body(body, fuzz::fixed_market(), max_batch);
  if (refused(d)) return;
  const auto& batch = std::get<std::vector<position_input>>(d);
  FUZZ_CHECK(!batch.empty() && batch.size() <= max_batch, "positions: batch outside 1..max_batch");
  fuzz::live_state s;
  const std::uint64_t before = s.b.digest();
  const std::size_t size_before = s.b.size();
  std::size_t fresh = 0;
  for (const position_input& p : batch) fresh += s.b.find(p.id) ? 0 : 1;
  s.crossings.clear();
  s.statuses.clear();
  const auto st = s.b.upsert(batch, &s.crossings, &s.statuses);
  if (!st.ok()) {
    FUZZ_CHECK(s.b.digest() == before, "a refused upsert changed the book: " + st.ToString());
    FUZZ_CHECK(s.crossings.empty() && s.statuses.empty(), "a refused upsert made events");
    return;
  }
  FUZZ_CHECK(s.b.size() == size_before + fresh, "upsert: size() is not old size + new ids");
  for (const position_input& p : batch) {
    const auto r = s.b.find(p.id);
    FUZZ_CHECK(r && s.b.live(*r), "an upserted position is not found: " + p.id);
    FUZZ_CHECK(s.b.protocol_at(*r) == p.protocol && s.b.owner_at(*r) == p.owner &&
                   same_legs(p.legs, s.b, *r),
               "an upserted position differs from its input: " + p.id);
    const std::string text = proto::encode_position(s.b, *r);
    FUZZ_CHECK(valid_json(text), "encode_position is not JSON: " + text);
  }
  fuzz::check_book(s.b);
  std::vector<std::string> ids;
  for (const position_input& p : batch) ids.push_back(p.id);
  const auto removed = s.b.remove(ids, &s.statuses);
  FUZZ_CHECK(removed.ok(), "removing an upserted batch was refused: " + removed.ToString());
  for (const std::string& id : ids) FUZZ_CHECK(!s.b.find(id), "a removed position is found");
  fuzz::check_book(s.b);
}

std::string percent_escape(std::string_view s) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) != 0 || c == '-' || c == '_' || c == '.' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += hex[u >> 4];
      out += hex[u & 15];
    }
  }
  return out;
}

void delete_position(std::string_view raw) {
  constexpr std::string_view what = "the position id in the path";
  const auto seg = proto::decode_path_segment(raw, what);
  if (refused(seg)) return;
  const std::string* id = &std::get<std::string>(seg);
  FUZZ_CHECK(!id->empty() && fuzz::valid_utf8(*id),
             "an accepted path segment is empty or not UTF-8");
  const auto again = proto::decode_path_segment(percent_escape(*id), what);
  FUZZ_CHECK(std::holds_alternative<std::string>(again) && std::get<std::string>(again) == *id,
             "a re-escaped path segment decodes to something else");
  fuzz::live_state s;
  const std::uint64_t before = s.b.digest();
  const std::size_t size_before = s.b.size();
  const bool known = s.b.find(*id).has_value();
  const auto st = s.b.remove({&*id, 1}, &s.statuses);
  FUZZ_CHECK(st.ok() == known, "remove: refused a known id, or removed an unknown one");
  if (!st.ok()) {
    FUZZ_CHECK(s.b.digest() == before, "a refused remove changed the book");
    return;
  }
  FUZZ_CHECK(s.b.size() + 1 == size_before && !s.b.find(*id), "remove: not exactly one removed");
  fuzz::check_book(s.b);
}

void post_prices(std::string_view body) {
  const auto d = proto::decode_prices_body(body, fuzz::fixed_market(), max_batch);
  if (refused(d)) return;
  const auto& ticks = std::get<std::vector<proto::price_tick>>(d);
  FUZZ_CHECK(!ticks.empty() && ticks.size() <= max_batch, "prices: batch outside 1..max_batch");
  fuzz::live_state s;
  s.apply_prices(ticks);
}

void post_stress(std::string_view body) {
  const market& m = fuzz::fixed_market();
  const auto live = proto::decode_live_stress(body, m);
  if (proto::body_has_positions(body)) {
    FUZZ_CHECK(std::holds_alternative<proto::wire_error>(live),
               "decode_live_stress accepted a body with positions");
    const auto sc = proto::parse_scenario(body, "POST /v1/stress body");
    if (sc.ok()) fuzz::check_scenario(*sc);
    return;
  }
  if (refused(live)) return;
  const auto& ls = std::get<proto::live_stress>(live);
  FUZZ_CHECK(ls.max_rounds >= 1 && ls.max_rounds <= proto::max_rounds_limit,
             "live stress: max_rounds out of range");
  for (std::size_t i = 0; i < ls.shocks.size(); ++i) {
    const shock& x = ls.shocks[i];
    FUZZ_CHECK(x.asset.valid() && x.asset.index() < m.asset_count() && std::isfinite(x.fraction) &&
                   x.fraction > -1.0,
               "live stress: a shock not finite > -1 on a known asset");
    for (std::size_t j = 0; j < i; ++j) {
      FUZZ_CHECK(ls.shocks[j].asset != x.asset, "live stress: an asset shocked twice");
    }
  }
  const fuzz::live_state s;
  cascade_options o;
  o.max_rounds = std::min(ls.max_rounds, fuzz::fuzz_max_rounds);
  cascade_simulator sim;
  const auto first = sim.run(s.b, ls.shocks, o);
  const auto second = sim.run(s.b, ls.shocks, o);
  FUZZ_CHECK(first.ok() == second.ok(), "the same live stress run twice: refused once");
  if (!first.ok()) {
    FUZZ_CHECK(!first.status().message().empty(), "a refused cascade without a message");
    return;
  }
  const std::string report = proto::encode_report(*first, m);
  FUZZ_CHECK(valid_json(report), "encode_report is not JSON: " + report);
  FUZZ_CHECK(proto::encode_report(*second, m) == report,
             "the same live stress run twice gave different reports");
}

void get_positions(std::string_view query) {
  const auto d = proto::decode_at_risk_query(query, fuzz::fixed_market());
  if (refused(d)) return;
  const auto& q = std::get<proto::at_risk_query>(d);
  FUZZ_CHECK(is_positive_finite(q.max_hf), "at-risk query: max_hf not finite > 0");
  FUZZ_CHECK(q.limit >= 1 && q.limit <= 10'000, "at-risk query: limit out of range");
  const fuzz::live_state s;
  const auto rows = s.b.below(q.max_hf, q.limit, q.protocol, q.asset);
  FUZZ_CHECK(rows.size() <= q.limit, "below() returned more than the limit");
  std::vector<row_t> page;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const at_risk_entry& e = rows[i];
    FUZZ_CHECK(s.b.live(e.row) && e.hf == s.b.health_at(e.row) && e.hf < q.max_hf,
               "below(): a row that is dead, or not under max_hf");
    FUZZ_CHECK(i == 0 || rows[i - 1].hf <= e.hf, "below(): not ascending by HF");
    FUZZ_CHECK(!q.protocol || s.b.protocol_at(e.row) == *q.protocol,
               "below(): a row of another protocol");
    if (q.asset) {
      const auto held = s.b.leg_assets(e.row);
      FUZZ_CHECK(std::find(held.begin(), held.end(), *q.asset) != held.end(),
                 "below(): a row that does not hold the asset");
    }
    page.push_back(e.row);
  }
  const std::string text = proto::encode_positions_page(s.b, page, true);
  FUZZ_CHECK(valid_json(text), "encode_positions_page is not JSON: " + text);
}

void get_curves_query(std::string_view query) {
  static constexpr std::array<std::string_view, 2> known{"asset", "max_rounds"};
  const auto d = proto::decode_query(query, known);
  if (refused(d)) return;
  std::unordered_set<std::string> seen;
  for (const auto& [k, v] : std::get<proto::query_params>(d)) {
    FUZZ_CHECK(std::find(known.begin(), known.end(), k) != known.end(), "query: an unknown key");
    FUZZ_CHECK(seen.insert(k).second, "query: a key given twice");
    FUZZ_CHECK(fuzz::valid_utf8(v), "query: a value that is not UTF-8");
  }
}

// The cursor of a page ending at a position with id `id` and a debt chosen by the
// input decodes back to the exact (hf, id).
void cursor_round_trip(std::string_view rest) {
  double debt = 0.0;
  if (rest.size() >= sizeof debt) {
    std::memcpy(&debt, rest.data(), sizeof debt);
    rest.remove_prefix(sizeof debt);
  }
  if (!(std::isfinite(debt) && debt >= 0.0)) debt = 0.0;
  const std::string id(rest);
  // Every way in (JSON bodies, CSV, scenarios) refuses ids that are not UTF-8.
  if (id.empty() || !fuzz::valid_utf8(id)) return;
  const market& m = fuzz::fixed_market();
  fuzz::live_state s;
  const position_input p{id,
                         *m.find_protocol("aave-v3"),
                         "",
                         {{*m.find_asset("ETH"), 10.0, 0.0}, {*m.find_asset("USDC"), 0.0, debt}}};
  if (!s.b.upsert({&p, 1}).ok()) return;
  const row_t r = *s.b.find(id);
  const std::string text = proto::encode_positions_page(s.b, {&r, 1}, true);
  FUZZ_CHECK(valid_json(text), "encode_positions_page is not JSON: " + text);
  simdjson::ondemand::parser parser;
  simdjson::padded_string padded(text);
  simdjson::ondemand::document doc;
  std::string_view cursor;
  FUZZ_CHECK(parser.iterate(padded).get(doc) == simdjson::SUCCESS &&
                 doc["next_cursor"].get_string().get(cursor) == simdjson::SUCCESS,
             "a page with more has no next_cursor: " + text);
  const auto d = proto::decode_at_risk_query("cursor=" + std::string(cursor), m);
  FUZZ_CHECK(!refused(d), "a cursor the server wrote was refused: " + std::string(cursor));
  const auto& after = std::get<proto::at_risk_query>(d).after;
  const double hf = s.b.health_at(r);
  FUZZ_CHECK(after && after->second == id && std::memcmp(&after->first, &hf, sizeof hf) == 0,
             "the cursor did not give back (hf, id)");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view rest = fuzz::as_text(data + 1, size - 1);
  static constexpr std::string_view picks = "PDTSQCK";
  std::size_t pick = picks.find(static_cast<char>(data[0]));
  if (pick == std::string_view::npos) pick = data[0] % picks.size();
  switch (picks[pick]) {
    case 'P':
      post_positions(rest);
      break;
    case 'D':
      delete_position(rest);
      break;
    case 'T':
      post_prices(rest);
      break;
    case 'S':
      post_stress(rest);
      break;
    case 'Q':
      get_positions(rest);
      break;
    case 'C':
      get_curves_query(rest);
      break;
    default:
      cursor_round_trip(rest);
      break;
  }
  return 0;
}
