"""A slow consumer never slows the others, and gets `gap` + `resume` instead of silent
loss (DESIGN.md "Threads and data flow", PROTOCOL.md `gap`, `resume`).

19 stock-client subscribers read everything (alerts, cascades, prices); one raw client
with a 4 KiB receive buffer subscribes the same and then stops reading. The server runs
with send_queue=64. Ticks are pushed in batches, each acknowledged, and the readers must
have caught up before the next batch (so they never exceed their own queue) until the
server reports dropped events for the stalled one. Then:
- every reader saw every seq from its first to the last, in order, with no gap;
- the stalled client resumes reading: what it got is contiguous except where a `gap`
  {from, to} says so; it sends `resume` {from_seq: from} (again for any new gap) and,
  deduplicating by seq, ends up with every seq from its first to the last.

    /usr/bin/python3 tests/server/integration/test_slow_consumer.py --cascade BUILD/cascade
"""

import asyncio
import re
import time

import harness
from harness import PRICE_TOKEN, AsyncServerCase, RawWs, Ws

N_READERS = 19
BATCH = 32               # < send_queue: one batch must fit a fast reader's queue
MAX_BATCHES = 4000          # a cap: 128,000 ticks
AFTER_DROP_BATCHES = 3      # pushed once the stalled client is dropping
SOURCE = "slow-consumer-" + "x" * 100  # bulk per event, so the stalled socket fills fast
TIME_BUDGET_S = 150


def metric_value(text, name):
    total = 0.0
    found = False
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})?\s+(\S+)", line)
        if m:
            total += float(m.group(2))
            found = True
    return total if found else None


class SlowConsumer(AsyncServerCase):

    async def test_stalled_subscriber_gets_gap_and_resumes(self):
        t_start = time.monotonic()
        s = self.start_server(args=["--set", "server.send_queue=64",
                                    "--set", "server.ring_events=1000000"])
        sub = {"op": "subscribe", "channels": ["alerts", "cascades", "prices"]}
        readers = []
        for i in range(N_READERS):
            c = await Ws.connect(s)
            self.addAsyncCleanup(c.close)
            a = await c.request(dict(sub, id=i))
            self.assertEqual(a.get("type"), "ack", f"reader {i}: {a}")
            readers.append(c)

        stalled = RawWs(s, rcvbuf=4096)
        self.addCleanup(stalled.close)
        hello = stalled.recv_json()
        self.assertEqual(hello.get("type"), "hello")
        stalled.send_json(dict(sub, id="stalled"))
        a = stalled.recv_json()
        self.assertEqual((a.get("type"), a.get("id")), ("ack", "stalled"), f"{a}")
        # From here on the stalled client reads nothing until told.

        pusher = await Ws.connect(s, token=PRICE_TOKEN)
        self.addAsyncCleanup(pusher.close)
        idx = [0] * N_READERS   # scan position per reader
        last_seq = None
        dropped_at = None
        pushed = 0
        for b in range(MAX_BATCHES):
            self.assertLess(time.monotonic() - t_start, TIME_BUDGET_S,
                            f"time budget exceeded after {pushed} ticks")
            ticks = [{"asset": "ETH" if (b + i) % 2 else "LINK",
                      "price": (3000.0 if (b + i) % 2 else 15.0) * (1 + ((b * BATCH + i) % 97) * 1e-5),
                      "source": SOURCE} for i in range(BATCH)]
            ack = await pusher.request({"op": "prices", "id": b, "prices": ticks}, timeout=30)
            self.assertEqual(ack.get("type"), "ack", f"batch {b}: {ack}")
            pushed += BATCH
            last_seq = ack["seq"]
            # Readers catch up before the next batch.
            for r_i, c in enumerate(readers):
                m = await c.wait_for(lambda m: m.get("seq", -1) >= last_seq and
                                     m.get("type") in ("price", "alert", "cascade"),
                                     timeout=30, start=idx[r_i])
                idx[r_i] = c.msgs.index(m, idx[r_i])
            if dropped_at is None:
                dropped = metric_value(await asyncio.to_thread(s.metrics_text),
                                       "cascade_ws_events_dropped_total")
                self.assertIsNotNone(dropped, "/metrics lacks cascade_ws_events_dropped_total")
                if dropped > 0:
                    dropped_at = b
            elif b >= dropped_at + AFTER_DROP_BATCHES:
                break
        self.assertIsNotNone(dropped_at, f"the stalled client never overflowed after {pushed} "
                                         f"ticks with send_queue=64")
        print(f"note: {pushed} ticks pushed; the stalled client overflowed at batch {dropped_at}")

        # Readers: every seq, in order, no gap.
        await harness.settle(0.3)
        first = None
        for r_i, c in enumerate(readers):
            self.assertEqual([m for m in c.msgs if m.get("type") == "gap"], [],
                             f"reader {r_i} got a gap")
            seqs = [m["seq"] for m in c.events()]
            self.assertTrue(seqs, f"reader {r_i} got nothing")
            first = seqs[0] if first is None else first
            self.assertEqual(seqs[0], first, f"reader {r_i} starts at {seqs[0]}, others {first}")
            self.assertEqual(seqs, list(range(seqs[0], seqs[-1] + 1)),
                             f"reader {r_i}: seqs not contiguous "
                             f"(first hole after {self.first_hole(seqs)})")
            self.assertGreaterEqual(seqs[-1], last_seq)
        final_seq = max(c.events()[-1]["seq"] for c in readers)

        # The stalled client reads again: events, a gap, maybe more events.
        got = {}        # seq -> event
        order = []      # what arrived, in order: ("event", seq) or ("gap", from, to)
        gaps = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                m = await asyncio.to_thread(stalled.recv_json, 2.0)
            except TimeoutError:
                if gaps:
                    break
                continue
            if m.get("type") == "gap":
                gaps.append((m["from"], m["to"]))
                order.append(("gap", m["from"], m["to"]))
            elif m.get("type") in ("price", "alert", "cascade"):
                got[m["seq"]] = m
                order.append(("event", m["seq"]))
        self.assertTrue(gaps, f"the stalled client got no gap message "
                              f"({len(got)} events received)")
        self.check_gap_accounting(order)
        g_from, g_to = gaps[0]
        self.assertLessEqual(g_from, g_to, f"gap {gaps[0]}")

        # Live again: a batch pushed now reaches it after the gap.
        ack = await pusher.request({"op": "prices", "id": "live", "prices": [
            {"asset": "LINK", "price": 15.5, "source": "after-gap"}]})
        final_seq = max(final_seq, ack["seq"])

        # Resume from the gap, and again from any later gap (a replay larger than the
        # send queue overflows it too; the server then says so with a new gap, possibly
        # after the resume's ack). Dedupe by seq. Done when no resume is outstanding, no
        # gap is pending and nothing arrives for 2 s.
        rounds = 0
        pending = [g_from]
        seen_gaps = set(gaps)
        outstanding = None
        late_gaps = 0  # gaps that arrived after their resume's ack
        while True:
            if outstanding is None and pending:
                rounds += 1
                self.assertLess(rounds, 500, f"resume does not converge: {sorted(seen_gaps)[-5:]}")
                self.assertLess(time.monotonic() - t_start, TIME_BUDGET_S + 60, "time budget")
                from_seq = min(pending)
                pending.clear()
                outstanding = f"r{rounds}"
                stalled.send_json({"op": "resume", "id": outstanding, "from_seq": from_seq})
            try:
                m = await asyncio.to_thread(stalled.recv_json, 20.0 if outstanding else 2.0)
            except TimeoutError:
                self.assertIsNone(outstanding, f"no ack for resume {outstanding} in 20 s")
                break
            t = m.get("type")
            if t in ("price", "alert", "cascade"):
                got[m["seq"]] = m
            elif t == "gap":
                if outstanding is None:
                    late_gaps += 1
                if (m["from"], m["to"]) not in seen_gaps:
                    seen_gaps.add((m["from"], m["to"]))
                    pending.append(m["from"])
            elif t == "error":
                self.fail(f"resume: {m}")
            elif t == "ack" and m.get("id") == outstanding:
                outstanding = None
        first_stalled = min(got)
        self.assertEqual(first_stalled, first, "the stalled client's first event")
        missing = [q for q in range(first_stalled, final_seq + 1) if q not in got]
        self.assertEqual(missing[:20], [], f"{len(missing)} seqs missing after resume "
                                           f"(gaps {sorted(seen_gaps)[:5]}, {rounds} resumes)")
        # Same content as the readers got.
        ref = {m["seq"]: m for m in readers[0].events()}
        for q in range(first, last_seq + 1):
            self.assertEqual(got[q], ref[q], f"seq {q} differs between stalled and reader")
        print(f"note: stalled client: {len(seen_gaps)} gap(s), {rounds} resume(s), "
              f"{late_gaps} gap(s) after a resume's ack")

        text = s.metrics_text()
        self.assertGreaterEqual(metric_value(text, "cascade_ws_gaps_total") or 0, 1,
                                "cascade_ws_gaps_total counts the gap sent")

    @staticmethod
    def first_hole(seqs):
        for a, b in zip(seqs, seqs[1:]):
            if b != a + 1:
                return a
        return None

    def check_gap_accounting(self, order):
        """Received events are increasing, and a seq is skipped only where a gap message
        received before the next event says so."""
        prev = None
        ranges = []
        for item in order:
            if item[0] == "gap":
                _, f, t = item
                if prev is not None and f <= prev:
                    print(f"note: gap {f}..{t} arrived after event {prev} (gap before the "
                          f"events it follows)")
                ranges.append((f, t))
                continue
            q = item[1]
            if prev is not None:
                self.assertGreater(q, prev, "events out of order")
                for hole in range(prev + 1, q):
                    self.assertTrue(any(f <= hole <= t for f, t in ranges),
                                    f"seq {hole} skipped (between {prev} and {q}) without a "
                                    f"gap message covering it; gaps so far {ranges}")
            prev = q


if __name__ == "__main__":
    harness.main()
