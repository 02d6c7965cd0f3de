// `cascade curves --svg FILE`: one asset's liquidation and cascade curves as an SVG image
// for reports. x is the price drop (the liquidation curve's drop, the cascade curve's
// initial shock), y is USD: the static liquidation curve (collateral of the positions
// liquidatable at that drop), the collateral the cascade seizes and the bad debt it
// leaves; the critical shock is marked. Drawn directly as SVG 1.1 text, no library.
//
// Pure function; allocates; never throws except std::bad_alloc.
#pragma once

#include <string>
#include <string_view>

#include "engine/curves.hpp"

namespace cascade::server {

struct curves_svg_input {
  std::string_view asset;  // symbol, for the title
  double price = 0.0;      // the asset's price the curves start from
  const asset_curves* curves = nullptr;
  double amplification = 2.0;  // the critical shock's threshold, for the subtitle
};

[[nodiscard]] std::string curves_svg(const curves_svg_input& in);

}  // namespace cascade::server
