#include "proto/report.hpp"

#include <cmath>

#include "proto/json_writer.hpp"

namespace cascade::proto {

namespace {

void price_map(json_writer& w, const market& m, const std::vector<double>& prices) {
  w.begin_object();
  for (std::size_t a = 0; a < prices.size(); ++a) w.field(m.assets()[a].symbol, prices[a]);
  w.end_object();
}

void number_or_null(json_writer& w, double x) {
  if (std::isfinite(x)) {
    w.value(x);
  } else {
    w.null();
  }
}

void summary_fields(json_writer& w, const run_summary& s, const market& m) {
  w.field("rounds", s.rounds);
  w.field("total_repaid_usd", s.total_repaid_usd);
  w.field("total_seized_usd", s.total_seized_usd);
  w.field("positions_liquidated", s.positions_liquidated);
  w.field("positions_insolvent", s.positions_insolvent);
  w.key("bad_debt_usd").begin_object();
  for (std::size_t p = 0; p < s.bad_debt_usd.size(); ++p) {
    w.field(m.protocols()[p].name, s.bad_debt_usd[p]);
  }
  w.end_object();
  w.field("total_bad_debt_usd", s.total_bad_debt_usd);
  w.key("final_prices");
  price_map(w, m, s.final_prices);
}

// The options of an extended run, as the scenario's "model" gives them.
void model_object(json_writer& w, const cascade_model& md, const market& m) {
  w.begin_object();
  w.key("oracles").begin_object();
  for (std::size_t p = 0; p < md.oracles.size(); ++p) {
    if (!md.oracles[p].active()) continue;
    w.key(m.protocols()[p].name).begin_object();
    w.field("deviation", md.oracles[p].deviation);
    w.field("lag_rounds", static_cast<std::uint64_t>(md.oracles[p].lag_rounds));
    w.end_object();
  }
  w.end_object();
  w.field("latency_rounds", static_cast<std::uint64_t>(md.latency_rounds));
  w.key("liquidator_capacity_usd");
  number_or_null(w, md.liquidator_capacity_usd);
  w.field("round_seconds", md.round_seconds);
  w.key("halt_drop");
  number_or_null(w, md.halt_drop);
  w.field("halt_rounds", static_cast<std::uint64_t>(md.halt_rounds));
  w.key("max_liquidating_usd").begin_object();
  for (std::size_t p = 0; p < md.max_liquidating_usd.size(); ++p) {
    if (std::isfinite(md.max_liquidating_usd[p])) {
      w.field(m.protocols()[p].name, md.max_liquidating_usd[p]);
    }
  }
  w.end_object();
  w.end_object();
}

}  // namespace

std::string encode_report(const cascade_report& r, const market& m) {
  json_writer w;
  w.begin_object();
  w.field("rounds", static_cast<std::uint64_t>(r.rounds.size()));
  w.key("round_detail").begin_array();
  for (const round_report& rr : r.rounds) {
    w.begin_object();
    w.field("liquidated", rr.liquidated);
    w.field("repaid_usd", rr.repaid_usd);
    w.field("seized_usd", rr.seized_usd);
    w.key("sold").begin_object();
    for (const auto& [a, q] : rr.sold) w.field(m.asset(a).symbol, q);
    w.end_object();
    if (!rr.routed.empty()) {
      w.key("routed").begin_object();
      for (const auto& [a, q] : rr.routed) w.field(m.asset(a).symbol, q);
      w.end_object();
    }
    w.key("prices");
    price_map(w, m, rr.prices);
    if (!rr.depth_scale.empty()) {
      w.key("depth_scale").begin_object();
      for (const auto& [a, x] : rr.depth_scale) w.field(m.asset(a).symbol, x);
      w.end_object();
    }
    if (r.extended) {
      if (!rr.oracle_prices.empty()) {
        w.key("oracle_prices").begin_object();
        for (const auto& [pid, prices] : rr.oracle_prices) {
          w.key(m.get_protocol(pid).name);
          price_map(w, m, prices);
        }
        w.end_object();
      }
      w.field("halted", rr.halted);
      if (r.model.has_halt()) w.field("halt_triggered", rr.halt_triggered);
      const backlog_report& bl = rr.backlog;
      w.key("backlog").begin_object();
      w.field("positions", bl.positions);
      w.field("usd", bl.usd);
      w.field("delayed", bl.delayed);
      if (bl.clear_rounds) {
        w.field("clear_rounds", *bl.clear_rounds);
        if (r.model.round_seconds > 0.0) {
          w.field("clear_seconds", static_cast<double>(*bl.clear_rounds) * r.model.round_seconds);
        }
      }
      w.end_object();
    }
    w.end_object();
  }
  w.end_array();
  w.key("final_prices");
  price_map(w, m, r.final_prices);
  w.field("total_repaid_usd", r.total_repaid_usd);
  w.field("total_seized_usd", r.total_seized_usd);
  w.key("bad_debt_usd").begin_object();
  for (std::size_t p = 0; p < r.protocols.size(); ++p) {
    w.field(m.protocols()[p].name, r.protocols[p].bad_debt_usd);
  }
  w.end_object();
  w.field("positions_liquidated", r.positions_liquidated);
  w.field("positions_insolvent", r.positions_insolvent);
  w.key("amplification").begin_object();
  for (std::size_t i = 0; i < r.shocks.size(); ++i) {
    w.key(m.asset(r.shocks[i].asset).symbol);
    if (r.amplification[i]) {
      w.value(*r.amplification[i]);
    } else {
      w.null();
    }
  }
  w.end_object();
  w.field("total_bad_debt_usd", r.bad_debt_usd());
  w.key("input_prices");
  price_map(w, m, r.input_prices);
  w.key("shocked_prices");
  price_map(w, m, r.shocked_prices);
  if (m.has_derived()) {
    // Ratio of each derived asset to its base, before the shock and at the end.
    const auto ratio_map = [&](const std::vector<double>& ratios) {
      w.begin_object();
      for (std::size_t a = 0; a < ratios.size(); ++a) {
        if (m.base_of(asset_id::from_index(a))) w.field(m.assets()[a].symbol, ratios[a]);
      }
      w.end_object();
    };
    w.key("input_ratios");
    ratio_map(r.input_ratios);
    w.key("final_ratios");
    ratio_map(r.final_ratios);
  }
  bool withdraws = false;
  for (const double x : r.final_depth_scale) withdraws = withdraws || !std::isnan(x);
  if (withdraws) {
    w.key("depth_scale").begin_object();
    for (std::size_t a = 0; a < r.final_depth_scale.size(); ++a) {
      if (!std::isnan(r.final_depth_scale[a])) w.field(m.assets()[a].symbol, r.final_depth_scale[a]);
    }
    w.end_object();
  }
  if (r.extended) {
    w.key("model");
    model_object(w, r.model, m);
    w.field("halted_rounds", r.halted_rounds);
  }
  if (r.breakers) {
    const breaker_report& br = *r.breakers;
    const double with = r.bad_debt_usd();
    const double without = br.without.total_bad_debt_usd;
    w.key("breakers").begin_object();
    w.field("bad_debt_usd_with", with);
    w.field("bad_debt_usd_without", without);
    w.field("prevented_usd", without - with);
    w.key("without").begin_object();
    summary_fields(w, br.without, m);
    w.end_object();
    const auto alone = [&](std::string_view name, const std::optional<run_summary>& s) {
      if (!s) return;
      w.key(name).begin_object();
      w.field("prevented_usd", without - s->total_bad_debt_usd);
      summary_fields(w, *s, m);
      w.end_object();
    };
    alone("halt_only", br.halt_only);
    alone("cap_only", br.cap_only);
    w.end_object();
  }
  w.key("protocols").begin_object();
  for (std::size_t p = 0; p < r.protocols.size(); ++p) {
    const protocol_report& pr = r.protocols[p];
    w.key(m.protocols()[p].name).begin_object();
    w.field("liquidated", pr.liquidated);
    w.field("repaid_usd", pr.repaid_usd);
    w.field("seized_usd", pr.seized_usd);
    w.field("bad_debt_usd", pr.bad_debt_usd);
    w.field("insolvent", pr.insolvent);
    w.field("first_round", pr.first_round);
    w.field("contagion_only", pr.contagion_only);
    w.end_object();
  }
  w.end_object();
  w.end_object();
  return w.take();
}

std::string encode_health(const book& b) {
  const market& m = b.get_market();
  json_writer w;
  w.begin_object().key("positions").begin_array();
  for (row_t r = 0; r < b.rows(); ++r) {
    if (!b.live(r)) continue;
    w.begin_object();
    w.field("id", b.id_at(r));
    w.field("protocol", m.get_protocol(b.protocol_at(r)).name);
    const auto finite_or_null = [&w](std::string_view key, double x) {
      w.key(key);
      if (std::isinf(x)) {
        w.null();
      } else {
        w.value(x);
      }
    };
    finite_or_null("hf", b.health_at(r));
    if (b.options().realizable) {
      // Realizable value (book.hpp): the collateral sold now through the asset's pool,
      // behind everyone queued to be liquidated in it.
      const realizable_cell& v = b.realizable_at(r);
      finite_or_null("hf_real", v.hf_real);
      w.field("collateral_usd", v.collateral_market_usd)
          .field("collateral_real_usd", v.collateral_real_usd)
          .field("debt_usd", v.debt_usd)
          .field("insolvent", b.insolvent_at(r));
    }
    w.end_object();
  }
  w.end_array().end_object();
  return w.take();
}

}  // namespace cascade::proto
