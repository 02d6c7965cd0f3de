// The network edge (net.hpp) on Boost.Beast: the one translation unit of the server that
// includes Beast. The shape follows Beast's advanced server and chat-multi examples: a
// listener, an http_session per connection that may become a websocket_session, and the
// state they share (settings, handler, metrics, the registry of live sessions).
//
// Lifetimes: sessions are owned by the handlers pending on them. Other threads reach a
// session only through a weak reference, and only through the gate: stop() closes it
// before the io_context goes away, so a late reply or send does nothing instead of posting
// into a dead context. The application's ws_peer is a small handle (peer_handle) and never
// keeps a session, with its socket, alive.
#include "server/net.hpp"

#include <absl/status/status.h>
#include <absl/strings/str_cat.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <pthread.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <thread>
#include <unordered_map>

// GCC 12 flags -Wnull-dereference inside Asio's executor comparison and scheduler once
// they are inlined into this file: false positives in Boost's code, silenced for it only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#pragma GCC diagnostic pop

#include "server/outbox.hpp"

namespace cascade::server {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using error_code = beast::error_code;
using request = http::request<http::string_body>;
using response = http::response<http::string_body>;

constexpr std::size_t header_limit = 16 * 1024;
// A connection closed after an error answer is drained this long, so the client reads
// the answer instead of a reset caused by the body it was still sending.
constexpr auto linger_time = std::chrono::seconds(2);
// stop(): how long open connections get for a clean close, then for an abort.
constexpr auto close_grace = std::chrono::milliseconds(500);
constexpr auto abort_grace = std::chrono::milliseconds(500);
constexpr std::string_view ws_path = "/v1/ws";

void count(prometheus::Counter* c, double v = 1.0) {
  if (c != nullptr && v > 0) c->Increment(v);
}
void up(prometheus::Gauge* g) {
  if (g != nullptr) g->Increment();
}
void down(prometheus::Gauge* g) {
  if (g != nullptr) g->Decrement();
}

// Our own messages only: nothing in them needs escaping.
std::string error_json(std::string_view code, std::string_view message) {
  std::string s = R"({"error":{"code":")";
  s += code;
  s += R"(","message":")";
  s += message;
  s += R"("}})";
  return s;
}

// absl's string helpers take absl::string_view, a distinct type in Debian's build.
bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Why a present Authorization header gives no bearer token (called only when it gives none).
std::string authorization_problem(std::string_view auth) {
  auth = trim(auth);
  const std::string_view scheme = auth.substr(0, auth.find_first_of(" \t"));
  if (iequals(scheme, "bearer")) return "the Authorization header holds no token after 'Bearer'";
  // The credentials are never echoed; the scheme only when it is a plain word.
  const bool plain = !scheme.empty() && scheme.size() <= 32 &&
                     std::all_of(scheme.begin(), scheme.end(), [](char c) {
                       return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-';
                     });
  std::string why = "the Authorization header must be 'Bearer TOKEN'";
  if (plain) why.append(", not scheme '").append(scheme).append("'");
  return why;
}

// "Bearer T" with any case of the scheme; empty for other schemes.
std::string bearer_token(std::string_view auth) {
  auth = trim(auth);
  constexpr std::string_view scheme = "bearer";
  if (auth.size() <= scheme.size() || !iequals(auth.substr(0, scheme.size()), scheme)) return {};
  if (auth[scheme.size()] != ' ' && auth[scheme.size()] != '\t') return {};
  return std::string(trim(auth.substr(scheme.size())));
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// %XX decoding; a malformed escape is kept as it is.
std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      const int hi = hex_digit(s[i + 1]);
      const int lo = hex_digit(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

// The %-decoded value of `key` in a query string; empty when absent.
std::string query_value(std::string_view query, std::string_view key) {
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view part = query.substr(0, amp);
    const std::size_t eq = part.find('=');
    if (eq != std::string_view::npos && part.substr(0, eq) == key) {
      return percent_decode(part.substr(eq + 1));
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return {};
}

// Other threads reach sessions only while this is open (see the file comment).
struct gate {
  std::shared_mutex mu;
  bool open = true;
};

// One slot of max_connections, held by the connection's session (moved on upgrade).
class connection_slot {
 public:
  explicit connection_slot(std::atomic<std::size_t>& n) : n_(&n) { n.fetch_add(1); }
  connection_slot(connection_slot&& o) noexcept : n_(std::exchange(o.n_, nullptr)) {}
  connection_slot& operator=(connection_slot&&) = delete;
  connection_slot(const connection_slot&) = delete;
  connection_slot& operator=(const connection_slot&) = delete;
  ~connection_slot() {
    if (n_ != nullptr) n_->fetch_sub(1);
  }

 private:
  std::atomic<std::size_t>* n_;
};

class session_base {
 public:
  virtual ~session_base() = default;
  // Both post to the session's strand. shutdown: close cleanly (WebSocket 1001);
  // abort: close the socket now.
  virtual void shutdown() = 0;
  virtual void abort() = 0;
};

// What the listener and every session share. The io_context is the last member, so
// sessions it destroys on teardown still find the registry.
struct shared_state {
  shared_state(net_settings s, net_handler& h, net_metrics m)
      : settings(std::move(s)),
        handler(h),
        metrics(m),
        ioc(static_cast<int>(std::max(1u, settings.io_threads))) {}

  void add(std::uint64_t id, std::weak_ptr<session_base> s) {
    std::lock_guard lk(reg_mu);
    sessions.emplace(id, std::move(s));
  }
  void remove(std::uint64_t id) {
    std::lock_guard lk(reg_mu);
    sessions.erase(id);
    if (sessions.empty()) reg_cv.notify_all();
  }
  [[nodiscard]] std::vector<std::shared_ptr<session_base>> live() {
    std::vector<std::shared_ptr<session_base>> out;
    std::lock_guard lk(reg_mu);
    for (auto& [id, w] : sessions) {
      if (auto s = w.lock()) out.push_back(std::move(s));
    }
    return out;
  }
  bool wait_empty(std::chrono::steady_clock::duration d) {
    std::unique_lock lk(reg_mu);
    return reg_cv.wait_for(lk, d, [&] { return sessions.empty(); });
  }

  net_settings settings;
  net_handler& handler;
  net_metrics metrics;
  std::shared_ptr<gate> gate_ = std::make_shared<gate>();
  std::atomic<bool> stopping{false};
  std::atomic<std::size_t> connections{0};
  std::atomic<std::uint64_t> next_id{1};
  std::mutex reg_mu;
  std::condition_variable reg_cv;
  std::unordered_map<std::uint64_t, std::weak_ptr<session_base>> sessions;
  asio::io_context ioc;
};

class websocket_session;

// The application's view of a WebSocket connection. Every call posts to the session's
// strand; after the session ended or the server stopped, calls do nothing.
class peer_handle final : public ws_peer {
 public:
  peer_handle(std::weak_ptr<websocket_session> s, std::shared_ptr<gate> g, std::uint64_t id,
              int role)
      : session_(std::move(s)), gate_(std::move(g)), id_(id), role_(role) {}

  [[nodiscard]] std::uint64_t id() const override { return id_; }
  [[nodiscard]] int role() const override { return role_; }
  void send_control(std::string msg) override;
  void send_events(std::vector<event_ref> events) override;
  void resume(std::uint64_t from_seq, std::function<std::vector<event_ref>()> replay) override;
  void close() override;

 private:
  template <class F>
  void post(F&& f);

  std::weak_ptr<websocket_session> session_;
  std::shared_ptr<gate> gate_;
  std::uint64_t id_;
  int role_;
};

class websocket_session final : public session_base,
                                public std::enable_shared_from_this<websocket_session> {
 public:
  websocket_session(beast::tcp_stream&& stream, shared_state& st, connection_slot slot, int role)
      : st_(st),
        ws_(std::move(stream)),
        out_(st.settings.send_queue),
        slot_(std::move(slot)),
        id_(st.next_id.fetch_add(1)),
        role_(role) {}

  ~websocket_session() override {
    finish();  // only does something when the io_context was torn down under us
    st_.remove(id_);
  }

  [[nodiscard]] asio::any_io_executor executor() { return ws_.get_executor(); }

  // Runs on the strand (the http_session that upgrades shares it).
  void run(const request& req) {
    peer_ = std::make_shared<peer_handle>(weak_from_this(), st_.gate_, id_, role_);
    st_.add(id_, weak_from_this());
    if (st_.stopping) {
      beast::get_lowest_layer(ws_).close();
      return;
    }
    auto timeouts = websocket::stream_base::timeout::suggested(beast::role_type::server);
    if (st_.settings.idle_timeout_s > 0) {
      timeouts.handshake_timeout = std::chrono::seconds(st_.settings.idle_timeout_s);
    }
    ws_.set_option(timeouts);
    websocket::permessage_deflate pmd;
    pmd.server_enable = false;
    pmd.client_enable = false;
    ws_.set_option(pmd);
    ws_.read_message_max(st_.settings.max_frame_bytes);
    ws_.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(http::field::server, "cascade"); }));
    // The WebSocket stream keeps its own timeouts; the TCP stream's would cut it off.
    beast::get_lowest_layer(ws_).expires_never();
    ws_.async_accept(req,
                     beast::bind_front_handler(&websocket_session::on_accept, shared_from_this()));
  }

  void shutdown() override {
    asio::post(executor(), [self = shared_from_this()] { self->going_away(); });
  }
  void abort() override {
    asio::post(executor(), [self = shared_from_this()] {
      if (self->phase_ != phase::closed) self->phase_ = phase::closing;
      beast::get_lowest_layer(self->ws_).close();
    });
  }

  // The strand side of peer_handle.
  void queue_control(outbox::message m) {
    if (phase_ != phase::open || close_when_flushed_) return;
    out_.push_control(std::move(m));
    maybe_write();
  }
  void queue_events(std::vector<ws_peer::event_ref> events) {
    if (phase_ != phase::open || close_when_flushed_) return;
    push_events(events);
    maybe_write();
  }
  void queue_replay(std::uint64_t from_seq,
                    const std::function<std::vector<ws_peer::event_ref>()>& replay) {
    if (phase_ != phase::open || close_when_flushed_) return;
    out_.rewind(from_seq);
    if (replay) {
      std::vector<ws_peer::event_ref> events = replay();
      push_events(events);
    }
    maybe_write();
  }
  void close_after_flush() {
    if (phase_ != phase::open) return;
    close_when_flushed_ = true;
    maybe_write();
  }

 private:
  enum class phase { handshake, open, closing, closed };

  void on_accept(error_code ec) {
    if (ec) {
      phase_ = phase::closed;
      return;
    }
    if (phase_ != phase::handshake) return;  // aborted while the handshake ran
    phase_ = phase::open;
    opened_ = true;
    up(st_.metrics.ws_connections);
    st_.handler.on_open(peer_);
    do_read();
    maybe_write();
  }

  void do_read() {
    ws_.async_read(in_, beast::bind_front_handler(&websocket_session::on_read, shared_from_this()));
  }

  void on_read(error_code ec, std::size_t) {
    // Every way a connection ends ends the read loop: a close from either side, a frame
    // over the limit (Beast has sent close 1009 by now), a timeout, a reset, an abort.
    if (ec) {
      // Beast has closed with 1009 / 1007: count them as the refusals they are.
      if (st_.metrics.refused && ec == websocket::error::message_too_big) {
        st_.metrics.refused("too_large");
      } else if (st_.metrics.refused && ec == websocket::error::bad_frame_payload) {
        st_.metrics.refused("bad_json");
      }
      finish();
      return;
    }
    count(st_.metrics.ws_messages_in);
    const std::string_view data(static_cast<const char*>(in_.data().data()), in_.size());
    st_.handler.on_message(peer_, data, ws_.got_binary());
    in_.consume(in_.size());
    do_read();
  }

  void push_events(std::vector<ws_peer::event_ref>& events) {
    const std::uint64_t before = out_.dropped();
    for (auto& [seq, msg] : events) (void)out_.push_event(seq, std::move(msg));
    count(st_.metrics.ws_events_dropped, static_cast<double>(out_.dropped() - before));
  }

  void maybe_write() {
    if (writing_ || phase_ != phase::open) return;
    if (going_away_) {
      start_close(websocket::close_code::going_away);
      return;
    }
    const std::uint64_t gaps = out_.gaps_sent();
    outbox::message m = out_.pop();
    if (!m) {
      if (close_when_flushed_) start_close(websocket::close_code::normal);
      return;
    }
    const bool is_gap = out_.gaps_sent() != gaps;
    writing_ = true;
    writing_msg_ = std::move(m);
    ws_.text(true);
    ws_.async_write(
        asio::buffer(*writing_msg_),
        beast::bind_front_handler(&websocket_session::on_write, shared_from_this(), is_gap));
  }

  void on_write(bool is_gap, error_code ec, std::size_t) {
    writing_ = false;
    writing_msg_.reset();
    if (ec) {
      // The read loop notices the dead connection and ends the session.
      phase_ = phase::closing;
      beast::get_lowest_layer(ws_).close();
      return;
    }
    count(st_.metrics.ws_messages_out);
    if (is_gap) count(st_.metrics.ws_gaps);
    maybe_write();
  }

  void going_away() {
    if (phase_ == phase::handshake) {
      phase_ = phase::closing;
      beast::get_lowest_layer(ws_).close();
      return;
    }
    going_away_ = true;
    maybe_write();  // closes now, or after the write in flight
  }

  void start_close(websocket::close_code code) {
    phase_ = phase::closing;
    ws_.async_close(code, [self = shared_from_this()](error_code ec) {
      if (ec) beast::get_lowest_layer(self->ws_).close();
    });
  }

  // The connection ended: tell the application exactly once (only if it saw on_open).
  void finish() {
    if (finished_) return;
    finished_ = true;
    phase_ = phase::closed;
    if (!opened_) return;
    down(st_.metrics.ws_connections);
    st_.handler.on_close(*peer_);
  }

  shared_state& st_;
  websocket::stream<beast::tcp_stream> ws_;
  beast::flat_buffer in_;
  outbox out_;
  outbox::message writing_msg_;
  std::shared_ptr<peer_handle> peer_;
  connection_slot slot_;
  std::uint64_t id_;
  int role_;
  phase phase_ = phase::handshake;
  bool writing_ = false;
  bool going_away_ = false;
  bool close_when_flushed_ = false;
  bool opened_ = false;
  bool finished_ = false;
};

template <class F>
void peer_handle::post(F&& f) {
  std::shared_lock lk(gate_->mu);
  if (!gate_->open) return;
  std::shared_ptr<websocket_session> s = session_.lock();
  if (!s) return;
  const asio::any_io_executor ex = s->executor();
  asio::post(ex, [s = std::move(s), f = std::forward<F>(f)]() mutable { f(*s); });
}

void peer_handle::send_control(std::string msg) {
  post([m = std::make_shared<const std::string>(std::move(msg))](websocket_session& s) mutable {
    s.queue_control(std::move(m));
  });
}

void peer_handle::send_events(std::vector<event_ref> events) {
  if (events.empty()) return;
  post([e = std::move(events)](websocket_session& s) mutable { s.queue_events(std::move(e)); });
}

void peer_handle::resume(std::uint64_t from_seq, std::function<std::vector<event_ref>()> replay) {
  post([from_seq, r = std::move(replay)](websocket_session& s) { s.queue_replay(from_seq, r); });
}

void peer_handle::close() {
  post([](websocket_session& s) { s.close_after_flush(); });
}

class http_session final : public session_base, public std::enable_shared_from_this<http_session> {
 public:
  http_session(tcp::socket&& socket, shared_state& st, connection_slot slot)
      : st_(st),
        ex_(socket.get_executor()),
        stream_(std::move(socket)),
        slot_(std::move(slot)),
        id_(st.next_id.fetch_add(1)) {
    up(st_.metrics.http_connections);
  }

  ~http_session() override {
    down(st_.metrics.http_connections);
    st_.remove(id_);
  }

  void run() {
    st_.add(id_, weak_from_this());
    asio::dispatch(ex_, beast::bind_front_handler(&http_session::do_read, shared_from_this()));
  }

  void shutdown() override { abort(); }
  void abort() override {
    asio::post(ex_, [self = shared_from_this()] { self->close_now(); });
  }

 private:
  // idle_timeout_s = 0 means no timeout.
  void arm_idle_timer() {
    if (st_.settings.idle_timeout_s == 0) {
      stream_.expires_never();
    } else {
      stream_.expires_after(std::chrono::seconds(st_.settings.idle_timeout_s));
    }
  }

  void close_now() {
    stopping_ = true;
    awaiting_.reset();
    if (!upgraded_) stream_.close();
  }

  void do_read() {
    if (stopping_ || st_.stopping) {
      close_now();
      return;
    }
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(header_limit));
    parser_->body_limit(st_.settings.max_body_bytes);
    arm_idle_timer();
    http::async_read_header(
        stream_, buffer_, *parser_,
        beast::bind_front_handler(&http_session::on_header, shared_from_this()));
  }

  void on_header(error_code ec, std::size_t) {
    if (ec) return on_read_error(ec);
    count(st_.metrics.http_requests);
    const auto& req = parser_->get();
    version_ = req.version();
    keep_alive_ = req.keep_alive();
    head_ = req.method() == http::verb::head;
    if (parser_->is_done()) return handle_request();
    if (iequals(std::string_view(req[http::field::expect]), "100-continue")) {
      // Clients such as curl wait for this before sending a large body.
      static const std::string continue_line = "HTTP/1.1 100 Continue\r\n\r\n";
      asio::async_write(stream_, asio::buffer(continue_line),
                        [self = shared_from_this()](error_code wec, std::size_t) {
                          if (wec) return self->close_now();
                          self->read_body();
                        });
      return;
    }
    read_body();
  }

  void read_body() {
    arm_idle_timer();
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&http_session::on_body, shared_from_this()));
  }

  void on_body(error_code ec, std::size_t) {
    if (ec) return on_read_error(ec);
    handle_request();
  }

  void on_read_error(error_code ec) {
    if (ec == http::error::end_of_stream) return linger_close();
    if (ec == http::error::body_limit) {
      return send_error(413, "too_large",
                        absl::StrCat("request body over ", st_.settings.max_body_bytes, " bytes"));
    }
    if (ec == http::error::header_limit) {
      return send_error(431, "too_large",
                        absl::StrCat("request header over ", header_limit, " bytes"));
    }
    // A malformed request gets an answer; a dead or silent connection just closes.
    if (ec.category() == http::make_error_code(http::error::bad_target).category() &&
        ec != http::error::partial_message) {
      return send_error(400, "bad_request", absl::StrCat("malformed HTTP request: ", ec.message()));
    }
    close_now();
  }

  void handle_request() {
    request req = parser_->release();
    http_request r;
    r.method = std::string(req.method_string());
    const std::string_view target = req.target();
    const std::size_t q = target.find('?');
    r.path = std::string(target.substr(0, q));
    if (q != std::string_view::npos) r.query = std::string(target.substr(q + 1));
    r.token = bearer_token(req[http::field::authorization]);
    if (r.token.empty() && !trim(req[http::field::authorization]).empty()) {
      // Never served as anonymous: the client meant to authenticate.
      return send_error(401, "unauthorized", authorization_problem(req[http::field::authorization]));
    }
    r.content_type = std::string(req[http::field::content_type]);
    r.if_none_match = std::string(req[http::field::if_none_match]);

    if (websocket::is_upgrade(req) && r.path == ws_path) return upgrade(req, std::move(r));

    r.body = std::move(req.body());
    awaiting_ = shared_from_this();
    const std::uint64_t serial = ++serial_;
    http_reply reply = [g = st_.gate_, w = weak_from_this(), serial](http_response res) {
      std::shared_lock lk(g->mu);
      if (!g->open) return;
      std::shared_ptr<http_session> s = w.lock();
      if (!s) return;
      const asio::any_io_executor ex = s->ex_;
      asio::post(ex, [s = std::move(s), serial, res = std::move(res)]() mutable {
        s->deliver(serial, std::move(res));
      });
    };
    st_.handler.on_http(std::move(r), std::move(reply));
  }

  void upgrade(const request& req, http_request r) {
    if (r.token.empty()) r.token = query_value(r.query, "token");
    std::variant<int, http_response> answer = st_.handler.on_upgrade(r);
    if (auto* refusal = std::get_if<http_response>(&answer)) {
      keep_alive_ = false;
      return send(build(std::move(*refusal)));
    }
    auto ws = std::make_shared<websocket_session>(std::move(stream_), st_, std::move(slot_),
                                                  std::get<int>(answer));
    upgraded_ = true;
    ws->run(req);
  }

  // The handler's reply, on the strand. A duplicate or stale reply is ignored.
  void deliver(std::uint64_t serial, http_response r) {
    if (serial != serial_ || !awaiting_) return;
    const std::shared_ptr<http_session> self = std::move(awaiting_);
    send(build(std::move(r)));
  }

  response build(http_response r) const {
    response res;
    res.version(version_);
    res.result(r.status >= 100 && r.status <= 999 ? r.status : 500u);
    res.set(http::field::server, "cascade");
    if (!r.content_type.empty()) res.set(http::field::content_type, r.content_type);
    for (auto& [name, value] : r.headers) res.insert(name, value);
    res.keep_alive(keep_alive_);
    if (head_) {
      res.content_length(r.body.size());
    } else {
      res.body() = std::move(r.body);
      res.prepare_payload();
    }
    return res;
  }

  void send_error(unsigned status, std::string_view code, const std::string& message) {
    keep_alive_ = false;
    if (st_.metrics.refused) st_.metrics.refused(code);
    http_response r;
    r.status = status;
    r.body = error_json(code, message);
    send(build(std::move(r)));
  }

  void send(response res) {
    if (stopping_) return close_now();
    res_ = std::move(res);
    const bool close = !res_->keep_alive();
    arm_idle_timer();
    http::async_write(
        stream_, *res_,
        beast::bind_front_handler(&http_session::on_write, shared_from_this(), close));
  }

  void on_write(bool close, error_code ec, std::size_t) {
    res_.reset();
    if (ec) return close_now();
    if (close) return linger_close();
    do_read();
  }

  // Half-close, then drain what the client still sends until it closes (or time runs
  // out), so it reads our answer rather than a reset.
  void linger_close() {
    error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return close_now();
    stream_.expires_after(linger_time);
    drain();
  }
  void drain() {
    stream_.async_read_some(asio::buffer(scratch_),
                            [self = shared_from_this()](error_code ec, std::size_t) {
                              if (ec || self->stopping_) return self->close_now();
                              self->drain();
                            });
  }

  shared_state& st_;
  asio::any_io_executor ex_;  // stream_ is moved out on upgrade; its strand stays here
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<response> res_;
  std::shared_ptr<http_session> awaiting_;  // self, while the handler holds the reply
  std::array<char, 1024> scratch_{};
  connection_slot slot_;
  std::uint64_t id_;
  std::uint64_t serial_ = 0;
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool head_ = false;
  bool stopping_ = false;
  bool upgraded_ = false;
};

// Over max_connections: answer 503 and close, without reading the request.
class refusal : public std::enable_shared_from_this<refusal> {
 public:
  explicit refusal(tcp::socket&& socket) : stream_(std::move(socket)) {}

  void run() {
    static const std::string text = [] {
      const std::string body = error_json("overloaded", "too many connections; try again later");
      return absl::StrCat(
          "HTTP/1.1 503 Service Unavailable\r\nServer: cascade\r\n"
          "Content-Type: application/json\r\nConnection: close\r\nContent-Length: ",
          body.size(), "\r\n\r\n", body);
    }();
    stream_.expires_after(linger_time);
    asio::async_write(stream_, asio::buffer(text),
                      [self = shared_from_this()](error_code ec, std::size_t) {
                        if (ec) return self->stream_.close();
                        self->stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
                        self->drain();
                      });
  }

 private:
  void drain() {
    stream_.async_read_some(asio::buffer(scratch_),
                            [self = shared_from_this()](error_code ec, std::size_t) {
                              if (ec) return self->stream_.close();
                              self->drain();
                            });
  }

  beast::tcp_stream stream_;
  std::array<char, 512> scratch_{};
};

class listener : public std::enable_shared_from_this<listener> {
 public:
  listener(shared_state& st, tcp::acceptor&& acceptor)
      : st_(st), acceptor_(std::move(acceptor)), retry_(acceptor_.get_executor()) {}

  void run() {
    asio::dispatch(acceptor_.get_executor(),
                   beast::bind_front_handler(&listener::do_accept, shared_from_this()));
  }

  // Stops accepting; `done` is set once the acceptor is closed.
  void close(std::shared_ptr<std::promise<void>> done) {
    asio::post(acceptor_.get_executor(), [self = shared_from_this(), done = std::move(done)] {
      error_code ec;
      self->acceptor_.close(ec);
      self->retry_.cancel();
      done->set_value();
    });
  }

 private:
  void do_accept() {
    if (!acceptor_.is_open()) return;
    acceptor_.async_accept(asio::make_strand(st_.ioc),
                           beast::bind_front_handler(&listener::on_accept, shared_from_this()));
  }

  void on_accept(error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_.is_open() || st_.stopping) return;
    if (ec) {
      // Out of descriptors or similar: back off instead of spinning on accept.
      retry_.expires_after(std::chrono::milliseconds(50));
      retry_.async_wait([self = shared_from_this()](error_code wec) {
        if (!wec) self->do_accept();
      });
      return;
    }
    // Alerts are small and latency matters: no Nagle delay.
    socket.set_option(tcp::no_delay(true), ec);
    if (st_.connections.load() >= st_.settings.max_connections) {
      count(st_.metrics.connections_refused);
      std::make_shared<refusal>(std::move(socket))->run();
    } else {
      std::make_shared<http_session>(std::move(socket), st_, connection_slot(st_.connections))
          ->run();
    }
    do_accept();
  }

  shared_state& st_;
  tcp::acceptor acceptor_;
  asio::steady_timer retry_;
};

std::string endpoint_text(const std::string& host, std::uint16_t port) {
  if (host.find(':') != std::string::npos) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

}  // namespace

struct net_server::impl {
  impl(net_settings s, net_handler& h, net_metrics m) : st(std::move(s), h, m) {}

  shared_state st;
  std::shared_ptr<listener> lst;
  std::vector<std::thread> threads;
  std::mutex stop_mu;
  bool started = false;
  bool stopped = false;
};

net_server::net_server(net_settings settings, net_handler& handler, net_metrics metrics)
    : impl_(std::make_unique<impl>(std::move(settings), handler, metrics)) {}

net_server::~net_server() { stop(); }

absl::StatusOr<std::uint16_t> net_server::start() {
  std::lock_guard lk(impl_->stop_mu);
  if (impl_->started || impl_->stopped) {
    return absl::FailedPreconditionError("net_server: start() may be called once");
  }
  shared_state& st = impl_->st;
  const std::string where = endpoint_text(st.settings.bind, st.settings.port);
  auto fail = [&](const error_code& ec) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", where, ": ", ec.message()));
  };

  error_code ec;
  // An IP literal, or "localhost"; no name lookup, so start-up never waits on DNS.
  const std::string host = st.settings.bind == "localhost" ? "127.0.0.1" : st.settings.bind;
  const asio::ip::address addr = asio::ip::make_address(host, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot listen on ", where, ": not an IP address"));
  }
  const tcp::endpoint ep(addr, st.settings.port);

  tcp::acceptor acceptor(asio::make_strand(st.ioc));
  if (acceptor.open(ep.protocol(), ec); ec) return fail(ec);
  if (acceptor.set_option(asio::socket_base::reuse_address(true), ec); ec) return fail(ec);
  if (acceptor.bind(ep, ec); ec) return fail(ec);
  if (acceptor.listen(asio::socket_base::max_listen_connections, ec); ec) return fail(ec);
  const tcp::endpoint bound = acceptor.local_endpoint(ec);
  if (ec) return fail(ec);

  impl_->started = true;
  impl_->lst = std::make_shared<listener>(st, std::move(acceptor));
  impl_->lst->run();
  const unsigned n = std::max(1u, st.settings.io_threads);
  impl_->threads.reserve(n);
  for (unsigned i = 0; i < n; ++i) {
    impl_->threads.emplace_back([&ioc = st.ioc] {
      pthread_setname_np(pthread_self(), "io");
      ioc.run();
    });
  }
  return bound.port();
}

void net_server::stop() {
  std::lock_guard lk(impl_->stop_mu);
  if (impl_->stopped) return;
  impl_->stopped = true;
  if (!impl_->started) return;
  shared_state& st = impl_->st;
  st.stopping = true;
  {
    // From here on, replies and peer calls from other threads do nothing.
    std::unique_lock g(st.gate_->mu);
    st.gate_->open = false;
  }
  auto closed = std::make_shared<std::promise<void>>();
  std::future<void> acceptor_closed = closed->get_future();
  impl_->lst->close(std::move(closed));
  (void)acceptor_closed.wait_for(close_grace);

  // The snapshots are dropped before waiting: they keep sessions alive.
  for (auto& s : st.live()) s->shutdown();
  if (!st.wait_empty(close_grace)) {
    for (auto& s : st.live()) s->abort();
    (void)st.wait_empty(abort_grace);
  }
  st.ioc.stop();
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
}

}  // namespace cascade::server
