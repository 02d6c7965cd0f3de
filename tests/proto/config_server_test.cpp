// The [server] table: every key of server_settings decodes with its range checked, the
// text overrides (--set, CASCADE_SERVER_KEY) apply the same checks, and tokens come from
// [[server.tokens]] or CASCADE_TOKENS without ever showing up in a message.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <string>

#include "proto/config.hpp"
#include "support/fixtures.hpp"

namespace {

using cascade::proto::parse_config;
using cascade::proto::role;
using cascade::proto::server_settings;
using cascade::testing::must;

// Everything but [server].
constexpr std::string_view sections = cascade::testing::minimal_config_toml;

// A config whose [server] table is `server` (line 2 onwards).
std::string with_server(std::string_view server) {
  return "[server]\n" + std::string(server) + "\n" + std::string(sections);
}

std::string message_of(std::string_view server) {
  const auto r = parse_config(with_server(server), "c.toml", "");
  REQUIRE_FALSE(r.ok());
  return std::string(r.status().message());
}

// Sets an environment variable for one scope.
class scoped_env {
 public:
  scoped_env(const char* name, const char* value) : name_(name) { ::setenv(name, value, 1); }
  ~scoped_env() { ::unsetenv(name_); }
  scoped_env(const scoped_env&) = delete;
  scoped_env& operator=(const scoped_env&) = delete;

 private:
  const char* name_;
};

}  // namespace

TEST_CASE("every [server] key decodes", "[proto][config]") {
  scoped_env env("CASCADE_TEST_PRICE_TOKEN", "env-secret-1");
  const auto cfg = must(parse_config(with_server(R"(
bind = "0.0.0.0"
port = 0
io_threads = 4
anonymous_role = "none"
max_connections = 10
max_body_bytes = 1024
max_frame_bytes = 1073741824
max_batch = 1
send_queue = 10000000
ring_events = 100000000
inbox_capacity = 16
projection_interval_ms = 0
volatility_half_life_hours = 12
risk_horizon_hours = 0.5

[[server.tokens]]
role = "admin"
token = "literal-admin"

[[server.tokens]]
role = "price"
token_env = "CASCADE_TEST_PRICE_TOKEN"
)"),
                                     "c.toml", ""));
  const server_settings& s = cfg.server;
  CHECK(s.bind == "0.0.0.0");
  CHECK(s.port == 0);
  CHECK(s.io_threads == 4);
  CHECK(s.anonymous == role::none);
  CHECK(s.max_connections == 10);
  CHECK(s.max_body_bytes == 1024);
  CHECK(s.max_frame_bytes == (1u << 30));
  CHECK(s.max_batch == 1);
  CHECK(s.send_queue == 10'000'000);
  CHECK(s.ring_events == 100'000'000);
  CHECK(s.inbox_capacity == 16);
  CHECK(s.projection_interval_ms == 0);
  CHECK(s.volatility_half_life_hours == 12.0);  // an integer where a float is expected
  CHECK(s.risk_horizon_hours == 0.5);
  REQUIRE(s.tokens.size() == 2);
  CHECK(s.tokens[0].token == "literal-admin");
  CHECK(s.tokens[0].grants == role::admin);
  CHECK(s.tokens[1].token == "env-secret-1");
  CHECK(s.tokens[1].grants == role::price);
}

TEST_CASE("[server] keys left out keep their defaults", "[proto][config]") {
  const auto cfg = must(parse_config(with_server("port = 9000"), "c.toml", ""));
  const server_settings defaults;
  const server_settings& s = cfg.server;
  CHECK(s.port == 9000);
  CHECK(s.bind == defaults.bind);
  CHECK(s.io_threads == 1);
  CHECK(s.anonymous == role::read);
  CHECK(s.tokens.empty());
  CHECK(s.max_connections == 1024);
  CHECK(s.max_body_bytes == 8u << 20);
  CHECK(s.max_frame_bytes == 1u << 20);
  CHECK(s.max_batch == 10'000);
  CHECK(s.send_queue == 32768);
  CHECK(s.ring_events == 65'536);
  CHECK(s.inbox_capacity == 65'536);
  CHECK(s.projection_interval_ms == 100);
  CHECK(s.volatility_half_life_hours == 24.0);
  CHECK(s.risk_horizon_hours == 24.0);
  // The shipped default config sets none of the new keys.
  const auto shipped = must(
      cascade::proto::load_config_file(std::string(CASCADE_SOURCE_DIR) + "/config/default.toml"));
  CHECK(shipped.server.anonymous == role::read);
  CHECK(shipped.server.tokens.empty());
  CHECK(shipped.server.max_batch == defaults.max_batch);
}

TEST_CASE("[server] values out of range are refused the same from TOML and from text",
          "[proto][config]") {
  struct bad_value {
    const char* key;
    const char* toml;  // as written in TOML
    const char* text;  // as given to --set
    const char* reason;
  };
  const bad_value cases[] = {
      {"port", "70000", "70000", "port 70000 is outside [0, 65535] (0 picks a free port)"},
      {"io_threads", "0", "0", "io_threads 0 is outside [1, 64]"},
      {"io_threads", "65", "65", "io_threads 65 is outside [1, 64]"},
      {"max_connections", "0", "0", "max_connections 0 is outside [1, 1000000]"},
      {"max_connections", "1000001", "1000001", "max_connections 1000001 is outside [1, 1000000]"},
      {"max_body_bytes", "1023", "1023", "max_body_bytes 1023 is outside [1024, 1073741824]"},
      {"max_frame_bytes", "1073741825", "1073741825",
       "max_frame_bytes 1073741825 is outside [1024, 1073741824]"},
      {"max_batch", "0", "0", "max_batch 0 is outside [1, 10000000]"},
      {"send_queue", "10000001", "10000001", "send_queue 10000001 is outside [1, 10000000]"},
      {"ring_events", "0", "0", "ring_events 0 is outside [1, 100000000]"},
      {"inbox_capacity", "15", "15", "inbox_capacity 15 is outside [16, 100000000]"},
      {"projection_interval_ms", "-1", "-1", "projection_interval_ms -1 is outside [0, 3600000]"},
      {"projection_interval_ms", "3600001", "3600001",
       "projection_interval_ms 3600001 is outside [0, 3600000]"},
      {"volatility_half_life_hours", "0", "0",
       "volatility_half_life_hours must be a finite number > 0, got 0"},
      {"risk_horizon_hours", "-2.5", "-2.5",
       "risk_horizon_hours must be a finite number > 0, got -2.5"},
      {"risk_horizon_hours", "inf", "inf",
       "risk_horizon_hours must be a finite number > 0, got inf"},
      {"anonymous_role", R"("guest")", "guest",
       "unknown role 'guest' (expected none, read, price or admin)"},
      {"bind", R"("")", "", "the address is empty"},
      {"bind", R"("999.1.1.1")", "999.1.1.1",
       "'999.1.1.1' is not an IP address (an IPv4 or IPv6 literal, or localhost)"},
      {"bind", R"("example.com")", "example.com",
       "'example.com' is not an IP address (an IPv4 or IPv6 literal, or localhost)"},
  };
  for (const bad_value& c : cases) {
    INFO(c.key << " = " << c.toml);
    CHECK(message_of(std::string(c.key) + " = " + c.toml) ==
          std::string("c.toml:2: server.") + c.key + ": " + c.reason);
    server_settings s;
    const server_settings before = s;
    const auto status = cascade::proto::apply_server_override(s, c.key, c.text, "--set");
    REQUIRE_FALSE(status.ok());
    CHECK(std::string(status.message()) == std::string("--set: server.") + c.key + ": " + c.reason);
    // Nothing changed.
    CHECK(s.port == before.port);
    CHECK(s.io_threads == before.io_threads);
    CHECK(s.bind == before.bind);
    CHECK(s.anonymous == before.anonymous);
    CHECK(s.risk_horizon_hours == before.risk_horizon_hours);
  }
}

TEST_CASE("[server] values of the wrong type are refused", "[proto][config]") {
  CHECK(message_of(R"(max_batch = "big")") ==
        "c.toml:2: server.max_batch: expected an integer, got a string");
  CHECK(message_of("max_batch = 1.5") ==
        "c.toml:2: server.max_batch: expected an integer, got a float");
  CHECK(message_of(R"(risk_horizon_hours = "1")") ==
        "c.toml:2: server.risk_horizon_hours: expected a number, got a string");
  CHECK(message_of("anonymous_role = 1") ==
        "c.toml:2: server.anonymous_role: expected a string, got an integer");
  CHECK(message_of(R"(tokens = "secret")") ==
        "c.toml:2: server.tokens: expected an array of tables, got a string");
  CHECK_THAT(message_of("max_conections = 5"),
             Catch::StartsWith("c.toml:2: server.max_conections: unknown key 'max_conections' "
                               "(expected one of: bind, port, io_threads, anonymous_role,"));
}

TEST_CASE("[[server.tokens]] entries are checked and never echoed", "[proto][config]") {
  const auto tokens = [](std::string_view body) {
    return message_of(std::string("port = 1\n[[server.tokens]]\n") + std::string(body));
  };
  CHECK(tokens("role = \"admin\"\ntoken = \"s3cret-a\"\ntoken_env = \"X\"") ==
        "c.toml:3: server.tokens[0]: give either token or token_env, not both");
  CHECK_THAT(tokens("role = \"admin\""),
             Catch::StartsWith("c.toml:3: server.tokens[0]: missing the token"));
  CHECK(tokens("token = \"s3cret-a\"") ==
        "c.toml:3: server.tokens[0]: missing required key 'role'");
  CHECK(
      tokens("role = \"root\"\ntoken = \"s3cret-a\"") ==
      "c.toml:4: server.tokens[0].role: unknown role 'root' (a token grants read, price or admin)");
  CHECK(
      tokens("role = \"none\"\ntoken = \"s3cret-a\"") ==
      "c.toml:4: server.tokens[0].role: unknown role 'none' (a token grants read, price or admin)");
  CHECK(tokens("role = \"read\"\ntoken = \"\"") ==
        "c.toml:5: server.tokens[0].token: the token is empty");
  const std::string spaced = tokens("role = \"read\"\ntoken = \"s3cret with space\"");
  CHECK_THAT(spaced,
             Catch::StartsWith("c.toml:5: server.tokens[0].token: the token holds a space"));
  CHECK_THAT(spaced, !Catch::Contains("s3cret"));
  const std::string twice = tokens(
      "role = \"read\"\ntoken = \"s3cret-a\"\n[[server.tokens]]\nrole = \"admin\"\ntoken = "
      "\"s3cret-a\"");
  CHECK(twice ==
        "c.toml:6: server.tokens[1]: the same token is given twice (also server.tokens[0])");
  CHECK(tokens("role = \"read\"\ntoken = \"a\"\nsecret = \"b\"") ==
        "c.toml:6: server.tokens[0].secret: unknown key 'secret' (expected one of: role, token, "
        "token_env)");

  // token_env: the variable must be set and not empty; its name is shown, its value not.
  ::unsetenv("CASCADE_TEST_NO_SUCH_TOKEN");
  CHECK(tokens("role = \"read\"\ntoken_env = \"CASCADE_TEST_NO_SUCH_TOKEN\"") ==
        "c.toml:5: server.tokens[0].token_env: environment variable 'CASCADE_TEST_NO_SUCH_TOKEN' "
        "is unset or empty");
  {
    scoped_env empty("CASCADE_TEST_EMPTY_TOKEN", "");
    CHECK_THAT(
        tokens("role = \"read\"\ntoken_env = \"CASCADE_TEST_EMPTY_TOKEN\""),
        Catch::EndsWith("environment variable 'CASCADE_TEST_EMPTY_TOKEN' is unset or empty"));
  }
  {
    scoped_env bad("CASCADE_TEST_BAD_TOKEN", "hidden\nvalue");
    const std::string m = tokens("role = \"read\"\ntoken_env = \"CASCADE_TEST_BAD_TOKEN\"");
    CHECK_THAT(m, Catch::StartsWith("c.toml:5: server.tokens[0].token_env: environment variable "
                                    "'CASCADE_TEST_BAD_TOKEN': the token holds"));
    CHECK_THAT(m, !Catch::Contains("hidden"));
  }
  CHECK(tokens("role = \"read\"\ntoken_env = \"\"") ==
        "c.toml:5: server.tokens[0].token_env: the variable name is empty");
}

TEST_CASE("text overrides set every [server] key", "[proto][config]") {
  server_settings s;
  const auto set = [&](std::string_view key, std::string_view value) {
    must(cascade::proto::apply_server_override(s, key, value, "CASCADE_SERVER_X"));
  };
  set("bind", "::1");
  set("port", "0");
  set("io_threads", "64");
  set("anonymous_role", "admin");
  set("max_connections", "1000000");
  set("max_body_bytes", "2048");
  set("max_frame_bytes", "4096");
  set("max_batch", "10000000");
  set("send_queue", "1");
  set("ring_events", "7");
  set("inbox_capacity", "100000000");
  set("projection_interval_ms", "3600000");
  set("volatility_half_life_hours", "1e-3");
  set("risk_horizon_hours", "72");
  CHECK(s.bind == "::1");
  CHECK(s.port == 0);
  CHECK(s.io_threads == 64);
  CHECK(s.anonymous == role::admin);
  CHECK(s.max_connections == 1'000'000);
  CHECK(s.max_body_bytes == 2048);
  CHECK(s.max_frame_bytes == 4096);
  CHECK(s.max_batch == 10'000'000);
  CHECK(s.send_queue == 1);
  CHECK(s.ring_events == 7);
  CHECK(s.inbox_capacity == 100'000'000);
  CHECK(s.projection_interval_ms == 3'600'000);
  CHECK(s.volatility_half_life_hours == 1e-3);
  CHECK(s.risk_horizon_hours == 72.0);

  const auto refuse = [&](std::string_view key, std::string_view value) {
    const auto st = cascade::proto::apply_server_override(s, key, value, "CASCADE_SERVER_X");
    REQUIRE_FALSE(st.ok());
    CHECK(st.code() == absl::StatusCode::kInvalidArgument);
    return std::string(st.message());
  };
  CHECK(refuse("port", "80a") == "CASCADE_SERVER_X: server.port: '80a' is not an integer");
  CHECK(refuse("port", "") == "CASCADE_SERVER_X: server.port: '' is not an integer");
  CHECK(refuse("port", " 80") == "CASCADE_SERVER_X: server.port: ' 80' is not an integer");
  CHECK(refuse("max_batch", "99999999999999999999") ==
        "CASCADE_SERVER_X: server.max_batch: '99999999999999999999' is not an integer");
  CHECK(refuse("risk_horizon_hours", "soon") ==
        "CASCADE_SERVER_X: server.risk_horizon_hours: 'soon' is not a number");
  CHECK_THAT(refuse("prot", "1"),
             Catch::StartsWith("CASCADE_SERVER_X: server.prot: unknown key 'prot' (expected one "
                               "of: bind, port,"));
  CHECK_THAT(refuse("tokens", "x:admin"),
             Catch::StartsWith("CASCADE_SERVER_X: server.tokens: tokens cannot be set from text"));
  CHECK(s.port == 0);  // unchanged by the refusals
  CHECK(s.max_batch == 10'000'000);
}

TEST_CASE("CASCADE_TOKENS adds TOKEN:ROLE entries, all or nothing", "[proto][config]") {
  server_settings s;
  s.tokens.push_back({"from-config", role::read});
  must(cascade::proto::add_tokens_from_env(s, "abc:read,p:r:ice:price,ADMIN-1:admin"));
  REQUIRE(s.tokens.size() == 4);
  CHECK(s.tokens[1].token == "abc");
  CHECK(s.tokens[1].grants == role::read);
  CHECK(s.tokens[2].token == "p:r:ice");  // the last ':' splits
  CHECK(s.tokens[2].grants == role::price);
  CHECK(s.tokens[3].token == "ADMIN-1");
  CHECK(s.tokens[3].grants == role::admin);

  const auto refuse = [&](std::string_view spec) {
    const auto st = cascade::proto::add_tokens_from_env(s, spec);
    REQUIRE_FALSE(st.ok());
    return std::string(st.message());
  };
  CHECK(refuse("s3cret") ==
        "CASCADE_TOKENS: entry 1: not of the form TOKEN:ROLE (role read, price or admin)");
  CHECK(refuse("ok1:read,s3cret:root") ==
        "CASCADE_TOKENS: entry 2: unknown role 'root' (a token grants read, price or admin)");
  CHECK(refuse("ok1:read,,ok2:read") ==
        "CASCADE_TOKENS: entry 2: empty (expected TOKEN:ROLE,TOKEN:ROLE,...)");
  CHECK(refuse("ok1:read,") ==
        "CASCADE_TOKENS: entry 2: empty (expected TOKEN:ROLE,TOKEN:ROLE,...)");
  CHECK(refuse(":admin") == "CASCADE_TOKENS: entry 1: the token is empty");
  CHECK_THAT(refuse("s3 cret:admin"),
             Catch::StartsWith("CASCADE_TOKENS: entry 1: the token holds"));
  CHECK(refuse("from-config:admin") == "CASCADE_TOKENS: entry 1: the same token is given twice");
  CHECK(refuse("dup1:read,dup1:admin") == "CASCADE_TOKENS: entry 2: the same token is given twice");
  CHECK(refuse("s3cret:none") ==
        "CASCADE_TOKENS: entry 1: unknown role 'none' (a token grants read, price or admin)");
  CHECK(s.tokens.size() == 4);  // nothing added by a refused spec
}

TEST_CASE("roles print and parse", "[proto][config]") {
  for (const role r : {role::none, role::read, role::price, role::admin}) {
    CHECK(cascade::proto::parse_role(cascade::proto::to_string(r)) == r);
  }
  CHECK(cascade::proto::to_string(role::price) == "price");
  CHECK_FALSE(cascade::proto::parse_role("Admin").has_value());
  CHECK_FALSE(cascade::proto::parse_role("").has_value());
  CHECK(role::admin > role::price);
  CHECK(role::price > role::read);
  CHECK(role::read > role::none);
}
