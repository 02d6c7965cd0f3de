"""Auth: tokens and roles from the config ([[server.tokens]] with literal tokens) and
from CASCADE_TOKENS; REST 401/403; WebSocket upgrade refusals, ?token=, and `error`
forbidden with the request's id on a connection that stays open.

    /usr/bin/python3 tests/server/integration/test_auth.py --cascade BUILD/cascade
"""

import websockets
import websockets.exceptions

import harness
from harness import (ADMIN_TOKEN, PRICE_TOKEN, READ_TOKEN, AsyncServerCase, RawWs, Ws,
                     raw_upgrade)

ENV_TOKENS = {"CASCADE_TOKENS": "env-price-tok:price,env-admin-tok:admin,env-read-tok:read"}
TICK = {"prices": [{"asset": "LINK", "price": 15.5}]}


def position(pid="auth1"):
    return {"positions": [{"id": pid, "protocol": "maker", "legs": [
        {"asset": "ETH", "collateral": 1.0, "debt": 0.0},
        {"asset": "USDC", "collateral": 0.0, "debt": 100.0}]}]}


class Auth(AsyncServerCase):

    def assert_error(self, r, status, code):
        self.assertEqual(r.status, status, f"{r.method} {r.path}: {r}")
        body = r.json()
        err = body.get("error") if isinstance(body, dict) else None
        self.assertIsInstance(err, dict, f"{r.method} {r.path}: error body {body}")
        self.assertEqual(err.get("code"), code, f"{r.method} {r.path}: {body}")
        self.assertTrue(err.get("message"), f"{r.method} {r.path}: empty message: {body}")

    async def test_rest_roles(self):
        s = self.start_server(env=ENV_TOKENS)
        # Anonymous may read (anonymous_role = "read").
        self.assertEqual(s.get("/v1/assets").status, 200)
        self.assertEqual(s.get("/v1/assets", token=READ_TOKEN).status, 200)
        # No token where price is needed: 401. Unknown token: 401, even for a read.
        self.assert_error(s.http("POST", "/v1/prices", body=TICK), 401, "unauthorized")
        self.assert_error(s.http("POST", "/v1/prices", body=TICK, token="nope"), 401,
                          "unauthorized")
        self.assert_error(s.get("/v1/assets", token="nope"), 401, "unauthorized")
        # A token without the role: 403.
        self.assert_error(s.http("POST", "/v1/prices", body=TICK, token=READ_TOKEN), 403,
                          "forbidden")
        self.assert_error(s.http("POST", "/v1/prices", body=TICK, token="env-read-tok"), 403,
                          "forbidden")
        d0 = s.digest()
        # price and admin may push; tokens from the config and from CASCADE_TOKENS.
        for tok in (PRICE_TOKEN, ADMIN_TOKEN, "env-price-tok", "env-admin-tok"):
            r = s.http("POST", "/v1/prices", body=TICK, token=tok)
            self.assertEqual(r.status, 200, f"POST /v1/prices with {tok}: {r}")
            self.assertEqual(r.json().get("applied"), 1)
        self.assertNotEqual(s.digest()["digest"], d0["digest"])
        # Positions need admin.
        d1 = s.digest()
        self.assert_error(s.http("POST", "/v1/positions", body=position(), token=PRICE_TOKEN),
                          403, "forbidden")
        self.assert_error(s.http("POST", "/v1/positions", body=position(), token=READ_TOKEN),
                          403, "forbidden")
        self.assert_error(s.http("POST", "/v1/positions", body=position()), 401, "unauthorized")
        self.assert_error(s.http("DELETE", "/v1/positions/a1", token=PRICE_TOKEN), 403,
                          "forbidden")
        self.assert_error(s.http("DELETE", "/v1/positions/a1"), 401, "unauthorized")
        self.assertEqual(s.digest(), d1, "refused requests change nothing")
        r = s.http("POST", "/v1/positions", body=position(), token=ADMIN_TOKEN)
        self.assertEqual(r.status, 200, f"{r}")
        r = s.http("POST", "/v1/positions", body=position("auth2"), token="env-admin-tok")
        self.assertEqual(r.status, 200, f"{r}")
        r = s.http("DELETE", "/v1/positions/auth2", token=ADMIN_TOKEN)
        self.assertEqual(r.status, 200, f"{r}")
        # Stress needs read: anonymous may.
        r = s.http("POST", "/v1/stress", body={"shocks": {"ETH": -0.1}})
        self.assertEqual(r.status, 200, f"{r}")
        # No auth on health and metrics.
        for path in ("/healthz", "/readyz", "/metrics"):
            self.assertEqual(s.get(path).status, 200, path)

    async def test_anonymous_none(self):
        s = self.start_server(args=["--set", "server.anonymous_role=none"])
        self.assert_error(s.get("/v1/assets"), 401, "unauthorized")
        self.assert_error(s.get("/v1/positions/a1"), 401, "unauthorized")
        self.assert_error(s.http("POST", "/v1/stress", body={"shocks": {}}), 401, "unauthorized")
        self.assertEqual(s.get("/v1/assets", token=READ_TOKEN).status, 200)
        for path in ("/healthz", "/readyz", "/metrics"):
            self.assertEqual(s.get(path).status, 200, f"{path} needs no token")
        status, head, body = raw_upgrade(s)
        self.assertEqual(status, 401, f"upgrade without token, anonymous none: {head}")
        with self.assertRaises(websockets.exceptions.InvalidStatusCode) as cm:
            await Ws.connect(s)
        self.assertEqual(cm.exception.status_code, 401)
        c = await Ws.connect(s, token=READ_TOKEN)
        a = await c.request({"op": "subscribe", "id": 1})
        self.assertEqual(a.get("type"), "ack", f"{a}")
        await c.close()

    async def test_anonymous_env_override(self):
        # CASCADE_SERVER_ANONYMOUS_ROLE=none does the same as --set.
        s = self.start_server(env={"CASCADE_SERVER_ANONYMOUS_ROLE": "none"})
        self.assert_error(s.get("/v1/summary"), 401, "unauthorized")
        self.assertEqual(s.get("/v1/summary", token=READ_TOKEN).status, 200)

    async def test_websocket_auth(self):
        s = self.start_server(env=ENV_TOKENS)
        # Bad tokens at upgrade: 401, in the header or the query.
        for kw in ({"token": "nope"}, {"query_token": "nope"}):
            with self.assertRaises(websockets.exceptions.InvalidStatusCode,
                                   msg=f"upgrade with {kw}") as cm:
                await Ws.connect(s, **kw)
            self.assertEqual(cm.exception.status_code, 401, f"upgrade with {kw}")
        status, head, body = raw_upgrade(s, headers={"Authorization": "Bearer nope"})
        self.assertEqual(status, 401, head)
        if body:
            err = harness.loads(body).get("error", {})
            self.assertEqual(err.get("code"), "unauthorized", f"{body!r}")

        # ?token= works.
        c = await Ws.connect(s, query_token=PRICE_TOKEN)
        a = await c.request({"op": "price", "id": "q1", "asset": "LINK", "price": 15.25})
        self.assertEqual((a.get("type"), a.get("id")), ("ack", "q1"), f"?token= price: {a}")
        await c.close()
        c = await Ws.connect(s, query_token="env-price-tok")
        a = await c.request({"op": "price", "id": "q2", "asset": "LINK", "price": 15.3})
        self.assertEqual(a.get("type"), "ack", f"{a}")
        await c.close()

        # A read token (and anonymous) may subscribe but not push: `error` forbidden with
        # the id; the connection stays open.
        for kw in ({"token": READ_TOKEN}, {"query_token": "env-read-tok"}, {}):
            c = await Ws.connect(s, **kw)
            d0 = s.digest()
            a = await c.request({"op": "subscribe", "id": 1, "channels": ["prices"]})
            self.assertEqual(a.get("type"), "ack", f"{kw}: {a}")
            e = await c.request({"op": "price", "id": "p-9", "asset": "ETH", "price": 1.0})
            self.assertEqual((e.get("type"), e.get("code"), e.get("id")),
                             ("error", "forbidden", "p-9"), f"{kw}: {e}")
            self.assertTrue(e.get("message"), f"{e}")
            e = await c.request({"op": "prices", "id": 10, "prices": [
                {"asset": "ETH", "price": 1.0}]})
            self.assertEqual((e.get("type"), e.get("code"), e.get("id")),
                             ("error", "forbidden", 10), f"{kw}: {e}")
            p = await c.request({"op": "ping", "id": "still-open"})
            self.assertEqual(p, {"type": "pong", "id": "still-open"}, f"{kw}")
            self.assertEqual(s.digest(), d0)
            self.assertEqual(c.events(("price",)), [], "no price was applied")
            await c.close()

        # A raw client with the token header works too (not only the stock client).
        r = RawWs(s, token=ADMIN_TOKEN)
        hello = r.recv_json()
        self.assertEqual(hello.get("type"), "hello")
        r.send_json({"op": "price", "id": 5, "asset": "LINK", "price": 15.0})
        a = r.recv_json()
        self.assertEqual((a.get("type"), a.get("id")), ("ack", 5), f"{a}")
        r.close()


if __name__ == "__main__":
    harness.main()
