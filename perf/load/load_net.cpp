// load_net.hpp on Boost.Beast: the one translation unit of the load tool that includes
// Beast. Connections are opened and subscribed synchronously (nothing publishes yet),
// then run asynchronously, each on the io_context of the thread that owns it. Every
// handler runs on its connection's own single-threaded io_context, so the state a
// handler touches is that thread's alone; the send log is the one structure two
// threads share (publisher writes, subscribers read), and it is lock-free.
#include "perf/load/load_net.hpp"

#include <simdjson.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

// GCC 12 flags -Wnull-dereference inside Asio once it is inlined (false positives in
// Boost's code, as in server/net.cpp).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#pragma GCC diagnostic pop

#include "perf/load/text.hpp"

namespace cascade::load {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using error_code = beast::error_code;
using ws_stream = websocket::stream<beast::tcp_stream>;
namespace od = simdjson::ondemand;

std::int64_t realtime_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

std::int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}


void append_double(std::string& out, double v) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

// When each tick was written, for the subscribers to find the tick an alert names.
// Every price sent carries a tag in the low `bits` bits of its mantissa (a relative
// change below 2^-34, far under anything the engine resolves): a per-asset tick counter.
// The tag is the tick's slot in its asset's ring, so a slot is reused only after 2^bits
// more ticks of that asset; the whole price must match. A slot is written as a tiny
// seqlock (key cleared, time, key set) so a reader never pairs a key with another tick's
// time. The server echoes the price an alert was caused by exactly: it parses and prints
// doubles in their shortest round-trip form.
class send_log {
 public:
  static constexpr unsigned bits = 18;
  static constexpr std::uint64_t mask = (std::uint64_t{1} << bits) - 1;

  explicit send_log(std::size_t assets)
      : slots_(new slot[assets << bits]), next_(assets, 0), assets_(assets) {}

  // Publisher thread: the price to send for `asset`, tagged.
  [[nodiscard]] double tag(std::size_t asset, double price) {
    const std::uint64_t t = next_[asset]++ & mask;
    return std::bit_cast<double>((std::bit_cast<std::uint64_t>(price) & ~mask) | t);
  }
  void put(std::size_t asset, double price, std::int64_t t) {
    const auto key = std::bit_cast<std::uint64_t>(price);
    slot& s = slots_[(asset << bits) | (key & mask)];
    s.key.store(0, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    s.t.store(t, std::memory_order_relaxed);
    s.key.store(key, std::memory_order_release);
  }
  [[nodiscard]] std::optional<std::int64_t> find(std::size_t asset, double price) const {
    if (asset >= assets_) return std::nullopt;
    const auto want = std::bit_cast<std::uint64_t>(price);
    const slot& s = slots_[(asset << bits) | (want & mask)];
    if (s.key.load(std::memory_order_acquire) != want) return std::nullopt;
    const std::int64_t t = s.t.load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (s.key.load(std::memory_order_relaxed) != want) return std::nullopt;
    return t;
  }

 private:
  struct slot {
    std::atomic<std::uint64_t> key{0};
    std::atomic<std::int64_t> t{0};
  };
  std::unique_ptr<slot[]> slots_;
  std::vector<std::uint64_t> next_;
  std::size_t assets_;
};

absl::Status open_ws(ws_stream& ws, const run_plan& plan, std::string& hello) {
  error_code ec;
  tcp::resolver resolver(ws.get_executor());
  const auto eps = resolver.resolve(plan.ep.host, std::to_string(plan.ep.port), ec);
  if (ec) return absl::UnavailableError(cat("resolve ", plan.ep.host, ": ", ec.message()));
  beast::get_lowest_layer(ws).connect(eps, ec);
  if (ec) {
    return absl::UnavailableError(
        cat("connect ", plan.ep.host, ":", plan.ep.port, ": ", ec.message()));
  }
  beast::get_lowest_layer(ws).socket().set_option(tcp::no_delay(true), ec);
  ws.set_option(websocket::stream_base::timeout::suggested(beast::role_type::client));
  ws.set_option(websocket::stream_base::decorator(
      [](websocket::request_type& req) { req.set(http::field::user_agent, "cascade_load"); }));
  ws.read_message_max(std::uint64_t{64} << 20);
  std::string target = plan.ep.target;
  if (!plan.token.empty()) {
    target += target.find('?') == std::string::npos ? "?token=" : "&token=";
    target += plan.token;
  }
  websocket::response_type res;
  ws.handshake(res, cat(plan.ep.host, ":", plan.ep.port), target, ec);
  if (ec) {
    return absl::UnavailableError(cat("WebSocket handshake with ", plan.ep.host, ":",
                                               plan.ep.port, plan.ep.target, ": ", ec.message(),
                                               " (HTTP ", res.result_int(), ")"));
  }
  ws.text(true);
  beast::flat_buffer buf;
  ws.read(buf, ec);
  if (ec) return absl::UnavailableError(cat("reading hello: ", ec.message()));
  hello = beast::buffers_to_string(buf.data());
  return absl::OkStatus();
}

// A server message in a padded copy, parsed on demand. `type` is read first.
class reader {
 public:
  simdjson::error_code parse(std::string_view data) {
    scratch_.reserve(data.size() + simdjson::SIMDJSON_PADDING);
    scratch_.assign(data);
    auto r = parser_.iterate(
        simdjson::padded_string_view(scratch_.data(), scratch_.size(), scratch_.capacity()));
    if (r.error()) return r.error();
    doc_ = std::move(r).value_unsafe();
    return doc_["type"].get_string().get(type_);
  }
  [[nodiscard]] std::string_view type() const { return type_; }
  od::document& doc() { return doc_; }

 private:
  od::parser parser_;
  od::document doc_;
  std::string scratch_;
  std::string_view type_;
};

// For optional fields: the default stays when one is missing or of another type.
void ignore(simdjson::error_code) {}

bool is_event_type(std::string_view t) {
  return t == "alert" || t == "cascade" || t == "price" || t == "pending_liquidation" ||
         t == "insolvency" || t == "oracle";
}

}  // namespace

std::uint64_t seq_digest_term(std::uint64_t seq) {
  // SplitMix64's finalizer.
  std::uint64_t x = seq + 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// --- HTTP ----------------------------------------------------------------------------

struct http_client::impl {
  std::string host;
  std::uint16_t port;
  std::string token;
  asio::io_context ioc;
  std::optional<beast::tcp_stream> stream;
  beast::flat_buffer buf;

  absl::Status open() {
    stream.emplace(ioc);
    error_code ec;
    tcp::resolver r(ioc);
    const auto eps = r.resolve(host, std::to_string(port), ec);
    if (ec) return absl::UnavailableError(cat("resolve ", host, ": ", ec.message()));
    stream->connect(eps, ec);
    if (ec) {
      stream.reset();
      return absl::UnavailableError(cat("connect ", host, ":", port, ": ", ec.message()));
    }
    buf.clear();
    return absl::OkStatus();
  }

  absl::StatusOr<reply> once(http::verb verb, std::string_view target, std::string_view body) {
    if (!stream) {
      if (auto s = open(); !s.ok()) return s;
    }
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, cat(host, ":", port));
    req.set(http::field::user_agent, "cascade_load");
    if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
    if (!body.empty()) {
      req.set(http::field::content_type, "application/json");
      req.body() = std::string(body);
    }
    req.keep_alive(true);
    req.prepare_payload();
    error_code ec;
    stream->expires_after(std::chrono::seconds(60));
    http::write(*stream, req, ec);
    http::response_parser<http::string_body> parser;
    parser.body_limit(std::uint64_t{256} << 20);
    if (!ec) http::read(*stream, buf, parser, ec);
    if (ec) {
      stream.reset();
      return absl::UnavailableError(cat(std::string(http::to_string(verb)), " ", target, ": ",
                                                 ec.message()));
    }
    auto res = parser.release();
    reply out{res.result_int(), std::move(res.body())};
    if (!res.keep_alive()) stream.reset();
    return out;
  }
};

http_client::http_client(std::string host, std::uint16_t port, std::string token)
    : impl_(std::make_unique<impl>()) {
  impl_->host = std::move(host);
  impl_->port = port;
  impl_->token = std::move(token);
}

http_client::~http_client() = default;

absl::StatusOr<http_client::reply> http_client::request(std::string_view method,
                                                        std::string_view target,
                                                        std::string_view body) {
  const http::verb verb = http::string_to_verb(method);
  if (verb == http::verb::unknown) {
    return absl::InvalidArgumentError(cat("unknown HTTP method ", method));
  }
  const bool reused = impl_->stream.has_value();
  auto r = impl_->once(verb, target, body);
  // A kept-alive connection the server closed meanwhile: one fresh try.
  if (!r.ok() && reused) r = impl_->once(verb, target, body);
  return r;
}

// --- the run -------------------------------------------------------------------------

struct sub_thread;

struct subscriber {
  subscriber(asio::io_context& ioc, sub_thread& t) : ws(ioc), thread(t) {}
  void read();
  void on_read(error_code ec);

  ws_stream ws;
  sub_thread& thread;
  beast::flat_buffer in;
  subscriber_report rep;
  std::string ping = R"({"op":"ping","id":"sync"})";
  std::uint64_t last_seq = 0;
  // The last seqs received (ring), to take back those past end_seq.
  std::array<std::uint64_t, 256> recent{};
  std::size_t recent_n = 0;
  bool closing = false;
};

struct walk_state {
  double mean = 0.0;  // log of the start price
  double x = 0.0;     // log price
  double theta = 0.0;
  double step = 0.0;
  double last = 0.0;  // the last price written
};

struct publisher {
  publisher(asio::io_context& ioc, unsigned i) : ws(ioc), timer(ioc), index(i) {}

  struct message {
    std::string text;
    std::int64_t due = 0;  // steady ns
    bool window = false;
    std::vector<std::pair<std::uint32_t, double>> ticks;
  };

  ws_stream ws;
  asio::steady_timer timer;
  beast::flat_buffer in;
  unsigned index;
  std::deque<message> queue;
  bool writing = false;
  bool done = false;  // no more slots
  bool finished = false;  // done and written
  std::uint64_t slot = 0;
  std::int64_t first_due = 0;
  std::size_t next_asset = 0;
  bool sync_acked = false;
  std::uint64_t sync_seq = 0;
  std::string sync_text;
  bool closing = false;
};

struct sub_thread {
  asio::io_context ioc{1};
  std::vector<std::unique_ptr<subscriber>> subs;
  std::thread th;
  reader rd;
  histogram t2a, i2r, srv, outside, w2i, e2r;
  std::uint64_t unattributed = 0;
  std::uint64_t update_alerts = 0;
  std::uint64_t alerts_window = 0;
  std::uint64_t events_window = 0;
  std::map<std::string, std::uint64_t> errors;
  struct load_run::impl* run = nullptr;

  void handle(subscriber& s, std::string_view data, std::int64_t rt);
};

struct load_run::impl {
  explicit impl(run_plan p)
      : plan(std::move(p)), log(plan.assets.size()), pub_ioc(1) {}

  run_plan plan;
  send_log log;

  // Publishing (the publisher thread).
  asio::io_context pub_ioc;
  std::vector<std::unique_ptr<publisher>> pubs;
  std::thread pub_th;
  std::vector<walk_state> walks;
  std::mt19937_64 rng;
  std::normal_distribution<double> normal{0.0, 1.0};
  double interval_ns = 0.0;  // between one publisher's messages
  std::size_t max_backlog = 1;
  std::int64_t t0 = 0, window_start = 0, end = 0;  // steady ns
  std::uint64_t ticks_sent = 0, messages_sent = 0, ticks_window = 0, messages_window = 0;
  std::uint64_t late_window = 0, missed_window = 0, backlog_max = 0;
  histogram lateness;
  std::map<std::string, std::uint64_t> pub_errors;
  std::atomic<std::uint64_t> ticks_progress{0};
  std::int64_t last_ack_ns = 0;

  // Subscribing.
  std::vector<std::unique_ptr<sub_thread>> subs;
  std::atomic<std::int64_t> win_rt_start{0}, win_rt_end{0};
  std::uint64_t base_seq = 0;
  std::atomic<std::uint64_t> disconnects{0};

  // Phases.
  std::mutex mu;
  std::condition_variable cv;
  unsigned pubs_finished = 0;
  unsigned pubs_acked = 0;
  unsigned subs_synced = 0;
  unsigned subs_expected = 0;
  std::chrono::steady_clock::time_point started_at;
  bool started = false;
  bool joined = false;

  std::optional<std::size_t> asset_index(std::string_view sym) const {
    for (std::size_t i = 0; i < plan.assets.size(); ++i) {
      if (plan.assets[i].symbol == sym) return i;
    }
    return std::nullopt;
  }

  // Publisher thread.
  std::int64_t due_of(const publisher& p, std::uint64_t slot) const {
    return p.first_due + static_cast<std::int64_t>(std::llround(static_cast<double>(slot) * interval_ns));
  }
  double next_price(std::size_t a) {
    walk_state& w = walks[a];
    w.x += w.theta * (w.mean - w.x) + w.step * normal(rng);
    return log.tag(a, std::exp(w.x));
  }
  publisher::message make_message(publisher& p, std::int64_t due, bool window) {
    publisher::message m;
    m.due = due;
    m.window = window;
    const std::size_t n = plan.assets.size();
    if (plan.batch <= 1) {
      const std::size_t a = p.next_asset;
      p.next_asset = (p.next_asset + 1) % n;
      const double price = next_price(a);
      m.text = cat(R"({"op":"price","asset":")", plan.assets[a].symbol, R"(","price":)");
      append_double(m.text, price);
      m.text += '}';
      m.ticks.emplace_back(static_cast<std::uint32_t>(a), price);
      return m;
    }
    m.text.reserve(32 + plan.batch * 48);
    m.text = R"({"op":"prices","prices":[)";
    m.ticks.reserve(plan.batch);
    for (unsigned k = 0; k < plan.batch; ++k) {
      const std::size_t a = p.next_asset;
      p.next_asset = (p.next_asset + 1) % n;
      const double price = next_price(a);
      if (k > 0) m.text += ',';
      append(&m.text, R"({"asset":")", plan.assets[a].symbol, R"(","price":)");
      append_double(m.text, price);
      m.text += '}';
      m.ticks.emplace_back(static_cast<std::uint32_t>(a), price);
    }
    m.text += "]}";
    return m;
  }

  void on_timer(publisher& p) {
    const std::int64_t now = steady_ns();
    while (!p.done) {
      const std::int64_t due = due_of(p, p.slot);
      if (due > now) break;
      if (due >= end) {
        p.done = true;
        break;
      }
      const bool window = due >= window_start;
      if (p.queue.size() >= max_backlog) {
        if (window) ++missed_window;
        ++p.slot;
        continue;
      }
      p.queue.push_back(make_message(p, due, window));
      ++p.slot;
    }
    backlog_max = std::max<std::uint64_t>(backlog_max, p.queue.size());
    kick(p);
    if (!p.done) {
      p.timer.expires_at(std::chrono::steady_clock::time_point(
          std::chrono::nanoseconds(due_of(p, p.slot))));
      p.timer.async_wait([this, &p](error_code ec) {
        if (!ec) on_timer(p);
      });
    } else {
      maybe_finished(p);
    }
  }

  void kick(publisher& p) {
    if (p.writing || p.queue.empty() || p.closing) return;
    publisher::message& m = p.queue.front();
    const std::int64_t rt = realtime_ns();
    const std::int64_t late = steady_ns() - m.due;
    if (m.window) {
      lateness.record_signed(late);
      if (late > plan.late_ns) ++late_window;
    }
    for (const auto& [a, price] : m.ticks) {
      log.put(a, price, rt);
      walks[a].last = price;
    }
    p.writing = true;
    p.ws.async_write(asio::buffer(m.text), [this, &p](error_code ec, std::size_t) {
      p.writing = false;
      if (ec) {
        if (!p.closing) ++pub_errors["publisher_write_failed"];
        p.queue.clear();
        p.done = true;
        maybe_finished(p);
        return;
      }
      const publisher::message& sent = p.queue.front();
      const auto k = static_cast<std::uint64_t>(sent.ticks.size());
      ticks_sent += k;
      ++messages_sent;
      ticks_progress.store(ticks_sent, std::memory_order_relaxed);
      if (sent.window) {
        ticks_window += k;
        ++messages_window;
      }
      p.queue.pop_front();
      kick(p);
      maybe_finished(p);
    });
  }

  void maybe_finished(publisher& p) {
    if (!p.done || p.writing || !p.queue.empty() || p.finished) return;
    p.finished = true;
    std::lock_guard lk(mu);
    ++pubs_finished;
    cv.notify_all();
  }

  void pub_read(publisher& p) {
    p.ws.async_read(p.in, [this, &p](error_code ec, std::size_t) {
      if (ec) {
        if (!p.closing) {
          ++pub_errors["publisher_disconnected"];
          disconnects.fetch_add(1);
        }
        return;
      }
      pub_message(p, std::string_view(static_cast<const char*>(p.in.data().data()), p.in.size()));
      p.in.consume(p.in.size());
      pub_read(p);
    });
  }

  // The final tick: the publisher's first asset at its last price (it moves nothing),
  // with an id, so the server acknowledges it once its events are out.
  void send_sync(publisher& p) {
    if (p.writing || p.closing) return;  // a failed publisher; its error is counted already
    const std::size_t a = p.index % plan.assets.size();
    p.sync_text = cat(R"({"op":"price","id":"sync","asset":")", plan.assets[a].symbol,
                      R"(","price":)");
    append_double(p.sync_text, walks[a].last);
    p.sync_text += '}';
    p.writing = true;
    p.ws.async_write(asio::buffer(p.sync_text), [&p](error_code, std::size_t) { p.writing = false; });
  }

  std::uint64_t sync_retries = 0;
  reader pub_reader;
  void pub_message(publisher& p, std::string_view data) {
    if (pub_reader.parse(data) != simdjson::SUCCESS) {
      ++pub_errors["unparsable_server_message"];
      return;
    }
    const std::string_view type = pub_reader.type();
    od::document& d = pub_reader.doc();
    if (type == "error") {
      std::string_view id;
      ignore(d["id"].get_string().get(id));
      std::string_view code = "?";
      ignore(d["code"].get_string().get(code));
      if (id == "sync" && code == "overloaded") {
        // The final tick found the inbox full: the run's backlog; try again shortly.
        ++sync_retries;
        p.timer.expires_after(std::chrono::milliseconds(50));
        p.timer.async_wait([this, &p](error_code ec) {
          if (!ec) send_sync(p);
        });
        return;
      }
      ++pub_errors[std::string(code)];
    } else if (type == "ack") {
      std::string_view id;
      if (d["id"].get_string().get(id) != simdjson::SUCCESS || id != "sync") return;
      std::uint64_t seq = 0;
      ignore(d["seq"].get_uint64().get(seq));
      p.sync_acked = true;
      p.sync_seq = seq;
      last_ack_ns = steady_ns();
      bool all = false;
      {
        std::lock_guard lk(mu);
        all = ++pubs_acked == pubs.size();
      }
      if (all) cv.notify_all();
    }
  }
};

void subscriber::read() {
  ws.async_read(in, [this](error_code ec, std::size_t) { on_read(ec); });
}

void subscriber::on_read(error_code ec) {
  if (ec) {
    if (!closing) {
      rep.disconnected = true;
      ++rep.errors;
      ++thread.errors["subscriber_disconnected"];
      thread.run->disconnects.fetch_add(1);
      std::lock_guard lk(thread.run->mu);
      thread.run->cv.notify_all();
    }
    return;
  }
  const std::int64_t rt = realtime_ns();
  thread.handle(*this, std::string_view(static_cast<const char*>(in.data().data()), in.size()), rt);
  in.consume(in.size());
  read();
}

void sub_thread::handle(subscriber& s, std::string_view data, std::int64_t rt) {
  if (rd.parse(data) != simdjson::SUCCESS) {
    ++errors["unparsable_server_message"];
    ++s.rep.errors;
    return;
  }
  const std::string_view type = rd.type();
  od::document& d = rd.doc();
  if (is_event_type(type)) {
    std::uint64_t seq = 0;
    if (d["seq"].get_uint64().get(seq) != simdjson::SUCCESS) {
      ++errors["event_without_seq"];
      ++s.rep.errors;
      return;
    }
    ++s.rep.events;
    if (seq <= s.last_seq) {
      ++s.rep.reordered;
    } else {
      s.last_seq = seq;
      if (seq > run->base_seq) {
        ++s.rep.in_range;
        s.rep.digest += seq_digest_term(seq);
        s.recent[s.recent_n++ % s.recent.size()] = seq;
      }
    }
    const bool window = rt >= run->win_rt_start.load(std::memory_order_relaxed) &&
                        rt <= run->win_rt_end.load(std::memory_order_relaxed);
    if (window) ++events_window;
    if (type != "alert") return;
    ++s.rep.alerts;
    if (!window) return;
    ++alerts_window;
    std::int64_t ingest = 0, emit = 0;
    if (d["ingest_ns"].get_int64().get(ingest) != simdjson::SUCCESS ||
        d["emit_ns"].get_int64().get(emit) != simdjson::SUCCESS) {
      ++errors["alert_without_timestamps"];
      return;
    }
    srv.record_signed(emit - ingest);
    i2r.record_signed(rt - ingest);
    // `cause` is null for a crossing caused by a position update.
    std::string_view sym;
    const auto cause_err = d["cause"].get_string().get(sym);
    if (cause_err == simdjson::INCORRECT_TYPE) {
      ++update_alerts;
      return;
    }
    double price = 0.0;
    if (cause_err != simdjson::SUCCESS || d["price"].get_double().get(price) != simdjson::SUCCESS) {
      ++unattributed;
      return;
    }
    const auto a = run->asset_index(sym);
    const auto sent = a ? run->log.find(*a, price) : std::nullopt;
    if (!sent) {
      ++unattributed;
      return;
    }
    t2a.record_signed(rt - *sent);
    outside.record_signed((rt - *sent) - (emit - ingest));
    w2i.record_signed(ingest - *sent);
    e2r.record_signed(rt - emit);
    return;
  }
  if (type == "gap") {
    std::uint64_t from = 0, to = 0;
    ignore(d["from"].get_uint64().get(from));
    ignore(d["to"].get_uint64().get(to));
    ++s.rep.gap_messages;
    s.rep.gap_seqs += to >= from ? to - from + 1 : 0;
    return;
  }
  if (type == "error") {
    std::string_view code = "?";
    ignore(d["code"].get_string().get(code));
    ++errors[std::string(code)];
    ++s.rep.errors;
    return;
  }
  if (type == "pong") {
    std::string_view id;
    if (d["id"].get_string().get(id) == simdjson::SUCCESS && id == "sync") {
      s.rep.synced = true;
      std::lock_guard lk(run->mu);
      ++run->subs_synced;
      run->cv.notify_all();
    }
  }
}

load_run::load_run(run_plan plan) : impl_(std::make_unique<impl>(std::move(plan))) {}

load_run::~load_run() {
  if (impl_->started && !impl_->joined) (void)finish();
}

absl::Status load_run::connect() {
  impl& m = *impl_;
  const run_plan& p = m.plan;
  if (p.assets.empty()) return absl::InvalidArgumentError("no assets to price");
  if (p.publishers == 0 || p.rate <= 0.0 || p.batch == 0) {
    return absl::InvalidArgumentError("publishers, rate and batch must be positive");
  }
  m.rng.seed(p.seed);
  for (const asset_walk& a : p.assets) {
    walk_state w;
    w.mean = std::log(a.start);
    w.x = w.mean;
    w.step = a.step;
    w.theta = a.band > 0.0 ? std::min(1.0, a.step * a.step / (2.0 * a.band * a.band)) : 0.0;
    w.last = a.start;
    m.walks.push_back(w);
  }
  std::string hello;
  for (unsigned i = 0; i < p.publishers; ++i) {
    auto pub = std::make_unique<publisher>(m.pub_ioc, i);
    if (auto s = open_ws(pub->ws, p, hello); !s.ok()) {
      return absl::UnavailableError(cat("publisher ", i, ": ", s.message()));
    }
    pub->next_asset = i % p.assets.size();
    m.pubs.push_back(std::move(pub));
  }
  const unsigned threads = std::max(1u, p.sub_threads);
  for (unsigned t = 0; t < threads; ++t) {
    m.subs.push_back(std::make_unique<sub_thread>());
    m.subs.back()->run = &m;
  }
  const unsigned total = p.subscribers + p.filtered;
  std::uint64_t base = 0;
  for (unsigned i = 0; i < total; ++i) {
    sub_thread& t = *m.subs[i % threads];
    auto s = std::make_unique<subscriber>(t.ioc, t);
    s->rep.index = i;
    const bool filtered = i >= p.subscribers;
    std::string body = cat(R"("channels":)", p.channels);
    if (filtered && !p.filter.empty()) append(&body, R"(,"filter":)", p.filter);
    s->rep.subscription = cat("{", body, "}");
    if (auto st = open_ws(s->ws, p, hello); !st.ok()) {
      return absl::UnavailableError(cat("subscriber ", i, ": ", st.message()));
    }
    error_code ec;
    s->ws.write(asio::buffer(cat(R"({"op":"subscribe","id":"sub",)", body, "}")), ec);
    if (ec) return absl::UnavailableError(cat("subscriber ", i, ": ", ec.message()));
    for (;;) {
      s->ws.read(s->in, ec);
      if (ec) return absl::UnavailableError(cat("subscriber ", i, ": ", ec.message()));
      const std::string msg = beast::buffers_to_string(s->in.data());
      s->in.consume(s->in.size());
      if (t.rd.parse(msg) != simdjson::SUCCESS) {
        return absl::InternalError(cat("subscriber ", i, ": unreadable reply ", msg));
      }
      if (t.rd.type() == "error") {
        return absl::InvalidArgumentError(
            cat("subscriber ", i, ": the server refused the subscription: ", msg));
      }
      if (t.rd.type() == "ack") {
        std::uint64_t seq = 0;
        ignore(t.rd.doc()["seq"].get_uint64().get(seq));
        base = std::max(base, seq);
        break;
      }
    }
    t.subs.push_back(std::move(s));
  }
  m.base_seq = base;
  m.subs_expected = total;
  return absl::OkStatus();
}

void load_run::start() {
  impl& m = *impl_;
  const run_plan& p = m.plan;
  const double msg_rate = p.rate / static_cast<double>(p.batch) / static_cast<double>(p.publishers);
  m.interval_ns = 1e9 / msg_rate;
  m.max_backlog = std::max<std::size_t>(1, static_cast<std::size_t>(msg_rate * p.max_backlog_s));
  m.started_at = std::chrono::steady_clock::now();
  m.t0 = steady_ns();
  const std::int64_t rt0 = realtime_ns();
  const auto warm = static_cast<std::int64_t>(p.warmup_s * 1e9);
  const auto dur = static_cast<std::int64_t>(p.duration_s * 1e9);
  m.window_start = m.t0 + warm;
  m.end = m.window_start + dur;
  m.win_rt_start = rt0 + warm;
  m.win_rt_end = rt0 + warm + dur;
  for (auto& pub : m.pubs) {
    // Publishers start spread over one interval rather than all at once.
    pub->first_due = m.t0 + static_cast<std::int64_t>(m.interval_ns * pub->index /
                                                      static_cast<double>(p.publishers));
    publisher& pr = *pub;
    asio::post(m.pub_ioc, [&m, &pr] {
      m.pub_read(pr);
      m.on_timer(pr);
    });
  }
  for (auto& t : m.subs) {
    for (auto& s : t->subs) {
      subscriber& sr = *s;
      asio::post(sr.ws.get_executor(), [&sr] { sr.read(); });
    }
    t->th = std::thread([&ioc = t->ioc] { ioc.run(); });
  }
  m.pub_th = std::thread([&m] { m.pub_ioc.run(); });
  m.started = true;
}

std::chrono::steady_clock::time_point load_run::started() const { return impl_->started_at; }

std::uint64_t load_run::ticks_sent() const {
  return impl_->ticks_progress.load(std::memory_order_relaxed);
}

bool load_run::wait_published(std::chrono::steady_clock::duration timeout) {
  impl& m = *impl_;
  std::unique_lock lk(m.mu);
  return m.cv.wait_for(lk, timeout, [&] { return m.pubs_finished == m.pubs.size(); });
}

bool load_run::sync(std::chrono::steady_clock::duration timeout) {
  impl& m = *impl_;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  asio::post(m.pub_ioc, [&m] {
    for (auto& pub : m.pubs) m.send_sync(*pub);
  });
  {
    std::unique_lock lk(m.mu);
    if (!m.cv.wait_until(lk, deadline, [&] { return m.pubs_acked == m.pubs.size(); })) {
      return false;
    }
  }
  for (auto& t : m.subs) {
    for (auto& s : t->subs) {
      subscriber& sr = *s;
      asio::post(sr.ws.get_executor(), [&sr] {
        sr.ws.async_write(asio::buffer(sr.ping), [](error_code, std::size_t) {});
      });
    }
  }
  std::unique_lock lk(m.mu);
  return m.cv.wait_until(lk, deadline, [&] {
    return m.subs_synced + static_cast<unsigned>(m.disconnects.load()) >= m.subs_expected;
  });
}

run_results load_run::finish() {
  impl& m = *impl_;
  run_results r;
  if (m.started && !m.joined) {
    asio::post(m.pub_ioc, [&m] {
      for (auto& pub : m.pubs) {
        pub->closing = true;
        pub->timer.cancel();
        error_code ec;
        beast::get_lowest_layer(pub->ws).socket().shutdown(tcp::socket::shutdown_both, ec);
        beast::get_lowest_layer(pub->ws).close();
      }
    });
    for (auto& t : m.subs) {
      for (auto& s : t->subs) {
        subscriber& sr = *s;
        asio::post(sr.ws.get_executor(), [&sr] {
          sr.closing = true;
          error_code ec;
          beast::get_lowest_layer(sr.ws).socket().shutdown(tcp::socket::shutdown_both, ec);
          beast::get_lowest_layer(sr.ws).close();
        });
      }
    }
    m.pub_th.join();
    for (auto& t : m.subs) t->th.join();
    m.joined = true;
  }
  r.ticks_sent = m.ticks_sent;
  r.messages_sent = m.messages_sent;
  r.ticks_window = m.ticks_window;
  r.messages_window = m.messages_window;
  r.late_window = m.late_window;
  r.missed_window = m.missed_window;
  r.backlog_max = m.backlog_max;
  r.lateness = m.lateness;
  r.error_codes = m.pub_errors;
  r.disconnects = m.disconnects.load();
  r.base_seq = m.base_seq;
  r.sync_ok = m.pubs_acked == m.pubs.size() && m.subs_synced == m.subs_expected;
  for (const auto& pub : m.pubs) r.end_seq = std::max(r.end_seq, pub->sync_seq);
  r.sync_retries = m.sync_retries;
  r.drain_s = m.last_ack_ns > 0 ? static_cast<double>(m.last_ack_ns - m.end) * 1e-9 : 0.0;
  r.prices_subscribed = m.plan.channels.find("\"prices\"") != std::string::npos;
  const bool all_channels = [&] {
    for (const char* c : {"\"alerts\"", "\"cascades\"", "\"pending\"", "\"insolvency\"",
                          "\"oracle\""}) {
      if (m.plan.channels.find(c) == std::string::npos) return false;
    }
    return true;
  }();
  for (auto& t : m.subs) {
    r.tick_to_alert.merge(t->t2a);
    r.ingest_to_receive.merge(t->i2r);
    r.server_emit.merge(t->srv);
    r.outside_server.merge(t->outside);
    r.write_to_ingest.merge(t->w2i);
    r.emit_to_receive.merge(t->e2r);
    r.unattributed += t->unattributed;
    r.update_alerts_window += t->update_alerts;
    r.alerts_window += t->alerts_window;
    r.events_window += t->events_window;
    for (const auto& [code, n] : t->errors) r.error_codes[code] += n;
    for (auto& s : t->subs) {
      subscriber_report rep = s->rep;
      rep.full = all_channels && rep.index < m.plan.subscribers;
      // Take back what arrived past end_seq (a projection emitted after the last ack).
      const std::size_t kept = std::min(s->recent_n, s->recent.size());
      std::size_t past = 0;
      for (std::size_t k = 0; k < kept; ++k) {
        const std::uint64_t seq = s->recent[k];
        if (seq > r.end_seq) {
          ++past;
          --rep.in_range;
          rep.digest -= seq_digest_term(seq);
        }
      }
      rep.tail_overflow = kept == s->recent.size() && past == kept;
      r.subscribers.push_back(std::move(rep));
    }
  }
  std::sort(r.subscribers.begin(), r.subscribers.end(),
            [](const subscriber_report& a, const subscriber_report& b) { return a.index < b.index; });
  return r;
}

}  // namespace cascade::load
