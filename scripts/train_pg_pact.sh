#!/usr/bin/env bash
# The original PG script: ResNet-20, 8-bit weights, 3-bit activations, 2 of
# them for prediction, PACT, sparse back-propagation. Extra arguments are
# passed through (e.g. --epochs 1 --data-dir DIR).
cd "$(dirname "$0")/.." || exit 1
exec "${DNN_GATING_BUILD_DIR:-build}"/pg-cifar10 -pg -w 8 -a 3 -pb 2 -gtar 1 -spbp -pact -gpu 0 "$@"
