#!/usr/bin/env bash
# Sets up if needed, builds, and runs the whole test suite (unit, golden,
# end-to-end and real-data tests).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f build/CMakeCache.txt ] || ! command -v cmake >/dev/null; then
  scripts/setup.sh
else
  cmake --build build -j"$(nproc 2>/dev/null || echo 2)"
fi
cd build
ctest --output-on-failure "$@"
