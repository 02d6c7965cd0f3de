"""Start and stop: the `listening` line, a clean exit (code 0) on SIGTERM and SIGINT even
with WebSocket clients connected (they get close 1001 "going away") and with a client
that stopped reading; refused settings and a busy port fail with a message.

    /usr/bin/python3 tests/server/integration/test_lifecycle.py --cascade BUILD/cascade
"""

import asyncio
import os
import signal
import socket
import subprocess
import time

import harness
from harness import MARKET, PRICE_TOKEN, AsyncServerCase, RawWs, Server, Ws


class Lifecycle(AsyncServerCase):

    @staticmethod
    def kill_if_running(s):
        """For tests that stop the server themselves: never leave it behind."""
        if s.proc is not None and s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()

    async def test_sigint_exits_cleanly(self):
        s = Server().start()
        self.addCleanup(self.kill_if_running, s)
        self.assertEqual(s.get_json("/healthz"), {"status": "ok"})
        proc = s.proc
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(timeout=harness.STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            self.fail("no exit within 5 s of SIGINT")
        self.assertEqual(rc, 0, f"exit code after SIGINT; stderr:\n{s.stderr_text()}")
        self.assertIn("SIGINT", s.stderr_text())
        proc.stdout.close()
        s.proc = None

    async def test_sigterm_with_clients_connected(self):
        s = Server(args=["--set", "server.send_queue=16"]).start()
        self.addCleanup(self.kill_if_running, s)
        clients = []
        for _ in range(3):
            c = await Ws.connect(s, token=PRICE_TOKEN)
            await c.request({"op": "subscribe", "id": 1, "channels": ["prices", "alerts"]})
            clients.append(c)
        # A client that never reads, with unread data waiting for it.
        stalled = RawWs(s, rcvbuf=4096)
        stalled.recv_json()
        stalled.send_json({"op": "subscribe", "id": 1, "channels": ["prices"]})
        for i in range(20):
            await clients[0].expect_ack({"op": "prices", "id": i, "prices": [
                {"asset": "LINK", "price": 15.0 + j * 1e-3, "source": "z" * 120}
                for j in range(10)]})
        # An idle keep-alive HTTP connection too.
        idle = socket.create_connection((s.host, s.port))
        t0 = time.monotonic()
        await asyncio.to_thread(s.stop)  # SIGTERM; exit 0 within 5 s or it raises
        elapsed = time.monotonic() - t0
        for c in clients:
            code = await c.wait_closed(timeout=5)
            self.assertEqual(code, 1001, f"WebSocket close code at shutdown: {code} "
                                         f"({c.close_reason!r})")
            await c.close()
        stalled.close()
        idle.close()
        print(f"note: shutdown with 4 WebSocket clients took {elapsed:.2f} s")

    async def test_bad_settings_refused(self):
        cases = [
            (["--set", "server.no_such_key=1"], {}, "no_such_key"),
            (["--set", "server.send_queue=0"], {}, "send_queue"),
            (["--set", "server.anonymous_role=root"], {}, "anonymous_role"),
            (["--set", "port=1"], {}, "server.KEY"),
            ([], {"CASCADE_SERVER_MAX_BATCH": "many"}, "CASCADE_SERVER_MAX_BATCH"),
            ([], {"CASCADE_TOKENS": "tok-without-role"}, "CASCADE_TOKENS"),
            ([], {"CASCADE_TOKENS": "tok:superuser"}, "superuser"),
        ]
        for args, env, needle in cases:
            with self.subTest(args=args, env=env):
                full_env = {k: v for k, v in os.environ.items()
                            if not k.startswith("CASCADE_")}
                full_env.update(env)
                p = subprocess.run([harness.CASCADE, "serve", "--config", MARKET, "--port", "0",
                                    *args], capture_output=True, timeout=20, env=full_env)
                self.assertNotEqual(p.returncode, 0, f"{args} {env} was accepted")
                err = p.stderr.decode(errors="replace")
                self.assertIn(needle, err, f"{args} {env}: stderr {err!r}")
                self.assertNotIn(b"listening", p.stdout)

    async def test_port_in_use(self):
        s = self.start_server()
        p = subprocess.run([harness.CASCADE, "serve", "--config", MARKET, "--port",
                            str(s.port)], capture_output=True, timeout=20)
        self.assertNotEqual(p.returncode, 0, "a second server on a busy port")
        self.assertIn(str(s.port), p.stderr.decode(errors="replace"),
                      f"the message names the address: {p.stderr!r}")
        self.assertEqual(s.get("/healthz").status, 200, "the first server is unaffected")


if __name__ == "__main__":
    harness.main()
