#!/usr/bin/env bash
# Configures and builds one CMake preset (default: release): the cascade binary, the
# tests and the benchmarks, in one configure. Usage: deploy/build.sh [preset]
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-release}"
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset"
