// The market: assets (symbol <-> dense id, reference price, optional pool) and
// lending protocols (kind, close factor, full-liquidation HF, per-asset liquidation
// threshold and bonus).
//
// A market is built once, validated on every add, and then read by the book and the
// cascade simulator. It is not thread-safe; it is owned by the engine thread (or by a
// CLI command). Adding allocates; queries do not. Bad values are refused with an
// absl::Status naming the asset or protocol and the field; a refused add changes
// nothing.
#pragma once

#include <absl/container/flat_hash_map.h>
#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/ids.hpp"
#include "engine/liquidity_spec.hpp"

namespace cascade {

enum class protocol_kind : std::uint8_t { pooled, cdp, margin };

[[nodiscard]] std::string_view to_string(protocol_kind k);
[[nodiscard]] std::optional<protocol_kind> parse_protocol_kind(std::string_view s);

// A derived asset trades as a multiple of another (its base): stETH or wstETH of ETH,
// wrapped BTC of BTC, a stablecoin of the collateral behind it. Its price is
// ratio x base price, so everything that moves the base moves it too. The ratio is the
// quote/base of its own pool (base = units of this asset, quote = units of the base
// asset), or a fixed peg without one. In the cascade, seized units are sold into the
// ratio pool (the ratio falls: a depeg) and, with sell_through, the base units it pays
// out are sold on into the base's pool; a pegged asset is sold as its base.
struct derivation {
  std::string base;                // symbol of the base asset, added before this one
  std::optional<pool> ratio_pool;  // none: a fixed peg at price / base price
  bool sell_through = true;
};

struct asset_spec {
  std::string symbol;
  double price = 0.0;             // reference (oracle) price in USD
  std::optional<pool> liquidity;  // no pool: sales move no price
  std::optional<derivation> derived;
  // Venues (depth curves, several pools) and withdrawal under stress: when present they
  // replace the v1 pool for sales (an asset may not have both; a derived asset trades
  // through its ratio pool and may have neither).
  std::optional<liquidity_spec> venues;
};

struct collateral_params {
  double liquidation_threshold = 0.0;  // in (0, 1]
  double liquidation_bonus = 0.0;      // in [0, 1)
};

struct protocol_spec {
  std::string name;
  protocol_kind kind = protocol_kind::pooled;
  double close_factor = 0.5;          // in (0, 1]
  double full_liquidation_hf = 0.95;  // in [0, 1]
  // Collateral parameters by asset symbol. An asset absent here cannot be collateral
  // in this protocol (it may still be borrowed).
  std::vector<std::pair<std::string, collateral_params>> assets;
};

struct protocol {
  std::string name;
  protocol_kind kind = protocol_kind::pooled;
  double close_factor = 0.5;
  double full_liquidation_hf = 0.95;
  // Indexed by asset id; nullopt where the protocol does not accept the asset as
  // collateral.
  std::vector<std::optional<collateral_params>> collateral;

  [[nodiscard]] const collateral_params* params(asset_id a) const {
    return a.index() < collateral.size() && collateral[a.index()] ? &*collateral[a.index()]
                                                                  : nullptr;
  }
  // The asset's liquidation threshold, or 0 where it is not accepted as collateral.
  [[nodiscard]] double threshold(asset_id a) const {
    const collateral_params* p = params(a);
    return p != nullptr ? p->liquidation_threshold : 0.0;
  }
  // The asset's liquidation bonus, or 0 where it is not accepted as collateral.
  [[nodiscard]] double bonus(asset_id a) const {
    const collateral_params* p = params(a);
    return p != nullptr ? p->liquidation_bonus : 0.0;
  }
};

class market {
 public:
  // Adds an asset; refuses an empty or duplicate symbol, a price that is not finite
  // and > 0, a pool with non-finite or non-positive reserves, or a pool whose
  // quote/base differs from the price by more than pool_price_tolerance (relative);
  // venues that liquidity_spec::validate refuses, or venues beside a pool or on a
  // derived asset.
  [[nodiscard]] absl::StatusOr<asset_id> add_asset(asset_spec spec);

  // Adds a protocol; refuses an empty or duplicate name, close_factor outside (0, 1],
  // full_liquidation_hf outside [0, 1], a threshold outside (0, 1], a bonus outside
  // [0, 1), an unknown or repeated asset symbol. Every asset must be added first.
  [[nodiscard]] absl::StatusOr<protocol_id> add_protocol(const protocol_spec& spec);

  [[nodiscard]] std::optional<asset_id> find_asset(std::string_view symbol) const;
  [[nodiscard]] std::optional<protocol_id> find_protocol(std::string_view name) const;

  [[nodiscard]] const asset_spec& asset(asset_id a) const { return assets_[a.index()]; }
  // The base of a derived asset; nullopt for a plain one.
  [[nodiscard]] std::optional<asset_id> base_of(asset_id a) const { return base_of_[a.index()]; }
  [[nodiscard]] bool has_derived() const { return has_derived_; }
  [[nodiscard]] const protocol& get_protocol(protocol_id p) const { return protocols_[p.index()]; }
  [[nodiscard]] std::size_t asset_count() const { return assets_.size(); }
  [[nodiscard]] std::size_t protocol_count() const { return protocols_.size(); }
  [[nodiscard]] std::span<const asset_spec> assets() const { return assets_; }
  [[nodiscard]] std::span<const protocol> protocols() const { return protocols_; }

  // Reference prices of every asset, indexed by asset id.
  [[nodiscard]] std::vector<double> reference_prices() const;

 private:
  std::vector<asset_spec> assets_;
  std::vector<std::optional<asset_id>> base_of_;
  bool has_derived_ = false;
  std::vector<protocol> protocols_;
  absl::flat_hash_map<std::string, asset_id> asset_by_symbol_;
  absl::flat_hash_map<std::string, protocol_id> protocol_by_name_;
};

// True when x is a finite number > 0.
[[nodiscard]] inline bool is_positive_finite(double x) {
  return x > 0.0 && x <= std::numeric_limits<double>::max();
}
// True when x is a finite number >= 0.
[[nodiscard]] inline bool is_nonnegative_finite(double x) {
  return x >= 0.0 && x <= std::numeric_limits<double>::max();
}

}  // namespace cascade
