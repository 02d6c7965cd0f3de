#!/usr/bin/python3
"""Runs book_bench and cascade_bench once each and writes perf/RESULTS.md: medians, spreads
and the ratios the issues ask for, every ratio taken from one run of one binary
(standard library only).

  perf/run_book_bench.py --binary build/release/perf/book_bench
  perf/run_book_bench.py --from-json saved.json        # re-derive RESULTS.md only

Ratios compare cpu_time medians. Repetitions are randomly interleaved so that a noisy
neighbour hurts every benchmark alike instead of one of them.
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

UNIT = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}

WALK_LADDER = ["BM_tick_1pct_walk", "BM_tick_10pct_walk", "BM_tick_20pct_walk",
               "BM_tick_30pct_walk", "BM_tick_40pct_walk", "BM_tick_60pct_walk"]
SCANS = ["BM_tick_1pct_scan", "BM_tick_10pct_scan", "BM_tick_60pct_scan"]
ORDER = ["BM_probe_read_bandwidth", "BM_probe_sorted_gather", "BM_probe_walk_floor",
         "BM_full_recompute", "BM_kernel_recompute", "BM_aos_recompute",
         "BM_tick_1pct", "BM_tick_10pct", "BM_tick_60pct"] + WALK_LADDER + SCANS
ANALYSIS = "## Analysis"


def run_bench(binary, repetitions, json_out, extra):
    cmd = [binary, f"--benchmark_repetitions={repetitions}",
           "--benchmark_report_aggregates_only=true",
           "--benchmark_enable_random_interleaving=true",
           "--benchmark_format=json", f"--benchmark_out={json_out}",
           "--benchmark_out_format=json"] + extra
    print("running:", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return cmd


def load(path):
    with open(path) as f:
        doc = json.load(f)
    stats = {}
    for b in doc["benchmarks"]:
        if b.get("run_type") != "aggregate":
            continue
        name = b["run_name"]
        agg = b["aggregate_name"]
        scale = UNIT[b.get("time_unit", "ns")]
        entry = stats.setdefault(name, {})
        entry[agg] = {
            "cpu": b["cpu_time"] * scale,
            "real": b["real_time"] * scale,
            "bytes_per_second": b.get("bytes_per_second"),
            "items_per_second": b.get("items_per_second"),
            "holders": b.get("holders"),
            "counters": {k: b[k] for k in ("rounds", "liquidated", "evaluations", "estimates",
                                           "cascades") if k in b},
            "bytes_per_row": b.get("bytes_per_row"),
        }
        entry["repetitions"] = b.get("repetitions")
    return doc, stats


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def fmt_time(s):
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} us"


def spread(st):
    med = st["median"]["cpu"]
    lo = st.get("min", {}).get("cpu", med)
    hi = st.get("max", {}).get("cpu", med)
    return f"{(lo / med - 1) * 100:+.0f}% / {(hi / med - 1) * 100:+.0f}%"


def crossover(stats):
    """Holder fraction where a forced walk costs as much as a forced scan."""
    pts = [(stats[n]["median"]["holders"], stats[n]["median"]["cpu"])
           for n in WALK_LADDER if n in stats]
    scan_times = sorted(stats[n]["median"]["cpu"] for n in SCANS if n in stats)
    if len(pts) < 2 or not scan_times:
        return None, None, pts, None
    scan = scan_times[len(scan_times) // 2]
    for (f0, t0), (f1, t1) in zip(pts, pts[1:]):
        if t0 <= scan <= t1:
            return f0 + (scan - t0) * (f1 - f0) / (t1 - t0), "interpolated", pts, scan
    (f0, t0), (f1, t1) = pts[-2], pts[-1]
    if t1 > t0 and scan > t1:
        return f1 + (scan - t1) * (f1 - f0) / (t1 - t0), "extrapolated", pts, scan
    if pts[0][1] > scan:
        return pts[0][0], "below the ladder", pts, scan
    return None, "none", pts, scan


def cascade_section(cstats, ccommand):
    """The P7 goal: a cascade on 1M positions with a 20% shock against one full recompute
    of the same book, both medians from one run of cascade_bench."""
    lines = ["## Cascade (P7)", ""]
    lines.append("- command: `" + " ".join(ccommand) + "`")
    lines.append("- book: the default market generated at 1M positions (seed 42), pools scaled "
                 "with the book (see perf/cascade_bench.cpp); shock -20% on its most held pooled "
                 "asset (ETH).")
    lines.append("")
    full = cstats.get("BM_full_recompute", {}).get("median")
    warm = cstats.get("BM_cascade_warm", {}).get("median")
    if full and warm:
        ratio = warm["cpu"] / full["cpu"]
        verdict = "pass" if ratio <= 5.0 else "MISS"
        lines.append("| goal | target | measured median | ratio | verdict |")
        lines.append("| --- | --- | --- | --- | --- |")
        lines.append(f"| cascade (warm simulator) vs one full recompute | <= 5x | "
                     f"{fmt_time(warm['cpu'])} vs {fmt_time(full['cpu'])} | {ratio:.2f}x | {verdict} |")
        lines.append("")
    lines.append("| benchmark | median cpu | spread | counters |")
    lines.append("| --- | --- | --- | --- |")
    for name, st in cstats.items():
        m = st["median"]
        counters = ", ".join(f"{k} {v:g}" for k, v in sorted(m.get("counters", {}).items()))
        lines.append(f"| {name} | {fmt_time(m['cpu'])} | {spread(st)} | {counters} |")
    lines.append("")
    return lines


def write_results(path, doc, stats, command, before=None, cascade=None):
    def med(name):
        return stats[name]["median"]

    bw = med("BM_probe_read_bandwidth")["bytes_per_second"]
    rows = []
    # Full recompute against the bandwidth bound of the bytes it reads and writes.
    for name, label in (("BM_full_recompute", "full recompute (book::recompute_all)"),
                        ("BM_kernel_recompute", "full recompute (kernel only)")):
        m = med(name)
        ratio = bw / m["bytes_per_second"]
        rows.append((label + " vs read-bandwidth bound", "<= 1.3x",
                     f"{fmt_time(m['cpu'])} ({m['bytes_per_second'] / 1e9:.1f} GB/s of "
                     f"{bw / 1e9:.1f} GB/s)", f"{ratio:.2f}x", "pass" if ratio <= 1.3 else "MISS"))
    aos = med("BM_aos_recompute")["cpu"]
    full = med("BM_full_recompute")["cpu"]
    rows.append(("full recompute vs naive AoS baseline (speed-up)", ">= 4x",
                 f"{fmt_time(full)} vs {fmt_time(aos)}", f"{aos / full:.2f}x",
                 "pass" if aos / full >= 4 else "MISS"))
    kern = med("BM_kernel_recompute")["cpu"]
    rows.append(("kernel only vs naive AoS baseline (speed-up)", "(info)",
                 f"{fmt_time(kern)} vs {fmt_time(aos)}", f"{aos / kern:.2f}x", ""))
    gather = med("BM_probe_sorted_gather")["cpu"]
    floor = med("BM_probe_walk_floor")["cpu"]
    for name in ("BM_tick_10pct", "BM_tick_10pct_walk"):
        t = med(name)["cpu"]
        rows.append((f"{name} ({med(name)['holders'] * 100:.1f}% holders) vs sorted-gather bound",
                     "<= 2x", f"{fmt_time(t)} vs {fmt_time(gather)}", f"{t / gather:.2f}x",
                     "pass" if t / gather <= 2 else "MISS"))
    t10 = med("BM_tick_10pct")["cpu"]
    rows.append(("BM_tick_10pct vs walk floor (gather fed by 24-byte entries)", "(info)",
                 f"{fmt_time(t10)} vs {fmt_time(floor)}", f"{t10 / floor:.2f}x", ""))
    f, how, pts, scan = crossover(stats)
    if f is not None:
        cross = f"{f * 100:.0f}% of positions ({how})"
    else:
        cross = f"none found ({how})"
    rows.append(("walk vs scan crossover (holders / positions)", "DESIGN says ~30%",
                 f"scan {fmt_time(scan) if scan else '-'}", cross, ""))

    ctx = doc.get("context", {})
    lines = []
    lines.append("# Book benchmark results\n")
    lines.append("Written by `perf/run_book_bench.py` from one run of `book_bench` "
                 "(see the header of `perf/book_bench.cpp` for how the bench book is built: "
                 "1M positions x 4 terms; assets held by ~1%, ~10%, ~60% of positions, plus a "
                 "20/30/40% ladder and 64 fillers).\n")
    lines.append(f"- date: {ctx.get('date', datetime.datetime.now().isoformat())}; host: "
                 f"{ctx.get('num_cpus', '?')} x {ctx.get('mhz_per_cpu', '?')} MHz, "
                 f"{platform.machine()}, {cpu_model()}; load average at the start "
                 f"{ctx.get('load_avg', ['?'])[0] if ctx.get('load_avg') else '?'}")
    reps = stats["BM_full_recompute"].get("repetitions")
    lines.append(f"- {reps} repetitions per benchmark, randomly interleaved; every figure is the "
                 "median of cpu_time; spread = (min/median - 1) / (max/median - 1).")
    lines.append(f"- command: `{' '.join(command)}`\n")
    lines.append("## Targets\n")
    lines.append("| goal | target | measured median | ratio | verdict |")
    lines.append("| --- | --- | --- | --- | --- |")
    for r in rows:
        lines.append("| " + " | ".join(r) + " |")
    lines.append("")
    lines.append("How the ratios are counted:")
    bpr = med("BM_full_recompute").get("bytes_per_row") or 62
    lines.append(f"- full recompute bytes: per row the offset (4), the collateral-term count (2), "
                 f"per term the asset (2) and the coefficient (8), and the 16-byte cell written: "
                 f"{bpr:.0f} bytes per row with 4 terms. Not counted: the band byte read by "
                 "recompute_all and the write-allocate read of the cell line. The bound is those "
                 "bytes at the streaming-read bandwidth measured in the same run "
                 "(BM_probe_read_bandwidth, a sum over a buffer far larger than L3); "
                 "ratio = bandwidth / achieved bytes per second.")
    lines.append("- AoS baseline: a std::vector of structs with a string id, a heap vector of "
                 "legs and a threshold looked up per leg in the protocol table, same positions.")
    lines.append("- sorted-gather bound: read-modify-write of 16-byte records at sorted random "
                 "indices covering 10% of the rows (BM_probe_sorted_gather); the walk floor "
                 "(BM_probe_walk_floor) feeds the same gather from 24-byte exposure entries.")
    lines.append("- crossover: forced walks (scan_fraction 1.0) over the ladder of holder "
                 "fractions against the median of the forced scans (scan_fraction 0.0), "
                 "linearly interpolated (or extrapolated past the last rung).\n")
    lines.append("## Walk vs scan\n")
    lines.append("| holders | forced walk | forced scan (median of the three) |")
    lines.append("| --- | --- | --- |")
    for fr, t in pts:
        lines.append(f"| {fr * 100:.1f}% | {fmt_time(t)} | {fmt_time(scan) if scan else '-'} |")
    lines.append("")
    lines.append("## Every benchmark\n")
    if before:
        lines.append("`before`: the same benchmarks built against the engine as it was before "
                     "this tuning (kernels.cpp and book.cpp's walk_delta/scan_all at the "
                     "foundation commit), run just before or after on the same machine.\n")
        lines.append("| benchmark | median cpu | spread | rate | before | speed-up |")
        lines.append("| --- | --- | --- | --- | --- | --- |")
    else:
        lines.append("| benchmark | median cpu | spread | rate |")
        lines.append("| --- | --- | --- | --- |")
    names = [n for n in ORDER if n in stats] + [n for n in stats if n not in ORDER]
    for name in names:
        st = stats[name]
        m = st["median"]
        rate = []
        if m.get("bytes_per_second"):
            rate.append(f"{m['bytes_per_second'] / 1e9:.2f} GB/s")
        if m.get("items_per_second"):
            rate.append(f"{m['items_per_second'] / 1e6:.1f} M items/s")
        if m.get("holders"):
            rate.append(f"holders {m['holders'] * 100:.1f}%")
        row = f"| {name} | {fmt_time(m['cpu'])} | {spread(st)} | {', '.join(rate)} |"
        if before:
            b = before.get(name)
            if b:
                row += f" {fmt_time(b['median']['cpu'])} | {b['median']['cpu'] / m['cpu']:.2f}x |"
            else:
                row += " - | - |"
        lines.append(row)
    lines.append("")
    if cascade:
        lines.extend(cascade_section(*cascade))
    # The hand-written analysis below the results survives re-runs.
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
        at = old.find("\n" + ANALYSIS)
        if at >= 0:
            lines.append(old[at + 1:].rstrip() + "\n")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(REPO, "build", "release", "perf",
                                                     "book_bench"))
    ap.add_argument("--repetitions", type=int, default=9)
    ap.add_argument("--json", default=None, help="where to keep the raw JSON "
                    "(default: beside the binary)")
    ap.add_argument("--from-json", default=None, help="skip the run; use this JSON")
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
    ap.add_argument("--before", default=None, help="JSON of an earlier run to compare with")
    ap.add_argument("--cascade-binary", default=os.path.join(REPO, "build", "release", "perf",
                                                             "cascade_bench"),
                    help="cascade_bench to run for the P7 section ('' to skip)")
    ap.add_argument("extra", nargs="*", help="more flags for the binary (after --)")
    args = ap.parse_args()

    if args.from_json:
        json_path = args.from_json
        command = ["book_bench", "(from " + os.path.basename(json_path) + ")"]
    else:
        json_path = args.json or os.path.join(os.path.dirname(os.path.abspath(args.binary)),
                                              "book_bench.json")
        command = run_bench(args.binary, args.repetitions, json_path, args.extra)
        command = [os.path.relpath(command[0], REPO)] + command[1:]
        command = [c for c in command if not c.startswith("--benchmark_out")]
    doc, stats = load(json_path)
    before = load(args.before)[1] if args.before else None
    cascade = None
    if args.cascade_binary and os.path.exists(args.cascade_binary) and not args.from_json:
        cjson = os.path.join(os.path.dirname(os.path.abspath(args.cascade_binary)),
                             "cascade_bench.json")
        ccommand = run_bench(args.cascade_binary, args.repetitions, cjson,
                             ["--benchmark_filter=full|warm|cold"])
        ccommand = [os.path.relpath(ccommand[0], REPO)] + ccommand[1:]
        ccommand = [c for c in ccommand if not c.startswith("--benchmark_out")]
        cascade = (load(cjson)[1], ccommand)
    rows = write_results(args.out, doc, stats, command, before, cascade)
    for r in rows:
        print(" | ".join(r))
    print("wrote", args.out, file=sys.stderr)


if __name__ == "__main__":
    main()
