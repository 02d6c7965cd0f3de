#!/usr/bin/env bash
# Builds the fuzz preset (build/fuzz) and runs each libFuzzer target for SECONDS
# (default 30), one after the other: fuzz/README.md.
#   fuzz/run.sh [SECONDS] [TARGET...]     e.g. fuzz/run.sh 600 scenario positions_csv
# TARGET is ws_message, rest_bodies, scenario, positions_csv or config (default: all).
# Each target keeps a working corpus in build/fuzz/corpus/<target> (grown run after
# run), read-only seeds rebuilt from the project's examples in build/fuzz/seeds/<target>,
# a log in build/fuzz/logs/<target>.log, and what it finds in build/fuzz/artifacts/<target>/.
# Prints per target: runs, coverage (cov), features (ft), corpus, exec/s. Exits 1 when
# any target crashed, leaked, hung, ran out of memory or a sanitizer reported.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-30}"
[[ $# -gt 0 ]] && shift
all=(ws_message rest_bodies scenario positions_csv config)
targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=("${all[@]}")
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
  echo "fuzz/run.sh: SECONDS must be a positive integer, got '$seconds'" >&2
  exit 2
fi
for t in "${targets[@]}"; do
  if [[ " ${all[*]} " != *" $t "* ]]; then
    echo "fuzz/run.sh: unknown target '$t' (expected one of: ${all[*]})" >&2
    exit 2
  fi
done

cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j2

out=build/fuzz
# Seeds: the project's own example documents, valid and invalid, copied fresh each run.
seed() {  # seed TARGET [PREFIX] FILE...: copies FILEs into the target's seed dir, each
          # with PREFIX (the rest_bodies endpoint byte) in front when given
  local target="$1" prefix="$2" f
  shift 2
  for f in "$@"; do
    [[ -f "$f" ]] || continue
    { printf '%s' "$prefix"; cat "$f"; } >"$out/seeds/$target/$prefix$(basename "$f")"
  done
}
rm -rf "$out/seeds"
mkdir -p "$out"/seeds/{ws_message,rest_bodies,scenario,positions_csv,config}
seed ws_message "" proto/examples/ws/*.json proto/examples/ws/bad/*.json
seed rest_bodies "" fuzz/corpus/rest_bodies/*
seed rest_bodies S proto/examples/scenario_*.json
seed scenario "" proto/examples/scenario_*.json tests/data/bad/scenario_*.json
seed positions_csv "" tests/data/*.csv tests/data/server/*.csv tests/data/bad/positions_*.csv
seed config "" config/default.toml config/examples/*.toml tests/data/*.toml \
  tests/data/server/*.toml tests/data/bad/config_*.toml

declare -A dict=([ws_message]=json [rest_bodies]=json [scenario]=json [positions_csv]=csv
                 [config]=toml)
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:symbolize=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
failed=()
summary=()
for t in "${targets[@]}"; do
  mkdir -p "$out/corpus/$t" "$out/artifacts/$t" "$out/logs"
  log="$out/logs/$t.log"
  echo "== fuzz_$t: ${seconds}s (log $log)"
  status=0
  "$out/fuzz/fuzz_$t" "$out/corpus/$t" "$out/seeds/$t" \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=25 -print_final_stats=1 \
    -dict="fuzz/${dict[$t]}.dict" -artifact_prefix="$out/artifacts/$t/" >"$log" 2>&1 ||
    status=$?
  # libFuzzer's last status line: "#RUNS DONE cov: C ft: F corp: N/SIZE exec/s: E ...".
  last="$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)"
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)"
  cov="$(grep -oE 'cov: [0-9]+' <<<"$last" | cut -d' ' -f2 || true)"
  ft="$(grep -oE 'ft: [0-9]+' <<<"$last" | cut -d' ' -f2 || true)"
  corp="$(grep -oE 'corp: [0-9]+/[0-9A-Za-z]+' <<<"$last" | cut -d' ' -f2 || true)"
  line="$(printf 'fuzz_%-14s runs %-10s cov %-6s ft %-7s corpus %-12s exec/s %s' "$t" \
    "${runs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${rate:-?}")"
  if [[ $status -ne 0 ]] || grep -qE '^==[0-9]+==ERROR|runtime error:|invariant failed' "$log"; then
    line+="  FAILED (exit $status; see $log and $out/artifacts/$t/)"
    failed+=("$t")
    grep -E 'ERROR|runtime error:|invariant failed|SUMMARY|Test unit written' "$log" | head -n 20 >&2 || true
  fi
  echo "$line"
  summary+=("$line")
done

echo "== summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz/run.sh: failed: ${failed[*]}" >&2
  exit 1
fi
