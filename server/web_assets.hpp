// The live page's files (web/), embedded into the binary at build time by
// web/embed.cmake, so `cascade serve` serves the page with nothing installed beside it.
// Read-only data: any thread may call; no allocation.
#pragma once

#include <span>
#include <string_view>

namespace cascade::server {

struct web_asset {
  std::string_view path;          // relative to web/, e.g. "index.html", "app.js"
  std::string_view content_type;  // with charset for text
  std::string_view etag;          // quoted, from the file's SHA-256
  std::string_view body;
};

// Every embedded file, in web/'s order (sorted by path).
[[nodiscard]] std::span<const web_asset> web_assets();

}  // namespace cascade::server
