#!/usr/bin/python3
"""Runs every perf benchmark of issue 7 in one run and rewrites perf/RESULTS.md: the goals
table (P1..P7: target, measured medians, ratio, verdict, the command that gives the
figures), then per binary every benchmark's median and spread. Standard library only;
the numpy baseline runs under /usr/bin/python3 (Debian's python3-numpy).

  perf/run_results.py                                  # everything, ~15 minutes
  perf/run_results.py --p5-json p5.json --p6-json p6.json   # with cascade_load reports
  perf/run_results.py --from build/release/perf/results     # re-derive RESULTS.md only

One run: the book is exported (book_bench --export) and numpy times it in two halves,
before and after book_bench, so that a change in the machine's load reaches both sides
of every P1/P2 ratio; each C++ binary runs its repetitions randomly interleaved (Google
Benchmark's --benchmark_enable_random_interleaving). Every figure is a median of
repetitions (cpu_time; real time for the fan-out, where three threads work); ratios
divide medians measured in this run. The raw JSON of every step is kept in the results
directory (default build/release/perf/results). The hand-written "## Analysis" section
of RESULTS.md is carried over unchanged.

P5 and P6 come from cascade_load (perf/load/) reports given with --p5-json / --p6-json;
without them their rows say "not measured in this run".
"""
import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
ANALYSIS = "## Analysis"
UNIT = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
PYTHON = "/usr/bin/python3"

RUNGS = ["1pct", "10pct", "20pct", "30pct", "40pct", "60pct"]
BOOK_ORDER = (["BM_probe_read_bandwidth", "BM_probe_sorted_gather", "BM_probe_walk_floor",
               "BM_full_recompute", "BM_kernel_recompute", "BM_aos_recompute"] +
              [f"BM_tick_{r}" for r in RUNGS] + [f"BM_tick_{r}_walk" for r in RUNGS] +
              [f"BM_tick_{r}_scan" for r in RUNGS])
WIRE_ORDER = ["BM_simdjson_price", "BM_simdjson_price_3fields", "BM_simdjson_price_feed",
              "BM_decode_price", "BM_decode_enqueue_price", "BM_decode_enqueue_price_feed"]


def fanout_key(name):
    """BM_fanout/subscribers:S/alerts:A/... -> (A, S), the table's order."""
    args = dict(p.split(":", 1) for p in name.split("/") if ":" in p)
    return (int(args.get("alerts", 0)), int(args.get("subscribers", 0)))


# ------------------------------------------------------------------ running


def rel(path):
    return os.path.relpath(path, REPO)


def bench_command(binary, repetitions, extra):
    return [binary, f"--benchmark_repetitions={repetitions}",
            "--benchmark_report_aggregates_only=true",
            "--benchmark_enable_random_interleaving=true"] + extra


def run_bench(binary, repetitions, json_out, extra):
    cmd = bench_command(binary, repetitions, extra) + [
        "--benchmark_format=json", f"--benchmark_out={json_out}", "--benchmark_out_format=json"]
    print("running:", " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return [rel(binary)] + bench_command(binary, repetitions, extra)[1:]


def run_numpy(book, repetitions, json_out):
    script = os.path.join(HERE, "baselines", "numpy_health.py")
    cmd = [PYTHON, script, book, f"--repetitions={repetitions}", "--out", json_out]
    print("running:", " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True)
    return [rel(script), rel(book), f"--repetitions={repetitions}"]


# ------------------------------------------------------------------ loading


def load_bench(path):
    """Google Benchmark JSON -> (context, {run_name: {aggregate: {...}}})."""
    with open(path) as f:
        doc = json.load(f)
    stats = {}
    for b in doc["benchmarks"]:
        if b.get("run_type") != "aggregate":
            continue
        scale = UNIT[b.get("time_unit", "ns")]
        entry = stats.setdefault(b["run_name"], {})
        m = {"cpu": b["cpu_time"] * scale, "real": b["real_time"] * scale}
        for k, v in b.items():
            if k not in m and isinstance(v, (int, float)) and k not in ("repetitions",
                                                                        "threads", "iterations"):
                m[k] = v
        entry[b["aggregate_name"]] = m
        entry["repetitions"] = b.get("repetitions")
    return doc.get("context", {}), stats


def merge_numpy(paths):
    """The numpy halves -> one document whose medians span every sample."""
    docs = []
    for p in paths:
        with open(p) as f:
            docs.append(json.load(f))
    out = dict(docs[0])
    for part in ("recompute", "tick"):
        merged = {}
        for name in docs[0][part]:
            samples = [s for d in docs for s in d[part][name]["samples"]]
            merged[name] = {"median": statistics.median(samples), "min": min(samples),
                            "max": max(samples), "samples": samples}
        out[part] = merged
        key = "best_" + ("recompute" if part == "recompute" else "tick")
        out[key] = min(merged, key=lambda k: merged[k]["median"])
    out["repetitions"] = sum(d["repetitions"] for d in docs)
    out["load_avg"] = [d.get("load_avg") for d in docs]
    return out


# ------------------------------------------------------------------ formatting


def fmt_time(s):
    if s is None:
        return "-"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    if s >= 1e-6:
        return f"{s * 1e6:.1f} us"
    return f"{s * 1e9:.0f} ns"


def spread(st, key="cpu"):
    if "min" not in st or "max" not in st:
        return "-"
    med = st["median"][key]
    lo = st["min"][key]
    hi = st["max"][key]
    return f"{(lo / med - 1) * 100:+.0f}% / {(hi / med - 1) * 100:+.0f}%"


def rates(m):
    """A benchmark's rate counters as text: bytes, items and named counters per second."""
    out = []
    b = m.get("bytes_per_second")
    if b:
        out.append(f"{b / 1e9:.2f} GB/s" if b >= 1e9 else f"{b / 1e6:.0f} MB/s")
    if m.get("items_per_second"):
        out.append(f"{m['items_per_second'] / 1e6:.1f} M items/s")
    for k in ("frames/s", "ticks/s", "alerts/s"):
        if m.get(k):
            out.append(f"{m[k] / 1e6:.2f} M {k}")
    if m.get("holders"):
        out.append(f"holders {m['holders'] * 100:.1f}%")
    return ", ".join(out)


def code(cmd):
    return "`" + (cmd if isinstance(cmd, str) else " ".join(shlex.quote(c) for c in cmd)) + "`"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def verdict(ok):
    return "pass" if ok else "MISS"


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out + [""]


# ------------------------------------------------------------------ goals


def filtered(cmd, pattern):
    """The run's command for one binary, narrowed to the benchmarks a figure needs."""
    return [cmd[0], f"--benchmark_filter={pattern}"] + [
        c for c in cmd[1:] if c.startswith("--benchmark_repetitions")]


def goal_rows(r):
    rows = []
    book, np_doc, wire, cascade = r.get("book"), r.get("numpy"), r.get("wire"), r.get("cascade")
    book_cmd = r["commands"].get("book")
    if book:
        bw = book["BM_probe_read_bandwidth"]["median"]["bytes_per_second"]
        full = book["BM_full_recompute"]["median"]
        ratio = bw / full["bytes_per_second"]
        rows.append(("P1", "full recompute, 1M x 4 terms, vs the read-bandwidth bound of its bytes",
                     "<= 1.3x", f"{fmt_time(full['cpu'])} = {full['bytes_per_second'] / 1e9:.1f} "
                     f"GB/s; bound {bw / 1e9:.1f} GB/s", f"{ratio:.2f}x", verdict(ratio <= 1.3),
                     code(filtered(book_cmd, "BM_probe_read_bandwidth|BM_full_recompute"))))
        if np_doc:
            rows.append(numpy_row(r, "P1", "full recompute vs numpy (numpy's fastest strategy)",
                                  30, full["cpu"], "recompute", "BM_full_recompute"))
        aos = book["BM_aos_recompute"]["median"]["cpu"]
        ratio = aos / full["cpu"]
        rows.append(("P1", "full recompute vs the naive array-of-structs C++ recompute", ">= 4x",
                     f"{fmt_time(full['cpu'])} vs {fmt_time(aos)}", f"{ratio:.2f}x",
                     verdict(ratio >= 4), code(filtered(book_cmd,
                                                        "BM_full_recompute|BM_aos_recompute"))))
        gather = book["BM_probe_sorted_gather"]["median"]
        tick = book["BM_tick_10pct"]["median"]
        ratio = tick["cpu"] / gather["cpu"]
        rows.append(("P2", f"tick on {tick['holders'] * 100:.0f}% of 1M positions vs the "
                     "sorted-gather bound", "<= 2x",
                     f"{fmt_time(tick['cpu'])} vs {fmt_time(gather['cpu'])}", f"{ratio:.2f}x",
                     verdict(ratio <= 2), code(filtered(book_cmd,
                                                        "BM_probe_sorted_gather|BM_tick_10pct$"))))
        if np_doc:
            rows.append(numpy_row(r, "P2", "the same tick vs numpy's best tick", 20, tick["cpu"],
                                  "tick", "BM_tick_10pct$"))
        p3 = p3_ladder(book)
        if p3:
            worst = max(p3, key=lambda x: x["ratio"])
            rows.append(("P3", "adaptive tick (the book's choice) vs the better of forced walk "
                         "and forced scan, worst rung of 1..60% holders", "<= 1.1x",
                         f"at {worst['rung']}: {fmt_time(worst['auto'])} vs "
                         f"{worst['better']} {fmt_time(worst['best'])}", f"{worst['ratio']:.2f}x",
                         verdict(worst["ratio"] <= 1.1), code(filtered(book_cmd, "BM_tick_"))))
    if wire:
        for label, what, dec_name, floor_name in (
                ("P4", "a request (with an id, answered)", "BM_decode_enqueue_price",
                 "BM_simdjson_price"),
                ("P4 feed", "a feed's frame (no id, no answer owed)",
                 "BM_decode_enqueue_price_feed", "BM_simdjson_price_feed")):
            dec = wire.get(dec_name, {}).get("median")
            floor = wire.get(floor_name, {}).get("median")
            if not (dec and floor):
                continue
            ratio = dec["cpu"] / floor["cpu"]
            rows.append((label, f"decode and enqueue of a price message, {what}, vs a simdjson "
                         "parse of the same bytes", "<= 2x",
                         f"{fmt_time(dec['cpu'])} vs {fmt_time(floor['cpu'])}",
                         f"{ratio:.2f}x", verdict(ratio <= 2),
                         code(filtered(r["commands"]["wire"],
                                       f"{floor_name}$|{dec_name}$"))))
    rows.extend(end_to_end_rows(r))
    if cascade:
        warm = cascade.get("BM_cascade_warm", {}).get("median")
        full = cascade.get("BM_full_recompute", {}).get("median")
        if warm and full:
            ratio = warm["cpu"] / full["cpu"]
            rows.append(("P7", "cascade on 1M positions, 20% shock, vs one full recompute",
                         "<= 5x", f"{fmt_time(warm['cpu'])} vs {fmt_time(full['cpu'])}",
                         f"{ratio:.2f}x", verdict(ratio <= 5),
                         code(filtered(r["commands"]["cascade"],
                                       "BM_full_recompute|BM_cascade_warm"))))
    return rows


def numpy_row(r, goal, what, target, cpp_time, part, pattern):
    """A goal row: numpy's fastest strategy for `part` against the C++ time, >= target x."""
    np_doc = r["numpy"]
    best = np_doc["best_" + part]
    t_np = np_doc[part][best]["median"]
    ratio = t_np / cpp_time
    return (goal, what, f">= {target}x", f"{fmt_time(cpp_time)} vs numpy {best} {fmt_time(t_np)}",
            f"{ratio:.1f}x", verdict(ratio >= target),
            code(filtered(r["commands"]["book"], pattern)) + " and " + code(r["commands"]["numpy"]))


def p3_ladder(book):
    out = []
    for rung in RUNGS:
        names = [f"BM_tick_{rung}", f"BM_tick_{rung}_walk", f"BM_tick_{rung}_scan"]
        if not all(n in book for n in names):
            continue
        auto, walk, scan = (book[n]["median"]["cpu"] for n in names)
        better, best = ("walk", walk) if walk <= scan else ("scan", scan)
        out.append({"rung": f"{book[names[0]]['median'].get('holders', 0) * 100:.0f}%",
                    "auto": auto, "walk": walk, "scan": scan, "better": better, "best": best,
                    "ratio": auto / best})
    return out


def get(doc, *path):
    for p in path:
        if not isinstance(doc, dict) or p not in doc:
            return None
        doc = doc[p]
    return doc


def end_to_end_rows(r):
    rows = []
    p5, p6 = r.get("p5"), r.get("p6")
    p50 = get(p5, "latency", "tick_to_alert", "p50_us")
    p99 = get(p5, "latency", "tick_to_alert", "p99_us")
    compute = get(p5, "server", "engine_cycle_mean_us")
    if p50 is not None and p99 is not None and compute is not None:
        rate = get(p5, "command", "rate")
        subs = get(p5, "command", "subscribers")
        cmd = code(r["commands"].get("p5", "cascade_load (see End to end)"))
        rows.append(("P5", f"tick-to-alert p50 over loopback, {rate} ticks/s, {subs} subscribers",
                     "<= compute + 50 us", f"p50 {p50:.0f} us; compute (engine cycle mean) "
                     f"{compute:.0f} us", f"{p50 - compute:+.0f} us over compute",
                     verdict(p50 <= compute + 50), cmd))
        rows.append(("P5", "tick-to-alert p99 / p50", "<= 3x", f"p99 {p99:.0f} us, p50 {p50:.0f} us",
                     f"{p99 / p50:.2f}x", verdict(p99 <= 3 * p50), cmd))
    else:
        rows.append(("P5", "end to end over loopback, 10k ticks/s, 100 subscribers: p50 <= "
                     "compute + 50 us, p99 <= 3x p50", "see goal", "not measured in this run: "
                     "see End to end", "-", "not measured", "`cascade_load` (perf/load/)"))
    # Ticks the engine took off its inbox per second: server_applied_ticks_per_s counts
    # only what reaches the book after coalescing (one price per asset per engine cycle).
    ticks = get(p6, "ingest", "engine_taken_ticks_per_s")
    if ticks is None:
        ticks = get(p6, "ingest", "server_received_ticks_per_s")
    alerts = get(p6, "flow", "alerts_received_per_s")
    if ticks is not None:
        cmd = code(r["commands"].get("p6", "cascade_load (see End to end)"))
        rows.append(("P6", "sustained ingest into one server, alerts flowing", ">= 500k ticks/s",
                     f"{ticks / 1e3:.0f}k ticks/s taken by the engine, {alerts or 0:.0f} alerts/s received",
                     f"{ticks / 5e5:.2f}x the target",
                     verdict(ticks >= 5e5 and (alerts or 0) > 0), cmd))
    else:
        rows.append(("P6", "sustained ingest into one server on 2 cores, alerts flowing",
                     ">= 500k ticks/s", "not measured in this run: see End to end", "-",
                     "not measured", "`cascade_load` (perf/load/)"))
    return rows


# ------------------------------------------------------------------ sections


def book_sections(r):
    book = r["book"]
    lines = ["## Book (P1, P2, P3)", ""]
    lines.append("- command: " + code(r["commands"]["book"]))
    ctx = r.get("book_context", {})
    lines.append(f"- book: {ctx.get('book_positions', '?')} positions x 4 terms (perf/book_bench.cpp "
                 f"says how it is generated), digest {ctx.get('book_digest', '?')}")
    lines.append("")
    p3 = p3_ladder(book)
    if p3:
        lines.append("Walk, scan and the book's choice per holder fraction (P3; the default "
                     "`scan_fraction` is 1.0, so the book's choice is the walk at every rung):")
        lines.append("")
        lines += table(["holders", "book's choice", "forced walk", "forced scan", "better",
                        "choice / better"],
                       [(x["rung"], fmt_time(x["auto"]), fmt_time(x["walk"]), fmt_time(x["scan"]),
                         x["better"], f"{x['ratio']:.2f}x") for x in p3])
    rows = []
    names = [n for n in BOOK_ORDER if n in book] + sorted(n for n in book if n not in BOOK_ORDER)
    for name in names:
        st = book[name]
        rows.append((name, fmt_time(st["median"]["cpu"]), spread(st), rates(st["median"])))
    lines += table(["benchmark", "median cpu", "spread (min / max)", "rate"], rows)
    return lines


def numpy_section(r):
    d = r["numpy"]
    lines = ["## numpy baseline (P1, P2)", ""]
    lines.append("- command: " + code(r["commands"]["numpy"]) + f", run twice (before and after "
                 f"book_bench), {d['repetitions']} samples per strategy in all; numpy {d['numpy']}, "
                 f"Python {d['python']}; thread CPU time")
    b = d["book"]
    lines.append(f"- book: the export of the C++ bench book, {b['rows']} rows, {b['terms']} terms, "
                 f"digest {b.get('digest')}; tick on {b['tick_symbol']} "
                 f"({b['tick_holders']} holders, {b['tick_holder_fraction'] * 100:.1f}%)")
    ctx = r.get("book_context", {})
    if ctx.get("book_digest") and b.get("digest") and ctx["book_digest"] != b["digest"]:
        lines.append(f"- WARNING: the digest differs from book_bench's ({ctx['book_digest']}): "
                     "not the same book")
    lines.append("")
    rows = []
    for part in ("recompute", "tick"):
        best = d["best_" + part]
        for name, st in d[part].items():
            med = st["median"]
            rows.append((part, name + (" (best)" if name == best else ""), fmt_time(med),
                         f"{(st['min'] / med - 1) * 100:+.0f}% / {(st['max'] / med - 1) * 100:+.0f}%"))
    lines += table(["what", "strategy", "median", "spread (min / max)"], rows)
    return lines


def wire_section(r):
    w = r["wire"]
    lines = ["## Wire (P4)", "", "- command: " + code(r["commands"]["wire"]), ""]
    rows = []
    for name, st in sorted(w.items(), key=lambda x: (x[0] not in WIRE_ORDER,
                                                     WIRE_ORDER.index(x[0])
                                                     if x[0] in WIRE_ORDER else 0, x[0])):
        rows.append((name, fmt_time(st["median"]["cpu"]), spread(st), rates(st["median"])))
    lines += table(["benchmark", "median cpu", "spread (min / max)", "rate"], rows)
    return lines


def hub_section(r):
    h = r["hub"]
    lines = ["## Fan-out (publisher to subscribers' outboxes)", "",
             "- command: " + code(r["commands"]["hub"]),
             "- wall time per iteration (publisher thread, one I/O thread and the benchmark "
             "thread share 2 cores): one batch of `alerts` alerts handed to the hub, encoded "
             "once each, offered to every subscriber and taken into each one's outbox "
             "(perf/hub_bench.cpp).", ""]
    rows = []
    for name, st in sorted(h.items(), key=lambda x: fanout_key(x[0])):
        m = st["median"]
        rows.append((name.replace("BM_fanout/", "").replace("/real_time", ""), fmt_time(m["real"]), spread(st, "real"),
                     f"{m.get('deliveries/s', 0) / 1e6:.2f} M", f"{m.get('alerts/s', 0) / 1e3:.1f} k"))
    lines += table(["subscribers / alerts per batch", "median (wall)", "spread (min / max)",
                    "deliveries/s", "alerts/s"], rows)
    return lines


def cascade_section(r):
    c = r["cascade"]
    lines = ["## Cascade (P7)", "", "- command: " + code(r["commands"]["cascade"]),
             "- book: the default market generated at 1M positions (seed 42), pools scaled with "
             "the book (perf/cascade_bench.cpp); shock -20% on its most held pooled asset (ETH).",
             ""]
    rows = []
    for name, st in c.items():
        m = st["median"]
        counters = ", ".join(f"{k} {m[k]:g}" for k in ("rounds", "liquidated", "evaluations",
                                                       "estimates") if k in m)
        rows.append((name, fmt_time(m["cpu"]), spread(st), counters))
    lines += table(["benchmark", "median cpu", "spread (min / max)", "counters"], rows)
    return lines


def end_to_end_section(r):
    lines = ["## End to end (P5, P6)", ""]
    any_run = False
    for key, label in (("p5", "P5"), ("p6", "P6")):
        d = r.get(key)
        if not d:
            continue
        any_run = True
        lines.append(f"- {label}: " + code(r["commands"].get(key, "cascade_load")))
        lat = get(d, "latency", "tick_to_alert") or {}
        taken = get(d, 'ingest', 'engine_taken_ticks_per_s')
        taken = get(d, 'ingest', 'server_received_ticks_per_s') if taken is None else taken
        lines.append(f"  - ingest: {taken or 0:.0f} ticks/s taken by the engine, "
                     f"{get(d, 'ingest', 'server_applied_ticks_per_s') or 0:.0f}/s applied to the "
                     f"book after coalescing ({get(d, 'command', 'rate')} requested, batch "
                     f"{get(d, 'command', 'batch')}), {get(d, 'flow', 'alerts_received_per_s') or 0:.0f} "
                     f"alerts/s received by {get(d, 'command', 'subscribers')} subscribers")
        lines.append("  - tick_to_alert: " + ", ".join(
            f"{k.replace('_us', '')} {lat[k]:.0f} us" for k in ("p50_us", "p90_us", "p99_us",
                                                                  "p999_us", "max_us") if k in lat))
        lines.append(f"  - engine cycle mean {get(d, 'server', 'engine_cycle_mean_us') or 0:.0f} us, "
                     f"busy {(get(d, 'server', 'engine_busy_fraction') or 0) * 100:.0f}%; load "
                     f"average {get(d, 'server', 'loadavg_start')}")
    if not any_run:
        lines.append("Not measured in this run. The end-to-end load tool (`cascade_load`, "
                     "perf/load/) drives a real server over loopback WebSockets and writes a JSON "
                     "report; give its P5 run (10k ticks/s, 100 subscribers) and its P6 run (the "
                     "highest sustained ingest) to this script with `--p5-json` and `--p6-json` "
                     "and their rows in the goals table are filled from them.")
    lines.append("")
    return lines


def write_results(path, r):
    meta = r["meta"]
    lines = ["# Performance results", ""]
    lines.append("Written by `perf/run_results.py` from one run of every benchmark binary and the "
                 "numpy baseline on the same machine; ratios divide medians from that run. "
                 "Benchmarks never run as timed tests: CTest only smoke-runs the binaries (label "
                 "`perf`).")
    lines.append("")
    lines.append(f"- date: {meta['date']}; host: {meta['host']}")
    lines.append(f"- load average (1 min) at the start {meta['load_start']:.2f}, at the end "
                 f"{meta['load_end']:.2f} (the 2 cores are shared with other work)")
    lines.append(f"- {meta['repetitions']} repetitions per benchmark, randomly interleaved; figures "
                 "are medians of cpu_time (fan-out: wall time); spread = (min/median - 1) / "
                 "(max/median - 1)")
    lines.append("- command: " + code(meta["command"]))
    lines.append("")
    lines.append("## Goals (issue 7)")
    lines.append("")
    lines += table(["goal", "what", "target", "measured (medians)", "ratio", "verdict",
                    "command"], goal_rows(r))
    lines += [
        "How the ratios are counted:",
        "- P1 bandwidth: per row the term offset (4 bytes), the collateral-term count (2), per "
        "term the asset (2) and the coefficient (8), and the 16-byte cell written: 62 bytes per "
        "row with 4 terms (not counted: the band byte and the write-allocate read of the cell "
        "line). The bound is those bytes at the streaming-read bandwidth measured in the same run "
        "(BM_probe_read_bandwidth, a sum over a buffer far larger than L3); ratio = bandwidth / "
        "achieved bytes per second.",
        "- P1 numpy: the fastest of numpy's strategies (perf/baselines/numpy_health.py: "
        "bincount, reduceat, dense columns, einsum; index arrays built beforehand, untimed) computing "
        "num, den and HF for every row of the exported book, against BM_full_recompute "
        "(book::recompute_all: cells and band judgement). numpy's results equal the C++ "
        "cells within 1e-12 relative (ctest perf_numpy_baseline_matches).",
        "- P1 AoS: a std::vector of structs with a string id, a heap vector of legs and a "
        "threshold looked up per leg in the protocol table, same positions (BM_aos_recompute).",
        "- P2: BM_tick_10pct (book::apply_ticks on the asset held by 10% of rows, the price "
        "moving 0.1% up and back; every 257th walk re-anchors exactly, as in production) "
        "against BM_probe_sorted_gather (read-modify-write of 16-byte records at sorted random "
        "indices covering 10% of the rows); numpy's best tick updates the holders' num and den "
        "through a precomputed index and recomputes their HF.",
        "- P3: at each rung of the holder ladder, the book's own choice (default options) "
        "against the faster of scan_fraction 1.0 (always walk) and 0.0 (always scan); the "
        "worst rung is the figure.",
        "- P4: BM_decode_enqueue_price (clock, proto::decode_client_message with every check, "
        "the engine command with its answer callback, the inbox's capacity count and the "
        "enqueue into a moodycamel BlockingConcurrentQueue of the server's command type) against "
        "BM_simdjson_price (simdjson On-Demand reading the message's six fields, unchecked); "
        "P4 feed: the same for the frame a feed sends, without an id (so without an answer "
        "callback, as the server does), against simdjson reading its five fields.",
        "- P5, P6: cascade_load reports (End to end below); compute = the server's mean engine "
        "cycle in that run.",
        "- P7: BM_cascade_warm (cascade model v1, the server's reused simulator) against "
        "BM_full_recompute of the same book, both in cascade_bench.",
        ""]
    if r.get("book"):
        lines += book_sections(r)
    if r.get("numpy"):
        lines += numpy_section(r)
    if r.get("wire"):
        lines += wire_section(r)
    if r.get("hub"):
        lines += hub_section(r)
    if r.get("cascade"):
        lines += cascade_section(r)
    lines += end_to_end_section(r)
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
        at = old.find("\n" + ANALYSIS)
        if at >= 0:
            lines.append(old[at + 1:].rstrip() + "\n")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return goal_rows(r)


# ------------------------------------------------------------------ main


def collect(results_dir):
    """Everything a previous run left in results_dir."""
    with open(os.path.join(results_dir, "run.json")) as f:
        meta = json.load(f)
    r = {"meta": meta["meta"], "commands": meta["commands"]}
    for key in ("book", "wire", "hub", "cascade"):
        p = os.path.join(results_dir, f"{key}_bench.json")
        if os.path.exists(p):
            ctx, stats = load_bench(p)
            r[key] = stats
            if key == "book":
                r["book_context"] = ctx
    halves = [os.path.join(results_dir, f"numpy_{i}.json") for i in (1, 2)]
    halves = [p for p in halves if os.path.exists(p)]
    if halves:
        r["numpy"] = merge_numpy(halves)
    for key in ("p5", "p6"):
        p = meta.get("load_json", {}).get(key)
        if p and os.path.exists(p):
            with open(p) as f:
                r[key] = json.load(f)
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(REPO, "build", "release"),
                    help="the build tree holding perf/*_bench")
    ap.add_argument("--repetitions", type=int, default=9)
    ap.add_argument("--results", default=None,
                    help="where the raw JSON goes (default BUILD/perf/results)")
    ap.add_argument("--from", dest="from_dir", default=None,
                    help="skip the runs; rewrite RESULTS.md from this results directory")
    ap.add_argument("--only", default="book,numpy,wire,hub,cascade",
                    help="comma-separated steps to run (default all)")
    ap.add_argument("--p5-json", default=None, help="cascade_load report of the P5 run")
    ap.add_argument("--p6-json", default=None, help="cascade_load report of the P6 run")
    ap.add_argument("--p5-command", default=None, help="the command that produced --p5-json")
    ap.add_argument("--p6-command", default=None, help="the command that produced --p6-json")
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
    args = ap.parse_args()

    if args.from_dir:
        r = collect(args.from_dir)
        # Load reports named on this command line take the place of the run's own.
        for key, path, cmd in (("p5", args.p5_json, args.p5_command),
                               ("p6", args.p6_json, args.p6_command)):
            if path:
                with open(path) as f:
                    r[key] = json.load(f)
                r["commands"][key] = cmd or f"cascade_load ... --json {os.path.basename(path)}"
    else:
        perf = os.path.join(args.build, "perf")
        results = args.results or os.path.join(perf, "results")
        os.makedirs(results, exist_ok=True)
        steps = set(args.only.split(","))
        reps = args.repetitions
        commands = {}
        load_start = os.getloadavg()[0]
        book_bin = os.path.join(perf, "book_bench")
        if "numpy" in steps:
            book_file = os.path.join(results, "bench_book.bin")
            print("exporting the bench book", file=sys.stderr, flush=True)
            subprocess.run([book_bin, "--export", book_file], check=True)
            half = (reps + 1) // 2
            commands["numpy"] = run_numpy(book_file, half, os.path.join(results, "numpy_1.json"))
        if "book" in steps:
            commands["book"] = run_bench(book_bin, reps, os.path.join(results, "book_bench.json"),
                                         [])
        if "numpy" in steps:
            run_numpy(book_file, reps - (reps + 1) // 2 or 1, os.path.join(results, "numpy_2.json"))
            commands["numpy"] = [c if not c.startswith("--repetitions") else
                                 f"--repetitions={reps}" for c in commands["numpy"]]
        if "wire" in steps:
            commands["wire"] = run_bench(os.path.join(perf, "wire_bench"), reps,
                                         os.path.join(results, "wire_bench.json"), [])
        if "hub" in steps:
            commands["hub"] = run_bench(os.path.join(perf, "hub_bench"), reps,
                                        os.path.join(results, "hub_bench.json"), [])
        if "cascade" in steps:
            commands["cascade"] = run_bench(os.path.join(perf, "cascade_bench"), reps,
                                            os.path.join(results, "cascade_bench.json"),
                                            ["--benchmark_filter=full|warm|cold"])
        load_json = {}
        for key, path, cmd in (("p5", args.p5_json, args.p5_command),
                               ("p6", args.p6_json, args.p6_command)):
            if path:
                load_json[key] = os.path.abspath(path)
                commands[key] = cmd or f"cascade_load ... --json {os.path.basename(path)}"
        meta = {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "host": f"{os.cpu_count()} CPUs, {platform.machine()}, {cpu_model()}",
            "load_start": load_start,
            "load_end": os.getloadavg()[0],
            "repetitions": reps,
            "command": ["perf/run_results.py"] + sys.argv[1:],
        }
        with open(os.path.join(results, "run.json"), "w") as f:
            json.dump({"meta": meta, "commands": commands, "load_json": load_json}, f, indent=1)
        r = collect(results)
    rows = write_results(args.out, r)
    for row in rows:
        print(" | ".join(row[:6]))
    print("wrote", args.out, file=sys.stderr)


if __name__ == "__main__":
    main()
