#!/usr/bin/python3
"""Compare two cascade report documents (DESIGN.md, "Scenario and report documents").

    /usr/bin/python3 compare_reports.py A.json B.json [--rel 1e-9] [--floor 1e-6]
                                                      [--max-diffs 20]

Rules:
- Objects must have the same key sets (key order carries no meaning); arrays
  the same length, compared element by element; null only equals null.
- Count fields (rounds, liquidated, positions_liquidated) must be equal exactly.
- Every other number a, b must satisfy
      |a - b| <= rel * max(|a|, |b|, floor * scale)
  where scale is the largest magnitude of the same family of values in either
  report, so a value that is tiny next to its peers is compared with an
  absolute tolerance of rel * floor * scale instead of a relative one:
    usd          round_detail[*].repaid_usd, total_repaid_usd,
                 total_seized_usd, bad_debt_usd.*
    sold:A       round_detail[*].sold.A
    price:A      round_detail[*].prices.A, final_prices.A
    amplification  amplification.*
    (any other numeric path: its own family, array indices ignored)
  Defaults: rel = 1e-9, floor = 1e-6 (so the absolute floor is 1e-15 * scale,
  a few ulps of the family's largest value).
Prints the first differences with their JSON path; exit 0 equal, 1 different,
2 unreadable input.
"""

import argparse
import json
import math
import sys

COUNT_KEYS = {"rounds", "liquidated", "positions_liquidated"}


def is_num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def family(path):
    """path: tuple of keys/indices -> family name."""
    keys = [p for p in path if isinstance(p, str)]
    if not keys:
        return "root"
    if keys[-1] in ("repaid_usd", "total_repaid_usd", "total_seized_usd"):
        return "usd"
    if len(keys) >= 2 and keys[-2] == "bad_debt_usd":
        return "usd"
    if len(keys) >= 2 and keys[-2] == "sold":
        return "sold:" + keys[-1]
    if len(keys) >= 2 and keys[-2] in ("prices", "final_prices"):
        return "price:" + keys[-1]
    if len(keys) >= 2 and keys[-2] == "amplification":
        return "amplification"
    return "/".join(keys)


def collect_scales(doc, scales, path=()):
    if isinstance(doc, dict):
        for k, v in doc.items():
            collect_scales(v, scales, path + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            collect_scales(v, scales, path + (i,))
    elif is_num(doc):
        f = family(path)
        scales[f] = max(scales.get(f, 0.0), abs(float(doc)))


def fmt_path(path):
    s = "$"
    for p in path:
        s += "[%d]" % p if isinstance(p, int) else "." + p
    return s


def compare(a, b, rel, floor, scales, diffs, path=(), allow_extra=False):
    if isinstance(a, dict) and isinstance(b, dict):
        ka, kb = set(a), set(b)
        for k in sorted(ka - kb):
            diffs.append("%s: key only in A" % fmt_path(path + (k,)))
        if not allow_extra:
            for k in sorted(kb - ka):
                diffs.append("%s: key only in B" % fmt_path(path + (k,)))
        for k in a:
            if k in kb:
                compare(a[k], b[k], rel, floor, scales, diffs, path + (k,), allow_extra)
        return
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            diffs.append("%s: array length %d vs %d" % (fmt_path(path), len(a), len(b)))
        for i in range(min(len(a), len(b))):
            compare(a[i], b[i], rel, floor, scales, diffs, path + (i,), allow_extra)
        return
    if a is None or b is None:
        if not (a is None and b is None):
            diffs.append("%s: %r vs %r" % (fmt_path(path), a, b))
        return
    if is_num(a) and is_num(b):
        fa, fb = float(a), float(b)
        key = path[-1] if path and isinstance(path[-1], str) else None
        if key in COUNT_KEYS:
            if fa != fb:
                diffs.append("%s: count %r vs %r" % (fmt_path(path), a, b))
            return
        if not (math.isfinite(fa) and math.isfinite(fb)):
            if not (fa == fb):
                diffs.append("%s: %r vs %r" % (fmt_path(path), a, b))
            return
        scale = scales.get(family(path), 0.0)
        tol = rel * max(abs(fa), abs(fb), floor * scale)
        if abs(fa - fb) > tol:
            rd = abs(fa - fb) / max(abs(fa), abs(fb)) if max(abs(fa), abs(fb)) else 0
            diffs.append("%s: %r vs %r (|diff| %.3g, rel %.3g, tol %.3g)"
                         % (fmt_path(path), a, b, abs(fa - fb), rd, tol))
        return
    if type(a) != type(b) or a != b:
        diffs.append("%s: %r vs %r" % (fmt_path(path), a, b))


def compare_docs(a, b, rel=1e-9, floor=1e-6, allow_extra=False):
    scales = {}
    collect_scales(a, scales)
    collect_scales(b, scales)
    diffs = []
    compare(a, b, rel, floor, scales, diffs, allow_extra=allow_extra)
    return diffs


def main(argv=None):
    ap = argparse.ArgumentParser(description="Compare two cascade reports.")
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--rel", type=float, default=1e-9)
    ap.add_argument("--floor", type=float, default=1e-6,
                    help="absolute floor as a fraction of the family's scale")
    ap.add_argument("--max-diffs", type=int, default=20)
    ap.add_argument("--allow-extra", action="store_true",
                    help="keys only in B are allowed (the report may carry more fields)")
    args = ap.parse_args(argv)
    docs = []
    for p in (args.a, args.b):
        try:
            with open(p, "r", encoding="utf-8") as f:
                docs.append(json.load(f))
        except (OSError, ValueError) as e:
            print("compare_reports: cannot read %s: %s" % (p, e), file=sys.stderr)
            return 2
    diffs = compare_docs(docs[0], docs[1], args.rel, args.floor, args.allow_extra)
    if not diffs:
        print("equal (rel %g, floor %g)" % (args.rel, args.floor))
        return 0
    for d in diffs[:args.max_diffs]:
        print(d)
    if len(diffs) > args.max_diffs:
        print("... and %d more differences" % (len(diffs) - args.max_diffs))
    print("DIFFERENT: %d difference(s)" % len(diffs))
    return 1


if __name__ == "__main__":
    sys.exit(main())
