"""Oracle failure and the blind spot (issue 5) through the real server: price sources
judged and aggregated, a Chainlink-style and an OSM-style protocol oracle, pending
liquidations, hidden insolvency, the `pending`, `insolvency` and `oracle` channels, GET
/v1/oracles, /v1/hidden, /v1/assets' oracle prices, /v1/summary's hidden totals and the
metrics, every number worked by hand below.

The market (written by the test into a temporary directory):
  ETH  2000, pool 1000 ETH / 2,000,000 USD (k = 2e9)
  LINK   10, pool 10,000 LINK / 100,000 USD
  USDC, DAI 1, no pool
  aave  (pooled; close factor 0.5 above HF 0.95): ETH threshold 0.80 bonus 0.05,
        LINK 0.70 / 0.10
  maker (cdp; close factor 1): ETH 0.75 / 0.13
  [oracle] max_age_s 60, outlier 0.10, divergence 0.02
  feeds: aave/ETH Chainlink-like (deviation 1%, heartbeat 1 h);
         maker/ETH OSM-like (heartbeat 1 h, delay 1 h, deviation never reached)
Positions (CSV):
  a1 aave  5 ETH / 7960 USDC: HF 8000/7960 = 1.005 (danger)
  h1 aave  2 ETH / 1000 USDC: HF 3.2
  k1 aave  100 LINK / 300 USDC: HF 2.33
  m1 maker 10 ETH / 14000 DAI: HF 15000/14000 = 1.071 (warn)
Nothing is pending or insolvent at load: 5 ETH sold into the pool fetch
2e6 x 5 / 1005 = 9950 > 7960, 10 ETH 19802 > 14000, 100 LINK 990 > 300.

    /usr/bin/python3 tests/server/integration/test_oracle.py --cascade BUILD/cascade
"""

import asyncio
import json
import math
import os
import re
import tempfile

import harness
from harness import ADMIN_TOKEN, EXAMPLES, PRICE_TOKEN, AsyncServerCase, Ws, rel_close

try:  # Debian's python3-jsonschema; the shape checks fall back to the examples' keys
    import jsonschema
except ImportError:  # pragma: no cover
    jsonschema = None

SCHEMAS = os.path.join(harness.REPO, "proto", "schemas", "ws")

CONFIG = """
[server]
bind = "127.0.0.1"
port = 0
anonymous_role = "read"
projection_interval_ms = 0

[[server.tokens]]
token = "it-price-token"
role = "price"

[[server.tokens]]
token = "it-admin-token"
role = "admin"

[bands]
warn = 1.10
danger = 1.02
liquidatable = 1.00
hysteresis = 0.005

[positions]
file = "positions.csv"

[[assets]]
symbol = "ETH"
price = 2000.0
pool = { base = 1000.0, quote = 2000000.0 }

[[assets]]
symbol = "LINK"
price = 10.0
pool = { base = 10000.0, quote = 100000.0 }

[[assets]]
symbol = "USDC"
price = 1.0

[[assets]]
symbol = "DAI"
price = 1.0

[[protocols]]
name = "aave"
kind = "pooled"
close_factor = 0.5
full_liquidation_hf = 0.95
[protocols.assets]
ETH = { liquidation_threshold = 0.80, liquidation_bonus = 0.05 }
LINK = { liquidation_threshold = 0.70, liquidation_bonus = 0.10 }

[[protocols]]
name = "maker"
kind = "cdp"
close_factor = 1.0
full_liquidation_hf = 1.0
[protocols.assets]
ETH = { liquidation_threshold = 0.75, liquidation_bonus = 0.13 }

[oracle]
max_age_s = 60
outlier = 0.10
divergence = 0.02

# Chainlink-like: publishes on a 1% move or hourly.
[[oracle.feed]]
protocol = "aave"
asset = "ETH"
deviation = 0.01
heartbeat_s = 3600

# Maker OSM-like: one publication an hour, seen an hour later.
[[oracle.feed]]
protocol = "maker"
asset = "ETH"
deviation = 1e9
heartbeat_s = 3600
delay_s = 3600
"""

POSITIONS = """id,protocol,asset,collateral,debt,owner
a1,aave,ETH,5,0,0xa1
a1,aave,USDC,0,7960,0xa1
h1,aave,ETH,2,0,0xh1
h1,aave,USDC,0,1000,0xh1
k1,aave,LINK,100,0,0xk1
k1,aave,USDC,0,300,0xk1
m1,maker,ETH,10,0,0xm1
m1,maker,DAI,0,14000,0xm1
"""

T0 = 1700000000.0
ETH_POOL = (1000.0, 2000000.0)
LINK_POOL = (10000.0, 100000.0)
CHANNELS = ("alerts", "cascades", "prices", "pending", "insolvency", "oracle")
NEW_TYPES = ("pending_liquidation", "insolvency", "oracle")
ORACLE_KINDS = ("source_invalid", "source_valid", "feed_stale", "feed_fresh", "divergence",
                "convergence", "no_valid_source")


def proceeds(pool, price, ahead, q):
    """USD fetched by selling q units after `ahead` units, into a constant-product pool
    moved to `price` at constant k (DESIGN.md step 1; engine/liquidity.hpp)."""
    base, quote = pool
    if quote / base != price:
        k = base * quote
        base, quote = math.sqrt(k / price), math.sqrt(k * price)
    before = quote * ahead / (base + ahead) if ahead > 0 else 0.0
    return quote * (ahead + q) / (base + ahead + q) - before


# --- metrics ---------------------------------------------------------------------------

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def metric_samples(text):
    """[(name, {label: value}, float)] of a Prometheus text page."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if m:
            out.append((m.group(1), dict(LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return out


def metric(samples, name, **labels):
    """The value of the one sample of `name` with exactly these labels (None if absent)."""
    got = [v for n, l, v in samples if n == name and l == labels]
    if len(got) > 1:
        raise AssertionError(f"{name}{labels}: {len(got)} samples")
    return got[0] if got else None


# --- message shapes ----------------------------------------------------------------------

def _load_schemas():
    if jsonschema is None:
        return None
    store = {}
    for name in os.listdir(SCHEMAS):
        if name.endswith(".schema.json"):
            with open(os.path.join(SCHEMAS, name)) as f:
                d = json.load(f)
            store[d["$id"]] = d
    return store


SCHEMA_STORE = _load_schemas()


def example(t):
    with open(os.path.join(EXAMPLES, "ws", f"server_{t}.json")) as f:
        return json.load(f)


class OracleCase(AsyncServerCase):

    def setUp(self):
        super().setUp()
        d = tempfile.TemporaryDirectory(prefix="cascade-oracle-")
        self.addCleanup(d.cleanup)
        self.config = os.path.join(d.name, "market.toml")
        with open(self.config, "w") as f:
            f.write(CONFIG)
        with open(os.path.join(d.name, "positions.csv"), "w") as f:
            f.write(POSITIONS)
        self.shapes_checked = set()

    def start(self):
        return self.start_server(config=self.config)

    async def connect(self, s, channels=None, filt=None, token=None):
        """A connection subscribed to `channels` (None: never subscribes)."""
        c = await Ws.connect(s, token=token)
        self.addAsyncCleanup(c.close)
        if channels is not None or filt is not None:
            msg = {"op": "subscribe"}
            if channels is not None:
                msg["channels"] = list(channels)
            if filt is not None:
                msg["filter"] = filt
            await c.expect_ack(msg)
        return c

    async def tick(self, c, asset, price, source, ts):
        """One quote over the WebSocket; returns its ack once the engine applied it."""
        return await c.expect_ack({"op": "price", "asset": asset, "price": price,
                                   "source": source, "ts": ts})

    async def get(self, s, path):
        return await asyncio.to_thread(s.get_json, path)

    async def metrics(self, s):
        return metric_samples(await asyncio.to_thread(s.metrics_text))

    async def wait_metrics(self, s, want, timeout=5.0):
        """Polls /metrics until every (name, labels, value) in `want` holds (gauges are
        refreshed once per engine cycle, just after the batch's answers go out)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            samples = await self.metrics(s)
            bad = [(n, l, v, metric(samples, n, **l)) for n, l, v in want
                   if metric(samples, n, **l) is None or not rel_close(metric(samples, n, **l), v)]
            if not bad:
                return samples
            if asyncio.get_running_loop().time() > deadline:
                self.fail("metrics never reached their values: " + "; ".join(
                    f"{n}{l} = {got}, want {v}" for n, l, v, got in bad))
            await asyncio.sleep(0.1)

    def check_shape(self, m):
        """A real pending_liquidation / insolvency / oracle message: the keys of its
        example in proto/examples/ws/, and valid against proto/schemas/ws/."""
        t = m["type"]
        ex = example(t)
        self.assertEqual(sorted(m.keys()), sorted(ex.keys()),
                         f"keys of a real {t} vs proto/examples/ws/server_{t}.json: {m}")
        if SCHEMA_STORE is not None:
            resolver = jsonschema.RefResolver(base_uri="", referrer=None, store=SCHEMA_STORE)
            for root in (f"server_{t}.schema.json", "server_message.schema.json"):
                errors = [e.message for e in jsonschema.Draft202012Validator(
                    SCHEMA_STORE[root], resolver=resolver).iter_errors(m)]
                self.assertEqual(errors, [], f"{t} against {root}: {m}")
        self.shapes_checked.add(t)

    def assert_fields(self, got, want, what):
        for k, v in want.items():
            if isinstance(v, float) and not isinstance(v, bool):
                self.assertTrue(rel_close(got.get(k), v),
                                f"{what}.{k}: got {got.get(k)!r}, want {v!r} (1e-9 relative); {got}")
            else:
                self.assertEqual(got.get(k), v, f"{what}.{k}: {got}")

    @staticmethod
    def of_type(c, *types):
        return [m for m in c.msgs if m.get("type") in types]


class Sources(OracleCase):

    async def test_median_of_valid_sources_with_an_outlier_and_a_stale_source(self):
        """Four quoting sources of ETH. With three, the outlier could not be left out once
        one of the others is stale (engine/oracle.hpp: outliers are judged only among >= 3
        sources valid on the other counts), so a fourth keeps three of them fresh."""
        s = self.start()
        watch = await self.connect(s, ["oracle"])
        feed = await self.connect(s, token=PRICE_TOKEN)

        # T0: four agreeing quotes: market = median(2000, 2010, 2020, 2030) = 2015.
        await feed.expect_ack({"op": "prices", "prices": [
            {"asset": "ETH", "price": p, "source": src, "ts": T0}
            for src, p in (("binance", 2000), ("coinbase", 2010), ("kraken", 2020),
                           ("okx", 2030))]})
        o = await self.get(s, "/v1/oracles")
        eth = o["assets"][0]
        self.assertEqual(eth["symbol"], "ETH")
        self.assertEqual(eth["market_price"], 2015.0)
        self.assertEqual([(x["name"], x["valid"], x["reason"]) for x in eth["sources"]],
                         [("binance", True, None), ("coinbase", True, None),
                          ("kraken", True, None), ("okx", True, None)])

        # T0+30, over REST: kraken 2600. Judged against median(2000, 2010, 2030, 2600) =
        # 2020: |2600/2020 - 1| = 0.287 > 0.10, an outlier. Market = median(2000, 2010,
        # 2030) = 2010.
        r = await asyncio.to_thread(s.post_json, "/v1/prices", {"prices": [
            {"asset": "ETH", "price": 2600, "source": "kraken", "ts": T0 + 30}]},
            token=PRICE_TOKEN)
        self.assertEqual(r["applied"], 1)
        ev = await watch.wait_for(lambda m: m.get("type") == "oracle")
        self.check_shape(ev)
        self.assert_fields(ev, {"kind": "source_invalid", "asset": "ETH", "protocol": None,
                                "source": "kraken", "reason": "outlier", "price": 2600.0,
                                "reference": 2020.0, "ts": T0 + 30}, "outlier event")
        self.assertEqual((await self.get(s, "/v1/oracles"))["assets"][0]["market_price"], 2010.0)

        # T0+50 okx quotes again (stays fresh); T0+70 coinbase 2012: binance, last quoted
        # at T0, is 70 s old > max_age_s 60: stale. Fresh: 2012, 2030, 2600 (three:
        # kraken is still judged, against 2030, and still an outlier). Market =
        # median(2012, 2030) = 2021.
        await self.tick(feed, "ETH", 2030, "okx", T0 + 50)
        await self.tick(feed, "ETH", 2012, "coinbase", T0 + 70)
        ev = await watch.wait_for(lambda m: m.get("type") == "oracle", start=watch.msgs.index(ev) + 1)
        self.check_shape(ev)
        self.assert_fields(ev, {"kind": "source_invalid", "asset": "ETH", "protocol": None,
                                "source": "binance", "reason": "stale", "price": 2000.0,
                                "reference": 2021.0, "ts": T0 + 70}, "stale event")

        o = await self.get(s, "/v1/oracles")
        self.assertEqual(o["now"], T0 + 70)
        eth = o["assets"][0]
        self.assertEqual(eth["market_price"], 2021.0)
        self.assertEqual(eth["sources"], [
            {"name": "binance", "price": 2000, "ts": T0, "valid": False, "reason": "stale"},
            {"name": "coinbase", "price": 2012, "ts": T0 + 70, "valid": True, "reason": None},
            {"name": "kraken", "price": 2600, "ts": T0 + 30, "valid": False, "reason": "outlier"},
            {"name": "okx", "price": 2030, "ts": T0 + 50, "valid": True, "reason": None}])
        # aave's Chainlink-like feed: 2021 is 1.05% from its last publication (the
        # reference 2000): published. Maker's OSM has not published (no heartbeat yet).
        feeds = {f["protocol"]: f for f in o["feeds"]}
        self.assertEqual(sorted(feeds), ["aave", "maker"])
        self.assert_fields(feeds["aave"], {"asset": "ETH", "price": 2021.0, "aggregate": 2021.0,
                                           "market_price": 2021.0, "divergence": 0.0,
                                           "last_publish_ts": T0 + 70, "stale": False,
                                           "valid_sources": 2}, "aave feed")
        self.assert_fields(feeds["maker"], {"asset": "ETH", "price": 2000.0, "aggregate": 2021.0,
                                            "market_price": 2021.0,
                                            "divergence": 2000 / 2021 - 1,
                                            "last_publish_ts": T0, "stale": False,
                                            "valid_sources": 2}, "maker feed")
        self.assert_fields(o["stats"], {"updates": 7, "out_of_order": 0, "publications": 1,
                                        "heartbeats": 0, "invalid_sources": 2}, "stats")

        assets = {a["symbol"]: a for a in (await self.get(s, "/v1/assets"))["assets"]}
        self.assertEqual(assets["ETH"]["price"], 2021.0)
        self.assertEqual(assets["ETH"]["reference_price"], 2000.0)
        self.assertEqual(assets["ETH"]["oracle"], {"aave": 2021.0, "maker": 2000.0})
        self.assertEqual(assets["LINK"]["oracle"], {"aave": 10.0, "maker": 10.0})

        # T0+80 binance quotes 2015: valid again. Fresh: 2012, 2015, 2030, 2600 (median
        # 2022.5: kraken still out). Market = median(2012, 2015, 2030) = 2015.
        await self.tick(feed, "ETH", 2015, "binance", T0 + 80)
        ev = await watch.wait_for(lambda m: m.get("type") == "oracle", start=watch.msgs.index(ev) + 1)
        self.check_shape(ev)
        self.assert_fields(ev, {"kind": "source_valid", "asset": "ETH", "protocol": None,
                                "source": "binance", "reason": "", "price": 2015.0,
                                "reference": 2015.0, "ts": T0 + 80}, "valid-again event")
        self.assertEqual((await self.get(s, "/v1/oracles"))["assets"][0]["market_price"], 2015.0)
        # 2015 is 0.3% from aave's last publication (2021): not published.
        assets = {a["symbol"]: a for a in (await self.get(s, "/v1/assets"))["assets"]}
        self.assertEqual(assets["ETH"]["price"], 2015.0)
        self.assertEqual(assets["ETH"]["oracle"], {"aave": 2021.0, "maker": 2000.0})

        # A tick older than its source's last quote is ignored (and counted).
        await self.tick(feed, "ETH", 1000, "okx", T0 + 40)
        o = await self.get(s, "/v1/oracles")
        self.assertEqual(o["assets"][0]["market_price"], 2015.0)
        self.assertEqual(o["stats"]["out_of_order"], 1)

        await harness.settle(0.3)
        events = self.of_type(watch, *NEW_TYPES)
        self.assertEqual([(e["kind"], e["source"], e["reason"]) for e in events],
                         [("source_invalid", "kraken", "outlier"),
                          ("source_invalid", "binance", "stale"),
                          ("source_valid", "binance", "")], "exactly the transitions")
        samples = await self.wait_metrics(s, [
            ("cascade_oracle_events_total", {"kind": k},
             float(sum(e["kind"] == k for e in events))) for k in ORACLE_KINDS])
        self.assertEqual(metric(samples, "cascade_oracle_price_usd", protocol="aave", asset="ETH"),
                         2021.0)
        self.assertTrue(rel_close(metric(samples, "cascade_oracle_divergence_ratio",
                                         protocol="maker", asset="ETH"), abs(2000 / 2015 - 1)))


class DelayedOracle(OracleCase):

    async def test_pending_liquidation_until_the_osm_catches_up(self):
        s = self.start()
        everything = await self.connect(s, ["alerts", "pending", "insolvency", "oracle"])
        maker_only = await self.connect(s, ["pending"], {"protocols": ["maker"]})
        aave_only = await self.connect(s, ["pending"], {"protocols": ["aave"]})
        never_subscribed = await self.connect(s)
        defaults = await self.connect(s, channels=None, filt={})
        explicit_defaults = await Ws.connect(s)
        self.addAsyncCleanup(explicit_defaults.close)
        await explicit_defaults.expect_ack({"op": "subscribe"})
        feed = await self.connect(s, token=PRICE_TOKEN)

        def pending(c, pos=None):
            return [m for m in c.msgs if m.get("type") == "pending_liquidation"
                    and (pos is None or m["position"] == pos)]

        # T0: the one source quotes the reference price: the clock starts, nothing moves.
        await self.tick(feed, "ETH", 2000, "cex", T0)

        # T0+10: 1985, 0.75% down: under aave's 1% deviation, so aave still sees 2000.
        # a1: HF at the oracle 8000/7960 = 1.005 (danger, not liquidatable); at market
        # 5 x 1985 x 0.8 / 7960 = 7940/7960 = 0.9975 < 1: pending. It will be liquidated
        # with close factor 0.5 (0.9975 >= 0.95): S = 0.5 x 7960 x 1.05 = 4179. Alone in
        # the queue, it sells its 5 ETH first: pool at 1985.
        await self.tick(feed, "ETH", 1985, "cex", T0 + 10)
        ev = await everything.wait_for(lambda m: m.get("type") == "pending_liquidation")
        self.check_shape(ev)
        real = proceeds(ETH_POOL, 1985.0, 0.0, 5.0)
        self.assert_fields(ev, {
            "position": "a1", "owner": "0xa1", "protocol": "aave", "state": "entered",
            "hf": 8000 / 7960, "hf_market": 7940 / 7960, "collateral_usd": 9925.0,
            "debt_usd": 7960.0, "seize_usd": 4179.0, "collateral_real_usd": real,
            "hf_real": real * 0.8 / 7960, "assets": ["ETH", "USDC"]}, "a1 pending")
        self.assertGreaterEqual(ev["hf"], 1.0)
        self.assertLess(ev["hf_market"], 1.0)
        assets = {a["symbol"]: a for a in (await self.get(s, "/v1/assets"))["assets"]}
        self.assertEqual(assets["ETH"]["price"], 1985.0)
        self.assertEqual(assets["ETH"]["oracle"], {"aave": 2000.0, "maker": 2000.0})
        a1 = await self.get(s, "/v1/positions/a1")
        self.assert_fields(a1, {"band": "danger", "hf": 8000 / 7960, "hf_market": 7940 / 7960,
                                "hf_real": real * 0.8 / 7960, "collateral_real_usd": real,
                                "collateral_usd": 9925.0, "debt_usd": 7960.0,
                                "pending_liquidation": True, "insolvent": False}, "a1")

        # T0+20: 1600. aave publishes at once (20% > 1%): a1 is liquidatable (alert) and
        # no longer pending. Maker's OSM still shows 2000: divergence 2000/1600 - 1 = 25%.
        # m1: HF at 2000 = 15000/14000 = 1.071 (warn); at market 12000/14000 = 0.857:
        # pending, close factor 1 (0.857 < 1): S = 14000 x 1.13 = 15820. The queue: a1
        # (all of its 5 ETH: 7960 x 1.05 = 8358 > C = 8000) then m1's 10 x 15820/16000;
        # m1 sells behind a1's 5 ETH.
        await self.tick(feed, "ETH", 1600, "cex", T0 + 20)
        m1_in = await everything.wait_for(
            lambda m: m.get("type") == "pending_liquidation" and m["position"] == "m1")
        self.check_shape(m1_in)
        real_m1 = proceeds(ETH_POOL, 1600.0, 5.0, 10.0)
        self.assert_fields(m1_in, {
            "owner": "0xm1", "protocol": "maker", "state": "entered", "hf": 15000 / 14000,
            "hf_market": 12000 / 14000, "collateral_usd": 16000.0, "debt_usd": 14000.0,
            "seize_usd": 15820.0, "collateral_real_usd": real_m1,
            "hf_real": real_m1 * 0.75 / 14000, "assets": ["ETH", "DAI"]}, "m1 pending")
        self.assertGreaterEqual(m1_in["hf"], 1.0)
        self.assertLess(m1_in["hf_market"], 1.0)
        a1_out = await everything.wait_for(
            lambda m: m.get("type") == "pending_liquidation" and m["position"] == "a1"
            and m["state"] == "cleared")
        self.check_shape(a1_out)
        self.assert_fields(a1_out, {"protocol": "aave", "hf": 6400 / 7960,
                                    "hf_market": 6400 / 7960, "seize_usd": 8000.0,
                                    "collateral_usd": 8000.0, "debt_usd": 7960.0}, "a1 cleared")
        a1_alert = await everything.wait_for(
            lambda m: m.get("type") == "alert" and m["position"] == "a1")
        self.assert_fields(a1_alert, {"from": "danger", "to": "liquidatable", "cause": "ETH",
                                      "price": 1600.0, "hf_after": 6400 / 7960}, "a1 alert")
        self.assertLess(a1_alert["seq"], a1_out["seq"], "the alert comes before the cleared")
        div = await everything.wait_for(lambda m: m.get("type") == "oracle")
        self.check_shape(div)
        self.assert_fields(div, {"kind": "divergence", "asset": "ETH", "protocol": "maker",
                                 "source": None, "reason": "", "price": 2000.0,
                                 "reference": 1600.0, "ts": T0 + 20}, "divergence")

        hidden = await self.get(s, "/v1/hidden")
        h = hidden["hidden"]
        self.assert_fields(h["protocols"]["maker"], {
            "pending": 1, "pending_debt_usd": 14000.0, "pending_seize_usd": 15820.0,
            "insolvent": 0, "insolvent_debt_usd": 0.0, "shortfall_usd": 0.0}, "maker hidden")
        self.assert_fields(h["protocols"]["aave"], {"pending": 0, "insolvent": 0}, "aave hidden")
        self.assert_fields(h["totals"], {"pending": 1, "pending_debt_usd": 14000.0,
                                         "pending_seize_usd": 15820.0, "insolvent": 0},
                           "hidden totals")
        self.assert_fields(h["queued_units"], {"ETH": 5 + 10 * 15820 / 16000, "LINK": 0.0,
                                               "USDC": 0.0, "DAI": 0.0}, "queued units")
        self.assertEqual(h["queued_positions"], 2)
        summary = await self.get(s, "/v1/summary")
        self.assertEqual(summary["seq"], hidden["seq"])
        self.assertEqual(summary["hidden"], h, "GET /v1/summary's hidden is GET /v1/hidden's")

        m1 = await self.get(s, "/v1/positions/m1")
        self.assert_fields(m1, {"band": "warn", "hf": 15000 / 14000, "hf_market": 12000 / 14000,
                                "hf_real": real_m1 * 0.75 / 14000,
                                "collateral_real_usd": real_m1, "collateral_usd": 16000.0,
                                "debt_usd": 14000.0, "pending_liquidation": True,
                                "insolvent": False}, "m1")
        page = await self.get(s, "/v1/positions?max_hf=10")
        rows = {r["id"]: r for r in page["positions"]}
        self.assertEqual(sorted(rows), ["a1", "h1", "k1", "m1"])
        self.assert_fields(rows["m1"], {"pending_liquidation": True, "insolvent": False,
                                        "hf_market": 12000 / 14000,
                                        "collateral_real_usd": real_m1}, "m1 row")
        self.assert_fields(rows["a1"], {"band": "liquidatable", "pending_liquidation": False},
                           "a1 row")

        o = await self.get(s, "/v1/oracles")
        feeds = {f["protocol"]: f for f in o["feeds"]}
        self.assert_fields(feeds["maker"], {"price": 2000.0, "aggregate": 1600.0,
                                            "divergence": 0.25, "last_publish_ts": T0},
                           "maker feed")
        self.assert_fields(feeds["aave"], {"price": 1600.0, "divergence": 0.0,
                                           "last_publish_ts": T0 + 20}, "aave feed")
        await self.wait_metrics(s, [
            ("cascade_pending_liquidation_positions", {"protocol": "maker"}, 1.0),
            ("cascade_pending_liquidation_positions", {"protocol": "aave"}, 0.0),
            ("cascade_pending_liquidation_seize_usd", {"protocol": "maker"}, 15820.0),
            ("cascade_hidden_insolvent_positions", {"protocol": "maker"}, 0.0),
            ("cascade_hidden_insolvent_positions", {"protocol": "aave"}, 0.0),
            ("cascade_oracle_divergence_ratio", {"protocol": "maker", "asset": "ETH"}, 0.25),
            ("cascade_oracle_divergence_ratio", {"protocol": "aave", "asset": "ETH"}, 0.0),
            ("cascade_oracle_price_usd", {"protocol": "maker", "asset": "ETH"}, 2000.0),
        ])

        # T0+3600: the OSM's heartbeat publishes 1600, visible only at T0+7200: m1 is
        # still pending, nothing new happens.
        n_pending = len(pending(everything))
        await self.tick(feed, "ETH", 1600, "cex", T0 + 3600)
        o = await self.get(s, "/v1/oracles")
        feeds = {f["protocol"]: f for f in o["feeds"]}
        self.assert_fields(feeds["maker"], {"price": 2000.0, "aggregate": 1600.0,
                                            "last_publish_ts": T0 + 3600}, "maker after heartbeat")
        self.assertEqual(o["stats"]["heartbeats"], 1)
        m1 = await self.get(s, "/v1/positions/m1")
        self.assert_fields(m1, {"band": "warn", "pending_liquidation": True}, "m1 at T0+3600")
        self.assertEqual(
            (await self.get(s, "/v1/hidden"))["hidden"]["protocols"]["maker"]["pending"], 1)

        # T0+7200: the publication of T0+3600 matures: maker sees 1600, m1 is
        # liquidatable (alert warn -> liquidatable) and no longer pending; the oracle
        # converges.
        await self.tick(feed, "ETH", 1600, "cex", T0 + 7200)
        m1_out = await everything.wait_for(
            lambda m: m.get("type") == "pending_liquidation" and m["position"] == "m1"
            and m["state"] == "cleared")
        self.check_shape(m1_out)
        self.assert_fields(m1_out, {"protocol": "maker", "hf": 12000 / 14000,
                                    "hf_market": 12000 / 14000, "seize_usd": 15820.0},
                           "m1 cleared")
        m1_alert = await everything.wait_for(
            lambda m: m.get("type") == "alert" and m["position"] == "m1")
        self.assert_fields(m1_alert, {"from": "warn", "to": "liquidatable", "cause": "ETH",
                                      "price": 1600.0, "hf_before": 15000 / 14000,
                                      "hf_after": 12000 / 14000}, "m1 alert")
        self.assertLess(m1_alert["seq"], m1_out["seq"])
        conv = await everything.wait_for(
            lambda m: m.get("type") == "oracle" and m["kind"] == "convergence")
        self.check_shape(conv)
        self.assert_fields(conv, {"asset": "ETH", "protocol": "maker", "source": None,
                                  "price": 1600.0, "reference": 1600.0, "ts": T0 + 7200},
                           "convergence")
        self.assertEqual(len(pending(everything)), n_pending + 1)
        m1 = await self.get(s, "/v1/positions/m1")
        self.assert_fields(m1, {"band": "liquidatable", "pending_liquidation": False}, "m1 end")
        h = (await self.get(s, "/v1/hidden"))["hidden"]
        self.assertEqual((h["totals"]["pending"], h["totals"]["insolvent"]), (0, 0))
        assets = {a["symbol"]: a for a in (await self.get(s, "/v1/assets"))["assets"]}
        self.assertEqual(assets["ETH"]["oracle"], {"aave": 1600.0, "maker": 1600.0})

        # The cascade the last batch projects comes after its pending events: once every
        # default subscriber has it, they have had every chance to get the rest.
        last = m1_out["seq"]
        for c in (defaults, explicit_defaults):
            await c.wait_for(lambda m: m.get("type") == "cascade" and m["seq"] > last)
        await harness.settle(0.3)

        # Exactly the transitions, each once.
        self.assertEqual([(m["position"], m["state"]) for m in pending(everything)],
                         [("a1", "entered"), ("a1", "cleared"), ("m1", "entered"),
                          ("m1", "cleared")])
        self.assertEqual(self.of_type(everything, "insolvency"), [])
        oracle_events = self.of_type(everything, "oracle")
        self.assertEqual([(e["kind"], e["protocol"]) for e in oracle_events],
                         [("divergence", "maker"), ("convergence", "maker")])
        # Filtered by protocol: that protocol's pending events only, and nothing else.
        self.assertEqual([(m["position"], m["state"]) for m in self.of_type(
            maker_only, "alert", "cascade", "price", *NEW_TYPES)],
                         [("m1", "entered"), ("m1", "cleared")])
        self.assertEqual([(m["position"], m["state"]) for m in self.of_type(
            aave_only, "alert", "cascade", "price", *NEW_TYPES)],
                         [("a1", "entered"), ("a1", "cleared")])
        # The default subscription (alerts, cascades) gets none of the new events; a
        # connection that never subscribed gets no event at all.
        for name, c in (("filter only", defaults),
                        ("subscribe without channels", explicit_defaults)):
            with self.subTest(subscriber=name):
                self.assertEqual(self.of_type(c, *NEW_TYPES), [])
                self.assertEqual(sorted(m["position"] for m in self.of_type(c, "alert")),
                                 ["a1", "m1"])
        self.assertEqual([m["type"] for m in never_subscribed.msgs], ["hello"])

        # Counters match the events received.
        await self.wait_metrics(s, [
            ("cascade_pending_liquidation_events_total", {}, float(len(pending(everything)))),
            ("cascade_insolvency_events_total", {}, 0.0),
            ("cascade_pending_liquidation_positions", {"protocol": "maker"}, 0.0),
            ("cascade_oracle_divergence_ratio", {"protocol": "maker", "asset": "ETH"}, 0.0),
            ("cascade_oracle_divergence_ratio", {"protocol": "aave", "asset": "ETH"}, 0.0),
        ] + [("cascade_oracle_events_total", {"kind": k},
              float(sum(e["kind"] == k for e in oracle_events))) for k in ORACLE_KINDS])
        self.assertEqual(self.shapes_checked, {"pending_liquidation", "oracle"})


class HiddenInsolvency(OracleCase):

    W1 = {"id": "w1", "protocol": "aave", "owner": "0xw1",
          "legs": [{"asset": "LINK", "collateral": 20000, "debt": 0},
                   {"asset": "USDC", "collateral": 0, "debt": 100000}]}

    async def upsert(self, s, *positions):
        return await asyncio.to_thread(s.post_json, "/v1/positions",
                                       {"positions": list(positions)}, token=ADMIN_TOKEN)

    async def test_insolvency_event_on_upsert_of_a_position_larger_than_its_pool(self):
        """w1: 20,000 LINK ($200,000 at the oracle) against $100,000: HF 1.4, healthy.
        The pool holds 10,000 LINK / $100,000: selling 20,000 LINK into it fetches
        100,000 x 20,000 / 30,000 = $66,666.67 < $100,000: hidden insolvency."""
        s = self.start()
        watch = await self.connect(s, ["alerts", "pending", "insolvency"])
        default = await self.connect(s)
        feed = await self.connect(s, token=PRICE_TOKEN)

        answer = await self.upsert(s, self.W1)
        self.assertEqual(answer["upserted"], 1)
        ev = await watch.wait_for(lambda m: m.get("type") == "insolvency")
        self.check_shape(ev)
        real = LINK_POOL[1] * 20000 / (LINK_POOL[0] + 20000)
        self.assertTrue(rel_close(proceeds(LINK_POOL, 10.0, 0.0, 20000.0), real))
        self.assert_fields(ev, {
            "position": "w1", "owner": "0xw1", "protocol": "aave", "state": "entered",
            "hf": 1.4, "hf_market": 1.4, "collateral_usd": 200000.0, "debt_usd": 100000.0,
            "collateral_real_usd": real, "hf_real": real * 0.7 / 100000,
            "shortfall_usd": 100000 - real, "assets": ["LINK", "USDC"]}, "w1 insolvency")
        w1 = await self.get(s, "/v1/positions/w1")
        self.assert_fields(w1, {"band": "healthy", "hf": 1.4, "hf_market": 1.4,
                                "hf_real": real * 0.7 / 100000, "collateral_real_usd": real,
                                "collateral_usd": 200000.0, "debt_usd": 100000.0,
                                "insolvent": True, "pending_liquidation": False}, "w1")
        self.assertLess(w1["hf_real"], w1["hf"])
        hidden = await self.get(s, "/v1/hidden")
        h = hidden["hidden"]
        self.assert_fields(h["protocols"]["aave"], {
            "pending": 0, "insolvent": 1, "insolvent_debt_usd": 100000.0,
            "shortfall_usd": 100000 - real}, "aave hidden")
        self.assert_fields(h["protocols"]["maker"], {"pending": 0, "insolvent": 0}, "maker")
        self.assert_fields(h["totals"], {"insolvent": 1, "shortfall_usd": 100000 - real},
                           "totals")
        self.assertEqual(h["queued_positions"], 0)
        summary = await self.get(s, "/v1/summary")
        self.assertEqual(summary["hidden"], h)
        await self.wait_metrics(s, [
            ("cascade_hidden_insolvent_positions", {"protocol": "aave"}, 1.0),
            ("cascade_hidden_insolvent_positions", {"protocol": "maker"}, 0.0),
            ("cascade_hidden_insolvency_shortfall_usd", {"protocol": "aave"}, 100000 - real),
            ("cascade_insolvency_events_total", {}, 1.0),
        ])
        with self.subTest(check="POST /v1/positions counts alerts only"):
            # w1 is new and healthy: no band crossing, so no alert; the insolvency event
            # is not an alert (PROTOCOL.md: `{"upserted": N, "alerts": K, ...}`).
            self.assertEqual(self.of_type(watch, "alert"), [])
            self.assertEqual(answer["alerts"], 0,
                             f"the answer counts the insolvency event as an alert: {answer}")

        # LINK quoted at 20: the pool moves to 20 (base 7071.07, quote 141421.36) and
        # 20,000 LINK fetch 104,481 > 100,000: cleared.
        await self.tick(feed, "LINK", 20.0, "dex", T0)
        out = await watch.wait_for(lambda m: m.get("type") == "insolvency"
                                   and m["state"] == "cleared")
        self.check_shape(out)
        real20 = proceeds(LINK_POOL, 20.0, 0.0, 20000.0)
        self.assertGreater(real20, 100000)
        self.assert_fields(out, {"position": "w1", "hf": 2.8, "hf_market": 2.8,
                                 "collateral_usd": 400000.0, "collateral_real_usd": real20,
                                 "shortfall_usd": 100000 - real20}, "w1 cleared")
        h = (await self.get(s, "/v1/hidden"))["hidden"]
        self.assertEqual(h["totals"]["insolvent"], 0)

        # Back to 10: insolvent again (a new transition, a new event).
        await self.tick(feed, "LINK", 10.0, "dex", T0 + 1)
        again = await watch.wait_for(lambda m: m.get("type") == "insolvency",
                                     start=watch.msgs.index(out) + 1)
        self.assert_fields(again, {"position": "w1", "state": "entered",
                                   "collateral_real_usd": real}, "w1 insolvent again")
        await self.wait_metrics(s, [("cascade_insolvency_events_total", {}, 3.0)])

        with self.subTest(check="an upsert that ends the insolvency sends `cleared`"):
            # w1 replaced with half the debt: 66,666.67 >= 50,000, no longer insolvent.
            # Alerts of a replaced position compare with its previous band; its statuses
            # must likewise compare with the ones it had, or subscribers keep it insolvent.
            n = len(self.of_type(watch, "insolvency"))
            await self.upsert(s, dict(self.W1, legs=[
                {"asset": "LINK", "collateral": 20000, "debt": 0},
                {"asset": "USDC", "collateral": 0, "debt": 50000}]))
            h = (await self.get(s, "/v1/hidden"))["hidden"]
            self.assertEqual(h["totals"]["insolvent"], 0)
            self.assertFalse((await self.get(s, "/v1/positions/w1"))["insolvent"])
            await harness.settle(0.5)
            self.assertEqual([(m["position"], m["state"])
                              for m in self.of_type(watch, "insolvency")[n:]],
                             [("w1", "cleared")],
                             "no insolvency `cleared` for w1 after the upsert that ended it")

        await harness.settle(0.3)
        self.assertEqual(self.of_type(default, *NEW_TYPES), [])
        self.assertEqual(self.of_type(watch, "pending_liquidation"), [])
        received = len(self.of_type(watch, "insolvency"))
        await self.wait_metrics(s, [("cascade_insolvency_events_total", {}, float(received))])


    async def test_queue_ahead_makes_others_insolvent_and_its_removal_clears_them(self):
        """q1: 500 ETH against 900,000 USDC: HF 0.889, liquidatable on upsert; its
        liquidation takes S = min(1e6, 900,000 x 1.05) = 945,000, i.e. 472.5 ETH queued
        ahead of every other ETH seller. m1's 10 ETH then fetch
        proceeds(ahead 472.5, 10) = 9,162 < 14,000 and a1's 5 ETH 4,616 < 7,960: both
        hidden-insolvent (h1's 2 ETH, 1,850 > 1,000, is not). Deleting q1 empties the
        queue: both are solvent again, and subscribers must hear it."""
        s = self.start()
        watch = await self.connect(s, ["insolvency"])
        q1 = {"id": "q1", "protocol": "aave", "owner": "0xq1",
              "legs": [{"asset": "ETH", "collateral": 500, "debt": 0},
                       {"asset": "USDC", "collateral": 0, "debt": 900000}]}
        await self.upsert(s, q1)
        ahead = 500 * 945000 / 1e6
        want = {"m1": (proceeds(ETH_POOL, 2000.0, ahead, 10.0), 14000.0),
                "a1": (proceeds(ETH_POOL, 2000.0, ahead, 5.0), 7960.0)}
        for pos, (real, debt) in want.items():
            ev = await watch.wait_for(lambda m: m.get("type") == "insolvency"
                                      and m["position"] == pos)
            self.check_shape(ev)
            self.assert_fields(ev, {"state": "entered", "collateral_real_usd": real,
                                    "debt_usd": debt, "shortfall_usd": debt - real}, pos)
            self.assertTrue(rel_close((await self.get(s, f"/v1/positions/{pos}"))
                                      ["collateral_real_usd"], real))
        h = (await self.get(s, "/v1/hidden"))["hidden"]
        self.assertEqual((h["protocols"]["aave"]["insolvent"], h["protocols"]["maker"]["insolvent"]),
                         (1, 1))
        self.assertTrue(rel_close(h["queued_units"]["ETH"], ahead))
        self.assertEqual(sorted(m["position"] for m in self.of_type(watch, "insolvency")),
                         ["a1", "m1"])

        r = await asyncio.to_thread(s.http, "DELETE", "/v1/positions/q1", token=ADMIN_TOKEN)
        self.assertEqual(r.status, 200, r.text())
        h = (await self.get(s, "/v1/hidden"))["hidden"]
        self.assertEqual(h["totals"]["insolvent"], 0)
        self.assertEqual(h["queued_units"]["ETH"], 0.0)
        self.assertFalse((await self.get(s, "/v1/positions/m1"))["insolvent"])
        await harness.settle(0.5)
        self.assertEqual(sorted((m["position"], m["state"])
                                for m in self.of_type(watch, "insolvency")[2:]),
                         [("a1", "cleared"), ("m1", "cleared")],
                         "the removal of the position queued ahead ended two hidden "
                         "insolvencies without an insolvency `cleared` event")


class BadInput(OracleCase):

    async def test_unknown_channel_is_refused_and_changes_nothing(self):
        s = self.start()
        c = await self.connect(s, ["pending"])
        feed = await self.connect(s, token=PRICE_TOKEN)
        d0 = await asyncio.to_thread(s.digest)
        for op in ("subscribe", "unsubscribe"):
            with self.subTest(op=op):
                err = await c.request({"op": op, "id": f"bad-{op}",
                                       "channels": ["pending", "liquidations"]})
                self.assertEqual(err.get("type"), "error", err)
                self.assertEqual(err["id"], f"bad-{op}")
                self.assertEqual(err["code"], "bad_request")
                self.assertIn("channels[1]", err["message"])
                self.assertIn("'liquidations'", err["message"])
                for name in CHANNELS:
                    self.assertIn(name, err["message"], f"the error names {name}: {err}")
        err = await c.request({"op": "subscribe", "id": 9, "channels": []})
        self.assertEqual((err["type"], err["code"]), ("error", "bad_request"), err)
        for name in CHANNELS:
            self.assertIn(name, err["message"])
        self.assertEqual(await asyncio.to_thread(s.digest), d0,
                         "a refused subscribe changed the engine's state")

        # The subscription is still ["pending"]: a pending event arrives, and no alert.
        await self.tick(feed, "ETH", 2000, "cex", T0)
        await self.tick(feed, "ETH", 1985, "cex", T0 + 10)
        ev = await c.wait_for(lambda m: m.get("type") == "pending_liquidation")
        self.assertEqual((ev["position"], ev["state"]), ("a1", "entered"))
        await self.tick(feed, "ETH", 1600, "cex", T0 + 20)
        await c.wait_for(lambda m: m.get("type") == "pending_liquidation"
                         and m["position"] == "m1")
        await harness.settle(0.3)
        self.assertEqual(self.of_type(c, "alert", "cascade", "price", "oracle", "insolvency"), [])


class Withdrawal(OracleCase):
    """LINK sold through a venue whose depth withdraws under stress: the same pool as
    venue 'amm', with [assets.withdrawal] drawdown_sensitivity = 2 (floor 0.1, half-life
    one hour). The depth follows tick timestamps: down at once, back with the half-life."""

    def setUp(self):
        super().setUp()
        old = 'price = 10.0\npool = { base = 10000.0, quote = 100000.0 }\n'
        new = ('price = 10.0\n[[assets.venues]]\nname = "amm"\n'
               'pool = { base = 10000.0, quote = 100000.0 }\n'
               '[assets.withdrawal]\ndrawdown_sensitivity = 2.0\n')
        assert old in CONFIG
        with open(self.config, "w") as f:
            f.write(CONFIG.replace(old, new))

    async def scales(self, s):
        assets = {a["symbol"]: a for a in (await self.get(s, "/v1/assets"))["assets"]}
        return {k: v["depth_scale"] for k, v in assets.items()}

    async def test_depth_withdraws_with_drawdown_and_recovers_with_the_half_life(self):
        s = self.start()
        feed = await self.connect(s, token=PRICE_TOKEN)
        self.assertEqual(await self.scales(s), {"ETH": 1.0, "LINK": 1.0, "USDC": 1.0, "DAI": 1.0})
        # The first market move starts the running high (a quote at the configured 10
        # moves nothing): 10.5. Then 8.4 at the same instant: drawdown 20%, scale
        # 1 - 2 x 0.2 = 0.6 at once.
        await self.tick(feed, "LINK", 10.5, "dex", T0)
        await self.tick(feed, "LINK", 8.4, "dex", T0)
        self.assertTrue(rel_close((await self.scales(s))["LINK"], 0.6), await self.scales(s))
        # k1 (100 LINK / 300 USDC, nobody queued in LINK) sells into the pool re-centred
        # at 8.4 and scaled to 60% of its depth.
        k = LINK_POOL[0] * LINK_POOL[1]
        base, quote = math.sqrt(k / 8.4), math.sqrt(k * 8.4)
        real = proceeds((0.6 * base, 0.6 * quote), 8.4, 0.0, 100.0)
        k1 = await self.get(s, "/v1/positions/k1")
        self.assert_fields(k1, {"hf": 100 * 8.4 * 0.7 / 300, "collateral_real_usd": real,
                                "hf_real": real * 0.7 / 300}, "k1")
        self.assertLess(real, proceeds(LINK_POOL, 8.4, 0.0, 100.0))
        await self.wait_metrics(s, [
            ("cascade_liquidity_depth_scale", {"asset": "LINK"}, 0.6),
            ("cascade_liquidity_depth_scale", {"asset": "ETH"}, 1.0)])
        # One half-life later at 8.925: the running high decays to 8.925 + (10.5 -
        # 8.925)/2 = 9.7125, target 1 - 2 x (1 - 8.925/9.7125) = 0.8378; the scale goes
        # halfway there: 0.8378 - (0.8378 - 0.6)/2 = 0.7189.
        await self.tick(feed, "LINK", 8.925, "dex", T0 + 3600)
        target = 1 - 2 * (1 - 8.925 / 9.7125)
        want = target - (target - 0.6) / 2
        self.assertTrue(rel_close((await self.scales(s))["LINK"], want), await self.scales(s))
        await self.wait_metrics(s, [("cascade_liquidity_depth_scale", {"asset": "LINK"}, want)])


if __name__ == "__main__":
    harness.main()
