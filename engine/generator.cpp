#include "engine/generator.hpp"

#include <absl/strings/ascii.h>
#include <absl/strings/str_cat.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <limits>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>

// This file is compiled with -ffp-contract=off (engine/CMakeLists.txt): whether a*b+c
// becomes one fused multiply-add depends on the target CPU, and the generator promises
// the same book on every machine.

namespace cascade {
namespace {

// --- Deterministic arithmetic ---------------------------------------------------------
// libm's exp and log are not specified to the last bit and differ between libraries
// (and between glibc's FMA and non-FMA variants), so the generator uses its own, built
// from +, -, *, / and frexp/ldexp, which IEEE 754 makes exact or correctly rounded.
// Accuracy is a few ulp, far more than a synthetic book needs.

// fdlibm's split of ln 2: ln2_hi has trailing zero bits, so k * ln2_hi is exact.
constexpr double ln2_hi = 6.93147180369123816490e-01;
constexpr double ln2_lo = 1.90821492927058770002e-10;
constexpr double inv_ln2 = 1.44269504088896338700e+00;
constexpr double sqrt_half = 0.70710678118654752440;

// Natural log of a finite x > 0: x = m * 2^e with m in [sqrt(1/2), sqrt(2)), then
// ln m = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.172; eleven odd terms leave an
// error below 1e-17.
double det_log(double x) {
  int e = 0;
  double m = std::frexp(x, &e);
  if (m < sqrt_half) {
    m *= 2.0;
    --e;
  }
  const double s = (m - 1.0) / (m + 1.0);
  const double s2 = s * s;
  constexpr std::array<double, 11> inv_odd{1.0 / 3,  1.0 / 5,  1.0 / 7,  1.0 / 9,
                                           1.0 / 11, 1.0 / 13, 1.0 / 15, 1.0 / 17,
                                           1.0 / 19, 1.0 / 21, 1.0 / 23};
  double poly = inv_odd.back();
  for (std::size_t k = inv_odd.size() - 1; k-- > 0;) poly = inv_odd[k] + s2 * poly;
  const double ln_m = 2.0 * s + 2.0 * s * (s2 * poly);
  const double de = static_cast<double>(e);
  return de * ln2_hi + (de * ln2_lo + ln_m);
}

// e^x: x = k ln 2 + r with |r| <= 0.35, e^r by its Taylor series to degree 13 (error
// below 1e-17), then scaled by 2^k. Arguments are clamped to where the result is a
// normal double; the generator never comes near the ends.
double det_exp(double x) {
  x = std::clamp(x, -700.0, 700.0);
  const double k = std::floor(x * inv_ln2 + 0.5);
  const double r = (x - k * ln2_hi) - k * ln2_lo;
  constexpr std::array<double, 14> inv_fact{1.0,
                                            1.0,
                                            1.0 / 2,
                                            1.0 / 6,
                                            1.0 / 24,
                                            1.0 / 120,
                                            1.0 / 720,
                                            1.0 / 5040,
                                            1.0 / 40320,
                                            1.0 / 362880,
                                            1.0 / 3628800,
                                            1.0 / 39916800,
                                            1.0 / 479001600,
                                            1.0 / 6227020800.0};
  double p = inv_fact.back();
  for (std::size_t n = inv_fact.size() - 1; n-- > 0;) p = inv_fact[n] + r * p;
  return std::ldexp(p, static_cast<int>(k));
}

// Uniforms, normals and log-normals from mt19937_64's raw 64-bit output.
class random_source {
 public:
  explicit random_source(std::uint64_t seed) : engine_(seed) {}

  // [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }
  bool chance(double p) { return uniform() < p; }
  // An integer in [0, n), n > 0.
  std::uint64_t below(std::uint64_t n) {
    const auto k = static_cast<std::uint64_t>(uniform() * static_cast<double>(n));
    return std::min(k, n - 1);
  }
  // Standard normal by Marsaglia's polar method (needs only log and sqrt, both of
  // which are deterministic here); the second value of each pair is kept for the next
  // call.
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    for (;;) {
      const double u = 2.0 * uniform() - 1.0;
      const double v = 2.0 * uniform() - 1.0;
      const double s = u * u + v * v;
      if (s >= 1.0 || s == 0.0) continue;
      const double f = std::sqrt(-2.0 * det_log(s) / s);
      spare_ = v * f;
      has_spare_ = true;
      return u * f;
    }
  }
  double log_normal(double median, double sigma) { return median * det_exp(sigma * normal()); }

 private:
  std::mt19937_64 engine_;
  double spare_ = 0.0;
  bool has_spare_ = false;
};

// An index drawn with probability weights[i] / (sum of weights not skipped); weights
// <= 0 are never drawn; nullopt when nothing is left to draw. Lists are short (assets or protocols
// of one market).
template <class Skip>
std::optional<std::size_t> pick(random_source& rng, std::span<const double> weights, Skip skip) {
  const auto out = [&](std::size_t i) { return !(weights[i] > 0.0) || skip(i); };
  double total = 0.0;
  for (std::size_t i = 0; i < weights.size(); ++i) {
    if (!out(i)) total += weights[i];
  }
  if (!(total > 0.0)) return std::nullopt;
  const double target = rng.uniform() * total;
  double acc = 0.0;
  std::optional<std::size_t> last;
  for (std::size_t i = 0; i < weights.size(); ++i) {
    if (out(i)) continue;
    acc += weights[i];
    last = i;
    if (target < acc) return i;
  }
  return last;  // rounding left target at the very top
}

// --- Reading the market ---------------------------------------------------------------

// Stablecoins by name; anything priced within 2% of $1 counts too. A symbol here that
// trades far from $1 (a depeg) is still a stablecoin: that is how it is borrowed.
constexpr std::array<std::string_view, 22> stable_symbols{
    "USDC", "USDT",   "DAI",  "USDS", "LUSD", "FRAX", "GHO",    "PYUSD", "TUSD",  "USDP", "GUSD",
    "BUSD", "CRVUSD", "USDE", "DOLA", "SUSD", "MIM",  "USDC.E", "USDBC", "FDUSD", "UST",  "USDT0"};
// Stablecoins that CDP protocols mint, in order of preference for a cdp's debt.
constexpr std::array<std::string_view, 6> cdp_stable_symbols{"DAI",  "USDS",   "GHO",
                                                             "LUSD", "CRVUSD", "MIM"};
// Borrow popularity of the big stablecoins; any other stablecoin gets 0.3.
double stable_popularity(std::string_view upper_symbol) {
  if (upper_symbol == "USDC") return 1.0;
  if (upper_symbol == "USDT") return 0.8;
  if (upper_symbol == "DAI" || upper_symbol == "USDS") return 0.6;
  return 0.3;
}

bool is_stable(const asset_spec& a, std::string_view upper_symbol) {
  if (std::find(stable_symbols.begin(), stable_symbols.end(), upper_symbol) !=
      stable_symbols.end()) {
    return true;
  }
  return a.price >= 0.98 && a.price <= 1.02;
}

// What a wrapped or staked token stands for: lower-case prefixes are the wrapper
// (stETH, wstETH, rETH, cbETH, weETH, tBTC), a leading W on a 4+ letter symbol too
// (WETH, WBTC). "wstETH" -> "ETH", "WBTC" -> "BTC", "LINK" -> "LINK".
std::string_view underlying(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size() && absl::ascii_islower(static_cast<unsigned char>(s[i]))) ++i;
  std::string_view rest = s.substr(i);
  if (rest.size() >= 4 && rest.front() == 'W') rest.remove_prefix(1);
  return rest.empty() ? s : rest;
}

struct asset_profile {
  bool stable = false;
  double weight = 1.0;           // popularity as collateral or volatile debt
  std::optional<asset_id> loop;  // the plain asset a recursive loop borrows against it
};

struct protocol_profile {
  protocol_id id;
  protocol_kind kind = protocol_kind::pooled;
  std::vector<asset_id> collateral;       // accepted assets, by id
  std::vector<double> collateral_weight;  // their weights
  std::vector<bool> collateral_stable;
  bool can_loop = false;              // accepts an asset that has a loop partner
  std::optional<asset_id> sole_debt;  // lends this stablecoin only (Maker, Comet)
  std::optional<asset_id> quote;      // margin: the settlement stablecoin
};

struct market_profile {
  std::vector<asset_profile> assets;
  std::vector<asset_id> stables;  // ranked by popularity, then id
  std::vector<double> stable_weight;
  std::vector<asset_id> volatiles;
  std::vector<double> volatile_weight;
  std::vector<protocol_profile> protocols;  // those accepting some collateral
  std::vector<double> protocol_weight;
};

// Splits a protocol name into upper-case tokens at anything not alphanumeric or '.',
// so "compound-v3-usdc" names USDC.
bool name_mentions(std::string_view name, std::string_view upper_symbol) {
  std::size_t i = 0;
  while (i < name.size()) {
    while (i < name.size() && !absl::ascii_isalnum(static_cast<unsigned char>(name[i])) &&
           name[i] != '.') {
      ++i;
    }
    std::size_t j = i;
    while (j < name.size() &&
           (absl::ascii_isalnum(static_cast<unsigned char>(name[j])) || name[j] == '.')) {
      ++j;
    }
    if (j > i && absl::AsciiStrToUpper(key(name.substr(i, j - i))) == upper_symbol) return true;
    i = j;
  }
  return false;
}

market_profile read_market(const market& m) {
  market_profile mp;
  const std::size_t n = m.asset_count();
  mp.assets.resize(n);
  std::vector<std::string> upper(n);
  double min_pool_weight = 0.0;
  for (std::size_t a = 0; a < n; ++a) {
    const asset_spec& spec = m.asset(asset_id::from_index(a));
    upper[a] = absl::AsciiStrToUpper(spec.symbol);
    mp.assets[a].stable = is_stable(spec, upper[a]);
    if (spec.liquidity) {
      // Deeper markets are held and borrowed more; sqrt keeps ETH from taking all.
      mp.assets[a].weight = std::sqrt(spec.liquidity->quote);
      if (min_pool_weight == 0.0 || mp.assets[a].weight < min_pool_weight) {
        min_pool_weight = mp.assets[a].weight;
      }
    } else {
      mp.assets[a].weight = 0.0;  // set below
    }
  }
  for (std::size_t a = 0; a < n; ++a) {
    if (mp.assets[a].weight == 0.0) {
      // Without a pool we know nothing of its depth: as popular as the thinnest pool.
      mp.assets[a].weight = min_pool_weight > 0.0 ? min_pool_weight : 1.0;
    }
  }
  // Loop partners: a derivative (wstETH) borrows its plain asset (ETH, else WETH).
  for (std::size_t a = 0; a < n; ++a) {
    if (mp.assets[a].stable) continue;
    const std::string_view sym = m.asset(asset_id::from_index(a)).symbol;
    const std::string_view u = underlying(sym);
    const std::string wrapped = absl::StrCat("W", key(u));
    if (sym == u || sym == wrapped) continue;  // already plain
    std::optional<asset_id> best;
    for (const std::string_view plain : {u, std::string_view(wrapped)}) {
      const auto b = m.find_asset(plain);
      if (!best && b && b->index() != a && !mp.assets[b->index()].stable) best = b;
    }
    mp.assets[a].loop = best;
  }
  for (std::size_t a = 0; a < n; ++a) {
    if (mp.assets[a].stable) {
      mp.stables.push_back(asset_id::from_index(a));
    } else {
      mp.volatiles.push_back(asset_id::from_index(a));
      mp.volatile_weight.push_back(mp.assets[a].weight);
    }
  }
  std::stable_sort(mp.stables.begin(), mp.stables.end(), [&](asset_id x, asset_id y) {
    return stable_popularity(upper[x.index()]) > stable_popularity(upper[y.index()]);
  });
  for (asset_id a : mp.stables) mp.stable_weight.push_back(stable_popularity(upper[a.index()]));

  for (std::size_t p = 0; p < m.protocol_count(); ++p) {
    const protocol& proto = m.get_protocol(protocol_id::from_index(p));
    protocol_profile pp;
    pp.id = protocol_id::from_index(p);
    pp.kind = proto.kind;
    std::optional<asset_id> named;
    for (asset_id s : mp.stables) {
      if (name_mentions(proto.name, upper[s.index()])) {
        named = s;
        break;
      }
    }
    for (std::size_t a = 0; a < n; ++a) {
      const auto id = asset_id::from_index(a);
      if (proto.params(id) == nullptr) continue;
      pp.collateral.push_back(id);
      pp.collateral_weight.push_back(mp.assets[a].weight);
      pp.collateral_stable.push_back(mp.assets[a].stable);
      if (mp.assets[a].loop) pp.can_loop = true;
    }
    if (pp.collateral.empty()) continue;
    const auto accepted = [&](asset_id a) {
      return std::find(pp.collateral.begin(), pp.collateral.end(), a) != pp.collateral.end();
    };
    if (proto.kind == protocol_kind::cdp) {
      // A CDP mints one stablecoin: the one it is named after, else a known CDP
      // stablecoin, else the most popular one it does not take as collateral.
      pp.sole_debt = named;
      for (std::string_view want : cdp_stable_symbols) {
        if (pp.sole_debt) break;
        for (asset_id s : mp.stables) {
          if (upper[s.index()] == want) pp.sole_debt = s;
        }
      }
      for (asset_id s : mp.stables) {
        if (!pp.sole_debt && !accepted(s)) pp.sole_debt = s;
      }
      if (!pp.sole_debt && !mp.stables.empty()) pp.sole_debt = mp.stables.front();
    } else if (proto.kind == protocol_kind::pooled) {
      // A pooled market named after a stablecoin (Compound v3's "cUSDCv3") lends only it.
      pp.sole_debt = named;
    } else {
      pp.quote = named;
      if (!pp.quote && !mp.stables.empty()) pp.quote = mp.stables.front();
    }
    // Pooled protocols hold most positions; a CDP or a perp venue fewer. Protocols that
    // take more kinds of collateral attract more users.
    const double kind_weight = proto.kind == protocol_kind::pooled ? 1.0
                               : proto.kind == protocol_kind::cdp  ? 0.4
                                                                   : 0.3;
    mp.protocol_weight.push_back(kind_weight *
                                 std::sqrt(static_cast<double>(pp.collateral.size())));
    mp.protocols.push_back(std::move(pp));
  }
  return mp;
}

// --- Shapes -----------------------------------------------------------------------------

// HF - 1 is log-normal per regime, so HF > 1 and has a long right tail. Calibrated on
// the 1,309 Aave v2 stETH accounts of lido_aave_steth_positions_2023-06/steth_aave.csv
// (column healthf): there 0.31% are below 1 (min 0.836, all with under 0.4 ETH of
// debt), 2.07% in [1, 1.1), 72.2% in [1.1, 3), 25.4% at 3 or more; percentiles p5 1.16,
// p10 1.22, p25 1.44, p50 1.99, p75 3.04, p90 4.9. Its loops (b1.csv: >= 80% stETH
// collateral, >= 80% ETH debt) sit tighter: p10 1.16, p50 1.34, p75 1.68. On the
// default market the mixture below gives 0.36%, 2.7%, 72.3%, 24.6% and p5 1.13, p10
// 1.20, p25 1.40, p50 1.89, p75 2.97, p90 4.97: the bands within a point, the
// percentiles within 5%. Margin accounts run tighter still (a 5x perp long: HF ~1.2).
struct hf_shape {
  double mu;
  double sigma;
};
constexpr hf_shape pooled_hf{0.08, 1.12};
constexpr hf_shape loop_hf{-1.05, 0.85};
constexpr hf_shape cdp_hf{0.20, 0.85};
constexpr hf_shape margin_hf{-1.30, 0.80};
constexpr double max_hf = 1000.0;

// Small positions nobody found worth liquidating: HF in (0.835, 1), crowding near 1.
constexpr double underwater_share = 0.0035;

// Collateral notional in USD: log-normal. sigma ~2.4 gives the real book's
// concentration (the top 1% of steth_aave.csv accounts hold 56% of the debt; here
// ~52%). Its median, 15 ETH (~$29k in June 2023), is halved here: accounts holding
// stETH are a richer cohort than borrowers at large (an assumption).
struct size_shape {
  double median;
  double sigma;
};
constexpr size_shape pooled_size{15'000.0, 2.4};
constexpr size_shape cdp_size{40'000.0, 2.1};  // Maker's dust floor keeps vaults larger
constexpr size_shape margin_size{6'000.0, 2.2};
constexpr size_shape underwater_size{400.0, 1.0};
constexpr double min_size = 20.0;
constexpr double max_size = 2e9;  // the largest single DeFi borrowers

constexpr double loop_share = 0.12;  // pooled positions that are recursive loops
constexpr double stable_collateral_share = 0.15;
constexpr double volatile_debt_share = 0.18;  // pooled non-loop positions borrowing non-stables
constexpr double second_debt_share = 0.20;
constexpr double margin_long_share = 0.75;
constexpr double repeat_owner_share = 0.25;

// 1 collateral asset 68%, 2 in 22%, 3 in 10%.
std::size_t collateral_count(random_source& rng) {
  const double u = rng.uniform();
  return u < 0.68 ? 1 : u < 0.90 ? 2 : 3;
}

constexpr std::size_t max_coll = 3;
constexpr std::size_t max_debt = 2;

struct leg_plan {
  std::array<asset_id, max_coll> coll{};
  std::size_t ncoll = 0;
  std::array<asset_id, max_debt> debt{};
  std::size_t ndebt = 0;
  hf_shape hf = pooled_hf;
  size_shape size = pooled_size;

  bool holds(asset_id a) const {
    for (std::size_t i = 0; i < ncoll; ++i) {
      if (coll[i] == a) return true;
    }
    for (std::size_t i = 0; i < ndebt; ++i) {
      if (debt[i] == a) return true;
    }
    return false;
  }
};

class planner {
 public:
  planner(const market_profile& mp, random_source& rng) : mp_(mp), rng_(rng) {}

  leg_plan plan(const protocol_profile& pp) {
    leg_plan lp;
    switch (pp.kind) {
      case protocol_kind::margin:
        plan_margin(pp, lp);
        break;
      case protocol_kind::cdp:
        plan_sole_lender(pp, lp, 1);
        break;
      case protocol_kind::pooled:
        if (pp.sole_debt) {
          plan_sole_lender(pp, lp, collateral_count(rng_));
        } else {
          plan_pooled(pp, lp);
        }
        break;
    }
    return lp;
  }

 private:
  // Adds up to `count` distinct accepted collateral assets; `stable` picks the class
  // (nullopt: either), falling back to the other class when one runs out.
  void add_collateral(const protocol_profile& pp, leg_plan& lp, std::size_t count,
                      std::optional<bool> stable, std::optional<asset_id> exclude = {}) {
    for (std::size_t k = 0; k < count && lp.ncoll < max_coll; ++k) {
      std::optional<bool> want = stable;
      if (!want) want = rng_.chance(stable_collateral_share);
      std::optional<std::size_t> i;
      for (int attempt = 0; attempt < 2 && !i; ++attempt) {
        const bool cls = attempt == 0 ? *want : !*want;
        i = pick(rng_, pp.collateral_weight, [&](std::size_t j) {
          return pp.collateral_stable[j] != cls || lp.holds(pp.collateral[j]) ||
                 (exclude && pp.collateral[j] == *exclude);
        });
      }
      if (!i) return;
      lp.coll[lp.ncoll++] = pp.collateral[*i];
    }
  }

  // A debt asset of the wanted class not already held: first among the protocol's own
  // listed assets (what it lends), then market-wide, then the other class. nullopt
  // only when every asset is already held.
  std::optional<asset_id> choose_debt(const protocol_profile& pp, const leg_plan& lp, bool stable) {
    for (int attempt = 0; attempt < 2; ++attempt) {
      const bool cls = attempt == 0 ? stable : !stable;
      auto listed = pick(rng_, pp.collateral_weight, [&](std::size_t j) {
        return pp.collateral_stable[j] != cls || lp.holds(pp.collateral[j]);
      });
      if (listed) {
        if (cls) {
          // Listed stablecoins are borrowed by popularity, not by pool depth.
          auto s = pick(rng_, mp_.stable_weight, [&](std::size_t j) {
            return lp.holds(mp_.stables[j]) || std::find(pp.collateral.begin(), pp.collateral.end(),
                                                         mp_.stables[j]) == pp.collateral.end();
          });
          if (s) return mp_.stables[*s];
        }
        return pp.collateral[*listed];
      }
      const auto& ids = cls ? mp_.stables : mp_.volatiles;
      const auto& w = cls ? mp_.stable_weight : mp_.volatile_weight;
      if (auto i = pick(rng_, w, [&](std::size_t j) { return lp.holds(ids[j]); })) {
        return ids[*i];
      }
    }
    return std::nullopt;
  }

  void add_debt(const protocol_profile& pp, leg_plan& lp, bool stable) {
    if (lp.ndebt >= max_debt) return;
    if (auto d = choose_debt(pp, lp, stable)) {
      lp.debt[lp.ndebt++] = *d;
    } else if (lp.ndebt == 0) {
      // Every asset of the market is collateral here: borrow the first one against
      // itself (that leg then carries both).
      lp.debt[lp.ndebt++] = lp.coll[0];
    }
  }

  void plan_pooled(const protocol_profile& pp, leg_plan& lp) {
    if (pp.can_loop && rng_.chance(loop_share)) {
      // Recursive leverage: deposit the derivative, borrow its plain asset, buy more.
      std::vector<double> w(pp.collateral.size(), 0.0);
      for (std::size_t j = 0; j < w.size(); ++j) {
        if (mp_.assets[pp.collateral[j].index()].loop) w[j] = pp.collateral_weight[j];
      }
      const auto i = pick(rng_, w, [](std::size_t) { return false; });  // can_loop: some w > 0
      lp.coll[lp.ncoll++] = pp.collateral[*i];
      lp.debt[lp.ndebt++] = *mp_.assets[pp.collateral[*i].index()].loop;
      lp.hf = loop_hf;
      return;
    }
    add_collateral(pp, lp, collateral_count(rng_), std::nullopt);
    add_debt(pp, lp, !rng_.chance(volatile_debt_share));
    if (rng_.chance(second_debt_share)) add_debt(pp, lp, true);
  }

  // Maker vaults (one collateral type each) and Comet markets: borrow the one stablecoin.
  void plan_sole_lender(const protocol_profile& pp, leg_plan& lp, std::size_t ncoll) {
    add_collateral(pp, lp, ncoll, std::nullopt, pp.sole_debt);
    if (lp.ncoll == 0) add_collateral(pp, lp, 1, std::nullopt);  // it takes only its own coin
    if (pp.sole_debt && !lp.holds(*pp.sole_debt)) {
      lp.debt[lp.ndebt++] = *pp.sole_debt;
    } else {
      add_debt(pp, lp, true);
    }
    if (pp.kind == protocol_kind::cdp) {
      lp.hf = cdp_hf;
      lp.size = cdp_size;
    }
  }

  // A perp account as a loan: a long of q units bought with margin M holds q units
  // against q * entry - M of quote debt; a short holds its margin plus the sale proceeds
  // in quote against q units of debt. The maintenance margin is the threshold's gap.
  void plan_margin(const protocol_profile& pp, leg_plan& lp) {
    lp.hf = margin_hf;
    lp.size = margin_size;
    const bool quote_is_collateral =
        pp.quote &&
        std::find(pp.collateral.begin(), pp.collateral.end(), *pp.quote) != pp.collateral.end();
    const bool has_volatile = std::find(pp.collateral_stable.begin(), pp.collateral_stable.end(),
                                        false) != pp.collateral_stable.end();
    const bool long_side = !quote_is_collateral || (has_volatile && rng_.chance(margin_long_share));
    if (long_side) {
      add_collateral(pp, lp, collateral_count(rng_), false, pp.quote);
      if (pp.quote && !lp.holds(*pp.quote)) {
        lp.debt[lp.ndebt++] = *pp.quote;
      } else {
        add_debt(pp, lp, true);
      }
    } else {
      lp.coll[lp.ncoll++] = *pp.quote;
      add_debt(pp, lp, false);
      if (rng_.chance(0.2)) add_debt(pp, lp, false);
    }
  }

  const market_profile& mp_;
  random_source& rng_;
};

// --- Owners -----------------------------------------------------------------------------

// SplitMix64's finalizer: a bijective mix, so distinct owner numbers give distinct
// addresses for one seed.
std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::string owner_address(std::uint64_t seed, std::uint64_t owner) {
  constexpr std::string_view hex = "0123456789abcdef";
  const std::uint64_t base = mix64(seed ^ 0x6a09e667f3bcc909ULL) ^ (owner * 0x9e3779b97f4a7c15ULL);
  const std::array<std::uint64_t, 3> words{mix64(base), mix64(base + 1), mix64(base + 2)};
  std::string out(42, '0');
  out[1] = 'x';
  for (std::size_t i = 0; i < 40; ++i) {
    const std::uint64_t w = words[i / 16];
    out[2 + i] = hex[(w >> (60 - 4 * (i % 16))) & 0xF];
  }
  return out;
}

}  // namespace

double reference_health(const market& m, const position_input& p) {
  const protocol& proto = m.get_protocol(p.protocol);
  double num = 0.0;
  double den = 0.0;
  for (const leg& l : p.legs) {
    if (l.collateral > 0.0) {
      const double coef = l.collateral * proto.threshold(l.asset);  // the book's term
      num += coef * m.asset(l.asset).price;
    }
  }
  for (const leg& l : p.legs) {
    if (l.debt > 0.0) den += l.debt * m.asset(l.asset).price;
  }
  return den > 0.0 ? num / den : std::numeric_limits<double>::infinity();
}

absl::StatusOr<std::vector<position_input>> generate_positions(const market& m,
                                                               const generator_options& o) {
  if (o.positions > max_generated_positions) {
    return absl::InvalidArgumentError(absl::StrCat("generator: ", o.positions,
                                                   " positions requested, more than the limit of ",
                                                   max_generated_positions));
  }
  std::vector<position_input> out;
  if (o.positions == 0) return out;
  if (m.protocol_count() == 0) {
    return absl::FailedPreconditionError(
        "generator: the market has no protocols, so no position can be placed");
  }
  const market_profile mp = read_market(m);
  if (mp.protocols.empty()) {
    return absl::FailedPreconditionError(
        "generator: no protocol in the market accepts any asset as collateral; give at least "
        "one protocol an asset with a liquidation threshold");
  }

  const std::size_t n = static_cast<std::size_t>(o.positions);
  random_source rng(o.seed);
  planner plans(mp, rng);
  out.reserve(n);
  // A repeat owner is taken from one of the last `owner_window` positions: the order of
  // positions carries no meaning, and a recent window keeps these lookups in cache (a
  // random earlier position costs a cache miss per position on large books) and the
  // ring's memory fixed. Per owner, the protocols (mod 64) it is in: a pooled or margin
  // account is one per address and protocol, CDP vaults are not.
  constexpr std::size_t owner_window = std::size_t{1} << 16;
  std::vector<std::uint32_t> recent_owner(std::min(n, owner_window));
  std::vector<std::uint64_t> owner_protocols;
  owner_protocols.reserve(n / 2);

  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t pi = *pick(rng, mp.protocol_weight, [](std::size_t) { return false; });
    const protocol_profile& pp = mp.protocols[pi];
    const protocol& proto = m.get_protocol(pp.id);
    leg_plan lp = plans.plan(pp);

    const bool underwater = rng.chance(underwater_share);
    double hf = 0.0;
    double size = 0.0;
    if (underwater) {
      const double u = 1.0 - rng.uniform();  // (0, 1]: strictly below 1
      hf = 1.0 - 0.165 * u * std::sqrt(u);
      size = rng.log_normal(underwater_size.median, underwater_size.sigma);
    } else {
      hf = std::min(1.0 + det_exp(lp.hf.mu + lp.hf.sigma * rng.normal()), max_hf);
      size = rng.log_normal(lp.size.median, lp.size.sigma);
    }
    size = std::clamp(size, min_size, max_size);

    // Split the notional over the collateral legs, the first one usually the largest.
    std::array<double, max_coll> share{};
    double share_sum = 0.0;
    for (std::size_t k = 0; k < lp.ncoll; ++k) {
      share[k] = (k == 0 ? 0.7 : 0.2) + rng.uniform();
      share_sum += share[k];
    }
    std::array<double, max_debt> debt_share{1.0, 0.0};
    if (lp.ndebt == 2) {
      debt_share[0] = 0.55 + 0.35 * rng.uniform();
      debt_share[1] = 1.0 - debt_share[0];
    }

    position_input pos;
    pos.protocol = pp.id;
    pos.id = absl::StrCat(proto.name, "-", i);
    pos.legs.reserve(lp.ncoll + lp.ndebt);
    // Threshold-weighted collateral value, summed exactly as the book does.
    double weighted = 0.0;
    for (std::size_t k = 0; k < lp.ncoll; ++k) {
      const asset_id a = lp.coll[k];
      const double price = m.asset(a).price;
      const double amount = size * (share[k] / share_sum) / price;
      pos.legs.push_back({a, amount, 0.0});
      weighted += (amount * proto.threshold(a)) * price;
    }
    const double debt_usd = weighted / hf;
    for (std::size_t k = 0; k < lp.ndebt; ++k) {
      const asset_id a = lp.debt[k];
      // Never 0: an absurd market (thresholds near 0, prices near the double limits)
      // must still give every position some debt.
      const double amount =
          std::max(debt_usd * debt_share[k] / m.asset(a).price, std::numeric_limits<double>::min());
      auto same = std::find_if(pos.legs.begin(), pos.legs.end(),
                               [&](const leg& l) { return l.asset == a; });
      if (same != pos.legs.end()) {
        same->debt += amount;
      } else {
        pos.legs.push_back({a, 0.0, amount});
      }
    }

    std::uint32_t owner = 0;
    const std::uint64_t bit = std::uint64_t{1} << (pp.id.index() % 64);
    bool fresh = true;
    if (i > 0 && rng.chance(repeat_owner_share)) {
      const std::size_t back = 1 + rng.below(std::min(i, owner_window));
      owner = recent_owner[(i - back) % owner_window];
      fresh = (owner_protocols[owner] & bit) != 0 && pp.kind != protocol_kind::cdp;
    }
    if (fresh) {
      owner = static_cast<std::uint32_t>(owner_protocols.size());
      owner_protocols.push_back(0);
    }
    owner_protocols[owner] |= bit;
    recent_owner[i % owner_window] = owner;
    pos.owner = owner_address(o.seed, owner);
    out.push_back(std::move(pos));
  }
  return out;
}

}  // namespace cascade
