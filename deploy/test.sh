#!/usr/bin/env bash
# One command from a fresh Debian machine: installs dependencies, builds and runs the
# whole test suite (release preset). Usage: deploy/test.sh [preset]
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-release}"
deploy/setup.sh
deploy/build.sh "$preset"
ctest --preset "$preset" -j2
