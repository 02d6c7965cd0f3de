#!/usr/bin/python3
"""Cross-check `cascade stress` against the independent Python model on random scenarios.

usage: cross_check.py --cascade BIN [--seed S] [--count N] [--work DIR]

Generates N scenarios with random_scenarios.py, runs both implementations on each and
compares the reports to 1e-9 relative (compare_reports.py; the C++ report may carry
more fields than DESIGN.md names). Scenarios the model refuses must be refused by both.
Prints one line per failure and a summary; exits 1 on any disagreement.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cascade", required=True)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--count", type=int, default=120)
    ap.add_argument("--work")
    args = ap.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="cascade-xcheck-")
    os.makedirs(work, exist_ok=True)
    gen = run([PY, os.path.join(HERE, "random_scenarios.py"), "--seed", str(args.seed),
               "--count", str(args.count), "--out", work])
    if gen.returncode != 0:
        print(gen.stderr, file=sys.stderr)
        return 2
    scenarios = sorted(f for f in os.listdir(work)
                       if f.startswith("scenario_") and f.endswith(".json") and f.count(".") == 1)
    failures = 0
    rounds_seen = []
    for name in scenarios:
        path = os.path.join(work, name)
        ref = run([PY, os.path.join(HERE, "cascade_model.py"), path])
        got = run([args.cascade, "stress", path])
        if ref.returncode != 0 or got.returncode != 0:
            if (ref.returncode == 0) != (got.returncode == 0):
                failures += 1
                print("%s: reference exit %d, cascade exit %d: %s%s" % (
                    name, ref.returncode, got.returncode, ref.stderr.strip()[:200],
                    got.stderr.strip()[:200]))
            continue
        with open(path + ".ref.json", "w") as f:
            f.write(ref.stdout)
        with open(path + ".got.json", "w") as f:
            f.write(got.stdout)
        cmp = run([PY, os.path.join(HERE, "compare_reports.py"), "--allow-extra",
                   path + ".ref.json", path + ".got.json"])
        if cmp.returncode != 0:
            failures += 1
            print("%s: reports differ:\n  %s" % (name, "\n  ".join(cmp.stdout.splitlines()[:6])))
        rounds_seen.append(json.loads(ref.stdout)["rounds"])
    multi = sum(1 for r in rounds_seen if r >= 3)
    print("cross-check: %d scenarios, %d compared, %d with 3+ rounds, %d failures (work dir %s)"
          % (len(scenarios), len(rounds_seen), multi, failures, work))
    if len(rounds_seen) < len(scenarios) // 2 or multi < len(rounds_seen) // 4:
        print("cross-check: too few meaningful scenarios compared", file=sys.stderr)
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
