#!/usr/bin/env bash
# Whole-epoch training speed on real data: the float, PG, CG and
# post-activated CG ResNet-20 trained for 2 epochs on Fashion-MNIST (Debian's
# dataset-fashion-mnist) with the original's flags, each trainer's own epoch
# lines ("Epoch N took X s (Y images/s)") collected into one table.
#   scripts/epoch_speed.sh [--train-limit N] [other trainer flags]
# Extra arguments go to every trainer (default: all 60000 training images;
# --train-limit 12800 gives the same rates in a fifth of the time).
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
  grep -o 'Epoch [0-9]* took .* images/s)' "$work/$name.log" | sed "s/^/$name: /"
}

run float cg-cifar10 -gpu 0 -gi 0.0 -gt 1.0 "$@"
run pg pg-cifar10 -gpu 0 -pg -w 8 -a 3 -pb 2 -gtar 1 -spbp -pact "$@"
run cg cg-cifar10 -gpu 0 -gi 0.0 -gt 1.0 -pt 4 --alpha 2.0 -cg --sparse_bp --use_group "$@"
run cg_postact cg-cifar10 -gpu 0 -lr 0.08 -wd 3e-4 -gi 0.0 -gt 0.6 -pt 2 -cg --use_postact --sparse_bp --use_group "$@"
