// The synthetic position generator: realistic lending books of any size for any market,
// for the demo, tests and benchmarks when no real book is loaded.
//
// It owns nothing: generate_positions() is a pure function of (market, options). The
// same inputs give the same positions, bit for bit, on every run and machine: the only
// randomness is std::mt19937_64's raw output (its sequence is fixed by the standard),
// turned into uniforms, normals and log-normals by this unit's own arithmetic (no
// std:: distributions, no libm exp/log, no fused multiply-adds; see generator.cpp).
// Position i depends only on positions 0..i-1, so a book of n positions is a prefix of
// the book of n + k positions with the same seed.
//
// Callable from any thread (no shared state). Allocates the returned vector (~250 bytes
// per position) and scratch linear in n; nothing but std::bad_alloc is thrown: bad
// inputs are refused with an absl::Status naming the problem.
#pragma once

#include <absl/status/statusor.h>

#include <cstdint>
#include <vector>

#include "engine/book.hpp"
#include "engine/market.hpp"

namespace cascade {

struct generator_options {
  std::uint64_t positions = 0;
  std::uint64_t seed = 42;
};

// More than this is refused: at ~250 bytes per generated position (id, owner, legs) a
// larger book would not fit a server's memory, and row numbers are 32-bit.
inline constexpr std::uint64_t max_generated_positions = 100'000'000;

// Generates `o.positions` positions over the market's protocols and assets:
//   - sizes: log-normal collateral notional in USD (median ~15k, a heavy right tail of
//     whales, capped at 2e9), so that the top 1% of positions hold about half the debt;
//   - legs: mostly one collateral and one debt asset, a share with 2-3 collateral
//     and/or 2 debt assets; collateral only where the protocol accepts it; debt mostly
//     in stablecoins (a symbol like USDC/USDT/DAI/..., or a price within 2% of $1),
//     sometimes volatile (shorts, and recursive loops such as wstETH collateral against
//     ETH debt where the market has both); pooled protocols lend what they list;
//     a cdp lends one stablecoin (DAI, else another) against one collateral asset; a
//     pooled protocol named after a stablecoin ("compound-v3-usdc") lends only it; a
//     margin venue holds longs (debt in its quote stablecoin) and shorts;
//   - health factors shaped like a real book (calibrated on Aave v2 stETH accounts, see
//     generator.cpp): most in [1.1, 3], a thin tail in [1, 1.1), ~0.35% small
//     unliquidated positions below 1;
//   - protocols weighted by kind (pooled > cdp > margin) and breadth of collateral;
//     about 15% of positions belong to an owner who already has one (in another
//     protocol, or another Maker vault), so ~15% of owners span several protocols;
//   - ids "<protocol name>-<i>" (i = 0..n-1, unique), owners "0x" + 40 hex digits.
// Every position has debt > 0 and upserts into a book of this market without error.
// Refuses more than max_generated_positions, and a market where no protocol accepts
// any collateral. positions == 0 gives an empty vector.
[[nodiscard]] absl::StatusOr<std::vector<position_input>> generate_positions(
    const market& m, const generator_options& o);

// The health factor a book of `m` computes for `p` at the market's reference prices:
// sum(collateral * threshold * price) / sum(debt * price), terms in leg order, each
// product rounded before it is added (the book's and the kernels' contract), +inf
// without debt. Compiled without fused multiply-adds, so it is the same on every
// machine. Assumes `p` is valid for `m` (as book::upsert checks).
[[nodiscard]] double reference_health(const market& m, const position_input& p);

}  // namespace cascade
