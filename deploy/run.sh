#!/usr/bin/env bash
# One command from a fresh Debian machine: installs dependencies, builds, and runs the
# Cascade server on the embedded default market (HTTP + WebSocket on 127.0.0.1:8080, the
# live page at http://127.0.0.1:8080/).
# Extra arguments go to `cascade serve` (e.g. --port 9000, --config FILE).
#
# Pushing prices and writing positions need a token. Unless CASCADE_TOKENS is set, this
# script makes a fresh admin token for the run and leaves it, readable by you only, in
# build/cascade-token (the README's session reads it from there).
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/setup.sh
deploy/build.sh release
if [ -z "${CASCADE_TOKENS:-}" ]; then
  token_file=build/cascade-token
  (umask 077 && od -An -N16 -tx1 /dev/urandom | tr -d ' \n' > "$token_file")
  export CASCADE_TOKENS="$(cat "$token_file"):admin"
  echo "run.sh: admin token for this run in $token_file" >&2
fi
# The server replaces this shell (Ctrl-C and SIGTERM reach it directly). Once it
# listens it prints the live page's address (`cascade serve: the live page: http://...`).
exec build/release/cascade serve "$@"
