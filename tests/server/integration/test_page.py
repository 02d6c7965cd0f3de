"""The live page in a real browser: headless Debian chromium (driven over the DevTools
protocol, browser.py) opens the page served by a real `cascade serve`; a price pushed over
the WebSocket must show in the page as the very alerts the server sent, the band table
must show GET /v1/summary's counts, the curves and the projection's price path must be
drawn with every point of the data they come from, and the page must raise no error
(exceptions, console errors, CSP violations). The screenshot is saved in the build tree.

Exits 77 (ctest: skipped) when chromium is not installed (deploy/setup.sh installs it).

    /usr/bin/python3 tests/server/integration/test_page.py --cascade BUILD/cascade \
        [--output DIR]   # where page.png goes (default: the current directory)
"""

import asyncio
import json
import os
import sys

import harness
from browser import Browser, find_chromium
from harness import PRICE_TOKEN, AsyncServerCase, Ws

OUTPUT = os.getcwd()
NEW_ETH = 2400.0  # the push of test_end_to_end (tests/data/server/README.md)


def js(obj):
    return json.dumps(obj)


# The alert feed as the page shows it.
FEED = """[...document.querySelectorAll('#feed li[data-seq]')].map(li => ({
  seq: Number(li.dataset.seq), position: li.dataset.position, protocol: li.dataset.protocol,
  from: li.dataset.from, to: li.dataset.to, text: li.textContent}))"""

# The band table: {protocol: {band: positions}}.
BANDS = """Object.fromEntries([...document.querySelectorAll('#bands tbody tr')].map(tr =>
  [tr.dataset.protocol, Object.fromEntries([...tr.querySelectorAll('td[data-band]')].map(
    td => [td.dataset.band, Number(td.dataset.positions)]))]))"""


def polylines(svg_id):
    """{series: [points in the data attribute, points drawn]} of one chart."""
    return f"""Object.fromEntries([...document.querySelectorAll('#{svg_id} polyline[data-series]')]
      .map(p => [p.dataset.series, [Number(p.dataset.points),
                                    p.getAttribute('points').trim().split(/\\s+/).length]]))"""


class Page(AsyncServerCase):

    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.server = self.start_server()
        self.browser = await Browser.start(width=1600, height=1000)
        self.addAsyncCleanup(self.browser.close)

    async def test_alerts_pushed_over_the_websocket_appear_in_the_page(self):
        b, server = self.browser, self.server
        await b.navigate(server.base + "/")
        await b.wait_until("document.getElementById('conn').dataset.state === 'live'",
                           what="the page's WebSocket to be live")
        await b.wait_until("document.body.dataset.summarySeq !== undefined",
                           what="the first summary")
        await b.wait_until("!!document.querySelector('#curves-usd polyline[data-series]')",
                           what="the curves")
        asset = await b.evaluate("document.getElementById('asset').value")
        self.assertEqual(asset, "ETH", "the market's first asset is the default")
        self.assertEqual(await b.evaluate("document.querySelectorAll('#feed li[data-seq]').length"), 0)

        # A subscriber of our own sees what the server sends; the page must show the same.
        feed = await Ws.connect(server, token=PRICE_TOKEN)
        self.addAsyncCleanup(feed.close)
        await feed.expect_ack({"op": "subscribe", "channels": ["alerts", "cascades"]})
        await feed.expect_ack({"op": "price", "asset": "ETH", "price": NEW_ETH})
        cascade = await feed.wait_for(lambda m: m.get("type") == "cascade", timeout=20)
        sent = sorted(((m["seq"], m["position"], m["protocol"], m["from"], m["to"])
                       for m in feed.events(("alert",))))
        self.assertGreaterEqual(len(sent), 5, f"the push causes alerts: {sent}")
        self.assertIn("liquidatable", {s[4] for s in sent})

        await b.wait_until(f"document.querySelectorAll('#feed li[data-seq]').length >= {len(sent)}",
                           what=f"{len(sent)} alerts in the feed")
        shown = await b.evaluate(FEED)
        got = sorted((r["seq"], r["position"], r["protocol"], r["from"], r["to"]) for r in shown)
        self.assertEqual(got, sent, "the feed shows exactly the alerts the server sent")
        self.assertEqual([r["seq"] for r in shown], sorted((r["seq"] for r in shown), reverse=True),
                         "newest first")
        by_seq = {m["seq"]: m for m in feed.events(("alert",))}
        for r in shown:
            a = by_seq[r["seq"]]
            self.assertIn(a["position"], r["text"])
            self.assertIn(f"{a['hf_after']:.3f}", r["text"], f"HF after in row {r}")
        counts = await b.evaluate("document.getElementById('alert-counts').textContent")
        n_liq = sum(1 for s in sent if s[4] == "liquidatable")
        self.assertIn(f"{n_liq} → liquidatable", counts)

        # The band table: the server's summary after the push, protocol by protocol.
        summary = server.get_json("/v1/summary")
        want = {p: {band: cell["positions"] for band, cell in bands.items()}
                for p, bands in summary["protocols"].items()}
        await b.wait_until(f"document.body.dataset.summarySeq >= {cascade['seq']}",
                           what="a summary after the push")
        self.assertEqual(await b.evaluate(BANDS), want)

        # The projection: the cascade event's numbers and its price path, one point a round.
        await b.wait_until(f"Number(document.body.dataset.projectionSeq) >= {cascade['seq']}",
                           what="the cascade projection")
        path = await b.evaluate(polylines("path-chart"))
        self.assertEqual(set(path), set(cascade["price_path"]), "one line per moved asset")
        for sym, (points, drawn) in path.items():
            self.assertEqual(points, cascade["rounds"] + 1, sym)
            self.assertEqual(drawn, points, sym)
        stats = await b.evaluate("document.getElementById('projection-stats').textContent")
        self.assertIn(f"{cascade['positions_liquidated']:,}", stats)

        # The curves, every point drawn, for the asset chosen in the selector (choosing
        # recomputes them on the book as it is now).
        for sym in ("WBTC", "ETH"):
            await b.evaluate(f"""(() => {{ const s = document.getElementById('asset');
                s.value = {js(sym)}; s.dispatchEvent(new Event('change')); }})()""")
            curves = server.get_json(f"/v1/curves?asset={sym}")
            want_n = {"liquidation": len(curves["liquidation_curve"]),
                      "cascade": len(curves["cascade_curve"]),
                      "bad_debt": len(curves["cascade_curve"])}
            await b.wait_until(
                f"""document.getElementById('critical').textContent.includes(
                      {js('$' + format(curves['price'], ',.0f'))})""",
                what=f"the {sym} curves")
            drawn = await b.evaluate(polylines("curves-usd"))
            self.assertEqual({k: v[0] for k, v in drawn.items()}, want_n, sym)
            self.assertTrue(all(v[0] == v[1] for v in drawn.values()), drawn)
            crit = curves["critical_shock"]["shock"]
            marked = await b.evaluate("document.querySelector('#curves-usd line[data-mark=critical]') !== null")
            self.assertEqual(marked, crit is not None, f"{sym}: critical shock {crit}")
        self.assertIn("asset=ETH", await b.evaluate("location.hash"))

        self.assertEqual(b.problems, [], "the page raised errors")
        os.makedirs(OUTPUT, exist_ok=True)
        shot = os.path.join(OUTPUT, "page.png")
        size = await b.screenshot(shot)
        with open(shot, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        self.assertGreater(size, 20000, "a blank page would compress far smaller")
        print(f"\nscreenshot: {shot} ({size} bytes)", file=sys.stderr)

    async def test_a_page_without_the_token_it_needs_says_so(self):
        server = self.start_server(args=("--set", "server.anonymous_role=none"))
        b = self.browser
        await b.navigate(server.base + "/")
        text = await b.wait_until(
            "document.getElementById('conn').dataset.state !== 'connecting' && "
            "document.getElementById('conn-text').textContent", what="the refusal")
        self.assertIn("#token=", text)
        # With the token in the URL, the same page goes live (about:blank between, as a
        # change of fragment alone loads nothing).
        await b.navigate("about:blank")
        await b.navigate(f"{server.base}/#token={harness.READ_TOKEN}")
        await b.wait_until("document.getElementById('conn').dataset.state === 'live' && "
                           "document.body.dataset.summarySeq !== undefined",
                           what="the page to go live with #token=")


def main():
    global OUTPUT
    if "--output" in sys.argv:
        i = sys.argv.index("--output")
        OUTPUT = os.path.abspath(sys.argv[i + 1])
        del sys.argv[i:i + 2]
    if find_chromium() is None:
        print("SKIP: chromium is not installed (Debian package 'chromium', installed by "
              "deploy/setup.sh); the live page test needs a real browser", file=sys.stderr)
        sys.exit(77)
    harness.main()


if __name__ == "__main__":
    main()
