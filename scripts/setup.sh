#!/usr/bin/env bash
# Installs the Debian packages the project needs (skipping those present),
# then configures and builds a Release build in build/.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  cmake g++ make pkg-config
  libtorch-dev libcli11-dev libspdlog-dev libfmt-dev nlohmann-json3-dev zlib1g-dev
  libgtest-dev libbenchmark-dev
  libgloo-dev            # the headers of c10d's Gloo process group (data-parallel runs)
  clang-format           # the formatting check
  libxml2-utils          # xmllint, which checks the SVG plots
  libpng-dev libjpeg62-turbo-dev libfreetype-dev fonts-dejavu-core  # image folders, pictures of the gates
  libdnnl-dev            # oneDNN's int8 convolution: integer inference of quantized and PG models
  libopenblas0-pthread   # replaces Debian's reference BLAS, ~25x faster GEMM
  dataset-fashion-mnist  # real data that works offline
  python3-torch          # the PyTorch extension's tests (Debian's PyTorch, on the same LibTorch)
)
scripts/install_packages.sh "${packages[@]}"

jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$jobs"
echo "setup: built build/pg-cifar10 and build/cg-cifar10"
