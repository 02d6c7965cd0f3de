"""proto/examples/ws/ replayed through the real server (PROTOCOL.md: "examples/ws/ holds
example messages that the tests replay"):
- every valid client message is accepted (ack/pong with its id, or no error at all);
- every invalid frame in ws/bad/ gets the code, message and echoed id that
  ws/bad/index.json lists, and changes nothing;
- every server message example has the same keys as the real message of its type.

The examples name the embedded default market, so the server runs it (no --config) with
the three positions of tests/data/server/default_market_positions.csv.

    /usr/bin/python3 tests/server/integration/test_ws_examples.py --cascade BUILD/cascade
"""

import asyncio
import glob
import json
import os

import harness
from harness import DATA, EXAMPLES, AsyncServerCase, RawWs, Ws

WS = os.path.join(EXAMPLES, "ws")
POSITIONS = os.path.join(DATA, "default_market_positions.csv")
TOKEN = "examples-price-token"
ENV = {"CASCADE_TOKENS": f"{TOKEN}:price"}


def read(path):
    with open(path, "rb") as f:
        return f.read().rstrip(b"\n")


class WsExamples(AsyncServerCase):

    def start(self, *extra):
        return self.start_server(config=None, args=["--positions", POSITIONS, *extra], env=ENV)

    async def test_client_examples_accepted(self):
        s = self.start()
        files = sorted(glob.glob(os.path.join(WS, "client_*.json")))
        self.assertGreaterEqual(len(files), 8, f"client examples in {WS}")
        for path in files:
            name = os.path.basename(path)
            with self.subTest(example=name):
                msg = json.loads(read(path))
                c = await Ws.connect(s, token=TOKEN)
                try:
                    start = len(c.msgs)
                    await c.send(read(path).decode())
                    if "id" in msg:
                        # An ack of a price comes once the engine applied it: wait for it.
                        ans = await c.wait_for(
                            lambda m: m.get("type") in ("ack", "pong", "error")
                            and m.get("id") == msg["id"], timeout=10, start=start)
                        want = "pong" if msg["op"] == "ping" else "ack"
                        self.assertEqual(ans["type"], want, f"{name}: {ans}")
                    await c.request({"op": "ping", "id": "after-example"})
                    await harness.settle(0.2)
                    errors = [m for m in c.msgs[start:] if m.get("type") == "error"]
                    self.assertEqual(errors, [], f"{name} was refused")
                    if "id" in msg:
                        answers = [m for m in c.msgs[start:] if m.get("type") in ("ack", "pong")
                                   and m.get("id") == msg["id"]]
                        self.assertEqual(len(answers), 1, f"{name}: one answer: {answers}")
                finally:
                    await c.close()

    async def test_bad_examples_replayed(self):
        s = self.start("--set", "server.max_batch=2")
        with open(os.path.join(WS, "bad", "index.json")) as f:
            index = json.load(f)
        files = sorted(os.path.basename(p) for p in glob.glob(os.path.join(WS, "bad", "*.json"))
                       if not p.endswith("index.json"))
        self.assertEqual(sorted(k for k in index if not k.startswith("_")), files,
                         "ws/bad/index.json lists every bad example")
        for name in files:
            want = index[name]
            with self.subTest(example=name):
                if "max_list" in want:
                    # Filter list sizes are not a server setting: the codec tests cover it.
                    continue
                d0 = await asyncio.to_thread(s.digest)
                frame = read(os.path.join(WS, "bad", name))
                err = await asyncio.to_thread(self.send_raw, s, frame)
                if "ws_close" in want:
                    self.assertEqual(err, ("close", want["ws_close"]), name)
                    self.assertEqual(await asyncio.to_thread(s.digest), d0, f"{name} changed state")
                    continue
                if err[0] == "close":
                    self.fail(f"{name}: the server closed the connection with {err[1]} "
                              f"instead of answering {want}")
                m = err[1]
                self.assertEqual(m.get("type"), "error", f"{name}: {m}")
                self.assertEqual(m.get("code"), want["code"], f"{name}: {m}")
                if "message" in want:
                    self.assertEqual(m.get("message"), want["message"], f"{name}: {m}")
                else:
                    self.assertTrue(m.get("message"), f"{name}: empty message")
                if "id" in want:
                    wid = None if want["id"] == "" else json.loads(want["id"])
                    self.assertEqual(m.get("id"), wid, f"{name}: echoed id: {m}")
                self.assertEqual(await asyncio.to_thread(s.digest), d0, f"{name} changed state")

    @staticmethod
    def send_raw(s, frame):
        """Sends the bytes as one text frame (even when not UTF-8); returns ('error', msg)
        or ('close', code)."""
        r = RawWs(s, token=TOKEN)
        try:
            r.recv_json()  # hello
            r.send_text(frame)
            op, data = r.recv_frame()
            if op == 0x8:
                return ("close", r.close_code)
            return ("error", harness.loads(data))
        finally:
            r.close()

    async def test_server_examples_match_real_messages(self):
        s = self.start("--set", "server.send_queue=16")
        real = {}
        c = await Ws.connect(s, token=TOKEN)
        self.addAsyncCleanup(c.close)
        real["hello"] = c.hello
        real["ack"] = await c.request({"op": "subscribe", "id": 1,
                                       "channels": ["alerts", "cascades", "prices"]})
        real["pong"] = await c.request({"op": "ping", "id": 6})
        real["error"] = await c.request({"op": "prices", "id": 4, "prices": [
            {"asset": "ETH", "price": 2400.5}, {"asset": "WBT", "price": 1}]})
        await c.expect_ack({"op": "price", "id": 3, "asset": "ETH", "price": 2400.5,
                            "source": "binance", "ts": 1700000000.25})
        await c.wait_for(lambda m: m.get("type") == "cascade")
        # A burst larger than send_queue (16) in one batch: a gap, even for this reader.
        await c.expect_ack({"op": "prices", "id": 9, "prices": [
            {"asset": "LINK", "price": 15.0 + i * 0.01} for i in range(40)]})
        try:
            await c.wait_for(lambda m: m.get("type") == "gap", timeout=3)
        except AssertionError:
            pass
        for m in c.msgs:
            t = m.get("type")
            if t == "alert":
                real.setdefault("alert", m)
            elif t in ("cascade", "price", "gap"):
                real.setdefault(t, m)
        checked = []
        for path in sorted(glob.glob(os.path.join(WS, "server_*.json"))):
            name = os.path.basename(path)
            ex = json.loads(read(path))
            t = ex["type"]
            if t not in real:
                print(f"note: {name}: no real {t} message was produced to compare with")
                continue
            with self.subTest(example=name):
                self.assertEqual(sorted(real[t].keys()), sorted(ex.keys()),
                                 f"{name}: keys of the example vs the real {t}: {real[t]}")
                for k, v in ex.items():
                    rv = real[t][k]
                    if v is None or rv is None:
                        continue
                    self.assertEqual(type(rv) in (int, float), type(v) in (int, float),
                                     f"{name}.{k}: example {v!r}, real {rv!r}")
                    if isinstance(v, (str, list, dict)):
                        self.assertIsInstance(rv, type(v), f"{name}.{k}: real {rv!r}")
                checked.append(name)
        self.assertGreaterEqual(len(checked), 7, f"checked {checked}")


if __name__ == "__main__":
    harness.main()
