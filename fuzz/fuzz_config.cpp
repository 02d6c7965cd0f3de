// Fuzz target: TOML config text through proto::parse_config (what `cascade serve
// --config` and every command with a config read first), with no file read.
//
// Checks: a refusal is an InvalidArgument naming the source (toml++'s syntax errors are
// caught inside). An accepted config keeps config.hpp's promises: valid book options,
// exactly one positions source within limits, the [server] ranges, one finite beta per
// asset, oracle feeds oracle_set::make accepts. Then its market is used: a book of it
// takes generate_positions' output (generator.hpp: "upserts into a book of this market
// without error", unless [book] max_legs is below a position's legs), each at the HF
// reference_health gives, stays consistent through a 10% move of every asset, and the
// market and book encode to valid JSON.
#include <cstdint>
#include <string>

#include "engine/generator.hpp"
#include "fuzz_support.hpp"
#include "proto/config.hpp"
#include "proto/rest_codec.hpp"

namespace {

using namespace cascade;

// Positions generated per accepted config: enough for every protocol and leg shape.
constexpr std::uint64_t generated = 24;

void check_server(const proto::server_settings& s) {
  FUZZ_CHECK(s.io_threads >= 1 && s.io_threads <= 64, "server.io_threads out of range");
  FUZZ_CHECK(s.max_connections >= 1 && s.max_connections <= 1'000'000,
             "server.max_connections out of range");
  FUZZ_CHECK(s.max_body_bytes >= 1024 && s.max_body_bytes <= (1ull << 30),
             "server.max_body_bytes out of range");
  FUZZ_CHECK(s.max_frame_bytes >= 1024 && s.max_frame_bytes <= (1ull << 30),
             "server.max_frame_bytes out of range");
  FUZZ_CHECK(s.max_batch >= 1 && s.max_batch <= 10'000'000, "server.max_batch out of range");
  FUZZ_CHECK(s.send_queue >= 1 && s.send_queue <= 10'000'000, "server.send_queue out of range");
  FUZZ_CHECK(s.ring_events >= 1 && s.ring_events <= 100'000'000, "server.ring_events out of range");
  FUZZ_CHECK(s.inbox_capacity >= 16 && s.inbox_capacity <= 100'000'000,
             "server.inbox_capacity out of range");
  FUZZ_CHECK(s.projection_interval_ms <= 3'600'000, "server.projection_interval_ms out of range");
  FUZZ_CHECK(
      is_positive_finite(s.volatility_half_life_hours) && is_positive_finite(s.risk_horizon_hours),
      "server half-life or horizon not finite > 0");
  for (const proto::token_spec& t : s.tokens) {
    FUZZ_CHECK(!t.token.empty(), "an empty server token");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto parsed = proto::parse_config(fuzz::as_text(data, size), "fuzz.toml", "");
  if (!parsed.ok()) {
    fuzz::check_refusal(parsed.status(), "fuzz.toml");
    return 0;
  }
  const proto::config& cfg = *parsed;
  const market& m = cfg.mkt;
  const auto opts = cfg.book.validate();
  FUZZ_CHECK(opts.ok(), "accepted book options fail validate(): " + opts.ToString());
  FUZZ_CHECK(cfg.positions.file.empty() != (cfg.positions.generate == 0),
             "not exactly one of positions.file and positions.generate");
  FUZZ_CHECK(cfg.positions.generate <= proto::max_generated_positions,
             "positions.generate above the limit");
  check_server(cfg.server);
  FUZZ_CHECK(cfg.betas.size() == m.asset_count(), "not one beta per asset");
  for (const double beta : cfg.betas) FUZZ_CHECK(std::isfinite(beta), "a beta that is not finite");
  const auto oracles = oracle_set::make(m, cfg.oracle);
  FUZZ_CHECK(oracles.ok(), "accepted oracle feeds refused: " + oracles.status().ToString());

  book b(m, cfg.book);
  const std::string protocols = proto::encode_protocols(m);
  FUZZ_CHECK(fuzz::valid_json(protocols), "encode_protocols is not JSON: " + protocols);
  const auto gen = generate_positions(m, {.positions = generated, .seed = cfg.positions.seed});
  // A [book] max_legs below a generated position's legs (it has 2 or more) makes the
  // book refuse them: the server then stops at start-up naming the position and limit.
  bool too_many_legs = false;
  if (gen.ok()) {
    for (const position_input& p : *gen) too_many_legs |= p.legs.size() > cfg.book.max_legs;
  }
  if (gen.ok() && !too_many_legs) {
    const auto st = b.upsert(*gen);
    FUZZ_CHECK(st.ok(), "the book refused generated positions: " + st.ToString());
    for (const position_input& p : *gen) {
      const double want = reference_health(m, p);
      const double got = *b.health(p.id);
      FUZZ_CHECK(got == want || (std::isnan(got) && std::isnan(want)),
                 "book HF " + std::to_string(got) + " != reference_health " + std::to_string(want) +
                     " for " + p.id);
    }
  }
  fuzz::check_book(b);
  std::vector<tick> ticks;
  for (std::size_t i = 0; i < m.asset_count(); ++i) {
    const double p = b.prices()[i] * 0.9;
    if (is_positive_finite(p)) ticks.push_back({asset_id::from_index(i), p});
  }
  std::vector<crossing> crossings;
  std::vector<status_change> statuses;
  const auto st = b.apply_ticks(ticks, crossings, &statuses);
  FUZZ_CHECK(st.ok(), "a 10% move of every asset was refused: " + st.ToString());
  fuzz::check_book(b);
  const std::string assets = proto::encode_assets(b);
  FUZZ_CHECK(fuzz::valid_json(assets), "encode_assets is not JSON: " + assets);
  return 0;
}
