#!/usr/bin/env bash
# The original CG script: ResNet-20, 1/4 of the channels in a grouped base
# path, sparse back-propagation. Extra arguments are passed through.
cd "$(dirname "$0")/.." || exit 1
exec "${DNN_GATING_BUILD_DIR:-build}"/cg-cifar10 -gpu 0 -gi 0.0 -gt 1.0 -pt 4 --alpha 2.0 -cg --sparse_bp --use_group "$@"
