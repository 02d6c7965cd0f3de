"""Shared harness of the server integration tests: start the real `cascade serve`
binary, talk to it over real sockets with stock clients (http.client, the Debian
`websockets` 10.4 package) and a minimal raw WebSocket client for what stock clients
refuse to send, and compute expected values with the `cascade` CLI.

Every test file runs standalone:
    /usr/bin/python3 tests/server/integration/test_x.py --cascade BUILD/cascade [unittest args]

Standard library plus python3-websockets only (run with /usr/bin/python3).
"""

import argparse
import asyncio
import base64
import csv
import http.client
import json
import math
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import unittest

try:
    import websockets
    import websockets.exceptions
except ImportError:  # pragma: no cover
    websockets = None

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
DATA = os.path.join(REPO, "tests", "data", "server")
MARKET = os.path.join(DATA, "market.toml")
EXAMPLES = os.path.join(REPO, "proto", "examples")

READ_TOKEN = "it-read-token"
PRICE_TOKEN = "it-price-token"
ADMIN_TOKEN = "it-admin-token"

# Set by main() from --cascade.
CASCADE = os.environ.get("CASCADE_BINARY", "")

START_TIMEOUT_S = 30.0


def die_with_parent():
    """preexec_fn: the child gets SIGKILL if this test process dies (e.g. killed by a
    ctest timeout), so no server or Prometheus is ever left behind. Linux only."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass

STOP_TIMEOUT_S = 5.0


def main():
    """Parses --cascade BINARY, then hands the remaining arguments to unittest."""
    global CASCADE
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--cascade", default=CASCADE)
    args, rest = ap.parse_known_args()
    if not args.cascade:
        sys.exit("usage: test_x.py --cascade PATH/TO/cascade [unittest options]")
    CASCADE = os.path.abspath(args.cascade)
    if not os.access(CASCADE, os.X_OK):
        sys.exit(f"--cascade {CASCADE}: not an executable file")
    if websockets is None:
        sys.exit("python3-websockets is missing: run these tests with /usr/bin/python3 "
                 "(Debian's python3-websockets 10.4)")
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


# --- strict JSON ---------------------------------------------------------------------

def _no_constant(name):
    raise ValueError(f"server sent the non-JSON constant {name}")


def loads(data):
    """json.loads that refuses NaN/Infinity (the server must only send real JSON)."""
    if isinstance(data, (bytes, bytearray)):
        data = data.decode("utf-8")
    return json.loads(data, parse_constant=_no_constant)


def rel_close(a, b, rel=1e-9, abs_tol=1e-12):
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_tol)


def assert_json_close(tc, got, want, path="$", rel=1e-9):
    """Deep comparison: numbers to `rel` relative, everything else exact."""
    if isinstance(want, bool) or want is None or isinstance(want, str):
        tc.assertEqual(got, want, f"{path}: got {got!r}, want {want!r}")
    elif isinstance(want, (int, float)):
        tc.assertIsInstance(got, (int, float), f"{path}: got {got!r}, want a number {want!r}")
        tc.assertFalse(isinstance(got, bool), f"{path}: got {got!r}, want a number")
        tc.assertTrue(rel_close(got, want, rel), f"{path}: got {got!r}, want {want!r} (rel {rel})")
    elif isinstance(want, dict):
        tc.assertIsInstance(got, dict, f"{path}: got {got!r}, want an object")
        tc.assertEqual(sorted(got.keys()), sorted(want.keys()), f"{path}: keys differ")
        for k in want:
            assert_json_close(tc, got[k], want[k], f"{path}.{k}", rel)
    elif isinstance(want, list):
        tc.assertIsInstance(got, list, f"{path}: got {got!r}, want an array")
        tc.assertEqual(len(got), len(want), f"{path}: length {len(got)}, want {len(want)}")
        for i, (g, w) in enumerate(zip(got, want)):
            assert_json_close(tc, g, w, f"{path}[{i}]", rel)
    else:
        raise TypeError(f"{path}: unexpected {type(want)}")


# --- the CLI, for expected values -----------------------------------------------------

def run_cli(*args, check=True, stdin=None, timeout=120):
    p = subprocess.run([CASCADE, *args], capture_output=True, timeout=timeout, input=stdin)
    if check and p.returncode != 0:
        raise AssertionError(f"cascade {' '.join(args)} exited {p.returncode}: "
                             f"{p.stderr.decode(errors='replace')}")
    return p


def load_market(path=MARKET):
    """The test market as Python values: the TOML config and its positions (grouped by
    id in CSV order, as the scenario document's `positions`)."""
    with open(path, "rb") as f:
        cfg = tomllib.load(f)
    positions = {}
    csv_path = os.path.join(os.path.dirname(path), cfg["positions"]["file"])
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            p = positions.get(row["id"])
            if p is None:
                p = {"id": row["id"], "protocol": row["protocol"], "legs": []}
                if row.get("owner"):
                    p["owner"] = row["owner"]
                positions[row["id"]] = p
            p["legs"].append({"asset": row["asset"], "collateral": float(row["collateral"]),
                              "debt": float(row["debt"])})
    return cfg, list(positions.values())


def scenario_doc(prices=None, shocks=None, positions=None, max_rounds=100, path=MARKET):
    """The scenario document equivalent to the served market with oracle prices
    `prices` (pools moved to them at constant k, as the engine does), the given
    positions (default: the CSV's), and shocks."""
    prices = prices or {}
    cfg, csv_positions = load_market(path)
    assets = []
    for a in cfg["assets"]:
        sym = a["symbol"]
        p = float(prices.get(sym, a["price"]))
        d = {"symbol": sym, "price": p}
        if "pool" in a:
            base, quote = float(a["pool"]["base"]), float(a["pool"]["quote"])
            if p != float(a["price"]):
                k = base * quote
                base, quote = math.sqrt(k / p), math.sqrt(k * p)
            d["pool"] = {"base": base, "quote": quote}
        assets.append(d)
    protocols = []
    for p in cfg["protocols"]:
        protocols.append({
            "name": p["name"], "kind": p["kind"], "close_factor": p["close_factor"],
            "full_liquidation_hf": p["full_liquidation_hf"],
            "assets": {sym: {"liquidation_threshold": v["liquidation_threshold"],
                             "liquidation_bonus": v.get("liquidation_bonus", 0.0)}
                       for sym, v in p["assets"].items()}})
    return {"assets": assets, "protocols": protocols,
            "positions": csv_positions if positions is None else positions,
            "shocks": shocks or {}, "max_rounds": max_rounds}


def _with_doc(doc, fn):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(doc, f)
        name = f.name
    try:
        return fn(name)
    finally:
        os.unlink(name)


def cli_health(doc):
    """`cascade health` of a scenario document: {id: hf or None}."""
    out = _with_doc(doc, lambda n: run_cli("health", n).stdout)
    return {p["id"]: p["hf"] for p in loads(out)["positions"]}


def cli_stress(doc):
    """`cascade stress` of a scenario document, parsed."""
    return loads(_with_doc(doc, lambda n: run_cli("stress", n).stdout))


# --- the server process -----------------------------------------------------------------

class Server:
    """`cascade serve --config CONFIG --port 0 ARGS...` with environment ENV (config None:
    the embedded default market).

    start() waits for the `listening http://HOST:PORT` line; stop() sends SIGTERM and
    requires exit code 0 within STOP_TIMEOUT_S (a clean shutdown is part of the spec)."""

    def __init__(self, config=MARKET, args=(), env=None):
        self.config = config
        self.args = list(args)
        self.env = dict(env or {})
        self.proc = None
        self.host = None
        self.port = None
        self._stderr = None
        self._stdout_lines = []

    def start(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("CASCADE_")}
        env.update(self.env)
        cmd = [CASCADE, "serve", *(["--config", self.config] if self.config else []),
               "--port", "0", *self.args]
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._stderr,
                                     stdin=subprocess.DEVNULL, env=env,
                                     preexec_fn=die_with_parent)
        deadline = time.monotonic() + START_TIMEOUT_S
        line = b""
        fd = self.proc.stdout.fileno()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"no 'listening' line within {START_TIMEOUT_S} s; "
                                     f"stdout {line!r}; stderr:\n{self.stderr_text()}")
            r, _, _ = select.select([fd], [], [], min(left, 0.5))
            if r:
                chunk = os.read(fd, 4096)
                if not chunk:
                    rc = self.proc.wait()
                    raise AssertionError(f"cascade serve exited ({rc}) before listening: "
                                         f"{' '.join(cmd)}\nstderr:\n{self.stderr_text()}")
                line += chunk
                m = re.search(rb"listening http://([0-9.]+):(\d+)\r?\n", line)
                if m:
                    self.host = m.group(1).decode()
                    self.port = int(m.group(2))
                    self._stdout_lines.append(line.decode(errors="replace"))
                    break
        # Keep stdout drained so the server never blocks on a full pipe.
        threading.Thread(target=self._drain, daemon=True).start()
        return self

    def _drain(self):
        try:
            for chunk in iter(lambda: self.proc.stdout.read1(4096), b""):
                self._stdout_lines.append(chunk.decode(errors="replace"))
        except (ValueError, OSError):
            pass

    def stderr_text(self, limit=6000):
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        data = self._stderr.read().decode(errors="replace")
        return data if len(data) <= limit else "...\n" + data[-limit:]

    @property
    def base(self):
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self):
        return f"ws://{self.host}:{self.port}/v1/ws"

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """SIGTERM; returns after a clean exit, raises AssertionError otherwise."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is not None:
            raise AssertionError(f"cascade serve died during the test (exit {proc.returncode})"
                                 f"; stderr:\n{self.stderr_text()}")
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(f"cascade serve did not exit within {STOP_TIMEOUT_S} s of "
                                 f"SIGTERM; stderr:\n{self.stderr_text()}")
        try:
            if rc != 0:
                raise AssertionError(f"cascade serve exited {rc} after SIGTERM (want 0); "
                                     f"stderr:\n{self.stderr_text()}")
        finally:
            proc.stdout.close()
            self._stderr.close()
            self._stderr = None

    # --- HTTP ---------------------------------------------------------------------------

    def http(self, method, path, body=None, token=None, headers=None, timeout=60):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        hdrs = dict(headers or {})
        if body is not None and not isinstance(body, (bytes, bytearray, str)):
            body = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
        if body is not None:
            hdrs.setdefault("Content-Type", "application/json")
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        try:
            try:
                conn.request(method, path, body=body, headers=hdrs)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server may answer (e.g. 413) before reading the whole body
            r = conn.getresponse()
            data = r.read()
            return Response(method, path, r.status, dict(r.getheaders()), data)
        except OSError as e:
            raise AssertionError(
                f"{method} {path}: {type(e).__name__}: {e} (server process "
                f"{'alive' if self.alive() else 'dead'}; {self.socket_note()}); server "
                f"stderr:\n{self.stderr_text()}") from e
        finally:
            conn.close()

    def socket_note(self):
        """What the kernel says about the server's port (for connection failures)."""
        try:
            out = subprocess.run(["ss", "-Htan", f"( sport = :{self.port} or dport = :{self.port} )"],
                                 capture_output=True, text=True, timeout=5).stdout
        except (OSError, subprocess.SubprocessError) as e:
            return f"ss failed: {e}"
        states = {}
        for line in out.splitlines():
            st = line.split()[0] if line.split() else "?"
            states[st] = states.get(st, 0) + 1
        return f"sockets on port {self.port}: {states}"

    def get(self, path, **kw):
        return self.http("GET", path, **kw)

    def get_json(self, path, status=200, **kw):
        r = self.get(path, **kw)
        if r.status != status:
            raise AssertionError(f"GET {path}: status {r.status}, want {status}: {r.text()}")
        return r.json()

    def post_json(self, path, body, status=200, **kw):
        r = self.http("POST", path, body=body, **kw)
        if r.status != status:
            raise AssertionError(f"POST {path}: status {r.status}, want {status}: {r.text()}")
        return r.json()

    def digest(self):
        d = self.get_json("/v1/digest")
        if not (isinstance(d.get("digest"), str) and "seq" in d and "positions" in d):
            raise AssertionError(f"GET /v1/digest: want {{digest, seq, positions}}, got {d}")
        return d

    def metrics_text(self):
        r = self.get("/metrics")
        if r.status != 200:
            raise AssertionError(f"GET /metrics: status {r.status}: {r.text()}")
        return r.data.decode()


class Response:
    def __init__(self, method, path, status, headers, data):
        self.method, self.path, self.status, self.headers, self.data = (
            method, path, status, headers, data)

    def text(self):
        return self.data.decode(errors="replace")

    def json(self):
        try:
            return loads(self.data)
        except ValueError as e:
            raise AssertionError(f"{self.method} {self.path}: body is not strict JSON ({e}): "
                                 f"{self.data[:500]!r}")

    def __repr__(self):
        return f"<{self.method} {self.path} -> {self.status} {self.data[:300]!r}>"


class ServerCase(unittest.TestCase):
    """A TestCase with start_server(): the server stops (and must exit cleanly) at the
    end of the test."""

    def start_server(self, config=MARKET, args=(), env=None):
        s = Server(config, args, env).start()
        self.addCleanup(s.stop)
        return s


class AsyncServerCase(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        # The tests call blocking helpers (HTTP, the CLI) from coroutines on purpose;
        # asyncio's debug mode would report each as a slow callback.
        # unittest runs the loop in debug mode, which costs ~10x per message; the
        # slow-consumer test moves hundreds of thousands of them.
        loop = asyncio.get_running_loop()
        loop.slow_callback_duration = 30.0
        loop.set_debug(False)

    def start_server(self, config=MARKET, args=(), env=None):
        s = Server(config, args, env).start()
        self.addCleanup(s.stop)
        return s


# --- WebSocket with the stock client -----------------------------------------------------

class Ws:
    """A websockets client whose background reader records every message in order."""

    def __init__(self, ws):
        self.ws = ws
        self.msgs = []
        self.cond = asyncio.Condition()
        self.close_code = None
        self.close_reason = None
        self.done = False
        self._next_id = 1000
        self.task = asyncio.get_running_loop().create_task(self._reader())

    @classmethod
    async def connect(cls, server, token=None, query_token=None, headers=None, **kw):
        url = server.ws_url
        if query_token is not None:
            url += f"?token={query_token}"
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        kw.setdefault("max_size", 64 << 20)
        kw.setdefault("ping_interval", None)
        kw.setdefault("open_timeout", 10)
        kw.setdefault("max_queue", None)
        ws = await websockets.connect(url, extra_headers=hdrs, **kw)
        c = cls(ws)
        hello = await c.wait_for(lambda m: True, timeout=10)
        if hello.get("type") != "hello":
            raise AssertionError(f"first message is not hello: {hello}")
        c.hello = hello
        return c

    async def _reader(self):
        try:
            async for m in self.ws:
                if isinstance(m, bytes):
                    obj = {"type": "_binary", "data": m}
                else:
                    obj = loads(m)
                async with self.cond:
                    self.msgs.append(obj)
                    self.cond.notify_all()
        except websockets.exceptions.ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            self.close_reason = self.ws.close_reason
            async with self.cond:
                self.done = True
                self.cond.notify_all()

    async def wait_for(self, pred, timeout=10.0, start=0):
        """The first message at index >= start that satisfies pred."""
        deadline = time.monotonic() + timeout
        i = start
        async with self.cond:
            while True:
                while i < len(self.msgs):
                    if pred(self.msgs[i]):
                        return self.msgs[i]
                    i += 1
                if self.done:
                    raise AssertionError(
                        f"connection closed ({self.close_code} {self.close_reason!r}) before "
                        f"the expected message; last messages: {self.msgs[-5:]}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout} s waiting for a message;"
                                         f" last messages: {self.msgs[-5:]}")
                try:
                    await asyncio.wait_for(self.cond.wait(), left)
                except asyncio.TimeoutError:
                    pass

    async def wait_closed(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        async with self.cond:
            while not self.done:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"connection still open after {timeout} s")
                try:
                    await asyncio.wait_for(self.cond.wait(), left)
                except asyncio.TimeoutError:
                    pass
        return self.close_code

    async def send(self, obj):
        await self.ws.send(obj if isinstance(obj, (str, bytes)) else json.dumps(obj))

    async def request(self, obj, timeout=10.0):
        """Sends obj (with an id, added if missing) and returns its ack/pong/error."""
        obj = dict(obj)
        if "id" not in obj:
            self._next_id += 1
            obj["id"] = self._next_id
        start = len(self.msgs)
        await self.send(obj)
        rid = obj["id"]
        return await self.wait_for(
            lambda m: m.get("type") in ("ack", "pong", "error") and m.get("id") == rid,
            timeout, start)

    async def expect_ack(self, obj, timeout=10.0):
        m = await self.request(obj, timeout)
        if m.get("type") not in ("ack", "pong"):
            raise AssertionError(f"{obj} got {m}, want an ack")
        return m

    def events(self, kinds=("alert", "cascade", "price")):
        return [m for m in self.msgs if m.get("type") in kinds]

    async def close(self):
        try:
            await self.ws.close()
        except Exception:
            pass
        try:
            await asyncio.wait_for(self.task, 5)
        except Exception:
            pass


async def settle(seconds=0.3):
    await asyncio.sleep(seconds)


# --- a minimal raw WebSocket client (RFC 6455) ----------------------------------------------

class RawWs:
    """Socket-level WebSocket client: sends frames stock clients refuse to send
    (invalid UTF-8 text), and can stop reading entirely so the server's socket and
    send queue fill (a slow consumer)."""

    def __init__(self, server, token=None, query="", rcvbuf=None, timeout=10.0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((server.host, server.port))
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET /v1/ws{query} HTTP/1.1", f"Host: {server.host}:{server.port}",
                 "Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
                 "Sec-WebSocket-Version: 13"]
        if token:
            lines.append(f"Authorization: Bearer {token}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise AssertionError(f"raw WebSocket: connection closed during handshake: {buf!r}")
            buf += chunk
        head, self.buf = buf.split(b"\r\n\r\n", 1)
        self.status_line = head.split(b"\r\n", 1)[0].decode()
        self.status = int(self.status_line.split()[1])
        if self.status != 101:
            raise AssertionError(f"raw WebSocket upgrade refused: {head!r}")
        self.close_code = None

    def send_frame(self, opcode, payload, fin=True):
        mask = os.urandom(4)
        n = len(payload)
        hdr = bytes([(0x80 if fin else 0) | opcode])
        if n < 126:
            hdr += bytes([0x80 | n])
        elif n < 65536:
            hdr += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            hdr += bytes([0x80 | 127]) + struct.pack(">Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(hdr + mask + masked)

    def send_text(self, payload):
        self.send_frame(0x1, payload if isinstance(payload, bytes) else payload.encode())

    def send_json(self, obj):
        self.send_text(json.dumps(obj))

    def _need(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("raw WebSocket: timed out reading")
            self.sock.settimeout(left)
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("raw WebSocket: connection closed")
            self.buf += chunk

    def recv_frame(self, timeout=10.0):
        """(opcode, payload) of the next complete message (fragments joined); pings
        are answered."""
        deadline = time.monotonic() + timeout
        parts, first_op = [], None
        while True:
            self._need(2, deadline)
            b0, b1 = self.buf[0], self.buf[1]
            n = b1 & 0x7F
            off = 2
            if n == 126:
                self._need(4, deadline)
                n = struct.unpack(">H", self.buf[2:4])[0]
                off = 4
            elif n == 127:
                self._need(10, deadline)
                n = struct.unpack(">Q", self.buf[2:10])[0]
                off = 10
            if b1 & 0x80:
                off += 4  # servers never mask; tolerate it anyway
            self._need(off + n, deadline)
            payload = self.buf[off:off + n]
            self.buf = self.buf[off + n:]
            op = b0 & 0x0F
            if op == 0x9:
                self.send_frame(0xA, payload)
                continue
            if op == 0x8:
                self.close_code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else 1005
                return op, payload
            if op != 0x0:
                first_op = op
            parts.append(payload)
            if b0 & 0x80:
                return first_op, b"".join(parts)

    def recv_json(self, timeout=10.0):
        op, payload = self.recv_frame(timeout)
        if op == 0x8:
            raise ConnectionError(f"raw WebSocket: closed with {self.close_code}")
        return loads(payload)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def raw_upgrade(server, path="/v1/ws", headers=None, timeout=10.0):
    """Sends a WebSocket upgrade request; returns (status, head, body) of the answer."""
    s = socket.create_connection((server.host, server.port), timeout=timeout)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: {server.host}:{server.port}",
                 "Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
                 "Sec-WebSocket-Version: 13"]
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}")
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        status = int(head.split(b"\r\n", 1)[0].split()[1]) if head else 0
        m = re.search(rb"(?i)content-length:\s*(\d+)", head)
        if m:
            want = int(m.group(1))
            while len(body) < want:
                chunk = s.recv(4096)
                if not chunk:
                    break
                body += chunk
        return status, head.decode(errors="replace"), body
    finally:
        s.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
