// Oracle vs market prices in the book, realizable-value health, pending liquidations
// and hidden insolvency (issue 5): worked numbers, then a property test against a
// from-scratch recomputation.
#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>

#include "engine/book.hpp"
#include "engine/liquidity.hpp"
#include "support/fixtures.hpp"

using namespace cascade;
using cascade::testing::aid;
using cascade::testing::must;
using cascade::testing::pid;

namespace {

// ETH 3000 with a thin pool (100 ETH / 300,000 USD), USDC 1 without a pool, and two
// protocols that accept ETH at threshold 0.8, bonus 5%, close factor 0.5.
market thin_market() {
  market m;
  must(m.add_asset({"ETH", 3000.0, pool{100.0, 300000.0}}));
  must(m.add_asset({"USDC", 1.0, std::nullopt}));
  for (const char* name : {"aave", "maker"}) {
    must(m.add_protocol(
        {name, protocol_kind::pooled, 0.5, 0.95, {{"ETH", {0.80, 0.05}}, {"USDC", {0.85, 0.04}}}}));
  }
  return m;
}

position_input eth_usdc(const market& m, std::string id, const char* proto, double eth,
                        double usdc_debt) {
  return {std::move(id), pid(m, proto), "", {{aid(m, "ETH"), eth, 0.0}, {aid(m, "USDC"), 0.0, usdc_debt}}};
}

const status_change* find_change(const std::vector<status_change>& v, row_t r, status_kind k) {
  for (const auto& c : v) {
    if (c.row == r && c.kind == k) return &c;
  }
  return nullptr;
}

}  // namespace

TEST_CASE("an oracle tick moves only its protocol's positions", "[book][oracle]") {
  const market m = thin_market();
  book b(m);
  // 1 ETH against 2000 USDC: HF = 3000 * 0.8 / 2000 = 1.2 in both protocols.
  must(b.upsert(std::vector{eth_usdc(m, "a", "aave", 1, 2000), eth_usdc(m, "k", "maker", 1, 2000)}));
  std::vector<crossing> ev;
  // Maker's oracle (say an OSM an hour behind) drops to 2400: HF 0.96 for maker only.
  must(b.apply_ticks(std::vector{tick{aid(m, "ETH"), 2400.0, price_scope::oracle, pid(m, "maker")}}, ev));
  CHECK(*b.health("a") == Approx(1.2).epsilon(1e-15));
  CHECK(*b.health("k") == Approx(0.96).epsilon(1e-15));
  REQUIRE(ev.size() == 1);
  CHECK(b.id_at(ev[0].row) == "k");
  CHECK(ev[0].to == band::liquidatable);
  CHECK(ev[0].price == 2400.0);
  CHECK(b.oracles_split());
  CHECK(b.prices()[aid(m, "ETH").index()] == 3000.0);  // the market did not move
  CHECK(b.oracle_prices(pid(m, "maker"))[0] == 2400.0);
  CHECK(b.oracle_prices(pid(m, "aave"))[0] == 3000.0);

  // A plain tick (scope all) brings every oracle and the market to one price: each
  // protocol moves by its own delta.
  ev.clear();
  must(b.apply_ticks(std::vector{tick{aid(m, "ETH"), 2700.0}}, ev));
  CHECK(*b.health("a") == Approx(1.08).epsilon(1e-14));
  CHECK(*b.health("k") == Approx(1.08).epsilon(1e-14));
  CHECK_FALSE(b.oracles_split());
  // Every cell equals an exact recompute at its protocol's oracle prices.
  for (row_t r = 0; r < b.rows(); ++r) {
    const health_cell exact = b.compute_cell(r, b.oracle_prices(b.protocol_at(r)));
    CHECK(b.cells()[r].num == Approx(exact.num).epsilon(1e-13));
    CHECK(b.cells()[r].den == exact.den);
  }

  // An oracle tick without a protocol, or with an unknown one, is refused whole.
  const auto digest = b.digest();
  CHECK_FALSE(b.apply_ticks(std::vector{tick{aid(m, "ETH"), 2000.0},
                                        tick{aid(m, "ETH"), 2000.0, price_scope::oracle}},
                            ev)
                  .ok());
  CHECK(b.digest() == digest);
}

TEST_CASE("hf_real is below hf for a position larger than the pool", "[book][realizable]") {
  const market m = thin_market();
  book b(m);
  std::vector<status_change> st;
  // 1000 ETH (ten times the pool) against 1,000,000 USDC: HF = 1000*3000*0.8/1e6 = 2.4.
  // Sold into 100 ETH / 300,000 USD it fetches 300000 * 1000 / (100 + 1000) =
  // 272,727.27 USD: hf_real = 272727.27 * 0.8 / 1e6 = 0.218182, and the realizable
  // collateral is below the debt: hidden insolvency while HF says 2.4.
  must(b.upsert(std::vector{eth_usdc(m, "whale", "aave", 1000, 1e6),
                            eth_usdc(m, "small", "aave", 0.1, 100)},
                nullptr, &st));
  const row_t w = *b.find("whale");
  const realizable_cell& v = b.realizable_at(w);
  CHECK(b.health_at(w) == Approx(2.4).epsilon(1e-15));
  CHECK(v.collateral_market_usd == Approx(3e6).epsilon(1e-15));
  CHECK(v.collateral_real_usd == Approx(300000.0 * 1000 / 1100).epsilon(1e-14));
  CHECK(v.hf_real == Approx(300000.0 * 1000 / 1100 * 0.8 / 1e6).epsilon(1e-14));
  CHECK(v.hf_market == Approx(2.4).epsilon(1e-15));
  CHECK(b.insolvent_at(w));
  CHECK_FALSE(b.pending_at(w));
  const status_change* c = find_change(st, w, status_kind::insolvent);
  REQUIRE(c != nullptr);
  CHECK(c->entered);
  CHECK(c->hf == Approx(2.4).epsilon(1e-15));
  // The small one: 0.1 ETH fetches 300000*0.1/100.1 = 299.70 USD against 100: solvent,
  // hf_real = 299.70 * 0.8 / 100 = 2.3976.
  const row_t s = *b.find("small");
  CHECK(b.realizable_at(s).hf_real == Approx(300000 * 0.1 / 100.1 * 0.8 / 100).epsilon(1e-14));
  CHECK_FALSE(b.insolvent_at(s));
  const hidden_totals& h = b.hidden()[pid(m, "aave").index()];
  CHECK(h.insolvent == 1);
  CHECK(h.insolvent_debt_usd == 1e6);
  CHECK(h.insolvent_shortfall_usd == Approx(1e6 - 300000.0 * 1000 / 1100).epsilon(1e-14));
  CHECK(b.hidden()[pid(m, "maker").index()].insolvent == 0);

  // Removing the whale clears the totals.
  must(b.remove(std::vector<std::string>{"whale"}));
  CHECK(b.hidden()[pid(m, "aave").index()].insolvent == 0);
  CHECK(b.hidden()[pid(m, "aave").index()].insolvent_shortfall_usd == 0.0);
}

TEST_CASE("a lagging oracle leaves pending liquidations that fire when it catches up",
          "[book][realizable][oracle]") {
  const market m = thin_market();
  book b(m);
  // 1 ETH against 2200 USDC: HF = 2400 / 2200 = 1.0909 at 3000.
  must(b.upsert(std::vector{eth_usdc(m, "p", "maker", 1, 2200)}));
  const row_t r = *b.find("p");
  std::vector<crossing> ev;
  std::vector<status_change> st;
  // The market falls to 2700; maker's oracle is delayed and still shows 3000, so HF at
  // the oracle stays 1.0909 while HF at market is 2700*0.8/2200 = 0.98182: pending.
  // The oracle ticks for the other protocol (aave) follow the market directly.
  must(b.apply_ticks(std::vector{tick{aid(m, "ETH"), 2700.0, price_scope::market},
                                 tick{aid(m, "ETH"), 2700.0, price_scope::oracle, pid(m, "aave")}},
                     ev, &st));
  CHECK(ev.empty());
  CHECK(*b.health("p") == Approx(2400.0 / 2200).epsilon(1e-15));
  CHECK(b.pending_at(r));
  const status_change* c = find_change(st, r, status_kind::pending);
  REQUIRE(c != nullptr);
  CHECK(c->entered);
  CHECK(c->value.hf_market == Approx(2700 * 0.8 / 2200).epsilon(1e-15));
  CHECK(c->value.debt_usd == 2200.0);
  // Expected seizure at market: HF 0.98 >= 0.95, so cf 0.5: S = 0.5*2200*1.05 = 1155.
  CHECK(c->value.seize_usd == Approx(1155.0).epsilon(1e-15));
  const hidden_totals& h = b.hidden()[pid(m, "maker").index()];
  CHECK(h.pending == 1);
  CHECK(h.pending_debt_usd == 2200.0);
  CHECK(h.pending_seize_usd == Approx(1155.0).epsilon(1e-15));
  // Queued ahead of everyone: Q_ETH = 1 * 1155 / 2700 ETH.
  CHECK(b.queued_units()[aid(m, "ETH").index()] == Approx(1155.0 / 2700).epsilon(1e-15));
  CHECK(b.queued_positions() == 1);

  // The oracle catches up: the position is liquidatable and no longer pending.
  ev.clear();
  st.clear();
  must(b.apply_ticks(std::vector{tick{aid(m, "ETH"), 2700.0, price_scope::oracle, pid(m, "maker")}},
                     ev, &st));
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].to == band::liquidatable);
  CHECK_FALSE(b.pending_at(r));
  c = find_change(st, r, status_kind::pending);
  REQUIRE(c != nullptr);
  CHECK_FALSE(c->entered);
  CHECK(b.hidden()[pid(m, "maker").index()].pending == 0);
  CHECK(b.queued_positions() == 1);  // still queued: liquidatable now
}

TEST_CASE("realizable value counts everyone queued ahead in the same asset",
          "[book][realizable]") {
  const market m = thin_market();
  book b(m);
  // q: 10 ETH against 25,000 USDC: HF = 24000/25000 = 0.96 < 1, liquidatable. cf 0.5
  // (0.96 >= 0.95): S = 0.5 * 25000 * 1.05 = 13,125 USD = 4.375 ETH queued.
  // h: 1 ETH against 1000 USDC, healthy; it sells behind q's 4.375 ETH:
  //   proceeds = 300000*(5.375/105.375) - 300000*(4.375/104.375).
  must(b.upsert(std::vector{eth_usdc(m, "q", "aave", 10, 25000), eth_usdc(m, "h", "aave", 1, 1000)}));
  const row_t q = *b.find("q");
  const row_t h = *b.find("h");
  CHECK(b.band_at(q) == band::liquidatable);
  CHECK(b.queued_units()[0] == Approx(4.375).epsilon(1e-15));
  const double behind = 300000 * (5.375 / 105.375) - 300000 * (4.375 / 104.375);
  CHECK(b.realizable_at(h).collateral_real_usd == Approx(behind).epsilon(1e-12));
  // q itself sells behind nobody else: its own 10 ETH from the top of the pool.
  CHECK(b.realizable_at(q).collateral_real_usd == Approx(300000 * 10 / 110.0).epsilon(1e-12));
  // q is liquidatable at its oracle: not "pending", not "hidden" insolvency.
  CHECK_FALSE(b.pending_at(q));
  CHECK_FALSE(b.insolvent_at(q));

  // When q is repaid (replaced by a healthy position) the queue empties and h is
  // valued from the top of the pool again.
  must(b.upsert(std::vector{eth_usdc(m, "q", "aave", 10, 1000)}));
  CHECK(b.queued_positions() == 0);
  CHECK(b.queued_units()[0] == 0.0);
  CHECK(b.realizable_at(h).collateral_real_usd == Approx(300000 * 1 / 101.0).epsilon(1e-12));
}

namespace {

// An independent recomputation of realizable_cell for every live row, from the legs, the
// book's market prices and the market's pools (book.hpp's definition, written out).
struct naive_real {
  std::map<row_t, realizable_cell> cells;
  std::map<row_t, bool> pending, insolvent;
};

// Both recomputations below: market values, the queue, then each collateral leg's
// proceeds from `fetch(asset, units ahead, units sold)`.
template <class Fetch>
naive_real recompute_with(const book& b, const market& m, Fetch&& fetch) {
  const std::size_t n = m.asset_count();
  const auto p = b.prices();
  std::vector<double> queue(n, 0.0);
  std::map<row_t, realizable_cell> cells;
  std::map<row_t, double> own;
  for (row_t r = 0; r < b.rows(); ++r) {
    if (!b.live(r)) continue;
    const protocol& pr = m.get_protocol(b.protocol_at(r));
    realizable_cell v;
    double weighted = 0, bonus = 0;
    const auto assets = b.leg_assets(r);
    for (std::size_t k = 0; k < assets.size(); ++k) {
      const double c = b.leg_collateral(r)[k], d = b.leg_debt(r)[k];
      const double price = p[assets[k].index()];
      if (c > 0) {
        v.collateral_market_usd += c * price;
        weighted += c * price * pr.threshold(assets[k]);
        bonus += c * price * pr.bonus(assets[k]);
      }
      if (d > 0) v.debt_usd += d * price;
    }
    v.hf_market = v.debt_usd > 0 ? weighted / v.debt_usd : std::numeric_limits<double>::infinity();
    const bool queued = v.debt_usd > 0 && (b.band_at(r) == band::liquidatable || v.hf_market < 1);
    if (queued) {
      const double cf = v.hf_market >= pr.full_liquidation_hf ? pr.close_factor : 1.0;
      const double bb = v.collateral_market_usd > 0 ? bonus / v.collateral_market_usd : 0;
      v.seize_usd = std::min(v.collateral_market_usd, cf * v.debt_usd * (1 + bb));
      const double f = v.collateral_market_usd > 0 ? v.seize_usd / v.collateral_market_usd : 0;
      own[r] = f;
      for (std::size_t k = 0; k < assets.size(); ++k) {
        queue[assets[k].index()] += b.leg_collateral(r)[k] * f;
      }
    }
    cells[r] = v;
  }
  naive_real out;
  for (auto& [r, v] : cells) {
    const protocol& pr = m.get_protocol(b.protocol_at(r));
    const double f = own.count(r) ? own[r] : 0.0;
    double total = 0, weighted = 0;
    const auto assets = b.leg_assets(r);
    for (std::size_t k = 0; k < assets.size(); ++k) {
      const double c = b.leg_collateral(r)[k];
      if (!(c > 0)) continue;
      const double got = fetch(assets[k], std::max(0.0, queue[assets[k].index()] - c * f), c);
      total += got;
      weighted += got * pr.threshold(assets[k]);
    }
    v.collateral_real_usd = total;
    v.hf_real = v.debt_usd > 0 ? weighted / v.debt_usd : std::numeric_limits<double>::infinity();
    const bool ok_oracle = b.band_at(r) != band::liquidatable;
    out.pending[r] = v.debt_usd > 0 && ok_oracle && v.hf_market < 1;
    out.insolvent[r] = v.debt_usd > 0 && ok_oracle && total < v.debt_usd;
    out.cells[r] = v;
  }
  return out;
}

// Constant-product pools written out (no engine liquidity code), or the market price.
naive_real recompute(const book& b, const market& m) {
  const auto p = b.prices();
  return recompute_with(b, m, [&](asset_id asset, double ahead, double c) {
    const std::size_t a = asset.index();
    const auto& pl = m.asset(asset).liquidity;
    if (!pl) return c * p[a];
    const double kk = pl->base * pl->quote;
    const double base = std::sqrt(kk / p[a]), quote = std::sqrt(kk * p[a]);
    return quote * (ahead + c) / (base + ahead + c) - quote * ahead / (base + ahead);
  });
}

bool close(double a, double b) {
  if (std::isinf(a) || std::isinf(b)) return a == b;
  return std::abs(a - b) <= 1e-9 * std::max({1.0, std::abs(a), std::abs(b)});
}

// Every live row's realizable collateral, hf_real and statuses against recompute().
void require_recomputed(const book& b, const market& m) {
  const naive_real want = recompute(b, m);
  for (const auto& [r, v] : want.cells) {
    INFO("row " << r);
    REQUIRE(close(b.realizable_at(r).collateral_real_usd, v.collateral_real_usd));
    REQUIRE(close(b.realizable_at(r).hf_real, v.hf_real));
    REQUIRE(b.pending_at(r) == want.pending.at(r));
    REQUIRE(b.insolvent_at(r) == want.insolvent.at(r));
  }
}

}  // namespace

TEST_CASE("realizable values and statuses equal a from-scratch recomputation on random books",
          "[book][realizable][property]") {
  for (std::uint64_t seed = 1; seed <= 6; ++seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(0, 1);
    market m;
    must(m.add_asset({"ETH", 3000.0, pool{2000.0, 6e6}}));
    must(m.add_asset({"BTC", 60000.0, pool{50.0, 3e6}}));
    must(m.add_asset({"USDC", 1.0, std::nullopt}));
    for (const char* name : {"p0", "p1", "p2"}) {
      must(m.add_protocol({name,
                           protocol_kind::pooled,
                           0.5,
                           0.95,
                           {{"ETH", {0.8, 0.05}}, {"BTC", {0.75, 0.08}}, {"USDC", {0.85, 0.04}}}}));
    }
    book b(m);
    std::vector<std::string> ids;
    const auto random_position = [&](std::string id) {
      position_input in{std::move(id), protocol_id::from_index(rng() % 3), "", {}};
      const double eth = u(rng) < 0.7 ? std::exp(u(rng) * 6) : 0.0;
      const double btc = u(rng) < 0.4 ? std::exp(u(rng) * 3) / 10 : 0.0;
      const double value = eth * 3000 + btc * 60000 + 1;
      const double debt = value * (0.3 + 0.6 * u(rng));
      in.legs.push_back({aid(m, "ETH"), eth, 0.0});
      if (btc > 0) in.legs.push_back({aid(m, "BTC"), btc, 0.0});
      in.legs.push_back({aid(m, "USDC"), u(rng) < 0.2 ? 1000.0 : 0.0, debt});
      return in;
    };
    std::vector<position_input> batch;
    for (int i = 0; i < 300; ++i) {
      ids.push_back("x" + std::to_string(i));
      batch.push_back(random_position(ids.back()));
    }
    must(b.upsert(batch));
    std::vector<double> mkt{3000.0, 60000.0, 1.0};
    for (int step = 0; step < 400; ++step) {
      std::vector<crossing> ev;
      std::vector<status_change> st;
      const double dice = u(rng);
      if (dice < 0.05) {
        std::vector<position_input> up;
        for (int i = 0; i < 5; ++i) up.push_back(random_position(ids[rng() % ids.size()]));
        // Distinct ids only.
        std::sort(up.begin(), up.end(), [](auto& x, auto& y) { return x.id < y.id; });
        up.erase(std::unique(up.begin(), up.end(), [](auto& x, auto& y) { return x.id == y.id; }),
                 up.end());
        must(b.upsert(up, &ev, &st));
      } else {
        std::vector<tick> ticks;
        const std::size_t a = rng() % 2;
        mkt[a] *= std::exp((u(rng) - 0.52) * 0.1);
        const double kind = u(rng);
        if (kind < 0.4) {
          ticks.push_back({asset_id::from_index(a), mkt[a]});
        } else if (kind < 0.8) {
          ticks.push_back({asset_id::from_index(a), mkt[a], price_scope::market});
        } else {
          ticks.push_back({asset_id::from_index(a), mkt[a] * (0.95 + 0.1 * u(rng)),
                           price_scope::oracle, protocol_id::from_index(rng() % 3)});
        }
        must(b.apply_ticks(ticks, ev, &st));
      }
      // Every change the book reported is a real transition.
      for (const status_change& c : st) {
        const bool now = c.kind == status_kind::pending ? b.pending_at(c.row) : b.insolvent_at(c.row);
        REQUIRE(now == c.entered);
      }
      if (step % 20 != 19) continue;
      const naive_real want = recompute(b, m);
      std::vector<hidden_totals> totals(3);
      for (const auto& [r, v] : want.cells) {
        const realizable_cell& got = b.realizable_at(r);
        INFO("seed " << seed << " step " << step << " row " << r);
        REQUIRE(close(got.hf_market, v.hf_market));
        REQUIRE(close(got.debt_usd, v.debt_usd));
        REQUIRE(close(got.collateral_market_usd, v.collateral_market_usd));
        REQUIRE(close(got.collateral_real_usd, v.collateral_real_usd));
        REQUIRE(close(got.hf_real, v.hf_real));
        REQUIRE(close(got.seize_usd, v.seize_usd));
        REQUIRE(b.pending_at(r) == want.pending.at(r));
        REQUIRE(b.insolvent_at(r) == want.insolvent.at(r));
        hidden_totals& t = totals[b.protocol_at(r).index()];
        if (want.pending.at(r)) {
          ++t.pending;
          t.pending_debt_usd += v.debt_usd;
        }
        if (want.insolvent.at(r)) {
          ++t.insolvent;
          t.insolvent_shortfall_usd += v.debt_usd - v.collateral_real_usd;
        }
      }
      for (std::size_t p = 0; p < 3; ++p) {
        REQUIRE(b.hidden()[p].pending == totals[p].pending);
        REQUIRE(b.hidden()[p].insolvent == totals[p].insolvent);
        REQUIRE(close(b.hidden()[p].pending_debt_usd, totals[p].pending_debt_usd));
        REQUIRE(std::abs(b.hidden()[p].insolvent_shortfall_usd - totals[p].insolvent_shortfall_usd) <=
                1e-6 * std::max(1.0, totals[p].insolvent_shortfall_usd));
      }
      // HF cells follow each protocol's oracle.
      for (row_t r = 0; r < b.rows(); ++r) {
        if (!b.live(r)) continue;
        const health_cell exact = b.compute_cell(r, b.oracle_prices(b.protocol_at(r)));
        REQUIRE(close(b.cells()[r].num, exact.num));
        REQUIRE(close(b.cells()[r].den, exact.den));
      }
    }
  }
}

TEST_CASE("prices at the ends of the double range void certificates instead of overflowing them",
          "[book][realizable]") {
  // A tick from 3000 to 1e308 (a frame the decoder takes: finite and > 0) makes the
  // pool's k x price overflow and the log of the price ratio infinite; the certificate
  // keys must not be cast from -inf (UBSan: fuzz_ws_message found it), and once prices
  // are ordinary again every value and status equals a recomputation.
  const market m = thin_market();
  book b(m);
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<position_input> batch;
  for (int i = 0; i < 60; ++i) {
    const double eth = std::exp(u(rng) * 4);
    batch.push_back(eth_usdc(m, "x" + std::to_string(i), i % 2 ? "aave" : "maker", eth,
                             eth * 3000 * (0.3 + 0.6 * u(rng))));
  }
  must(b.upsert(batch));
  require_recomputed(b, m);
  const asset_id eth = aid(m, "ETH");
  for (const double extreme : {1e308, 1e-300, 3000 * std::exp(70.0), 5e-324, 1e308}) {
    for (const double price : {extreme, 2900.0, extreme, 2600.0}) {
      std::vector<crossing> ev;
      std::vector<status_change> st;
      // Market and both oracles: the oracle scope moves bands, the market one the pool.
      must(b.apply_ticks(std::vector{tick{eth, price, price_scope::market},
                                     tick{eth, price, price_scope::oracle, pid(m, "aave")},
                                     tick{eth, price, price_scope::oracle, pid(m, "maker")}},
                         ev, &st));
      for (const status_change& c : st) {
        const bool now =
            c.kind == status_kind::pending ? b.pending_at(c.row) : b.insolvent_at(c.row);
        REQUIRE(now == c.entered);
      }
      INFO("ETH " << price);
      if (price < 1e4 && price > 1) require_recomputed(b, m);
    }
  }
}

TEST_CASE("certificates stay exact while the threshold goes round the ring many times",
          "[book][realizable]") {
  // Moves of 0.3-1.5 log units up and down: the price stays within a factor e^1.5 of
  // where it started while each asset's drift grows by the size of every move, so the
  // threshold passes the ring's 4 log units (1024 buckets) dozens of times, buckets are
  // emptied and refilled (and give their memory back), and keys below the floor are
  // raised. USDC never moves: its holders are valued for the others' moves, so its
  // ring fills with stale entries until the sweep. Statuses and values are checked
  // against a recomputation after every batch.
  market m;
  must(m.add_asset({"ETH", 3000.0, pool{2000.0, 6e6}}));
  must(m.add_asset({"BTC", 60000.0, pool{50.0, 3e6}}));
  must(m.add_asset({"USDC", 1.0, std::nullopt}));
  must(m.add_protocol({"p", protocol_kind::pooled, 0.5, 0.95,
                       {{"ETH", {0.8, 0.05}}, {"BTC", {0.75, 0.08}}, {"USDC", {0.85, 0.04}}}}));
  book b(m);
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<position_input> batch;
  for (int i = 0; i < 400; ++i) {
    position_input in{"x" + std::to_string(i), pid(m, "p"), "", {}};
    const double eth = std::exp(u(rng) * 5);
    const double btc = u(rng) < 0.5 ? std::exp(u(rng) * 2) / 10 : 0.0;
    // Wide margins too: allowances up to the cap, keys far below the floor.
    const double debt = (eth * 3000 + btc * 60000) * (u(rng) < 0.3 ? 0.01 : 0.2 + 0.6 * u(rng));
    in.legs.push_back({aid(m, "ETH"), eth, 0.0});
    if (btc > 0) in.legs.push_back({aid(m, "BTC"), btc, 0.0});
    in.legs.push_back({aid(m, "USDC"), u(rng) < 0.3 ? 500.0 : 0.0, debt});
    batch.push_back(std::move(in));
  }
  must(b.upsert(batch));
  double log_eth = 0.0, log_btc = 0.0;
  std::uint64_t flips = 0;
  for (int step = 0; step < 240; ++step) {
    // Up when below the start, down when above: bounded price, growing drift.
    const double size = 0.3 + 1.2 * u(rng);
    log_eth += log_eth > 0 ? -size : size;
    std::vector<tick> ticks{{aid(m, "ETH"), 3000.0 * std::exp(log_eth)}};
    if (step % 3 == 0) {
      log_btc += log_btc > 0 ? -0.5 * size : 0.5 * size;
      ticks.push_back({aid(m, "BTC"), 60000.0 * std::exp(log_btc)});
    }
    std::vector<crossing> ev;
    std::vector<status_change> st;
    must(b.apply_ticks(ticks, ev, &st));
    flips += st.size();
    INFO("step " << step);
    require_recomputed(b, m);
  }
  // The run did what it is for: statuses flipped, and certificates expired by the
  // thousands rather than every holder being valued every batch.
  CHECK(flips > 50);
  CHECK(b.stats().expired > 10000);
  CHECK(b.stats().revalued < 240u * 400u);
}

namespace {

// What c units of asset a fetch behind `ahead` units, from scratch: the asset's
// liquidity rebuilt from the market's spec at the book's prices and depth scale (a
// ratio pool's proceeds in base units at the base's price; c x price without any).
double fetch(const book& b, const market& m, asset_id a, double ahead, double c) {
  const auto p = b.prices();
  const asset_spec& spec = m.asset(a);
  if (spec.derived && spec.derived->ratio_pool) {
    const std::size_t base = m.base_of(a)->index();
    liquidity l = liquidity::from_pool(*spec.derived->ratio_pool);
    l.move_to(p[a.index()] / p[base]);
    return l.proceeds(ahead, c) * p[base];
  }
  auto l = liquidity::of_asset(spec, p[a.index()]);
  if (!l) return c * p[a.index()];
  l->set_depth_scale(b.depth_scale(a));
  return l->proceeds(ahead, c);
}

// recompute() for any liquidity (venues, ratio pools, withdrawal, none).
naive_real recompute_any(const book& b, const market& m) {
  return recompute_with(
      b, m, [&](asset_id a, double ahead, double c) { return fetch(b, m, a, ahead, c); });
}

}  // namespace

TEST_CASE("realizable values follow batches of several assets, removals and every kind of liquidity",
          "[book][realizable][property]") {
  // ETH (a v1 pool), stETH (derived from ETH, sold through a ratio pool), BTC (two
  // venues, a pool and a depth curve, with withdrawal under drawdown), LINK (collateral
  // with no liquidity at all) and USDC. A batch moves several of them at once, by market,
  // oracle or both, so that rows cross HF 1 at market prices in the walks, the queue's
  // units move with and without a price move, and queued rows come and go.
  std::uint64_t queued_batches = 0;
  std::uint64_t joined_at_market = 0;
  std::uint64_t changes = 0;
  for (std::uint64_t seed = 11; seed <= 14; ++seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(0, 1);
    market m;
    must(m.add_asset({"ETH", 3000.0, pool{3000.0, 9e6}}));
    asset_spec steth{"stETH", 2970.0, std::nullopt};
    steth.derived = derivation{"ETH", pool{5000.0, 4950.0}, true};
    must(m.add_asset(steth));
    asset_spec btc{"BTC", 60000.0, std::nullopt};
    btc.venues = liquidity_spec{{{"amm", pool{40.0, 2.4e6}, {}},
                                 {"book", std::nullopt, {{0.02, 1e6}, {0.10, 4e6}}}},
                                {2.0, 0.5, 0.2, 600.0}};
    must(m.add_asset(btc));
    must(m.add_asset({"LINK", 15.0, std::nullopt}));
    must(m.add_asset({"USDC", 1.0, std::nullopt}));
    const char* symbols[] = {"ETH", "stETH", "BTC", "LINK", "USDC"};
    for (const char* name : {"p0", "p1", "p2"}) {
      must(m.add_protocol({name,
                           protocol_kind::pooled,
                           name[1] == '2' ? 1.0 : 0.5,
                           name[1] == '2' ? 1.0 : 0.95,
                           {{"ETH", {0.8, 0.05}},
                            {"stETH", {0.75, 0.07}},
                            {"BTC", {0.75, 0.08}},
                            {"LINK", {0.6, 0.1}},
                            {"USDC", {0.85, 0.04}}}}));
    }
    book b(m);
    std::vector<std::string> ids;
    const auto random_position = [&](std::string id) {
      position_input in{std::move(id), protocol_id::from_index(rng() % 3), "", {}};
      double value = 1.0;
      for (std::size_t a = 0; a < 4; ++a) {
        if (u(rng) < 0.45) {
          const double usd = std::exp(u(rng) * 9);
          in.legs.push_back({aid(m, symbols[a]), usd / m.asset(aid(m, symbols[a])).price, 0.0});
          value += usd;
        }
      }
      const double debt = value * (0.4 + 0.55 * u(rng));
      // Debt mostly in USDC, sometimes in ETH (a short: its price moves the debt).
      if (u(rng) < 0.8) {
        in.legs.push_back({aid(m, "USDC"), u(rng) < 0.2 ? 500.0 : 0.0, debt});
      } else {
        in.legs.push_back({aid(m, "ETH"), 0.0, debt / 3000.0});
      }
      return in;
    };
    std::vector<position_input> batch;
    for (int i = 0; i < 400; ++i) {
      ids.push_back("x" + std::to_string(i));
      batch.push_back(random_position(ids.back()));
    }
    must(b.upsert(batch));
    std::vector<double> mkt{3000.0, 2970.0, 60000.0, 15.0, 1.0};
    double t = 0.0;
    // Statuses by id at the last step, from a recompute (ids survive compact()).
    std::map<std::string, std::pair<bool, bool>> before;
    for (int step = 0; step < 300; ++step) {
      std::vector<crossing> ev;
      std::vector<status_change> st;
      std::set<std::string> touched;  // ids upserted or removed in this step
      const double dice = u(rng);
      const std::size_t queued_before = b.queued_positions();
      if (dice < 0.015) {
        // Renumber the rows: certificates and queue must follow.
        b.compact();
      } else if (dice < 0.04) {
        std::vector<position_input> up;
        for (int i = 0; i < 4; ++i) up.push_back(random_position(ids[rng() % ids.size()]));
        std::sort(up.begin(), up.end(), [](auto& x, auto& y) { return x.id < y.id; });
        up.erase(std::unique(up.begin(), up.end(), [](auto& x, auto& y) { return x.id == y.id; }),
                 up.end());
        for (const auto& x : up) touched.insert(x.id);
        must(b.upsert(up, &ev, &st));
      } else if (dice < 0.07) {
        // Remove a few (queued ones first when there are), then give the ids back.
        std::vector<std::string> gone;
        for (row_t r = 0; r < b.rows() && gone.size() < 3; ++r) {
          if (b.live(r) && (b.band_at(r) == band::liquidatable || u(rng) < 0.01)) {
            gone.push_back(b.id_at(r));
          }
        }
        touched.insert(gone.begin(), gone.end());
        must(b.remove(gone, &st));
        std::vector<position_input> back;
        for (const std::string& id : gone) back.push_back(random_position(id));
        must(b.upsert(back, &ev, &st));
      } else if (dice < 0.12) {
        t += 60.0 * u(rng);
        const std::vector<book::liquidity_observation> obs{{aid(m, "BTC"), t, 1.5 * u(rng)}};
        b.observe_liquidity(obs, &st);
      } else {
        std::vector<tick> ticks;
        const int count = 1 + static_cast<int>(rng() % 4);
        for (int i = 0; i < count; ++i) {
          const std::size_t a = rng() % 5;
          const double scale = a == 4 ? 0.002 : 0.06;
          mkt[a] *= std::exp((u(rng) - 0.5) * scale);
          const double kind = u(rng);
          const asset_id id = asset_id::from_index(a);
          if (kind < 0.5) {
            ticks.push_back({id, mkt[a]});
          } else if (kind < 0.8) {
            ticks.push_back({id, mkt[a], price_scope::market});
          } else {
            ticks.push_back({id, mkt[a] * (0.97 + 0.06 * u(rng)), price_scope::oracle,
                             protocol_id::from_index(rng() % 3)});
          }
        }
        must(b.apply_ticks(ticks, ev, &st));
      }
      if (b.queued_positions() > 0) ++queued_batches;
      // The queue grew with no band turning liquidatable: rows joined it at market prices
      // alone (a lagging oracle), found by their values, not by a crossing.
      if (b.queued_positions() > queued_before &&
          std::none_of(ev.begin(), ev.end(),
                       [](const crossing& x) { return x.to == band::liquidatable; })) {
        ++joined_at_market;
      }
      changes += st.size();
      for (const status_change& c : st) {
        const bool now = c.kind == status_kind::pending ? b.pending_at(c.row) : b.insolvent_at(c.row);
        REQUIRE(now == c.entered);
      }
      // Every step: the statuses equal a recompute's, and every status that flipped on a
      // row no upsert or remove touched was reported as a change.
      const naive_real want = recompute_any(b, m);
      std::map<std::string, std::pair<bool, bool>> now_by_id;
      for (const auto& [r, v] : want.cells) {
        INFO("seed " << seed << " step " << step << " row " << r);
        REQUIRE(b.pending_at(r) == want.pending.at(r));
        REQUIRE(b.insolvent_at(r) == want.insolvent.at(r));
        now_by_id[b.id_at(r)] = {want.pending.at(r), want.insolvent.at(r)};
      }
      for (const auto& [id, flags] : now_by_id) {
        const auto was = before.find(id);
        if (was == before.end() || touched.contains(id)) continue;
        for (const status_kind kind : {status_kind::pending, status_kind::insolvent}) {
          const bool a = kind == status_kind::pending ? was->second.first : was->second.second;
          const bool z = kind == status_kind::pending ? flags.first : flags.second;
          if (a == z) continue;
          INFO("seed " << seed << " step " << step << " id " << id);
          REQUIRE(std::any_of(st.begin(), st.end(), [&, id = id](const status_change& c) {
            return c.kind == kind && c.entered == z && b.id_at(c.row) == id;
          }));
        }
      }
      before = std::move(now_by_id);
      if (step % 10 != 9) continue;
      for (const auto& [r, v] : want.cells) {
        const realizable_cell got = b.realizable_at(r);
        INFO("seed " << seed << " step " << step << " row " << r);
        REQUIRE(close(got.hf_market, v.hf_market));
        REQUIRE(close(got.debt_usd, v.debt_usd));
        REQUIRE(close(got.collateral_market_usd, v.collateral_market_usd));
        REQUIRE(close(got.collateral_real_usd, v.collateral_real_usd));
        REQUIRE(close(got.hf_real, v.hf_real));
        REQUIRE(close(got.seize_usd, v.seize_usd));
      }
      for (std::size_t a = 0; a < m.asset_count(); ++a) {
        double q = 0.0;
        for (const auto& [r, v] : want.cells) {
          if (!(v.seize_usd > 0.0)) continue;
          const auto assets = b.leg_assets(r);
          for (std::size_t k = 0; k < assets.size(); ++k) {
            if (assets[k].index() == a) {
              q += b.leg_collateral(r)[k] * (v.seize_usd / v.collateral_market_usd);
            }
          }
        }
        REQUIRE(close(b.queued_units()[a], q));
      }
    }
  }
  // The cases this test is for happened.
  CHECK(queued_batches > 100);
  CHECK(joined_at_market > 0);
  CHECK(changes > 50);
}

TEST_CASE("withdrawal across several venues reveals the insolvency it causes",
          "[book][realizable][liquidity]") {
  // BTC sells through a pool and an order-book-like depth curve (routed best price
  // first), whose depth withdraws with volatility. No price moves: only the depth does.
  market m;
  asset_spec btc{"BTC", 60000.0, std::nullopt};
  btc.venues = liquidity_spec{{{"amm", pool{40.0, 2.4e6}, {}},
                               {"book", std::nullopt, {{0.02, 1e6}, {0.10, 4e6}}}},
                              {0.0, 1.0, 0.1, 3600.0}};
  must(m.add_asset(btc));
  must(m.add_asset({"USDC", 1.0, std::nullopt}));
  must(m.add_protocol(
      {"aave", protocol_kind::pooled, 0.5, 0.95, {{"BTC", {0.95, 0.05}}, {"USDC", {0.85, 0.04}}}}));
  const asset_id a = aid(m, "BTC");
  const auto fetched = [&](double scale, double units) {
    liquidity l = *liquidity::of_asset(m.asset(a), 60000.0);
    l.set_depth_scale(scale);
    return l.proceeds(0.0, units);
  };
  // 100 BTC ($6M at market) fetch about $5.57M through both venues: solvent by the 2%
  // the debt below leaves (HF 5.7M / 5.46M = 1.04).
  const double debt = fetched(1.0, 100.0) / 1.02;
  book b(m);
  std::vector<status_change> st;
  must(b.upsert(std::vector{position_input{"p", pid(m, "aave"), "", {{a, 100.0, 0.0}, {aid(m, "USDC"), 0.0, debt}}},
                            position_input{"q", pid(m, "aave"), "", {{aid(m, "USDC"), 1e6, 5e5}}}},
                nullptr, &st));
  const row_t p = *b.find("p");
  CHECK_FALSE(b.insolvent_at(p));
  CHECK(b.realizable_at(p).collateral_real_usd == Approx(debt * 1.02).epsilon(1e-12));
  // Volatility 0.5 a year halves every venue's depth at once: the same 100 BTC fetch
  // about $5.11M, less than the debt.
  const std::vector<book::liquidity_observation> calm{{a, 0.0, 0.0}};
  b.observe_liquidity(calm, &st);
  st.clear();
  const std::vector<book::liquidity_observation> wild{{a, 1.0, 0.5}};
  b.observe_liquidity(wild, &st);
  REQUIRE(b.depth_scale(a) == 0.5);
  const double now = fetched(0.5, 100.0);
  REQUIRE(now < debt);
  CHECK(b.realizable_at(p).collateral_real_usd == Approx(now).epsilon(1e-12));
  CHECK(b.insolvent_at(p));
  REQUIRE(st.size() == 1);
  CHECK(st[0].row == p);
  CHECK(st[0].kind == status_kind::insolvent);
  CHECK(st[0].entered);
  CHECK_FALSE(b.insolvent_at(*b.find("q")));
}

TEST_CASE("live liquidity withdrawal lowers hf_real and reveals hidden insolvency",
          "[book][realizable][liquidity]") {
  // ETH 3000 sold through one venue, a pool of 100 ETH / 300,000 USD, whose depth
  // withdraws with drawdown (sensitivity 3, floor 0.1, half-life one hour).
  market m;
  asset_spec eth{"ETH", 3000.0, std::nullopt};
  eth.venues = liquidity_spec{{{"amm", pool{100.0, 300000.0}, {}}}, {3.0, 0.0, 0.1, 3600.0}};
  must(m.add_asset(eth));
  must(m.add_asset({"USDC", 1.0, std::nullopt}));
  must(m.add_protocol(
      {"aave", protocol_kind::pooled, 0.5, 0.95, {{"ETH", {0.80, 0.05}}, {"USDC", {0.85, 0.04}}}}));
  book b(m);
  std::vector<status_change> st;
  // 50 ETH against 60,000 USDC: HF 50*3000*0.8/60000 = 2.0; sold into the pool it
  // fetches 300000*50/150 = 100,000 USD: hf_real = 100000*0.8/60000 = 1.3333.
  must(b.upsert(std::vector{eth_usdc(m, "p", "aave", 50, 60000)}, nullptr, &st));
  const row_t r = *b.find("p");
  CHECK(b.realizable_at(r).hf_real == Approx(100000 * 0.8 / 60000).epsilon(1e-14));
  const asset_id a = aid(m, "ETH");
  const std::vector<book::liquidity_observation> at_3000{{a, 0.0, 0.0}};
  b.observe_liquidity(at_3000, &st);  // starts the running high at 3000
  CHECK(b.depth_scale(a) == 1.0);

  // ETH to 2400: the pool re-centres at constant k = 3e7 (base sqrt(3e7/2400) =
  // 111.80, quote sqrt(3e7*2400) = 268,328): HF 1.6, proceeds 268328*50/161.80 =
  // 82,918: hf_real 1.1056, still solvent.
  std::vector<crossing> ev;
  st.clear();
  must(b.apply_ticks(std::vector{tick{a, 2400.0}}, ev, &st));
  const double base = std::sqrt(3e7 / 2400), quote = std::sqrt(3e7 * 2400);
  CHECK(b.health_at(r) == Approx(1.6).epsilon(1e-14));
  CHECK(b.realizable_at(r).hf_real == Approx(quote * 50 / (base + 50) * 0.8 / 60000).epsilon(1e-12));
  CHECK_FALSE(b.insolvent_at(r));
  CHECK(st.empty());

  // The same instant, liquidity observes the 20% drawdown: scale 1 - 3 x 0.2 = 0.4,
  // reserves 44.72 ETH / 107,331 USD at the same price: the 50 ETH now fetch
  // 107331*50/94.72 = 56,656 USD < 60,000 debt: hidden insolvency at HF 1.6.
  const std::vector<book::liquidity_observation> at_2400{{a, 0.0, 0.0}};
  b.observe_liquidity(at_2400, &st);
  CHECK(b.depth_scale(a) == Approx(0.4).epsilon(1e-12));
  const double got = 0.4 * quote * 50 / (0.4 * base + 50);
  CHECK(b.realizable_at(r).collateral_real_usd == Approx(got).epsilon(1e-12));
  CHECK(b.realizable_at(r).hf_real == Approx(got * 0.8 / 60000).epsilon(1e-12));
  CHECK(b.insolvent_at(r));
  const status_change* c = find_change(st, r, status_kind::insolvent);
  REQUIRE(c != nullptr);
  CHECK(c->entered);
  CHECK(b.hidden()[pid(m, "aave").index()].insolvent_shortfall_usd ==
        Approx(60000 - got).epsilon(1e-12));

  // Two half-lives later at the same price the running high has decayed to 2400 +
  // 600/4 = 2550 (target 1 - 3 x (1 - 2400/2550) = 0.8235) and the scale recovered to
  // 0.8235 - (0.8235 - 0.4)/4 = 0.7176: proceeds 0.7176*quote*50/(0.7176*base + 50)
  // cover the debt again and the position leaves insolvency.
  st.clear();
  const std::vector<book::liquidity_observation> later{{a, 7200.0, 0.0}};
  b.observe_liquidity(later, &st);
  const double target = 1 - 3 * (1 - 2400.0 / 2550.0);
  const double scale = target - (target - 0.4) / 4;
  CHECK(b.depth_scale(a) == Approx(scale).epsilon(1e-12));
  CHECK(b.realizable_at(r).collateral_real_usd ==
        Approx(scale * quote * 50 / (scale * base + 50)).epsilon(1e-12));
  CHECK_FALSE(b.insolvent_at(r));
  c = find_change(st, r, status_kind::insolvent);
  REQUIRE(c != nullptr);
  CHECK_FALSE(c->entered);
  // An unknown asset or a non-finite time is skipped and changes nothing.
  const auto digest = b.digest();
  const std::vector<book::liquidity_observation> junk{{asset_id::from_index(7), 1e4, 0.0},
                                                      {a, std::nan(""), 0.0},
                                                      {a, 1e4, -1.0}};
  b.observe_liquidity(junk, &st);
  CHECK(b.depth_scale(a) == Approx(scale).epsilon(1e-12));
  CHECK(b.digest() == digest);
}
