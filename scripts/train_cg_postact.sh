#!/usr/bin/env bash
# The original post-activated CG script: both convs of every block gated,
# half of the channels in the base path. Extra arguments are passed through.
cd "$(dirname "$0")/.." || exit 1
exec "${DNN_GATING_BUILD_DIR:-build}"/cg-cifar10 -gpu 1 -lr 0.08 -wd 3e-4 -gi 0.0 -gt 0.6 -pt 2 -cg --use_postact --sparse_bp --use_group "$@"
