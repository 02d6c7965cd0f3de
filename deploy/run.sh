#!/usr/bin/env bash
# One command from a fresh Debian machine: installs dependencies, builds, and runs
# Cascade on the embedded default market. Extra arguments go to `cascade demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/setup.sh
deploy/build.sh release
exec build/release/cascade demo "$@"
