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
  double first = 0.0, last = 0.0, low = 0.0, file_first = 0.0, file_last = 0.0, file_low = 0.0;
  double scale = 1.0;
  std::size_t rows = 0;
};

std::string utc(double ts, const char* fmt = "%Y-%m-%d %H:%M:%S") {
  const absl::Time t = absl::FromUnixNanos(static_cast<std::int64_t>(std::llround(ts * 1e9)));
  return absl::FormatTime(fmt, t, absl::UTCTimeZone());
}

std::string thousands(std::uint64_t n) {
  std::string s = std::to_string(n);
  for (std::size_t i = s.size(); i > 3; i -= 3) s.insert(i - 3, ",");
  return s;
}

std::string money(double v) {
  const double a = std::abs(v);
  if (a >= 1e9) return absl::StrFormat("$%.2fB", v / 1e9);
  if (a >= 1e6) return absl::StrFormat("$%.2fM", v / 1e6);
  if (a >= 1e3) return absl::StrFormat("$%.1fk", v / 1e3);
  return absl::StrFormat("$%.0f", v);
}

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
  std::vector<input> inputs;
  std::vector<row> rows;
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
      return fail(absl::InvalidArgumentError(absl::StrCat(
                      path,
                      ": the file does not say which asset it prices: name it with --asset "
                      "SYM (the server's assets: ",
                      asset_list(*assets), ")")),
                  exit_bad_input);
    }
    const auto sym = match_asset(name, *assets);
    if (!sym) {
      return fail(absl::InvalidArgumentError(
                      absl::StrCat(path, ": asset '", name, "' (from ", note,
                                   ") is not one of the server's assets: ", asset_list(*assets))),
                  exit_bad_input);
    }
    if (absl::AsciiStrToUpper(*sym) != absl::AsciiStrToUpper(name)) {
      absl::StrAppend(&note, ", ", name, " is ", *sym, " on the server");
    }
    inputs.push_back({path, s.format, *sym, note});
    for (const auto& p : s.points) {
      if (p.ts < o.from || p.ts > o.to) continue;
      rows.push_back({p.ts, p.ts, p.price, p.price, f, p.line});
    }
  }
  if (rows.empty()) {
    return fail(absl::InvalidArgumentError("no rows between --from and --to"), exit_bad_input);
  }
  std::stable_sort(rows.begin(), rows.end(),
                   [](const row& a, const row& b) { return a.file_ts < b.file_ts; });

  // Per asset: rebase, statistics.
  std::map<std::string, asset_stats> stats;
  for (const row& r : rows) {
    auto& st = stats[inputs[r.input].asset];
    if (st.rows++ == 0) {
      st.file_first = st.file_low = r.file_price;
      if (o.rebase) st.scale = assets->at(inputs[r.input].asset) / r.file_price;
    }
    st.file_last = r.file_price;
    st.file_low = std::min(st.file_low, r.file_price);
  }
  for (row& r : rows) r.price = r.file_price * stats[inputs[r.input].asset].scale;
  // The oracle clock never moves back and a source's older ticks are ignored: start just
  // after the clock when the series begins before it.
  double shift = 0.0;
  if (*server_now > 0.0 && rows.front().file_ts <= *server_now) {
    shift = std::ceil(*server_now - rows.front().file_ts) + 1.0;
    for (row& r : rows) r.ts = r.file_ts + shift;
  }

  for (const input& in : inputs) {
    err << "replay: " << in.path << " (" << in.format << "): " << in.asset << " (from "
        << in.asset_note << ")\n";
  }
  for (const auto& [sym, st] : stats) {
    if (o.rebase) {
      err << "replay: " << sym << " rebased x" << absl::StrFormat("%.6g", st.scale)
          << ": the first row's " << price_text(st.file_first) << " is sent as the server's "
          << price_text(st.file_first * st.scale) << ", every move kept\n";
    } else if (std::abs(st.file_first / assets->at(sym) - 1.0) > 0.25) {
      err << "replay: note: " << sym << "'s first row (" << price_text(st.file_first) << ") is "
          << percent(st.file_first / assets->at(sym) - 1.0) << " from the server's price ("
          << price_text(assets->at(sym))
          << "); --rebase replays the moves from the current price instead\n";
    }
  }
  if (shift > 0.0) {
    err << "replay: the server's oracle clock is at " << utc(*server_now)
        << " UTC, after the first row: timestamps shifted by +" << absl::StrFormat("%.0f", shift)
        << " s, spacing kept\n";
  }

  auto client = ws_client::connect(o.url, o.token, connect_timeout);
  if (!client.ok()) return fail(client.status(), exit_failure);
  ws_client& ws = **client;
  simdjson::ondemand::parser parser;
  {
    proto::json_writer jw;
    jw.begin_object().field("op", "subscribe").field("id", "subscribe");
    jw.key("channels").begin_array().value("alerts").value("cascades").end_array();
    jw.end_object();
    ws.send(jw.take());
  }

  const bool tty = &err == &std::cerr && isatty(STDERR_FILENO) == 1;
  progress bar(err, tty, rows.size());
  std::size_t next = 0, in_flight = 0, acked = 0, last_acked = 0;
  std::optional<std::size_t> refused;  // the first row the server refused
  std::string refusal;
  std::uint64_t alerts = 0, cascades = 0, gaps = 0, errors = 0, cascade_liquidated = 0;
  std::array<std::uint64_t, band_count> alerts_to{};
  // --watch: alerts are printed in groups, one per tick that caused them (a tick's
  // alerts come together, before its acknowledgement).
  std::array<std::uint64_t, band_count> pending_to{};
  std::uint64_t pending_alerts = 0;
  std::string group_cause;
  double group_price = 0.0;
  std::optional<std::size_t> group_row;
  double worst_bad_debt = 0.0;
  const auto start = clock::now();
  auto last_message = start;
  std::optional<clock::time_point> done_at;

  // When each row is due, in seconds after the start.
  std::vector<double> offset(rows.size(), 0.0);
  for (std::size_t i = 1; o.speed > 0.0 && i < rows.size(); ++i) {
    offset[i] =
        offset[i - 1] + std::min((rows[i].file_ts - rows[i - 1].file_ts) / o.speed, o.max_wait);
  }
  const auto due = [&](std::size_t i) {
    return start +
           std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(offset[i]));
  };
  const auto where = [&](std::size_t i) {
    const row& r = rows[i];
    const auto& st = stats[inputs[r.input].asset];
    return absl::StrCat(utc(r.file_ts, "%Y-%m-%d %H:%M"), " ", inputs[r.input].asset, " ",
                        price_text(r.price), " (", percent(r.file_price / st.file_first - 1.0),
                        ")");
  };
  const auto eta = [&]() {
    if (next >= rows.size()) return 0.0;
    return offset.back() - offset[next];
  };
  const auto flush_watch = [&]() {
    if (!o.watch || pending_alerts == 0) return;
    bar.clear();
    if (group_row) {
      out << where(*group_row);
    } else if (group_cause.empty()) {
      out << "(position updates)";
    } else {
      out << "(another client's tick) " << group_cause << ' ' << price_text(group_price);
    }
    out << "  alerts " << thousands(pending_alerts) << ":";
    for (std::size_t b = band_count; b-- > 0;) {
      if (pending_to[b] == 0) continue;
      out << " ->" << to_string(static_cast<band>(b)) << ' ' << thousands(pending_to[b]);
    }
    out << '\n';
    out.flush();
    pending_alerts = 0;
    pending_to.fill(0);
  };

  absl::Status failure;
  for (;;) {
    const auto now = clock::now();
    while (!refused && next < rows.size() && in_flight < o.window && due(next) <= now) {
      const row& r = rows[next];
      proto::json_writer jw;
      jw.begin_object().field("op", "price").field("id", static_cast<std::uint64_t>(next + 1));
      jw.field("asset", inputs[r.input].asset).field("price", r.price);
      jw.field("source", o.source).field("ts", r.ts).end_object();
      ws.send(jw.take());
      ++next;
      ++in_flight;
    }
    const bool sending_done = refused || next == rows.size();
    if (sending_done && in_flight == 0) {
      if (!done_at) done_at = now;
      if (now - *done_at >= linger) break;
    }
    auto deadline = now + bar_refresh;
    if (!sending_done && in_flight < o.window) deadline = std::min(deadline, due(next));
    if (done_at) deadline = std::min(deadline, *done_at + linger);
    auto msg = ws.next(deadline);
    if (!msg.ok()) {
      failure = msg.status();
      break;
    }
    if (!*msg) {
      if (in_flight > 0 && clock::now() - last_message > stall_timeout) {
        failure = absl::DeadlineExceededError(
            absl::StrCat("no answer from the server for ",
                         std::chrono::duration_cast<std::chrono::seconds>(stall_timeout).count(),
                         " s with ", in_flight, " messages unanswered"));
        break;
      }
      if (acked > 0) bar.update(acked, where(last_acked), alerts, cascades, eta());
      continue;
    }
    last_message = clock::now();
    const simdjson::padded_string text(**msg);
    auto m = decode(parser, text);
    if (!m.ok()) {
      failure = m.status();
      break;
    }
    if (m->type == "ack" && m->id) {
      if (*m->id >= 1 && *m->id <= next) {
        --in_flight;
        ++acked;
        last_acked = std::max<std::size_t>(last_acked, *m->id - 1);
        flush_watch();
      }
    } else if (m->type == "error") {
      ++errors;
      if (m->id && *m->id >= 1 && *m->id <= next) {
        --in_flight;
        const std::size_t i = *m->id - 1;
        if (!refused || i < *refused) {
          refused = i;
          refusal = absl::StrCat("the server refused ", row_name(rows[i], inputs, i), ": ",
                                 std::string(m->code), ": ", std::string(m->text));
        }
      } else {
        failure = absl::FailedPreconditionError(
            absl::StrCat("the server refused ", m->id_null ? "a message" : "the subscription", ": ",
                         std::string(m->code), ": ", std::string(m->text)));
        break;
      }
    } else if (m->type == "alert") {
      ++alerts;
      if (pending_alerts > 0 && (m->cause != group_cause || m->price != group_price)) {
        flush_watch();
      }
      if (pending_alerts == 0) {
        // The tick: the first row not yet acknowledged with this asset and price (acks
        // come in order; a tick's alerts before its ack).
        group_cause = std::string(m->cause);
        group_price = m->price;
        group_row.reset();
        for (std::size_t i = acked; i < next; ++i) {
          if (inputs[rows[i].input].asset == group_cause && rows[i].price == group_price) {
            group_row = i;
            break;
          }
        }
      }
      ++pending_alerts;
      if (auto b = parse_band(m->to)) {
        ++alerts_to[static_cast<std::size_t>(*b)];
        ++pending_to[static_cast<std::size_t>(*b)];
      }
    } else if (m->type == "cascade") {
      ++cascades;
      cascade_liquidated = std::max(cascade_liquidated, m->liquidated);
      worst_bad_debt = std::max(worst_bad_debt, m->bad_debt);
      if (o.watch) {
        flush_watch();
        bar.clear();
        out << "  cascade: " << thousands(m->liquidated) << " positions liquidated in " << m->rounds
            << (m->rounds == 1 ? " round" : " rounds") << ", bad debt " << money(m->bad_debt);
        for (const auto& [sym, st] : stats) {
          const auto it = m->amplification.find(sym);
          if (it != m->amplification.end() && it->second >= 5e-5) {
            out << ", " << sym << absl::StrFormat(" a further %.2f%%", -100.0 * it->second);
          }
        }
        out << '\n';
        out.flush();
      }
    } else if (m->type == "gap") {
      ++gaps;
      if (o.watch) {
        bar.clear();
        out << "  gap: events " << m->gap_from << " to " << m->gap_to
            << " dropped by the server (this client read too slowly)\n";
      }
    }
    if (acked > 0) bar.update(acked, where(last_acked), alerts, cascades, eta());
  }
  flush_watch();
  if (acked > 0) bar.update(acked, where(last_acked), alerts, cascades, 0.0, true);
  bar.clear();
  // From the first send to the last acknowledgement (the linger for a late cascade
  // left out).
  const double elapsed =
      std::chrono::duration<double>(done_at.value_or(clock::now()) - start).count();
  ws.close(milliseconds(2000));

  // The summary.
  out << "replayed " << acked << " of " << rows.size() << " rows in "
      << absl::StrFormat("%.1f", elapsed) << " s ("
      << (o.speed == 0.0 ? std::string("unpaced") : absl::StrFormat("%gx", o.speed)) << "), "
      << utc(rows.front().file_ts, "%Y-%m-%d %H:%M") << " to "
      << utc(rows.back().file_ts, "%Y-%m-%d %H:%M") << " UTC of the file"
      << (inputs.size() > 1 ? "s" : "") << '\n';
  out << "  sent " << next << ", acknowledged " << acked << ", errors " << errors << '\n';
  out << "  alerts " << thousands(alerts);
  if (alerts > 0) {
    out << " (to";
    const char* sep = " ";
    for (std::size_t b = band_count; b-- > 0;) {
      out << sep << to_string(static_cast<band>(b)) << ' ' << thousands(alerts_to[b]);
      sep = ", ";
    }
    out << ')';
  }
  out << ", cascades " << cascades;
  if (cascades > 0) {
    out << " (largest " << thousands(cascade_liquidated) << " positions liquidated, bad debt up to "
        << money(worst_bad_debt) << ')';
  }
  out << ", gaps " << gaps << '\n';
  auto after = server_assets(o.url, o.token);
  for (const auto& [sym, st] : stats) {
    out << "  " << sym << ": file " << price_text(st.file_first) << " -> "
        << price_text(st.file_last) << " (" << percent(st.file_last / st.file_first - 1.0)
        << ", low " << price_text(st.file_low) << ' ' << percent(st.file_low / st.file_first - 1.0)
        << ')';
    if (o.rebase) {
      out << ", sent " << price_text(st.file_first * st.scale) << " -> "
          << price_text(st.file_last * st.scale);
    }
    if (after.ok() && after->contains(sym)) {
      const double now_price = after->at(sym);
      out << "; the server's market price now " << price_text(now_price);
      if (acked == rows.size() && std::abs(now_price / (st.file_last * st.scale) - 1.0) > 1e-9) {
        out << " (not the last row's: other sources of " << sym
            << " are in its median, GET /v1/oracles)";
      }
    }
    out << '\n';
  }
  if (refused) return fail(absl::FailedPreconditionError(refusal), exit_failure);
  if (!failure.ok()) return fail(failure, exit_failure);
  return exit_ok;
}

}  // namespace cascade::server
