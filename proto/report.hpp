// Encoders of engine results into the JSON documents of DESIGN.md: the stress report
// and the health listing. Pure functions over engine values; they allocate the output
// string and never throw except std::bad_alloc. Callable from any thread on values
// it owns.
#pragma once

#include <string>

#include "engine/book.hpp"
#include "engine/cascade.hpp"
#include "engine/market.hpp"

namespace cascade::proto {

// The report document: rounds, round_detail[{liquidated, repaid_usd, seized_usd, sold,
// prices}], final_prices, total_repaid_usd, total_seized_usd, bad_debt_usd (every
// protocol), positions_liquidated, amplification (per shocked asset; null for a zero
// shock), and beside them positions_insolvent, input_prices, shocked_prices,
// total_bad_debt_usd and protocols{name: {liquidated, repaid_usd, seized_usd,
// bad_debt_usd, insolvent, first_round, contagion_only}}. Markets with derived assets
// add per-round `routed` (base units sold on into the base's pool) and input_ratios /
// final_ratios (each derived asset's ratio to its base). Assets whose liquidity
// withdraws add per-round and final `depth_scale`; a run with cascade model options
// adds per-round halted, halt_triggered, backlog and oracle_prices, and top-level model,
// halted_rounds and (with a breaker) breakers: PROTOCOL.md "Stress scenario: liquidity
// venues and cascade model options". Without them the document is model v1's, byte
// for byte.
[[nodiscard]] std::string encode_report(const cascade_report& r, const market& m);

// {"positions":[{"id":..., "protocol":..., "hf":..., "hf_real":..., "collateral_usd":...,
// "collateral_real_usd":..., "debt_usd":..., "insolvent":...}]} for every live position in
// book order; hf and hf_real are null for a position without debt. The realizable fields
// (book.hpp) are present when the book keeps them (the default).
[[nodiscard]] std::string encode_health(const book& b);

}  // namespace cascade::proto
