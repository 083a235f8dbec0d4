#!/usr/bin/env bash
# Runs the benchmarks (training step, evaluation, data pipeline, peak memory
# of every model kind) and prints the ratio table. Extra arguments go to
# Google Benchmark, e.g. --benchmark_filter=train_step.
#
#   scripts/bench.sh --guard [ARGS]
# The guard: every model's training step and evaluation against the float
# model's, on crops of natural photographs, at every kernel level this CPU
# runs (AVX-512, then AVX2 with oneDNN and ATen capped to AVX2 as well, as on
# an AVX2-only machine). It prints FAIL past a model's stated ratio
# (docs/PERFORMANCE.md, "Kernel levels and the guard") and exits non-zero if any line does.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build/CMakeCache.txt ] || scripts/setup.sh
cmake --build build -j"$(nproc 2>/dev/null || echo 2)" --target dnn_gating_bench
if [ "${1:-}" != "--guard" ]; then
  exec build/bench/dnn_gating_bench "$@"
fi
shift
if [ "${DNN_GATING_BENCH_INPUT:-photos}" = photos ] &&
  ! [ -f /usr/lib/python3/dist-packages/skimage/data/astronaut.png ] && [ -z "${DNN_GATING_PHOTO_DIR:-}" ]; then
  scripts/install_packages.sh python3-skimage
fi
levels=()
grep -qw avx512bw /proc/cpuinfo && grep -qw avx512vl /proc/cpuinfo && levels+=(avx512)
grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo && levels+=(avx2)
[ ${#levels[@]} -gt 0 ] || { echo "bench: this CPU has neither AVX-512 nor AVX2; nothing to guard"; exit 0; }
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
failed=0
for level in "${levels[@]}"; do
  caps=(DNN_GATING_MAX_ISA="$level")
  [ "$level" = avx2 ] && caps+=(DNNL_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2)
  echo "bench: guard at kernel level $level (${caps[*]})"
  env "${caps[@]}" build/bench/dnn_gating_bench --benchmark_filter='^(train_step|evaluation)/' \
    "$@" >"$log" 2>&1 || { cat "$log"; exit 1; }
  sed -n '/^model .*step ms/,$p' "$log"
  grep -q '^  FAIL' "$log" && failed=1
  # Two lines per gated model; fewer means a figure is missing (e.g. a filter
  # that left the float model out), which is no pass.
  if [ "$(grep -cE '^  (ok|FAIL) ' "$log")" -lt 8 ]; then
    echo "bench: FAIL: the guard's figures are incomplete at $level"
    failed=1
  fi
done
if [ "$failed" -ne 0 ]; then
  echo "bench: FAIL: a gated model costs more than its stated ratio (lines above)"
  exit 1
fi
echo "bench: the guard passes at ${levels[*]}"
