// Property tests: the incremental book against a naive model that keeps every position
// as a plain list of legs and recomputes every HF from scratch after every step.
#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <tuple>

#include "support/fixtures.hpp"

using namespace cascade;
using cascade::testing::must;

namespace {

struct naive_position {
  protocol_id protocol;
  std::vector<leg> legs;
  band b = band::healthy;
};

// Independent restatement of the band rules: fall at once to the deepest band whose
// threshold HF is strictly below; climb one band at a time while HF >= threshold*(1+h).
band naive_next(band current, double hf, const band_config& c) {
  const double t[3] = {c.warn, c.danger, c.liquidatable};
  int deepest = 0;
  for (int k = 0; k < 3; ++k) {
    if (hf < t[k]) deepest = k + 1;
  }
  int cur = static_cast<int>(current);
  if (deepest > cur) return static_cast<band>(deepest);
  while (cur > 0 && hf >= t[cur - 1] * (1 + c.hysteresis)) --cur;
  return static_cast<band>(cur);
}

struct naive_book {
  const market* m;
  band_config bands;
  std::vector<double> prices;
  std::map<std::string, naive_position> positions;

  double hf(const naive_position& p) const {
    double num = 0, den = 0;
    const protocol& pr = m->get_protocol(p.protocol);
    for (const leg& l : p.legs) {
      if (l.collateral > 0) num += l.collateral * prices[l.asset.index()] * pr.threshold(l.asset);
      den += l.debt * prices[l.asset.index()];
    }
    return den > 0 ? num / den : std::numeric_limits<double>::infinity();
  }
};

using event_key = std::tuple<std::string, int, int, std::uint16_t>;

struct world {
  std::mt19937_64 rng;
  market m;
  std::vector<asset_id> assets;
  std::vector<protocol_id> protocols;

  explicit world(std::uint64_t seed) : rng(seed) {
    std::uniform_real_distribution<double> u(0, 1);
    const int n_assets = 3 + static_cast<int>(rng() % 6);
    for (int a = 0; a < n_assets; ++a) {
      const double price = std::exp(u(rng) * 10 - 2);
      assets.push_back(must(m.add_asset({"A" + std::to_string(a), price, std::nullopt})));
    }
    const int n_protocols = 1 + static_cast<int>(rng() % 3);
    for (int p = 0; p < n_protocols; ++p) {
      protocol_spec spec{"P" + std::to_string(p), protocol_kind::pooled, 0.5, 0.95, {}};
      for (int a = 0; a < n_assets; ++a) {
        if (u(rng) < 0.75)
          spec.assets.push_back({"A" + std::to_string(a), {0.5 + 0.45 * u(rng), 0.05}});
      }
      protocols.push_back(must(m.add_protocol(spec)));
    }
  }

  position_input random_position(const std::string& id, const std::vector<double>& prices) {
    std::uniform_real_distribution<double> u(0, 1);
    position_input in{id, protocols[rng() % protocols.size()], "", {}};
    const protocol& pr = m.get_protocol(in.protocol);
    const int n_legs = 1 + static_cast<int>(rng() % 4);
    double coll_value = 0;
    for (int k = 0; k < n_legs; ++k) {
      const asset_id a = assets[rng() % assets.size()];
      leg l{a, 0, 0};
      if (pr.params(a) && u(rng) < 0.6) {
        l.collateral = std::exp(u(rng) * 8) / prices[a.index()];
        coll_value += l.collateral * prices[a.index()] * pr.threshold(a);
      }
      if (u(rng) < 0.25) l.debt = std::exp(u(rng) * 6) / prices[a.index()];
      in.legs.push_back(l);
    }
    // Most positions get a debt leg that puts HF near the bands.
    if (coll_value > 0 && u(rng) < 0.8) {
      const asset_id a = assets[rng() % assets.size()];
      in.legs.push_back({a, 0.0, coll_value / (0.9 + 0.4 * u(rng)) / prices[a.index()]});
    }
    return in;
  }
};

void compare(const book& b, const naive_book& n) {
  REQUIRE(b.size() == n.positions.size());
  for (const auto& [id, p] : n.positions) {
    const auto r = b.find(id);
    REQUIRE(r.has_value());
    const double expect = n.hf(p);
    const double got = b.health_at(*r);
    if (std::isinf(expect) || expect == 0.0) {
      REQUIRE(got == expect);
    } else {
      INFO("position " << id << " expect " << expect << " got " << got);
      REQUIRE(std::abs(got / expect - 1.0) <= 1e-9);
    }
    REQUIRE(b.band_at(*r) == p.b);
  }
}

}  // namespace

TEST_CASE("incremental HF and crossings equal a full naive recomputation on random books",
          "[book][property]") {
  for (std::uint64_t seed = 1; seed <= 12; ++seed) {
    world w(seed);
    book_options opt;
    opt.scan_fraction = (seed % 3 == 0) ? 0.0 : (seed % 3 == 1 ? 1.0 : 0.3);
    opt.anchor_updates = (seed % 2) ? 16 : 256;
    opt.bands.hysteresis = static_cast<double>(seed % 4) * 0.004;
    book b(w.m, opt);
    naive_book n{&w.m, opt.bands, w.m.reference_prices(), {}};
    std::uniform_real_distribution<double> u(0, 1);
    int next_id = 0;
    std::vector<std::string> live;

    const auto upsert_some = [&](int count) {
      std::vector<position_input> batch;
      std::set<std::string> in_batch;
      for (int i = 0; i < count; ++i) {
        std::string id;
        if (!live.empty() && u(w.rng) < 0.3) {
          id = live[w.rng() % live.size()];
          if (in_batch.count(id)) continue;
        } else {
          id = "x" + std::to_string(next_id++);
          live.push_back(id);
        }
        in_batch.insert(id);
        batch.push_back(w.random_position(id, n.prices));
      }
      std::vector<crossing> ev;
      must(b.upsert(batch, &ev));
      std::set<event_key> got, expect;
      for (const crossing& c : ev)
        got.insert({b.id_at(c.row), int(c.from), int(c.to), c.cause.value});
      for (const position_input& in : batch) {
        const auto it = n.positions.find(in.id);
        const band prev = it == n.positions.end() ? band::healthy : it->second.b;
        naive_position p{in.protocol, in.legs, prev};
        p.b = naive_next(prev, n.hf(p), n.bands);
        if (p.b != prev) expect.insert({in.id, int(prev), int(p.b), asset_id{}.value});
        n.positions[in.id] = p;
      }
      REQUIRE(got == expect);
    };

    upsert_some(300);
    compare(b, n);
    for (int step = 0; step < 3000; ++step) {
      const double dice = u(w.rng);
      if (dice < 0.04) {
        upsert_some(1 + static_cast<int>(w.rng() % 20));
      } else if (dice < 0.06 && live.size() > 10) {
        std::vector<std::string> gone;
        for (int i = 0; i < 5; ++i) {
          const std::size_t k = w.rng() % live.size();
          gone.push_back(live[k]);
          live.erase(live.begin() + static_cast<std::ptrdiff_t>(k));
        }
        must(b.remove(gone));
        for (const auto& id : gone) n.positions.erase(id);
      } else if (dice < 0.065) {
        if (b.needs_compaction()) b.compact();
      } else {
        // A batch of 1-4 ticks, sometimes repeating an asset, mostly small moves with
        // occasional crashes and recoveries.
        std::vector<tick> ticks;
        const int count = 1 + static_cast<int>(w.rng() % 4);
        std::vector<double> pending = n.prices;
        for (int i = 0; i < count; ++i) {
          const asset_id a = w.assets[w.rng() % w.assets.size()];
          const double move =
              u(w.rng) < 0.03 ? (u(w.rng) < 0.5 ? 0.3 : 3.0) : std::exp((u(w.rng) - 0.5) * 0.08);
          pending[a.index()] *= move;
          ticks.push_back({a, pending[a.index()]});
        }
        std::vector<crossing> ev;
        must(b.apply_ticks(ticks, ev));
        // Naive: coalesce in order of first appearance, apply one asset at a time.
        std::vector<asset_id> order;
        for (const tick& t : ticks) {
          if (std::find(order.begin(), order.end(), t.asset) == order.end())
            order.push_back(t.asset);
        }
        std::set<event_key> expect;
        for (asset_id a : order) {
          if (pending[a.index()] == n.prices[a.index()]) continue;
          n.prices[a.index()] = pending[a.index()];
          for (auto& [id, p] : n.positions) {
            const band to = naive_next(p.b, n.hf(p), n.bands);
            if (to != p.b) expect.insert({id, int(p.b), int(to), a.value});
            p.b = to;
          }
        }
        std::set<event_key> got;
        for (const crossing& c : ev) {
          REQUIRE(c.price == b.prices()[c.cause.index()]);
          got.insert({b.id_at(c.row), int(c.from), int(c.to), c.cause.value});
        }
        REQUIRE(got.size() == ev.size());
        REQUIRE(got == expect);
      }
      compare(b, n);
    }
    INFO("seed " << seed);
    CHECK(b.stats().ticks > 2000);
    if (opt.scan_fraction == 1.0) CHECK(b.stats().scans == 0);
    if (opt.scan_fraction == 0.0) CHECK(b.stats().walks == 0);
  }
}
