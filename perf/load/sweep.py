#!/usr/bin/python3
"""The highest ingest rate one server sustains (issue 7, P6): runs cascade_load at
increasing rates, each against a fresh spawned server, and keeps the highest rate at
which the run was sustained: every slot sent (no slot skipped for a backlog of more
than a second: the server read what it was sent), the server received at least 99% of
what was sent while the window ran, its inbox drained within a second of the end,
alerts flowed, and nothing was dropped, refused or lost (no gap, no error, every
stream check held). Late messages (written over 1 ms after their slot) are reported,
not judged: on a shared machine the client's own thread is often the one late.

    perf/load/sweep.py --load build/release/cascade_load --cascade build/release/cascade \\
        --rates 100000,200000,400000,600000,800000 --batch 1000 -- --subscribers 10

Arguments after `--` go to every cascade_load run. Prints one line per run and, last,
a JSON summary (to --json when given); --best-json keeps the full cascade_load report
of the highest sustained run (the P6 figure perf/run_results.py reads). A benchmark,
never a test: the machine's other load moves the answer.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile


def sustained(r):
    ing, s = r["ingest"], r["stream"]
    reasons = []
    if ing["missed_slots"] > 0:
        reasons.append(f"{ing['missed_slots']} slots missed")
    if ing["server_received_ticks_per_s"] < 0.99 * ing["sent_ticks_per_s"]:
        reasons.append("server received less than was sent")
    if ing["drain_s"] > 1.0:
        reasons.append(f"inbox drained {ing['drain_s']:.1f} s after the end")
    if r["flow"]["alerts_received_per_s"] <= 0:
        reasons.append("no alerts")
    if s["gap_messages"] > 0 or s["server_events_dropped"] > 0:
        reasons.append(f"{s['gap_messages']} gaps, {s['server_events_dropped']:.0f} events dropped")
    if r["errors"]["total"] > 0:
        reasons.append(f"errors {r['errors']['codes']}")
    if not r["verdict"]["stream_ok"]:
        reasons.append("stream check failed")
    return reasons


def main():
    argv = sys.argv[1:]
    extra = []
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1:]
    ap = argparse.ArgumentParser()
    ap.add_argument("--load", required=True)
    ap.add_argument("--cascade", required=True)
    ap.add_argument("--rates", required=True, help="comma-separated ticks/s, ascending")
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--json")
    ap.add_argument("--best-json", help="where to copy the highest sustained run's report")
    args = ap.parse_args(argv)
    rates = [float(x) for x in args.rates.split(",")]
    runs = []
    best = None
    with tempfile.TemporaryDirectory() as tmp:
        for rate in rates:
            out = os.path.join(tmp, f"run-{int(rate)}.json")
            cmd = [args.load, "--spawn", args.cascade, "--rate", str(rate),
                   "--batch", str(args.batch), "--warmup", str(args.warmup),
                   "--duration", str(args.duration), "--json", out] + extra
            p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if not os.path.exists(out):
                sys.stderr.write(p.stderr)
                sys.exit(f"cascade_load failed at {rate:.0f} ticks/s (exit {p.returncode})")
            with open(out, encoding="utf-8") as f:
                r = json.load(f)
            why = sustained(r)
            row = {"rate": rate, "sustained": not why, "why_not": why,
                   "sent_ticks_per_s": r["ingest"]["sent_ticks_per_s"],
                   "server_received_ticks_per_s": r["ingest"]["server_received_ticks_per_s"],
                   "alerts_received_per_s": r["flow"]["alerts_received_per_s"],
                   "engine_alerts_per_s": r["flow"]["engine_alerts_per_s"],
                   "server_cpu_s_per_million_ticks": r["cpu"].get("server_cpu_s_per_million_ticks"),
                   "server_cores": r["cpu"].get("server_cores"),
                   "client_cores": r["cpu"]["client_cores"],
                   "engine_cycle_mean_us": r["server"]["engine_cycle_mean_us"],
                   "tick_to_alert_p50_us": r["latency"]["tick_to_alert"]["p50_us"],
                   "tick_to_alert_p99_us": r["latency"]["tick_to_alert"]["p99_us"],
                   "drain_s": r["ingest"]["drain_s"],
                   "late_fraction": r["ingest"]["late_fraction"],
                   "loadavg": [r["server"]["loadavg_start"], r["server"]["loadavg_end"]]}
            runs.append(row)
            print(f"{rate:>10.0f} ticks/s: {'sustained' if not why else 'NOT sustained: ' + '; '.join(why)}"
                  f" (received {row['server_received_ticks_per_s']:.0f}/s, alerts {row['alerts_received_per_s']:.0f}/s,"
                  f" {row['server_cpu_s_per_million_ticks'] or 0:.2f} CPU s per M ticks,"
                  f" p50 {row['tick_to_alert_p50_us'] / 1e3:.1f} ms, {row['late_fraction']:.1%} late)",
                  flush=True)
            if not why:
                best = rate
                if args.best_json:
                    shutil.copyfile(out, args.best_json)
    summary = {"batch": args.batch, "duration_s": args.duration, "extra": extra,
               "highest_sustained_ticks_per_s": best, "runs": runs}
    text = json.dumps(summary, indent=1)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    print(text)
    return 0 if best is not None else 1


if __name__ == "__main__":
    sys.exit(main())
