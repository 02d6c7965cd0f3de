#!/usr/bin/env bash
# One command from a fresh Debian machine: installs dependencies, builds and runs the
# whole test suite (release preset), then builds the fuzz preset and runs each libFuzzer
# target for a short fixed time (fuzz/README.md; CASCADE_FUZZ_SECONDS per target,
# default 20, 0 skips). Usage: deploy/test.sh [preset]
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-release}"
fuzz_seconds="${CASCADE_FUZZ_SECONDS:-20}"
deploy/setup.sh
deploy/build.sh "$preset"
ctest --preset "$preset" -j2
if [[ "$fuzz_seconds" != 0 ]]; then
  fuzz/run.sh "$fuzz_seconds"
fi
