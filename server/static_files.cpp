#include "server/static_files.hpp"

#include <string_view>

#include "proto/input_error.hpp"
#include "server/web_assets.hpp"

namespace cascade::server {

namespace {

constexpr std::string_view static_prefix = "/static/";
constexpr std::string_view index_name = "index.html";

// The page loads only its own files and talks only to its own origin (REST and the
// WebSocket); the favicon is an inline data: URL.
constexpr std::string_view page_policy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const web_asset* find_asset(std::string_view name) {
  for (const web_asset& a : web_assets()) {
    if (a.path == name) return &a;
  }
  return nullptr;
}

// If-None-Match: "*" or a comma-separated list of (possibly weak) entity tags.
bool matches(std::string_view if_none_match, std::string_view etag) {
  while (!if_none_match.empty()) {
    const std::size_t comma = if_none_match.find(',');
    std::string_view tag = if_none_match.substr(0, comma);
    while (!tag.empty() && (tag.front() == ' ' || tag.front() == '\t')) tag.remove_prefix(1);
    while (!tag.empty() && (tag.back() == ' ' || tag.back() == '\t')) tag.remove_suffix(1);
    if (tag.starts_with("W/")) tag.remove_prefix(2);
    if (tag == "*" || tag == etag) return true;
    if (comma == std::string_view::npos) break;
    if_none_match.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace

std::optional<std::variant<http_response, proto::wire_error>> serve_page(const http_request& req) {
  const std::string_view path = req.path;
  std::string_view name;
  if (path == "/") {
    name = index_name;
  } else if (path.starts_with(static_prefix)) {
    name = path.substr(static_prefix.size());
  } else {
    return std::nullopt;
  }
  const web_asset* a = name.empty() ? nullptr : find_asset(name);
  if (a == nullptr) {
    return proto::wire_error{proto::error_code::not_found,
                             proto::detail::cat("no resource at '", path, "'")};
  }
  if (req.method != "GET" && req.method != "HEAD") {
    return proto::wire_error{proto::error_code::method_not_allowed,
                             proto::detail::cat(req.method, " is not allowed on ", path,
                                                "; use GET")};
  }
  http_response r;
  r.content_type = std::string(a->content_type);
  r.headers.emplace_back("ETag", std::string(a->etag));
  r.headers.emplace_back("Cache-Control", "no-cache");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  if (name == index_name) {
    r.headers.emplace_back("Content-Security-Policy", std::string(page_policy));
    r.headers.emplace_back("Referrer-Policy", "no-referrer");
  }
  if (matches(req.if_none_match, a->etag)) {
    r.status = 304;
    r.content_type.clear();
    return r;
  }
  r.body = std::string(a->body);
  return r;
}

}  // namespace cascade::server
