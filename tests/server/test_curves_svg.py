"""`cascade curves ... --svg FILE`: the image is well-formed SVG (XML) whose curves have
exactly the points of the JSON the same command prints, inside the plot, in the data's
order, with labelled axes, a legend and the critical shock marked when there is one; a
path that cannot be written is refused with a clear message, a non-zero exit, and
nothing written or left behind.

    /usr/bin/python3 tests/server/test_curves_svg.py --cascade BUILD/cascade
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DESIGN = os.path.join(REPO, "proto", "examples", "scenario_design.json")
MULTI = os.path.join(REPO, "proto", "examples", "scenario_multi_protocol.json")
NS = {"svg": "http://www.w3.org/2000/svg"}
CASCADE = ""


def run(*args):
    return subprocess.run([CASCADE, "curves", *args], capture_output=True, text=True, timeout=300)


def points(poly):
    return [tuple(float(v) for v in p.split(",")) for p in poly.get("points").split()]


class CurvesSvg(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)

    def draw(self, scenario, asset):
        out = os.path.join(self.dir.name, f"{asset}.svg")
        p = run(scenario, "--asset", asset, "--svg", out)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stderr, "")
        doc = json.loads(p.stdout)
        # Same JSON as without --svg: the image is an extra output, not a different run.
        plain = run(scenario, "--asset", asset)
        self.assertEqual(json.loads(plain.stdout), doc)
        tree = ET.parse(out)  # raises on anything that is not well-formed XML
        self.assertEqual(os.listdir(self.dir.name), [f"{asset}.svg"], "no temporary file left")
        mask = os.umask(0)
        os.umask(mask)
        self.assertEqual(os.stat(out).st_mode & 0o777, 0o666 & ~mask,
                         "the mode of any file the user writes (not a private temporary's)")
        return doc, tree.getroot()

    def check_curves(self, doc, root, asset):
        self.assertEqual(root.tag, "{http://www.w3.org/2000/svg}svg")
        w, h = float(root.get("width")), float(root.get("height"))
        self.assertIn(asset, root.find("svg:title", NS).text)

        want = {"liquidation-curve": [(p["drop"], p["collateral_usd"]) for p in doc["liquidation_curve"]],
                "cascade-curve": [(p["shock"], p["seized_usd"]) for p in doc["cascade_curve"]],
                "bad-debt-curve": [(p["shock"], p["bad_debt_usd"]) for p in doc["cascade_curve"]]}
        drawn = {}
        for poly in root.iter("{http://www.w3.org/2000/svg}polyline"):
            drawn[poly.get("id")] = points(poly)
        self.assertEqual(set(drawn), set(want))
        for name, data in want.items():
            pts = drawn[name]
            self.assertEqual(len(pts), len(data), f"{name}: one point per curve point")
            for x, y in pts:
                self.assertTrue(0 <= x <= w and 0 <= y <= h, f"{name}: ({x}, {y}) off the image")
            # x grows with the drop; y follows the USD values (SVG y points down).
            self.assertEqual([p[0] for p in pts], sorted(p[0] for p in pts), name)
            vmax = max(v for _, v in data)
            for (x1, y1), (x2, y2), (d1, v1), (d2, v2) in zip(pts, pts[1:], data, data[1:]):
                if abs(v2 - v1) > 0.002 * vmax:  # more than ~0.7 px apart
                    self.assertEqual(y2 < y1, v2 > v1, f"{name}: {d1}->{d2} USD {v1}->{v2} drawn "
                                                        f"{y1}->{y2}")
        # The same x for the same drop on every curve.
        liq = list(zip((d for d, _ in want["liquidation-curve"]),
                       (p[0] for p in drawn["liquidation-curve"])))
        for (d, _), (x, _) in zip(want["cascade-curve"], drawn["cascade-curve"]):
            same = [lx for ld, lx in liq if abs(ld - d) < 1e-9]
            self.assertEqual(len(same), 1, f"drop {d} on both curves")
            self.assertAlmostEqual(x, same[0], delta=0.11, msg=f"drop {d}")

        texts = {t.get("id"): "".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")}
        self.assertIn("price drop of " + asset, texts["x-label"])
        self.assertIn("USD", texts["y-label"])
        xticks = ["".join(t.itertext()) for t in root.find(".//svg:g[@id='x-ticks']", NS)]
        self.assertIn("0%", xticks)
        self.assertIn("90%", xticks)
        yticks = ["".join(t.itertext()) for t in root.find(".//svg:g[@id='y-ticks']", NS)]
        self.assertEqual(yticks[0], "$0")
        self.assertTrue(all(re.fullmatch(r"\$[0-9.]+[kMB]?", t) for t in yticks), yticks)
        legend = "".join(root.find(".//svg:g[@id='legend']", NS).itertext())
        for words in ("liquidation curve", "cascade curve", "bad debt"):
            self.assertIn(words, legend)

        crit = doc["critical_shock"]["shock"]
        mark = root.find(".//svg:g[@id='critical-shock']", NS)
        if crit is None:
            self.assertIsNone(mark)
            self.assertIn("no critical shock", "".join(root.itertext()))
        else:
            self.assertIsNotNone(mark)
            self.assertIn(f"{crit * 100:.1f}%", "".join(mark.itertext()))
            line = mark.find("svg:line", NS)
            self.assertEqual(line.get("x1"), line.get("x2"))
            # Between the drawn points of the grid shocks around it.
            xs = [(p["drop"], x) for p, (x, _) in zip(doc["liquidation_curve"], drawn["liquidation-curve"])]
            below = max(x for d, x in xs if d <= crit + 1e-12)
            above = min(x for d, x in xs if d >= crit - 1e-12)
            self.assertTrue(below - 0.05 <= float(line.get("x1")) <= above + 0.05)

    def test_eth_on_the_design_scenario(self):
        doc, root = self.draw(DESIGN, "ETH")
        self.assertIsNotNone(doc["critical_shock"]["shock"])
        self.check_curves(doc, root, "ETH")

    def test_an_asset_without_a_critical_shock(self):
        doc, root = self.draw(DESIGN, "USDC")
        self.assertIsNone(doc["critical_shock"]["shock"])
        self.check_curves(doc, root, "USDC")

    def test_several_protocols(self):
        with open(MULTI) as f:
            scenario = json.load(f)
        asset = scenario["assets"][0]["symbol"]
        doc, root = self.draw(MULTI, asset)
        self.check_curves(doc, root, asset)

    def refused(self, svg, *extra, scenario=DESIGN):
        p = run(scenario, "--asset", "ETH", *extra, "--svg", svg)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertEqual(p.stdout, "", "nothing printed when the image cannot be written")
        self.assertTrue(p.stderr.startswith("cascade curves: "), p.stderr)
        return p.stderr.strip()

    def test_a_missing_directory_is_refused(self):
        path = os.path.join(self.dir.name, "no", "such", "dir", "c.svg")
        msg = self.refused(path)
        self.assertEqual(msg, f"cascade curves: --svg {path}: cannot write: No such file or directory")
        self.assertEqual(os.listdir(self.dir.name), [])

    def test_a_directory_is_refused(self):
        msg = self.refused(self.dir.name)
        self.assertEqual(msg, f"cascade curves: --svg {self.dir.name}: is a directory")

    def test_an_empty_name_is_refused(self):
        self.assertIn("--svg: needs a file name", self.refused(""))

    def test_an_unwritable_directory_is_refused(self):
        if os.geteuid() == 0:
            self.skipTest("root writes into read-only directories")
        ro = os.path.join(self.dir.name, "ro")
        os.mkdir(ro, 0o555)
        self.addCleanup(os.chmod, ro, 0o755)
        msg = self.refused(os.path.join(ro, "c.svg"))
        self.assertIn("cannot write: Permission denied", msg)
        self.assertEqual(os.listdir(ro), [])

    def test_a_directory_the_kernel_refuses_is_refused(self):
        # sysfs refuses new files even to root, so this runs wherever the tests run.
        if not os.path.isdir("/sys/kernel"):
            self.skipTest("no /sys")
        msg = self.refused("/sys/cascade-curves.svg")
        self.assertTrue(msg.startswith("cascade curves: --svg /sys/cascade-curves.svg: cannot write: "),
                        msg)

    def test_bad_input_leaves_an_existing_image_untouched(self):
        path = os.path.join(self.dir.name, "keep.svg")
        with open(path, "w") as f:
            f.write("old")
        p = run(DESIGN, "--asset", "NOPE", "--svg", path)
        self.assertEqual(p.returncode, 2)
        self.assertIn("unknown asset 'NOPE'", p.stderr)
        p = run(DESIGN, "--asset", "ETH", "--max-rounds", "0", "--svg", path)
        self.assertEqual(p.returncode, 2)
        with open(path) as f:
            self.assertEqual(f.read(), "old")
        self.assertEqual(os.listdir(self.dir.name), ["keep.svg"])
        # A good run replaces it whole.
        self.assertEqual(run(DESIGN, "--asset", "ETH", "--svg", path).returncode, 0)
        ET.parse(path)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--cascade", required=True)
    args, rest = ap.parse_known_args()
    CASCADE = os.path.abspath(args.cascade)
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
