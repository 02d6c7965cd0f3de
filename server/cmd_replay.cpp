// cascade replay FILE... --url ws://HOST:PORT/v1/ws [--token T] [--asset SYM]
//   [--speed X] [--max-wait S] [--source NAME] [--from T] [--to T] [--rebase] [--watch]
//   [--window N]
//
// Pushes recorded price series (the CSV formats of ../shared/data: Binance klines,
// hourly prices, Chainlink rounds) into a running server over its WebSocket, one `price`
// message per row with the row's timestamp, paced at X times the rows' own spacing (0:
// as fast as the server acknowledges, with up to N messages in flight; a pause between
// two rows is cut to S seconds of wall time, timestamps unchanged). It subscribes to
// alerts and cascades and counts them; --watch prints them as they happen. A progress
// bar goes to stderr on a terminal (a line every 10% otherwise), the summary to stdout.
//
// Before sending, it asks the server (GET /v1/assets, GET /v1/oracles) for the assets,
// their prices (for --rebase: each asset's series scaled so its first row is the
// server's current price, keeping every relative move) and the oracle clock: the server
// ignores a tick older than its source's last one, so a series starting before the
// clock is shifted to start just after it, keeping its spacing.
#include <absl/strings/ascii.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_format.h>
#include <absl/time/time.h>
#include <simdjson.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <limits>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "engine/bands.hpp"
#include "proto/json_writer.hpp"
#include "proto/price_series.hpp"
#include "server/cli.hpp"
#include "server/cli_args.hpp"
#include "server/cli_commands.hpp"
#include "server/cli_format.hpp"
#include "server/ws_client.hpp"

namespace cascade::server {

namespace {

using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds connect_timeout{10000};
// No answer at all for this long while messages are in flight: the server is gone.
constexpr auto stall_timeout = std::chrono::seconds(30);
// After the last acknowledgement: time for the projection that the last ticks trigger
// (projections are rate-limited, 100 ms by default) to arrive.
constexpr auto linger = milliseconds(1000);
constexpr auto bar_refresh = milliseconds(100);

struct row {
  double ts = 0.0;       // as sent (shifted when needed)
  double file_ts = 0.0;  // as in the file
  double price = 0.0;    // as sent (rebased when asked)
  double file_price = 0.0;
  std::size_t input = 0;  // index into inputs
  std::size_t line = 0;
};

struct input {
  std::string path;
  std::string format;
  std::string asset;       // the server's symbol
  std::string asset_note;  // how it was chosen, for people
};

struct asset_stats {
  double file_first = 0.0, file_last = 0.0, file_low = 0.0;  // as in the files
  double scale = 1.0;                                        // sent = file x scale (--rebase)
  std::size_t rows = 0;
};

std::string utc(double ts, const char* fmt = "%Y-%m-%d %H:%M:%S") {
  const absl::Time t = absl::FromUnixNanos(static_cast<std::int64_t>(std::llround(ts * 1e9)));
  return absl::FormatTime(fmt, t, absl::UTCTimeZone());
}

std::string money(double v) { return "$" + usd(v); }

std::string price_text(double p) {
  if (p >= 1000.0) return absl::StrFormat("%.2f", p);
  return absl::StrFormat("%.6g", p);
}

std::string percent(double ratio) { return absl::StrFormat("%+.1f%%", ratio * 100.0); }

// --from / --to: unix seconds, or a UTC date and time.
absl::StatusOr<double> parse_time(const std::string& text, std::string_view option) {
  if (auto n = parse_number(text, option); n.ok()) return *n;
  for (const char* fmt :
       {"%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"}) {
    absl::Time t;
    std::string ignored;
    if (absl::ParseTime(fmt, text, absl::UTCTimeZone(), &t, &ignored)) {
      return absl::ToDoubleSeconds(t - absl::UnixEpoch());
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--", std::string(option), " '", text,
                   "': expected unix seconds or a UTC time YYYY-MM-DD[THH:MM[:SS]]"));
}

// The asset a file's name suggests: ETH_USD_0x... (Chainlink), WETH_usd.csv (hourly),
// binance_ethusdt_1m_... (the folder of the klines). Empty when nothing matches.
std::string asset_from_name(const std::filesystem::path& path) {
  for (const std::string& name :
       {path.filename().string(), path.parent_path().filename().string()}) {
    std::vector<std::string> tokens;
    std::string cur;
    for (const char c : name) {
      if (c == '_' || c == '-' || c == '.') {
        tokens.push_back(cur);
        cur.clear();
      } else {
        cur += c;
      }
    }
    tokens.push_back(cur);
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      const std::string up = absl::AsciiStrToUpper(tokens[i]);
      if (up == "USD" && i > 0 && !tokens[i - 1].empty()) return tokens[i - 1];
      for (const std::string_view quote : {"USDT", "USDC", "USD"}) {
        if (up.size() > quote.size() && up.ends_with(quote)) {
          return tokens[i].substr(0, up.size() - quote.size());
        }
      }
    }
  }
  return {};
}

// `name` among the server's assets: exactly, ignoring case, or as the wrapped or
// unwrapped form (WETH is ETH here, BTC is WBTC).
std::optional<std::string> match_asset(const std::string& name,
                                       const std::map<std::string, double>& assets) {
  if (assets.contains(name)) return name;
  const std::string up = absl::AsciiStrToUpper(name);
  for (const std::string& candidate : {up, up.starts_with("W") ? up.substr(1) : "W" + up}) {
    for (const auto& [sym, price] : assets) {
      if (absl::AsciiStrToUpper(sym) == candidate) return sym;
    }
  }
  return std::nullopt;
}

std::string asset_list(const std::map<std::string, double>& assets) {
  std::string s;
  for (const auto& [sym, price] : assets) absl::StrAppend(&s, s.empty() ? "" : ", ", sym);
  return s;
}

// A server answer to a GET, parsed: the JSON body of a 200, or a message with the status.
absl::StatusOr<simdjson::padded_string> get_json(const ws_url& url, std::string_view target,
                                                 const std::string& token) {
  auto r = http_get(url, target, token, connect_timeout);
  if (!r.ok()) return r.status();
  if (r->status != 200) {
    return absl::FailedPreconditionError(absl::StrCat("GET ", url.http_base(), std::string(target),
                                                      ": status ", r->status, ": ", r->body));
  }
  return simdjson::padded_string(r->body);
}

// GET /v1/assets: symbol -> market price.
absl::StatusOr<std::map<std::string, double>> server_assets(const ws_url& url,
                                                            const std::string& token) {
  auto body = get_json(url, "/v1/assets", token);
  if (!body.ok()) return body.status();
  simdjson::ondemand::parser parser;
  std::map<std::string, double> out;
  auto doc = parser.iterate(*body);
  simdjson::ondemand::array assets;
  if (doc["assets"].get_array().get(assets) != simdjson::SUCCESS) {
    return absl::InternalError("GET /v1/assets: no 'assets' array in the answer");
  }
  for (auto a : assets) {
    std::string_view sym;
    double price = 0.0;
    if (a["symbol"].get_string().get(sym) != simdjson::SUCCESS ||
        a["price"].get_double().get(price) != simdjson::SUCCESS) {
      return absl::InternalError("GET /v1/assets: an asset without symbol or price");
    }
    out.emplace(std::string(sym), price);
  }
  return out;
}

// GET /v1/oracles: the oracle clock (0 before the first tick).
absl::StatusOr<double> server_clock(const ws_url& url, const std::string& token) {
  auto body = get_json(url, "/v1/oracles", token);
  if (!body.ok()) return body.status();
  simdjson::ondemand::parser parser;
  auto doc = parser.iterate(*body);
  double now = 0.0;
  if (doc["now"].get_double().get(now) != simdjson::SUCCESS) {
    return absl::InternalError("GET /v1/oracles: no 'now' in the answer");
  }
  return now;
}

// Progress on stderr: a bar redrawn in place on a terminal, else a line every 10%.
class progress {
 public:
  progress(std::ostream& err, bool tty, std::size_t total) : err_(err), tty_(tty), total_(total) {}

  void update(std::size_t acked, const std::string& where, std::uint64_t alerts,
              std::uint64_t cascades, double eta_s, bool force = false) {
    const auto now = clock::now();
    if (tty_) {
      if (!force && now - last_ < bar_refresh) return;
      last_ = now;
      constexpr std::size_t width = 28;
      const std::size_t fill = total_ == 0 ? width : acked * width / total_;
      std::string bar(fill, '#');
      bar.append(width - fill, '.');
      err_ << "\r\033[K[" << bar << "] " << acked << '/' << total_ << "  " << where << "  alerts "
           << thousands(alerts) << "  cascades " << cascades;
      if (eta_s > 0.5) err_ << absl::StrFormat("  %.0f s left", eta_s);
      err_.flush();
      shown_ = true;
    } else {
      const std::size_t step = total_ == 0 ? 10 : acked * 10 / total_;
      if (step <= step_) return;  // `force` is for the bar: a line per 10% is enough
      step_ = step;
      err_ << "replay: " << acked << '/' << total_ << " rows ("
           << (total_ ? acked * 100 / total_ : 100) << "%), " << where << ", alerts "
           << thousands(alerts) << ", cascades " << cascades << '\n';
    }
  }
  // Clears the bar before a line goes to the terminal.
  void clear() {
    if (tty_ && shown_) {
      err_ << "\r\033[K";
      err_.flush();
      shown_ = false;
    }
  }

 private:
  std::ostream& err_;
  bool tty_;
  std::size_t total_;
  clock::time_point last_{};
  std::size_t step_ = 0;
  bool shown_ = false;
};

struct options {
  std::vector<std::string> files;
  ws_url url;
  std::string token;
  std::optional<std::string> asset;
  double speed = 1.0;
  double max_wait = std::numeric_limits<double>::infinity();  // seconds of wall time
  std::string source = "replay";
  double from = -std::numeric_limits<double>::infinity();
  double to = std::numeric_limits<double>::infinity();
  bool rebase = false;
  bool watch = false;
  std::size_t window = 64;
};

absl::StatusOr<options> parse_options(command_args args) {
  constexpr std::string_view known[] = {"url", "token",  "asset",  "speed", "source",  "from",
                                        "to",  "window", "rebase", "watch", "max-wait"};
  constexpr std::string_view flags[] = {"rebase", "watch"};
  auto a = cli_args::parse(args, known, flags);
  if (!a.ok()) return a.status();
  options o;
  o.files = a->positional();
  if (o.files.empty()) return absl::InvalidArgumentError("give at least one price series FILE");
  const auto url = a->get("url");
  if (!url) return absl::InvalidArgumentError("--url ws://HOST:PORT/v1/ws is required");
  auto u = parse_ws_url(*url);
  if (!u.ok()) return u.status();
  o.url = *u;
  if (auto t = a->get("token")) {
    o.token = *t;
  } else if (const char* env = std::getenv("CASCADE_TOKEN"); env != nullptr) {
    o.token = env;
  }
  o.asset = a->get("asset");
  auto speed = a->number("speed", 1.0);
  if (!speed.ok()) return speed.status();
  if (!(*speed >= 0.0)) return absl::InvalidArgumentError("--speed must be >= 0 (0: no pacing)");
  o.speed = *speed;
  auto max_wait = a->number("max-wait", std::numeric_limits<double>::infinity());
  if (!max_wait.ok()) return max_wait.status();
  if (!(*max_wait >= 0.0)) return absl::InvalidArgumentError("--max-wait must be >= 0 seconds");
  o.max_wait = *max_wait;
  if (auto s = a->get("source")) {
    if (s->empty() || s->size() > 128) {
      return absl::InvalidArgumentError("--source must have 1 to 128 bytes");
    }
    o.source = *s;
  }
  if (auto f = a->get("from")) {
    auto t = parse_time(*f, "from");
    if (!t.ok()) return t.status();
    o.from = *t;
  }
  if (auto f = a->get("to")) {
    auto t = parse_time(*f, "to");
    if (!t.ok()) return t.status();
    o.to = *t;
  }
  if (o.from > o.to) return absl::InvalidArgumentError("--from is after --to");
  auto window = a->count("window", 64, 1, 100000);
  if (!window.ok()) return window.status();
  o.window = *window;
  o.rebase = a->has("rebase");
  o.watch = a->has("watch");
  return o;
}

// What the server sent, as far as the replay cares.
struct message {
  std::string_view type;
  std::optional<std::uint64_t> id;  // numeric ids are rows (1-based)
  bool id_null = true;
  std::string_view code, text;  // error
  std::string_view to;          // alert: the band it went to
  std::string_view cause;       // alert: the asset whose tick caused it (empty: null)
  double price = 0.0;           // alert: that tick's price
  std::uint64_t liquidated = 0, rounds = 0, gap_from = 0, gap_to = 0;
  double bad_debt = 0.0;
  std::map<std::string, double, std::less<>> amplification;  // cascade: per asset
};

// Reads a field of a type it may not have; a missing or mistyped field leaves `out`.
template <class R, class T>
bool got(R&& result, T& out) {
  return std::forward<R>(result).get(out) == simdjson::SUCCESS;
}

absl::StatusOr<message> decode(simdjson::ondemand::parser& parser,
                               const simdjson::padded_string& text) {
  message m;
  auto doc = parser.iterate(text);
  simdjson::ondemand::object obj;
  if (doc.get_object().get(obj) != simdjson::SUCCESS) {
    return absl::InternalError("the server sent a message that is not a JSON object");
  }
  for (auto field : obj) {
    std::string_view key;
    if (field.unescaped_key().get(key) != simdjson::SUCCESS) break;
    auto v = field.value();
    if (key == "type") {
      got(v.get_string(), m.type);
    } else if (key == "id") {
      std::uint64_t id = 0;
      if (v.get_uint64().get(id) == simdjson::SUCCESS) {
        m.id = id;
        m.id_null = false;
      } else {
        bool is_null = false;
        got(v.is_null(), is_null);
        m.id_null = is_null;
      }
    } else if (key == "code") {
      got(v.get_string(), m.code);
    } else if (key == "message") {
      got(v.get_string(), m.text);
    } else if (key == "to") {
      if (v.get_string().get(m.to) != simdjson::SUCCESS) {
        got(v.get_uint64(), m.gap_to);
      }
    } else if (key == "cause") {
      got(v.get_string(), m.cause);
    } else if (key == "price") {
      got(v.get_double(), m.price);
    } else if (key == "from") {
      got(v.get_uint64(), m.gap_from);
    } else if (key == "positions_liquidated") {
      got(v.get_uint64(), m.liquidated);
    } else if (key == "rounds") {
      got(v.get_uint64(), m.rounds);
    } else if (key == "bad_debt_usd" || key == "amplification") {
      simdjson::ondemand::object per;
      if (v.get_object().get(per) != simdjson::SUCCESS) continue;
      for (auto f : per) {
        std::string_view k;
        double x = 0.0;
        if (f.unescaped_key().get(k) != simdjson::SUCCESS) break;
        if (f.value().get_double().get(x) != simdjson::SUCCESS) continue;
        if (key == "bad_debt_usd") {
          m.bad_debt += x;
        } else {
          m.amplification.emplace(std::string(k), x);
        }
      }
    }
  }
  if (m.type.empty()) return absl::InternalError("the server sent a message without a type");
  return m;
}

std::string row_name(const row& r, const std::vector<input>& inputs, std::size_t index) {
  const input& in = inputs[r.input];
  return absl::StrCat("row ", index + 1, " (", std::filesystem::path(in.path).filename().string(),
                      ":", r.line, ", ", in.asset, " ", price_text(r.price), " at ", utc(r.file_ts),
                      " UTC)");
}

// What will be sent: the rows of every file in time order, each with its asset.
struct plan {
  std::vector<input> inputs;
  std::vector<row> rows;
  std::map<std::string, asset_stats> stats;  // by the server's symbol
  double shift = 0.0;  // seconds added to every timestamp (past the oracle clock)
};

absl::StatusOr<plan> make_plan(const options& o, const std::vector<proto::price_series>& series,
                               const std::map<std::string, double>& assets, double server_now) {
  plan p;
  for (std::size_t f = 0; f < o.files.size(); ++f) {
    const std::string& path = o.files[f];
    const proto::price_series& s = series[f];
    std::string name, note;
    if (o.asset) {
      name = *o.asset;
      note = "--asset";
    } else if (!s.symbol.empty()) {
      name = s.symbol;
      note = "the file's symbol column";
    } else if (name = asset_from_name(path); !name.empty()) {
      note = "the file's name";
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(path,
                       ": the file does not say which asset it prices: name it with --asset "
                       "SYM (the server's assets: ",
                       asset_list(assets), ")"));
    }
    const auto sym = match_asset(name, assets);
    if (!sym) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": asset '", name, "' (from ", note,
                       ") is not one of the server's assets: ", asset_list(assets)));
    }
    if (absl::AsciiStrToUpper(*sym) != absl::AsciiStrToUpper(name)) {
      absl::StrAppend(&note, ", ", name, " is ", *sym, " on the server");
    }
    p.inputs.push_back({path, s.format, *sym, note});
    for (const auto& pt : s.points) {
      if (pt.ts < o.from || pt.ts > o.to) continue;
      p.rows.push_back({pt.ts, pt.ts, pt.price, pt.price, f, pt.line});
    }
  }
  if (p.rows.empty()) return absl::InvalidArgumentError("no rows between --from and --to");
  std::stable_sort(p.rows.begin(), p.rows.end(),
                   [](const row& a, const row& b) { return a.file_ts < b.file_ts; });

  for (const row& r : p.rows) {
    const std::string& sym = p.inputs[r.input].asset;
    auto& st = p.stats[sym];
    if (st.rows++ == 0) {
      st.file_first = st.file_low = r.file_price;
      if (o.rebase) st.scale = assets.at(sym) / r.file_price;
    }
    st.file_last = r.file_price;
    st.file_low = std::min(st.file_low, r.file_price);
  }
  for (row& r : p.rows) r.price = r.file_price * p.stats[p.inputs[r.input].asset].scale;
  // The oracle clock never moves back and a source's older ticks are ignored: start just
  // after the clock when the series begins before it.
  if (server_now > 0.0 && p.rows.front().file_ts <= server_now) {
    p.shift = std::ceil(server_now - p.rows.front().file_ts) + 1.0;
    for (row& r : p.rows) r.ts = r.file_ts + p.shift;
  }
  return p;
}

// Says on stderr what the plan does with the files.
void describe(const plan& p, const options& o, const std::map<std::string, double>& assets,
              double server_now, std::ostream& err) {
  for (const input& in : p.inputs) {
    err << "replay: " << in.path << " (" << in.format << "): " << in.asset << " (from "
        << in.asset_note << ")\n";
  }
  for (const auto& [sym, st] : p.stats) {
    const double now = assets.at(sym);
    if (o.rebase) {
      err << "replay: " << sym << " rebased x" << absl::StrFormat("%.6g", st.scale)
          << ": the first row's " << price_text(st.file_first) << " is sent as the server's "
          << price_text(st.file_first * st.scale) << ", every move kept\n";
    } else if (std::abs(st.file_first / now - 1.0) > 0.25) {
      err << "replay: note: " << sym << "'s first row (" << price_text(st.file_first) << ") is "
          << percent(st.file_first / now - 1.0) << " from the server's price (" << price_text(now)
          << "); --rebase replays the moves from the current price instead\n";
    }
  }
  if (p.shift > 0.0) {
    err << "replay: the server's oracle clock is at " << utc(server_now)
        << " UTC, after the first row: timestamps shifted by +" << absl::StrFormat("%.0f", p.shift)
        << " s, spacing kept\n";
  }
}

// One replay over one connection: sends the rows when they are due, keeps at most
// `window` unanswered, reads acks, errors and events, draws the progress, and prints
// --watch lines. Calling thread only.
class session {
 public:
  session(const options& o, const plan& p, ws_client& ws, std::ostream& out, std::ostream& err)
      : o_(o),
        p_(p),
        ws_(ws),
        out_(out),
        bar_(err, &err == &std::cerr && isatty(STDERR_FILENO) == 1, p.rows.size()),
        offset_(p.rows.size(), 0.0) {
    // When each row is due, in seconds after the start.
    for (std::size_t i = 1; o.speed > 0.0 && i < p.rows.size(); ++i) {
      offset_[i] = offset_[i - 1] +
                   std::min((p.rows[i].file_ts - p.rows[i - 1].file_ts) / o.speed, o.max_wait);
    }
  }

  // Runs to the end (or the first refusal, or a failure of the connection, returned).
  absl::Status run();
  void summary(const absl::StatusOr<std::map<std::string, double>>& after) const;
  [[nodiscard]] const std::string& refusal() const { return refusal_; }

 private:
  [[nodiscard]] clock::time_point due(std::size_t i) const {
    return start_ +
           std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(offset_[i]));
  }
  void send_due(clock::time_point now);
  // false: a failure (in failure).
  bool on_message(const message& m);
  void on_alert(const message& m);
  void on_cascade(const message& m);
  void flush_watch();
  void draw(bool last = false) {
    if (acked_ == 0) return;
    const double eta = next_ >= p_.rows.size() || last ? 0.0 : offset_.back() - offset_[next_];
    bar_.update(acked_, where(last_acked_), alerts_, cascades_, eta, last);
  }
  [[nodiscard]] std::string where(std::size_t i) const {
    const row& r = p_.rows[i];
    const auto& st = p_.stats.at(p_.inputs[r.input].asset);
    return absl::StrCat(utc(r.file_ts, "%Y-%m-%d %H:%M"), " ", p_.inputs[r.input].asset, " ",
                        price_text(r.price), " (", percent(r.file_price / st.file_first - 1.0),
                        ")");
  }

  const options& o_;
  const plan& p_;
  ws_client& ws_;
  std::ostream& out_;
  progress bar_;
  std::vector<double> offset_;
  clock::time_point start_{};
  std::optional<clock::time_point> done_at_;  // the last answer came
  absl::Status failure_;

  std::size_t next_ = 0, in_flight_ = 0, acked_ = 0, last_acked_ = 0;
  std::optional<std::size_t> refused_;  // the first row the server refused
  std::string refusal_;
  std::uint64_t alerts_ = 0, cascades_ = 0, gaps_ = 0, errors_ = 0, largest_cascade_ = 0;
  double worst_bad_debt_ = 0.0;
  std::array<std::uint64_t, band_count> alerts_to_{};
  // --watch: alerts are printed in groups, one per tick that caused them (a tick's
  // alerts come together, before its acknowledgement).
  std::array<std::uint64_t, band_count> group_to_{};
  std::uint64_t group_alerts_ = 0;
  std::string group_cause_;
  double group_price_ = 0.0;
  std::optional<std::size_t> group_row_;
};

void session::send_due(clock::time_point now) {
  while (!refused_ && next_ < p_.rows.size() && in_flight_ < o_.window && due(next_) <= now) {
    const row& r = p_.rows[next_];
    proto::json_writer jw;
    jw.begin_object().field("op", "price").field("id", static_cast<std::uint64_t>(next_ + 1));
    jw.field("asset", p_.inputs[r.input].asset).field("price", r.price);
    jw.field("source", o_.source).field("ts", r.ts).end_object();
    ws_.send(jw.take());
    ++next_;
    ++in_flight_;
  }
}

absl::Status session::run() {
  {
    proto::json_writer jw;
    jw.begin_object().field("op", "subscribe").field("id", "subscribe");
    jw.key("channels").begin_array().value("alerts").value("cascades").end_array();
    jw.end_object();
    ws_.send(jw.take());
  }
  simdjson::ondemand::parser parser;
  start_ = clock::now();
  auto last_message = start_;
  for (;;) {
    const auto now = clock::now();
    send_due(now);
    const bool sending_done = refused_ || next_ == p_.rows.size();
    if (sending_done && in_flight_ == 0) {
      if (!done_at_) done_at_ = now;
      if (now - *done_at_ >= linger) break;
    }
    auto deadline = now + bar_refresh;
    if (!sending_done && in_flight_ < o_.window) deadline = std::min(deadline, due(next_));
    if (done_at_) deadline = std::min(deadline, *done_at_ + linger);
    auto msg = ws_.next(deadline);
    if (!msg.ok()) {
      failure_ = msg.status();
      break;
    }
    if (!*msg) {
      if (in_flight_ > 0 && clock::now() - last_message > stall_timeout) {
        failure_ = absl::DeadlineExceededError(
            absl::StrCat("no answer from the server for ",
                         std::chrono::duration_cast<std::chrono::seconds>(stall_timeout).count(),
                         " s with ", in_flight_, " messages unanswered"));
        break;
      }
      draw();
      continue;
    }
    last_message = clock::now();
    const simdjson::padded_string text(**msg);
    auto m = decode(parser, text);
    if (!m.ok()) {
      failure_ = m.status();
      break;
    }
    if (!on_message(*m)) break;
    draw();
  }
  flush_watch();
  draw(true);
  bar_.clear();
  if (!done_at_) done_at_ = clock::now();
  return failure_;
}

bool session::on_message(const message& m) {
  if (m.type == "ack" && m.id) {
    if (*m.id >= 1 && *m.id <= next_) {
      --in_flight_;
      ++acked_;
      last_acked_ = std::max<std::size_t>(last_acked_, *m.id - 1);
      flush_watch();
    }
  } else if (m.type == "error") {
    ++errors_;
    if (!m.id || *m.id < 1 || *m.id > next_) {
      failure_ = absl::FailedPreconditionError(
          absl::StrCat("the server refused ", m.id_null ? "a message" : "the subscription", ": ",
                       std::string(m.code), ": ", std::string(m.text)));
      return false;
    }
    --in_flight_;
    const std::size_t i = *m.id - 1;
    if (!refused_ || i < *refused_) {
      refused_ = i;
      refusal_ = absl::StrCat("the server refused ", row_name(p_.rows[i], p_.inputs, i), ": ",
                              std::string(m.code), ": ", std::string(m.text));
    }
  } else if (m.type == "alert") {
    on_alert(m);
  } else if (m.type == "cascade") {
    on_cascade(m);
  } else if (m.type == "gap") {
    ++gaps_;
    if (o_.watch) {
      bar_.clear();
      out_ << "  gap: events " << m.gap_from << " to " << m.gap_to
           << " dropped by the server (this client read too slowly)\n";
    }
  }
  return true;
}

void session::on_alert(const message& m) {
  ++alerts_;
  if (group_alerts_ > 0 && (m.cause != group_cause_ || m.price != group_price_)) flush_watch();
  if (group_alerts_ == 0) {
    // The tick: the first row not yet acknowledged with this asset and price (acks come
    // in order; a tick's alerts before its ack).
    group_cause_ = std::string(m.cause);
    group_price_ = m.price;
    group_row_.reset();
    for (std::size_t i = acked_; i < next_; ++i) {
      if (p_.inputs[p_.rows[i].input].asset == group_cause_ && p_.rows[i].price == group_price_) {
        group_row_ = i;
        break;
      }
    }
  }
  ++group_alerts_;
  if (auto b = parse_band(m.to)) {
    ++alerts_to_[static_cast<std::size_t>(*b)];
    ++group_to_[static_cast<std::size_t>(*b)];
  }
}

void session::on_cascade(const message& m) {
  ++cascades_;
  largest_cascade_ = std::max(largest_cascade_, m.liquidated);
  worst_bad_debt_ = std::max(worst_bad_debt_, m.bad_debt);
  if (!o_.watch) return;
  flush_watch();
  bar_.clear();
  out_ << "  cascade: " << thousands(m.liquidated) << " positions liquidated in " << m.rounds
       << (m.rounds == 1 ? " round" : " rounds") << ", bad debt " << money(m.bad_debt);
  for (const auto& [sym, st] : p_.stats) {
    const auto it = m.amplification.find(sym);
    if (it != m.amplification.end() && it->second >= 5e-5) {
      out_ << ", " << sym << absl::StrFormat(" a further %.2f%%", -100.0 * it->second);
    }
  }
  out_ << '\n';
  out_.flush();
}

void session::flush_watch() {
  if (!o_.watch || group_alerts_ == 0) return;
  bar_.clear();
  if (group_row_) {
    out_ << where(*group_row_);
  } else if (group_cause_.empty()) {
    out_ << "(position updates)";
  } else {
    out_ << "(another client's tick) " << group_cause_ << ' ' << price_text(group_price_);
  }
  out_ << "  alerts " << thousands(group_alerts_) << ":";
  for (std::size_t b = band_count; b-- > 0;) {
    if (group_to_[b] == 0) continue;
    out_ << " ->" << to_string(static_cast<band>(b)) << ' ' << thousands(group_to_[b]);
  }
  out_ << '\n';
  out_.flush();
  group_alerts_ = 0;
  group_to_.fill(0);
}

void session::summary(const absl::StatusOr<std::map<std::string, double>>& after) const {
  // From the first send to the last answer (the linger for a late cascade left out).
  const double elapsed = std::chrono::duration<double>(*done_at_ - start_).count();
  const auto& rows = p_.rows;
  out_ << "replayed " << acked_ << " of " << rows.size() << " rows in "
       << absl::StrFormat("%.1f", elapsed) << " s ("
       << (o_.speed == 0.0 ? std::string("unpaced") : absl::StrFormat("%gx", o_.speed)) << "), "
       << utc(rows.front().file_ts, "%Y-%m-%d %H:%M") << " to "
       << utc(rows.back().file_ts, "%Y-%m-%d %H:%M") << " UTC of the file"
       << (p_.inputs.size() > 1 ? "s" : "") << '\n';
  out_ << "  sent " << next_ << ", acknowledged " << acked_ << ", errors " << errors_ << '\n';
  out_ << "  alerts " << thousands(alerts_);
  if (alerts_ > 0) {
    out_ << " (to";
    const char* sep = " ";
    for (std::size_t b = band_count; b-- > 0;) {
      out_ << sep << to_string(static_cast<band>(b)) << ' ' << thousands(alerts_to_[b]);
      sep = ", ";
    }
    out_ << ')';
  }
  out_ << ", cascades " << cascades_;
  if (cascades_ > 0) {
    out_ << " (largest " << thousands(largest_cascade_) << " positions liquidated, bad debt up to "
         << money(worst_bad_debt_) << ')';
  }
  out_ << ", gaps " << gaps_ << '\n';
  for (const auto& [sym, st] : p_.stats) {
    out_ << "  " << sym << ": file " << price_text(st.file_first) << " -> "
         << price_text(st.file_last) << " (" << percent(st.file_last / st.file_first - 1.0)
         << ", low " << price_text(st.file_low) << ' ' << percent(st.file_low / st.file_first - 1.0)
         << ')';
    if (o_.rebase) {
      out_ << ", sent " << price_text(st.file_first * st.scale) << " -> "
           << price_text(st.file_last * st.scale);
    }
    if (after.ok() && after->contains(sym)) {
      const double now = after->at(sym);
      out_ << "; the server's market price now " << price_text(now);
      if (acked_ == rows.size() && std::abs(now / (st.file_last * st.scale) - 1.0) > 1e-9) {
        out_ << " (not the last row's: other sources of " << sym
             << " are in its median, GET /v1/oracles)";
      }
    }
    out_ << '\n';
  }
}

}  // namespace

int cmd_replay(command_args args, std::ostream& out, std::ostream& err) {
  const auto fail = [&](const absl::Status& s, int code) {
    err << "cascade replay: " << s.message() << '\n';
    return code;
  };
  auto opt = parse_options(args);
  if (!opt.ok()) return fail(opt.status(), exit_bad_input);
  const options& o = *opt;

  // The files, before anything goes to the server.
  std::vector<proto::price_series> series;
  for (const std::string& path : o.files) {
    auto s = proto::load_price_series(path);
    if (!s.ok()) return fail(s.status(), exit_bad_input);
    series.push_back(*std::move(s));
  }
  // The server's assets and clock.
  auto assets = server_assets(o.url, o.token);
  if (!assets.ok()) return fail(assets.status(), exit_failure);
  auto server_now = server_clock(o.url, o.token);
  if (!server_now.ok()) return fail(server_now.status(), exit_failure);
  auto p = make_plan(o, series, *assets, *server_now);
  if (!p.ok()) return fail(p.status(), exit_bad_input);
  describe(*p, o, *assets, *server_now, err);

  auto client = ws_client::connect(o.url, o.token, connect_timeout);
  if (!client.ok()) return fail(client.status(), exit_failure);
  session replay(o, *p, **client, out, err);
  const absl::Status failure = replay.run();
  (*client)->close(milliseconds(2000));
  replay.summary(server_assets(o.url, o.token));
  if (!replay.refusal().empty()) {
    return fail(absl::FailedPreconditionError(replay.refusal()), exit_failure);
  }
  if (!failure.ok()) return fail(failure, exit_failure);
  return exit_ok;
}

}  // namespace cascade::server
