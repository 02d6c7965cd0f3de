// cascade_load: the end-to-end load tool (perf/README.md). It connects price publishers
// and subscribers to a running `cascade serve` (or starts one), publishes at a fixed
// rate by the clock (open loop), checks every subscriber's stream for order and
// completeness against the engine's sequence numbers, measures tick-to-alert latency as
// the clients see it, reads the server's CPU time and memory from /proc, and writes a
// JSON report. `--soak` also judges the run against the soak criteria.
//
// Exit status: 0 when every check held; 1 when a stream check (or a soak criterion)
// failed; 2 when the run could not be made (bad option, no server).
#include <simdjson.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "perf/load/load_net.hpp"
#include "perf/load/server_proc.hpp"
#include "perf/load/text.hpp"
#include "proto/json_writer.hpp"
#include "server/ws_client.hpp"

namespace cascade::load {
namespace {

constexpr std::string_view usage = R"(usage: cascade_load (--url ws://HOST:PORT/v1/ws [--token T] [--pid PID]
                     | --spawn PATH/TO/cascade [--config FILE] [--set server.KEY=VALUE ...]
                       [--server-arg ARG ...])
                    [--publishers N] [--rate TICKS_PER_S] [--batch K]
                    [--assets SYM,SYM,...] [--vol V | --step S] [--band B]
                    [--stable-scale F] [--seed N]
                    [--subscribers M] [--channels CH,CH,...]
                    [--filtered-subscribers F --filter JSON] [--sub-threads T]
                    [--warmup S] [--duration S] [--positions-rate U] [--positions-max N]
                    [--sample-interval S] [--late-us US] [--json OUT]
                    [--soak [--max-rss-growth FRACTION]]

Publishes RATE ticks/s in all over N WebSocket connections (K ticks per `prices`
message when K > 1), paced by the clock: a message is due at its slot whatever
happened to the ones before; one written more than --late-us after its slot is late;
slots that would wait behind more than one second of backlog are skipped (missed).
Prices walk around each asset's current price so health bands are crossed and alerts
flow: log-price steps of --vol per square root of a second (default 0.002, whatever
the tick rate: per tick, vol / sqrt(ticks per second per asset)), or of --step per
tick, pulled back to a band of --band (the walk's standard deviation, default 0.03).
Assets priced within 2% of $1 (stablecoins) walk with vol and band times
--stable-scale (default 0.05): a debt coin moves every borrower's health. M subscribers take
--channels with no filter (default every channel but prices: they must see every
event the engine numbers); F more add --filter. The window is the last --duration
seconds, after --warmup. --positions-rate upserts and removes positions over REST
(POST /v1/positions, DELETE /v1/positions/ID) meanwhile. The report (JSON, to
--json or stdout) gives the ingest rate achieved, tick-to-alert latency (p50, p99,
p99.9, max), server CPU seconds per million ticks, drops, gaps and errors, and RSS
over time. The token needs the admin role for position updates (price otherwise);
--token defaults to $CASCADE_LOAD_TOKEN. With --spawn the tool makes one.
)";

struct options {
  std::string url, token, spawn, config, json_out;
  std::vector<std::string> sets, server_args;
  pid_t pid = 0;
  unsigned publishers = 1;
  double rate = 10'000.0;
  unsigned batch = 1;
  std::vector<std::string> assets;
  double vol = 0.002, step = 0.0, band = 0.03, stable_scale = 0.05;
  std::uint64_t seed = 1;
  unsigned subscribers = 10;
  std::vector<std::string> channels = {"alerts", "cascades", "pending", "insolvency", "oracle"};
  unsigned filtered = 0;
  std::string filter;
  unsigned sub_threads = 1;
  double warmup = 5.0, duration = 30.0;
  double positions_rate = 0.0;
  unsigned positions_max = 1000;
  double sample_interval = 1.0;
  double late_us = 1000.0;
  bool soak = false;
  double max_rss_growth = 0.05;
};

std::vector<std::string> strings(const std::vector<std::string_view>& v) {
  return {v.begin(), v.end()};
}

absl::StatusOr<options> parse_options(int argc, char** argv) {
  options o;
  std::vector<std::string> args(argv + 1, argv + argc);
  const auto bad = [](std::string_view name, std::string_view v, std::string_view why) {
    return absl::InvalidArgumentError(cat("--", name, " ", v, ": ", why));
  };
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string name = args[i];
    if (!name.starts_with("--")) return absl::InvalidArgumentError("unexpected argument " + name);
    name = name.substr(2);
    std::optional<std::string> inline_value;
    if (const auto eq = name.find('='); eq != std::string::npos) {
      inline_value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    if (name == "help") return absl::CancelledError("help");
    if (name == "soak") {
      o.soak = true;
      continue;
    }
    std::string v;
    if (inline_value) {
      v = *inline_value;
    } else {
      if (i + 1 >= args.size()) return absl::InvalidArgumentError("--" + name + " needs a value");
      v = args[++i];
    }
    const auto num = [&](auto& out, double lo, double hi) -> absl::Status {
      if (!parse_number(v, out)) return bad(name, v, "not a number");
      if (static_cast<double>(out) < lo || static_cast<double>(out) > hi) {
        return bad(name, v, cat("out of range [", lo, ", ", hi, "]"));
      }
      return absl::OkStatus();
    };
    absl::Status st;
    if (name == "url") o.url = v;
    else if (name == "token") o.token = v;
    else if (name == "spawn") o.spawn = v;
    else if (name == "config") o.config = v;
    else if (name == "set") o.sets.push_back(v);
    else if (name == "server-arg") o.server_args.push_back(v);
    else if (name == "json") o.json_out = v;
    else if (name == "pid") st = num(o.pid, 1, 4194304);
    else if (name == "publishers") st = num(o.publishers, 1, 1000);
    else if (name == "rate") st = num(o.rate, 1e-3, 1e8);
    else if (name == "batch") st = num(o.batch, 1, 1e6);
    else if (name == "assets") o.assets = strings(split(v, ','));
    else if (name == "step") st = num(o.step, 1e-12, 0.5);
    else if (name == "vol") st = num(o.vol, 0, 10);
    else if (name == "stable-scale") st = num(o.stable_scale, 0, 1);
    else if (name == "band") st = num(o.band, 0, 2);
    else if (name == "seed") st = num(o.seed, 0, 1.8e19);
    else if (name == "subscribers") st = num(o.subscribers, 0, 100000);
    else if (name == "channels") o.channels = strings(split(v, ','));
    else if (name == "filtered-subscribers") st = num(o.filtered, 0, 100000);
    else if (name == "filter") o.filter = v;
    else if (name == "sub-threads") st = num(o.sub_threads, 1, 64);
    else if (name == "warmup") st = num(o.warmup, 0, 86400);
    else if (name == "duration") st = num(o.duration, 0.1, 7 * 86400);
    else if (name == "positions-rate") st = num(o.positions_rate, 0, 1e5);
    else if (name == "positions-max") st = num(o.positions_max, 1, 1e7);
    else if (name == "sample-interval") st = num(o.sample_interval, 0.05, 3600);
    else if (name == "late-us") st = num(o.late_us, 0, 1e9);
    else if (name == "max-rss-growth") st = num(o.max_rss_growth, 0, 100);
    else return absl::InvalidArgumentError("unknown option --" + name);
    if (!st.ok()) return st;
  }
  if (o.url.empty() == o.spawn.empty()) {
    return absl::InvalidArgumentError("give exactly one of --url (a running server) and --spawn");
  }
  if (!o.spawn.empty() && o.pid != 0) {
    return absl::InvalidArgumentError("--pid is for --url: a spawned server's pid is known");
  }
  if (o.spawn.empty() && (!o.config.empty() || !o.sets.empty() || !o.server_args.empty())) {
    return absl::InvalidArgumentError("--config, --set and --server-arg are for --spawn");
  }
  // With --spawn and no --token, spawn_server makes one.
  if (o.spawn.empty() && o.token.empty()) {
    if (const char* t = std::getenv("CASCADE_LOAD_TOKEN")) o.token = t;
  }
  if (o.filtered > 0 && o.filter.empty()) {
    return absl::InvalidArgumentError("--filtered-subscribers needs --filter JSON");
  }
  if (!o.filter.empty()) {
    simdjson::dom::parser p;
    simdjson::dom::element e;
    if (p.parse(o.filter).get(e) != simdjson::SUCCESS || !e.is_object()) {
      return absl::InvalidArgumentError("--filter " + o.filter + ": not a JSON object");
    }
  }
  static constexpr std::string_view known[] = {"alerts",  "cascades",   "prices",
                                               "pending", "insolvency", "oracle"};
  for (const std::string& c : o.channels) {
    if (std::find(std::begin(known), std::end(known), c) == std::end(known)) {
      return absl::InvalidArgumentError(cat(
          "--channels: unknown channel '", c,
          "' (alerts, cascades, prices, pending, insolvency, oracle)"));
    }
  }
  if (o.subscribers + o.filtered == 0) {
    return absl::InvalidArgumentError("no subscribers: nothing would check the alert stream");
  }
  return o;
}

// Sums every sample of each metric family by name (labels ignored).
std::map<std::string, double> parse_metrics(std::string_view text) {
  std::map<std::string, double> out;
  for (std::string_view line : split(text, '\n')) {
    if (line.empty() || line.front() == '#') continue;
    const std::size_t sp = line.rfind(' ');
    if (sp == std::string_view::npos) continue;
    std::string_view name = line.substr(0, sp);
    if (const auto brace = name.find('{'); brace != std::string_view::npos) {
      name = name.substr(0, brace);
    }
    double v = 0.0;
    if (!parse_number(line.substr(sp + 1), v)) continue;
    out[std::string(name)] += v;
  }
  return out;
}

struct market_info {
  struct asset {
    std::string symbol;
    double price = 0.0;
  };
  struct protocol {
    std::string name;
    std::vector<std::pair<std::string, double>> thresholds;  // asset -> liquidation threshold
  };
  std::vector<asset> assets;
  std::vector<protocol> protocols;
};

absl::StatusOr<market_info> read_market(http_client& http) {
  market_info m;
  simdjson::dom::parser p;
  auto assets = http.request("GET", "/v1/assets");
  if (!assets.ok()) return assets.status();
  if (assets->status != 200) {
    return absl::UnavailableError(cat("GET /v1/assets: HTTP ", assets->status, " ",
                                               assets->body));
  }
  simdjson::dom::element doc;
  if (p.parse(assets->body).get(doc) != simdjson::SUCCESS) {
    return absl::DataLossError("GET /v1/assets: not JSON");
  }
  for (simdjson::dom::element a : doc["assets"]) {
    std::string_view sym;
    double price = 0.0;
    if (a["symbol"].get(sym) != simdjson::SUCCESS || a["price"].get(price) != simdjson::SUCCESS) {
      return absl::DataLossError("GET /v1/assets: an asset without symbol or price");
    }
    m.assets.push_back({std::string(sym), price});
  }
  auto protocols = http.request("GET", "/v1/protocols");
  if (!protocols.ok()) return protocols.status();
  if (p.parse(protocols->body).get(doc) != simdjson::SUCCESS) {
    return absl::DataLossError("GET /v1/protocols: not JSON");
  }
  for (simdjson::dom::element pr : doc["protocols"]) {
    market_info::protocol x;
    std::string_view name;
    if (pr["name"].get(name) != simdjson::SUCCESS) {
      return absl::DataLossError("GET /v1/protocols: a protocol without a name");
    }
    x.name = std::string(name);
    simdjson::dom::object as;
    if (pr["assets"].get(as) != simdjson::SUCCESS) continue;
    for (auto field : as) {
      double lt = 0.0;
      if (field.value["liquidation_threshold"].get(lt) != simdjson::SUCCESS) continue;
      x.thresholds.emplace_back(std::string(field.key), lt);
    }
    m.protocols.push_back(std::move(x));
  }
  return m;
}

// Position updates over REST: new positions near the band thresholds, re-upserts of
// them with another health target, and removals, keeping at most `max` alive.
class position_mixer {
 public:
  position_mixer(const market_info& m, unsigned max, std::uint64_t seed) : m_(m), max_(max), rng_(seed) {
    for (const auto& a : m.assets) {
      if (a.symbol == "USDC") debt_ = a.symbol;
    }
    if (debt_.empty() && !m.assets.empty()) debt_ = m.assets.front().symbol;
  }

  void step(http_client& http) {
    std::uniform_real_distribution<double> u(0.0, 1.0);
    const double r = u(rng_);
    if (!live_.empty() && (live_.size() >= max_ || r < 0.15)) {
      std::uniform_int_distribution<std::size_t> pick(0, live_.size() - 1);
      const std::size_t k = pick(rng_);
      const std::string id = live_[k];
      live_[k] = live_.back();
      live_.pop_back();
      count(http.request("DELETE", "/v1/positions/" + id), removes_);
      return;
    }
    std::string id;
    if (!live_.empty() && r < 0.40) {
      std::uniform_int_distribution<std::size_t> pick(0, live_.size() - 1);
      id = live_[pick(rng_)];
    } else {
      id = cat("load-", next_++);
      live_.push_back(id);
    }
    const std::string body = make(id);
    if (body.empty()) return;
    count(http.request("POST", "/v1/positions", body), upserts_);
  }

  [[nodiscard]] std::uint64_t upserts() const { return upserts_; }
  [[nodiscard]] std::uint64_t removes() const { return removes_; }
  [[nodiscard]] const std::map<std::string, std::uint64_t>& failures() const { return failures_; }

 private:
  double price_of(std::string_view sym) const {
    for (const auto& a : m_.assets) {
      if (a.symbol == sym) return a.price;
    }
    return 0.0;
  }
  std::string make(const std::string& id) {
    if (m_.protocols.empty()) return {};
    std::uniform_int_distribution<std::size_t> pp(0, m_.protocols.size() - 1);
    const auto& pr = m_.protocols[pp(rng_)];
    std::vector<const std::pair<std::string, double>*> coll;
    for (const auto& t : pr.thresholds) {
      if (t.first != debt_ && t.second > 0.0 && price_of(t.first) > 0.0) coll.push_back(&t);
    }
    if (coll.empty()) return {};
    std::uniform_int_distribution<std::size_t> pc(0, coll.size() - 1);
    const auto& [asset, lt] = *coll[pc(rng_)];
    std::uniform_real_distribution<double> usd(1e4, 1e6);
    std::uniform_real_distribution<double> hf(0.97, 1.15);
    const double value = usd(rng_);
    const double collateral = value / price_of(asset);
    const double debt = value * lt / hf(rng_) / std::max(price_of(debt_), 1e-12);
    proto::json_writer w;
    w.begin_object().key("positions").begin_array().begin_object();
    w.field("id", id).field("protocol", pr.name).field("owner", "0xload");
    w.key("legs").begin_array();
    w.begin_object().field("asset", asset).field("collateral", collateral).field("debt", 0.0).end_object();
    w.begin_object().field("asset", debt_).field("collateral", 0.0).field("debt", debt).end_object();
    w.end_array().end_object().end_array().end_object();
    return w.take();
  }
  void count(const absl::StatusOr<http_client::reply>& r, std::uint64_t& ok) {
    if (!r.ok()) {
      ++failures_["http_failed"];
    } else if (r->status != 200) {
      ++failures_[cat("http_", r->status)];
    } else {
      ++ok;
    }
  }

  const market_info& m_;
  unsigned max_;
  std::mt19937_64 rng_;
  std::string debt_;
  std::vector<std::string> live_;
  std::uint64_t next_ = 0;
  std::uint64_t upserts_ = 0, removes_ = 0;
  std::map<std::string, std::uint64_t> failures_;
};

struct rss_point {
  double t_s;
  std::uint64_t rss_kb;
  double cpu_s;
  std::uint64_t ticks_sent;
};

void write_latency(proto::json_writer& w, std::string_view name, const histogram& h) {
  const auto us = [](std::uint64_t ns) { return static_cast<double>(ns) * 1e-3; };
  w.key(name).begin_object();
  w.field("count", h.count());
  w.field("p50_us", us(h.quantile(0.50)));
  w.field("p90_us", us(h.quantile(0.90)));
  w.field("p99_us", us(h.quantile(0.99)));
  w.field("p999_us", us(h.quantile(0.999)));
  w.field("max_us", us(h.max()));
  w.field("min_us", us(h.min()));
  w.field("mean_us", h.mean() * 1e-3);
  w.field("negative", h.negative());
  w.end_object();
}

double metric(const std::map<std::string, double>& m, const std::string& name) {
  const auto it = m.find(name);
  return it == m.end() ? 0.0 : it->second;
}

// The machine's 1-minute load average: how shared the two cores were.
double loadavg() {
  std::ifstream f("/proc/loadavg");
  double v = 0.0;
  f >> v;
  return v;
}

int run(const options& o) {
  const auto say = [](const std::string& s) { std::cerr << "cascade_load: " << s << '\n'; };
  std::optional<spawned_server> spawned;
  ws_endpoint ep;
  std::string token = o.token;
  pid_t pid = o.pid;
  if (!o.spawn.empty()) {
    auto s = spawn_server(o.spawn, o.config, o.sets, o.server_args, 300.0);
    if (!s.ok()) {
      say(std::string(s.status().message()));
      return 2;
    }
    spawned = *s;
    ep.host = s->host;
    ep.port = s->port;
    if (token.empty()) token = s->token;
    pid = s->pid;
    say(cat("spawned server pid ", pid, " on ", ep.host, ":", ep.port));
  } else {
    auto u = server::parse_ws_url(o.url);
    if (!u.ok()) {
      say(std::string(u.status().message()));
      return 2;
    }
    ep.host = u->host;
    ep.target = u->target;
    if (!parse_number(std::string_view(u->port), ep.port)) {
      say(cat("--url ", o.url, ": bad port"));
      return 2;
    }
  }
  struct stopper {
    std::optional<spawned_server>& s;
    ~stopper() {
      if (s) stop_server(s->pid, 10.0);
    }
  } stop_on_exit{spawned};

  http_client http(ep.host, ep.port, token);
  auto mk = read_market(http);
  if (!mk.ok()) {
    say(std::string(mk.status().message()));
    return 2;
  }
  run_plan plan;
  plan.ep = ep;
  plan.token = token;
  plan.publishers = o.publishers;
  plan.rate = o.rate;
  plan.batch = o.batch;
  plan.seed = o.seed;
  plan.late_ns = static_cast<std::int64_t>(o.late_us * 1e3);
  plan.subscribers = o.subscribers;
  plan.filtered = o.filtered;
  plan.filter = o.filter;
  plan.sub_threads = o.sub_threads;
  plan.warmup_s = o.warmup;
  plan.duration_s = o.duration;
  {
    proto::json_writer w;
    w.begin_array();
    for (const auto& c : o.channels) w.value(c);
    w.end_array();
    plan.channels = w.take();
  }
  for (const auto& a : mk->assets) {
    if (!o.assets.empty() && std::find(o.assets.begin(), o.assets.end(), a.symbol) == o.assets.end()) {
      continue;
    }
    const double per_asset = o.rate / static_cast<double>(std::max<std::size_t>(
                                          1, o.assets.empty() ? mk->assets.size() : o.assets.size()));
    const double scale = std::abs(a.price - 1.0) <= 0.02 ? o.stable_scale : 1.0;
    const double step = o.step > 0.0 ? o.step : o.vol / std::sqrt(per_asset);
    plan.assets.push_back({a.symbol, a.price, step * scale, o.band * scale});
  }
  for (const auto& want : o.assets) {
    if (std::none_of(mk->assets.begin(), mk->assets.end(),
                     [&](const auto& a) { return a.symbol == want; })) {
      say(cat("--assets: the server has no asset '", want, "'"));
      return 2;
    }
  }

  load_run lr(plan);
  if (auto s = lr.connect(); !s.ok()) {
    say(std::string(s.message()));
    return 2;
  }
  say(cat(o.publishers, " publishers, ", o.subscribers + o.filtered,
                   " subscribers connected; ", o.rate, " ticks/s for ", o.warmup, " + ",
                   o.duration, " s"));

  const auto scrape = [&]() -> std::map<std::string, double> {
    auto r = http.request("GET", "/metrics");
    if (!r.ok() || r->status != 200) return {};
    return parse_metrics(r->body);
  };
  const auto proc = [&]() -> std::optional<proc_sample> {
    if (pid == 0) return std::nullopt;
    auto s = read_proc(pid);
    if (!s.ok()) return std::nullopt;
    return *s;
  };

  std::vector<rss_point> samples;
  std::optional<position_mixer> mixer;
  if (o.positions_rate > 0.0) mixer.emplace(*mk, o.positions_max, o.seed ^ 0x5eed);
  std::map<std::string, double> met_start, met_end;
  std::optional<proc_sample> cpu_start, cpu_end;
  std::vector<thread_cpu> threads_start, threads_end;
  double client_cpu_start = 0.0, client_cpu_end = 0.0;
  std::uint64_t rss_at_warmup = 0;

  const double loadavg_start = loadavg();
  lr.start();
  using clock = std::chrono::steady_clock;
  const clock::time_point t0 = lr.started();
  const auto at = [&](double s) {
    return t0 + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(s));
  };
  const clock::time_point window_at = at(o.warmup);
  clock::time_point next_sample = t0;
  clock::time_point next_pos = t0;
  const double pos_interval = o.positions_rate > 0.0 ? 1.0 / o.positions_rate : 0.0;
  std::uint64_t pos_slots = 0;
  bool window_open = false;
  clock::time_point met_start_at = window_at;
  const clock::time_point give_up = at(o.warmup + o.duration + 60.0);
  bool published = false;
  while (!published) {
    const clock::time_point now = clock::now();
    if (!window_open && now >= window_at) {
      window_open = true;
      met_start = scrape();
      met_start_at = clock::now();
      cpu_start = proc();
      if (pid != 0) threads_start = read_threads(pid);
      client_cpu_start = self_cpu_s();
      if (cpu_start) rss_at_warmup = cpu_start->rss_kb;
    }
    if (now >= next_sample) {
      const auto s = proc();
      samples.push_back({std::chrono::duration<double>(now - t0).count(), s ? s->rss_kb : 0,
                         s ? s->cpu_s : 0.0, lr.ticks_sent()});
      next_sample += std::chrono::duration_cast<clock::duration>(
          std::chrono::duration<double>(o.sample_interval));
    }
    if (mixer && now >= next_pos && now < at(o.warmup + o.duration)) {
      mixer->step(http);
      ++pos_slots;
      next_pos = at(static_cast<double>(pos_slots) * pos_interval);
    }
    clock::time_point wake = std::min(next_sample, window_open ? give_up : window_at);
    if (mixer) wake = std::min(wake, next_pos);
    if (now >= give_up) {
      say("publishers did not finish in time");
      break;
    }
    published = lr.wait_published(std::max(clock::duration::zero(), wake - clock::now()));
  }
  // What the server had taken in when the window closed, before the drain.
  const std::map<std::string, double> met_mid = scrape();
  const double mid_s = std::chrono::duration<double>(clock::now() - met_start_at).count();
  say(cat("published; synchronizing (", lr.ticks_sent(), " ticks sent)"));
  const auto sync_limit = std::chrono::seconds(120 + static_cast<int>(o.duration));
  const bool synced = lr.sync(sync_limit);
  if (!synced) {
    say(cat("the final acknowledgements did not all come back within ",
            std::chrono::duration_cast<std::chrono::seconds>(sync_limit).count(), " s"));
  }
  met_end = scrape();
  const clock::time_point met_end_at = clock::now();
  cpu_end = proc();
  if (pid != 0) threads_end = read_threads(pid);
  client_cpu_end = self_cpu_s();
  if (cpu_end) {
    samples.push_back({std::chrono::duration<double>(clock::now() - t0).count(), cpu_end->rss_kb,
                       cpu_end->cpu_s, lr.ticks_sent()});
  }
  run_results r = lr.finish();

  // --- checks ------------------------------------------------------------------------
  const std::uint64_t engine_events = r.end_seq >= r.base_seq ? r.end_seq - r.base_seq : 0;
  std::uint64_t errors = 0;
  for (const auto& [code, n] : r.error_codes) errors += n;
  if (mixer) {
    for (const auto& [code, n] : mixer->failures()) errors += n;
  }
  std::uint64_t reordered = 0, gap_msgs = 0, gap_seqs = 0, with_gaps = 0, events = 0;
  std::uint64_t full_checked = 0, full_complete = 0, lost_keepup = 0, tail_overflow = 0;
  std::map<std::string, std::vector<const subscriber_report*>> groups;
  for (const auto& s : r.subscribers) {
    reordered += s.reordered;
    gap_msgs += s.gap_messages;
    gap_seqs += s.gap_seqs;
    events += s.events;
    if (s.gap_messages > 0) ++with_gaps;
    if (s.tail_overflow) ++tail_overflow;
    const bool keeps_up = s.gap_messages == 0 && !s.disconnected;
    if (s.full && !r.prices_subscribed && keeps_up) {
      ++full_checked;
      if (s.in_range == engine_events) {
        ++full_complete;
      } else {
        lost_keepup += engine_events > s.in_range ? engine_events - s.in_range : 0;
      }
    }
    if (keeps_up) groups[s.subscription].push_back(&s);
  }
  bool groups_agree = true;
  for (const auto& [sub, members] : groups) {
    for (const auto* s : members) {
      if (s->in_range != members.front()->in_range || s->digest != members.front()->digest) {
        groups_agree = false;
      }
    }
  }
  // A full subscriber's digest must be that of every seq in the range.
  std::uint64_t expected_digest = 0;
  for (std::uint64_t q = r.base_seq + 1; q <= r.end_seq; ++q) expected_digest += seq_digest_term(q);
  bool digests_ok = true;
  for (const auto& s : r.subscribers) {
    if (s.full && !r.prices_subscribed && s.gap_messages == 0 && !s.disconnected &&
        s.digest != expected_digest) {
      digests_ok = false;
    }
  }
  const bool stream_ok = r.sync_ok && errors == 0 && r.disconnects == 0 && reordered == 0 &&
                         full_complete == full_checked && groups_agree && digests_ok &&
                         tail_overflow == 0;

  // RSS after warm-up: the end value (median of the last few samples) against the
  // sample taken when the window opened.
  std::uint64_t rss_peak = 0, rss_final = 0;
  {
    std::vector<std::uint64_t> tail;
    for (const auto& s : samples) {
      if (s.t_s >= o.warmup) rss_peak = std::max(rss_peak, s.rss_kb);
    }
    for (std::size_t i = samples.size() >= 5 ? samples.size() - 5 : 0; i < samples.size(); ++i) {
      tail.push_back(samples[i].rss_kb);
    }
    if (!tail.empty()) {
      std::sort(tail.begin(), tail.end());
      rss_final = tail[tail.size() / 2];
    }
  }
  const double rss_growth =
      rss_at_warmup > 0 ? (static_cast<double>(rss_final) / static_cast<double>(rss_at_warmup) - 1.0)
                        : 0.0;
  const bool rss_ok = pid != 0 && rss_at_warmup > 0 && rss_growth < o.max_rss_growth;

  // --- report ------------------------------------------------------------------------
  const double win = o.duration;
  const double server_ticks = metric(met_end, "cascade_ticks_received_total") -
                              metric(met_start, "cascade_ticks_received_total");
  proto::json_writer w;
  w.begin_object();
  w.field("tool", "cascade_load");
  w.key("command").begin_object();
  w.field("url", cat("ws://", ep.host, ":", ep.port, ep.target));
  w.field("spawned", spawned.has_value());
  if (!o.spawn.empty()) w.field("spawn", o.spawn).field("config", o.config);
  w.key("set").begin_array();
  for (const auto& s : o.sets) w.value(s);
  w.end_array();
  w.field("publishers", o.publishers).field("rate", o.rate).field("batch", o.batch);
  w.key("assets").begin_array();
  for (const auto& a : plan.assets) w.value(a.symbol);
  w.end_array();
  w.field("vol", o.step == 0.0 ? o.vol : 0.0).field("step", o.step);
  w.field("band", o.band).field("stable_scale", o.stable_scale).field("seed", o.seed);
  w.key("walks").begin_object();
  for (const auto& a : plan.assets) {
    w.key(a.symbol).begin_object().field("start", a.start).field("step", a.step);
    w.field("band", a.band).end_object();
  }
  w.end_object();
  w.field("subscribers", o.subscribers).field("channels", plan.channels);
  w.field("filtered_subscribers", o.filtered).field("filter", o.filter);
  w.field("sub_threads", o.sub_threads);
  w.field("warmup_s", o.warmup).field("duration_s", o.duration);
  w.field("positions_rate", o.positions_rate).field("late_us", o.late_us);
  w.field("soak", o.soak);
  w.end_object();

  w.key("ingest").begin_object();
  w.field("requested_ticks_per_s", o.rate);
  w.field("sent_ticks_per_s", static_cast<double>(r.ticks_window) / win);
  // Received by the server while the window ran (its decoder's pace) ...
  w.field("server_received_ticks_per_s", (metric(met_mid, "cascade_ticks_received_total") -
                                          metric(met_start, "cascade_ticks_received_total")) /
                                             mid_s);
  // ... and in all, the backlog drained after the window included.
  w.field("server_received_ticks_total", server_ticks);
  // Applied: what reached the book, one price per asset moved per engine cycle (the
  // cycle's ticks of one asset coalesce, the last price winning) ...
  w.field("server_applied_ticks_per_s", (metric(met_mid, "cascade_ticks_applied_total") -
                                         metric(met_start, "cascade_ticks_applied_total")) /
                                            mid_s);
  // ... and taken: every tick the engine's cycles consumed (each one fed to the oracles
  // and the volatility tracker), applied plus coalesced: the engine's ingest rate.
  const auto taken = [&](const std::map<std::string, double>& m) {
    return metric(m, "cascade_ticks_applied_total") + metric(m, "cascade_ticks_coalesced_total");
  };
  w.field("engine_taken_ticks_per_s", (taken(met_mid) - taken(met_start)) / mid_s);
  w.field("messages_per_s", static_cast<double>(r.messages_window) / win);
  w.field("ticks_window", r.ticks_window).field("ticks_total", r.ticks_sent);
  w.field("late_messages", r.late_window);
  w.field("late_fraction", r.messages_window > 0 ? static_cast<double>(r.late_window) /
                                                       static_cast<double>(r.messages_window)
                                                 : 0.0);
  w.field("missed_slots", r.missed_window);
  w.field("backlog_max_messages", r.backlog_max);
  write_latency(w, "lateness", r.lateness);
  w.field("drain_s", r.drain_s);
  w.field("sync_retries", r.sync_retries);
  w.end_object();

  w.key("latency").begin_object();
  write_latency(w, "tick_to_alert", r.tick_to_alert);
  write_latency(w, "ingest_to_receive", r.ingest_to_receive);
  write_latency(w, "server_emit_minus_ingest", r.server_emit);
  write_latency(w, "outside_server", r.outside_server);
  write_latency(w, "write_to_ingest", r.write_to_ingest);
  write_latency(w, "emit_to_receive", r.emit_to_receive);
  w.field("unattributed_alerts", r.unattributed);
  w.field("position_update_alerts", r.update_alerts_window);
  w.end_object();

  w.key("flow").begin_object();
  w.field("alerts_received_per_s", static_cast<double>(r.alerts_window) / win);
  w.field("events_received_per_s", static_cast<double>(r.events_window) / win);
  w.field("engine_alerts_per_s", (metric(met_mid, "cascade_alerts_total") -
                                  metric(met_start, "cascade_alerts_total")) / mid_s);
  w.field("engine_events_per_s", (metric(met_mid, "cascade_events_published_total") -
                                  metric(met_start, "cascade_events_published_total")) / mid_s);
  w.field("ws_messages_sent_per_s", (metric(met_mid, "cascade_ws_messages_sent_total") -
                                     metric(met_start, "cascade_ws_messages_sent_total")) / mid_s);
  w.field("projections", metric(met_end, "cascade_projections_total") -
                             metric(met_start, "cascade_projections_total"));
  w.end_object();

  // The server's own account (its Prometheus histograms' sums and counts) between the
  // two scrapes: from the window's start to the end of the drain.
  const auto delta = [&](const std::string& name) {
    return metric(met_end, name) - metric(met_start, name);
  };
  const auto mean_of = [&](const std::string& hist) {
    const double n = delta(hist + "_count");
    return n > 0 ? delta(hist + "_sum") / n : 0.0;
  };
  const double scraped_s = std::chrono::duration<double>(met_end_at - met_start_at).count();
  w.key("server").begin_object();
  w.field("scrape_interval_s", scraped_s);
  w.field("engine_cycles_per_s", delta("cascade_engine_batch_seconds_count") / scraped_s);
  w.field("engine_cycle_mean_us", mean_of("cascade_engine_batch_seconds") * 1e6);
  w.field("engine_busy_fraction", delta("cascade_engine_batch_seconds_sum") / scraped_s);
  w.field("ticks_per_cycle", delta("cascade_engine_batch_seconds_count") > 0
                                 ? server_ticks / delta("cascade_engine_batch_seconds_count")
                                 : 0.0);
  w.field("projections_per_s", delta("cascade_projections_total") / scraped_s);
  w.field("projection_mean_ms", mean_of("cascade_projection_duration_seconds") * 1e3);
  w.field("tick_to_alert_mean_us", mean_of("cascade_tick_to_alert_seconds") * 1e6);
  w.field("ticks_coalesced_per_s", delta("cascade_ticks_coalesced_total") / scraped_s);
  w.field("loadavg_start", loadavg_start).field("loadavg_end", loadavg());
  w.end_object();

  w.key("cpu").begin_object();
  if (cpu_start && cpu_end) {
    const double cpu = cpu_end->cpu_s - cpu_start->cpu_s;
    w.field("server_cpu_s", cpu);
    w.field("server_cores", cpu / std::chrono::duration<double>(met_end_at - met_start_at).count());
    w.field("server_cpu_s_per_million_ticks", server_ticks > 0 ? cpu / (server_ticks / 1e6) : 0.0);
    w.key("server_threads").begin_array();
    std::vector<std::pair<double, thread_cpu>> per;
    for (const auto& e : threads_end) {
      double before = 0.0;
      for (const auto& b : threads_start) {
        if (b.tid == e.tid) before = b.cpu_s;
      }
      per.emplace_back(e.cpu_s - before, e);
    }
    std::sort(per.begin(), per.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    for (const auto& [d, t] : per) {
      w.begin_object().field("tid", static_cast<std::int64_t>(t.tid)).field("name", t.name);
      w.field("cpu_s", d).end_object();
    }
    w.end_array();
  } else {
    w.key("server_cpu_s").null();
    w.field("note", "no server pid (--pid) to read /proc from");
  }
  w.field("client_cpu_s", client_cpu_end - client_cpu_start);
  w.field("client_cores", (client_cpu_end - client_cpu_start) /
                             std::chrono::duration<double>(met_end_at - met_start_at).count());
  w.end_object();

  w.key("rss").begin_object();
  w.field("at_warmup_kb", rss_at_warmup).field("final_kb", rss_final);
  w.field("peak_after_warmup_kb", rss_peak);
  w.field("growth_after_warmup", rss_growth);
  w.key("samples").begin_array();
  for (const auto& s : samples) {
    w.begin_object().field("t_s", s.t_s).field("rss_kb", s.rss_kb).field("cpu_s", s.cpu_s);
    w.field("ticks_sent", s.ticks_sent).end_object();
  }
  w.end_array();
  w.end_object();

  w.key("stream").begin_object();
  w.field("subscribers", static_cast<std::uint64_t>(r.subscribers.size()));
  w.field("events_received", events);
  w.field("base_seq", r.base_seq).field("end_seq", r.end_seq);
  w.field("engine_events_in_range", engine_events);
  w.field("prices_subscribed", r.prices_subscribed);
  w.field("reordered", reordered);
  w.field("gap_messages", gap_msgs).field("gap_seqs", gap_seqs);
  w.field("subscribers_with_gaps", with_gaps);
  w.field("full_subscribers_checked", full_checked);
  w.field("full_subscribers_complete", full_complete);
  w.field("lost_events_keeping_up", lost_keepup);
  w.field("groups_agree", groups_agree);
  w.field("digests_match_engine", digests_ok);
  w.field("disconnects", r.disconnects);
  w.field("synced", r.sync_ok);
  w.field("server_events_dropped", metric(met_end, "cascade_ws_events_dropped_total") -
                                       metric(met_start, "cascade_ws_events_dropped_total"));
  w.field("server_gaps_sent", metric(met_end, "cascade_ws_gaps_total") -
                                  metric(met_start, "cascade_ws_gaps_total"));
  w.key("per_subscriber").begin_array();
  for (const auto& s : r.subscribers) {
    w.begin_object().field("index", s.index).field("full", s.full).field("events", s.events);
    w.field("alerts", s.alerts).field("in_range", s.in_range).field("reordered", s.reordered);
    w.field("gap_messages", s.gap_messages).field("errors", s.errors);
    w.field("synced", s.synced).end_object();
  }
  w.end_array();
  w.end_object();

  w.key("errors").begin_object();
  w.field("total", errors);
  w.key("codes").begin_object();
  for (const auto& [code, n] : r.error_codes) w.field(code, n);
  if (mixer) {
    for (const auto& [code, n] : mixer->failures()) w.field("positions_" + code, n);
  }
  w.end_object();
  w.field("server_errors_total", metric(met_end, "cascade_errors_total") -
                                     metric(met_start, "cascade_errors_total"));
  w.end_object();

  w.key("positions").begin_object();
  w.field("upserts", mixer ? mixer->upserts() : 0).field("removes", mixer ? mixer->removes() : 0);
  w.end_object();

  w.key("verdict").begin_object();
  w.field("stream_ok", stream_ok);
  if (o.soak) {
    w.field("rss_growth_ok", rss_ok).field("max_rss_growth", o.max_rss_growth);
    w.field("soak_ok", stream_ok && rss_ok);
  }
  w.end_object();
  w.end_object();

  std::string text = w.take();
  text += '\n';
  if (o.json_out.empty() || o.json_out == "-") {
    std::cout << text;
  } else {
    std::ofstream f(o.json_out);
    f << text;
    if (!f) {
      say("cannot write " + o.json_out);
      return 2;
    }
  }
  say(cat("ingest ", static_cast<double>(r.ticks_window) / win, " ticks/s sent, ",
                   server_ticks, " ticks received; alert p50/p99/p99.9/max ",
                   static_cast<double>(r.tick_to_alert.quantile(0.5)) * 1e-3, "/",
                   static_cast<double>(r.tick_to_alert.quantile(0.99)) * 1e-3, "/",
                   static_cast<double>(r.tick_to_alert.quantile(0.999)) * 1e-3, "/",
                   static_cast<double>(r.tick_to_alert.max()) * 1e-3, " us over ",
                   r.tick_to_alert.count(), " samples; stream ", stream_ok ? "ok" : "FAILED"));
  if (!stream_ok) return 1;
  if (o.soak && !rss_ok) {
    say(cat("soak: RSS grew ", rss_growth * 100.0, "% after warm-up (limit ",
                     o.max_rss_growth * 100.0, "%)"));
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace cascade::load

int main(int argc, char** argv) {
  auto o = cascade::load::parse_options(argc, argv);
  if (!o.ok()) {
    if (absl::IsCancelled(o.status())) {
      std::cout << cascade::load::usage;
      return 0;
    }
    std::cerr << "cascade_load: " << o.status().message() << "\n" << cascade::load::usage;
    return 2;
  }
  return cascade::load::run(*o);
}
