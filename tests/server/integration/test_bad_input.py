"""The bad-input catalogue (PROTOCOL.md "Errors"): every case is refused with the right
HTTP status / WebSocket error code and a message naming the problem, the request's id
is echoed, the state digest (GET /v1/digest) is unchanged, and the server answers
normally afterwards.

The server runs with small limits so that they are cheap to exceed:
    max_batch=5, max_body_bytes=65536, max_frame_bytes=65536, ring_events=4.

    /usr/bin/python3 tests/server/integration/test_bad_input.py --cascade BUILD/cascade
"""

import asyncio
import json


import harness
from harness import ADMIN_TOKEN, PRICE_TOKEN, READ_TOKEN, AsyncServerCase, RawWs, Ws

LIMITS = ["--set", "server.max_batch=5", "--set", "server.max_body_bytes=65536",
          "--set", "server.max_frame_bytes=65536", "--set", "server.ring_events=4"]

STATUS = {"bad_json": 400, "bad_request": 400, "unknown_op": 400, "unknown_asset": 400,
          "unknown_protocol": 400, "bad_price": 400, "unknown_position": 404, "not_found": 404,
          "too_large": 413, "unauthorized": 401, "forbidden": 403, "method_not_allowed": 405}

# A NaN or infinity literal is not JSON (bad_json) and is also what bad_price names;
# PROTOCOL.md allows either reading, so both are accepted (the message must say why).
NONFINITE = "bad_price|bad_json"

ANY = object()  # the id may be echoed or null (it sits before the fault in the frame)


def tick(asset="ETH", price=2500.0, **kw):
    return dict({"asset": asset, "price": price}, **kw)


def pos(pid="bad1", protocol="maker", legs=None, **kw):
    return dict({"id": pid, "protocol": protocol, "legs": legs if legs is not None else [
        {"asset": "ETH", "collateral": 1.0, "debt": 0.0},
        {"asset": "USDC", "collateral": 0.0, "debt": 100.0}]}, **kw)


BIG_BODY = b'{"prices": [' + b",".join([b'{"asset": "ETH", "price": 2500.0}'] * 3000) + b"]}"

# (name, method, path, body, token, code, needles): needles is a list of which at least one
# must appear (case-insensitive) in the error message.
REST_CASES = [
    ("malformed JSON", "POST", "/v1/prices", '{"prices": [', PRICE_TOKEN, "bad_json", []),
    ("not JSON", "POST", "/v1/prices", "hello", PRICE_TOKEN, "bad_json", []),
    ("trailing garbage", "POST", "/v1/prices", '{"prices": [{"asset": "ETH", "price": 2500}]} x',
     PRICE_TOKEN, "bad_json", []),
    ("two documents", "POST", "/v1/prices",
     '{"prices": [{"asset": "ETH", "price": 2500}]}{"prices": []}', PRICE_TOKEN,
     "bad_json", []),
    ("price as string", "POST", "/v1/prices", {"prices": [tick(price="2500")]}, PRICE_TOKEN,
     "bad_request", ["prices[0].price"]),
    ("asset as number", "POST", "/v1/prices", {"prices": [tick(asset=5)]}, PRICE_TOKEN,
     "bad_request", ["prices[0].asset"]),
    ("unknown asset", "POST", "/v1/prices", {"prices": [tick(asset="DOGE")]}, PRICE_TOKEN,
     "unknown_asset", ["DOGE"]),
    ("NaN literal", "POST", "/v1/prices", '{"prices": [{"asset": "ETH", "price": NaN}]}',
     PRICE_TOKEN, NONFINITE, []),
    ("1e999", "POST", "/v1/prices", '{"prices": [{"asset": "ETH", "price": 1e999}]}',
     PRICE_TOKEN, "bad_price", ["price"]),
    ("inf literal", "POST", "/v1/prices", '{"prices": [{"asset": "ETH", "price": inf}]}',
     PRICE_TOKEN, NONFINITE, []),
    ("-Infinity literal", "POST", "/v1/prices",
     '{"prices": [{"asset": "ETH", "price": -Infinity}]}', PRICE_TOKEN, NONFINITE, []),
    ("negative price", "POST", "/v1/prices", {"prices": [tick(price=-3.0)]}, PRICE_TOKEN,
     "bad_price", ["price"]),
    ("zero price", "POST", "/v1/prices", {"prices": [tick(price=0)]}, PRICE_TOKEN,
     "bad_price", ["price"]),
    ("one bad tick refuses the batch", "POST", "/v1/prices",
     {"prices": [tick(price=2000.0), tick(asset="WBT", price=1.0)]}, PRICE_TOKEN,
     "unknown_asset", ["prices[1]"]),
    ("one bad price refuses the batch", "POST", "/v1/prices",
     {"prices": [tick(price=2000.0), tick(asset="LINK", price=-1)]}, PRICE_TOKEN,
     "bad_price", ["prices[1]"]),
    ("oversized batch", "POST", "/v1/prices", {"prices": [tick(price=2000.0 + i) for i in range(6)]},
     PRICE_TOKEN, "too_large", ["5", "batch", "prices"]),
    ("empty batch", "POST", "/v1/prices", {"prices": []}, PRICE_TOKEN, "bad_request",
     ["prices"]),
    ("missing prices", "POST", "/v1/prices", {}, PRICE_TOKEN, "bad_request", ["prices"]),
    ("body is an array", "POST", "/v1/prices", [tick()], PRICE_TOKEN, "bad_request", []),
    ("unknown key in a tick", "POST", "/v1/prices", {"prices": [tick(bogus=1)]}, PRICE_TOKEN,
     "bad_request", ["bogus"]),
    ("ts as string", "POST", "/v1/prices", {"prices": [tick(ts="now")]}, PRICE_TOKEN,
     "bad_request", ["ts"]),
    ("source as number", "POST", "/v1/prices", {"prices": [tick(source=3)]}, PRICE_TOKEN,
     "bad_request", ["source"]),
    ("source too long (129 bytes; the codec's limit is 128)", "POST", "/v1/prices",
     {"prices": [tick(source="s" * 129)]}, PRICE_TOKEN, "bad_request", ["source"]),
    ("empty source", "POST", "/v1/prices", {"prices": [tick(source="")]}, PRICE_TOKEN,
     "bad_request", ["source"]),
    ("oversized body", "POST", "/v1/prices", BIG_BODY, PRICE_TOKEN, "too_large",
     ["body", "bytes", "65536", "large"]),
    ("invalid UTF-8 in body", "POST", "/v1/prices",
     b'{"prices": [{"asset": "ET\xff\xfe", "price": 2500}]}', PRICE_TOKEN, "bad_json",
     ["utf"]),
    ("missing token", "POST", "/v1/prices", {"prices": [tick()]}, None, "unauthorized", []),
    ("unknown token", "POST", "/v1/prices", {"prices": [tick()]}, "not-a-token", "unauthorized",
     []),
    ("wrong role", "POST", "/v1/prices", {"prices": [tick()]}, READ_TOKEN, "forbidden", []),
    ("max_hf=abc", "GET", "/v1/positions?max_hf=abc", None, None, "bad_request", ["max_hf"]),
    ("max_hf=-1", "GET", "/v1/positions?max_hf=-1", None, None, "bad_request", ["max_hf"]),
    ("max_hf=nan", "GET", "/v1/positions?max_hf=nan", None, None, "bad_request", ["max_hf"]),
    ("limit=0", "GET", "/v1/positions?limit=0", None, None, "bad_request", ["limit"]),
    ("limit=10001", "GET", "/v1/positions?limit=10001", None, None, "bad_request", ["limit"]),
    ("limit=1.5", "GET", "/v1/positions?limit=1.5", None, None, "bad_request", ["limit"]),
    ("unknown param", "GET", "/v1/positions?colour=red", None, None, "bad_request", ["colour"]),
    ("repeated param", "GET", "/v1/positions?limit=2&limit=3", None, None, "bad_request",
     ["limit"]),
    ("bad cursor", "GET", "/v1/positions?cursor=%%%", None, None, "bad_request",
     ["cursor", "escape", "%"]),
    ("garbage cursor", "GET", "/v1/positions?cursor=garbage", None, None, "bad_request",
     ["cursor"]),
    ("unknown protocol filter", "GET", "/v1/positions?protocol=nope", None, None,
     "unknown_protocol", ["nope"]),
    ("unknown asset filter", "GET", "/v1/positions?asset=DOGE", None, None, "unknown_asset",
     ["DOGE"]),
    ("unknown route", "GET", "/v1/nope", None, None, "not_found", ["/v1/nope"]),
    ("unknown version", "GET", "/v2/assets", None, None, "not_found", ["/v2/assets"]),
    ("wrong method DELETE assets", "DELETE", "/v1/assets", None, ADMIN_TOKEN,
     "method_not_allowed", ["DELETE"]),
    ("wrong method PUT prices", "PUT", "/v1/prices", {"prices": [tick()]}, ADMIN_TOKEN,
     "method_not_allowed", ["PUT"]),
    ("wrong method GET prices", "GET", "/v1/prices", None, None, "method_not_allowed", ["GET"]),
    ("GET unknown position", "GET", "/v1/positions/zzz-nope", None, None, "unknown_position",
     ["zzz-nope"]),
    ("DELETE unknown position", "DELETE", "/v1/positions/zzz-nope", None, ADMIN_TOKEN,
     "unknown_position", ["zzz-nope"]),
    ("duplicate id in batch", "POST", "/v1/positions", {"positions": [pos("dup"), pos("dup")]},
     ADMIN_TOKEN, "bad_request", ["dup"]),
    ("negative collateral", "POST", "/v1/positions", {"positions": [pos(legs=[
        {"asset": "ETH", "collateral": -1.0, "debt": 0.0}])]}, ADMIN_TOKEN, "bad_request",
     ["collateral"]),
    ("negative debt", "POST", "/v1/positions", {"positions": [pos(legs=[
        {"asset": "USDC", "collateral": 0.0, "debt": -5}])]}, ADMIN_TOKEN, "bad_request",
     ["debt"]),
    ("unknown protocol", "POST", "/v1/positions", {"positions": [pos(protocol="venus")]},
     ADMIN_TOKEN, "unknown_protocol", ["venus"]),
    ("unknown leg asset", "POST", "/v1/positions", {"positions": [pos(legs=[
        {"asset": "DOGE", "collateral": 1.0, "debt": 0.0}])]}, ADMIN_TOKEN, "unknown_asset",
     ["DOGE"]),
    ("collateral the protocol does not take", "POST", "/v1/positions",
     {"positions": [pos(legs=[{"asset": "LINK", "collateral": 10.0, "debt": 0.0},
                              {"asset": "USDC", "collateral": 0.0, "debt": 1.0}])]},
     ADMIN_TOKEN, "bad_request", ["LINK"]),
    ("second position bad: nothing upserted", "POST", "/v1/positions",
     {"positions": [pos("ok1"), pos("bad2", protocol="venus")]}, ADMIN_TOKEN,
     "unknown_protocol", ["venus", "positions[1]"]),
    ("missing legs", "POST", "/v1/positions", {"positions": [{"id": "x", "protocol": "maker"}]},
     ADMIN_TOKEN, "bad_request", ["legs"]),
    ("NaN debt", "POST", "/v1/positions",
     '{"positions": [{"id": "x", "protocol": "maker", "legs": [{"asset": "USDC", "debt": NaN}]}]}',
     ADMIN_TOKEN, "bad_json|bad_request", ["debt"]),
    ("too many positions", "POST", "/v1/positions",
     {"positions": [pos(f"many{i}") for i in range(6)]}, ADMIN_TOKEN, "too_large",
     ["5", "batch", "positions"]),
    ("positions need admin", "POST", "/v1/positions", {"positions": [pos()]}, PRICE_TOKEN,
     "forbidden", []),
    ("stress shock -1", "POST", "/v1/stress", {"shocks": {"ETH": -1.0}}, None, "bad_request",
     ["ETH", "shock"]),
    ("stress unknown shocked asset", "POST", "/v1/stress", {"shocks": {"DOGE": -0.1}}, None,
     "unknown_asset", ["DOGE"]),
    ("stress max_rounds 0", "POST", "/v1/stress", {"shocks": {}, "max_rounds": 0}, None,
     "bad_request", ["max_rounds"]),
    ("stress live asset not in the market", "POST", "/v1/stress",
     {"assets": [{"symbol": "DOGE", "price": 1.0}], "shocks": {}}, None, "unknown_asset",
     ["DOGE"]),
    ("stress duplicate position ids", "POST", "/v1/stress", {
        "assets": [{"symbol": "ETH", "price": 3000.0}, {"symbol": "USDC", "price": 1.0}],
        "protocols": [{"name": "p", "kind": "pooled", "close_factor": 0.5,
                       "full_liquidation_hf": 0.95,
                       "assets": {"ETH": {"liquidation_threshold": 0.8,
                                          "liquidation_bonus": 0.05}}}],
        "positions": [pos("twice", "p"), pos("twice", "p")], "shocks": {}}, None,
     "bad_request", ["twice", "duplicate"]),
    ("curves without asset", "GET", "/v1/curves", None, None, "bad_request", ["asset"]),
    ("curves unknown asset", "GET", "/v1/curves?asset=DOGE", None, None, "unknown_asset",
     ["DOGE"]),
]


def frame(obj):
    return json.dumps(obj)


# (name, token, kind, payload, code, id, needles). kind: text | binary | raw (raw bytes in a
# text frame, sent by the raw client). code "close:N" means the server closes with N.
WS_CASES = [
    ("malformed JSON", PRICE_TOKEN, "text", '{"op": ', "bad_json", None, []),
    ("trailing garbage", PRICE_TOKEN, "text", '{"op": "ping", "id": 1} x', "bad_json", ANY, []),
    ("not JSON", PRICE_TOKEN, "text", "ping", "bad_json", None, []),
    ("not an object", PRICE_TOKEN, "text", "[1, 2]", "bad_request", None, []),
    ("missing op", PRICE_TOKEN, "text", frame({"id": 5}), "bad_request", 5, ["op"]),
    ("unknown op", PRICE_TOKEN, "text", frame({"op": "frobnicate", "id": "u"}), "unknown_op",
     "u", ["frobnicate"]),
    ("op as number", PRICE_TOKEN, "text", frame({"op": 5, "id": 6}), "bad_request", 6, ["op"]),
    ("price as string", PRICE_TOKEN, "text",
     frame({"op": "price", "id": 7, "asset": "ETH", "price": "2500"}), "bad_request", 7,
     ["price"]),
    ("asset as number", PRICE_TOKEN, "text",
     frame({"op": "price", "id": 8, "asset": 1, "price": 2500}), "bad_request", 8, ["asset"]),
    ("unknown asset", PRICE_TOKEN, "text",
     frame({"op": "price", "id": 9, "asset": "DOGE", "price": 1.0}), "unknown_asset", 9,
     ["DOGE"]),
    ("NaN literal", PRICE_TOKEN, "text", '{"op": "price", "id": 10, "asset": "ETH", "price": NaN}',
     NONFINITE, ANY, []),
    ("1e999", PRICE_TOKEN, "text", '{"op": "price", "id": 11, "asset": "ETH", "price": 1e999}',
     "bad_price", 11, ["price"]),
    ("negative price", PRICE_TOKEN, "text",
     frame({"op": "price", "id": 12, "asset": "ETH", "price": -1}), "bad_price", 12, ["price"]),
    ("zero price", PRICE_TOKEN, "text",
     frame({"op": "price", "id": 13, "asset": "ETH", "price": 0.0}), "bad_price", 13, ["price"]),
    ("inf literal", PRICE_TOKEN, "text", '{"op": "price", "id": 14, "asset": "ETH", "price": inf}',
     NONFINITE, ANY, []),
    ("one bad tick refuses the batch", PRICE_TOKEN, "text",
     frame({"op": "prices", "id": 15, "prices": [tick(price=2000.0), tick(asset="WBT")]}),
     "unknown_asset", 15, ["prices[1]"]),
    ("oversized batch", PRICE_TOKEN, "text",
     frame({"op": "prices", "id": 16, "prices": [tick(price=2000.0 + i) for i in range(6)]}),
     "too_large", 16, ["5", "batch", "prices"]),
    ("empty batch", PRICE_TOKEN, "text", frame({"op": "prices", "id": 17, "prices": []}),
     "bad_request", 17, ["prices"]),
    ("binary frame", PRICE_TOKEN, "binary", b'{"op": "ping", "id": 18}', "binary_frame", None,
     ["binary"]),
    ("oversized frame", PRICE_TOKEN, "text",
     frame({"op": "prices", "id": 19, "prices": [tick()] * 3000}), "close:1009", None, []),
    ("invalid UTF-8 in a text frame", PRICE_TOKEN, "raw",
     b'{"op": "price", "id": 20, "asset": "ET\xff\xfe", "price": 2500}', "bad_json|close:1007",
     ANY, ["utf"]),
    ("wrong role", READ_TOKEN, "text",
     frame({"op": "price", "id": 21, "asset": "ETH", "price": 2500.0}), "forbidden", 21, []),
    ("anonymous may not push", None, "text",
     frame({"op": "prices", "id": "anon", "prices": [tick()]}), "forbidden", "anon", []),
    ("unknown filter key", PRICE_TOKEN, "text",
     frame({"op": "subscribe", "id": 23, "filter": {"protocol": ["maker"]}}), "bad_request", 23,
     ["protocol"]),
    ("bad band name", PRICE_TOKEN, "text",
     frame({"op": "subscribe", "id": 24, "filter": {"min_band": "severe"}}), "bad_request", 24,
     ["severe", "min_band"]),
    ("unknown channel", PRICE_TOKEN, "text",
     frame({"op": "subscribe", "id": 25, "channels": ["alerts", "bogus"]}), "bad_request", 25,
     ["bogus", "channels"]),
    ("filter names an unknown asset", PRICE_TOKEN, "text",
     frame({"op": "subscribe", "id": 26, "filter": {"assets": ["DOGE"]}}), "unknown_asset", 26,
     ["DOGE"]),
    ("filter names an unknown protocol", PRICE_TOKEN, "text",
     frame({"op": "subscribe", "id": 27, "filter": {"protocols": ["venus"]}}),
     "unknown_protocol", 27, ["venus"]),
    ("resume older than the ring", PRICE_TOKEN, "text",
     frame({"op": "resume", "id": 28, "from_seq": 1}), "resume_unavailable", 28, ["oldest"]),
    ("resume from_seq as string", PRICE_TOKEN, "text",
     frame({"op": "resume", "id": 29, "from_seq": "1"}), "bad_request", 29, ["from_seq"]),
    ("resume without from_seq", PRICE_TOKEN, "text", frame({"op": "resume", "id": 30}),
     "bad_request", 30, ["from_seq"]),
    ("ts as string", PRICE_TOKEN, "text",
     frame({"op": "price", "id": 31, "asset": "ETH", "price": 2500.0, "ts": "now"}),
     "bad_request", 31, ["ts"]),
    ("source too long", PRICE_TOKEN, "text",
     frame({"op": "price", "id": 38, "asset": "ETH", "price": 2500.0, "source": "s" * 129}),
     "bad_request", 38, ["source"]),
    ("unknown key", PRICE_TOKEN, "text",
     frame({"op": "price", "id": 32, "asset": "ETH", "price": 2500.0, "bogus": 1}),
     "bad_request", 32, ["bogus"]),
    ("non-ASCII string id echoed", PRICE_TOKEN, "text",
     frame({"op": "nope", "id": "\u00e9-\u4e2d"}), "unknown_op", "\u00e9-\u4e2d", ["nope"]),
    ("float id echoed", PRICE_TOKEN, "text", frame({"op": "nope", "id": -2.5}), "unknown_op",
     -2.5, ["nope"]),
    ("boolean id echoed", PRICE_TOKEN, "text", frame({"op": "nope", "id": True}), "unknown_op",
     True, ["nope"]),
    ("channels not an array", PRICE_TOKEN, "text",
     frame({"op": "subscribe", "id": 37, "channels": "alerts"}), "bad_request", 37,
     ["channels"]),
]


class BadInput(AsyncServerCase):

    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.s = self.start_server(args=LIMITS)
        # Events past the ring (ring_events=4), so resume from 1 is unavailable.
        c = await Ws.connect(self.s, token=PRICE_TOKEN)
        await c.request({"op": "subscribe", "id": 1, "channels": ["prices"]})
        for i in range(10):
            await c.expect_ack({"op": "price", "id": 100 + i, "asset": "LINK",
                                "price": 15.0 + i * 0.01})
        await c.close()

    def check_message(self, name, msg, needles):
        self.assertIsInstance(msg, str, f"{name}: message must be a string")
        self.assertTrue(msg.strip(), f"{name}: empty message")
        if needles:
            self.assertTrue(any(n.lower() in msg.lower() for n in needles),
                            f"{name}: message {msg!r} names none of {needles}")

    async def test_rest_catalogue(self):
        s = self.s
        self.assertGreaterEqual(len(REST_CASES), 30)
        for name, method, path, body, token, code, needles in REST_CASES:
            with self.subTest(case=name, request=f"{method} {path}"):
                d0 = await asyncio.to_thread(s.digest)
                r = await asyncio.to_thread(s.http, method, path, body, token)
                codes = code.split("|")
                self.assertIn(r.status, {STATUS[c] for c in codes},
                              f"{name}: {method} {path} -> {r}")
                body_json = r.json()
                err = body_json.get("error") if isinstance(body_json, dict) else None
                self.assertIsInstance(err, dict, f"{name}: want {{\"error\": {{code, message}}}},"
                                                 f" got {body_json}")
                self.assertIn(err.get("code"), codes, f"{name}: {body_json}")
                self.check_message(name, err.get("message"), needles)
                self.assertTrue(r.headers.get("Content-Type", "").startswith("application/json"),
                                f"{name}: Content-Type {r.headers.get('Content-Type')}")
                self.assertEqual(await asyncio.to_thread(s.digest), d0,
                                 f"{name}: state changed by a refused request")
                self.assertEqual((await asyncio.to_thread(s.get, "/healthz")).status, 200)
        # Nothing of the refused batches was applied, and the server still works.
        self.assertEqual(s.get("/v1/positions/ok1").status, 404, "all-or-nothing upsert")
        r = s.http("POST", "/v1/prices", {"prices": [tick(price=2999.0)]}, PRICE_TOKEN)
        self.assertEqual(r.status, 200, f"a good request after the catalogue: {r}")
        self.assertEqual(s.get_json("/v1/positions/a1")["legs"][0]["collateral"], 10.0)

    async def test_ws_catalogue(self):
        s = self.s
        self.assertGreaterEqual(len(WS_CASES), 30)
        notes = []
        for name, token, kind, payload, code, want_id, needles in WS_CASES:
            with self.subTest(case=name, frame=payload[:120]):
                d0 = await asyncio.to_thread(s.digest)
                if kind == "raw":
                    outcome = await asyncio.to_thread(self.raw_case, token, payload)
                else:
                    outcome = await self.stock_case(token, kind, payload)
                codes = code.split("|")
                if outcome[0] == "close":
                    self.assertIn(f"close:{outcome[1]}", codes,
                                  f"{name}: connection closed with {outcome[1]} "
                                  f"({outcome[2]!r}), want {code}")
                    notes.append(f"{name}: closed with {outcome[1]}")
                else:
                    _, err, still_open = outcome
                    self.assertEqual(err.get("type"), "error", f"{name}: {err}")
                    self.assertIn(err.get("code"), codes, f"{name}: {err}")
                    self.assertIn("id", err, f"{name}: error without an id key: {err}")
                    if want_id is not ANY:
                        self.assertEqual(err.get("id"), want_id, f"{name}: id not echoed: {err}")
                        self.assertEqual(type(err.get("id")), type(want_id),
                                         f"{name}: id type: {err}")
                    self.check_message(name, err.get("message"), needles)
                    self.assertTrue(still_open, f"{name}: the connection must stay open")
                self.assertEqual(await asyncio.to_thread(s.digest), d0,
                                 f"{name}: state changed by a refused message")
        for n in notes:
            print("note:", n)
        # Afterwards the server answers normally.
        c = await Ws.connect(s, token=PRICE_TOKEN)
        a = await c.request({"op": "price", "id": "ok", "asset": "ETH", "price": 2999.0})
        self.assertEqual(a.get("type"), "ack", f"{a}")
        await c.close()

    async def stock_case(self, token, kind, payload):
        """('error', message, still_open) or ('close', code, reason)."""
        c = await Ws.connect(self.s, token=token, compression=None)
        try:
            start = len(c.msgs)
            await c.send(payload)
            try:
                m = await c.wait_for(lambda m: m.get("type") in ("error", "ack", "pong"),
                                     timeout=10, start=start)
            except AssertionError:
                if c.done:
                    return ("close", c.close_code, c.close_reason)
                raise
            p = await c.request({"op": "ping", "id": "after"})
            return ("error", m, p.get("type") == "pong")
        finally:
            await c.close()

    def raw_case(self, token, payload):
        r = RawWs(self.s, token=token)
        try:
            r.recv_json()  # hello
            r.send_text(payload)
            op, data = r.recv_frame()
            if op == 0x8:
                return ("close", r.close_code, data[2:].decode(errors="replace"))
            m = harness.loads(data)
            r.send_json({"op": "ping", "id": "after"})
            while True:
                p = r.recv_json()
                if p.get("type") == "pong":
                    return ("error", m, True)
        finally:
            r.close()


if __name__ == "__main__":
    harness.main()
