#!/usr/bin/env bash
# Whole-epoch training speed on real data: the float, quantized, PG, CG and
# post-activated CG ResNet-20 trained for 2 epochs on Fashion-MNIST (Debian's
# dataset-fashion-mnist) with the original's flags, each trainer's own epoch
# lines ("Epoch N took X s (Y images/s)") collected, then a table of each
# epoch's rate as a ratio to the float model's same epoch in this run.
# The gated models run twice: early in training (the original's flags,
# about half the gates open) and with most gates closed ("late": CG from
# thresholds of 1.0 (-gi 1.0, about 85 % of gates closed from the first
# step), PG with the gating loss 20 000 times heavier (-sg 20), which closes
# about 80 % of its gates within the first epoch).
#   scripts/epoch_speed.sh [--train-limit N] [other trainer flags]
# Extra arguments go to every trainer (default: all 60000 training images;
# --train-limit 12800 gives the same rates in a fifth of the time). For the
# AVX2 code on an AVX-512 machine, run it under
#   DNN_GATING_MAX_ISA=avx2 DNNL_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2
set -euo pipefail
cd "$(dirname "$0")/.." || exit 1
build="${DNN_GATING_BUILD_DIR:-build}"
for trainer in pg-cifar10 cg-cifar10; do
  if [[ ! -x "$build/$trainer" ]]; then
    echo "epoch_speed: $build/$trainer not found; build first (scripts/setup.sh)" >&2
    exit 1
  fi
done
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

common=(--dataset fashion-mnist --epochs 2 --test-limit 1000 --save-dir "$work/save")
run() {  # name trainer flags...
  local name="$1" trainer="$2"
  shift 2
  if ! "$build/$trainer" "${common[@]}" "$@" >"$work/$name.log" 2>&1; then
    echo "epoch_speed: $name failed; its last lines:" >&2
    tail -5 "$work/$name.log" >&2
    exit 1
  fi
  grep -o 'Epoch [0-9]* took .* images/s)' "$work/$name.log" | sed "s/^/$name: /" |
    tee -a "$work/epochs"
  { grep -o -E 'Sparsity of [^:]*: [0-9.]+ %' "$work/$name.log" || true; } | tail -1 |
    sed "s/^/$name: after the last epoch, test set: /"
}

pg=(-gpu 0 -pg -w 8 -a 3 -pb 2 -gtar 1 -spbp -pact)
cg=(-gpu 0 -gt 1.0 -pt 4 --alpha 2.0 -cg --sparse_bp --use_group)
postact=(-gpu 0 -lr 0.08 -wd 3e-4 -gt 0.6 -pt 2 -cg --use_postact --sparse_bp --use_group)
run float cg-cifar10 -gpu 0 -gi 0.0 -gt 1.0 "$@"
run quantized pg-cifar10 -gpu 0 -w 8 -a 3 -pact "$@"
run pg pg-cifar10 "${pg[@]}" "$@"
run pg_late pg-cifar10 "${pg[@]}" -sg 20 "$@"
run cg cg-cifar10 "${cg[@]}" -gi 0.0 "$@"
run cg_late cg-cifar10 "${cg[@]}" -gi 1.0 "$@"
run cg_postact cg-cifar10 "${postact[@]}" -gi 0.0 "$@"
run cg_postact_late cg-cifar10 "${postact[@]}" -gi 1.0 "$@"

echo
echo "x float (images/s of the float model's same epoch over the model's):"
awk '{ name = $1; sub(":", "", name); rate = $(NF - 1); sub(/^\(/, "", rate)
       if (name == "float") float[$3] = rate; else { order[++n] = name " epoch " $3; r[n] = rate; e[n] = $3 } }
     END { for (i = 1; i <= n; ++i) printf "  %-28s %.2f\n", order[i], float[e[i]] / r[i] }' "$work/epochs"
