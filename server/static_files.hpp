// The live page over HTTP: "/" answers web/index.html and "/static/NAME" the other files
// of web/, all embedded in the binary (web_assets.hpp). Paths are looked up exactly as
// they come, never %-decoded nor joined to a directory, so no request can reach
// anything but the embedded files. Answers carry the file's Content-Type, an ETag
// (If-None-Match gets 304) and Cache-Control: no-cache (the browser revalidates, the
// files' names carry no version).
//
// Any thread; allocates the answer's body.
#pragma once

#include <optional>
#include <variant>

#include "proto/ws_codec.hpp"
#include "server/net.hpp"

namespace cascade::server {

// nullopt: the path is not the page's ("/" or under "/static/"); the caller routes it.
// Otherwise the answer, or the refusal (not_found, method_not_allowed) to send.
[[nodiscard]] std::optional<std::variant<http_response, proto::wire_error>> serve_page(
    const http_request& req);

}  // namespace cascade::server
