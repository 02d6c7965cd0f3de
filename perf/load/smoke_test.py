#!/usr/bin/python3
"""Smoke test of cascade_load (ctest label `perf`): a few seconds of load on a spawned
`cascade serve`, then facts about the JSON report that do not depend on timing: it is
written and parses, alerts and events arrived, every stream is in order and complete
against the engine's sequence numbers, nothing was refused. It never passes or fails on
a latency or a rate.

    /usr/bin/python3 perf/load/smoke_test.py --load BUILD/cascade_load --cascade BUILD/cascade

A second run gives the subscribers a send queue of 2 events, so bursts overflow it: the
tool must then report gap messages, the server must report the events it dropped, and
the stream checks must still hold for what arrived (no reordering, no errors).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile


def run_load(args, out, extra):
    cmd = [args.load, "--spawn", args.cascade,
           "--publishers", "2", "--rate", "1000", "--batch", "4",
           "--vol", "0.005", "--band", "0.05",
           "--subscribers", "4", "--filtered-subscribers", "2",
           "--filter", '{"min_band": "danger"}',
           "--warmup", "1", "--duration", "4",
           "--positions-rate", "20", "--sample-interval", "0.5",
           "--json", out] + extra
    print("+", " ".join(cmd), flush=True)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=600)
    sys.stderr.write(p.stderr)
    with open(out, encoding="utf-8") as f:
        report = json.load(f)  # must parse
    return p.returncode, report


def check(cond, what, failures):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--load", required=True)
    ap.add_argument("--cascade", required=True)
    args = ap.parse_args()
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        code, r = run_load(args, os.path.join(tmp, "load.json"), [])
        s = r["stream"]
        check(code == 0, f"exit status 0 (got {code})", failures)
        check(r["ingest"]["ticks_window"] > 0, "ticks were sent in the window", failures)
        check(s["events_received"] > 0, "subscribers received events", failures)
        check(all(p["events"] > 0 for p in s["per_subscriber"] if p["full"]),
              "every unfiltered subscriber received events", failures)
        check(r["latency"]["tick_to_alert"]["count"] > 0,
              "alerts caused by ticks were received and matched to their tick", failures)
        lat = r["latency"]
        parts = [lat[k] for k in ("outside_server", "write_to_ingest", "emit_to_receive")]
        if all(h["negative"] == 0 for h in parts):
            # Per alert, outside_server = write_to_ingest + emit_to_receive exactly.
            same_n = len({h["count"] for h in parts}) == 1
            split = parts[1]["mean_us"] + parts[2]["mean_us"]
            check(same_n and abs(parts[0]["mean_us"] - split) <= 1e-3 + 1e-9 * abs(split),
                  "the time outside the server splits into write_to_ingest and emit_to_receive",
                  failures)
        ing = r["ingest"]
        check(ing["engine_taken_ticks_per_s"] >= ing["server_applied_ticks_per_s"] > 0,
              "the engine took at least the ticks the book applied", failures)
        check(s["reordered"] == 0, "no event out of seq order", failures)
        check(r["errors"]["total"] == 0, f"no errors ({r['errors']['codes']})", failures)
        check(s["synced"], "every subscriber answered the final ping", failures)
        check(s["end_seq"] > s["base_seq"], "the engine numbered events in the run", failures)
        check(s["full_subscribers_checked"] == 4 and s["full_subscribers_complete"] == 4,
              "every unfiltered subscriber saw every seq the engine stamped", failures)
        check(s["digests_match_engine"] and s["groups_agree"],
              "seq digests agree with the engine's range and within each subscription", failures)
        check(r["positions"]["upserts"] > 0, "position updates went through REST", failures)
        check(r["cpu"]["server_cpu_s"] is not None and len(r["rss"]["samples"]) > 0
              and all(x["rss_kb"] > 0 for x in r["rss"]["samples"]),
              "server CPU and RSS were read from /proc", failures)
        check(r["verdict"]["stream_ok"], "verdict.stream_ok", failures)

        code, r = run_load(args, os.path.join(tmp, "gaps.json"),
                           ["--set", "server.send_queue=2"])
        s = r["stream"]
        check(s["gap_messages"] > 0 and s["subscribers_with_gaps"] > 0,
              "a send queue of 2 makes the tool see gap messages", failures)
        check(s["server_events_dropped"] > 0, "and the server count dropped events", failures)
        check(s["gap_seqs"] >= s["server_events_dropped"],
              "the gaps cover at least the events the server dropped", failures)
        check(s["reordered"] == 0 and r["errors"]["total"] == 0,
              "what arrived is still in order, with no errors", failures)
    if failures:
        print(f"{len(failures)} check(s) failed", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
