"""End to end over WebSocket: hello, subscribe/ack, a price push that takes known
positions under HF 1, the alerts and the cascade it causes (checked against `cascade
health` and `cascade stress` of the equivalent scenario), subscription filters, the
prices channel, unsubscribe, ping, resume.

    /usr/bin/python3 tests/server/integration/test_end_to_end.py --cascade BUILD/cascade
"""

import time

import harness
from harness import PRICE_TOKEN, AsyncServerCase, Ws, cli_health, cli_stress, rel_close, scenario_doc

OLD_ETH = 3000.0
NEW_ETH = 2400.0

# The crossings the ETH 3000 -> 2400 push causes (tests/data/server/README.md).
EXPECTED_ALERTS = {
    "a1": ("aave-v3", "0xaaa", "healthy", "liquidatable", ["ETH", "USDC"]),
    "a2": ("aave-v3", "0xaaa", "healthy", "liquidatable", ["ETH", "USDC"]),
    "a4": ("aave-v3", "0xbbb", "healthy", "warn", ["ETH", "USDC"]),
    "d1": ("aave-v3", "0xddd", "danger", "liquidatable", ["ETH", "USDC"]),
    "x1": ("aave-v3", "0xeee", "healthy", "warn", ["ETH", "USDC", "WBTC"]),
    "m1": ("maker", "0xccc", "warn", "liquidatable", ["ETH", "USDC"]),
    "s1": ("perp", "0x555", "warn", "healthy", ["ETH", "USDC"]),
}
BAND_RANK = {"healthy": 0, "warn": 1, "danger": 2, "liquidatable": 3}

# Filtered subscribers: (filter, the alert positions they must get, exactly).
FILTERS = {
    "protocol maker": ({"protocols": ["maker"]}, {"m1"}),
    "asset WBTC": ({"assets": ["WBTC"]}, {"x1"}),
    "min_band liquidatable": ({"min_band": "liquidatable"}, {"a1", "a2", "d1", "m1"}),
    "min_band warn (worse side 'from' counts)": ({"min_band": "warn"}, set(EXPECTED_ALERTS)),
    "positions a4,s1": ({"positions": ["a4", "s1"]}, {"a4", "s1"}),
    "owner 0xaaa": ({"owners": ["0xaaa"]}, {"a1", "a2"}),
    "aave-v3 AND liquidatable": ({"protocols": ["aave-v3"], "min_band": "liquidatable"},
                                 {"a1", "a2", "d1"}),
    "USDC AND owners 0xccc|0x555": ({"assets": ["USDC"], "owners": ["0xccc", "0x555"]},
                                    {"m1", "s1"}),
    "protocols maker|perp AND positions m1,m2,a1": (
        {"protocols": ["maker", "perp"], "positions": ["m1", "m2", "a1"]}, {"m1"}),
}


def now_ns():
    return time.time_ns()


class EndToEnd(AsyncServerCase):

    def check_envelope(self, e, t0, t1):
        """seq, ingest_ns <= emit_ns, both plausible unix nanoseconds."""
        for k in ("seq", "ingest_ns", "emit_ns"):
            self.assertIsInstance(e.get(k), int, f"{e['type']}.{k} must be an integer: {e}")
        self.assertLessEqual(e["ingest_ns"], e["emit_ns"], f"ingest_ns > emit_ns: {e}")
        self.assertGreaterEqual(e["ingest_ns"], t0 - 5_000_000_000,
                                f"ingest_ns is not a unix time in ns near now: {e}")
        self.assertLessEqual(e["emit_ns"], t1 + 5_000_000_000,
                             f"emit_ns is not a unix time in ns near now: {e}")

    def check_increasing(self, ws, name):
        seqs = [m["seq"] for m in ws.events()]
        for a, b in zip(seqs, seqs[1:]):
            self.assertLess(a, b, f"{name}: event seqs not strictly increasing: {seqs}")

    async def test_push_alerts_cascade_filters_prices(self):
        s = self.start_server()
        h0 = cli_health(scenario_doc())
        h1 = cli_health(scenario_doc(prices={"ETH": NEW_ETH}))
        report = cli_stress(scenario_doc(prices={"ETH": NEW_ETH}))
        # The hand-made expectations agree with the CLI's health factors.
        for pid in EXPECTED_ALERTS:
            self.assertIsNotNone(h1[pid])
        self.assertEqual(sorted(p for p, hf in h1.items() if hf is not None and hf < 1),
                         ["a1", "a2", "d1", "m1"])

        t0 = now_ns()
        main = await Ws.connect(s, token=PRICE_TOKEN)
        self.addAsyncCleanup(main.close)
        hello = main.hello
        self.assertEqual(hello.get("server"), "cascade", f"hello: {hello}")
        self.assertIsInstance(hello.get("seq"), int, f"hello.seq: {hello}")
        self.assertIsInstance(hello.get("oldest_seq"), int, f"hello.oldest_seq: {hello}")

        ack = await main.request({"op": "subscribe", "id": "sub-1",
                                  "channels": ["alerts", "cascades"]})
        self.assertEqual(ack.get("type"), "ack", f"subscribe: {ack}")
        self.assertEqual(ack.get("id"), "sub-1")
        self.assertIsInstance(ack.get("seq"), int, f"ack.seq: {ack}")

        # Prices: every asset, and ETH only.
        all_prices = await Ws.connect(s)
        self.addAsyncCleanup(all_prices.close)
        a = await all_prices.request({"op": "subscribe", "id": 7, "channels": ["prices"]})
        self.assertEqual((a.get("type"), a.get("id")), ("ack", 7), f"{a}")
        eth_prices = await Ws.connect(s)
        self.addAsyncCleanup(eth_prices.close)
        a = await eth_prices.request({"op": "subscribe", "id": 8.5, "channels": ["prices"],
                                      "filter": {"assets": ["ETH"]}})
        self.assertEqual((a.get("type"), a.get("id")), ("ack", 8.5), f"{a}")

        filtered = {}
        for name, (flt, _) in FILTERS.items():
            c = await Ws.connect(s)
            self.addAsyncCleanup(c.close)
            a = await c.request({"op": "subscribe", "id": name,
                                 "channels": ["alerts", "cascades"], "filter": flt})
            self.assertEqual((a.get("type"), a.get("id")), ("ack", name),
                             f"subscribe with filter {flt}: {a}")
            filtered[name] = c

        # Unchanged WBTC and LINK first: price events, no alert.
        a = await main.request({"op": "prices", "id": 4, "prices": [
            {"asset": "WBTC", "price": 60000.0}, {"asset": "LINK", "price": 15}]})
        self.assertEqual((a.get("type"), a.get("id")), ("ack", 4), f"prices: {a}")
        # The push.
        push_ack = await main.request({"op": "price", "id": 3, "asset": "ETH", "price": NEW_ETH,
                                       "source": "it", "ts": 1700000000.25})
        self.assertEqual((push_ack.get("type"), push_ack.get("id")), ("ack", 3),
                         f"price: {push_ack}")
        casc = await main.wait_for(lambda m: m.get("type") == "cascade", timeout=10)
        for c in list(filtered.values()):
            await c.wait_for(lambda m: m.get("type") == "cascade", timeout=10)
        await eth_prices.wait_for(lambda m: m.get("type") == "price" and m["asset"] == "ETH")
        await all_prices.wait_for(lambda m: m.get("type") == "price" and m["asset"] == "ETH")
        await harness.settle(0.5)  # anything extra would arrive now
        t1 = now_ns()

        # --- alerts --------------------------------------------------------------------
        alerts = main.events(("alert",))
        by_id = {}
        for e in alerts:
            self.assertNotIn(e["position"], by_id, f"two alerts for {e['position']}: {alerts}")
            by_id[e["position"]] = e
        self.assertEqual(sorted(by_id), sorted(EXPECTED_ALERTS),
                         f"alerted positions; alerts: {alerts}")
        for pid, (proto, owner, frm, to, assets) in EXPECTED_ALERTS.items():
            e = by_id[pid]
            self.check_envelope(e, t0, t1)
            self.assertEqual(e.get("protocol"), proto, f"{pid}: {e}")
            self.assertEqual(e.get("owner"), owner, f"{pid}: {e}")
            self.assertEqual((e.get("from"), e.get("to")), (frm, to), f"{pid} bands: {e}")
            self.assertTrue(rel_close(e.get("hf_before"), h0[pid]),
                            f"{pid}: hf_before {e.get('hf_before')}, cascade health says {h0[pid]}")
            self.assertTrue(rel_close(e.get("hf_after"), h1[pid]),
                            f"{pid}: hf_after {e.get('hf_after')}, cascade health says {h1[pid]}")
            self.assertEqual(e.get("cause"), "ETH", f"{pid}: {e}")
            self.assertEqual(e.get("price"), NEW_ETH, f"{pid}: {e}")
            self.assertEqual(sorted(e.get("assets", [])), assets, f"{pid}: {e}")
            self.assertLessEqual(e["seq"], push_ack["seq"],
                                 f"alert seq {e['seq']} > the push's ack seq {push_ack['seq']}")
        self.assertGreater(min(e["seq"] for e in alerts), ack["seq"])

        # --- the cascade --------------------------------------------------------------
        cascades = main.events(("cascade",))
        self.assertEqual(len(cascades), 1, f"one projection per push: {cascades}")
        self.check_envelope(casc, t0, t1)
        self.assertGreater(casc["seq"], max(e["seq"] for e in alerts))
        self.assertGreaterEqual(casc.get("rounds", 0), 1, f"cascade: {casc}")
        self.assertEqual(casc.get("rounds"), len(report["round_detail"]), f"cascade: {casc}")
        self.assertEqual(casc.get("liquidatable_now"), 4, f"cascade: {casc}")
        self.assertEqual(casc.get("positions_liquidated"), report["positions_liquidated"])
        self.assertTrue(rel_close(casc.get("repaid_usd"), report["total_repaid_usd"]),
                        f"repaid_usd {casc.get('repaid_usd')} vs {report['total_repaid_usd']}")
        self.assertTrue(rel_close(casc.get("seized_usd"), report["total_seized_usd"]),
                        f"seized_usd {casc.get('seized_usd')} vs {report['total_seized_usd']}")
        harness.assert_json_close(self, casc.get("bad_debt_usd"), report["bad_debt_usd"],
                                  "cascade.bad_debt_usd")
        self.assertGreater(casc["bad_debt_usd"]["aave-v3"], 0.0, "d1 leaves bad debt")
        harness.assert_json_close(
            self, casc.get("liquidated"),
            {name: p["liquidated"] for name, p in report["protocols"].items()},
            "cascade.liquidated")
        sold = {}
        for r in report["round_detail"]:
            for sym, q in r["sold"].items():
                sold[sym] = sold.get(sym, 0.0) + q
        harness.assert_json_close(self, casc.get("sold"), sold, "cascade.sold")
        harness.assert_json_close(self, casc.get("start_prices"),
                                  {"ETH": NEW_ETH, "WBTC": 60000.0, "USDC": 1.0, "DAI": 1.0,
                                   "LINK": 15.0}, "cascade.start_prices")
        harness.assert_json_close(self, casc.get("final_prices"), report["final_prices"],
                                  "cascade.final_prices")
        amp = casc.get("amplification")
        self.assertIsInstance(amp, dict, f"cascade.amplification: {casc}")
        self.assertIn("ETH", amp, f"ETH fell in the cascade: {amp}")
        for sym, v in amp.items():
            want = -(report["final_prices"][sym] / casc["start_prices"][sym] - 1.0)
            self.assertTrue(rel_close(v, want), f"amplification[{sym}] {v}, want {want}")
        # The price path: every asset the cascade moved, its start price, then the
        # prices after each round of `cascade stress`.
        want_path = {sym: [casc["start_prices"][sym]] +
                     [r["prices"][sym] for r in report["round_detail"]]
                     for sym in report["final_prices"]
                     if report["final_prices"][sym] != casc["start_prices"][sym]}
        self.assertIn("ETH", want_path)
        harness.assert_json_close(self, casc.get("price_path"), want_path, "cascade.price_path")
        self.assertIsInstance(casc.get("duration_ms"), (int, float))
        self.assertGreaterEqual(casc["duration_ms"], 0)

        # --- filters ------------------------------------------------------------------
        for name, (flt, want) in FILTERS.items():
            c = filtered[name]
            got = sorted(e["position"] for e in c.events(("alert",)))
            self.assertEqual(got, sorted(want), f"subscriber with filter {flt} ({name})")
            self.assertEqual(len(c.events(("cascade",))), 1,
                             f"cascades pass every filter ({name})")
            self.assertEqual(c.events(("price",)), [], f"{name} did not ask for prices")
            # The same events, byte for byte in value, as the unfiltered subscriber got.
            for e in c.events(("alert",)):
                self.assertEqual(e, by_id[e["position"]], f"{name}: same alert as unfiltered")
            self.check_increasing(c, name)

        # --- prices -------------------------------------------------------------------
        ps = all_prices.events()
        self.assertEqual([m["type"] for m in ps], ["price"] * 3,
                         f"a prices-only subscriber gets only price events: {ps}")
        self.assertEqual([(m["asset"], m["price"]) for m in ps],
                         [("WBTC", 60000.0), ("LINK", 15.0), ("ETH", NEW_ETH)])
        eth = ps[2]
        self.check_envelope(eth, t0, t1)
        self.assertEqual(eth.get("source"), "it")
        self.assertEqual(eth.get("ts"), 1700000000.25)
        self.assertEqual(ps[0].get("source"), "ws", f"default source: {ps[0]}")
        with self.subTest("a tick without ts gets the server's clock"):
            self.assertIsInstance(ps[0].get("ts"), (int, float),
                                  f"PROTOCOL.md: ts defaults to the server's clock: {ps[0]}")
            self.assertLess(abs(ps[0]["ts"] - time.time()), 3600,
                            f"default ts is the server clock (unix seconds): {ps[0]}")
        self.assertLessEqual(eth["seq"], push_ack["seq"])
        self.assertEqual([(m["asset"], m["seq"]) for m in eth_prices.events()],
                         [("ETH", eth["seq"])], "asset-filtered prices")
        self.assertEqual(main.events(("price",)), [], "main did not subscribe to prices")
        for c, name in ((main, "main"), (all_prices, "prices")):
            self.check_increasing(c, name)

        # A new connection's hello names the last seq published.
        late = await Ws.connect(s)
        self.addAsyncCleanup(late.close)
        self.assertGreaterEqual(late.hello["seq"], casc["seq"], f"hello after: {late.hello}")

        # Resume: replays the retained events matching the subscription, in order, then
        # the ack.
        a = await late.request({"op": "subscribe", "id": 1, "channels": ["alerts"],
                                "filter": {"protocols": ["aave-v3"]}})
        self.assertEqual(a.get("type"), "ack", f"{a}")
        start = len(late.msgs)
        a = await late.request({"op": "resume", "id": 2, "from_seq": late.hello["oldest_seq"]})
        self.assertEqual((a.get("type"), a.get("id")), ("ack", 2), f"resume: {a}")
        replay = [m for m in late.msgs[start:] if m.get("type") == "alert"]
        ack_at = late.msgs.index(a)
        self.assertTrue(all(late.msgs.index(m) < ack_at for m in replay),
                        "the ack of a resume follows the replayed events")
        want = sorted((e for e in alerts if e["protocol"] == "aave-v3"), key=lambda e: e["seq"])
        self.assertEqual(replay, want, "resume replays the retained matching alerts")

    async def test_unsubscribe_ping_and_default_channels(self):
        s = self.start_server()
        c = await Ws.connect(s, token=PRICE_TOKEN)
        self.addAsyncCleanup(c.close)
        p = await c.request({"op": "ping", "id": "x"})
        self.assertEqual(p, {"type": "pong", "id": "x"})
        p = await c.request({"op": "ping", "id": None})
        self.assertEqual(p.get("type"), "pong")
        # A ping without an id gets a pong with a null id.
        start = len(c.msgs)
        await c.send({"op": "ping"})
        p = await c.wait_for(lambda m: m.get("type") == "pong", start=start)
        self.assertIsNone(p.get("id"), f"pong without id: {p}")

        # Default channels: alerts and cascades, not prices.
        a = await c.request({"op": "subscribe", "id": 1})
        self.assertEqual(a.get("type"), "ack", f"{a}")
        a = await c.request({"op": "price", "id": 2, "asset": "ETH", "price": NEW_ETH})
        self.assertEqual(a.get("type"), "ack", f"{a}")
        await c.wait_for(lambda m: m.get("type") == "cascade")
        await harness.settle(0.3)
        self.assertEqual(c.events(("price",)), [], "default channels exclude prices")
        self.assertEqual(len(c.events(("alert",))), len(EXPECTED_ALERTS))

        # Subscribe to prices, then unsubscribe them: no more price events.
        a = await c.request({"op": "subscribe", "id": 3, "channels": ["prices", "alerts"]})
        self.assertEqual(a.get("type"), "ack")
        a = await c.request({"op": "price", "id": 4, "asset": "WBTC", "price": 59000.0})
        await c.wait_for(lambda m: m.get("type") == "price" and m["asset"] == "WBTC")
        a = await c.request({"op": "unsubscribe", "id": 5, "channels": ["prices"]})
        self.assertEqual((a.get("type"), a.get("id")), ("ack", 5), f"unsubscribe: {a}")
        n = len(c.events(("price",)))
        a = await c.request({"op": "price", "id": 6, "asset": "WBTC", "price": 58000.0})
        self.assertEqual(a.get("type"), "ack")
        await harness.settle(0.3)
        self.assertEqual(len(c.events(("price",))), n, "unsubscribed from prices")
        # Unsubscribe without channels: everything.
        a = await c.request({"op": "unsubscribe", "id": 7})
        self.assertEqual(a.get("type"), "ack", f"{a}")
        n = len(c.events())
        a = await c.request({"op": "price", "id": 8, "asset": "ETH", "price": 3000.0})
        self.assertEqual(a.get("type"), "ack")
        await harness.settle(0.3)
        self.assertEqual(len(c.events()), n, f"unsubscribed from everything: {c.events()[n:]}")

    async def test_price_without_id_gets_no_ack(self):
        s = self.start_server()
        c = await Ws.connect(s, token=PRICE_TOKEN)
        self.addAsyncCleanup(c.close)
        await c.request({"op": "subscribe", "id": 1, "channels": ["prices"]})
        start = len(c.msgs)
        await c.send({"op": "price", "asset": "LINK", "price": 14.0})
        await c.wait_for(lambda m: m.get("type") == "price", start=start)
        await c.request({"op": "ping", "id": "after"})
        await harness.settle(0.2)
        # No answer of any kind: the server builds none for a frame without an id.
        acks = [m for m in c.msgs[start:] if m.get("type") in ("ack", "error")]
        self.assertEqual(acks, [], "a price without id is not answered")


if __name__ == "__main__":
    harness.main()
