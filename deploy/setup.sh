#!/usr/bin/env bash
# Installs every Debian package that Cascade's build, tests and benchmarks need.
# Idempotent: packages already installed are left as they are. Runs apt-get update
# first so a fresh machine finds current package lists.
set -euo pipefail

packages=(
  # build
  cmake ninja-build g++ pkg-config
  libboost1.81-dev libsimdjson-dev libabsl-dev libconcurrentqueue-dev prometheus-cpp-dev
  libtomlplusplus-dev
  # tests and benchmarks
  catch2 libbenchmark-dev python3 python3-websockets python3-numpy python3-yaml prometheus
  wrk hyperfine valgrind
  # fuzz targets (fuzz/): clang with its libFuzzer and sanitizer runtimes
  clang libclang-rt-14-dev
  # the live page's test: a real browser, headless
  chromium
  # deploy tests: systemd-analyze verify and security on deploy/systemd/cascade.service
  systemd
)

sudo=()
if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi

export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
echo "setup: ${#packages[@]} Debian packages present"
