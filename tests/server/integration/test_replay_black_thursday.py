"""The README's replay demo as a test: Black Thursday's two crash legs (Binance ETH/USDT
one-minute candles, ../shared/data/binance_ethusdt_1m_black_thursday) replayed with
`cascade replay --rebase --watch` into `cascade serve` on the embedded default market,
unpaced. The server must end at the last candle's close (rebased), and the replay must
have seen alerts down to liquidatable and at least one cascade with liquidations.

Exits 77 (ctest: skipped) when ../shared/data is missing.

    /usr/bin/python3 tests/server/integration/test_replay_black_thursday.py --cascade BUILD/cascade
"""

import csv
import glob
import os
import re
import subprocess
import sys

import harness
from harness import ServerCase

DATA = os.path.join(harness.REPO, "..", "shared", "data", "binance_ethusdt_1m_black_thursday")
TOKEN = "replay-test-admin-token-0123456789"


class BlackThursday(ServerCase):

    def test_both_legs_against_the_default_market(self):
        files = sorted(glob.glob(os.path.join(DATA, "leg*.csv")))
        self.assertEqual(len(files), 2, files)
        closes = []
        for f in files:
            with open(f, newline="") as fh:
                closes += [float(r["close"]) for r in csv.DictReader(fh)]
        s = self.start_server(config=None, env={"CASCADE_TOKENS": f"{TOKEN}:admin"})
        eth0 = {a["symbol"]: a["price"] for a in s.get_json("/v1/assets")["assets"]}["ETH"]
        p = subprocess.run([harness.CASCADE, "replay", *files, "--url", s.ws_url, "--token",
                            TOKEN, "--rebase", "--speed", "0", "--watch"],
                           capture_output=True, text=True, timeout=240)
        print(p.stderr[-2000:], p.stdout[-3000:], sep="\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        n = len(closes)
        self.assertIn(f"sent {n}, acknowledged {n}, errors 0", p.stdout)
        self.assertIn("ETH (from the file's name)", p.stderr)  # binance_ethusdt_...
        want = closes[-1] * (eth0 / closes[0])
        eth = {a["symbol"]: a["price"] for a in s.get_json("/v1/assets")["assets"]}["ETH"]
        self.assertAlmostEqual(eth, want, delta=want * 1e-9)
        m = re.search(r"alerts ([\d,]+) \(to liquidatable ([\d,]+)", p.stdout)
        self.assertTrue(m, p.stdout)
        self.assertGreater(int(m.group(2).replace(",", "")), 0, "no alert to liquidatable")
        m = re.search(r"cascades (\d+) \(largest ([\d,]+) positions liquidated", p.stdout)
        self.assertTrue(m, p.stdout)
        self.assertGreater(int(m.group(2).replace(",", "")), 0)
        # --watch printed them as they came.
        self.assertRegex(p.stdout, r"2020-03-1[23] \d\d:\d\d ETH [\d.]+ \(-[\d.]+%\)  alerts ")
        self.assertRegex(p.stdout, r"\n  cascade: [\d,]+ positions liquidated in \d+ rounds")


if __name__ == "__main__":
    if not os.path.isdir(DATA):
        print(f"SKIP: {os.path.normpath(DATA)} is missing (../shared/data beside the repository)")
        sys.exit(77)
    harness.main()
