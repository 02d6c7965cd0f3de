// A WebSocket and HTTP/1.1 client for the command line (`cascade replay`): plain TCP
// (no TLS), one connection per ws_client. It has no thread of its own: its I/O runs
// inside the calls, on the calling thread, so one thread must own each object. Boost.Beast
// is confined to ws_client.cpp; this header holds plain types only. Allocates; throws
// nothing but std::bad_alloc: failures come back as an absl::Status naming the server
// and what went wrong.
#pragma once

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace cascade::server {

// ws://HOST[:PORT][/PATH][?QUERY]; the port defaults to 80 and the path to /v1/ws.
struct ws_url {
  std::string host;
  std::string port;
  std::string target;                           // path and query
  [[nodiscard]] std::string http_base() const;  // "http://HOST:PORT", for messages
};

[[nodiscard]] absl::StatusOr<ws_url> parse_ws_url(std::string_view url);

struct http_result {
  unsigned status = 0;
  std::string body;
};

// GET `target` on the server of `url` (Authorization: Bearer `token` when not empty).
// Any status is a result; a connection failure, a timeout or a malformed answer is an
// error.
[[nodiscard]] absl::StatusOr<http_result> http_get(const ws_url& url, std::string_view target,
                                                   std::string_view token,
                                                   std::chrono::milliseconds timeout);

class ws_client {
 public:
  using clock = std::chrono::steady_clock;

  // Connects and upgrades, sending the token as "Authorization: Bearer". A refused
  // upgrade reports the HTTP status and the server's answer.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<ws_client>> connect(
      const ws_url& url, std::string_view token, std::chrono::milliseconds timeout);
  ~ws_client();
  ws_client(const ws_client&) = delete;
  ws_client& operator=(const ws_client&) = delete;

  // Queues one text message; messages are written in order while next() runs.
  void send(std::string text);
  // The next message received, running the connection's reads and writes until one
  // arrives, or nullopt once `deadline` passes. An error once the connection failed or
  // the server closed it (with its close code and reason).
  [[nodiscard]] absl::StatusOr<std::optional<std::string>> next(clock::time_point deadline);
  // Sends a normal close and waits for the server's, at most `timeout`.
  void close(std::chrono::milliseconds timeout);

 private:
  struct impl;
  explicit ws_client(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

}  // namespace cascade::server
