#!/usr/bin/env bash
# The GPU check, on a machine with one CUDA GPU, python3 with a CUDA PyTorch,
# cmake and g++ (no internet, no apt): builds this project against that
# PyTorch's LibTorch, runs the golden cases on CUDA, trains the float, PG and CG
# ResNet-20 for one epoch on Fashion-MNIST on the GPU, evaluates the saved
# checkpoints on the CPU and on the GPU and compares the figures, and prints
# the images per second of float, PG and CG training. About 5-8 minutes (an
# estimate: the check has not yet run on a GPU).
#
# What the machine lacks comes from the directory scripts/gpu_deps.sh fills
# on a Debian machine (default gpu-deps/, or DNN_GATING_GPU_DEPS): the small
# build dependencies, the Fashion-MNIST files and the golden vectors. Where
# the machine has them already, these are used instead:
#   DNN_GATING_FASHION_DIR   Fashion-MNIST IDX files
#   DNN_GATING_GOLDEN_DIR    golden vectors (else ../shared/golden)
#   DNN_GATING_TRAIN_LIMIT   training images per epoch (default 0: all 60000)
#   GPU                      the CUDA device (default 0)
# Output: build-gpu/ and runs/gpu-check/ (logs, checkpoints, metrics).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
deps=${DNN_GATING_GPU_DEPS:-gpu-deps}
gpu=${GPU:-0}
out=runs/gpu-check
build=build-gpu
mkdir -p "$out"
say() { echo "gpu_check: $*"; }
fail() {
  echo "gpu_check: FAILED: $*" >&2
  exit 1
}

# ---- the machine's PyTorch ----
read -r torch_dir torch_version cuda_ok abi < <(python3 -c '
import os, torch
print(os.path.dirname(torch.__file__), torch.__version__, int(torch.cuda.is_available()),
      int(torch._C._GLIBCXX_USE_CXX11_ABI))') || fail "python3 cannot import torch"
say "PyTorch $torch_version at $torch_dir (C++11 ABI $abi), CUDA available: $cuda_ok"
[ "$cuda_ok" = 1 ] || fail "this PyTorch sees no CUDA device"
command -v nvidia-smi >/dev/null && nvidia-smi -L | sed 's/^/gpu_check: /'

# ---- data ----
fashion=
for d in "${DNN_GATING_FASHION_DIR:-}" "$deps/fashion-mnist" /usr/share/datasets/fashion-mnist; do
  if [ -n "$d" ] && { [ -e "$d/t10k-labels-idx1-ubyte.gz" ] || [ -e "$d/t10k-labels-idx1-ubyte" ]; }; then
    fashion=$d
    break
  fi
done
[ -n "$fashion" ] || fail "no Fashion-MNIST files (run scripts/gpu_deps.sh where apt works)"
golden=
for d in "${DNN_GATING_GOLDEN_DIR:-}" "$deps/golden" ../shared/golden; do
  if [ -n "$d" ] && [ -e "$d/quantize_b3.pt" ]; then
    golden=$(cd "$d" && pwd)
    break
  fi
done
[ -n "$golden" ] || fail "no golden vectors (DNN_GATING_GOLDEN_DIR, $deps/golden or ../shared/golden)"
say "Fashion-MNIST from $fashion, golden vectors from $golden"

# ---- configure and build ----
cmake_args=(-DCMAKE_BUILD_TYPE=Release -DDNN_GATING_HEADER_ONLY_DEPS=ON
  -DDNN_GATING_DISTRIBUTED=OFF -DDNN_GATING_BUILD_BENCH=OFF)
if [ -d "$deps/prefix/usr" ]; then
  prefix=$(cd "$deps/prefix/usr" && pwd)
  for package in CLI11 spdlog fmt nlohmann_json; do
    config=$(find "$prefix" -path "*/cmake/*" \( -name "${package}Config.cmake" -o \
      -name "${package}-config.cmake" \) | head -n 1)
    [ -n "$config" ] && cmake_args+=("-D${package}_DIR=$(dirname "$config")")
  done
  [ -d "$prefix/src/googletest" ] && cmake_args+=("-DDNN_GATING_GTEST_SOURCE_DIR=$prefix/src/googletest")
  if [ ! -e /usr/include/zlib.h ] && [ -e "$prefix/include/zlib.h" ]; then
    libz=$( (ldconfig -p 2>/dev/null || true) | awk '/libz\.so\.1 .*x86-64/ { print $NF; exit }')
    cmake_args+=("-DZLIB_INCLUDE_DIR=$prefix/include" "-DZLIB_LIBRARY=${libz:-$prefix/lib/x86_64-linux-gnu/libz.a}")
  fi
fi
# PyTorch's CMake package needs the CUDA toolkit (nvcc); without it, the
# wheel's tree is taken as it is (cmake/TorchTree.cmake).
configured=0
if command -v nvcc >/dev/null; then
  say "configuring with PyTorch's CMake package"
  if cmake -S . -B "$build" "${cmake_args[@]}" \
    -DCMAKE_PREFIX_PATH="$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')" \
    >"$out/configure.log" 2>&1; then
    configured=1
  else
    say "PyTorch's CMake package failed (see $out/configure.log); using the LibTorch tree"
    rm -rf "$build"
  fi
fi
if [ "$configured" = 0 ]; then
  say "configuring with the LibTorch tree $torch_dir"
  cmake -S . -B "$build" "${cmake_args[@]}" -DDNN_GATING_TORCH_ROOT="$torch_dir" \
    -DDNN_GATING_TORCH_CXX11_ABI="$abi" >"$out/configure.log" 2>&1 ||
    { tail -n 30 "$out/configure.log"; fail "configure (log: $out/configure.log)"; }
fi
say "building (log: $out/build.log)"
cmake --build "$build" -j"$(nproc)" --target pg-cifar10 cg-cifar10 dnn_gating_tests \
  >"$out/build.log" 2>&1 || { grep -m 20 -B2 -A8 'error' "$out/build.log"; fail "build"; }
say "built in $((SECONDS - start)) s"

# ---- golden cases on CUDA ----
# Deterministic cuBLAS (the linear layer) as deterministic algorithms ask.
export CUBLAS_WORKSPACE_CONFIG=:4096:8
DNN_GATING_TEST_DEVICE=cuda:$gpu DNN_GATING_GOLDEN_DIR=$golden \
  "$build/tests/dnn_gating_tests" --gtest_filter='*Golden*' >"$out/golden_cuda.log" 2>&1 ||
  { grep -E '^\[  FAILED|Failure|not allclose|Expected' "$out/golden_cuda.log" | head -n 40; fail "golden cases on CUDA (log: $out/golden_cuda.log)"; }
grep -q '\[  SKIPPED \]' "$out/golden_cuda.log" &&
  { grep '\[  SKIPPED \]' "$out/golden_cuda.log"; fail "golden cases skipped on CUDA"; }
say "golden cases on cuda:$gpu: $(grep -E '^\[  PASSED' "$out/golden_cuda.log")"

# ---- one epoch of float, PG and CG training on the GPU ----
data=(--dataset fashion-mnist --data-dir "$fashion" --train-limit "${DNN_GATING_TRAIN_LIMIT:-0}")
train() {  # NAME PROGRAM FLAGS...
  local name=$1 program=$2
  shift 2
  "$build/$program" "$@" -gpu "$gpu" "${data[@]}" --epochs 1 --save-dir "$out/$name" \
    --metrics "$out/$name.jsonl" >"$out/$name.log" 2>&1 || { tail -n 20 "$out/$name.log"; fail "training $name"; }
  grep -q "on CUDA device $gpu" "$out/$name.log" || fail "$name did not train on CUDA device $gpu"
  say "trained $name: $(grep -m 1 'images/s' "$out/$name.log" | sed 's/.*took/took/')"
}
train float pg-cifar10
train pg pg-cifar10 -pg -w 8 -a 3 -pb 2 -gtar 1 -spbp -pact -s
train cg cg-cifar10 -gi 0.0 -gt 1.0 -pt 4 --alpha 2.0 -cg --sparse_bp --use_group -s

# ---- the saved checkpoints evaluated on the CPU and on the GPU ----
# The GPU evaluates with PyTorch's defaults (cuDNN may use TF32 on Ampere and
# later) and in another summation order than the CPU's fused kernels: a few
# predictions and gate decisions within rounding of their boundary may fall
# the other way. Accuracy and sparsity must agree within 0.5 points.
evaluate() {  # NAME PROGRAM DEVICE-FLAGS...
  local name=$1 program=$2 where=$3
  shift 3
  "$build/$program" -t -p "$out/$name/model_resnet-20.pt" "${data[@]}" "$@" \
    --metrics "$out/${name}_eval_$where.jsonl" >"$out/${name}_eval_$where.log" 2>&1 ||
    { tail -n 20 "$out/${name}_eval_$where.log"; fail "evaluating $name on $where"; }
}
for model in pg:pg-cifar10 cg:cg-cifar10; do
  name=${model%%:*}
  evaluate "$name" "${model#*:}" cpu
  evaluate "$name" "${model#*:}" gpu -gpu "$gpu"
  python3 - "$out/${name}_eval_cpu.jsonl" "$out/${name}_eval_gpu.jsonl" "$name" <<'PY' || fail "CPU and GPU evaluations of $name differ"
import json, sys
def final(path):
    return [r for r in map(json.loads, open(path)) if r["type"] == "final"][-1]
cpu, gpu, name = final(sys.argv[1]), final(sys.argv[2]), sys.argv[3]
ok = True
for key in ("test_accuracy", "sparsity"):
    d = abs(cpu[key] - gpu[key])
    ok &= d <= 0.5
    print("gpu_check: %s %s: CPU %.2f, GPU %.2f (difference %.2f, at most 0.5)"
          % (name, key, cpu[key], gpu[key], d))
sys.exit(0 if ok else 1)
PY
done

# ---- training speed ----
echo "gpu_check: training images per second on cuda:$gpu (one epoch, batch 128):"
for name in float pg cg; do
  python3 - "$out/$name.jsonl" "$name" <<'PY'
import json, sys
r = [r for r in map(json.loads, open(sys.argv[1])) if r["type"] == "epoch"][-1]
print("  %-6s %9.0f images/s  (%.1f s per epoch)" % (sys.argv[2], r["images_per_second"], r["seconds"]))
PY
done
say "passed in $((SECONDS - start)) s"
