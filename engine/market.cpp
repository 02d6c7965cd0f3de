#include "engine/market.hpp"

#include <absl/strings/str_cat.h>

#include <cmath>
#include <limits>

namespace cascade {

std::string_view to_string(protocol_kind k) {
  switch (k) {
    case protocol_kind::pooled:
      return "pooled";
    case protocol_kind::cdp:
      return "cdp";
    case protocol_kind::margin:
      return "margin";
  }
  return "pooled";
}

std::optional<protocol_kind> parse_protocol_kind(std::string_view s) {
  if (s == "pooled") return protocol_kind::pooled;
  if (s == "cdp") return protocol_kind::cdp;
  if (s == "margin") return protocol_kind::margin;
  return std::nullopt;
}

absl::StatusOr<asset_id> market::add_asset(asset_spec spec) {
  if (spec.symbol.empty()) return absl::InvalidArgumentError("asset: symbol is empty");
  if (asset_by_symbol_.contains(spec.symbol)) {
    return absl::InvalidArgumentError(absl::StrCat("asset '", spec.symbol, "': duplicate symbol"));
  }
  if (assets_.size() >= asset_id::invalid_value) {
    return absl::InvalidArgumentError(absl::StrCat("asset '", spec.symbol, "': too many assets"));
  }
  if (!is_positive_finite(spec.price)) {
    return absl::InvalidArgumentError(absl::StrCat("asset '", spec.symbol, "': price ", spec.price,
                                                   " must be a finite number > 0"));
  }
  if (spec.liquidity) {
    const pool& p = *spec.liquidity;
    if (!is_positive_finite(p.base) || !is_positive_finite(p.quote)) {
      return absl::InvalidArgumentError(absl::StrCat("asset '", spec.symbol, "': pool base ",
                                                     p.base, " and quote ", p.quote,
                                                     " must be finite numbers > 0"));
    }
    const double pool_price = p.quote / p.base;
    if (std::abs(pool_price / spec.price - 1.0) > pool_price_tolerance) {
      return absl::InvalidArgumentError(absl::StrCat(
          "asset '", spec.symbol, "': pool price quote/base = ", pool_price,
          " differs from the asset's price ", spec.price, " by more than 1e-9 relative"));
    }
  }
  if (spec.venues) {
    if (spec.liquidity) {
      return absl::InvalidArgumentError(absl::StrCat(
          "asset '", spec.symbol, "': venues replace the pool: give one or the other"));
    }
    if (spec.derived) {
      return absl::InvalidArgumentError(absl::StrCat(
          "asset '", spec.symbol, "': a derived asset trades through its ratio pool: no venues"));
    }
    if (auto s = spec.venues->validate(spec.price); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("asset '", spec.symbol, "': ", s.message()));
    }
  }
  std::optional<asset_id> base;
  if (spec.derived) {
    const derivation& d = *spec.derived;
    const auto fail = [&](auto&&... parts) {
      return absl::InvalidArgumentError(
          absl::StrCat("asset '", spec.symbol, "': derived: ", parts...));
    };
    base = find_asset(d.base);
    if (!base) return fail("unknown base asset '", d.base, "' (list it before its derivatives)");
    if (base_of_[base->index()]) {
      return fail("base '", d.base, "' is itself derived; derive from its base instead");
    }
    if (spec.liquidity) {
      return fail("a derived asset trades through its base: give it a ratio_pool, not a pool");
    }
    if (d.ratio_pool) {
      const pool& rp = *d.ratio_pool;
      if (!is_positive_finite(rp.base) || !is_positive_finite(rp.quote)) {
        return fail("ratio_pool base ", rp.base, " and quote ", rp.quote,
                    " must be finite numbers > 0");
      }
      const double ratio = spec.price / assets_[base->index()].price;
      if (std::abs((rp.quote / rp.base) / ratio - 1.0) > pool_price_tolerance) {
        return fail("ratio_pool quote/base = ", rp.quote / rp.base, " differs from price / ",
                    d.base, " price = ", ratio, " by more than 1e-9 relative");
      }
    }
  }
  const auto id = asset_id::from_index(assets_.size());
  asset_by_symbol_.emplace(spec.symbol, id);
  assets_.push_back(std::move(spec));
  base_of_.push_back(base);
  has_derived_ = has_derived_ || base.has_value();
  for (auto& p : protocols_) p.collateral.resize(assets_.size());
  return id;
}

absl::StatusOr<protocol_id> market::add_protocol(const protocol_spec& spec) {
  const auto where = [&](auto&&... parts) {
    return absl::InvalidArgumentError(absl::StrCat("protocol '", spec.name, "': ", parts...));
  };
  if (spec.name.empty()) return absl::InvalidArgumentError("protocol: name is empty");
  if (protocol_by_name_.contains(spec.name)) return where("duplicate name");
  if (protocols_.size() >= protocol_id::invalid_value) return where("too many protocols");
  if (!(spec.close_factor > 0.0 && spec.close_factor <= 1.0)) {
    return where("close_factor ", spec.close_factor, " is outside (0, 1]");
  }
  if (!(spec.full_liquidation_hf >= 0.0 && spec.full_liquidation_hf <= 1.0)) {
    return where("full_liquidation_hf ", spec.full_liquidation_hf, " is outside [0, 1]");
  }
  protocol p{spec.name, spec.kind, spec.close_factor, spec.full_liquidation_hf, {}};
  p.collateral.resize(assets_.size());
  for (const auto& [symbol, params] : spec.assets) {
    const auto a = find_asset(symbol);
    if (!a) return where("unknown asset '", symbol, "'");
    auto& slot = p.collateral[a->index()];
    if (slot) return where("asset '", symbol, "' is listed twice");
    if (!(params.liquidation_threshold > 0.0 && params.liquidation_threshold <= 1.0)) {
      return where("asset '", symbol, "': liquidation_threshold ", params.liquidation_threshold,
                   " is outside (0, 1]");
    }
    if (!(params.liquidation_bonus >= 0.0 && params.liquidation_bonus < 1.0)) {
      return where("asset '", symbol, "': liquidation_bonus ", params.liquidation_bonus,
                   " is outside [0, 1)");
    }
    slot = params;
  }
  const auto id = protocol_id::from_index(protocols_.size());
  protocol_by_name_.emplace(p.name, id);
  protocols_.push_back(std::move(p));
  return id;
}

std::optional<asset_id> market::find_asset(std::string_view symbol) const {
  const auto it = asset_by_symbol_.find(key(symbol));
  if (it == asset_by_symbol_.end()) return std::nullopt;
  return it->second;
}

std::optional<protocol_id> market::find_protocol(std::string_view name) const {
  const auto it = protocol_by_name_.find(key(name));
  if (it == protocol_by_name_.end()) return std::nullopt;
  return it->second;
}

std::vector<double> market::reference_prices() const {
  std::vector<double> prices;
  prices.reserve(assets_.size());
  for (const auto& a : assets_) prices.push_back(a.price);
  return prices;
}

}  // namespace cascade
