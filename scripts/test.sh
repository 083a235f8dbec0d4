#!/usr/bin/env bash
# Sets up if needed, builds, and runs the whole test suite (unit, golden,
# end-to-end, real data), then the fast tests again built with AddressSanitizer
# and UndefinedBehaviorSanitizer in build-asan/ (DNN_GATING_SANITIZE=0 skips
# that part). Tests run as many at a time as the machine has cores. Arguments
# go to both ctest runs, e.g. -R Golden.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
if [ ! -f build/CMakeCache.txt ] || ! command -v cmake >/dev/null; then
  scripts/setup.sh
else
  cmake --build build -j"$jobs"
fi
(cd build && ctest -j"$jobs" --output-on-failure "$@")

if [ "${DNN_GATING_SANITIZE:-1}" != 0 ]; then
  # -O1, as the sanitizers recommend (and quicker to build than -O3).
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE=-O1 \
    -DDNN_GATING_SANITIZE=ON >/dev/null
  cmake --build build-asan -j"$jobs"
  # LibTorch keeps some allocations until exit, which leak checking would report.
  (cd build-asan && ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest -j"$jobs" --output-on-failure "$@")
fi
