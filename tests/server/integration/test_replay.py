"""`cascade replay`: recorded price series pushed into a real `cascade serve` over its
WebSocket. The series are written by the test in the three CSV formats of
../shared/data (Binance klines, hourly prices, Chainlink rounds); what the server ends
with is read back over REST, and the alerts the replay counts are compared with those an
independent subscriber (the stock websockets client) receives.

    /usr/bin/python3 tests/server/integration/test_replay.py --cascade BUILD/cascade
"""

import asyncio
import os
import re
import shutil
import subprocess
import tempfile

import harness
from harness import PRICE_TOKEN, READ_TOKEN, AsyncServerCase, Ws, free_port

T0 = 1584012660  # 2020-03-12 11:31 UTC, the first candle of Black Thursday's leg 1


def ramp(first, last, n):
    return [first + (last - first) * i / (n - 1) for i in range(n)]


def klines(prices, t0=T0, step=60):
    rows = ["open_time_ms,open,high,low,close,volume_eth"]
    for i, p in enumerate(prices):
        rows.append(f"{(t0 + i * step) * 1000},{p},{p},{p},{p},1.0")
    return "\n".join(rows) + "\n"


def hourly(symbol, prices, t0=T0):
    rows = ["symbol,timestamp,USD_price"]
    for i, p in enumerate(prices):
        rows.append(f"{symbol},{(t0 + i * 3600) * 1000},{p}")
    return "\n".join(rows) + "\n"


def chainlink(prices, t0=T0, decimals=8):
    rows = [",round,answer,start,update,answeredInRound"]
    for i, p in enumerate(prices):
        ts = t0 + i * 3600
        rows.append(f"{i},{1000 + i},{round(p * 10 ** decimals)},{ts},{ts},{1000 + i}")
    rows.append(f"{len(prices)},9999,0,0,0,9999")  # a round that never completed
    return "\n".join(rows) + "\n"


class Replay(AsyncServerCase):

    def write(self, name, text):
        d = tempfile.mkdtemp(prefix="cascade-replay-")
        self.addCleanup(shutil.rmtree, d, True)
        # A folder whose name suggests no asset (the replay also reads the folder's).
        os.mkdir(os.path.join(d, "series"))
        path = os.path.join(d, "series", name)
        with open(path, "w") as f:
            f.write(text)
        return path

    async def replay(self, server, *args, token=PRICE_TOKEN, check=True, env=None):
        """Runs `cascade replay ARGS --url SERVER --token TOKEN` (server None: ARGS hold
        the --url)."""
        cmd = [harness.CASCADE, "replay", *args]
        if server is not None:
            cmd += ["--url", server.ws_url]
        if token is not None:
            cmd += ["--token", token]
        environ = {k: v for k, v in os.environ.items() if not k.startswith("CASCADE_")}
        environ.update(env or {})
        p = await asyncio.to_thread(subprocess.run, cmd, capture_output=True, text=True,
                                    timeout=120, env=environ)
        if check and p.returncode != 0:
            self.fail(f"cascade replay exited {p.returncode}:\nstdout:\n{p.stdout}\n"
                      f"stderr:\n{p.stderr}")
        return p

    def price(self, server, sym):
        return {a["symbol"]: a["price"] for a in server.get_json("/v1/assets")["assets"]}[sym]

    @staticmethod
    def summary_count(stdout, what):
        m = re.search(rf"\b{what} ([\d,]+)", stdout)
        if not m:
            raise AssertionError(f"no '{what} N' in the summary:\n{stdout}")
        return int(m.group(1).replace(",", ""))

    async def test_klines_unpaced_moves_the_price_and_sets_off_alerts(self):
        s = self.start_server()
        watcher = await Ws.connect(s, token=READ_TOKEN)
        self.addAsyncCleanup(watcher.close)
        await watcher.expect_ack({"op": "subscribe", "channels": ["alerts", "cascades"]})
        prices = ramp(3000.0, 2100.0, 20)  # -30%: a1 (HF 1.245 at 3000) ends liquidatable
        path = self.write("ethusdt.csv", klines(prices))
        p = await self.replay(s, path, "--speed", "0", "--asset", "ETH")
        self.assertEqual(self.price(s, "ETH"), prices[-1], p.stdout)
        self.assertIn("sent 20, acknowledged 20, errors 0", p.stdout)
        alerts = self.summary_count(p.stdout, "alerts")
        self.assertGreater(alerts, 0, p.stdout)
        # Every alert the replay counted reached an independent subscriber too.
        await harness.settle(0.5)
        seen = [m for m in watcher.msgs if m.get("type") == "alert"]
        self.assertEqual(len(seen), alerts, p.stdout)
        self.assertTrue(any(m["position"] == "a1" and m["to"] == "liquidatable" for m in seen),
                        seen)
        # Every alert was caused by an ETH tick at one of the file's prices.
        self.assertTrue(all(m["cause"] == "ETH" and m["price"] in prices for m in seen))
        self.assertIn("ETH: file 3000.00 -> 2100.00 (-30.0%", p.stdout)
        # The ticks carried the rows' timestamps: the oracle clock is the last row's.
        self.assertEqual(s.get_json("/v1/oracles")["now"], T0 + 19 * 60)

    async def test_hourly_and_chainlink_name_their_asset(self):
        s = self.start_server()
        a = self.write("WETH_usd.csv", hourly("WETH", [2900.0, 2800.0, 2950.5]))
        p = await self.replay(s, a, "--speed", "0")
        self.assertIn("ETH (from the file's symbol column, WETH is ETH on the server)", p.stderr)
        self.assertEqual(self.price(s, "ETH"), 2950.5)
        b = self.write("LINK_USD_0xabc.csv", chainlink([14.0, 13.25], t0=T0 + 86400))
        # The token may come from the environment instead of --token.
        p = await self.replay(s, b, "--speed", "0", token=None,
                              env={"CASCADE_TOKEN": PRICE_TOKEN})
        self.assertIn("LINK (from the file's name)", p.stderr)
        self.assertEqual(self.price(s, "LINK"), 13.25)
        self.assertIn("sent 2, acknowledged 2", p.stdout)  # the unfinished round is dropped

    async def test_two_files_merge_in_time_order(self):
        s = self.start_server()
        eth = self.write("ETH_USD_a.csv", chainlink([2990.0, 2980.0, 2970.0]))
        link = self.write("LINK_USD_b.csv", chainlink([14.9, 14.8], t0=T0 + 1800))
        watcher = await Ws.connect(s, token=READ_TOKEN)
        self.addAsyncCleanup(watcher.close)
        await watcher.expect_ack({"op": "subscribe", "channels": ["prices"]})
        p = await self.replay(s, eth, link, "--speed", "0", "--window", "1")
        self.assertIn("sent 5, acknowledged 5", p.stdout)
        await harness.settle(0.3)
        order = [(m["asset"], m["price"]) for m in watcher.msgs if m.get("type") == "price"]
        self.assertEqual(order, [("ETH", 2990.0), ("LINK", 14.9), ("ETH", 2980.0),
                                 ("LINK", 14.8), ("ETH", 2970.0)])
        self.assertTrue(all(m["source"] == "replay" for m in watcher.msgs
                            if m.get("type") == "price"))

    async def test_paced_replay_keeps_the_spacing(self):
        s = self.start_server()
        # 5 rows one minute apart at 300x: 0.2 s apart, 0.8 s from first to last.
        path = self.write("ETH_USD_paced.csv", klines([3000, 2990, 2980, 2970, 2960]))
        watcher = await Ws.connect(s, token=READ_TOKEN)
        self.addAsyncCleanup(watcher.close)
        await watcher.expect_ack({"op": "subscribe", "channels": ["prices"]})
        p = await self.replay(s, path, "--speed", "300")
        await harness.settle(0.3)
        ticks = [m for m in watcher.msgs if m.get("type") == "price"]
        self.assertEqual(len(ticks), 5, p.stdout)
        self.assertEqual([m["ts"] for m in ticks], [T0 + 60 * i for i in range(5)])
        # Pacing is a lower bound (a row is never sent before its time), so this holds on
        # any machine however slow: the last row went out 0.8 s after the first at least.
        m = re.search(r"replayed 5 of 5 rows in ([\d.]+) s \(300x\)", p.stdout)
        self.assertTrue(m, p.stdout)
        self.assertGreaterEqual(float(m.group(1)), 0.8, p.stdout)

    async def test_rebase_starts_from_the_servers_price(self):
        s = self.start_server()
        s.post_json("/v1/prices", {"prices": [{"asset": "ETH", "price": 2500.0, "source": "replay",
                                               "ts": T0 - 100}]}, token=PRICE_TOKEN)
        path = self.write("ethusdt_bt.csv", klines([139.36, 120.0, 104.52]))
        p = await self.replay(s, path, "--speed", "0", "--asset", "ETH", "--rebase")
        want = 104.52 * 2500.0 / 139.36
        self.assertAlmostEqual(self.price(s, "ETH"), want, delta=want * 1e-12)
        self.assertIn("rebased x", p.stderr)
        # Without --rebase, a far-off series is sent as it is, with a note.
        p = await self.replay(s, path, "--speed", "0", "--asset", "ETH")
        self.assertIn("--rebase replays the moves from the current price", p.stderr)
        self.assertEqual(self.price(s, "ETH"), 104.52)

    async def test_a_series_older_than_the_oracle_clock_is_shifted(self):
        s = self.start_server()
        path = self.write("ETH_USD_twice.csv", chainlink([2800.0, 2700.0]))
        await self.replay(s, path, "--speed", "0")
        self.assertEqual(self.price(s, "ETH"), 2700.0)
        now = s.get_json("/v1/oracles")["now"]
        self.assertEqual(now, T0 + 3600)
        # The same timestamps again would be older than the source's last quote, which the
        # server ignores: the replay moves them after the clock, spacing kept.
        again = self.write("ETH_USD_again.csv", chainlink([2650.0, 2600.0]))
        p = await self.replay(s, again, "--speed", "0")
        self.assertIn("timestamps shifted by +3601 s", p.stderr)
        self.assertEqual(self.price(s, "ETH"), 2600.0)
        self.assertEqual(s.get_json("/v1/oracles")["now"], now + 3601)  # T0 + 3601 + 3600

    async def test_from_and_to_select_rows(self):
        s = self.start_server()
        path = self.write("ethusdt.csv", klines([3000, 2950, 2900, 2850, 2800]))
        p = await self.replay(s, path, "--speed", "0", "--asset", "ETH",
                              "--from", "2020-03-12T11:32", "--to", str(T0 + 180))
        self.assertIn("sent 3, acknowledged 3", p.stdout)
        self.assertEqual(self.price(s, "ETH"), 2850.0)

    async def test_bad_file_names_the_line_and_sends_nothing(self):
        s = self.start_server()
        digest = s.digest()
        text = klines([3000, 2900, 2800, 2700]).replace(",2800,2800,2800,2800,", ",2800,2800,2800,-1,")
        path = self.write("bad.csv", text)
        p = await self.replay(s, path, "--speed", "0", "--asset", "ETH", check=False)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn(f"{path}:4: column 'close': '-1' is not a number > 0", p.stderr)
        self.assertEqual(s.digest(), digest)
        p = await self.replay(s, os.path.join(os.path.dirname(path), "missing.csv"), check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("missing.csv", p.stderr)
        # A file that names no asset, without --asset.
        p = await self.replay(s, self.write("prices.csv", klines([3000])), check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("does not say which asset it prices: name it with --asset SYM "
                      "(the server's assets: DAI, ETH, LINK, USDC, WBTC)", p.stderr)
        good = self.write("ethusdt.csv", klines([3000]))
        p = await self.replay(s, good, "--asset", "DOGE", check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("asset 'DOGE' (from --asset) is not one of the server's assets", p.stderr)
        self.assertEqual(s.digest(), digest)

    async def test_bad_url_and_unreachable_server(self):
        path = self.write("ETH_USD_x.csv", chainlink([2800.0]))
        for url, want in [("http://127.0.0.1:1/v1/ws", "expected ws://HOST:PORT/v1/ws"),
                          ("wss://127.0.0.1:8080/v1/ws", "wss:// (TLS) is not supported"),
                          ("ws://127.0.0.1:99999/v1/ws", "port '99999' is not a number"),
                          ("ws://:8080/v1/ws", "no host")]:
            with self.subTest(url=url):
                p = await self.replay(None, path, "--url", url, check=False)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn(want, p.stderr)
        p = await self.replay(None, path, "--url", f"ws://127.0.0.1:{free_port()}/v1/ws",
                              check=False)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("cannot connect to http://127.0.0.1:", p.stderr)

    async def test_server_refusals(self):
        s = self.start_server()
        path = self.write("ETH_USD_r.csv", chainlink([2800.0, 2700.0, 2600.0]))
        digest = s.digest()
        # A read-only token: the server refuses the first price; the replay names its row.
        p = await self.replay(s, path, "--speed", "0", "--window", "1", token=READ_TOKEN,
                              check=False)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertRegex(p.stderr, r"the server refused row 1 \(ETH_USD_r\.csv:2, ETH 2800\.00 at "
                                   r"2020-03-12 11:31:00 UTC\): forbidden: ")
        self.assertIn("sent 1, acknowledged 0, errors 1", p.stdout)
        # An unknown token: the upgrade (and every request) is refused with 401.
        p = await self.replay(s, path, token="not-a-token", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("status 401", p.stderr)
        self.assertEqual(s.digest(), digest)
        self.assertTrue(s.alive())


if __name__ == "__main__":
    harness.main()
