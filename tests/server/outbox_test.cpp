#include "server/outbox.hpp"

#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <vector>

using cascade::server::outbox;

namespace {

outbox::message msg(std::string s) { return std::make_shared<const std::string>(std::move(s)); }

outbox::message event(std::uint64_t seq) { return msg("e" + std::to_string(seq)); }

std::string gap(std::uint64_t from, std::uint64_t to) {
  return "{\"type\":\"gap\",\"from\":" + std::to_string(from) + ",\"to\":" + std::to_string(to) +
         "}";
}

// Pops everything waiting, as the writer would.
std::vector<std::string> drain(outbox& o) {
  std::vector<std::string> out;
  while (auto m = o.pop()) out.push_back(*m);
  return out;
}

}  // namespace

TEST_CASE("outbox: events queue up to the limit, then drop", "[outbox]") {
  outbox o(3);
  CHECK(o.empty());
  CHECK(o.push_event(1, event(1)));
  CHECK(o.push_event(2, event(2)));
  CHECK(o.push_event(3, event(3)));
  CHECK(o.events_waiting() == 3);
  CHECK_FALSE(o.push_event(4, event(4)));
  CHECK(o.events_waiting() == 3);
  CHECK(o.dropped() == 1);
  CHECK(drain(o) == std::vector<std::string>{"e1", "e2", "e3", gap(4, 4)});
  CHECK(o.empty());
  CHECK(o.pop() == nullptr);
}

TEST_CASE("outbox: a gap is announced before the next newer event", "[outbox]") {
  outbox o(2);
  REQUIRE(o.push_event(1, event(1)));
  REQUIRE(o.push_event(2, event(2)));
  CHECK_FALSE(o.push_event(3, event(3)));
  CHECK(*o.pop() == "e1");
  // Room again: seq 4 fits, but the client must hear of 3 first.
  CHECK(o.push_event(4, event(4)));
  CHECK(drain(o) == std::vector<std::string>{"e2", gap(3, 3), "e4"});
  CHECK(o.gaps_sent() == 1);
}

TEST_CASE("outbox: a gap is announced when the queue drains empty", "[outbox]") {
  outbox o(1);
  REQUIRE(o.push_event(1, event(1)));
  CHECK_FALSE(o.push_event(2, event(2)));
  CHECK_FALSE(o.empty());
  CHECK(*o.pop() == "e1");
  CHECK_FALSE(o.empty());  // the gap still waits
  CHECK(o.gaps_sent() == 0);
  CHECK(*o.pop() == gap(2, 2));
  CHECK(o.gaps_sent() == 1);
  CHECK(o.empty());
  CHECK(o.pop() == nullptr);
}

TEST_CASE("outbox: consecutive drops extend one gap", "[outbox]") {
  outbox o(1);
  REQUIRE(o.push_event(10, event(10)));
  for (std::uint64_t s = 11; s <= 20; ++s) CHECK_FALSE(o.push_event(s, event(s)));
  // Seqs a subscriber's filter skipped are inside the range too: it names what was missed.
  CHECK_FALSE(o.push_event(25, event(25)));
  CHECK(o.dropped() == 11);
  CHECK(drain(o) == std::vector<std::string>{"e10", gap(11, 25)});
  CHECK(o.gaps_sent() == 1);
  // A later overflow is a new gap.
  REQUIRE(o.push_event(26, event(26)));
  CHECK_FALSE(o.push_event(27, event(27)));
  CHECK(drain(o) == std::vector<std::string>{"e26", gap(27, 27)});
  CHECK(o.gaps_sent() == 2);
}

TEST_CASE("outbox: controls are never dropped and keep their order", "[outbox]") {
  outbox o(2);
  o.push_control(msg("hello"));
  REQUIRE(o.push_event(1, event(1)));
  o.push_control(msg("ack1"));
  REQUIRE(o.push_event(2, event(2)));
  CHECK_FALSE(o.push_event(3, event(3)));
  for (int i = 0; i < 100; ++i) o.push_control(msg("c" + std::to_string(i)));
  CHECK(o.events_waiting() == 2);
  // A control may answer something newer than the dropped events (an ack's seq covers
  // them), so the gap goes ahead of it.
  std::vector<std::string> want{"hello", "e1", "ack1", "e2", gap(3, 3)};
  for (int i = 0; i < 100; ++i) want.push_back("c" + std::to_string(i));
  CHECK(drain(o) == want);
  CHECK(o.dropped() == 1);
  CHECK(o.gaps_sent() == 1);
}

TEST_CASE("outbox: an event whose seq is not new is skipped", "[outbox]") {
  outbox o(10);
  REQUIRE(o.push_event(5, event(5)));
  CHECK_FALSE(o.push_event(5, event(5)));
  CHECK_FALSE(o.push_event(3, event(3)));
  CHECK(o.push_event(6, event(6)));
  CHECK(o.dropped() == 0);  // skipped, not dropped
  CHECK(o.events_waiting() == 2);
  CHECK(drain(o) == std::vector<std::string>{"e5", "e6"});
}

TEST_CASE("outbox: a dropped seq is not taken later", "[outbox]") {
  outbox o(1);
  REQUIRE(o.push_event(1, event(1)));
  CHECK_FALSE(o.push_event(2, event(2)));
  CHECK(*o.pop() == "e1");
  CHECK_FALSE(o.push_event(2, event(2)));
  CHECK(o.dropped() == 1);
  CHECK(drain(o) == std::vector<std::string>{gap(2, 2)});
}

TEST_CASE("outbox: rewind lets earlier seqs through and forgets a gap the replay covers",
          "[outbox]") {
  SECTION("the gap starts at or after from_seq: forgotten") {
    outbox o(2);
    REQUIRE(o.push_event(1, event(1)));
    REQUIRE(o.push_event(2, event(2)));
    CHECK_FALSE(o.push_event(3, event(3)));
    CHECK_FALSE(o.push_event(4, event(4)));
    o.rewind(3);  // the replay brings 3 and 4 back: nothing to announce
    CHECK(drain(o) == std::vector<std::string>{"e1", "e2"});
    CHECK(o.push_event(3, event(3)));
    CHECK(o.push_event(4, event(4)));
    CHECK(drain(o) == std::vector<std::string>{"e3", "e4"});
    CHECK(o.gaps_sent() == 0);
    // After a gap went out, a resume from its start lets its seqs through again.
    REQUIRE(o.push_event(5, event(5)));
    REQUIRE(o.push_event(6, event(6)));
    CHECK_FALSE(o.push_event(7, event(7)));
    CHECK(drain(o) == std::vector<std::string>{"e5", "e6", gap(7, 7)});
    o.rewind(7);
    CHECK(o.push_event(7, event(7)));
    CHECK(drain(o) == std::vector<std::string>{"e7"});
    CHECK(o.gaps_sent() == 1);
  }
  SECTION("the gap starts before from_seq: only its covered tail is forgotten") {
    outbox o(1);
    REQUIRE(o.push_event(1, event(1)));
    for (std::uint64_t s = 2; s <= 9; ++s) CHECK_FALSE(o.push_event(s, event(s)));
    o.rewind(6);
    CHECK(*o.pop() == "e1");
    CHECK(o.push_event(6, event(6)));
    CHECK(drain(o) == std::vector<std::string>{gap(2, 5), "e6"});
  }
  SECTION("events already queued stay; duplicates are the client's to drop") {
    outbox o(10);
    REQUIRE(o.push_event(7, event(7)));
    o.rewind(7);
    CHECK(o.push_event(7, event(7)));
    CHECK(drain(o) == std::vector<std::string>{"e7", "e7"});
  }
}

TEST_CASE("outbox: counters follow pushes and pops", "[outbox]") {
  outbox o(2);
  o.push_control(msg("hello"));
  CHECK(o.events_waiting() == 0);
  CHECK_FALSE(o.empty());
  REQUIRE(o.push_event(1, event(1)));
  REQUIRE(o.push_event(2, event(2)));
  CHECK(o.events_waiting() == 2);
  CHECK_FALSE(o.push_event(3, event(3)));
  CHECK_FALSE(o.push_event(4, event(4)));
  CHECK(o.dropped() == 2);
  CHECK(*o.pop() == "hello");
  CHECK(o.events_waiting() == 2);  // controls do not count against the limit
  CHECK(*o.pop() == "e1");
  CHECK(o.events_waiting() == 1);
  REQUIRE(o.push_event(5, event(5)));  // gap (3, 4) queued ahead of it
  CHECK(o.events_waiting() == 2);
  CHECK(o.gaps_sent() == 0);  // queued, not yet handed out
  CHECK(drain(o) == std::vector<std::string>{"e2", gap(3, 4), "e5"});
  CHECK(o.gaps_sent() == 1);
  CHECK(o.events_waiting() == 0);
  CHECK(o.dropped() == 2);
  CHECK(o.empty());
}
