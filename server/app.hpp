// `cascade serve`: the engine thread, the publisher, the metrics and the network edge,
// wired together. The app is the edge's handler: it authenticates, decodes requests and
// frames (proto/), turns them into engine commands or subscription changes, and answers.
//
// Threads: constructed and started on the main thread; its net_handler methods run on
// I/O threads and only decode, check and enqueue. stop() on the main thread (after a
// signal) closes the edge, lets the engine finish what it has, then the publisher.
#pragma once

#include <absl/status/statusor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "engine/book.hpp"
#include "engine/oracle.hpp"
#include "engine/market.hpp"
#include "proto/config.hpp"
#include "server/net.hpp"

namespace cascade::server {

struct app_inputs {
  std::unique_ptr<market> mkt;
  std::unique_ptr<book> bk;  // loaded, over *mkt
  proto::server_settings server;
  std::uint32_t max_rounds = 100;
  oracle_config oracles;  // checked against *mkt already
};

class app final : public net_handler {
 public:
  explicit app(app_inputs in);
  ~app() override;
  app(const app&) = delete;
  app& operator=(const app&) = delete;

  // Starts the engine, the publisher and the edge; returns the bound port.
  [[nodiscard]] absl::StatusOr<std::uint16_t> start();
  void stop();

  void on_http(http_request req, http_reply reply) override;
  [[nodiscard]] std::variant<int, http_response> on_upgrade(const http_request& req) override;
  void on_open(const std::shared_ptr<ws_peer>& peer) override;
  void on_message(const std::shared_ptr<ws_peer>& peer, std::string_view data,
                  bool binary) override;
  void on_close(const ws_peer& peer) override;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace cascade::server
