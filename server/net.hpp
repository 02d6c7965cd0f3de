// The network edge: one TCP port serving HTTP/1.1 and WebSocket (upgrade at /v1/ws),
// on Boost.Asio I/O threads. Boost.Beast is confined to net_*.cpp; this header holds
// only plain types, so the rest of the server never sees Beast.
//
// Threads: the net_server runs its own I/O threads. Handler callbacks run on them (one
// connection's callbacks never run concurrently). Replies and peer sends may be called
// from any thread: they post to the connection's strand. Every connection is bounded:
// one write in flight, an outbox (server/outbox.hpp) of at most `send_queue` events,
// body and frame size limits, idle and handshake timeouts.
#pragma once

#include <absl/status/statusor.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace prometheus {
class Counter;
class Gauge;
}  // namespace prometheus

namespace cascade::server {

struct http_request {
  std::string method;  // "GET", "POST", ...
  std::string path;    // target before '?', not %-decoded
  std::string query;   // after '?', without it; empty when none
  std::string body;
  std::string token;   // from "Authorization: Bearer T", or ?token=T on the WebSocket upgrade
  std::string content_type;
  std::string if_none_match;  // the header as sent, for the page's conditional GETs
};

struct http_response {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
};

// Called once with the answer, from any thread.
using http_reply = std::function<void(http_response)>;

// A WebSocket connection as the application sees it. Thread-safe: every call posts to
// the connection's strand. After close() or a disconnect, calls do nothing.
class ws_peer {
 public:
  virtual ~ws_peer() = default;
  [[nodiscard]] virtual std::uint64_t id() const = 0;
  // Set at upgrade from on_upgrade's answer; read by the application.
  [[nodiscard]] virtual int role() const = 0;
  // Control messages (hello, ack, pong, error, gap) are never dropped.
  virtual void send_control(std::string msg) = 0;
  // Events in seq order, one shared encoding for all subscribers. The outbox drops
  // what does not fit and later tells the client with a gap message.
  using event_ref = std::pair<std::uint64_t, std::shared_ptr<const std::string>>;
  virtual void send_events(std::vector<event_ref> events) = 0;
  // Resume: run `replay` on the strand (it returns the events to queue, in seq order),
  // after letting events from `from_seq` on through again. Running on the strand orders
  // it with send_events calls made before.
  virtual void resume(std::uint64_t from_seq, std::function<std::vector<event_ref>()> replay) = 0;
  virtual void close() = 0;
};

// What the application implements. Called on I/O threads.
class net_handler {
 public:
  virtual ~net_handler() = default;
  // A plain HTTP request (not an upgrade). Reply exactly once, from any thread.
  virtual void on_http(http_request req, http_reply reply) = 0;
  // A WebSocket upgrade at /v1/ws: return the peer's role (>= 0) to accept, or the
  // refusal (e.g. 401) to send instead.
  [[nodiscard]] virtual std::variant<int, http_response> on_upgrade(const http_request& req) = 0;
  virtual void on_open(const std::shared_ptr<ws_peer>& peer) = 0;
  // One complete message. `binary` frames are passed so the application can refuse them.
  virtual void on_message(const std::shared_ptr<ws_peer>& peer, std::string_view data,
                          bool binary) = 0;
  virtual void on_close(const ws_peer& peer) = 0;
};

struct net_settings {
  std::string bind = "127.0.0.1";
  std::uint16_t port = 8080;  // 0: any free port
  unsigned io_threads = 1;
  std::size_t max_connections = 1024;  // HTTP and WebSocket together; more are refused
  std::size_t max_body_bytes = 8u << 20;
  std::size_t max_frame_bytes = 1u << 20;
  std::size_t send_queue = 32768;  // events per WebSocket outbox
  std::uint32_t idle_timeout_s = 60;  // HTTP keep-alive idle, and handshakes
};

// Counters the edge keeps (prometheus-cpp metrics are thread-safe). Any may be null.
struct net_metrics {
  prometheus::Gauge* ws_connections = nullptr;
  prometheus::Gauge* http_connections = nullptr;
  prometheus::Counter* ws_messages_in = nullptr;
  prometheus::Counter* ws_messages_out = nullptr;
  prometheus::Counter* ws_events_dropped = nullptr;  // dropped from outboxes
  prometheus::Counter* ws_gaps = nullptr;            // gap messages sent
  prometheus::Counter* http_requests = nullptr;
  prometheus::Counter* connections_refused = nullptr;  // over max_connections
  // Called with the error code of each refusal the edge makes itself (a malformed
  // request, a body, header or frame over its limit, a text frame that is not UTF-8, an
  // Authorization header that is not Bearer), so they count with the handler's.
  std::function<void(std::string_view code)> refused;
};

class net_server {
 public:
  net_server(net_settings settings, net_handler& handler, net_metrics metrics = {});
  ~net_server();  // stops and joins
  net_server(const net_server&) = delete;
  net_server& operator=(const net_server&) = delete;

  // Binds and listens (fails with a clear message: address in use, bad address), then
  // starts the I/O threads. Returns the bound port.
  [[nodiscard]] absl::StatusOr<std::uint16_t> start();
  // Stops accepting, closes every connection (WebSocket close 1001 "going away"),
  // joins the I/O threads. Idempotent.
  void stop();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace cascade::server
