// The network edge over real sockets: a net_server on port 0 with a small fake handler,
// driven by a minimal synchronous Beast client.
#include "server/net.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

// GCC 12's -Wnull-dereference misfires inside Asio once inlined (as in server/net.cpp).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#pragma GCC diagnostic pop

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using cascade::server::http_reply;
using cascade::server::http_request;
using cascade::server::http_response;
using cascade::server::net_handler;
using cascade::server::net_metrics;
using cascade::server::net_server;
using cascade::server::net_settings;
using cascade::server::ws_peer;
using namespace std::chrono_literals;

struct received {
  std::uint64_t peer;
  std::string data;
  bool binary;
};

// Records what reaches it. Answers: /echo with the request's fields; /later from another
// thread; /never not at all (the reply is kept). Upgrades need the token "good".
class fake_handler final : public net_handler {
 public:
  ~fake_handler() override {
    for (auto& t : repliers_) t.join();
  }

  void on_http(http_request req, http_reply reply) override {
    {
      std::lock_guard lk(mu_);
      requests.push_back(req);
    }
    cv_.notify_all();
    http_response res;
    res.body = R"({"method":")" + req.method + R"(","path":")" + req.path + R"(","query":")" +
               req.query + R"(","token":")" + req.token + R"(","body_bytes":)" +
               std::to_string(req.body.size()) + "}";
    res.headers.emplace_back("X-Test", "yes");
    if (req.path == "/later") {
      std::lock_guard lk(mu_);
      repliers_.emplace_back([reply = std::move(reply), res = std::move(res)] {
        std::this_thread::sleep_for(20ms);
        reply(res);
      });
    } else if (req.path == "/never") {
      std::lock_guard lk(mu_);
      kept_reply = std::move(reply);
    } else {
      reply(std::move(res));
    }
  }

  std::variant<int, http_response> on_upgrade(const http_request& req) override {
    {
      std::lock_guard lk(mu_);
      upgrade_tokens.push_back(req.token);
    }
    if (req.token == "good") return 7;
    http_response refusal;
    refusal.status = 401;
    refusal.body = R"({"error":{"code":"unauthorized","message":"no token"}})";
    return refusal;
  }

  void on_open(const std::shared_ptr<ws_peer>& peer) override {
    peer->send_control(R"({"type":"hello"})");
    {
      std::lock_guard lk(mu_);
      peers[peer->id()] = peer;
    }
    cv_.notify_all();
  }

  void on_message(const std::shared_ptr<ws_peer>& peer, std::string_view data,
                  bool binary) override {
    // Answering from inside on_message runs on the connection's strand: must not block.
    if (data == "ping") peer->send_control(R"({"type":"pong"})");
    {
      std::lock_guard lk(mu_);
      messages.push_back({peer->id(), std::string(data), binary});
    }
    cv_.notify_all();
  }

  void on_close(const ws_peer& peer) override {
    {
      std::lock_guard lk(mu_);
      ++closed[peer.id()];
    }
    cv_.notify_all();
  }

  template <class Pred>
  bool wait(Pred pred, std::chrono::milliseconds timeout = 5s) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, timeout, [&] { return pred(*this); });
  }
  template <class F>
  auto locked(F f) {
    std::lock_guard lk(mu_);
    return f(*this);
  }

  std::vector<http_request> requests;
  std::vector<std::string> upgrade_tokens;
  std::map<std::uint64_t, std::shared_ptr<ws_peer>> peers;
  std::vector<received> messages;
  std::map<std::uint64_t, int> closed;
  http_reply kept_reply;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::thread> repliers_;
};

struct metrics_set {
  prometheus::Gauge ws_connections, http_connections;
  prometheus::Counter ws_in, ws_out, dropped, gaps, http_requests, refused;
  net_metrics view() {
    return {&ws_connections, &http_connections, &ws_in,  &ws_out, &dropped,
            &gaps,           &http_requests,    &refused};
  }
};

net_settings test_settings() {
  net_settings s;
  s.port = 0;
  s.io_threads = 2;
  s.max_body_bytes = 1024;
  s.max_frame_bytes = 1024;
  s.send_queue = 64;
  s.idle_timeout_s = 5;
  return s;
}

// A started server with its handler and metrics.
struct fixture {
  explicit fixture(net_settings s = test_settings()) : server(std::move(s), handler, m.view()) {
    auto p = server.start();
    REQUIRE(p.ok());
    port = *p;
  }
  fake_handler handler;
  metrics_set m;
  net_server server;
  std::uint16_t port = 0;
};

template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = 5s) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

tcp::endpoint local(std::uint16_t port) { return {asio::ip::make_address("127.0.0.1"), port}; }

http::response<http::string_body> roundtrip(beast::tcp_stream& s,
                                            http::request<http::string_body> req) {
  req.set(http::field::host, "127.0.0.1");
  req.prepare_payload();
  http::write(s, req);
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(s, buf, res);
  return res;
}

http::response<http::string_body> get(asio::io_context& ioc, std::uint16_t port,
                                      const std::string& target,
                                      const std::string& authorization = {}) {
  beast::tcp_stream s(ioc);
  s.connect(local(port));
  http::request<http::string_body> req{http::verb::get, target, 11};
  if (!authorization.empty()) req.set(http::field::authorization, authorization);
  return roundtrip(s, std::move(req));
}

using ws_client = websocket::stream<beast::tcp_stream>;

// Connects and upgrades; the handshake's error (if any) and response come back.
std::unique_ptr<ws_client> ws_connect(asio::io_context& ioc, std::uint16_t port,
                                      const std::string& target, beast::error_code& ec,
                                      websocket::response_type* res = nullptr,
                                      int receive_buffer = 0) {
  auto ws = std::make_unique<ws_client>(ioc);
  auto& sock = beast::get_lowest_layer(*ws).socket();
  sock.open(tcp::v4());
  if (receive_buffer > 0) sock.set_option(asio::socket_base::receive_buffer_size(receive_buffer));
  sock.connect(local(port));
  websocket::response_type ignored;
  ws->handshake(res != nullptr ? *res : ignored, "127.0.0.1", target, ec);
  return ws;
}

std::string read_text(ws_client& ws) {
  beast::flat_buffer buf;
  ws.read(buf);
  return beast::buffers_to_string(buf.data());
}

std::shared_ptr<const std::string> event_text(std::uint64_t seq, std::size_t pad) {
  return std::make_shared<const std::string>(R"({"type":"alert","seq":)" + std::to_string(seq) +
                                             R"(,"pad":")" + std::string(pad, 'x') + R"("})");
}

// The seq of an event message, or of a gap's "to" (with its "from" in *from).
std::uint64_t number_after(const std::string& s, const std::string& key) {
  const auto at = s.find("\"" + key + "\":");
  REQUIRE(at != std::string::npos);
  return std::stoull(s.substr(at + key.size() + 3));
}

}  // namespace

TEST_CASE("net: HTTP requests reach the handler and its answer comes back", "[net]") {
  fixture f;
  asio::io_context ioc;
  beast::tcp_stream s(ioc);
  s.connect(local(f.port));
  // Two requests on one keep-alive connection.
  for (int i = 0; i < 2; ++i) {
    http::request<http::string_body> req{http::verb::get, "/echo?x=1&y=2", 11};
    const auto res = roundtrip(s, std::move(req));
    CHECK(res.result_int() == 200);
    CHECK(res[http::field::content_type] == "application/json");
    CHECK(res["X-Test"] == "yes");
    CHECK(res.keep_alive());
    CHECK(res.body() ==
          R"({"method":"GET","path":"/echo","query":"x=1&y=2","token":"","body_bytes":0})");
  }
  http::request<http::string_body> post{http::verb::post, "/echo", 11};
  post.body() = std::string(1024, 'a');  // exactly the limit
  const auto res = roundtrip(s, std::move(post));
  CHECK(res.result_int() == 200);
  CHECK_THAT(res.body(), Catch::Contains(R"("method":"POST")"));
  CHECK_THAT(res.body(), Catch::Contains(R"("body_bytes":1024)"));
  CHECK(f.m.http_requests.Value() == 3);

  // A reply made later from another thread.
  const auto later = get(ioc, f.port, "/later");
  CHECK(later.result_int() == 200);
  CHECK_THAT(later.body(), Catch::Contains(R"("path":"/later")"));
}

TEST_CASE("net: Expect: 100-continue is answered before the body is sent", "[net]") {
  fixture f;
  asio::io_context ioc;
  tcp::socket s(ioc);
  s.connect(local(f.port));
  asio::write(s, asio::buffer(std::string("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                                          "Expect: 100-continue\r\n\r\n")));
  beast::flat_buffer buf;
  const std::string interim = "HTTP/1.1 100 Continue\r\n\r\n";
  asio::read(s, buf.prepare(interim.size()));
  buf.commit(interim.size());
  CHECK(beast::buffers_to_string(buf.data()) == interim);
  buf.consume(buf.size());
  asio::write(s, asio::buffer(std::string("hello")));
  http::response<http::string_body> res;
  http::read(s, buf, res);
  CHECK(res.result_int() == 200);
  CHECK_THAT(res.body(), Catch::Contains(R"("body_bytes":5)"));
}

TEST_CASE("net: HEAD gets the headers of the answer without its body", "[net]") {
  fixture f;
  asio::io_context ioc;
  beast::tcp_stream s(ioc);
  s.connect(local(f.port));
  http::request<http::string_body> head{http::verb::head, "/echo", 11};
  head.set(http::field::host, "x");
  http::write(s, head);
  beast::flat_buffer buf;
  http::response_parser<http::empty_body> p;
  p.skip(true);  // a response to HEAD has no body, whatever its Content-Length says
  http::read(s, buf, p);
  CHECK(p.get().result_int() == 200);
  CHECK(p.get()[http::field::content_length] != "0");
  // The connection is still in step: the next answer is read cleanly.
  const auto res = roundtrip(s, {http::verb::get, "/echo", 11});
  CHECK(res.result_int() == 200);
  CHECK_THAT(res.body(), Catch::Contains(R"("method":"GET")"));
}

TEST_CASE("net: a body over max_body_bytes is refused with 413 too_large", "[net]") {
  fixture f;
  asio::io_context ioc;
  beast::tcp_stream s(ioc);
  s.connect(local(f.port));
  http::request<http::string_body> req{http::verb::post, "/echo", 11};
  req.body() = std::string(1025, 'a');
  const auto res = roundtrip(s, std::move(req));
  CHECK(res.result_int() == 413);
  CHECK_THAT(res.body(), Catch::Contains(R"({"error":{"code":"too_large")"));
  CHECK_FALSE(res.keep_alive());
  CHECK(f.handler.locked([](auto& h) { return h.requests.size(); }) == 0);

  // Chunked, without a length up front: refused once the body passes the limit.
  beast::tcp_stream s2(ioc);
  s2.connect(local(f.port));
  const std::string chunk(600, 'b');
  const std::string raw =
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n" + chunk +
      "\r\n258\r\n" + chunk + "\r\n0\r\n\r\n";
  asio::write(s2.socket(), asio::buffer(raw));
  beast::flat_buffer buf;
  http::response<http::string_body> res2;
  http::read(s2, buf, res2);
  CHECK(res2.result_int() == 413);
}

TEST_CASE("net: the bearer token reaches the handler", "[net]") {
  fixture f;
  asio::io_context ioc;
  CHECK_THAT(get(ioc, f.port, "/echo", "Bearer s3cret").body(),
             Catch::Contains(R"("token":"s3cret")"));
  CHECK_THAT(get(ioc, f.port, "/echo", "bEaReR   t2 ").body(), Catch::Contains(R"("token":"t2")"));
  // Another scheme is refused at the edge, never served as anonymous (the client meant to
  // authenticate); the credentials are not echoed.
  const auto basic = get(ioc, f.port, "/echo", "Basic dXNlcg==");
  CHECK(basic.result_int() == 401);
  CHECK_THAT(basic.body(), Catch::Contains("the Authorization header must be 'Bearer TOKEN', "
                                           "not scheme 'Basic'"));
  CHECK_THAT(basic.body(), !Catch::Contains("dXNlcg"));
  CHECK_THAT(get(ioc, f.port, "/echo", "Bearer").body(),
             Catch::Contains("the Authorization header holds no token after 'Bearer'"));
}

TEST_CASE("net: malformed HTTP gets 400 and the connection closes", "[net]") {
  fixture f;
  asio::io_context ioc;
  tcp::socket s(ioc);
  s.connect(local(f.port));
  asio::write(s, asio::buffer(std::string("NOT HTTP AT ALL\r\n\r\n")));
  std::string got;
  beast::error_code ec;
  std::array<char, 4096> buf{};
  for (;;) {
    const std::size_t n = s.read_some(asio::buffer(buf), ec);
    if (ec) break;
    got.append(buf.data(), n);
  }
  CHECK(ec == asio::error::eof);
  CHECK_THAT(got, Catch::StartsWith("HTTP/1.1 400"));
  CHECK_THAT(got, Catch::Contains(R"({"error":{"code":"bad_request")"));
}

TEST_CASE("net: connections over max_connections get 503 overloaded", "[net]") {
  auto settings = test_settings();
  settings.max_connections = 1;
  fixture f(settings);
  asio::io_context ioc;
  beast::tcp_stream first(ioc);
  first.connect(local(f.port));
  REQUIRE(roundtrip(first, {http::verb::get, "/echo", 11}).result_int() == 200);
  const auto res = get(ioc, f.port, "/echo");
  CHECK(res.result_int() == 503);
  CHECK_THAT(res.body(), Catch::Contains(R"({"error":{"code":"overloaded")"));
  CHECK(f.m.refused.Value() == 1);
  CHECK(f.m.http_connections.Value() == 1);
  // Once the first leaves, a new one is served.
  first.close();
  bool served = false;
  for (int i = 0; i < 100 && !served; ++i) {
    served = get(ioc, f.port, "/echo").result_int() == 200;
    if (!served) std::this_thread::sleep_for(10ms);
  }
  CHECK(served);
}

TEST_CASE("net: a port in use is a clear start-up error", "[net]") {
  fixture f;
  fake_handler h;
  auto s = test_settings();
  s.port = f.port;
  net_server second(s, h);
  const auto r = second.start();
  REQUIRE_FALSE(r.ok());
  CHECK(std::string(r.status().message()) ==
        "cannot listen on 127.0.0.1:" + std::to_string(f.port) + ": Address already in use");
  s.bind = "not an address";
  net_server third(s, h);
  CHECK_FALSE(third.start().ok());
}

TEST_CASE("net: a WebSocket upgrade the handler refuses gets its answer (401)", "[net]") {
  fixture f;
  asio::io_context ioc;
  beast::error_code ec;
  websocket::response_type res;
  auto ws = ws_connect(ioc, f.port, "/v1/ws", ec, &res);
  CHECK(ec == websocket::error::upgrade_declined);
  CHECK(res.result_int() == 401);
  CHECK_THAT(res.body(), Catch::Contains("unauthorized"));
  ws = ws_connect(ioc, f.port, "/v1/ws?token=bad", ec, &res);
  CHECK(res.result_int() == 401);
  CHECK(f.handler.locked([](auto& h) { return h.upgrade_tokens; }) ==
        std::vector<std::string>{"", "bad"});
  CHECK(f.handler.locked([](auto& h) { return h.peers.size(); }) == 0);
}

TEST_CASE("net: an accepted WebSocket carries messages both ways", "[net]") {
  fixture f;
  asio::io_context ioc;
  beast::error_code ec;
  // The token may come %-encoded in the query.
  auto ws = ws_connect(ioc, f.port, "/v1/ws?x=1&token=go%6fd", ec);
  REQUIRE_FALSE(ec);
  CHECK(read_text(*ws) == R"({"type":"hello"})");
  REQUIRE(f.handler.wait([](auto& h) { return h.peers.size() == 1; }));
  const auto peer = f.handler.locked([](auto& h) { return h.peers.begin()->second; });
  CHECK(peer->role() == 7);
  CHECK(f.m.ws_connections.Value() == 1);

  ws->text(true);
  ws->write(asio::buffer(std::string("ping")));
  CHECK(read_text(*ws) == R"({"type":"pong"})");
  ws->binary(true);
  ws->write(asio::buffer(std::string("\x01\x02", 2)));
  REQUIRE(f.handler.wait([](auto& h) { return h.messages.size() == 2; }));
  const auto msgs = f.handler.locked([](auto& h) { return h.messages; });
  CHECK(msgs[0].data == "ping");
  CHECK_FALSE(msgs[0].binary);
  CHECK(msgs[1].data == std::string("\x01\x02", 2));
  CHECK(msgs[1].binary);
  CHECK(msgs[1].peer == peer->id());
  CHECK(f.m.ws_in.Value() == 2);

  // Events, then a resume that replays from seq 2: 2 and 3 repeat, 4 is new.
  peer->send_events({{1, event_text(1, 0)}, {2, event_text(2, 0)}, {3, event_text(3, 0)}});
  for (std::uint64_t s = 1; s <= 3; ++s) CHECK(number_after(read_text(*ws), "seq") == s);
  peer->resume(2, [] {
    return std::vector<ws_peer::event_ref>{
        {2, event_text(2, 0)}, {3, event_text(3, 0)}, {4, event_text(4, 0)}};
  });
  for (std::uint64_t s : {2, 3, 4}) CHECK(number_after(read_text(*ws), "seq") == s);
  // hello, pong, 3 events, 3 replayed (counted once each write completes)
  CHECK(eventually([&] { return f.m.ws_out.Value() == 8; }));

  // The server closes on request, after what it queued.
  peer->send_control(R"({"type":"bye"})");
  peer->close();
  CHECK(read_text(*ws) == R"({"type":"bye"})");
  beast::flat_buffer buf;
  ws->read(buf, ec);
  CHECK(ec == websocket::error::closed);
  CHECK(ws->reason().code == websocket::close_code::normal);
  REQUIRE(f.handler.wait([](auto& h) { return h.closed.size() == 1; }));
  CHECK(f.handler.locked([&](auto& h) { return h.closed[peer->id()]; }) == 1);
  peer->send_control("after close: ignored");
}

TEST_CASE("net: a frame over max_frame_bytes closes the connection with 1009", "[net]") {
  fixture f;
  asio::io_context ioc;
  beast::error_code ec;
  auto ws = ws_connect(ioc, f.port, "/v1/ws?token=good", ec);
  REQUIRE_FALSE(ec);
  CHECK(read_text(*ws) == R"({"type":"hello"})");
  ws->text(true);
  ws->write(asio::buffer(std::string(1025, 'a')), ec);
  beast::flat_buffer buf;
  ws->read(buf, ec);
  CHECK(ec == websocket::error::closed);
  CHECK(ws->reason().code == websocket::close_code::too_big);
  REQUIRE(f.handler.wait([](auto& h) { return h.closed.size() == 1; }));
  CHECK(f.handler.locked([](auto& h) { return h.messages.size(); }) == 0);
  CHECK(f.handler.locked([](auto& h) { return h.closed.begin()->second; }) == 1);
  CHECK(eventually([&] { return f.m.ws_connections.Value() == 0; }));
}

TEST_CASE("net: a client that never reads does not hold up one that does", "[net]") {
  auto settings = test_settings();
  settings.send_queue = 256;
  fixture f(settings);
  asio::io_context ioc;
  beast::error_code ec;
  // The stalled client's small receive window makes the server's send buffer fill sooner.
  auto stalled = ws_connect(ioc, f.port, "/v1/ws?token=good", ec, nullptr, 4096);
  REQUIRE_FALSE(ec);
  auto reader = ws_connect(ioc, f.port, "/v1/ws?token=good", ec);
  REQUIRE_FALSE(ec);
  REQUIRE(f.handler.wait([](auto& h) { return h.peers.size() == 2; }));
  const auto [stalled_peer, reader_peer] = f.handler.locked(
      [](auto& h) { return std::pair(h.peers.begin()->second, h.peers.rbegin()->second); });
  CHECK(read_text(*reader) == R"({"type":"hello"})");

  constexpr std::uint64_t total = 3000;  // 4 KiB each: 12 MB, several times what TCP buffers
  constexpr std::uint64_t batch = 100;
  std::atomic<std::uint64_t> got{0};
  std::vector<std::string> reader_seen;
  std::thread reading([&] {
    try {
      while (got < total) {
        reader_seen.push_back(read_text(*reader));
        ++got;
      }
    } catch (const std::exception&) {
      got = total;  // the check on reader_seen below reports it
    }
  });
  const auto start = std::chrono::steady_clock::now();
  for (std::uint64_t first = 1; first <= total; first += batch) {
    std::vector<ws_peer::event_ref> events;
    for (std::uint64_t s = first; s < first + batch; ++s)
      events.emplace_back(s, event_text(s, 4096));
    stalled_peer->send_events(events);
    reader_peer->send_events(std::move(events));
    // Keep the reader's queue under its limit: its pace, not the stalled one's, sets ours.
    while (got + 1 < first && std::chrono::steady_clock::now() - start < 20s) {
      std::this_thread::sleep_for(100us);
    }
  }
  reading.join();
  const auto elapsed = std::chrono::steady_clock::now() - start;
  CHECK(elapsed < 10s);
  REQUIRE(reader_seen.size() == total);
  for (std::uint64_t i = 0; i < total; ++i) {
    if (number_after(reader_seen[i], "seq") != i + 1) {
      FAIL("reader got " << reader_seen[i].substr(0, 60) << " at " << i);
    }
  }
  CHECK(f.m.dropped.Value() > 0);

  // The stalled client now reads: increasing seqs, and a gap names every missing one
  // before anything newer arrives.
  std::uint64_t next = 1;
  std::uint64_t gaps = 0;
  while (next <= total) {
    const std::string m = read_text(*stalled);
    if (m == R"({"type":"hello"})") continue;
    if (m.find(R"("type":"gap")") != std::string::npos) {
      REQUIRE(number_after(m, "from") == next);
      next = number_after(m, "to") + 1;
      ++gaps;
      continue;
    }
    REQUIRE(number_after(m, "seq") == next);
    ++next;
  }
  CHECK(gaps >= 1);
  CHECK(eventually([&] { return f.m.gaps.Value() == static_cast<double>(gaps); }));
}

TEST_CASE("net: stop() with connections open returns promptly", "[net]") {
  auto h = std::make_unique<fake_handler>();
  metrics_set m;
  auto server = std::make_unique<net_server>(test_settings(), *h, m.view());
  const auto port = server->start();
  REQUIRE(port.ok());
  asio::io_context ioc;
  beast::error_code ec;
  auto ws = ws_connect(ioc, *port, "/v1/ws?token=good", ec);  // open, never reads
  REQUIRE_FALSE(ec);
  auto listening = ws_connect(ioc, *port, "/v1/ws?token=good", ec);  // reads: sees the close
  REQUIRE_FALSE(ec);
  beast::error_code listening_ec;
  std::thread listen_thread([&] {
    beast::flat_buffer b;
    while (!listening_ec) {
      b.clear();
      listening->read(b, listening_ec);
    }
  });
  beast::tcp_stream idle(ioc);  // keep-alive, idle after one request
  idle.connect(local(*port));
  REQUIRE(roundtrip(idle, {http::verb::get, "/echo", 11}).result_int() == 200);
  beast::tcp_stream waiting(ioc);  // its request is never answered
  waiting.connect(local(*port));
  http::request<http::string_body> req{http::verb::get, "/never", 11};
  req.set(http::field::host, "x");
  http::write(waiting, req);
  REQUIRE(h->wait([](auto& hh) { return hh.kept_reply != nullptr && hh.peers.size() == 2; }));
  const auto peer = h->locked([](auto& hh) { return hh.peers.begin()->second; });

  const auto start = std::chrono::steady_clock::now();
  server->stop();
  CHECK(std::chrono::steady_clock::now() - start < 2s);
  server->stop();  // idempotent
  CHECK(h->locked([](auto& hh) { return hh.closed.size(); }) == 2);
  CHECK(m.ws_connections.Value() == 0);
  listen_thread.join();
  CHECK(listening_ec == websocket::error::closed);
  CHECK(listening->reason().code == websocket::close_code::going_away);

  // Late calls from the application do nothing, before and after the server is gone.
  peer->send_control("late");
  h->kept_reply(http_response{});
  server.reset();
  peer->send_events({{1, event_text(1, 0)}});
  h->kept_reply(http_response{});

  // The clients see their connections end.
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(waiting, buf, res, ec);
  CHECK(ec);
}
