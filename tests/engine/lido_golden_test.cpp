// Golden test on real on-chain data: every Aave v2 and v3 account on Ethereum that held
// stETH / wstETH collateral in June 2023, as read with getUserAccountData by
// lidofinance/aave-liquidation-model (see ../shared/data/README.md), loaded into the
// book. The data is not part of the repository: where ../shared/data is missing the
// tests WARN "... missing: skipped" and pass, so a fresh clone elsewhere still passes.
//
// 1. The book reproduces every account's on-chain health factor (1,309 v2 + 502 v3)
//    from the account totals (collateral, debt, weighted threshold) to 1e-9 relative.
// 2. The per-asset legs that the b2 / b21_debt_stables files break out (stETH/wstETH,
//    stablecoin collateral and debt, ETH debt) rebuild the health factor as far as
//    those legs go; the statistics are printed and bounded, and the accounts whose
//    legs are complete are held to the bound set by Aave's integer arithmetic.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <iomanip>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "support/csv_table.hpp"
#include "support/fixtures.hpp"

using namespace cascade;
using cascade::testing::csv_table;
using cascade::testing::must;

namespace {

namespace fs = std::filesystem;

constexpr double inf = std::numeric_limits<double>::infinity();

fs::path lido_dir() {
  return fs::path(CASCADE_SHARED_DATA_DIR) / "lido_aave_steth_positions_2023-06";
}

// Reads the named files of the lido folder, in order. When the folder or any file is
// missing it WARNs which one and returns nullopt; the caller then returns (Catch2 v2 has
// no SKIP).
std::optional<std::vector<csv_table>> load_or_skip(std::initializer_list<const char*> files) {
  std::vector<csv_table> tables;
  for (const char* file : files) {
    const fs::path path = lido_dir() / file;
    std::optional<csv_table> t = csv_table::read(path);
    if (!t) {
      WARN("real data " << path.string() << " missing: skipped");
      return std::nullopt;
    }
    tables.push_back(std::move(*t));
  }
  return tables;
}

// getUserAccountData returns type(uint256).max as the health factor of an account with
// no debt. The files hold health factors divided by 1e18 (WAD), so such an account
// would read (2^256 - 1) / 1e18 = 1.158e59 (as a double 2^256 - 1 is 2^256). Real health
// factors in these files stay below 1e9, so anything >= 1e59 can only be that sentinel,
// and the book's value for it is +inf (HF with no debt).
constexpr double onchain_no_debt_floor = 1e59;
double book_hf_for(double healthf) { return healthf >= onchain_no_debt_floor ? inf : healthf; }

// |got - want| / |want|; 0 when both are +inf, +inf when only one is.
double rel_error(double got, double want) {
  if (std::isinf(got) || std::isinf(want)) return got == want ? 0.0 : inf;
  return std::abs(got - want) / std::abs(want);
}

struct error_stats {
  std::size_t n = 0;
  double max = 0.0;
  double median = 0.0;
  std::size_t within_1e6 = 0, within_1e3 = 0, within_1e2 = 0;
};

error_stats summarize(std::vector<double> errors) {
  error_stats s;
  s.n = errors.size();
  if (errors.empty()) return s;
  std::sort(errors.begin(), errors.end());
  s.max = errors.back();
  const std::size_t h = errors.size() / 2;
  s.median = errors.size() % 2 == 1 ? errors[h] : 0.5 * (errors[h - 1] + errors[h]);
  for (const double e : errors) {
    s.within_1e6 += e <= 1e-6 ? 1 : 0;
    s.within_1e3 += e <= 1e-3 ? 1 : 0;
    s.within_1e2 += e <= 1e-2 ? 1 : 0;
  }
  return s;
}

// ---------------------------------------------------------------------------------
// Part 1: account totals.
//
// Mapping. The model's thresholds belong to (protocol, asset); the files give each
// account's own weighted threshold (getUserAccountData's currentLiquidationThreshold,
// in basis points) over its whole collateral value. So every distinct threshold value
// t of an Aave version becomes one synthetic collateral asset "V2_COLL_<t>" /
// "V3_COLL_<t>" with liquidation threshold t / 10000 in that version's protocol, and the
// account holds `collateral` units of it; its debt is `debt` units of "V2_DEBT" /
// "V3_DEBT". All prices are 1.0 in the version's base currency: Aave v2 values
// everything in ETH, v3 in USD, so one unit is one ETH (v2) or one USD (v3) of
// value. The versions keep separate assets because their units differ (the book's
// v2 totals are in ETH, v3 totals in USD); HF is a ratio, so the unit cancels. The book
// then computes collateral * (t / 10000) / debt, which is Aave's
// percentMul(collateral, t) wadDiv debt without the integer rounding (that rounding is
// at most 1.1e-10 relative here, on a v3 account with 2.25e-6 USD of debt).
// Liquidation bonus and close factor do not enter HF; they are set to the published
// stETH bonus 7% and Aave's rules: close factor 50%, v2 never liquidates whole
// (full_liquidation_hf 0), v3 whole below HF 0.95.
struct version_file {
  const char* file;
  const char* protocol;
  const char* prefix;
  double full_liquidation_hf;
  std::size_t expected_accounts;
  std::size_t expected_below_one;   // accounts already liquidatable on chain
  std::size_t expected_thresholds;  // distinct weighted thresholds
};

constexpr version_file aave_v2{"steth_aave.csv", "aave-v2", "V2_", 0.0, 1309, 4, 265};
constexpr version_file aave_v3{"steth_aave_v3.csv", "aave-v3", "V3_", 0.95, 502, 0, 142};

int threshold_bps(const csv_table& t, std::size_t row) {
  const double bps = t.number(row, "threshold");
  INFO(t.name() << " row " << row + 1 << ": threshold " << bps);
  REQUIRE(bps == std::floor(bps));
  REQUIRE(bps >= 1.0);
  REQUIRE(bps <= 10000.0);
  return static_cast<int>(bps);
}

std::string coll_symbol(const version_file& v, int bps) {
  return std::string(v.prefix) + "COLL_" + std::to_string(bps);
}

}  // namespace

TEST_CASE("the book reproduces the on-chain health factor of every Aave stETH account",
          "[golden][data]") {
  const auto tables = load_or_skip({aave_v2.file, aave_v3.file});
  if (!tables) return;
  const std::pair<const version_file*, const csv_table*> versions[] = {{&aave_v2, &(*tables)[0]},
                                                                       {&aave_v3, &(*tables)[1]}};

  market m;
  for (const auto& [v, t] : versions) {
    REQUIRE(t->size() == v->expected_accounts);
    std::set<int> thresholds;
    for (std::size_t r = 0; r < t->size(); ++r) thresholds.insert(threshold_bps(*t, r));
    CHECK(thresholds.size() == v->expected_thresholds);
    protocol_spec spec{v->protocol, protocol_kind::pooled, 0.5, v->full_liquidation_hf, {}};
    must(m.add_asset({std::string(v->prefix) + "DEBT", 1.0, std::nullopt}));
    for (const int bps : thresholds) {
      must(m.add_asset({coll_symbol(*v, bps), 1.0, std::nullopt}));
      spec.assets.push_back({coll_symbol(*v, bps), {bps / 10000.0, 0.07}});
    }
    must(m.add_protocol(spec));
  }

  book b(m);
  std::vector<position_input> batch;
  for (const auto& [v, t] : versions) {
    const protocol_id p = *m.find_protocol(v->protocol);
    const asset_id debt_asset = *m.find_asset(std::string(v->prefix) + "DEBT");
    for (std::size_t r = 0; r < t->size(); ++r) {
      const std::string& user = t->text(r, "user");
      position_input in{std::string(v->protocol) + ":" + user, p, user, {}};
      const double collateral = t->number(r, "collateral");
      const double debt = t->number(r, "debt");
      if (collateral > 0.0) {
        in.legs.push_back({*m.find_asset(coll_symbol(*v, threshold_bps(*t, r))), collateral, 0.0});
      }
      if (debt > 0.0) in.legs.push_back({debt_asset, 0.0, debt});
      batch.push_back(std::move(in));
    }
  }
  must(b.upsert(batch));
  REQUIRE(b.size() == 1309 + 502);

  std::size_t checked = 0;
  for (const auto& [v, t] : versions) {
    const protocol_id p = *m.find_protocol(v->protocol);
    std::size_t zero_debt = 0, below_one = 0;
    double max_err = 0.0, min_hf = inf, sum_collateral = 0.0, sum_debt = 0.0;
    std::string worst;
    for (std::size_t r = 0; r < t->size(); ++r) {
      const std::string& user = t->text(r, "user");
      const std::optional<double> hf = b.health(std::string(v->protocol) + ":" + user);
      REQUIRE(hf.has_value());
      const double healthf = t->number(r, "healthf");
      const double want = book_hf_for(healthf);
      sum_collateral += t->number(r, "collateral");
      sum_debt += t->number(r, "debt");
      if (t->number(r, "debt") == 0.0) {
        // No debt: the book says +inf, on chain healthf is the uint256 max sentinel.
        ++zero_debt;
        INFO(v->protocol << " " << user << " has no debt; healthf " << healthf);
        CHECK(std::isinf(*hf));
        CHECK(std::isinf(want));
        continue;
      }
      REQUIRE(std::isfinite(want));
      below_one += healthf < 1.0 ? 1 : 0;
      min_hf = std::min(min_hf, healthf);
      const double err = rel_error(*hf, want);
      if (err > max_err || worst.empty()) {
        max_err = std::max(err, max_err);
        worst = user;
      }
      ++checked;
    }
    WARN(v->protocol << ": " << t->size()
                     << " accounts, book HF vs on-chain healthf: max relative "
                        "error "
                     << max_err << " (" << worst << "); " << zero_debt << " without debt; "
                     << below_one << " below 1 (lowest " << min_hf << ")");
    INFO(v->protocol << " worst account " << worst);
    REQUIRE(max_err <= 1e-9);
    // Every account in these files has debt (none carries the uint256 max sentinel).
    REQUIRE(zero_debt == 0);

    // The book's band bookkeeping on real positions: the accounts already under 1.
    CHECK(below_one == v->expected_below_one);
    const std::vector<at_risk_entry> under = b.below(1.0, b.rows(), p);
    REQUIRE(under.size() == below_one);
    CHECK(b.band_counts()[p.index()][static_cast<std::size_t>(band::liquidatable)] == below_one);
    if (!under.empty()) CHECK(under.front().hf == Approx(min_hf).epsilon(1e-12));

    // Totals (in the version's base currency, ETH or USD) over every band.
    double book_collateral = 0.0, book_debt = 0.0;
    const auto totals = b.totals();
    for (const band_totals& bt : totals[p.index()]) {
      book_collateral += bt.collateral_usd;
      book_debt += bt.debt_usd;
    }
    CHECK(book_collateral == Approx(sum_collateral).epsilon(1e-12));
    CHECK(book_debt == Approx(sum_debt).epsilon(1e-12));
  }
  REQUIRE(checked == 1309 + 502);

  // An account whose debt is repaid in full: HF +inf in the book, the same as the
  // sentinel getUserAccountData would return, and it is healthy.
  CHECK(std::isinf(book_hf_for(std::ldexp(1.0, 256) / 1e18)));
  const std::string& user = versions[0].second->text(0, "user");
  position_input repaid = batch.front();
  repaid.id = "aave-v2-repaid:" + user;
  std::erase_if(repaid.legs, [](const leg& l) { return l.debt > 0.0; });
  REQUIRE(repaid.legs.size() == 1);
  must(b.upsert(std::vector<position_input>{repaid}));
  CHECK(std::isinf(*b.health(repaid.id)));
  CHECK(b.band_at(*b.find(repaid.id)) == band::healthy);
}

// ---------------------------------------------------------------------------------
// Part 2: per-asset legs.
namespace {

// A per-asset block of a b2 / b21 file: `<sym>` (raw debt amount in token units times
// 10^decimals), `<sym>_price` (v2: ETH with 18 decimals, v3: USD with 8 decimals),
// `<sym>_decimals`, `<sym>_threshold` (0: not accepted as collateral),
// `<sym>_ethreshold` (v3 e-mode threshold; 0: outside the ETH e-mode category), and
// where present `<sym>_collateral` (raw collateral amount) and `<sym>_debt` (the debt
// valued in the base currency, which the test uses only to confirm the reading).
struct token_block {
  std::string sym;
  double price = 0.0;  // in the base currency
  double scale = 1.0;  // 10^decimals
  double threshold = 0.0;
  double ethreshold = 0.0;
  std::size_t raw_debt_col = 0;
  std::optional<std::size_t> collateral_col, debt_value_col;
};

// Reads a column that must hold one value in every row.
double constant_column(const csv_table& t, const std::string& col) {
  const double v = t.number(0, col);
  for (std::size_t r = 1; r < t.size(); ++r) {
    INFO(t.name() << " column " << col << " row " << r + 1);
    REQUIRE(t.number(r, col) == v);
  }
  return v;
}

std::vector<token_block> token_blocks(const csv_table& t, double price_unit) {
  std::vector<token_block> blocks;
  for (const std::string& sym : t.header()) {
    if (sym.empty() || !t.has_column(sym + "_price") || !t.has_column(sym + "_decimals") ||
        !t.has_column(sym + "_threshold")) {
      continue;
    }
    token_block k;
    k.sym = sym;
    k.price = constant_column(t, sym + "_price") / price_unit;
    k.scale = std::pow(10.0, constant_column(t, sym + "_decimals"));
    k.threshold = constant_column(t, sym + "_threshold");
    if (t.has_column(sym + "_ethreshold")) k.ethreshold = constant_column(t, sym + "_ethreshold");
    k.raw_debt_col = t.column(sym);
    k.collateral_col = t.find_column(sym + "_collateral");
    k.debt_value_col = t.find_column(sym + "_debt");
    blocks.push_back(std::move(k));
  }
  return blocks;
}

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
  return s;
}

// How one version's legs become a market and positions.
struct leg_model {
  std::string label;
  bool v3 = false;
  std::string lsd;         // "stETH" (v2) or "wstETH" (v3); its amount is `amount`
  double lsd_price = 0.0;  // base currency per token, as the files give it
  double eth_price = 1.0;
  double lsd_threshold = 0.0;
  double lsd_ethreshold = 0.0;  // v3 e-mode
  // Per-token thresholds replacing the file's (calibration to June 2023 on chain).
  std::map<std::string, double> threshold_override;
  // Prices the book is ticked to after loading (calibration), if any.
  std::optional<std::pair<double, double>> tick_lsd_eth;
};

struct rebuild_result {
  std::string label;
  std::size_t accounts = 0;
  std::size_t no_debt_leg = 0;  // no debt in the broken-out legs: book HF +inf
  std::vector<double> errors;   // accounts with a debt leg
  std::size_t complete = 0;     // legs' values match collateral and debt within 1e-6
  std::vector<double> complete_errors;
  double worst_bound_ratio = 0.0;  // max over complete accounts of error / bound
  std::string worst_bound_user;
  std::size_t lsd_holders = 0;  // v3 accounts with rETH / cbETH (legs not modelled)
};

std::string describe(const rebuild_result& r) {
  const error_stats s = summarize(r.errors);
  const error_stats c = summarize(r.complete_errors);
  std::ostringstream o;
  o << r.label << ": " << r.accounts << " accounts, " << r.no_debt_leg
    << " with no debt leg in the file (HF +inf), " << s.n << " rebuilt: relative error "
    << "max " << s.max << ", median " << s.median << "; within 1e-6: " << s.within_1e6
    << ", 1e-3: " << s.within_1e3 << ", 1e-2: " << s.within_1e2 << ". Legs complete "
    << "(collateral and debt value within 1e-6): " << r.complete << ", max error " << c.max
    << ", worst error / (1/threshold_bps + 5e-6) = " << r.worst_bound_ratio << " ("
    << r.worst_bound_user << ")";
  if (r.lsd_holders > 0) o << "; " << r.lsd_holders << " also hold rETH/cbETH (not modelled)";
  return o.str();
}

// Loads one b2-style file into a fresh market and book with model `lm`, checks how
// the columns read, and measures every account's rebuilt HF against `healthf`.
rebuild_result rebuild(const csv_table& t, const leg_model& lm) {
  rebuild_result res;
  res.label = lm.label + " (" + fs::path(t.name()).filename().string() + ")";
  res.accounts = t.size();
  const std::vector<token_block> tokens = token_blocks(t, lm.v3 ? 1e8 : 1e18);
  REQUIRE(tokens.size() == (lm.v3 ? 4u : 10u));

  market m;
  const asset_id lsd = must(m.add_asset({lm.lsd, lm.lsd_price, std::nullopt}));
  const asset_id eth = must(m.add_asset({"ETH", lm.eth_price, std::nullopt}));
  std::vector<asset_id> token_ids;
  for (const token_block& k : tokens) {
    token_ids.push_back(must(m.add_asset({upper(k.sym), k.price, std::nullopt})));
  }
  // Aave v3 e-mode is a second set of risk parameters chosen per account, so it is a
  // protocol of its own here: wstETH at the e-mode threshold, tokens outside the ETH
  // category (ethreshold 0) at their own threshold, as Aave v3 does. The bonuses are
  // not in the files and do not enter HF: 7% for stETH/wstETH (published; e-mode's 1%
  // is not used here), 0 for the tokens.
  const auto make_protocol = [&](const std::string& name, bool emode) {
    protocol_spec spec{name, protocol_kind::pooled, 0.5, lm.v3 ? 0.95 : 0.0, {}};
    spec.assets.push_back({lm.lsd, {emode ? lm.lsd_ethreshold : lm.lsd_threshold, 0.07}});
    for (const token_block& k : tokens) {
      double th = k.threshold;
      if (const auto it = lm.threshold_override.find(k.sym); it != lm.threshold_override.end()) {
        th = it->second;
      }
      if (emode && k.ethreshold > 0.0) th = k.ethreshold;
      if (th > 0.0) spec.assets.push_back({upper(k.sym), {th, 0.0}});
    }
    return must(m.add_protocol(spec));
  };
  const protocol_id base = make_protocol(lm.v3 ? "aave-v3" : "aave-v2", false);
  const protocol_id emode = lm.v3 ? make_protocol("aave-v3-emode-eth", true) : base;

  const std::size_t amount_col = t.column("amount");
  const std::size_t ethdebt_col = t.column("ethdebt");
  const std::size_t steth_calc_col = t.column("collateral_steth_calc");
  const std::optional<std::size_t> stable_calc_col = t.find_column("collateral_stable_calc");
  const std::optional<std::size_t> emode_col = t.find_column("emode");
  REQUIRE(emode_col.has_value() == lm.v3);
  const double file_lsd_price = lm.v3 ? constant_column(t, "steth_price") : lm.lsd_price;

  std::vector<position_input> batch;
  double worst_column = 0.0;  // how the per-asset columns agree with the authors' sums
  for (std::size_t r = 0; r < t.size(); ++r) {
    const bool in_emode = emode_col && t.number(r, *emode_col) == 1.0;
    position_input in{t.text(r, "user"), in_emode ? emode : base, "", {}};
    const double amount = t.number(r, amount_col);
    const double ethdebt = t.number(r, ethdebt_col);
    if (amount > 0.0) in.legs.push_back({lsd, amount, 0.0});
    if (ethdebt > 0.0) in.legs.push_back({eth, 0.0, ethdebt});
    worst_column =
        std::max(worst_column, rel_error(amount * file_lsd_price, t.number(r, steth_calc_col)));
    double stable_collateral_value = 0.0;
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      const token_block& k = tokens[i];
      const double debt = t.number(r, k.raw_debt_col) / k.scale;
      const double collateral = k.collateral_col ? t.number(r, *k.collateral_col) / k.scale : 0.0;
      if (k.debt_value_col) {
        const double want = t.number(r, *k.debt_value_col);
        worst_column = std::max(worst_column, want == 0.0 ? debt : rel_error(debt * k.price, want));
      }
      stable_collateral_value += collateral * k.price;
      if (debt > 0.0 || collateral > 0.0) in.legs.push_back({token_ids[i], collateral, debt});
    }
    if (stable_calc_col) {
      const double want = t.number(r, *stable_calc_col);
      worst_column = std::max(worst_column, want == 0.0 ? stable_collateral_value
                                                        : rel_error(stable_collateral_value, want));
    }
    if (lm.v3) {
      if (t.number(r, "reth_collateral") > 0.0 || t.number(r, "cbeth_collateral") > 0.0)
        ++res.lsd_holders;
    }
    batch.push_back(std::move(in));
  }
  // The columns read as described: raw units / 10^decimals * price / price unit gives
  // the authors' own per-asset values.
  INFO(res.label << ": worst disagreement of a leg with collateral_steth_calc, "
                    "<sym>_debt or collateral_stable_calc");
  REQUIRE(worst_column <= 1e-12);

  book b(m);
  must(b.upsert(batch));
  REQUIRE(b.size() == t.size());
  if (lm.tick_lsd_eth) {
    std::vector<crossing> events;
    must(b.apply_ticks(
        std::vector<tick>{{lsd, lm.tick_lsd_eth->first}, {eth, lm.tick_lsd_eth->second}}, events));
    // The incremental tick path agrees with an exact recompute on real positions.
    for (row_t r = 0; r < b.rows(); ++r) {
      const health_cell exact = b.compute_cell(r, b.prices());
      REQUIRE(rel_error(health_of(b.cells()[r]), health_of(exact)) <= 1e-12);
    }
  }

  const std::span<const double> prices = b.prices();
  for (std::size_t r = 0; r < t.size(); ++r) {
    const std::string& user = t.text(r, "user");
    const row_t row = *b.find(user);
    const double hf = b.health_at(row);
    double collateral_value = 0.0, debt_value = 0.0;
    const auto assets = b.leg_assets(row);
    for (std::size_t k = 0; k < assets.size(); ++k) {
      collateral_value += b.leg_collateral(row)[k] * prices[assets[k].index()];
      debt_value += b.leg_debt(row)[k] * prices[assets[k].index()];
    }
    if (debt_value == 0.0) {
      ++res.no_debt_leg;
      CHECK(std::isinf(hf));
      continue;
    }
    const double err = rel_error(hf, t.number(r, "healthf"));
    res.errors.push_back(err);
    // Complete legs: the broken-out legs account for the whole on-chain collateral and
    // debt (to 1e-6, the debt interest that accrues between the reads of one account).
    // Then the only gap left is Aave's integer arithmetic: the account's weighted
    // threshold is truncated to whole basis points (GenericLogic divides
    // sum(value_i * LT_i) by the total value in integers), so on-chain HF sits up to
    // 1 / threshold_bps below the exact weighted HF the book computes.
    if (rel_error(collateral_value, t.number(r, "collateral")) <= 1e-6 &&
        rel_error(debt_value, t.number(r, "debt")) <= 1e-6) {
      ++res.complete;
      res.complete_errors.push_back(err);
      const double ratio = err / (1.0 / t.number(r, "threshold") + 5e-6);
      if (ratio > res.worst_bound_ratio) {
        res.worst_bound_ratio = ratio;
        res.worst_bound_user = user;
      }
    }
  }
  return res;
}

// The most common value of xs rounded to 8 decimals (Aave v3 prices are USD with 8
// decimals), and how many share it.
std::pair<double, std::size_t> mode_8dp(const std::vector<double>& xs) {
  std::map<std::int64_t, std::size_t> count;
  for (const double x : xs) ++count[static_cast<std::int64_t>(std::llround(x * 1e8))];
  const auto best = std::max_element(
      count.begin(), count.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
  return {static_cast<double>(best->first) / 1e8, best->second};
}

// The thresholds (bps -> accounts) of the accounts whose collateral is only the
// liquid-staking token: collateral / amount equals the token's price.
std::map<int, std::size_t> single_asset_thresholds(const csv_table& t, double price,
                                                   double tolerance, std::optional<double> emode) {
  std::map<int, std::size_t> out;
  for (std::size_t r = 0; r < t.size(); ++r) {
    if (emode && t.number(r, "emode") != *emode) continue;
    const double amount = t.number(r, "amount");
    if (amount > 0.0 && rel_error(t.number(r, "collateral") / amount, price) <= tolerance) {
      ++out[threshold_bps(t, r)];
    }
  }
  return out;
}

std::string show(const std::map<int, std::size_t>& m) {
  std::ostringstream o;
  for (const auto& [bps, n] : m) o << (o.tellp() > 0 ? ", " : "") << bps << " bps x" << n;
  return o.str();
}

}  // namespace

TEST_CASE("per-asset legs of the b2 files rebuild the on-chain health factor", "[golden][data]") {
  const auto tables =
      load_or_skip({"steth_aave.csv", "steth_aave_v3.csv", "b2.csv", "b21_debt_stables.csv",
                    "b2_v3.csv", "b21_debt_stables_v3.csv"});
  if (!tables) return;
  const csv_table& all_v2 = (*tables)[0];
  const csv_table& all_v3 = (*tables)[1];
  const csv_table& b2 = (*tables)[2];
  const csv_table& b21 = (*tables)[3];
  const csv_table& b2_v3 = (*tables)[4];
  const csv_table& b21_v3 = (*tables)[5];
  REQUIRE(b2.size() == 700);
  REQUIRE(b21.size() == 646);
  REQUIRE(b2_v3.size() == 346);
  REQUIRE(b21_v3.size() == 307);

  // b21_debt_stables is the subset of b2 with stablecoin debt, row for row; every b2
  // account is one of the accounts of part 1, with the same healthf (to 1e-15: the v2
  // b2 file was written from a different float path, and 478 of its rows differ from
  // steth_aave.csv in the last digit of healthf, collateral or debt).
  for (const auto& [sub, super, all] :
       {std::tuple{&b21, &b2, &all_v2}, std::tuple{&b21_v3, &b2_v3, &all_v3}}) {
    REQUIRE(sub->header() == super->header());
    std::map<std::string, std::size_t> super_row, all_row;
    for (std::size_t r = 0; r < super->size(); ++r) super_row[super->text(r, "user")] = r;
    for (std::size_t r = 0; r < all->size(); ++r) all_row[all->text(r, "user")] = r;
    REQUIRE(super_row.size() == super->size());
    for (std::size_t r = 0; r < sub->size(); ++r) {
      const auto it = super_row.find(sub->text(r, "user"));
      REQUIRE(it != super_row.end());
      for (std::size_t c = 1; c < sub->header().size(); ++c) {  // column 0: pandas index
        REQUIRE(sub->text(r, c) == super->text(it->second, c));
      }
    }
    for (const auto& [user, r] : super_row) {
      const auto it = all_row.find(user);
      REQUIRE(it != all_row.end());
      REQUIRE(rel_error(super->number(r, "healthf"), all->number(it->second, "healthf")) <= 1e-15);
    }
  }

  // ---- Aave v2 (ETH base currency). The stETH price in ETH is not a column; the
  // authors' collateral_steth_calc = amount * price gives it (one value in every row).
  double steth_eth = inf, steth_eth_hi = 0.0;
  for (std::size_t r = 0; r < all_v2.size(); ++r) {
    const double x = all_v2.number(r, "collateral_steth_calc") / all_v2.number(r, "amount");
    steth_eth = std::min(steth_eth, x);
    steth_eth_hi = std::max(steth_eth_hi, x);
  }
  REQUIRE(steth_eth_hi / steth_eth - 1.0 <= 1e-12);
  CHECK(steth_eth == Approx(0.99974085).epsilon(1e-8));
  // The published stETH threshold 0.83 is what the stETH-only accounts show on chain.
  const auto v2_single = single_asset_thresholds(all_v2, steth_eth, 1e-12, std::nullopt);
  INFO("v2 stETH-only accounts: " << show(v2_single));
  CHECK(v2_single.at(8300) >= 835);

  leg_model v2;
  v2.label = "aave-v2 legs, published constants";
  v2.lsd = "stETH";
  v2.lsd_price = steth_eth;
  v2.lsd_threshold = 0.83;
  const rebuild_result v2_b2 = rebuild(b2, v2);
  const rebuild_result v2_b21 = rebuild(b21, v2);
  WARN(describe(v2_b2));
  WARN(describe(v2_b21));

  // ---- Aave v3 (USD base currency), published constants: wstETH 0.795 (e-mode 0.93),
  // the file's token thresholds and prices.
  leg_model v3;
  v3.label = "aave-v3 legs, published constants";
  v3.v3 = true;
  v3.lsd = "wstETH";
  v3.lsd_price = constant_column(b2_v3, "steth_price");
  v3.eth_price = constant_column(b2_v3, "eth_price");
  v3.lsd_threshold = 0.795;
  v3.lsd_ethreshold = 0.93;
  const rebuild_result v3_b2 = rebuild(b2_v3, v3);
  const rebuild_result v3_b21 = rebuild(b21_v3, v3);
  WARN(describe(v3_b2));
  WARN(describe(v3_b21));

  // ---- Aave v3 calibrated to what the accounts themselves show on chain.
  // Prices: most accounts were read when ETH was 1719.57 and wstETH 1941.05455469 USD
  // (the most common collateral / amount and debt / ethdebt; a wstETH-only account
  // or an ETH-only borrower gives exactly the price). The files' price columns
  // (1719.89763743, 1941.42439258) are those of a later block: only about ten small
  // accounts near the end of the scan were read at those prices.
  std::vector<double> wst_ratio, eth_ratio;
  for (std::size_t r = 0; r < all_v3.size(); ++r) {
    if (all_v3.number(r, "amount") > 0.0) {
      wst_ratio.push_back(all_v3.number(r, "collateral") / all_v3.number(r, "amount"));
    }
    if (all_v3.number(r, "ethdebt") > 0.0) {
      eth_ratio.push_back(all_v3.number(r, "debt") / all_v3.number(r, "ethdebt"));
    }
  }
  const auto [wst_usd, wst_n] = mode_8dp(wst_ratio);
  const auto [eth_usd, eth_n] = mode_8dp(eth_ratio);
  CHECK(wst_n >= 250);
  CHECK(eth_n >= 100);
  CHECK(wst_usd == Approx(1941.05455469).epsilon(1e-11));
  CHECK(eth_usd == Approx(1719.57).epsilon(1e-11));
  // Thresholds: every wstETH-only account outside e-mode shows 8000 bps and every one in
  // e-mode 9300 bps: by June 2023 wstETH's threshold was 0.80, not the published 0.795
  // (e-mode 0.93 holds). USDC's threshold is pinned to [0.7899, 0.7902) by the three
  // accounts holding only wstETH and USDC collateral (the file's 0.76 is the launch
  // value), DAI's to [0.80, 0.84) by the one account holding DAI (file: 0.77).
  const auto v3_single = single_asset_thresholds(all_v3, wst_usd, 1e-9, 0.0);
  const auto v3_single_emode = single_asset_thresholds(all_v3, wst_usd, 1e-9, 1.0);
  INFO("v3 wstETH-only accounts: " << show(v3_single) << "; in e-mode: " << show(v3_single_emode));
  REQUIRE(v3_single.size() == 1);
  REQUIRE(v3_single.begin()->first == 8000);
  CHECK(v3_single.begin()->second >= 200);
  REQUIRE(v3_single_emode.size() == 1);
  REQUIRE(v3_single_emode.begin()->first == 9300);
  CHECK(v3_single_emode.begin()->second >= 100);

  WARN("calibration from the account files: v2 stETH "
       << std::setprecision(12) << steth_eth << " ETH, stETH-only accounts " << show(v2_single)
       << "; v3 wstETH " << wst_usd << " USD (" << wst_n << " accounts), ETH " << eth_usd
       << " USD (" << eth_n << "), wstETH-only "
       << "accounts " << show(v3_single) << " (e-mode: " << show(v3_single_emode) << ")");

  leg_model v3c = v3;
  v3c.label = "aave-v3 legs, calibrated (wstETH 0.80, USDC 0.79, DAI 0.80, read-time prices)";
  v3c.lsd_threshold = v3_single.begin()->first / 10000.0;
  v3c.lsd_ethreshold = v3_single_emode.begin()->first / 10000.0;
  v3c.threshold_override = {{"usdc", 0.79}, {"dai", 0.80}};
  v3c.tick_lsd_eth = {wst_usd, eth_usd};
  const rebuild_result v3c_b2 = rebuild(b2_v3, v3c);
  const rebuild_result v3c_b21 = rebuild(b21_v3, v3c);
  WARN(describe(v3c_b2));
  WARN(describe(v3c_b21));

  // ---- Bounds, as measured (the legs are partial, so these are conservative).
  const error_stats s2 = summarize(v2_b2.errors), s21 = summarize(v2_b21.errors);
  CHECK(v2_b2.no_debt_leg == 25);  // their debt is in assets b2 does not break out
  CHECK(v2_b21.no_debt_leg == 0);
  CHECK(s2.within_1e6 >= 340);   // measured 342 of 675
  CHECK(s2.within_1e2 >= 375);   // 380
  CHECK(s2.median <= 1e-5);      // 3.0e-7
  CHECK(s21.within_1e6 >= 340);  // 342 of 646
  CHECK(s21.median <= 1e-6);     // 1.9e-7
  CHECK(v2_b2.complete >= 350);  // 357
  CHECK(v2_b2.worst_bound_ratio <= 1.0);

  const error_stats s3 = summarize(v3_b2.errors), s3c = summarize(v3c_b2.errors);
  CHECK(v3_b2.no_debt_leg == 26);
  CHECK(v3_b21.no_debt_leg == 0);
  // Published constants: wstETH at 0.795 instead of 0.80 (-0.63%) and the later block's
  // prices (wstETH +0.019%, ETH +0.019%) leave the median account 0.6% low; none is
  // within 1e-3.
  CHECK(s3.within_1e2 >= 180);  // 183 of 320
  CHECK(s3.median <= 1e-2);     // 6.1e-3
  CHECK(s3.median >= 1e-3);
  // Calibrated: half the accounts within 1e-6, and every complete account within the
  // basis-point truncation bound.
  CHECK(s3c.within_1e6 >= 170);   // 172 of 320
  CHECK(s3c.within_1e2 >= 180);   // 184
  CHECK(s3c.median <= 1e-6);      // 9.5e-8
  CHECK(v3c_b2.complete >= 170);  // 176
  CHECK(v3c_b2.worst_bound_ratio <= 1.0);
  CHECK(v3c_b21.worst_bound_ratio <= 1.0);
}

TEST_CASE("csv_table reads the shapes the data files use", "[golden][csv]") {
  const csv_table t = csv_table::parse(
      ",Unnamed: 0,user,amount,\"quoted, field\"\r\n"
      "0,3,0xabc,1.4397462924606643e+25,\"say \"\"hi\"\"\"\r\n"
      "\n"
      "1,5,0xdef,0,2\n",
      ',', "inline");
  REQUIRE(t.size() == 2);
  CHECK(t.header() ==
        std::vector<std::string>{"", "Unnamed: 0", "user", "amount", "quoted, field"});
  CHECK(t.column("") == 0);
  CHECK(t.number(0, "Unnamed: 0") == 3.0);
  CHECK(t.number(0, "amount") == 1.4397462924606643e+25);
  CHECK(t.text(0, "quoted, field") == "say \"hi\"");
  CHECK(t.text(1, "user") == "0xdef");
  CHECK(t.number(1, "amount") == 0.0);
  CHECK_THROWS(t.number(0, "user"));
  CHECK_THROWS(t.column("nope"));
  CHECK_THROWS(csv_table::parse("a,b\n1\n"));
  CHECK_THROWS(csv_table::parse("a\n\"open\n"));
  CHECK_FALSE(csv_table::read(lido_dir() / "no_such_file.csv").has_value());
}
