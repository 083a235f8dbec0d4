#!/usr/bin/env bash
# Runs the benchmarks (training step, evaluation, data pipeline, peak memory
# of every model kind) and prints the ratio table. Extra arguments go to
# Google Benchmark, e.g. --benchmark_filter=train_step.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build/CMakeCache.txt ] || scripts/setup.sh
cmake --build build -j"$(nproc 2>/dev/null || echo 2)" --target dnn_gating_bench
build/bench/dnn_gating_bench "$@"
