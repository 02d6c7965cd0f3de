#!/usr/bin/python3
"""The numpy baseline of issue 7 (P1, P2): the book's health computation and a price tick,
vectorized as well as numpy allows, on the book that `book_bench --export FILE` writes
(the same generated book the C++ benchmarks use; the format is described in
perf/book_bench.cpp at write_export).

  perf/baselines/numpy_health.py BOOK                 # time, print JSON
  perf/baselines/numpy_health.py BOOK --out R.json    # time, write JSON
  perf/baselines/numpy_health.py BOOK --check         # compare with C++'s cells, no timing
  perf/baselines/numpy_health.py BOOK --export-with build/release/perf/book_bench ...
                                        # write BOOK with `book_bench --export BOOK` first

What is timed (thread CPU time, like Google Benchmark's cpu_time):
- full recompute: every row's num = sum(coef * price) over its collateral terms and
  den = the same over its debt terms, then HF = num / den. Four strategies, each
  with its index arrays built beforehand (untimed): `bincount` (np.bincount weighted by
  the products, one pass for num and one for den), `reduceat` (np.add.reduceat over
  the CSR offsets), `dense` (rows of equal term count as a 2-D array, column sums in
  term order) and `einsum` (the same 2-D layout, coefficients split beforehand into a
  collateral and a debt array, each sum one np.einsum pass); the last two only when
  every row has the same number of terms, as in the bench book.
- tick: the tick asset's price moves by 0.1% (up, then back down, alternately, as in
  book_bench); the holders' num and den move by coefficient x price delta through a
  precomputed index (unique rows, their collateral and debt coefficients), and their
  HF is recomputed (`tick_delta`). `tick_exact` recomputes the holders from their terms
  instead. numpy's best tick is the faster of the two.

Each strategy runs `--repetitions` samples (each the mean over enough calls to last
`--min-time` seconds); the JSON holds, per strategy, the median, min and max of the
samples, and `best_recompute` / `best_tick` name the strategy with the lowest median.

--check (the ctest, label perf): numpy's cells at reference prices equal the C++
book's (exported) within 1e-12 relative, for every strategy, and numpy's tick from
those cells equals the C++ book's cells after the same tick (and a numpy full
recompute at the new price) within 1e-12 relative. Exit 1 with the worst row named.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

try:
    import numpy as np
except ImportError:
    print("SKIP: numpy is not installed (Debian: apt-get install python3-numpy)", file=sys.stderr)
    sys.exit(77)

MAGIC = b"CASCBOOK"
VERSION = 1
REL_TOL = 1e-12


class Book:
    """The exported arrays (read-only views of the file) and the header."""

    def __init__(self, path):
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:8] != MAGIC:
            raise SystemExit(f"{path}: not a book export (magic {raw[:8]!r}, expected {MAGIC!r})")
        version = int.from_bytes(raw[8:12], "little")
        if version != VERSION:
            raise SystemExit(f"{path}: export version {version}, this script reads {VERSION}")
        hlen = int.from_bytes(raw[12:16], "little")
        self.header = json.loads(raw[16:16 + hlen].decode("utf-8"))
        self.arrays = {}
        for name, spec in self.header["arrays"].items():
            dtype = np.dtype(spec["dtype"])
            end = spec["offset"] + dtype.itemsize * spec["count"]
            if end > len(raw):
                raise SystemExit(f"{path}: array {name} runs past the end of the file")
            self.arrays[name] = np.frombuffer(raw, dtype=dtype, count=spec["count"],
                                              offset=spec["offset"])
        self.rows = self.header["rows"]
        self.terms = self.header["terms"]
        a = self.arrays
        self.offsets = a["term_offsets"]
        self.ncoll = a["collateral_term_counts"]
        self.term_assets = a["term_assets"]
        self.coef = a["term_coefficients"]
        self.prices = a["prices"].copy()
        self.cells = a["cells"].reshape(self.rows, 2)
        self.cells_after_tick = a["cells_after_tick"].reshape(self.rows, 2)
        if len(self.offsets) != self.rows + 1 or self.offsets[-1] != self.terms:
            raise SystemExit(f"{path}: term_offsets does not cover {self.terms} terms")


# ---------------------------------------------------------------- full recompute


class Recompute:
    """Index arrays for each strategy, built once (untimed), and output buffers."""

    def __init__(self, book):
        self.b = book
        rows, terms = book.rows, book.terms
        lengths = np.diff(book.offsets.astype(np.int64))
        self.row_of_term = np.repeat(np.arange(rows, dtype=np.intp), lengths)
        pos = np.arange(terms, dtype=np.int64) - np.repeat(book.offsets[:-1].astype(np.int64),
                                                           lengths)
        self.is_coll = pos < np.repeat(book.ncoll.astype(np.int64), lengths)
        self.coll_w = self.is_coll.astype(np.float64)
        self.debt_w = 1.0 - self.coll_w
        self.assets = book.term_assets.astype(np.intp)
        self.starts = book.offsets[:-1].astype(np.intp)
        self.empty = lengths == 0
        self.prod = np.empty(terms)
        self.tmp = np.empty(terms)
        self.num = np.empty(rows)
        self.den = np.empty(rows)
        self.hf = np.empty(rows)
        width = int(lengths[0]) if rows else 0
        self.dense_width = width if rows and np.all(lengths == width) and width > 0 else None
        if self.dense_width:
            self.coll_w2 = self.coll_w.reshape(rows, width)
            self.debt_w2 = self.debt_w.reshape(rows, width)
            # einsum: the coefficients split into a collateral and a debt column set
            # beforehand (zeros elsewhere), so that each sum is one fused pass.
            self.ccoef2 = (book.coef * self.coll_w).reshape(rows, width)
            self.dcoef2 = (book.coef * self.debt_w).reshape(rows, width)
            self.assets2 = self.assets.reshape(rows, width)
            self.prices2 = np.empty((rows, width))

    def products(self, prices):
        np.take(prices, self.assets, out=self.prod)
        np.multiply(self.prod, self.b.coef, out=self.prod)
        return self.prod

    def finish(self):
        with np.errstate(divide="ignore", invalid="ignore"):
            np.divide(self.num, self.den, out=self.hf)
        self.hf[self.den <= 0.0] = np.inf
        return self.num, self.den, self.hf

    def bincount(self, prices):
        p = self.products(prices)
        np.multiply(p, self.coll_w, out=self.tmp)
        self.num[:] = np.bincount(self.row_of_term, weights=self.tmp, minlength=self.b.rows)
        np.multiply(p, self.debt_w, out=self.tmp)
        self.den[:] = np.bincount(self.row_of_term, weights=self.tmp, minlength=self.b.rows)
        return self.finish()

    def reduceat(self, prices):
        p = self.products(prices)
        np.multiply(p, self.coll_w, out=self.tmp)
        np.add.reduceat(self.tmp, self.starts, out=self.num)
        np.multiply(p, self.debt_w, out=self.tmp)
        np.add.reduceat(self.tmp, self.starts, out=self.den)
        if self.empty.any():  # reduceat gives a row without terms its neighbour's term
            self.num[self.empty] = 0.0
            self.den[self.empty] = 0.0
        return self.finish()

    def dense(self, prices):
        p = self.products(prices).reshape(self.b.rows, self.dense_width)
        t = self.tmp.reshape(self.b.rows, self.dense_width)
        # Column by column, in term order: the same sums, in the same order, as the C++.
        np.multiply(p, self.coll_w2, out=t)
        self.num[:] = t[:, 0]
        for k in range(1, self.dense_width):
            self.num += t[:, k]
        np.multiply(p, self.debt_w2, out=t)
        self.den[:] = t[:, 0]
        for k in range(1, self.dense_width):
            self.den += t[:, k]
        return self.finish()

    def einsum(self, prices):
        p = np.take(prices, self.assets2, out=self.prices2)
        np.einsum("ij,ij->i", p, self.ccoef2, out=self.num)
        np.einsum("ij,ij->i", p, self.dcoef2, out=self.den)
        return self.finish()

    def strategies(self):
        out = {"bincount": self.bincount, "reduceat": self.reduceat}
        if self.dense_width:
            out["dense"] = self.dense
            out["einsum"] = self.einsum
        return out


# ---------------------------------------------------------------- tick


class Tick:
    """A tick on one asset: its holders (unique rows) with their summed collateral and
    debt coefficients, and for the exact strategy their terms, built once (untimed)."""

    def __init__(self, book, rc, asset):
        self.b = book
        self.asset = asset
        mine = np.flatnonzero(book.term_assets == asset)
        rows_of = rc.row_of_term[mine]
        self.rows, inverse = np.unique(rows_of, return_inverse=True)
        coll = np.where(rc.is_coll[mine], book.coef[mine], 0.0)
        debt = np.where(rc.is_coll[mine], 0.0, book.coef[mine])
        self.wc = np.bincount(inverse, weights=coll, minlength=len(self.rows))
        self.debt = np.bincount(inverse, weights=debt, minlength=len(self.rows))
        # Exact: every term of every holder, and which holder it belongs to.
        starts = book.offsets[self.rows].astype(np.int64)
        lengths = book.offsets[self.rows + 1].astype(np.int64) - starts
        self.term_idx = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + \
            np.arange(int(lengths.sum()), dtype=np.int64)
        self.holder_of_term = np.repeat(np.arange(len(self.rows), dtype=np.intp), lengths)
        self.t_assets = rc.assets[self.term_idx]
        self.t_coef = book.coef[self.term_idx]
        self.t_coll = rc.coll_w[self.term_idx]
        self.t_debt = rc.debt_w[self.term_idx]
        h = len(self.rows)
        self.n = np.empty(h)
        self.d = np.empty(h)
        self.step = np.empty(h)
        self.hf = np.empty(h)

    def delta(self, num, den, prices, new_price):
        dp = new_price - prices[self.asset]
        prices[self.asset] = new_price
        n, d, step, hf = self.n, self.d, self.step, self.hf
        np.take(num, self.rows, out=n, mode="clip")
        np.multiply(self.wc, dp, out=step)
        n += step
        np.put(num, self.rows, n, mode="clip")
        np.take(den, self.rows, out=d, mode="clip")
        np.multiply(self.debt, dp, out=step)
        d += step
        np.put(den, self.rows, d, mode="clip")
        with np.errstate(divide="ignore", invalid="ignore"):
            np.divide(n, d, out=hf)
        hf[d <= 0.0] = np.inf
        return hf

    def exact(self, num, den, prices, new_price):
        prices[self.asset] = new_price
        p = prices[self.t_assets] * self.t_coef
        h = len(self.rows)
        n = np.bincount(self.holder_of_term, weights=p * self.t_coll, minlength=h)
        d = np.bincount(self.holder_of_term, weights=p * self.t_debt, minlength=h)
        num[self.rows] = n
        den[self.rows] = d
        with np.errstate(divide="ignore", invalid="ignore"):
            hf = n / d
        hf[d <= 0.0] = np.inf
        return hf


# ---------------------------------------------------------------- timing and checks


def sample(fn, min_time):
    """Mean thread CPU seconds per call over enough calls to last min_time."""
    calls = 1
    while True:
        t0 = time.thread_time_ns()
        for _ in range(calls):
            fn()
        dt = (time.thread_time_ns() - t0) * 1e-9
        if dt >= min_time or calls >= 1 << 20:
            return dt / calls, calls
        calls = max(calls * 2, int(calls * min_time / max(dt, 1e-9) * 1.2))


def time_strategies(fns, repetitions, min_time):
    """Samples of every strategy, interleaved round by round so that load hits all alike."""
    samples = {name: [] for name in fns}
    calls = {}
    for fn in fns.values():  # warm-up
        fn()
    for _ in range(repetitions):
        for name, fn in fns.items():
            s, c = sample(fn, min_time)
            samples[name].append(s)
            calls[name] = c
    out = {}
    for name, v in samples.items():
        out[name] = {"median": statistics.median(v), "min": min(v), "max": max(v),
                     "samples": v, "calls_per_sample": calls[name]}
    return out


def worst_rel(a, b):
    """Largest |a - b| / max(|a|, |b|) and where (0 where both are 0)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = np.maximum(np.abs(a), np.abs(b))
    diff = np.abs(a - b)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(scale > 0, diff / scale, 0.0)
    i = int(np.argmax(rel))
    return float(rel.flat[i]), i


def check(book, rc, tick):
    failures = []
    ref_num, ref_den = book.cells[:, 0], book.cells[:, 1]
    for name, fn in rc.strategies().items():
        num, den, _ = fn(book.prices)
        for label, got, want in (("num", num, ref_num), ("den", den, ref_den)):
            rel, i = worst_rel(got, want)
            status = "ok" if rel <= REL_TOL else "FAIL"
            print(f"recompute {name:9s} {label}: worst relative difference {rel:.3g} (row {i}) "
                  f"{status}")
            if rel > REL_TOL:
                failures.append(f"recompute {name} {label} row {i}: numpy {got[i]!r}, "
                                f"C++ {want[i]!r}")
    new_price = book.header["tick"]["price_after"]
    for name, fn in (("tick_delta", tick.delta), ("tick_exact", tick.exact)):
        num = ref_num.copy()
        den = ref_den.copy()
        prices = book.prices.copy()
        fn(num, den, prices, new_price)
        full_num, full_den, _ = rc.bincount(prices)
        for label, got, want in (("num", num, book.cells_after_tick[:, 0]),
                                 ("den", den, book.cells_after_tick[:, 1]),
                                 ("num vs numpy full", num, full_num),
                                 ("den vs numpy full", den, full_den)):
            rel, i = worst_rel(got, want)
            status = "ok" if rel <= REL_TOL else "FAIL"
            print(f"{name} {label}: worst relative difference {rel:.3g} (row {i}) {status}")
            if rel > REL_TOL:
                failures.append(f"{name} {label} row {i}: numpy {got[i]!r}, expected {want[i]!r}")
    untouched = np.setdiff1d(np.arange(book.rows), tick.rows)
    moved = np.flatnonzero(book.cells_after_tick[untouched] != book.cells[untouched])
    if len(moved):
        failures.append(f"the C++ tick changed {len(moved)} rows that do not hold the asset")
    return failures


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("book", help="a file written by book_bench --export")
    ap.add_argument("--check", action="store_true", help="compare with the C++ cells; no timing")
    ap.add_argument("--repetitions", type=int, default=9)
    ap.add_argument("--min-time", type=float, default=0.3, help="seconds per sample")
    ap.add_argument("--out", default=None, help="write the JSON here (default: stdout)")
    ap.add_argument("--export-with", default=None, metavar="BOOK_BENCH",
                    help="run BOOK_BENCH --export BOOK first (CASCADE_BENCH_POSITIONS applies)")
    args = ap.parse_args()
    if args.export_with:
        subprocess.run([args.export_with, "--export", args.book], check=True)
    if not os.path.exists(args.book):
        raise SystemExit(f"{args.book}: no such file (write it with book_bench --export FILE)")

    book = Book(args.book)
    rc = Recompute(book)
    tick = Tick(book, rc, book.header["tick"]["asset"])
    if args.check:
        failures = check(book, rc, tick)
        for f in failures:
            print("FAIL:", f, file=sys.stderr)
        print(f"{book.rows} rows, {book.terms} terms, tick on {book.header['tick']['symbol']} "
              f"({len(tick.rows)} holders): " + ("FAIL" if failures else "numpy equals C++"))
        return 1 if failures else 0

    prices = book.prices.copy()
    recompute = time_strategies({k: (lambda f=f: f(prices)) for k, f in rc.strategies().items()},
                                args.repetitions, args.min_time)
    p_lo = book.header["tick"]["price_before"]
    p_hi = book.header["tick"]["price_after"]
    tick_fns = {}
    for name, fn in (("tick_delta", tick.delta), ("tick_exact", tick.exact)):
        num = book.cells[:, 0].copy()
        den = book.cells[:, 1].copy()
        pr = book.prices.copy()
        state = {"up": True}

        def one(fn=fn, num=num, den=den, pr=pr, state=state):
            fn(num, den, pr, p_hi if state["up"] else p_lo)
            state["up"] = not state["up"]
        tick_fns[name] = one
    ticks = time_strategies(tick_fns, args.repetitions, args.min_time)
    doc = {
        "book": {"rows": book.rows, "terms": book.terms, "digest": book.header.get("digest"),
                 "tick_symbol": book.header["tick"]["symbol"], "tick_holders": len(tick.rows),
                 "tick_holder_fraction": len(tick.rows) / book.rows},
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "repetitions": args.repetitions,
        "min_time": args.min_time,
        "recompute": recompute,
        "tick": ticks,
        "best_recompute": min(recompute, key=lambda k: recompute[k]["median"]),
        "best_tick": min(ticks, key=lambda k: ticks[k]["median"]),
        "load_avg": os.getloadavg()[0],
    }
    text = json.dumps(doc, indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
