#!/usr/bin/python3
"""Replay the June 2022 stETH depeg through `cascade serve` (issue 5, "Must show").

What it does:
  1. Writes, in a temp dir, a config (ETH, stETH derived of ETH with the Curve
     stETH/ETH pool as its ratio pool, protocol aave-v2) and a positions CSV built from
     ../shared/data/lido_aave_steth_positions_2023-06/steth_aave.csv (1,309 Aave v2
     accounts holding stETH, read on chain in JUNE 2023: the replay asks "what would
     June 2022's prices do to this book", not "what happened to the 2022 book").
  2. Starts `cascade serve --config ... --port 0` with an admin token
     (CASCADE_TOKENS), and pushes over one WebSocket, hour by hour and in timestamp
     order: CoinGecko's hourly ETH and stETH prices and Chainlink's stETH/ETH rounds.
  3. After each hour's `prices` batch is acknowledged, reads GET /v1/summary (bands),
     GET /v1/hidden (pending liquidations, hidden insolvency), GET /v1/assets (the
     oracle prices aave-v2 sees) and the events of the hour (channels alerts, pending,
     insolvency, oracle, on the same connection, so they arrive before the ack).
  4. Prints one line per hour and a summary; --json OUT writes the series; --check
     asserts what could fail (see run_checks below) and exits 1 on a failure.

Usage:
  /usr/bin/python3 tools/steth_depeg_replay.py --cascade build/release/cascade \
      [--from 2022-06-01] [--to 2022-07-15] [--json out.json] [--check]
Exit codes: 0 ok, 1 a --check assertion or a server error failed, 2 bad usage,
77 the shared data folder is missing (ctest SKIP_RETURN_CODE).

Modelling decisions (also printed in the output header):

* stETH is an asset DERIVED of ETH (config `derived`), not a plain USD asset. Its
  liquidity is the Curve stETH/ETH pool, whose balances are in ETH and stETH: as a
  ratio pool (base = stETH, quote = ETH) its depth stays put in ETH when ETH's USD price
  moves, and a sale pays ETH valued at ETH's market price (engine/book.hpp). A plain USD
  pool would rescale its ETH depth with every ETH tick. sell_through = false: a
  liquidator of an ETH-debt position keeps the ETH it gets from Curve to repay the debt;
  it does not sell it for USD. ETH has no pool (the depeg is about stETH liquidity).
* Curve depth. Constant product (DESIGN.md liquidity model v1) with its ETH side at
  111,300 ETH when stETH traded ~6% under ETH: the pool "holds around 111,300 ETH
  against about 491,000 stETH" with "the discount on stETH [past] 6%" (CoinDesk, as
  reported by forklog.com, "Since early May, the largest stETH liquidity pool has
  shrunk sevenfold", mid-June 2022; TVL $4.5B -> $620M). k = 111,300^2 / 0.94 in
  stETH x ETH units. The real pool was a stableswap, flatter near the peg: a constant
  product with the same ETH side is harsher on small sales, never pays out more ETH
  than the pool held. --curve-eth and --curve-ratio change the figure.
* Oracle. Aave v2 read Chainlink's stETH/ETH feed, in ETH; here prices are in USD, so
  the source "chainlink" is pushed as (latest round's answer / 1e18) x (latest ETH
  price), re-pushed with every ETH price (ETH itself has no feed: every protocol sees
  its market price). Feed: aave-v2 / stETH, sources ["chainlink"], deviation 0 (it
  publishes whatever Chainlink published), no heartbeat, no delay. CoinGecko's hourly
  ETH and stETH points are separate scrapes minutes apart, so each conversion uses the
  ETH point of the same hour nearest in time (else ETH's hourly move would show as a
  divergence). Divergence events at 1% (--divergence): the feed itself only updated on
  a 2% move (its rounds in the data fire at 2.0-2.3% moves) or a 24 h heartbeat, so at
  2% only a lag beyond the feed's own trigger would show. One bad CoinGecko print is
  dropped (--spike: ETH 2022-06-13 04:02 at 1,067.63 between 1,349 and 1,364).
* Market price. "chainlink" is declared an oracle-only source ([oracle] oracle_only,
  engine/oracle.hpp): it feeds aave-v2's stETH feed but never counts in the market
  median, which is therefore CoinGecko's price, and is never judged an outlier against
  it. Side effect: the oracle
  set evaluates each source update on its own, so inside one batch the feed and the
  market move one source at a time (e.g. Chainlink re-priced at the hour's ETH before
  CoinGecko's stETH point): divergence/convergence pairs that fire and are undone
  within the batch (counted as "undone" in the output; tools/README.md).
* Positions (--book accounts, default). Per account (Aave v2 values everything in ETH):
  stETH collateral `amount`; the rest of `collateral` (collateral - amount x 0.99974085,
  the read-time stETH/ETH price the golden test derives) as ETH-valued collateral
  carried by two synthetic assets derived of ETH at 1:1, OTHER_HI (threshold 0.875) and
  OTHER_LO (0.50), split so that their value and threshold-weighted value equal the
  account's (threshold x collateral - 0.83 x stETH value; the weighted threshold is
  `threshold`, as in tests/engine/lido_golden_test.cpp part 1); the whole `debt` as ETH
  debt (ethdebt is only part of it; the rest, mostly stablecoins, is held in ETH so
  that only stETH/ETH moves health factors: the replay isolates the depeg). At the
  reference prices the book reproduces the on-chain `healthf` (the max error is
  printed). --stable-debt usd holds debt - ethdebt as USD debt instead (ETH's fall in
  June 2022 then weighs on those accounts too). --book loops keeps only stETH `amount`
  against ETH `ethdebt` (HF = amount x ratio x 0.83 / ethdebt).
  Protocol aave-v2 as in the golden test: stETH threshold 0.83, bonus 0.07, close
  factor 0.5, never liquidated whole (full_liquidation_hf 0); OTHER_* bonus 0.05.
"""

import argparse
import asyncio
import csv
import datetime as dt
import glob
import http.client
import json
import math
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.path.normpath(os.path.join(REPO, "..", "shared", "data"))
SKIP = 77

ADMIN_TOKEN = "replay-admin-token"
PROTOCOL = "aave-v2"
STETH_THRESHOLD, STETH_BONUS = 0.83, 0.07
OTHER_HI, OTHER_LO, OTHER_BONUS = 0.875, 0.50, 0.05
CURVE_ETH = 111_300.0   # ETH side of Curve's stETH/ETH pool, mid-June 2022 (see above)
CURVE_RATIO = 0.94      # the stETH/ETH price when that balance was reported
BANDS = ("healthy", "warn", "danger", "liquidatable")
BAND_CONFIG = {"warn": 1.10, "danger": 1.02, "liquidatable": 1.00, "hysteresis": 0.005}


class Failure(Exception):
    pass


def die_with_parent():
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def utc(ts):
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc)


def parse_day(s):
    try:
        d = dt.datetime.strptime(s, "%Y-%m-%d") if len(s) == 10 else dt.datetime.strptime(
            s, "%Y-%m-%dT%H:%M")
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r}: want YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)")
    return d.replace(tzinfo=dt.timezone.utc).timestamp()


# --- data --------------------------------------------------------------------------------

def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def load_data(data_dir):
    lido = os.path.join(data_dir, "lido_aave_steth_positions_2023-06")
    prices = os.path.join(data_dir, "prices_hourly_2021_2023")
    chainlink = glob.glob(os.path.join(data_dir, "chainlink_rounds_sajanrajdev", "stETH_ETH_*.csv"))
    need = [os.path.join(lido, "steth_aave.csv"), os.path.join(lido, "b2.csv"),
            os.path.join(prices, "WETH_usd.csv"), os.path.join(prices, "stETH_usd.csv")]
    missing = [p for p in need if not os.path.isfile(p)]
    if not chainlink:
        missing.append(os.path.join(data_dir, "chainlink_rounds_sajanrajdev", "stETH_ETH_*.csv"))
    if missing:
        return None, missing
    d = {}
    d["accounts"] = read_csv(need[0])
    # Aave v2's USDC price in ETH (18 decimals) at the read: the snapshot's ETH/USD.
    usdc = {r["usdc_price"] for r in read_csv(need[1])}
    if len(usdc) != 1:
        raise Failure(f"{need[1]}: usdc_price is not one value: {sorted(usdc)[:3]}")
    d["eth_usd_snapshot"] = 1e18 / float(usdc.pop())
    ratios = [float(r["collateral_steth_calc"]) / float(r["amount"])
              for r in d["accounts"] if float(r["amount"]) > 0]
    if max(ratios) / min(ratios) - 1 > 1e-12:
        raise Failure("steth_aave.csv: collateral_steth_calc / amount is not one value")
    d["steth_eth_snapshot"] = min(ratios)
    d["eth"] = [(int(r["timestamp"]) / 1000.0, float(r["USD_price"])) for r in read_csv(need[2])]
    d["steth"] = [(int(r["timestamp"]) / 1000.0, float(r["USD_price"])) for r in read_csv(need[3])]
    for k in ("eth", "steth"):
        d[k].sort()
    rounds = []
    for r in read_csv(chainlink[0]):
        if int(r["update"]) == 0:
            continue
        rounds.append((float(r["update"]), int(r["answer"]) / 1e18))
    rounds.sort()
    d["rounds"] = rounds
    d["files"] = need[:1] + [chainlink[0]] + need[2:]
    return d, []


def drop_spikes(series, jump):
    """Drops one-point spikes: a point more than `jump` away from both neighbours, on the
    same side of both (a bad print that the next point reverts). Returns the dropped
    points."""
    keep, dropped = [], []
    for i, (t, p) in enumerate(series):
        if 0 < i < len(series) - 1:
            a, b = series[i - 1][1], series[i + 1][1]
            if (p / a - 1 > jump and p / b - 1 > jump) or (a / p - 1 > jump and b / p - 1 > jump):
                dropped.append((t, p, a, b))
                continue
        keep.append((t, p))
    series[:] = keep
    return dropped


def build_positions(d, book, stable_debt):
    """[(id, [(asset, collateral, debt)])] and the max relative error of the book's HF at
    the snapshot prices against the on-chain healthf (accounts book only)."""
    r0 = d["steth_eth_snapshot"]
    out = []
    worst = 0.0
    for row in d["accounts"]:
        user = row["user"]
        amount, ethdebt = float(row["amount"]), float(row["ethdebt"])
        legs = []
        if book == "loops":
            if amount > 0:
                legs.append(("stETH", amount, 0.0))
            if ethdebt > 0:
                legs.append(("ETH", 0.0, ethdebt))
            out.append((user, legs))
            continue
        c, debt, t = float(row["collateral"]), float(row["debt"]), float(row["threshold"]) / 1e4
        s = amount * r0
        if amount > 0:
            legs.append(("stETH", amount, 0.0))
        other = c - s
        weighted = t * c - STETH_THRESHOLD * s
        if other > 1e-9 * c:
            t_o = min(OTHER_HI, max(OTHER_LO, weighted / other))
            hi = other * (t_o - OTHER_LO) / (OTHER_HI - OTHER_LO)
            lo = other - hi
            if hi > 0:
                legs.append(("OTHER_HI", hi, 0.0))
            if lo > 0:
                legs.append(("OTHER_LO", lo, 0.0))
        if stable_debt == "usd":
            if ethdebt > 0:
                legs.append(("ETH", 0.0, ethdebt))
            if debt - ethdebt > 1e-12 * debt:
                legs.append(("USD", 0.0, (debt - ethdebt) * d["eth_usd_snapshot"]))
        elif debt > 0:
            legs.append(("ETH", 0.0, debt))
        out.append((user, legs))
        prices = {"stETH": r0 * d["eth_usd_snapshot"], "ETH": d["eth_usd_snapshot"],
                  "OTHER_HI": d["eth_usd_snapshot"], "OTHER_LO": d["eth_usd_snapshot"], "USD": 1.0}
        hf = health(legs, prices)
        want = float(row["healthf"])
        if math.isfinite(hf):
            worst = max(worst, abs(hf / want - 1))
    return out, worst


THRESHOLDS = {"stETH": STETH_THRESHOLD, "OTHER_HI": OTHER_HI, "OTHER_LO": OTHER_LO}


def health(legs, prices):
    num = den = 0.0
    for a, c, dd in legs:
        if c > 0:
            num += c * prices[a] * THRESHOLDS.get(a, 0.0)
        if dd > 0:
            den += dd * prices[a]
    return num / den if den > 0 else math.inf


_ENTRY = (BAND_CONFIG["warn"], BAND_CONFIG["danger"], BAND_CONFIG["liquidatable"])
_EXIT = tuple(x * (1 + BAND_CONFIG["hysteresis"]) for x in _ENTRY)
_MARKS = _ENTRY + _EXIT


def next_band(current, hf):
    """engine/bands.hpp: the current band clamped into [entry band, exit band]."""
    e = (hf < _ENTRY[0]) + (hf < _ENTRY[1]) + (hf < _ENTRY[2])
    x = (hf < _EXIT[0]) + (hf < _EXIT[1]) + (hf < _EXIT[2])
    return e if current < e else (x if current > x else current)


def near_threshold(hf):
    if not math.isfinite(hf):
        return False
    for m in _MARKS:
        if abs(hf / m - 1) < 1e-9:
            return True
    return False


def write_config(tmp, d, positions, args):
    eth0 = d["eth_usd_snapshot"]
    r0 = d["steth_eth_snapshot"]
    k = args.curve_eth ** 2 / args.curve_ratio          # stETH x ETH
    pool_base, pool_quote = math.sqrt(k / r0), math.sqrt(k * r0)
    with open(os.path.join(tmp, "positions.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "protocol", "asset", "collateral", "debt", "owner"])
        for user, legs in positions:
            if not legs:  # an account with nothing this book models: keep it, debt-free
                legs = [("stETH", 0.0, 0.0)]
            for a, c, dd in legs:
                w.writerow([user, PROTOCOL, a, repr(c), repr(dd), user])
    assets = f"""
[[assets]]
symbol = "ETH"
price = {eth0!r}

# Curve stETH/ETH as a constant-product ratio pool: base stETH, quote ETH
# (--curve-eth {args.curve_eth} ETH at stETH/ETH {args.curve_ratio}), re-centred at the reference ratio.
[[assets]]
symbol = "stETH"
price = {r0 * eth0!r}
derived = {{ base = "ETH", ratio_pool = {{ base = {pool_base!r}, quote = {pool_quote!r} }}, sell_through = false }}
"""
    extra_assets = []
    if args.book == "accounts":
        extra_assets += ["OTHER_HI", "OTHER_LO"]
    for sym in extra_assets:
        assets += f"""
[[assets]]
symbol = "{sym}"
price = {eth0!r}
derived = {{ base = "ETH" }}
"""
    if args.book == "accounts" and args.stable_debt == "usd":
        assets += '\n[[assets]]\nsymbol = "USD"\nprice = 1.0\n'
    collateral = f'stETH = {{ liquidation_threshold = {STETH_THRESHOLD}, liquidation_bonus = {STETH_BONUS} }}\n'
    if args.book == "accounts":
        collateral += (f'OTHER_HI = {{ liquidation_threshold = {OTHER_HI}, liquidation_bonus = {OTHER_BONUS} }}\n'
                       f'OTHER_LO = {{ liquidation_threshold = {OTHER_LO}, liquidation_bonus = {OTHER_BONUS} }}\n')
    text = f"""# Written by tools/steth_depeg_replay.py: the June 2023 Lido Aave v2 book under June 2022 prices.
[server]
bind = "127.0.0.1"
port = 0
anonymous_role = "read"

[bands]
warn = {BAND_CONFIG['warn']}
danger = {BAND_CONFIG['danger']}
liquidatable = {BAND_CONFIG['liquidatable']}
hysteresis = {BAND_CONFIG['hysteresis']}

[book]
realizable = true

[positions]
file = "positions.csv"
{assets}
[[protocols]]
name = "{PROTOCOL}"
kind = "pooled"
close_factor = 0.5
full_liquidation_hf = 0.0
[protocols.assets]
{collateral}
# Market = CoinGecko: chainlink is an oracle, not a market quote.
[oracle]
oracle_only = ["chainlink"]
divergence = {args.divergence!r}

[[oracle.feed]]
protocol = "{PROTOCOL}"
asset = "stETH"
sources = ["chainlink"]
deviation = 0.0
"""
    path = os.path.join(tmp, "replay.toml")
    with open(path, "w") as f:
        f.write(text)
    return path, (pool_base, pool_quote)


# --- the batches ---------------------------------------------------------------------------

def eth_for(series, t):
    """The ETH price to convert a stETH/ETH ratio at time t: the ETH point of the same
    hour nearest to t, else the last one before t (else the first)."""
    lo, hi = 0, len(series)
    while lo < hi:
        mid = (lo + hi) // 2
        if series[mid][0] <= t:
            lo = mid + 1
        else:
            hi = mid
    hour = int(t // 3600)
    same = [series[i] for i in (lo - 1, lo) if 0 <= i < len(series) and int(series[i][0] // 3600) == hour]
    if same:
        return min(same, key=lambda x: abs(x[0] - t))[1]
    return series[max(lo - 1, 0)][1]


def build_batches(d, t0, t1):
    """[(hour_start, [tick])] in timestamp order. A tick: (ts, asset, price, source).

    Chainlink's answer is in ETH; its USD price is answer x the ETH price. CoinGecko's
    hourly ETH and stETH points are separate scrapes a few minutes apart (stETH's
    usually first), so converting with "the last ETH price pushed" would mix the new
    hour's stETH with the previous hour's ETH and report ETH's hourly move as an oracle
    divergence. Each conversion therefore uses the ETH point nearest in time within the same
    hour's scrape, never a later hour's): at a stETH point, at a Chainlink round, and at
    each ETH point."""
    events = []
    for ts, p in d["eth"]:
        if t0 <= ts < t1:
            events.append((ts, 0, "eth", p))
    for ts, p in d["steth"]:
        if t0 <= ts < t1:
            events.append((ts, 1, "steth", p))
    before = [r for r in d["rounds"] if r[0] < t0]
    for ts, a in d["rounds"]:
        if t0 <= ts < t1:
            events.append((ts, 2, "round", a))
    events.sort()
    if not before:
        raise Failure(f"no Chainlink stETH/ETH round before {utc(t0)}: start the window later")
    answer = before[-1][1]
    # Chainlink's state at the start of the window: its last round, in USD at the ETH
    # price of that moment.
    first = [(before[-1][0], "stETH", answer * eth_for(d["eth"], before[-1][0]), "chainlink")]
    hours = {}
    for ts, _, kind, v in events:
        ticks = hours.setdefault(int(ts // 3600) * 3600, [])
        if kind == "eth":
            ticks.append((ts, "ETH", v, "coingecko"))
            ticks.append((ts, "stETH", answer * v, "chainlink"))
        elif kind == "steth":
            ticks.append((ts, "stETH", answer * eth_for(d["eth"], ts), "chainlink"))
            ticks.append((ts, "stETH", v, "coingecko"))
        else:
            answer = v
            ticks.append((ts, "stETH", answer * eth_for(d["eth"], ts), "chainlink"))
    out = sorted(hours.items())
    if not out:
        raise Failure(f"no prices between {utc(t0)} and {utc(t1)}")
    out[0] = (out[0][0], first + out[0][1])
    return out, before[-1]


# --- the server ------------------------------------------------------------------------------

class Server:
    def __init__(self, binary, config, env):
        self.binary, self.config, self.env = binary, config, env
        self.proc = None
        self.host = self.port = None
        self.errf = tempfile.TemporaryFile()
        self.conn = None

    def start(self, timeout=60.0):
        env = {k: v for k, v in os.environ.items() if not k.startswith("CASCADE_")}
        env.update(self.env)
        cmd = [self.binary, "serve", "--config", self.config, "--port", "0"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.errf,
                                     stdin=subprocess.DEVNULL, env=env, preexec_fn=die_with_parent)
        deadline = time.monotonic() + timeout
        buf = b""
        fd = self.proc.stdout.fileno()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.proc.kill()
                raise Failure(f"cascade serve printed no 'listening' line in {timeout} s; "
                              f"stderr:\n{self.stderr()}")
            r, _, _ = select.select([fd], [], [], min(left, 0.5))
            if not r:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                rc = self.proc.wait()
                raise Failure(f"cascade serve exited ({rc}) before listening: {' '.join(cmd)}\n"
                              f"stderr:\n{self.stderr()}")
            buf += chunk
            m = re.search(rb"listening http://([0-9.]+):(\d+)\r?\n", buf)
            if m:
                self.host, self.port = m.group(1).decode(), int(m.group(2))
                break
        threading.Thread(target=self._drain, daemon=True).start()
        return self

    def _drain(self):
        try:
            for _ in iter(lambda: self.proc.stdout.read1(4096), b""):
                pass
        except (ValueError, OSError):
            pass

    def stderr(self, limit=4000):
        self.errf.seek(0)
        t = self.errf.read().decode(errors="replace")
        return t if len(t) <= limit else "...\n" + t[-limit:]

    def get(self, path):
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            try:
                self.conn.request("GET", path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
                r = self.conn.getresponse()
                body = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                break
            except (http.client.HTTPException, OSError):
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                if attempt == 1 or self.proc.poll() is not None:
                    raise Failure(f"GET {path} failed; server "
                                  f"{'alive' if self.proc.poll() is None else 'dead'}; "
                                  f"stderr:\n{self.stderr()}")
        if r.status != 200:
            raise Failure(f"GET {path}: HTTP {r.status}: {body[:300]!r}")
        return json.loads(body)

    def stop(self):
        """SIGTERM; returns the exit code (None if it never started)."""
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return "killed after 10 s"


# --- the replay ----------------------------------------------------------------------------

async def replay(args, d, batches, server, positions, out):
    import websockets
    url = f"ws://{server.host}:{server.port}/v1/ws"
    ws = await websockets.connect(url, extra_headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                                  max_size=64 << 20, ping_interval=None, max_queue=None,
                                  open_timeout=20)
    try:
        hello = json.loads(await asyncio.wait_for(ws.recv(), 20))
        if hello.get("type") != "hello":
            raise Failure(f"first WebSocket message is not hello: {hello}")
        await ws.send(json.dumps({"op": "subscribe", "id": "sub",
                                  "channels": ["alerts", "pending", "insolvency", "oracle"]}))
        while True:
            m = json.loads(await asyncio.wait_for(ws.recv(), 20))
            if m.get("type") == "ack" and m.get("id") == "sub":
                break
            if m.get("type") == "error":
                raise Failure(f"subscribe refused: {m}")

        def snapshot():
            summ = server.get("/v1/summary")
            hid = server.get("/v1/hidden")
            assets = {a["symbol"]: a for a in server.get("/v1/assets")["assets"]}
            return summ, hid, assets

        summ, hid, assets = snapshot()
        out["baseline"] = {"summary": summ, "hidden": hid["hidden"]}
        print_snapshot(summ, hid, assets)
        for i, (hour, ticks) in enumerate(batches):
            msg = {"op": "prices", "id": i,
                   "prices": [{"asset": a, "price": p, "source": s, "ts": ts}
                              for ts, a, p, s in ticks]}
            await ws.send(json.dumps(msg))
            events = []
            ack = None
            while ack is None:
                m = json.loads(await asyncio.wait_for(ws.recv(), args.timeout))
                t = m.get("type")
                if t == "ack" and m.get("id") == i:
                    ack = m
                elif t == "error":
                    raise Failure(f"hour {utc(hour):%Y-%m-%d %H:00}: prices refused: {m}")
                elif t == "gap":
                    out["gaps"].append(m)
                    events.append(m)
                else:
                    events.append(m)
            summ, hid, assets = snapshot()
            row = hour_row(hour, ticks, ack, summ, hid, assets, events, d)
            row["_nevents"] = len(events)
            out["hours"].append(row)
            out["events"].extend(events)
            print(format_row(row), flush=True)
        # Anything still in flight after the last ack (there should be nothing).
        await ws.send(json.dumps({"op": "ping", "id": "end"}))
        while True:
            m = json.loads(await asyncio.wait_for(ws.recv(), 20))
            if m.get("type") == "pong":
                break
            out["late"].append(m)
    finally:
        await ws.close()


def band_counts(summ):
    p = summ["protocols"][PROTOCOL]
    return [p[b]["positions"] for b in BANDS]


def print_snapshot(summ, hid, assets):
    h = hid["hidden"]["protocols"][PROTOCOL]
    eth = summ["prices"]["ETH"]
    st = summ["prices"]["stETH"]
    print(f"snapshot (June 2023 reference prices): ETH {eth:,.2f} stETH/ETH {st / eth:.6f}; "
          f"bands H/W/D/L {'/'.join(str(x) for x in band_counts(summ))}; pending "
          f"{h['pending']}; insolvent {h['insolvent']} (shortfall "
          f"{h['shortfall_usd'] / eth:,.0f} ETH)")


def event_key(e):
    """The thing an event changes: (kind, what it is about), and +1 / -1 for the change."""
    t = e.get("type")
    if t == "alert":
        return ("alert", e["position"]), 0
    if t in ("pending_liquidation", "insolvency"):
        return (t, e["position"]), 1 if e["state"] == "entered" else -1
    if t == "oracle" and e["kind"] in ("divergence", "convergence"):
        return ("divergence", e["protocol"], e["asset"]), 1 if e["kind"] == "divergence" else -1
    if t == "oracle":
        return ("oracle:" + e["kind"], e.get("protocol"), e["asset"], e.get("source")), 0
    return (t or "?",), 0


def tally(events):
    """Per kind: [events, undone, entered, cleared]. An event is undone when a later event
    of the same batch about the same thing reverses it: a position that crosses into a
    band and back, enters and leaves a status, a feed that diverges and converges within
    one batch: a state that held at no price the batch ends with."""
    groups = {}
    for e in events:
        k, sign = event_key(e)
        groups.setdefault(k, []).append((e, sign))
    res = {}
    for k, g in groups.items():
        kind = k[0]
        if kind == "alert":
            net = 0 if g[0][0]["from"] == g[-1][0]["to"] else 1
            up = down = 0
        elif kind in ("pending_liquidation", "insolvency", "divergence"):
            total = sum(sg for _, sg in g)
            net = abs(total)
            up = sum(1 for _, sg in g if sg > 0)
            down = len(g) - up
        else:
            net, up, down = len(g), 0, 0
        r = res.setdefault(kind, [0, 0, 0, 0])
        r[0] += len(g)
        r[1] += len(g) - net
        r[2] += up
        r[3] += down
    return res


def hour_row(hour, ticks, ack, summ, hid, assets, events, d):
    eth = summ["prices"]["ETH"]
    st = summ["prices"]["stETH"]
    oracle_st = assets["stETH"]["oracle"][PROTOCOL]
    oracle_eth = assets["ETH"]["oracle"][PROTOCOL]
    h = hid["hidden"]["protocols"][PROTOCOL]
    # The feed's lasting divergence events (not undone in the batch), with their size.
    notes = []
    t = tally(events)
    div = [e for e in events if e.get("type") == "oracle" and
           e["kind"] in ("divergence", "convergence")]
    if div and t.get("divergence", [0, 0])[1] < len(div):
        e = div[-1]
        notes.append(f"{e['kind']} event at {e['price'] / e['reference'] - 1:+.2%}")
    return {
        "hour": hour, "time": f"{utc(hour):%Y-%m-%d %H:00}", "seq": ack.get("seq"),
        "ticks": len(ticks),
        "eth": eth, "steth": st, "steth_eth": st / eth,
        "oracle_steth": oracle_st, "oracle_eth": oracle_eth, "oracle_ratio": oracle_st / oracle_eth,
        "divergence": oracle_st / st - 1,
        "prices": summ["prices"],
        "oracle": {a: v["oracle"][PROTOCOL] for a, v in assets.items()},
        "bands": dict(zip(BANDS, band_counts(summ))),
        "pending": h["pending"], "pending_debt_usd": h["pending_debt_usd"],
        "pending_seize_usd": h["pending_seize_usd"],
        "insolvent": h["insolvent"], "insolvent_debt_usd": h["insolvent_debt_usd"],
        "shortfall_usd": h["shortfall_usd"],
        "queued_positions": hid["hidden"]["queued_positions"],
        "queued_steth": hid["hidden"]["queued_units"].get("stETH", 0.0),
        "events": {k: {"n": v[0], "undone": v[1], "entered": v[2], "cleared": v[3]}
                   for k, v in t.items()},
        "notes": notes,
    }


SHORT = {"alert": "alerts", "pending_liquidation": "pend", "insolvency": "insol",
         "divergence": "div"}


def format_events(ev):
    parts = []
    for k in ("alert", "pending_liquidation", "insolvency", "divergence"):
        if k not in ev:
            continue
        v = ev[k]
        txt = f"{SHORT[k]} {v['n']}" if k == "alert" else f"{SHORT[k]} +{v['entered']}-{v['cleared']}"
        if v["undone"]:
            txt += f" ({v['undone']} undone)"
        parts.append(txt)
    for k, v in sorted(ev.items()):
        if k not in SHORT:
            parts.append(f"{k} {v['n']}")
    return ", ".join(parts)


def format_row(r):
    ev = format_events(r["events"])
    if r["notes"]:
        ev += "; " + " ".join(r["notes"])
    b = r["bands"]
    eth = r["eth"]
    return (f"{r['time']}  ETH {eth:8,.2f}  stETH {r['steth']:8,.2f} ({r['steth_eth']:.4f})  "
            f"aave {r['oracle_steth']:8,.2f} ({r['oracle_ratio']:.4f})  div {r['divergence']:+6.2%}  "
            f"H/W/D/L {b['healthy']}/{b['warn']}/{b['danger']}/{b['liquidatable']}  "
            f"pending {r['pending']} ({r['pending_debt_usd'] / eth:,.0f} ETH debt)  "
            f"insolvent {r['insolvent']} ({r['shortfall_usd'] / eth:,.0f} ETH short)  "
            f"| {ev or '-'}")


def summarize(out):
    hours = out["hours"]
    peak_p = max(hours, key=lambda r: (r["pending_debt_usd"] / r["eth"], r["pending"]))
    peak_pn = max(hours, key=lambda r: r["pending"])
    peak_i = max(hours, key=lambda r: (r["shortfall_usd"] / r["eth"], r["insolvent"]))
    peak_in = max(hours, key=lambda r: r["insolvent"])
    peak_l = max(hours, key=lambda r: r["bands"]["liquidatable"])
    min_m = min(hours, key=lambda r: r["steth_eth"])
    min_o = min(hours, key=lambda r: r["oracle_ratio"])
    max_d = max(hours, key=lambda r: r["divergence"])
    s = {
        "hours": len(hours),
        "peak_pending": {"time": peak_pn["time"], "positions": peak_pn["pending"]},
        "peak_pending_debt": {"time": peak_p["time"], "positions": peak_p["pending"],
                              "debt_eth": peak_p["pending_debt_usd"] / peak_p["eth"],
                              "debt_usd": peak_p["pending_debt_usd"]},
        "peak_insolvent": {"time": peak_in["time"], "positions": peak_in["insolvent"]},
        "peak_shortfall": {"time": peak_i["time"], "positions": peak_i["insolvent"],
                           "shortfall_eth": peak_i["shortfall_usd"] / peak_i["eth"],
                           "shortfall_usd": peak_i["shortfall_usd"]},
        "peak_liquidatable": {"time": peak_l["time"], "positions": peak_l["bands"]["liquidatable"]},
        "min_market_ratio": {"time": min_m["time"], "steth_eth": min_m["steth_eth"]},
        "min_oracle_ratio": {"time": min_o["time"], "steth_eth": min_o["oracle_ratio"]},
        "max_divergence": {"time": max_d["time"], "divergence": max_d["divergence"]},
    }
    ev = {}
    for e in out["events"]:
        k = e.get("type")
        if k == "oracle":
            k = "oracle:" + e["kind"]
        elif k in ("pending_liquidation", "insolvency"):
            k += ":" + e["state"]
        ev[k] = ev.get(k, 0) + 1
    s["events"] = ev
    tot = {}
    for r in hours:
        for k, v in r["events"].items():
            t = tot.setdefault(k, {"n": 0, "undone": 0, "entered": 0, "cleared": 0})
            for f in t:
                t[f] += v[f]
    s["event_totals"] = tot
    return s


def print_summary(s):
    print("\nsummary")
    print(f"  hours replayed: {s['hours']}")
    print(f"  min stETH/ETH, market (CoinGecko): {s['min_market_ratio']['steth_eth']:.4f} at "
          f"{s['min_market_ratio']['time']}; oracle (Chainlink, aave-v2): "
          f"{s['min_oracle_ratio']['steth_eth']:.4f} at {s['min_oracle_ratio']['time']}")
    print(f"  largest oracle-over-market divergence: {s['max_divergence']['divergence']:+.2%} at "
          f"{s['max_divergence']['time']}")
    print(f"  peak liquidatable: {s['peak_liquidatable']['positions']} at "
          f"{s['peak_liquidatable']['time']}")
    pd = s["peak_pending_debt"]
    print(f"  peak pending liquidations: {s['peak_pending']['positions']} positions at "
          f"{s['peak_pending']['time']}; largest pending debt {pd['debt_eth']:,.0f} ETH "
          f"(${pd['debt_usd'] / 1e6:,.1f}M, {pd['positions']} positions) at {pd['time']}")
    ps = s["peak_shortfall"]
    print(f"  peak hidden insolvency: {s['peak_insolvent']['positions']} positions at "
          f"{s['peak_insolvent']['time']}; largest shortfall {ps['shortfall_eth']:,.0f} ETH "
          f"(${ps['shortfall_usd'] / 1e6:,.1f}M, {ps['positions']} positions) at {ps['time']}")
    print("  events: " + ", ".join(f"{k} {v}" for k, v in sorted(s["events"].items())))
    print("  events undone by a later event of the same batch (tools/README.md): " +
          ", ".join(f"{k} {v['undone']} of {v['n']}" for k, v in sorted(s["event_totals"].items())))


# --- checks ---------------------------------------------------------------------------------

def run_checks(args, d, positions, out, min_round):
    """Returns a list of failure messages (empty: all passed)."""
    fails = []
    hours = out["hours"]
    notes = []

    def check(cond, msg):
        (notes if cond else fails).append(("ok    " if cond else "FAIL  ") + msg)

    check(not out["gaps"], f"no gap on the subscriber ({len(out['gaps'])} gaps)")
    check(not out["late"], f"no event after the last ack ({len(out['late'])})")

    # 1. Divergence events for aave-v2/stETH, consistent with the prices.
    oracle_ev = [e for e in out["events"] if e.get("type") == "oracle"]
    div = [e for e in oracle_ev if e["kind"] == "divergence" and e["protocol"] == PROTOCOL
           and e["asset"] == "stETH"]
    away = [r for r in hours if abs(r["divergence"]) > args.divergence]
    check(bool(away), f"the market moves away from Chainlink by more than {args.divergence:.0%} "
          f"in {len(away)} hours (first {away[0]['time'] if away else '-'})")
    lasting = sum(r["events"].get("divergence", {}).get("entered", 0) -
                  r["events"].get("divergence", {}).get("undone", 0) // 2 for r in hours)
    check(bool(div), f"oracle divergence events for {PROTOCOL}/stETH: {len(div)}")
    check(lasting > 0, f"divergence events for {PROTOCOL}/stETH that outlast their batch: {lasting}")
    bad = [e for e in oracle_ev if e["kind"] in ("divergence", "convergence")
           and (abs(e["price"] / e["reference"] - 1) > args.divergence) != (e["kind"] == "divergence")]
    check(not bad, f"every divergence is beyond {args.divergence:.0%} and every convergence within "
          f"it ({len(bad)} not{': ' + json.dumps(bad[0]) if bad else ''})")
    # The state the events leave at the end of each hour matches the hour's prices.
    state = False
    mism = []
    for r, evs in zip(hours, split_events(out)):
        for e in evs:
            if e.get("type") == "oracle" and e["kind"] in ("divergence", "convergence"):
                state = e["kind"] == "divergence"
        if state != (abs(r["divergence"]) > args.divergence):
            mism.append(r["time"])
    check(not mism, f"divergence state from the events matches |oracle/market - 1| every hour "
          f"({len(mism)} hours differ{': ' + ', '.join(mism[:5]) if mism else ''})")
    others = [e for e in oracle_ev if e["kind"] not in ("divergence", "convergence")]
    check(not others, f"no source or feed faults reported ({len(others)})")

    # 2. Bands: an independent computation from the CSV legs, every hour, with the
    #    oracle prices aave-v2 sees and engine/bands.hpp's hysteresis, in two models:
    #    "final": each hour's bands from the prices at the end of its batch;
    #    "sequential": as engine/book.hpp documents apply_ticks, one asset after the
    #    other in order of first appearance, assets derived of ETH following last, each
    #    step classified at the mix of new and old prices it leaves.
    #    The server must equal one of them every hour; how often the two differ is
    #    reported (a difference is the intra-batch transient described in tools/README.md).
    base = out["baseline"]["summary"]
    eth0 = d["eth_usd_snapshot"]
    p0 = {"ETH": eth0, "stETH": base["prices"]["stETH"], "OTHER_HI": eth0, "OTHER_LO": eth0,
          "USD": 1.0}
    final = {u: next_band(0, health(legs, p0)) for u, legs in positions}
    seq = dict(final)
    base_counts = [sum(1 for b in final.values() if b == i) for i in range(4)]
    check(base_counts == band_counts(base),
          f"bands at the snapshot prices: independent {base_counts}, server {band_counts(base)}")
    followers = ["OTHER_HI", "OTHER_LO"] if args.book == "accounts" else []
    holders = {}
    for user, legs in positions:
        for a in {a for a, c, dd in legs if c > 0 or dd > 0}:
            holders.setdefault(a, []).append((user, legs))
    last_source = {}
    o_prev = dict(p0)
    band_bad, pend_bad = [], []
    n_seq = n_final = n_differ = 0
    for r, (hour, ticks) in zip(hours, out["batches"]):
        target = r["oracle"]
        order = []
        for ts, a, price, src in ticks:
            if last_source.get((a, src)) != price and a not in order:
                order.append(a)
            last_source[(a, src)] = price
        o = dict(o_prev)
        for a in order + followers:
            if o.get(a) == target[a]:
                continue
            o[a] = target[a]
            for user, legs in holders.get(a, ()):  # the others' HF did not move
                seq[user] = next_band(seq[user], health(legs, o))
        o_prev = dict(target)
        amb = 0
        for user, legs in positions:
            hf = health(legs, target)
            amb += near_threshold(hf)
            final[user] = next_band(final[user], hf)
            seq[user] = next_band(seq[user], hf)  # the state after the batch
        got = [r["bands"][b] for b in BANDS]
        want_f = [sum(1 for b in final.values() if b == i) for i in range(4)]
        want_s = [sum(1 for b in seq.values() if b == i) for i in range(4)]
        close = lambda w: sum(abs(x - y) for x, y in zip(got, w)) <= 2 * amb
        n_final += close(want_f)
        n_seq += close(want_s)
        n_differ += want_f != want_s
        if close(want_s):
            model = seq
        elif close(want_f):
            model = final
        else:
            model = None
            band_bad.append(f"{r['time']} server {got}, final-state model {want_f}, "
                            f"sequential model {want_s}")
        r["independent_bands"] = {"final": want_f, "sequential": want_s}
        if model is not None:
            pend = 0
            for user, legs in positions:
                hf = health(legs, target)
                if model[user] != 3 and math.isfinite(hf) and health(legs, r["prices"]) < 1:
                    pend += 1
            r["independent_pending"] = pend
            if pend != r["pending"]:
                pend_bad.append(f"{r['time']} server {r['pending']} independent {pend}")
    check(not band_bad, f"positions per band equal an independent recomputation from the CSV "
          f"every hour ({len(band_bad)} hours differ"
          f"{': ' + '; '.join(band_bad[:3]) if band_bad else ''})")
    print(f"  bands: the server equals the final-state model in {n_final} of {len(hours)} hours "
          f"and the sequential (per-asset) model in {n_seq}; the two models differ in "
          f"{n_differ} hours")
    check(not pend_bad, f"pending count equals the independent count (HF at market < 1, not "
          f"liquidatable) every hour ({len(pend_bad)} differ"
          f"{': ' + '; '.join(pend_bad[:3]) if pend_bad else ''})")

    # The hour of the window's lowest Chainlink round: liquidatable count against the
    # formula (amount x ratio x 0.83 / ethdebt < 1 for the loops book).
    ts, ratio = min_round
    hr = next((r for r in hours if r["hour"] == int(ts // 3600) * 3600), None)
    check(hr is not None, f"the hour of the lowest Chainlink round ({utc(ts):%Y-%m-%d %H:%M}, "
          f"{ratio:.8f}) is in the window")
    if hr is not None:
        check(abs(hr["oracle_ratio"] / ratio - 1) < 1e-12,
              f"aave-v2 sees stETH/ETH {hr['oracle_ratio']:.10f} at {hr['time']}: Chainlink's "
              f"{ratio:.10f}")
        n_formula = sum(1 for row in d["accounts"] if float(row["ethdebt"]) > 0 and
                        float(row["amount"]) * ratio * STETH_THRESHOLD / float(row["ethdebt"]) < 1)
        prices = {"ETH": 1.0, "stETH": ratio, "OTHER_HI": 1.0, "OTHER_LO": 1.0,
                  "USD": 1.0 / hr["oracle_eth"]}
        n_model = sum(1 for _, legs in positions if health(legs, prices) < 1)
        got = hr["bands"]["liquidatable"]
        print(f"  at {hr['time']} (Chainlink {ratio:.8f}): server liquidatable {got}; "
              f"independent from the CSV with this book's legs {n_model}; brief's loop formula "
              f"amount*ratio*0.83/ethdebt < 1: {n_formula}")
        check(got == n_model, f"liquidatable at the lowest Chainlink round: server {got} = "
              f"independent {n_model}")
        if args.book == "loops":
            check(got == n_formula, f"liquidatable at the lowest Chainlink round: server {got} = "
                  f"amount*ratio*0.83/ethdebt < 1 count {n_formula}")
        first = hours[0]["bands"]["liquidatable"]
        check(got > first, f"the oracle's fall puts positions in the liquidatable band: "
              f"{first} in the first hour, {got} at the lowest round")

    # 3. Hidden totals = baseline + entered - cleared, per protocol, every hour.
    hb = out["baseline"]["hidden"]["protocols"][PROTOCOL]
    n_pend, n_ins = hb["pending"], hb["insolvent"]
    tot_bad = []
    for r, evs in zip(hours, split_events(out)):
        for e in evs:
            if e.get("type") == "insolvency" and e["protocol"] == PROTOCOL:
                n_ins += 1 if e["state"] == "entered" else -1
            if e.get("type") == "pending_liquidation" and e["protocol"] == PROTOCOL:
                n_pend += 1 if e["state"] == "entered" else -1
        if (n_ins, n_pend) != (r["insolvent"], r["pending"]):
            tot_bad.append(f"{r['time']}: /v1/hidden insolvent {r['insolvent']} pending "
                           f"{r['pending']}, events give {n_ins} / {n_pend}")
    check(not tot_bad, f"GET /v1/hidden totals = baseline ({hb['insolvent']} insolvent, "
          f"{hb['pending']} pending) + entered - cleared events, every hour "
          f"({len(tot_bad)} differ{': ' + '; '.join(tot_bad[:3]) if tot_bad else ''})")
    ins_ev = [e for e in out["events"] if e.get("type") == "insolvency"]
    check(bool(ins_ev) or max(r["insolvent"] for r in hours) == hb["insolvent"],
          f"insolvency events: {len(ins_ev)}")

    # 4. Every pending_liquidation that enters: hf >= 1 (oracle) and hf_market < 1.
    pend_ev = [e for e in out["events"] if e.get("type") == "pending_liquidation"
               and e["state"] == "entered"]
    bad = [e for e in pend_ev if not (e["hf"] is not None and e["hf"] >= 1 and
                                      e["hf_market"] is not None and e["hf_market"] < 1)]
    check(bool(pend_ev), f"pending_liquidation events entered: {len(pend_ev)}")
    check(not bad, f"every pending_liquidation entered has hf >= 1 and hf_market < 1 "
          f"({len(bad)} not{': ' + json.dumps(bad[0]) if bad else ''})")
    print("\ncheck")
    for line in notes + fails:
        print("  " + line)
    return [f for f in fails]


def split_events(out):
    """The events of each hour, in order (hour rows and events were appended together)."""
    res = []
    i = 0
    evs = out["events"]
    for r in out["hours"]:
        n = r["_nevents"]
        res.append(evs[i:i + n])
        i += n
    return res


# --- main -------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cascade", default=os.environ.get("CASCADE_BINARY"),
                    help="the cascade binary (default: $CASCADE_BINARY)")
    ap.add_argument("--data", default=DEFAULT_DATA, help="the shared data folder (default "
                    "../shared/data relative to the project root)")
    ap.add_argument("--from", dest="t0", type=parse_day, default=parse_day("2022-06-01"),
                    help="window start, UTC (default 2022-06-01)")
    ap.add_argument("--to", dest="t1", type=parse_day, default=parse_day("2022-07-15"),
                    help="window end, exclusive, UTC (default 2022-07-15)")
    ap.add_argument("--book", choices=("accounts", "loops"), default="accounts",
                    help="accounts: whole accounts (default); loops: stETH amount vs ETH ethdebt only")
    ap.add_argument("--stable-debt", choices=("eth", "usd"), default="eth",
                    help="accounts book: hold debt beyond ethdebt in ETH (default) or in USD")
    ap.add_argument("--curve-eth", type=float, default=CURVE_ETH,
                    help=f"ETH side of the Curve stETH/ETH pool (default {CURVE_ETH:,.0f})")
    ap.add_argument("--curve-ratio", type=float, default=CURVE_RATIO,
                    help=f"stETH/ETH at which that ETH side holds (default {CURVE_RATIO})")
    ap.add_argument("--divergence", type=float, default=0.01,
                    help="oracle divergence event threshold (default 0.01: Chainlink's stETH/ETH "
                    "feed itself only updated on a 2%% move or its 24 h heartbeat)")
    ap.add_argument("--spike", type=float, default=0.15,
                    help="drop an hourly CoinGecko point more than this fraction away from both "
                    "neighbours, on the same side (a bad print); 0 keeps every point (default 0.15)")
    ap.add_argument("--json", help="write the hourly series and the summary to this file")
    ap.add_argument("--check", action="store_true", help="assert the replay's invariants")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for an ack")
    args = ap.parse_args()
    data_dir = os.path.abspath(args.data)
    if not os.path.isdir(data_dir):
        print(f"SKIP: the shared data folder {data_dir} is missing (see the project's data "
              f"README): nothing to replay", file=sys.stderr)
        return SKIP
    if not args.cascade:
        ap.error("--cascade PATH is required (or set CASCADE_BINARY)")
    if not (os.path.isfile(args.cascade) and os.access(args.cascade, os.X_OK)):
        ap.error(f"--cascade {args.cascade}: not an executable file")
    if args.t1 <= args.t0:
        ap.error("--to must be after --from")
    if not (args.curve_eth > 0 and 0 < args.curve_ratio and 0 < args.divergence < 1
            and 0 <= args.spike):
        ap.error("--curve-eth, --curve-ratio must be > 0, --divergence in (0, 1), --spike >= 0")
    try:
        import websockets  # noqa: F401
    except ImportError:
        sys.exit("python3-websockets is missing: run with /usr/bin/python3 (Debian's package)")

    d, missing = load_data(data_dir)
    if d is None:
        print("SKIP: shared data files missing: " + ", ".join(missing), file=sys.stderr)
        return SKIP

    spikes = []
    if args.spike > 0:
        for k, name in (("eth", "ETH"), ("steth", "stETH")):
            spikes += [(name,) + x for x in drop_spikes(d[k], args.spike)
                       if args.t0 <= x[0] < args.t1]
    positions, hf_err = build_positions(d, args.book, args.stable_debt)
    batches, last_round = build_batches(d, args.t0, args.t1)
    rounds_in = [r for r in d["rounds"] if args.t0 <= r[0] < args.t1]
    min_round = min(rounds_in + [last_round], key=lambda r: r[1])

    started = time.monotonic()
    out = {"meta": {}, "hours": [], "events": [], "gaps": [], "late": [], "batches": batches}
    with tempfile.TemporaryDirectory(prefix="steth-replay-") as tmp:
        config, pool = write_config(tmp, d, positions, args)
        n_debt = sum(1 for _, legs in positions if any(dd > 0 for _, _, dd in legs))
        header = [
            "stETH depeg replay: Aave v2 stETH accounts of JUNE 2023 (lido_aave_steth_positions_2023-06/"
            "steth_aave.csv, read on chain) under the prices of "
            f"{utc(args.t0):%Y-%m-%d %H:%M} .. {utc(args.t1):%Y-%m-%d %H:%M} UTC: what June 2022's prices "
            "would do to this book, not what happened to the 2022 book.",
            f"book: {args.book}" + (f", debt beyond ethdebt held in {args.stable_debt.upper()}"
                                   if args.book == "accounts" else "") +
            f"; {len(positions)} positions, {n_debt} with debt; reference prices = the snapshot's "
            f"(ETH {d['eth_usd_snapshot']:,.2f} USD, stETH/ETH {d['steth_eth_snapshot']:.8f})" +
            (f"; book HF vs on-chain healthf at the snapshot: max relative error {hf_err:.1e}"
             if args.book == "accounts" else ""),
            f"aave-v2: stETH threshold {STETH_THRESHOLD} bonus {STETH_BONUS}, close factor 0.5; "
            "oracle = Chainlink stETH/ETH answer x ETH (deviation 0); market = CoinGecko hourly "
            "('chainlink' is an oracle_only source: out of the market median)",
            f"Curve stETH/ETH as a constant-product ratio pool: {args.curve_eth:,.0f} ETH at "
            f"{args.curve_ratio} (mid-June 2022, CoinDesk via forklog.com); at the reference ratio "
            f"{pool[0]:,.0f} stETH / {pool[1]:,.0f} ETH",
            f"{len(batches)} hourly batches; Chainlink rounds in the window: {len(rounds_in)} "
            f"(lowest {min_round[1]:.8f} at {utc(min_round[0]):%Y-%m-%d %H:%M}); oracle "
            f"divergence events beyond {args.divergence:.1%}",
            "dropped as bad prints (--spike): " + ("; ".join(
                f"{n} {utc(t):%Y-%m-%d %H:%M} {p:,.2f} (neighbours {a:,.2f}, {b:,.2f})"
                for n, t, p, a, b in spikes) or "none"),
            "columns: hour (UTC), ETH USD, stETH market USD (/ETH), stETH as aave-v2 sees it (/ETH), "
            "oracle/market - 1, positions per band healthy/warn/danger/liquidatable, pending "
            "liquidations (count, debt in ETH at market), hidden insolvency (count, debt - "
            "realizable collateral in ETH), the hour's events (alerts: band crossings; pend/insol: "
            "+entered -cleared; div: the aave-v2/stETH feed's divergence +on -off; 'undone': "
            "reversed by a later event of the same batch, see tools/README.md)",
        ]
        for line in header:
            print(line)
        out["meta"] = {"header": header, "from": args.t0, "to": args.t1, "book": args.book,
                       "stable_debt": args.stable_debt, "curve_eth": args.curve_eth,
                       "curve_ratio": args.curve_ratio, "pool": pool,
                       "divergence": args.divergence, "dropped_spikes": spikes,
                       "files": d["files"], "hf_snapshot_max_error": hf_err}
        server = Server(os.path.abspath(args.cascade), config,
                        {"CASCADE_TOKENS": f"{ADMIN_TOKEN}:admin"})
        try:
            server.start()
            t_serve = time.monotonic()
            asyncio.run(replay(args, d, batches, server, positions, out))
            elapsed = time.monotonic() - t_serve
        except Failure as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        except Exception as e:  # a dropped connection, a timeout: say what the server said
            print(f"error: {type(e).__name__}: {e}; server "
                  f"{'alive' if server.proc and server.proc.poll() is None else 'exited'}; "
                  f"stderr:\n{server.stderr()}", file=sys.stderr)
            return 1
        finally:
            rc = server.stop()
    code = 0
    if rc not in (0, None):
        print(f"error: cascade serve exited {rc} after SIGTERM (want 0)", file=sys.stderr)
        code = 1
    s = summarize(out)
    out["summary"] = s
    print_summary(s)
    total = time.monotonic() - started
    print(f"\ntiming: {len(out['hours'])} hours replayed in {elapsed:.1f} s through the server "
          f"({total:.1f} s in all, start-up included)")
    if args.check:
        fails = run_checks(args, d, positions, out, min_round)
        code = 1 if fails or code else 0
        print(f"\ncheck: {'FAILED' if fails else 'passed'}")
    if args.json:
        for r in out["hours"]:
            r.pop("_nevents", None)
        with open(args.json, "w") as f:
            json.dump({k: out[k] for k in ("meta", "summary", "hours", "events")}, f, indent=1)
    return code


if __name__ == "__main__":
    sys.exit(main())
