// The command line's WebSocket and HTTP client (ws_client.hpp) on Boost.Beast: the one
// client-side translation unit that includes Beast. Every operation is asynchronous on a
// private io_context that the calling thread runs until the operation completes or its
// deadline passes, so a silent server never blocks a call past its timeout.
#include "server/ws_client.hpp"

#include <absl/strings/str_cat.h>

#include <charconv>
#include <deque>
#include <utility>

// GCC 12 false positives inside Asio once inlined (see net.cpp).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#pragma GCC diagnostic pop

namespace cascade::server {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using error_code = beast::error_code;

constexpr std::string_view user_agent = "cascade-replay";
// A server message larger than this closes the connection (the default book's biggest
// bursts are single events of a few kB; a cascade lists every asset and protocol).
constexpr std::uint64_t max_message_bytes = 64u << 20;

std::string av(std::string_view s) { return std::string(s); }

// Runs `ioc` until `done` or `deadline`; false on timeout.
bool run_until(asio::io_context& ioc, const bool& done,
               std::chrono::steady_clock::time_point deadline) {
  while (!done) {
    if (ioc.stopped()) ioc.restart();
    if (ioc.run_one_until(deadline) == 0 && std::chrono::steady_clock::now() >= deadline) {
      return done;
    }
  }
  return true;
}

// The server's answer to a refused upgrade or request, shortened for one line.
std::string answer_text(std::string_view body) {
  constexpr std::size_t most = 300;
  std::string s(body.substr(0, most));
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  if (body.size() > most) s += "...";
  return s;
}

// Resolves and connects `stream` within the deadline.
absl::Status connect_tcp(asio::io_context& ioc, beast::tcp_stream& stream, const ws_url& url,
                         std::chrono::steady_clock::time_point deadline) {
  tcp::resolver resolver(ioc);
  bool done = false;
  error_code ec;
  tcp::resolver::results_type endpoints;
  resolver.async_resolve(url.host, url.port, [&](error_code e, tcp::resolver::results_type r) {
    ec = e;
    endpoints = std::move(r);
    done = true;
  });
  if (!run_until(ioc, done, deadline)) {
    resolver.cancel();
    return absl::DeadlineExceededError(
        absl::StrCat("cannot resolve host '", url.host, "': timed out"));
  }
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot resolve host '", url.host, "': ", ec.message()));
  }
  done = false;
  stream.expires_at(deadline);
  stream.async_connect(endpoints, [&](error_code e, const tcp::endpoint&) {
    ec = e;
    done = true;
  });
  run_until(ioc, done, deadline + std::chrono::seconds(1));
  if (!done || ec) {
    return absl::UnavailableError(absl::StrCat("cannot connect to ", url.http_base(), ": ",
                                               done ? ec.message() : "timed out"));
  }
  return absl::OkStatus();
}

}  // namespace

std::string ws_url::http_base() const { return absl::StrCat("http://", host, ":", port); }

absl::StatusOr<ws_url> parse_ws_url(std::string_view url) {
  const auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("--url '", av(url), "': ", av(why)));
  };
  constexpr std::string_view scheme = "ws://";
  if (url.starts_with("wss://")) return bad("wss:// (TLS) is not supported; use ws://");
  if (!url.starts_with(scheme)) return bad("expected ws://HOST:PORT/v1/ws");
  std::string_view rest = url.substr(scheme.size());
  const std::size_t slash = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, slash);
  ws_url out;
  out.target = slash == std::string_view::npos ? "/v1/ws" : std::string(rest.substr(slash));
  if (out.target.starts_with("?")) out.target = "/v1/ws" + out.target;
  if (authority.find('@') != std::string_view::npos) {
    return bad("user:password@ is not supported; give the token with --token");
  }
  std::string_view port = "80";
  if (authority.starts_with("[")) {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad("unclosed '[' in the host");
    out.host = std::string(authority.substr(1, close - 1));
    authority.remove_prefix(close + 1);
    if (authority.starts_with(":")) {
      port = authority.substr(1);
    } else if (!authority.empty()) {
      return bad("expected ':PORT' after the host");
    }
  } else {
    const std::size_t colon = authority.rfind(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (out.host.empty()) return bad("no host");
  unsigned p = 0;
  const auto res = std::from_chars(port.data(), port.data() + port.size(), p);
  if (port.empty() || res.ec != std::errc{} || res.ptr != port.data() + port.size() || p == 0 ||
      p > 65535) {
    return bad(absl::StrCat("port '", av(port), "' is not a number in [1, 65535]"));
  }
  out.port = std::string(port);
  return out;
}

absl::StatusOr<http_result> http_get(const ws_url& url, std::string_view target,
                                     std::string_view token, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  asio::io_context ioc;
  beast::tcp_stream stream(ioc);
  if (auto s = connect_tcp(ioc, stream, url, deadline); !s.ok()) return s;

  http::request<http::empty_body> req{http::verb::get, av(target), 11};
  req.set(http::field::host, absl::StrCat(url.host, ":", url.port));
  req.set(http::field::user_agent, av(user_agent));
  if (!token.empty()) req.set(http::field::authorization, absl::StrCat("Bearer ", av(token)));
  http::response_parser<http::string_body> parser;
  parser.body_limit(max_message_bytes);
  beast::flat_buffer buffer;
  bool done = false;
  error_code ec;
  stream.expires_at(deadline);
  http::async_write(stream, req, [&](error_code e, std::size_t) {
    if (e) {
      ec = e;
      done = true;
      return;
    }
    http::async_read(stream, buffer, parser, [&](error_code e2, std::size_t) {
      ec = e2;
      done = true;
    });
  });
  run_until(ioc, done, deadline + std::chrono::seconds(1));
  const std::string where = absl::StrCat("GET ", url.http_base(), av(target));
  if (!done || ec == beast::error::timeout) {
    return absl::DeadlineExceededError(
        absl::StrCat(where, ": no answer within ", timeout.count(), " ms"));
  }
  if (ec) return absl::UnavailableError(absl::StrCat(where, ": ", ec.message()));
  error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  http_result out;
  out.status = parser.get().result_int();
  out.body = std::move(parser.get().body());
  return out;
}

struct ws_client::impl {
  asio::io_context ioc;
  websocket::stream<beast::tcp_stream> ws{ioc};
  ws_url url;
  beast::flat_buffer read_buf;
  std::deque<std::string> inbox;
  std::deque<std::string> outbox;
  bool writing = false;
  bool closed = false;   // our close handshake completed
  absl::Status failure;  // set once the connection failed or closed

  void fail(error_code ec, std::string_view during) {
    if (!failure.ok()) return;
    if (ec == websocket::error::closed) {
      const auto& reason = ws.reason();
      const std::string_view why(reason.reason.data(), reason.reason.size());
      failure = absl::UnavailableError(
          absl::StrCat("the server closed the WebSocket (code ", static_cast<unsigned>(reason.code),
                       why.empty() ? "" : absl::StrCat(": ", av(why)), ")"));
    } else {
      failure = absl::UnavailableError(absl::StrCat("WebSocket ", url.http_base(), url.target, ": ",
                                                    av(during), ": ", ec.message()));
    }
  }

  void read_loop() {
    ws.async_read(read_buf, [this](error_code ec, std::size_t) {
      if (ec) {
        fail(ec, "read");
        return;
      }
      inbox.push_back(beast::buffers_to_string(read_buf.data()));
      read_buf.consume(read_buf.size());
      read_loop();
    });
  }

  void write_next() {
    if (writing || outbox.empty() || !failure.ok()) return;
    writing = true;
    ws.async_write(asio::buffer(outbox.front()), [this](error_code ec, std::size_t) {
      writing = false;
      outbox.pop_front();
      if (ec) {
        fail(ec, "write");
        return;
      }
      write_next();
    });
  }
};

ws_client::ws_client(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
ws_client::~ws_client() = default;

absl::StatusOr<std::unique_ptr<ws_client>> ws_client::connect(const ws_url& url,
                                                              std::string_view token,
                                                              std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto p = std::make_unique<impl>();
  p->url = url;
  auto& lowest = beast::get_lowest_layer(p->ws);
  if (auto s = connect_tcp(p->ioc, lowest, url, deadline); !s.ok()) return s;
  lowest.expires_at(deadline);
  const std::string tok(token);
  p->ws.set_option(websocket::stream_base::decorator([tok](websocket::request_type& req) {
    req.set(http::field::user_agent, av(user_agent));
    if (!tok.empty()) req.set(http::field::authorization, absl::StrCat("Bearer ", tok));
  }));
  p->ws.read_message_max(max_message_bytes);
  websocket::response_type res;
  bool done = false;
  error_code ec;
  p->ws.async_handshake(res, absl::StrCat(url.host, ":", url.port), url.target, [&](error_code e) {
    ec = e;
    done = true;
  });
  run_until(p->ioc, done, deadline + std::chrono::seconds(1));
  const std::string where = absl::StrCat("ws://", url.host, ":", url.port, url.target);
  if (!done || ec == beast::error::timeout) {
    return absl::DeadlineExceededError(
        absl::StrCat(where, ": no WebSocket upgrade within ", timeout.count(), " ms"));
  }
  if (ec == websocket::error::upgrade_declined) {
    return absl::PermissionDeniedError(
        absl::StrCat(where, ": the server refused the upgrade: ", res.result_int(), " ",
                     answer_text(res.body())));
  }
  if (ec) return absl::UnavailableError(absl::StrCat(where, ": ", ec.message()));
  // From here on the WebSocket's own timeouts apply (idle pings, close handshake).
  lowest.expires_never();
  p->ws.set_option(websocket::stream_base::timeout::suggested(beast::role_type::client));
  p->read_loop();
  return std::unique_ptr<ws_client>(new ws_client(std::move(p)));
}

void ws_client::send(std::string text) {
  impl_->outbox.push_back(std::move(text));
  impl_->write_next();
}

absl::StatusOr<std::optional<std::string>> ws_client::next(clock::time_point deadline) {
  impl& m = *impl_;
  for (;;) {
    if (!m.inbox.empty()) {
      std::string msg = std::move(m.inbox.front());
      m.inbox.pop_front();
      return std::optional<std::string>(std::move(msg));
    }
    if (!m.failure.ok()) return m.failure;
    if (clock::now() >= deadline) return std::optional<std::string>();
    if (m.ioc.stopped()) m.ioc.restart();
    (void)m.ioc.run_one_until(deadline);
  }
}

void ws_client::close(std::chrono::milliseconds timeout) {
  impl& m = *impl_;
  const auto deadline = clock::now() + timeout;
  // Let queued messages go out first.
  while (m.failure.ok() && (m.writing || !m.outbox.empty()) && clock::now() < deadline) {
    if (m.ioc.stopped()) m.ioc.restart();
    (void)m.ioc.run_one_until(deadline);
  }
  if (!m.failure.ok()) return;
  m.ws.async_close(websocket::close_code::normal, [&m](error_code) { m.closed = true; });
  // The pending read completes with `closed` once the server answers the close.
  run_until(m.ioc, m.closed, deadline);
  while (m.failure.ok() && clock::now() < deadline) {
    if (m.ioc.stopped()) m.ioc.restart();
    if (m.ioc.run_one_until(deadline) == 0) break;
  }
  error_code ignored;
  beast::get_lowest_layer(m.ws).socket().close(ignored);
}

}  // namespace cascade::server
