"""REST under /v1 against the engine: assets, positions (one, listing, pagination),
summary, upsert and delete, stress (full scenario documents byte for byte against
`cascade stress`, and on the live book), cascade, curves, health and readiness.

    /usr/bin/python3 tests/server/integration/test_rest.py --cascade BUILD/cascade
"""

import asyncio
import glob
import json
import os
import urllib.parse

import harness
from harness import (ADMIN_TOKEN, EXAMPLES, MARKET, PRICE_TOKEN, READ_TOKEN, ServerCase, Ws,
                     assert_json_close, cli_health, cli_stress, load_market, rel_close, run_cli,
                     scenario_doc)

NEW_PRICES = {"ETH": 2400.0, "LINK": 14.5}
BANDS = ("healthy", "warn", "danger", "liquidatable")


def expected_band(hf_before, hf_after, cfg):
    """The band after a move from hf_before's entry band, with hysteresis."""
    b = cfg["bands"]
    entry_t = [b["warn"], b["danger"], b["liquidatable"]]
    exit_t = [t * (1 + b["hysteresis"]) for t in entry_t]

    def count(hf, ts):
        return 0 if hf is None else sum(1 for t in ts if hf < t)

    cur = count(hf_before, entry_t)
    return BANDS[min(max(cur, count(hf_after, entry_t)), count(hf_after, exit_t))]


class Rest(ServerCase):

    def push(self, s, prices=NEW_PRICES, token=PRICE_TOKEN):
        body = {"prices": [{"asset": a, "price": p} for a, p in prices.items()]}
        return s.post_json("/v1/prices", body, token=token)

    def test_health_ready_protocols_digest(self):
        s = self.start_server()
        self.assertEqual(s.get_json("/healthz"), {"status": "ok"})
        r = s.get_json("/readyz")
        self.assertEqual(r.get("status"), "ready", f"/readyz: {r}")
        cfg, _ = load_market()
        protos = s.get_json("/v1/protocols")["protocols"]
        self.assertEqual([p["name"] for p in protos], [p["name"] for p in cfg["protocols"]])
        for got, want in zip(protos, cfg["protocols"]):
            self.assertEqual(got["kind"], want["kind"])
            self.assertEqual(got["close_factor"], want["close_factor"])
            self.assertEqual(got["full_liquidation_hf"], want["full_liquidation_hf"])
            self.assertEqual(
                got["assets"],
                {k: {"liquidation_threshold": v["liquidation_threshold"],
                     "liquidation_bonus": v["liquidation_bonus"]}
                 for k, v in want["assets"].items()}, f"protocol {want['name']}")
        d0 = s.digest()
        self.assertRegex(d0["digest"], r"^[0-9a-f]{16}$", f"digest: {d0}")
        self.assertEqual(d0["positions"], 11)
        self.assertEqual(s.digest(), d0, "digest is stable without changes")
        res = self.push(s)
        d1 = s.digest()
        self.assertNotEqual(d1["digest"], d0["digest"], "a price push changes the digest")
        self.assertGreaterEqual(d1["seq"], res["seq"])
        ws = s.get("/v1/ws")
        self.assertEqual(ws.status, 426, f"plain GET /v1/ws: {ws}")
        self.assertEqual(ws.json()["error"]["code"], "bad_request")
        self.assertIn("WebSocket", ws.json()["error"]["message"])
        risk = s.get("/v1/risk")
        self.assertEqual(risk.status, 200, f"/v1/risk: {risk}")
        risk.json()

    def test_assets_after_push(self):
        s = self.start_server()
        cfg, _ = load_market()
        assets = s.get_json("/v1/assets")["assets"]
        self.assertEqual([a["symbol"] for a in assets], [a["symbol"] for a in cfg["assets"]])
        for got, want in zip(assets, cfg["assets"]):
            self.assertEqual(got["price"], want["price"], f"{got}")
            self.assertIn("reference_price", got, f"{got}")
            self.assertIsNone(got.get("derived", "missing"), f"derived: {got}")
            if "pool" in want:
                self.assertEqual(got["pool"], {"base": want["pool"]["base"],
                                               "quote": want["pool"]["quote"]}, f"{got}")
            else:
                self.assertIsNone(got.get("pool", "missing"), f"pool: {got}")
        res = self.push(s)
        self.assertEqual(res.get("applied"), 2, f"POST /v1/prices: {res}")
        self.assertEqual(res.get("alerts"), 7, f"7 crossings (README.md): {res}")
        self.assertIsInstance(res.get("seq"), int)
        assets = {a["symbol"]: a for a in s.get_json("/v1/assets")["assets"]}
        for sym, p in NEW_PRICES.items():
            self.assertEqual(assets[sym]["price"], p, f"{sym} after the push: {assets[sym]}")
        self.assertEqual(assets["WBTC"]["price"], 60000.0)
        summary = s.get_json("/v1/summary")
        self.assertEqual(summary["prices"], {a: assets[a]["price"] for a in assets})

    def test_alert_count_excludes_price_events(self):
        # POST /v1/prices answers `alerts`: the alert events it caused. Price events
        # published for a prices subscriber are not alerts.
        s = self.start_server()

        async def run():
            c = await Ws.connect(s)
            await c.request({"op": "subscribe", "id": 1, "channels": ["prices", "alerts"]})
            res = await asyncio.to_thread(self.push, s)
            await c.wait_for(lambda m: m.get("type") == "price" and m["asset"] == "LINK")
            await harness.settle(0.3)
            n_alerts = len(c.events(("alert",)))
            await c.close()
            return res, n_alerts

        res, n_alerts = asyncio.run(run())
        self.assertEqual(n_alerts, 7)
        self.assertEqual(res.get("alerts"), 7, f"`alerts` counts alerts only: {res}")

    def test_position_hf_matches_cascade_health(self):
        s = self.start_server()
        cfg, positions = load_market()
        h0 = cli_health(scenario_doc())
        for p in positions:
            got = s.get_json(f"/v1/positions/{p['id']}")
            self.assertTrue(rel_close(got["hf"], h0[p["id"]]), f"{p['id']} before: {got}")
        self.push(s)
        h1 = cli_health(scenario_doc(prices=NEW_PRICES))
        prices = {a["symbol"]: NEW_PRICES.get(a["symbol"], a["price"]) for a in cfg["assets"]}
        for p in positions:
            pid = p["id"]
            got = s.get_json(f"/v1/positions/{urllib.parse.quote(pid)}")
            self.assertEqual(got.get("id"), pid)
            self.assertEqual(got.get("protocol"), p["protocol"])
            self.assertEqual(got.get("owner"), p.get("owner"), f"{pid}: {got}")
            self.assertTrue(rel_close(got.get("hf"), h1[pid]),
                            f"{pid}: hf {got.get('hf')}, cascade health says {h1[pid]}")
            self.assertEqual(got.get("band"), expected_band(h0[pid], h1[pid], cfg),
                             f"{pid}: {got}")
            coll = sum(l["collateral"] * prices[l["asset"]] for l in p["legs"])
            debt = sum(l["debt"] * prices[l["asset"]] for l in p["legs"])
            self.assertTrue(rel_close(got.get("collateral_usd"), coll), f"{pid}: {got}")
            self.assertTrue(rel_close(got.get("debt_usd"), debt), f"{pid}: {got}")
            self.assertEqual(got.get("legs"), p["legs"], f"{pid}: legs")

    def test_positions_listing_and_pagination(self):
        s = self.start_server()
        self.push(s)
        h1 = cli_health(scenario_doc(prices=NEW_PRICES))
        cfg, positions = load_market()
        proto_of = {p["id"]: p["protocol"] for p in positions}
        h0 = cli_health(scenario_doc())

        def expect(max_hf, pred=lambda pid: True):
            rows = [(hf, pid) for pid, hf in h1.items() if hf is not None and hf <= max_hf
                    and pred(pid)]
            return [pid for hf, pid in sorted(rows)]

        # Default max_hf 1.1.
        page = s.get_json("/v1/positions")
        ids = [r["id"] for r in page["positions"]]
        self.assertEqual(ids, expect(1.1), f"GET /v1/positions: {page}")
        self.assertIsNone(page.get("next_cursor", "missing"))
        for r in page["positions"]:
            self.assertEqual(set(r), {"id", "protocol", "owner", "hf", "band", "hf_market", "hf_real",
                                      "collateral_real_usd", "pending_liquidation", "insolvent"}, f"{r}")
            self.assertTrue(rel_close(r["hf"], h1[r["id"]]), f"{r}")
            self.assertEqual(r["protocol"], proto_of[r["id"]])
            self.assertEqual(r["band"], expected_band(h0[r["id"]], h1[r["id"]], cfg))
        hfs = [(r["hf"], r["id"]) for r in page["positions"]]
        self.assertEqual(hfs, sorted(hfs), "ascending by (hf, id)")

        # Paginate everything with debt, two at a time.
        seen, cursor, pages = [], None, 0
        while True:
            q = {"max_hf": "10", "limit": "2"}
            if cursor is not None:
                q["cursor"] = cursor
            page = s.get_json("/v1/positions?" + urllib.parse.urlencode(q))
            pages += 1
            self.assertLessEqual(len(page["positions"]), 2, f"limit=2: {page}")
            seen += [(r["hf"], r["id"]) for r in page["positions"]]
            cursor = page.get("next_cursor")
            if cursor is None:
                break
            self.assertIsInstance(cursor, str)
            self.assertLess(pages, 20, "pagination does not end")
        ids = [pid for _, pid in seen]
        self.assertEqual(len(ids), len(set(ids)), f"duplicates across pages: {ids}")
        self.assertEqual(ids, expect(10.0), "pages cover the whole list exactly once, in order")
        self.assertEqual(seen, sorted(seen))

        # Filters.
        page = s.get_json("/v1/positions?protocol=maker&max_hf=10")
        self.assertEqual([r["id"] for r in page["positions"]],
                         expect(10, lambda pid: proto_of[pid] == "maker"))
        held = {p["id"] for p in positions if any(l["asset"] == "WBTC" for l in p["legs"])}
        page = s.get_json("/v1/positions?asset=WBTC&max_hf=10")
        self.assertEqual([r["id"] for r in page["positions"]], expect(10, lambda pid: pid in held))
        page = s.get_json("/v1/positions?max_hf=0.9&limit=10000")
        self.assertEqual([r["id"] for r in page["positions"]], expect(0.9))

    def test_summary(self):
        s = self.start_server()
        self.push(s)
        cfg, positions = load_market()
        h0 = cli_health(scenario_doc())
        h1 = cli_health(scenario_doc(prices=NEW_PRICES))
        summ = s.get_json("/v1/summary")
        self.assertEqual(summ.get("positions"), len(positions))
        self.assertIsInstance(summ.get("seq"), int)
        want = {}
        for p in positions:
            b = expected_band(h0[p["id"]], h1[p["id"]], cfg)
            want.setdefault(p["protocol"], {}).setdefault(b, 0)
            want[p["protocol"]][b] += 1
        total = 0
        self.assertEqual(sorted(summ["protocols"]), sorted(p["name"] for p in cfg["protocols"]))
        for name, bands in summ["protocols"].items():
            for b, v in bands.items():
                self.assertIn(b, BANDS, f"summary band name {b}")
                self.assertEqual(v["positions"], want.get(name, {}).get(b, 0),
                                 f"summary.protocols.{name}.{b}: {v}")
                total += v["positions"]
            for b, n in want.get(name, {}).items():
                self.assertIn(b, bands, f"summary.protocols.{name} lacks {b}")
        self.assertEqual(total, len(positions), "band counts sum to the number of positions")
        self.assertEqual(sum(v["positions"] for v in summ["totals"].values()), len(positions))
        for b, v in summ["totals"].items():
            coll = sum(bands.get(b, {}).get("collateral_usd", 0.0)
                       for bands in summ["protocols"].values())
            self.assertTrue(rel_close(v["collateral_usd"], coll), f"totals.{b}: {v}")

    def test_upsert_get_delete(self):
        s = self.start_server()
        new = {"id": "new1", "protocol": "maker", "owner": "0x999",
               "legs": [{"asset": "ETH", "collateral": 1.0, "debt": 0.0},
                        {"asset": "USDC", "collateral": 0.0, "debt": 1000.0}]}
        res = s.post_json("/v1/positions", {"positions": [new]}, token=ADMIN_TOKEN)
        self.assertEqual(res.get("upserted"), 1, f"{res}")
        self.assertEqual(res.get("alerts"), 0, f"{res}")
        self.assertIsInstance(res.get("seq"), int)
        got = s.get_json("/v1/positions/new1")
        self.assertEqual(got["legs"], new["legs"])
        self.assertEqual(got["owner"], "0x999")
        self.assertEqual(got["protocol"], "maker")
        self.assertTrue(rel_close(got["hf"], 3000.0 * 0.7 / 1000.0), f"{got}")
        self.assertEqual(got["band"], "healthy")
        self.assertEqual(s.get_json("/v1/summary")["positions"], 12)

        # Updating a4 to debt 26000 takes it under 1: an alert with a null cause.
        async def upsert_with_subscriber():
            c = await Ws.connect(s)
            await c.request({"op": "subscribe", "id": 1, "channels": ["alerts"]})
            a4 = {"id": "a4", "protocol": "aave-v3", "owner": "0xbbb",
                  "legs": [{"asset": "ETH", "collateral": 10.0, "debt": 0.0},
                           {"asset": "USDC", "collateral": 0.0, "debt": 26000.0}]}
            res = await asyncio.to_thread(s.post_json, "/v1/positions", {"positions": [a4]},
                                          token=ADMIN_TOKEN)
            alert = await c.wait_for(lambda m: m.get("type") == "alert")
            await c.close()
            return res, alert

        res, alert = asyncio.run(upsert_with_subscriber())
        self.assertEqual((res.get("upserted"), res.get("alerts")), (1, 1), f"{res}")
        self.assertEqual(alert["position"], "a4")
        self.assertEqual((alert["from"], alert["to"]), ("healthy", "liquidatable"), f"{alert}")
        self.assertIsNone(alert["cause"], f"a position update has a null cause: {alert}")
        self.assertEqual(alert["price"], 0, f"a position update has price 0: {alert}")
        self.assertTrue(rel_close(alert["hf_after"], 24900.0 / 26000.0), f"{alert}")
        self.assertLessEqual(alert["seq"], res["seq"])
        self.assertTrue(rel_close(s.get_json("/v1/positions/a4")["hf"], 24900.0 / 26000.0))

        res = s.http("DELETE", "/v1/positions/new1", token=ADMIN_TOKEN)
        self.assertEqual(res.status, 200, f"{res}")
        body = res.json()
        self.assertEqual(body.get("removed"), "new1", f"{body}")
        self.assertIsInstance(body.get("seq"), int)
        r = s.get("/v1/positions/new1")
        self.assertEqual(r.status, 404, f"{r}")
        self.assertEqual(r.json()["error"]["code"], "unknown_position")
        r = s.http("DELETE", "/v1/positions/new1", token=ADMIN_TOKEN)
        self.assertEqual(r.status, 404, f"{r}")
        self.assertEqual(r.json()["error"]["code"], "unknown_position")
        self.assertEqual(s.get_json("/v1/summary")["positions"], 11)

    def test_position_ids_round_trip_in_the_path(self):
        # Any id POST /v1/positions accepts can be read and deleted by its %-encoded path.
        s = self.start_server()
        ids = ["a b", "c%d", "d\u00e9", "e+f", "g?h#i", "b/c"]
        res = s.post_json("/v1/positions", {"positions": [
            {"id": pid, "protocol": "maker", "legs": [
                {"asset": "ETH", "collateral": 1.0, "debt": 0.0}]} for pid in ids]},
            token=ADMIN_TOKEN)
        self.assertEqual(res["upserted"], len(ids))
        for pid in ids:
            with self.subTest(id=pid):
                path = "/v1/positions/" + urllib.parse.quote(pid, safe="")
                r = s.get(path)
                self.assertEqual(r.status, 200, f"GET {path} for id {pid!r}: {r}")
                self.assertEqual(r.json()["id"], pid)
                r = s.http("DELETE", path, token=ADMIN_TOKEN)
                self.assertEqual(r.status, 200, f"DELETE {path} for id {pid!r}: {r}")

    def test_stress_full_scenarios_byte_for_byte(self):
        s = self.start_server()
        files = sorted(glob.glob(os.path.join(EXAMPLES, "scenario_*.json")))
        checked = 0
        for path in files:
            with open(path, "rb") as f:
                body = f.read()
            if "positions" not in json.loads(body):
                continue
            cli = run_cli("stress", path).stdout
            r = s.http("POST", "/v1/stress", body=body)
            self.assertEqual(r.status, 200, f"POST /v1/stress {os.path.basename(path)}: {r}")
            self.assertEqual(r.data.rstrip(b"\n"), cli.rstrip(b"\n"),
                             f"POST /v1/stress {os.path.basename(path)} differs from "
                             f"`cascade stress`")
            checked += 1
        self.assertGreaterEqual(checked, 3, f"scenario examples with positions in {EXAMPLES}")
        d0 = s.digest()
        # A full scenario runs on its own book: the live state is untouched.
        self.assertEqual(s.digest(), d0)

    def test_stress_live_book(self):
        s = self.start_server()
        # proto/examples/scenario_live_book.json: no positions, so the live book.
        path = os.path.join(EXAMPLES, "scenario_live_book.json")
        with open(path, "rb") as f:
            body = f.read()
        doc = json.loads(body)
        self.assertNotIn("positions", doc)
        d0 = s.digest()
        r = s.http("POST", "/v1/stress", body=body, token=READ_TOKEN)
        self.assertEqual(r.status, 200, f"POST /v1/stress (live): {r}")
        args = ["stress", "--config", MARKET]
        for sym, x in doc["shocks"].items():
            args += ["--shock", f"{sym}={x!r}"]
        want = harness.loads(run_cli(*args).stdout)
        assert_json_close(self, r.json(), want, "live stress")
        self.assertEqual(s.digest(), d0, "a live-book stress changes nothing")

        # After a push, at the live prices: the equivalent scenario document.
        self.push(s)
        r = s.http("POST", "/v1/stress", body={"shocks": {"ETH": -0.1}, "max_rounds": 50})
        self.assertEqual(r.status, 200, f"{r}")
        want = cli_stress(scenario_doc(prices=NEW_PRICES, shocks={"ETH": -0.1}, max_rounds=50))
        assert_json_close(self, r.json(), want, "live stress after the push")
        # Only shocks: assets and protocols are optional.
        r = s.http("POST", "/v1/stress", body={"shocks": {}})
        self.assertEqual(r.status, 200, f"{r}")
        want = cli_stress(scenario_doc(prices=NEW_PRICES))
        assert_json_close(self, r.json(), want, "live stress, no shock")

    def test_cascade_projection(self):
        s = self.start_server()
        c0 = s.get_json("/v1/cascade")
        self.assertIs(c0.get("stale"), False, f"{c0}")
        self.assertEqual(c0.get("liquidatable_now"), 0, f"{c0}")
        self.assertEqual(c0.get("rounds"), 0, f"{c0}")
        self.assertIsInstance(c0.get("seq"), int)
        self.push(s, {"ETH": 2400.0})
        c1 = s.get_json("/v1/cascade")
        rep = cli_stress(scenario_doc(prices={"ETH": 2400.0}))
        self.assertIs(c1.get("stale"), False)
        self.assertEqual(c1["rounds"], len(rep["round_detail"]))
        self.assertGreaterEqual(c1["rounds"], 1)
        self.assertEqual(c1["liquidatable_now"], 4)
        self.assertEqual(c1["positions_liquidated"], rep["positions_liquidated"])
        self.assertTrue(rel_close(c1["repaid_usd"], rep["total_repaid_usd"]))
        self.assertTrue(rel_close(c1["seized_usd"], rep["total_seized_usd"]))
        assert_json_close(self, c1["bad_debt_usd"], rep["bad_debt_usd"], "bad_debt_usd")
        assert_json_close(self, c1["final_prices"], rep["final_prices"], "final_prices")
        assert_json_close(self, c1["liquidated"],
                          {n: p["liquidated"] for n, p in rep["protocols"].items()},
                          "liquidated")
        for k in ("type", "ingest_ns", "emit_ns"):
            self.assertNotIn(k, c1, f"GET /v1/cascade has no envelope field {k}")

    def test_curves(self):
        s = self.start_server()
        got = s.get_json("/v1/curves?asset=ETH")
        for k in ("liquidation_curve", "cascade_curve", "critical_shock"):
            self.assertIn(k, got, f"/v1/curves: {sorted(got)}")
        self.assertGreater(len(got["liquidation_curve"]), 10)
        self.assertGreater(len(got["cascade_curve"]), 10)
        want = harness.loads(run_cli("curves", "--config", MARKET, "--asset", "ETH").stdout)
        assert_json_close(self, got, want, "curves (live book == config book)")


if __name__ == "__main__":
    harness.main()
