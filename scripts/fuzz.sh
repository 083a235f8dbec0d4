#!/usr/bin/env bash
# Coverage-guided fuzzing of every file reader (libFuzzer, clang, with
# AddressSanitizer and UBSan):
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# builds the targets in build-fuzz/ and runs each (default: all of
# pytorch_state_dict checkpoint cifar10 idx metrics png image) for SECONDS
# (default 60), starting from its corpus tests/fuzz/corpus/<target>/, as many at a
# time as the machine has cores. New inputs that reach new code
# go to build-fuzz/corpus/<target>/ (the committed corpus stays as it is).
# Stops non-zero on any crash, sanitizer report, leak, timeout (-timeout=10
# per input) or allocation over 2 GB (-rss_limit_mb, -malloc_limit_mb),
# printing the reproducer's path: copy it into the target's corpus as a
# regression case once fixed (the test suite replays every corpus file).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
case "$seconds" in ''|*[!0-9]*|0) echo "fuzz.sh: SECONDS must be a whole number of at least 1, got '$seconds'" >&2; exit 2 ;; esac
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(pytorch_state_dict checkpoint cifar10 idx metrics png image)
command -v clang++ >/dev/null || { echo "fuzz.sh: needs clang++ (Debian package clang)" >&2; exit 2; }
jobs=$(nproc 2>/dev/null || echo 2)
if [ ! -f build-fuzz/CMakeCache.txt ]; then
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CXX_FLAGS_RELEASE="-O1 -g" -DDNN_GATING_FUZZ=ON >/dev/null
fi
cmake --build build-fuzz -j"$jobs" --target fuzz_targets
export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# Leaks inside LibTorch itself are listed (with why) in tests/fuzz/lsan.supp.
export LSAN_OPTIONS="suppressions=$PWD/tests/fuzz/lsan.supp:print_suppressions=0"
export OMP_NUM_THREADS=1
run_one() {
  local t="$1" work="build-fuzz/corpus/$1" log="build-fuzz/fuzz-$1.log"
  rm -rf "build-fuzz/crashes/$t"
  mkdir -p "$work" "build-fuzz/crashes/$t"
  if build-fuzz/tests/fuzz/fuzz_"$t" "$work" "tests/fuzz/corpus/$t" \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
      -max_len=65536 -print_final_stats=1 -artifact_prefix="build-fuzz/crashes/$t/" \
      >"$log" 2>&1; then
    local first last
    first=$(grep -m1 -oE "INITED cov: [0-9]+" "$log" | grep -oE "[0-9]+$" || echo "?")
    last=$(grep -oE "cov: [0-9]+" "$log" | tail -1 | grep -oE "[0-9]+$" || echo "?")
    local runs speed
    runs=$(grep -oE "stat::number_of_executed_units: +[0-9]+" "$log" | grep -oE "[0-9]+$" || echo "?")
    speed=$(grep -oE "stat::average_exec_per_sec: +[0-9]+" "$log" | grep -oE "[0-9]+$" || echo "?")
    echo "fuzz $t: clean, $runs runs in $seconds s ($speed/s), cov $first -> $last"
  else
    echo "fuzz $t: FAILED; log $log; reproducer:" >&2
    ls build-fuzz/crashes/"$t"/* >&2 2>/dev/null || tail -20 "$log" >&2
    return 1
  fi
}
for t in "${targets[@]}"; do
  [ -x "build-fuzz/tests/fuzz/fuzz_$t" ] || { echo "fuzz.sh: no target '$t'" >&2; exit 2; }
done
status=0
pids=()
for t in "${targets[@]}"; do
  run_one "$t" &
  pids+=($!)
  if [ ${#pids[@]} -ge "$jobs" ]; then
    wait "${pids[0]}" || status=1
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || status=1; done
exit $status
