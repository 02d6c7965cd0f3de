"""deploy/: the Grafana dashboard, the Prometheus config, the compose file, the
Dockerfile and the systemd unit, checked against the real server and the real tools.

- Every metric any dashboard query names exists, with samples, in /metrics of a running
  `cascade serve` (the default market, with one oracle feed so that the per-feed series
  exist), and every query, run by a real Prometheus that scrapes that server with
  deploy/prometheus.yml, evaluates without error to data.
- The dashboard holds the panels issue 6 lists; `promtool check config` passes on
  deploy/prometheus.yml; every file the compose file and the Dockerfile name exists; the
  services refer to each other consistently; the runtime image installs the package of
  every shared library the built binary links.
- The systemd unit has the hardening options, passes `systemd-analyze verify` and
  scores "OK" or better in `systemd-analyze security --offline`.

    /usr/bin/python3 tests/deploy/test_deploy.py --cascade BUILD/cascade
"""

import asyncio
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "server", "integration"))

import harness  # noqa: E402
from harness import ServerCase, Ws, free_port  # noqa: E402

try:
    import yaml
except ImportError:  # pragma: no cover
    yaml = None

REPO = harness.REPO
DEPLOY = os.path.join(REPO, "deploy")
DASHBOARD = os.path.join(DEPLOY, "grafana", "dashboards", "cascade.json")
COMPOSE = os.path.join(DEPLOY, "docker-compose.yml")
PROMETHEUS_YML = os.path.join(DEPLOY, "prometheus.yml")
DOCKERFILE = os.path.join(DEPLOY, "Dockerfile")
UNIT = os.path.join(DEPLOY, "systemd", "cascade.service")
PROMTOOL = "/usr/bin/promtool"
PROMETHEUS = "/usr/bin/prometheus"
TOKEN = "deploy-test-admin-token-0123456789"

# Issue 6's panels: title -> metrics its queries must include.
PANELS = {
    "Ticks per second": {"cascade_ticks_received_total"},
    "Tick-to-alert latency p50 and p99": {"cascade_tick_to_alert_seconds_bucket"},
    "Positions per band and protocol": {"cascade_positions"},
    "Liquidatable collateral": {"cascade_liquidatable_collateral_usd"},
    "Projected cascade size": {"cascade_projected_liquidated_positions"},
    "Projected bad debt": {"cascade_projected_bad_debt_usd"},
    "Critical shock per asset": {"cascade_critical_shock_ratio"},
    "Hidden insolvency": {"cascade_hidden_insolvent_positions",
                          "cascade_hidden_insolvency_shortfall_usd"},
    "Oracle divergence": {"cascade_oracle_divergence_ratio"},
    "WebSocket clients": {"cascade_ws_connections"},
    "Gaps and drops": {"cascade_ws_gaps_total", "cascade_ws_events_dropped_total"},
    "Queue depth": {"cascade_engine_queue_depth", "cascade_publisher_queue_depth"},
}

# PromQL words that are not metric names.
PROMQL_WORDS = {
    "rate", "irate", "increase", "delta", "sum", "max", "min", "avg", "count", "topk",
    "bottomk", "histogram_quantile", "by", "without", "on", "ignoring", "group_left",
    "group_right", "and", "or", "unless", "offset", "bool", "abs", "clamp_min", "clamp_max",
    "vector", "scalar", "time", "label_replace", "sort", "sort_desc", "max_over_time",
    "min_over_time", "avg_over_time", "Inf", "NaN",
}


def dashboard():
    with open(DASHBOARD) as f:
        return json.load(f)


def panels(d):
    """Every panel, rows' nested panels included."""
    out = []
    for p in d.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def queries(d):
    """(panel title, refId, expr) of every query."""
    return [(p["title"], t.get("refId"), t["expr"]) for p in panels(d)
            for t in p.get("targets", []) if t.get("expr")]


def metric_names(expr):
    """The metric names a PromQL expression reads: identifiers that are not functions,
    keywords, label names (inside {} or after by/without) or durations."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)            # string literals
    e = re.sub(r"\{[^}]*\}", "", e)                          # label matchers
    e = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", e)  # grouping labels
    e = re.sub(r"\[[^\]]*\]", "", e)                         # range selectors
    names = set()
    for tok in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        if tok in PROMQL_WORDS or re.fullmatch(r"\d+[smhdwy]", tok):
            continue
        names.add(tok)
    return names


def exposed(text):
    """{name: number of samples} of a /metrics text, and {family: TYPE}."""
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, t = line.split(None, 3)
            types[name] = t.strip()
        elif line and not line.startswith("#"):
            name = re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line).group(0)
            samples[name] = samples.get(name, 0) + 1
    return samples, types


def feed_config(work):
    """The default market with one oracle feed (aave-v3 reads ETH through Chainlink-style
    publication), so that the per-feed series exist."""
    with open(os.path.join(REPO, "config", "default.toml")) as f:
        text = f.read()
    path = os.path.join(work, "market.toml")
    with open(path, "w") as f:
        f.write(text + '\n[oracle]\n[[oracle.feed]]\nprotocol = "aave-v3"\nasset = "ETH"\n'
                       "deviation = 0.005\nheartbeat_s = 3600\n")
    return path


class Dashboard(ServerCase):

    def test_json_holds_the_issue_panels(self):
        d = dashboard()
        self.assertEqual(d.get("uid"), "cascade")
        titles = {p["title"]: p for p in panels(d)}
        for title, metrics in PANELS.items():
            with self.subTest(panel=title):
                self.assertIn(title, titles, f"no panel titled {title!r}: {sorted(titles)}")
                read = set()
                for t in titles[title].get("targets", []):
                    read |= metric_names(t["expr"])
                self.assertTrue(metrics <= read, f"{title}: reads {read}, want {metrics}")
        p = titles["Tick-to-alert latency p50 and p99"]
        exprs = " ".join(t["expr"] for t in p["targets"])
        self.assertIn("histogram_quantile(0.50,", exprs)
        self.assertIn("histogram_quantile(0.99,", exprs)
        # Panels do not overlap on the grid, and every query has its own refId.
        cells = {}
        for pn in panels(d):
            g = pn["gridPos"]
            self.assertLessEqual(g["x"] + g["w"], 24, pn["title"])
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    other = cells.setdefault((x, y), pn["title"])
                    self.assertEqual(other, pn["title"], f"panels {other!r} and "
                                     f"{pn['title']!r} overlap at x={x}, y={y}")
            refs = [t["refId"] for t in pn.get("targets", [])]
            self.assertEqual(len(refs), len(set(refs)), pn["title"])

    def test_datasource_is_the_provisioned_one(self):
        if yaml is None:
            self.skipTest("python3-yaml is missing")
        with open(os.path.join(DEPLOY, "grafana", "provisioning", "datasources",
                               "prometheus.yml")) as f:
            ds = yaml.safe_load(f)["datasources"]
        self.assertEqual(len(ds), 1)
        uid = ds[0]["uid"]
        for p in panels(dashboard()):
            if p["type"] == "row":
                continue
            with self.subTest(panel=p["title"]):
                self.assertEqual(p["datasource"]["uid"], uid)
                for t in p["targets"]:
                    self.assertEqual(t["datasource"]["uid"], uid)
        # The data source is the compose file's Prometheus service.
        url = urllib.parse.urlparse(ds[0]["url"])
        with open(COMPOSE) as f:
            services = yaml.safe_load(f)["services"]
        self.assertIn(url.hostname, services)
        self.assertIn(f"{url.port}", " ".join(services[url.hostname].get("ports", [])))

    def test_every_query_reads_metrics_the_server_exposes(self):
        work = tempfile.mkdtemp(prefix="cascade-deploy-")
        self.addCleanup(shutil.rmtree, work, True)
        s = self.start_server(config=feed_config(work), env={"CASCADE_TOKENS": f"{TOKEN}:admin"})
        prom = PrometheusProcess(self, work, s) if os.access(PROMETHEUS, os.X_OK) else None
        if prom:
            prom.wait_up()
        # Traffic while Prometheus scrapes: ETH down 15% then back, over WebSocket (alerts,
        # tick-to-alert observations, a cascade projection, the feed's divergence) and a
        # subscriber.
        asyncio.run(self.push_ticks(s))
        samples, types = exposed(s.metrics_text())

        def present(name):
            if samples.get(name):
                return True
            for suffix in ("_bucket", "_sum", "_count"):
                base = name[: -len(suffix)]
                if name.endswith(suffix) and types.get(base) == "histogram":
                    return bool(samples.get(name))
            return False

        qs = queries(dashboard())
        self.assertGreaterEqual(len(qs), len(PANELS))
        for title, ref, expr in qs:
            names = metric_names(expr)
            with self.subTest(panel=title, ref=ref):
                self.assertTrue(names, f"{expr!r} reads no metric")
                for n in names:
                    self.assertTrue(n.startswith("cascade_"), f"{expr!r}: {n} is not ours")
                    self.assertTrue(present(n), f"{title} ({ref}): {n} is not in /metrics "
                                                f"(query {expr!r})")
        if not prom:
            self.skipTest(f"{PROMETHEUS} is missing: queries not evaluated")
        prom.wait_for_rates()
        for title, ref, expr in qs:
            with self.subTest(panel=title, ref=ref, query="prometheus"):
                # A query that filters (e.g. "> 0") may rightly be empty: its unfiltered
                # form must not be.
                unfiltered = re.sub(r"\s*>\s*0\s*$", "", expr)
                result = prom.query(unfiltered)
                self.assertTrue(result, f"{title} ({ref}): {unfiltered!r} is empty in Prometheus")
        p50 = prom.query(next(e for t, r, e in qs if "0.50" in e))
        p99 = prom.query(next(e for t, r, e in qs if "0.99" in e))
        v50, v99 = float(p50[0]["value"][1]), float(p99[0]["value"][1])
        self.assertTrue(math.isfinite(v50) and 0 < v50 <= v99, f"p50 {v50}, p99 {v99}")

    async def push_ticks(self, s):
        ws = await Ws.connect(s, token=TOKEN)
        try:
            await ws.expect_ack({"op": "subscribe", "channels": ["alerts", "cascades"]})
            eth = {a["symbol"]: a["price"] for a in s.get_json("/v1/assets")["assets"]}["ETH"]
            for i, f in enumerate([0.95, 0.90, 0.85, 0.90, 0.95, 1.0] * 2):
                await ws.expect_ack({"op": "price", "asset": "ETH", "price": eth * f,
                                     "ts": 1.7e9 + 60 * i}, timeout=60)
                await asyncio.sleep(1.0)  # a scrape sees each step
            await ws.wait_for(lambda m: m.get("type") == "cascade", timeout=30)
        finally:
            await ws.close()


class PrometheusProcess:
    """A real Prometheus scraping the server with deploy/prometheus.yml (its target
    pointed at the test's server, its interval at 1 s)."""

    def __init__(self, tc, work, server):
        with open(PROMETHEUS_YML) as f:
            text = f.read()
        text = text.replace("cascade:8080", f"127.0.0.1:{server.port}")
        text = re.sub(r"scrape_interval: \S+", "scrape_interval: 1s", text)
        text = re.sub(r"scrape_timeout: \S+", "scrape_timeout: 1s", text)
        cfg = os.path.join(work, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write(text)
        self.port = free_port()
        self.log = open(os.path.join(work, "prometheus.log"), "w+b")
        tc.addCleanup(self.log.close)
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={work}/data",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=harness.die_with_parent)
        tc.addCleanup(self.stop)
        self.tc = tc

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def text(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-4000:]

    def query(self, q):
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": q})
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.loads(r.read())
        if body.get("status") != "success":
            raise AssertionError(f"Prometheus refused {q!r}: {body}")
        return body["data"]["result"]

    def wait_until(self, ready, what, timeout=60):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited {self.proc.returncode}:\n{self.text()}")
            try:
                if ready():
                    return
            except (OSError, AssertionError) as e:
                last = e
            time.sleep(0.5)
        raise AssertionError(f"Prometheus: {what} not within {timeout} s ({last}):\n{self.text()}")

    def wait_up(self):
        def up():
            r = self.query('up{job="cascade"}')
            return r and r[0]["value"][1] == "1"
        self.wait_until(up, 'up{job="cascade"} == 1')

    def wait_for_rates(self):
        self.wait_until(lambda: self.query("rate(cascade_ticks_received_total[1m]) > 0"),
                        "a tick rate")


class Files(ServerCase):

    def test_promtool_checks_the_scrape_config(self):
        if not os.access(PROMTOOL, os.X_OK):
            self.skipTest(f"{PROMTOOL} is missing (Debian package prometheus)")
        p = subprocess.run([PROMTOOL, "check", "config", PROMETHEUS_YML], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("SUCCESS", p.stdout + p.stderr)

    def test_compose_names_only_files_that_exist(self):
        if yaml is None:
            self.skipTest("python3-yaml is missing")
        with open(COMPOSE) as f:
            compose = yaml.safe_load(f)
        services = compose["services"]
        self.assertEqual(set(services), {"cascade", "prometheus", "grafana"})
        named_volumes = set(compose.get("volumes") or {})
        mounts = {}
        for name, svc in services.items():
            with self.subTest(service=name):
                build = svc.get("build")
                if build:
                    ctx = os.path.normpath(os.path.join(DEPLOY, build["context"]))
                    self.assertTrue(os.path.isdir(ctx), f"build context {ctx}")
                    dockerfile = os.path.join(ctx, build.get("dockerfile", "Dockerfile"))
                    self.assertTrue(os.path.isfile(dockerfile), dockerfile)
                    self.assertEqual(os.path.realpath(dockerfile), os.path.realpath(DOCKERFILE))
                    self.assertEqual(os.path.realpath(ctx), os.path.realpath(REPO))
                else:
                    image = svc["image"]
                    self.assertRegex(image, r":v?\d+\.\d+\.\d+$", f"{name}: pin the image version")
                for vol in svc.get("volumes", []):
                    src, dst = vol.split(":")[:2]
                    if src.startswith((".", "/")):
                        host = os.path.normpath(os.path.join(DEPLOY, src))
                        self.assertTrue(os.path.exists(host), f"{name}: volume {vol}: {host}")
                        mounts[dst] = host
                    else:
                        self.assertIn(src, named_volumes, f"{name}: volume {vol}")
                for dep in svc.get("depends_on", []):
                    self.assertIn(dep, services)
        # Grafana: the provider reads the folder the dashboards are mounted on, and the
        # home dashboard is one of them.
        with open(os.path.join(DEPLOY, "grafana", "provisioning", "dashboards",
                               "cascade.yml")) as f:
            provider = yaml.safe_load(f)["providers"][0]["options"]["path"]
        self.assertIn(provider, mounts)
        self.assertEqual(mounts[provider], os.path.dirname(DASHBOARD))
        home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
        self.assertEqual(os.path.join(mounts[os.path.dirname(home)], os.path.basename(home)),
                         DASHBOARD)
        self.assertIn("/etc/grafana/provisioning", mounts)
        # Prometheus scrapes the cascade service on the port its image exposes.
        with open(PROMETHEUS_YML) as f:
            prom = yaml.safe_load(f)
        targets = [t for sc in prom["scrape_configs"] for c in sc["static_configs"]
                   for t in c["targets"]]
        self.assertEqual(targets, ["cascade:8080"])
        self.assertEqual(mounts["/etc/prometheus/prometheus.yml"], PROMETHEUS_YML)
        with open(DOCKERFILE) as f:
            self.assertRegex(f.read(), r"(?m)^EXPOSE 8080$")

    def test_dockerfile_stages_user_healthcheck_and_copies(self):
        with open(DOCKERFILE) as f:
            text = f.read()
        lines = [l for l in re.sub(r"\\\n", " ", text).splitlines()
                 if l.strip() and not l.lstrip().startswith("#")]
        froms = [l.split()[1] for l in lines if l.startswith("FROM ")]
        self.assertGreaterEqual(len(froms), 2, "multi-stage")
        self.assertTrue(all(f.startswith("debian:bookworm") for f in froms), froms)
        final = lines[max(i for i, l in enumerate(lines) if l.startswith("FROM ")):]
        users = [l.split()[1] for l in final if l.startswith("USER ")]
        self.assertTrue(users and users[-1] not in ("root", "0"), f"USER in the final stage: {users}")
        self.assertTrue(any(l.startswith("HEALTHCHECK ") and "/readyz" in l for l in final))
        for l in lines:
            if l.startswith("COPY ") and "--from=" not in l:
                for src in l.split()[1:-1]:
                    with self.subTest(copy=src):
                        self.assertTrue(os.path.exists(os.path.join(REPO, src)), src)
        # The build stage runs the project's own scripts.
        self.assertIn("deploy/setup.sh", text)
        self.assertIn("deploy/build.sh", text)
        # The runtime stage installs the package of every library the binary links.
        if not shutil.which("dpkg") or not shutil.which("ldd"):
            self.skipTest("dpkg or ldd missing: runtime packages not checked")
        runtime = " ".join(final)
        libs = re.findall(r"=> (/\S+)", subprocess.run(["ldd", harness.CASCADE], text=True,
                                                       capture_output=True).stdout)
        self.assertTrue(libs)
        base = {"libc6", "libstdc++6", "libgcc-s1"}  # in debian:bookworm-slim
        # The image builds the release preset; a sanitizer build of the binary under test
        # (asan-ubsan preset) links the sanitizer runtimes, which the image never holds.
        sanitizer_runtime = re.compile(r"lib(a|ub|t|l|hwa)san\d+")
        for lib in libs:
            p = subprocess.run(["dpkg", "-S", os.path.realpath(lib)], capture_output=True,
                               text=True)
            if p.returncode != 0:  # /lib is a symlink to /usr/lib on bookworm
                p = subprocess.run(["dpkg", "-S", lib], capture_output=True, text=True)
            pkg = p.stdout.split(":")[0]
            with self.subTest(lib=lib, package=pkg):
                self.assertTrue(pkg, f"no package owns {lib}: {p.stderr}")
                if pkg not in base and not sanitizer_runtime.fullmatch(pkg):
                    self.assertRegex(runtime, rf"(?<![\w.-]){re.escape(pkg)}(?![\w.-])",
                                     f"the runtime stage does not install {pkg} ({lib})")

    def test_readme_describes_every_deploy_file(self):
        with open(os.path.join(DEPLOY, "README.md")) as f:
            readme = f.read()
        for root, _, files in os.walk(DEPLOY):
            for name in files:
                rel = os.path.relpath(os.path.join(root, name), DEPLOY)
                if rel == "README.md":
                    continue
                with self.subTest(file=rel):
                    self.assertIn(rel, readme)


class Systemd(ServerCase):

    HARDENING = {
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
        "PrivateTmp": "yes", "PrivateDevices": "yes", "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes", "ProtectControlGroups": "yes",
        "RestrictNamespaces": "yes", "RestrictSUIDSGID": "yes", "LockPersonality": "yes",
        "MemoryDenyWriteExecute": "yes", "CapabilityBoundingSet": "", "DynamicUser": "yes",
        "SystemCallArchitectures": "native",
    }

    def unit(self):
        keys = {}
        with open(UNIT) as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith(("#", "[")):
                    k, _, v = line.partition("=")
                    keys.setdefault(k, []).append(v)
        return keys

    def test_hardening_options(self):
        keys = self.unit()
        for k, v in self.HARDENING.items():
            with self.subTest(key=k):
                self.assertIn(k, keys)
                self.assertEqual(keys[k][-1], v)
        self.assertTrue(keys.get("SystemCallFilter"), "SystemCallFilter")
        self.assertNotIn("AF_PACKET", " ".join(keys["RestrictAddressFamilies"]))
        exec_start = keys["ExecStart"][0].split()
        self.assertEqual(exec_start[:2], ["/usr/local/bin/cascade", "serve"])

    def systemd_analyze(self):
        tool = shutil.which("systemd-analyze")
        if not tool:
            self.skipTest("systemd-analyze is missing: unit not verified")
        # The unit as installed, pointing at this build's binary and config.
        work = tempfile.mkdtemp(prefix="cascade-unit-")
        self.addCleanup(shutil.rmtree, work, True)
        with open(UNIT) as f:
            text = f.read()
        text = text.replace("/usr/local/bin/cascade", harness.CASCADE)
        text = text.replace("/etc/cascade/cascade.toml",
                            os.path.join(REPO, "config", "default.toml"))
        path = os.path.join(work, "cascade.service")
        with open(path, "w") as f:
            f.write(text)
        return tool, path

    def test_systemd_analyze_verify(self):
        tool, path = self.systemd_analyze()
        p = subprocess.run([tool, "verify", path], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertNotIn("cascade.service", p.stderr, p.stderr)

    def test_systemd_analyze_security(self):
        tool, path = self.systemd_analyze()
        p = subprocess.run([tool, "security", "--offline=true", "--no-pager", path],
                           capture_output=True, text=True, timeout=60)
        m = re.search(r"Overall exposure level for cascade\.service: ([\d.]+) (\w+)", p.stdout)
        if not m and "offline" in p.stderr:
            self.skipTest(f"this systemd-analyze has no --offline: {p.stderr.strip()}")
        self.assertTrue(m, p.stdout + p.stderr)
        # systemd's scale: 0-2 "OK"/"SAFE" ... 9+ "UNSAFE".
        self.assertLessEqual(float(m.group(1)), 2.0, p.stdout)


if __name__ == "__main__":
    if yaml is None:
        print("python3-yaml is missing (Debian package; deploy/setup.sh installs it)")
    harness.main()
