#!/usr/bin/env bash
# Run on a Debian machine (this project's own): gathers what a GPU machine
# with only python3 + a CUDA PyTorch wheel, cmake and g++ lacks to build and
# check this project, into one directory to carry there with the tree:
#
#   DIR/prefix/        CLI11, spdlog, fmt, nlohmann-json, GoogleTest's sources
#                      and zlib's header: Debian packages fetched with
#                      `apt-get download` and unpacked with `dpkg -x` (no root,
#                      nothing installed); fmt and spdlog are used header-only
#   DIR/fashion-mnist/ the Fashion-MNIST IDX files (Debian's dataset-fashion-mnist)
#   DIR/golden/        the golden vectors (../shared/golden), when present
#
# Usage: scripts/gpu_deps.sh [DIR]   (default gpu-deps/, ignored by git)
# About 6 MB of unpacked packages (without their documentation, manuals and
# GoogleMock), 30 MB of Fashion-MNIST and 38 MB of golden vectors.
# DNN_GATING_FASHION_DIR and DNN_GATING_GOLDEN_DIR say where to copy those two from.
# scripts/gpu_check.sh finds DIR by itself (or DNN_GATING_GPU_DEPS=DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-gpu-deps}
fashion=${DNN_GATING_FASHION_DIR:-/usr/share/datasets/fashion-mnist}
golden=${DNN_GATING_GOLDEN_DIR:-../shared/golden}

# The shared-library packages come along only because the -dev packages'
# CMake files name their files; nothing links them (header-only).
runtime_of() {
  apt-cache depends "$1" | awk -v want="$2" '$1 == "Depends:" && $2 ~ want { print $2; exit }'
}
packages=(libcli11-dev libspdlog-dev libfmt-dev nlohmann-json3-dev googletest zlib1g-dev)
packages+=("$(runtime_of libspdlog-dev '^libspdlog[0-9]')" "$(runtime_of libfmt-dev '^libfmt[0-9]')")

download=$(mktemp -d)
trap 'rm -rf "$download"' EXIT
echo "gpu_deps: fetching ${packages[*]}"
if ! (cd "$download" && apt-get download "${packages[@]}" >/dev/null); then
  echo "gpu_deps: apt-get download failed (no package lists or no mirror?); run apt-get update" >&2
  exit 1
fi
rm -rf "$dest/prefix"
mkdir -p "$dest/prefix"
for deb in "$download"/*.deb; do dpkg -x "$deb" "$dest/prefix"; done
# Keep headers, CMake package files, GoogleTest's sources and the libraries
# the CMake files name; drop documentation, manuals and GoogleMock.
rm -rf "$dest/prefix/usr/share/doc" "$dest/prefix/usr/share/man" \
  "$dest/prefix/usr/src/googletest/googlemock" "$dest/prefix/usr/src/googletest/docs"

if [ -d "$fashion" ]; then
  mkdir -p "$dest/fashion-mnist"
  cp "$fashion"/*-ubyte* "$dest/fashion-mnist/"
else
  echo "gpu_deps: no Fashion-MNIST in $fashion (apt-get install dataset-fashion-mnist)" >&2
fi
if [ -d "$golden" ]; then
  mkdir -p "$dest/golden"
  cp "$golden"/*.pt "$dest/golden/"
else
  echo "gpu_deps: no golden vectors in $golden: the check cannot run the golden cases" >&2
fi
du -sh "$dest"/* | sed 's/^/gpu_deps: /'
