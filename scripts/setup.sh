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
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
    echo "setup: apt-get update failed; trying the package lists already present" >&2
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$jobs"
echo "setup: built build/pg-cifar10 and build/cg-cifar10"
