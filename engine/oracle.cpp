#include "engine/oracle.hpp"

#include <absl/strings/str_cat.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <utility>

namespace cascade {

namespace {

absl::string_view av(std::string_view s) { return {s.data(), s.size()}; }

std::string feed_label(const feed_spec& f) {
  return absl::StrCat("oracle feed '", av(f.protocol), "'/'", av(f.asset), "'");
}

// Why a field that must be a finite number >= 0 is refused (empty: it is fine).
std::string nonnegative(std::string_view name, double x) {
  if (is_nonnegative_finite(x)) return {};
  return absl::StrCat(av(name), " ", x, " must be a finite number >= 0");
}

// Why a fraction that must be in [0, 1) is refused (empty: it is fine).
std::string unit_fraction(std::string_view name, double x) {
  if (x >= 0.0 && x < 1.0) return {};
  return absl::StrCat(av(name), " ", x, " is outside [0, 1)");
}

// The median of v[0, n), n >= 1; reorders v.
double median(double* v, std::size_t n) {
  std::sort(v, v + n);
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

absl::Status source_rules::validate() const {
  for (std::string why : {nonnegative("max_age_s", max_age_s), unit_fraction("outlier", outlier),
                          unit_fraction("max_move", max_move)}) {
    if (!why.empty()) return absl::InvalidArgumentError(absl::StrCat("oracle: ", why));
  }
  return absl::OkStatus();
}

absl::Status feed_spec::validate() const {
  const auto refuse = [&](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(feed_label(*this), ": ", av(why)));
  };
  for (std::string why :
       {nonnegative("deviation", deviation), nonnegative("heartbeat_s", heartbeat_s),
        nonnegative("delay_s", delay_s), nonnegative("stale_s", stale_s)}) {
    if (!why.empty()) return refuse(why);
  }
  if (min_sources == 0) return refuse("min_sources 0 must be >= 1");
  if (sources.size() > max_sources_per_asset) {
    return refuse(absl::StrCat("sources lists ", sources.size(), " sources, more than ",
                               max_sources_per_asset, " (the most an asset may have)"));
  }
  for (std::size_t i = 0; i < sources.size(); ++i) {
    if (sources[i].empty()) return refuse(absl::StrCat("sources[", i, "] is empty"));
    for (std::size_t j = 0; j < i; ++j) {
      if (sources[j] == sources[i]) {
        return refuse(absl::StrCat("sources names '", av(sources[i]), "' twice"));
      }
    }
  }
  const std::size_t most = sources.empty() ? max_sources_per_asset : sources.size();
  if (min_sources > most) {
    return refuse(sources.empty()
                      ? absl::StrCat("min_sources ", min_sources, " is more than ",
                                     max_sources_per_asset, " (the most sources an asset may have)")
                      : absl::StrCat("min_sources ", min_sources, " is more than the ",
                                     sources.size(), " sources it lists"));
  }
  return absl::OkStatus();
}

absl::Status oracle_config::validate() const {
  if (auto s = rules.validate(); !s.ok()) return s;
  if (std::string why = nonnegative("divergence", divergence); !why.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("oracle: ", why));
  }
  for (std::size_t i = 0; i < feeds.size(); ++i) {
    if (auto s = feeds[i].validate(); !s.ok()) return s;
    for (std::size_t j = 0; j < i; ++j) {
      if (feeds[j].protocol == feeds[i].protocol && feeds[j].asset == feeds[i].asset) {
        return absl::InvalidArgumentError(
            absl::StrCat(feed_label(feeds[i]), ": repeated (also feed ", j, ")"));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<oracle_set> oracle_set::make(const market& m, const oracle_config& c) {
  if (auto s = c.validate(); !s.ok()) return s;
  oracle_set o;
  o.config_ = c;
  o.protocols_ = m.protocol_count();
  o.assets_.resize(m.asset_count());
  for (std::size_t a = 0; a < m.asset_count(); ++a) {
    o.assets_[a].market = m.asset(asset_id::from_index(a)).price;
  }
  o.feed_index_.assign(m.asset_count() * m.protocol_count(), -1);
  o.feeds_.reserve(c.feeds.size());
  for (std::size_t i = 0; i < c.feeds.size(); ++i) {
    const feed_spec& spec = c.feeds[i];
    const auto p = m.find_protocol(spec.protocol);
    if (!p) {
      return absl::InvalidArgumentError(
          absl::StrCat(feed_label(spec), ": unknown protocol '", av(spec.protocol), "'"));
    }
    const auto a = m.find_asset(spec.asset);
    if (!a) {
      return absl::InvalidArgumentError(
          absl::StrCat(feed_label(spec), ": unknown asset '", av(spec.asset), "'"));
    }
    const double ref = m.asset(*a).price;
    feed f;
    f.protocol = *p;
    f.asset = *a;
    f.aggregate = ref;
    f.last_price = ref;
    f.visible = ref;
    f.queue.push_back({0.0, ref});
    o.feeds_.push_back(std::move(f));
    o.feed_index_[a->index() * o.protocols_ + p->index()] = static_cast<std::int32_t>(i);
    o.assets_[a->index()].feeds.push_back(static_cast<std::uint32_t>(i));
  }
  for (std::size_t a = 0; a < o.assets_.size(); ++a) {
    for (std::size_t p = 0; p < o.protocols_; ++p) {
      if (o.feed_index_[a * o.protocols_ + p] < 0) {
        o.assets_[a].direct.push_back(protocol_id::from_index(p));
      }
    }
  }
  return o;
}

void oracle_set::start(double t) {
  started_ = true;
  now_ = t;
  for (feed& f : feeds_) {
    f.last_t = t;
    f.queue.front().t = t;
  }
}

absl::Status oracle_set::update(asset_id a, std::string_view name, double price, double t,
                                oracle_output& out) {
  if (a.index() >= assets_.size()) {
    return absl::InvalidArgumentError(absl::StrCat("oracle update: unknown asset id ", a.value));
  }
  if (name.empty()) return absl::InvalidArgumentError("oracle update: the source name is empty");
  if (!std::isfinite(price)) {
    return absl::InvalidArgumentError(absl::StrCat("oracle update: source '", av(name), "': price ",
                                                   price, " is not a finite number"));
  }
  if (!std::isfinite(t)) {
    return absl::InvalidArgumentError(absl::StrCat("oracle update: source '", av(name), "': time ",
                                                   t, " is not a finite number"));
  }
  asset_state& s = assets_[a.index()];
  std::size_t i = 0;
  while (i < s.sources.size() && s.sources[i].name != name) ++i;
  if (i == s.sources.size() && i >= max_sources_per_asset) {
    return absl::InvalidArgumentError(
        absl::StrCat("oracle update: source '", av(name), "': asset id ", a.value, " already has ",
                     max_sources_per_asset, " sources, the most an asset may have"));
  }

  // Every other asset first, so that each asset is evaluated once per call.
  if (!started_) start(t);
  if (t > now_) now_ = t;
  for (std::size_t b = 0; b < assets_.size(); ++b) {
    if (b != a.index() && assets_[b].due <= now_) evaluate(asset_id::from_index(b), out);
  }

  if (i < s.sources.size() && t < s.sources[i].t) {
    ++stats_.out_of_order;
    if (s.due <= now_) evaluate(a, out);
    return absl::OkStatus();
  }
  const bool fresh = i == s.sources.size();
  if (fresh) {
    s.sources.push_back(source{std::string(name)});
    const auto& only = config_.oracle_only;
    s.sources.back().oracle_only = std::find(only.begin(), only.end(), name) != only.end();
    for (const std::uint32_t fi : s.feeds) {
      const std::vector<std::string>& listed = config_.feeds[fi].sources;
      if (listed.empty() || std::find(listed.begin(), listed.end(), name) != listed.end()) {
        feeds_[fi].members |= std::uint64_t{1} << i;
      }
    }
  }
  source& src = s.sources[i];
  const double max_move = config_.rules.max_move;
  src.jumped = !fresh && max_move > 0.0 && price > 0.0 && src.price > 0.0 &&
               std::abs(price / src.price - 1.0) > max_move;
  src.price = price;
  src.t = t;
  ++stats_.updates;
  evaluate(a, out);
  return absl::OkStatus();
}

void oracle_set::advance(double t, oracle_output& out) {
  if (!std::isfinite(t)) return;
  if (!started_) start(t);
  if (t < now_) return;
  now_ = t;
  for (std::size_t a = 0; a < assets_.size(); ++a) {
    if (assets_[a].due <= now_) evaluate(asset_id::from_index(a), out);
  }
}

void oracle_set::emit(oracle_output& out, oracle_event::kind k, asset_id a, protocol_id p,
                      std::string_view source_name, std::string_view reason, double price,
                      double reference) {
  out.events.push_back(
      oracle_event{k, a, p, std::string(source_name), std::string(reason), price, reference, now_});
}

namespace {

std::string_view reason_text(std::uint8_t f) {
  constexpr std::array<std::string_view, 5> text{"", "non_positive", "too_volatile", "stale",
                                                 "outlier"};
  return text[f];
}

}  // namespace

void oracle_set::evaluate(asset_id a, oracle_output& out) {
  asset_state& s = assets_[a.index()];
  const std::size_t n = s.sources.size();
  s.due = std::numeric_limits<double>::infinity();
  if (n == 0) return;  // nothing has reported: the reference price stands, nothing is judged
  const source_rules& r = config_.rules;
  std::array<double, max_sources_per_asset> scratch;
  std::array<fault, max_sources_per_asset> next;

  // Faults other than outlier, then outliers against the median of the rest.
  std::size_t m = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const source& src = s.sources[i];
    if (src.price <= 0.0) {
      next[i] = fault::non_positive;
    } else if (src.jumped) {
      next[i] = fault::too_volatile;
    } else if (r.max_age_s > 0.0 && now_ - src.t > r.max_age_s) {
      next[i] = fault::stale;
    } else {
      next[i] = fault::none;
      if (!src.oracle_only) scratch[m++] = src.price;
    }
  }
  double judged_against = std::numeric_limits<double>::quiet_NaN();
  if (r.outlier > 0.0 && m >= 3) {
    judged_against = median(scratch.data(), m);
    for (std::size_t i = 0; i < n; ++i) {
      if (next[i] == fault::none && !s.sources[i].oracle_only &&
          std::abs(s.sources[i].price / judged_against - 1.0) > r.outlier) {
        next[i] = fault::outlier;
      }
    }
  }

  std::uint64_t valid = 0;
  m = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (next[i] == fault::none) {
      valid |= std::uint64_t{1} << i;
      if (!s.sources[i].oracle_only) scratch[m++] = s.sources[i].price;
    }
  }
  if (m > 0) {
    const double price = median(scratch.data(), m);
    if (price != s.market) {
      s.market = price;
      out.market.push_back({a, price});
    }
  }

  for (std::size_t i = 0; i < n; ++i) {
    source& src = s.sources[i];
    if (next[i] == src.state) continue;
    const bool was_valid = src.state == fault::none;
    const bool is_valid = next[i] == fault::none;
    if (was_valid) ++stats_.invalid_now;
    if (is_valid) --stats_.invalid_now;
    src.state = next[i];
    const std::string_view why = reason_text(static_cast<std::uint8_t>(next[i]));
    emit(out, is_valid ? oracle_event::source_valid : oracle_event::source_invalid, a, {}, src.name,
         why, src.price, next[i] == fault::outlier ? judged_against : s.market);
  }
  // An asset quoted only by oracle-only sources has no market source to miss.
  const bool any_market_source = std::any_of(s.sources.begin(), s.sources.end(),
                                             [](const source& x) { return !x.oracle_only; });
  if (m == 0 && !s.starved && any_market_source) {
    emit(out, oracle_event::no_valid_source, a, {}, {}, {}, s.market, s.market);
  }
  s.starved = m == 0 && any_market_source;

  for (const std::uint32_t fi : s.feeds) evaluate_feed(feeds_[fi], s, valid, scratch.data(), out);

  // When this asset next changes without an update.
  double due = std::numeric_limits<double>::infinity();
  if (r.max_age_s > 0.0) {
    for (const source& src : s.sources) {
      if (src.state == fault::none || src.state == fault::outlier) {
        due = std::min(due, src.t + r.max_age_s);
      }
    }
  }
  for (const std::uint32_t fi : s.feeds) {
    const feed& f = feeds_[fi];
    const feed_spec& spec = config_.feeds[fi];
    if (spec.heartbeat_s > 0.0 && !f.starved) due = std::min(due, f.last_t + spec.heartbeat_s);
    if (f.head + 1 < f.queue.size()) due = std::min(due, f.queue[f.head + 1].t + spec.delay_s);
    if (spec.stale_s > 0.0 && !f.stale) due = std::min(due, f.last_t + spec.stale_s);
  }
  s.due = due;
}

void oracle_set::evaluate_feed(feed& f, const asset_state& s, std::uint64_t valid, double* scratch,
                               oracle_output& out) {
  const feed_spec& spec = config_.feeds[static_cast<std::size_t>(&f - feeds_.data())];
  std::uint64_t members = f.members & valid;
  std::size_t m = 0;
  while (members != 0) {
    const int i = std::countr_zero(members);
    scratch[m++] = s.sources[static_cast<std::size_t>(i)].price;
    members &= members - 1;
  }
  f.valid = static_cast<std::uint32_t>(m);
  if (m < spec.min_sources) {
    if (!f.starved) {
      emit(out, oracle_event::no_valid_source, f.asset, f.protocol, {}, "min_sources", f.visible,
           s.market);
    }
    f.starved = true;
  } else {
    f.starved = false;
    f.aggregate = median(scratch, m);
    const bool moved = spec.deviation == 0.0
                           ? f.aggregate != f.last_price
                           : std::abs(f.aggregate / f.last_price - 1.0) >= spec.deviation;
    const bool beat = spec.heartbeat_s > 0.0 && now_ - f.last_t >= spec.heartbeat_s;
    if (moved || beat) {
      ++stats_.publications;
      if (!moved) ++stats_.heartbeats;
      f.last_price = f.aggregate;
      f.last_t = now_;
      if (spec.delay_s == 0.0) {
        f.queue.front() = {now_, f.aggregate};
      } else {
        f.queue.push_back({now_, f.aggregate});
      }
    }
  }

  // The latest publication made at or before now - delay_s becomes visible.
  while (f.head + 1 < f.queue.size() && f.queue[f.head + 1].t + spec.delay_s <= now_) ++f.head;
  if (f.head > 0 && 2 * f.head >= f.queue.size()) {
    f.queue.erase(f.queue.begin(), f.queue.begin() + static_cast<std::ptrdiff_t>(f.head));
    f.head = 0;
  }
  const double visible = f.queue[f.head].price;
  if (visible != f.visible) {
    f.visible = visible;
    out.oracle.push_back({f.protocol, f.asset, visible});
  }

  const bool stale = spec.stale_s > 0.0 && now_ - f.last_t > spec.stale_s;
  if (stale != f.stale) {
    emit(out, stale ? oracle_event::feed_stale : oracle_event::feed_fresh, f.asset, f.protocol, {},
         {}, f.visible, s.market);
    f.stale = stale;
  }
  const bool diverged = std::abs(f.visible / s.market - 1.0) > config_.divergence;
  if (diverged != f.diverged) {
    emit(out, diverged ? oracle_event::divergence : oracle_event::convergence, f.asset, f.protocol,
         {}, {}, f.visible, s.market);
    f.diverged = diverged;
  }
}

double oracle_set::market_price(asset_id a) const {
  return a.index() < assets_.size() ? assets_[a.index()].market
                                    : std::numeric_limits<double>::quiet_NaN();
}

double oracle_set::oracle_price(protocol_id p, asset_id a) const {
  if (a.index() >= assets_.size() || p.index() >= protocols_) {
    return std::numeric_limits<double>::quiet_NaN();
  }
  const std::int32_t fi = feed_index_[a.index() * protocols_ + p.index()];
  return fi < 0 ? assets_[a.index()].market : feeds_[static_cast<std::size_t>(fi)].visible;
}

bool oracle_set::has_feeds(asset_id a) const {
  return a.index() < assets_.size() && !assets_[a.index()].feeds.empty();
}

std::span<const protocol_id> oracle_set::direct_protocols(asset_id a) const {
  if (a.index() >= assets_.size()) return {};
  return assets_[a.index()].direct;
}

std::vector<source_state> oracle_set::sources(asset_id a) const {
  std::vector<source_state> v;
  if (a.index() >= assets_.size()) return v;
  v.reserve(assets_[a.index()].sources.size());
  for (const source& src : assets_[a.index()].sources) {
    v.push_back({src.name, src.price, src.t, src.state == fault::none,
                 reason_text(static_cast<std::uint8_t>(src.state))});
  }
  return v;
}

std::vector<feed_state> oracle_set::feeds() const {
  std::vector<feed_state> v;
  v.reserve(feeds_.size());
  for (const feed& f : feeds_) {
    v.push_back({f.protocol, f.asset, f.visible, f.aggregate, f.last_t, f.stale, f.valid});
  }
  return v;
}

}  // namespace cascade
