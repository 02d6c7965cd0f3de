"""GET /metrics: valid Prometheus text (promtool check metrics), the metrics the server
promises, counters that move with traffic, and a real Prometheus scraping it.

    /usr/bin/python3 tests/server/integration/test_metrics.py --cascade BUILD/cascade
"""

import asyncio
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

import harness
from harness import PRICE_TOKEN, AsyncServerCase, Ws, free_port

PROMTOOL = "/usr/bin/promtool"
PROMETHEUS = "/usr/bin/prometheus"

# name -> (TYPE, labels each sample must carry)
REQUIRED = {
    "cascade_ticks_received_total": ("counter", set()),
    "cascade_ticks_applied_total": ("counter", set()),
    "cascade_tick_to_alert_seconds": ("histogram", set()),
    "cascade_positions": ("gauge", {"protocol", "band"}),
    "cascade_liquidatable_collateral_usd": ("gauge", set()),
    "cascade_projected_bad_debt_usd": ("gauge", set()),
    "cascade_projections_total": ("counter", set()),
    "cascade_projection_duration_seconds": ("histogram", set()),
    "cascade_ws_connections": ("gauge", set()),
    "cascade_ws_messages_received_total": ("counter", set()),
    "cascade_ws_messages_sent_total": ("counter", set()),
    "cascade_ws_gaps_total": ("counter", set()),
    "cascade_ws_events_dropped_total": ("counter", set()),
    "cascade_engine_queue_depth": ("gauge", set()),
    "cascade_errors_total": ("counter", {"code"}),
}

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text):
    """{family: {"type": T, "samples": [(name, {label: value}, float)]}}"""
    types, samples = {}, []
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, t = line.split(None, 3)
            types[name] = t.strip()
        elif line and not line.startswith("#"):
            m = SAMPLE.match(line)
            if not m:
                raise AssertionError(f"unparsable metrics line: {line!r}")
            labels = dict(LABEL.findall(m.group(3) or ""))
            samples.append((m.group(1), labels, float(m.group(4))))
    fams = {n: {"type": t, "samples": []} for n, t in types.items()}
    for name, labels, v in samples:
        fam = name
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and name[: -len(suffix)] in types:
                fam = name[: -len(suffix)]
        fams.setdefault(fam, {"type": None, "samples": []})["samples"].append((name, labels, v))
    return fams


def total(fams, name, suffix="", **labels):
    fam = fams.get(name)
    if fam is None:
        return None
    return sum(v for n, l, v in fam["samples"] if n == name + suffix and
               all(l.get(k) == want for k, want in labels.items()))


class Metrics(AsyncServerCase):

    def promtool_check(self, text):
        if not os.access(PROMTOOL, os.X_OK):
            self.skipTest(f"{PROMTOOL} is missing (Debian package prometheus)")
        p = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(),
                           capture_output=True, timeout=60)
        out = (p.stdout + p.stderr).decode(errors="replace")
        if out.strip():
            print("promtool check metrics says (lint warnings are not failures):\n" + out)
        # promtool exits 1 for lint problems as well as parse errors; only the latter
        # fail ("error while linting: text format parsing error in line N: ...").
        errors = [l for l in out.splitlines()
                  if "error while linting" in l or "parsing error" in l]
        self.assertEqual(errors, [], f"promtool cannot parse /metrics:\n{out}")
        return out

    async def test_metrics_content_and_promtool(self):
        s = self.start_server()
        r = s.get("/metrics")
        self.assertEqual(r.status, 200)
        ctype = r.headers.get("Content-Type", "")
        self.assertTrue(ctype.startswith("text/plain"), f"Content-Type {ctype}")
        self.assertIn("version=0.0.4", ctype, f"Content-Type {ctype}")
        text0 = r.data.decode()
        self.promtool_check(text0)
        f0 = parse(text0)
        for name, (typ, labels) in REQUIRED.items():
            with self.subTest(metric=name):
                self.assertIn(name, f0, f"/metrics lacks {name}")
                self.assertEqual(f0[name]["type"], typ, f"{name} TYPE")
                if labels:
                    self.assertTrue(f0[name]["samples"], f"{name} has no samples")
                    for n, l, v in f0[name]["samples"]:
                        self.assertTrue(labels <= set(l), f"{name} sample {n}{l} lacks {labels}")
        # cascade_positions{protocol,band} sums to the book.
        self.assertEqual(total(f0, "cascade_positions"), 11.0)
        self.assertEqual(total(f0, "cascade_positions", protocol="maker", band="warn"), 1.0)

        # Traffic: 3 ticks over REST, 2 over WebSocket, errors, a subscriber.
        c = await Ws.connect(s, token=PRICE_TOKEN)
        await c.request({"op": "subscribe", "id": 1, "channels": ["alerts", "cascades"]})
        self.assertEqual(
            s.post_json("/v1/prices", {"prices": [{"asset": "LINK", "price": 14.0},
                                                  {"asset": "WBTC", "price": 59000.0},
                                                  {"asset": "ETH", "price": 2400.0}]},
                        token=PRICE_TOKEN)["applied"], 3)
        await c.expect_ack({"op": "prices", "id": 2, "prices": [
            {"asset": "LINK", "price": 14.5}, {"asset": "DAI", "price": 1.0}]})
        await c.wait_for(lambda m: m.get("type") == "cascade")
        self.assertEqual(s.http("POST", "/v1/prices", "{", PRICE_TOKEN).status, 400)
        self.assertEqual(s.get("/v1/nope").status, 404)
        # Gauges refresh on the engine's cycle (book totals about once a second).
        deadline = time.monotonic() + 10
        while True:
            f1 = parse(s.metrics_text())
            if ((total(f1, "cascade_liquidatable_collateral_usd") or 0) > 0
                    or time.monotonic() > deadline):
                break
            await asyncio.sleep(0.2)
        await c.close()

        def delta(name, suffix=""):
            a, b = total(f0, name, suffix), total(f1, name, suffix)
            return b - a

        self.assertGreaterEqual(delta("cascade_ticks_received_total"), 5)
        self.assertGreaterEqual(delta("cascade_ticks_applied_total"), 1)
        self.assertLessEqual(total(f1, "cascade_ticks_applied_total"),
                             total(f1, "cascade_ticks_received_total"))
        self.assertGreaterEqual(delta("cascade_tick_to_alert_seconds", "_count"), 1,
                                "the push caused alerts: tick-to-alert observed")
        self.assertGreaterEqual(delta("cascade_projections_total"), 1)
        self.assertGreaterEqual(delta("cascade_projection_duration_seconds", "_count"), 1)
        self.assertGreaterEqual(delta("cascade_ws_messages_received_total"), 2)
        self.assertGreaterEqual(delta("cascade_ws_messages_sent_total"), 3)
        self.assertGreaterEqual(total(f1, "cascade_errors_total", code="bad_json") -
                                (total(f0, "cascade_errors_total", code="bad_json") or 0), 1,
                                "cascade_errors_total{code=bad_json} counts the refusal")
        self.assertEqual(total(f1, "cascade_positions", band="liquidatable"), 4.0,
                         "cascade_positions{band=liquidatable} after the push")
        self.assertGreater(total(f1, "cascade_liquidatable_collateral_usd"), 0)
        self.assertGreater(total(f1, "cascade_projected_bad_debt_usd"), 0,
                           "d1 leaves bad debt in the projection")
        self.assertEqual(total(f1, "cascade_engine_queue_depth"), 0)
        self.promtool_check(s.metrics_text())
        f2 = parse(s.metrics_text())
        self.assertEqual(total(f2, "cascade_ws_connections"), 0,
                         "the WebSocket gauge falls back when clients leave")

    async def test_prometheus_scrapes(self):
        if not os.access(PROMETHEUS, os.X_OK):
            self.skipTest(f"{PROMETHEUS} is missing (Debian package prometheus): "
                          f"real-scrape test skipped")
        s = self.start_server()
        s.post_json("/v1/prices", {"prices": [{"asset": "LINK", "price": 14.0}]},
                    token=PRICE_TOKEN)
        work = tempfile.mkdtemp(prefix="cascade-prom-")
        self.addCleanup(shutil.rmtree, work, True)
        cfg = os.path.join(work, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: cascade\n    metrics_path: /metrics\n"
                    f"    static_configs:\n      - targets: ['127.0.0.1:{s.port}']\n")
        port = free_port()
        log = open(os.path.join(work, "prometheus.log"), "w+b")
        self.addCleanup(log.close)
        prom = subprocess.Popen([PROMETHEUS, f"--config.file={cfg}",
                                 f"--storage.tsdb.path={os.path.join(work, 'data')}",
                                 f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                preexec_fn=harness.die_with_parent)

        def stop_prom():
            prom.terminate()
            try:
                prom.wait(10)
            except subprocess.TimeoutExpired:
                prom.kill()
                prom.wait()
        self.addCleanup(stop_prom)

        def query(q):
            url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": q})
            with urllib.request.urlopen(url, timeout=5) as resp:
                return json.loads(resp.read())["data"]["result"]

        def prom_log():
            log.seek(0)
            return log.read().decode(errors="replace")[-4000:]

        deadline = time.monotonic() + 30
        up = ticks = last_err = None
        while time.monotonic() < deadline:
            if prom.poll() is not None:
                self.fail(f"prometheus exited {prom.returncode}:\n{prom_log()}")
            try:
                up = await asyncio.to_thread(query, 'up{job="cascade"}')
                ticks = await asyncio.to_thread(query, "cascade_ticks_received_total")
                if (up and up[0]["value"][1] == "1" and ticks):
                    break
            except OSError as e:
                last_err = e
            await asyncio.sleep(0.5)
        self.assertTrue(up and up[0]["value"][1] == "1",
                        f"Prometheus never saw up{{job=\"cascade\"}} == 1 within 30 s: {up} "
                        f"(last error {last_err}); targets:\n"
                        f"{self.targets(port)}\nlog:\n{prom_log()}")
        self.assertTrue(ticks, "Prometheus has no cascade_ticks_received_total")
        self.assertGreaterEqual(float(ticks[0]["value"][1]), 1.0, f"{ticks}")

    @staticmethod
    def targets(port):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/targets",
                                        timeout=5) as r:
                return r.read().decode()[:2000]
        except OSError as e:
            return str(e)


if __name__ == "__main__":
    harness.main()
