#!/usr/bin/env bash
# Configures and builds one CMake preset (default: release): the cascade binary, the
# tests and the benchmarks, in one configure. Further arguments go to the configure
# step (the Dockerfile passes -DCASCADE_NATIVE=OFF -DCASCADE_BUILD_TESTS=OFF ...).
# Usage: deploy/build.sh [preset [-DVAR=VALUE ...]]
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-release}"
cmake --preset "$preset" "${@:2}" >/dev/null
cmake --build --preset "$preset"
