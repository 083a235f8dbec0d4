#!/usr/bin/env bash
# Downloads the CIFAR-10 binary archive, checks its MD5 and unpacks it into
# DIR/cifar-10-batches-bin (DIR defaults to data/, where the trainers look).
# Offline: put a copy of cifar-10-binary.tar.gz into DIR and run this again.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-data}
url=https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz
md5=c32a1d4ab5d03f1284b67883e8d87530
archive="$dir/cifar-10-binary.tar.gz"
mkdir -p "$dir"

if [ -f "$dir/cifar-10-batches-bin/test_batch.bin" ] && [ -f "$dir/cifar-10-batches-bin/data_batch_5.bin" ]; then
  echo "get_cifar10: CIFAR-10 is already in $dir/cifar-10-batches-bin"
  exit 0
fi
if [ ! -f "$archive" ]; then
  echo "get_cifar10: downloading $url"
  if command -v curl >/dev/null; then
    fetch=(curl -fL --retry 2 --connect-timeout 15 -o "$archive.partial" "$url")
  elif command -v wget >/dev/null; then
    fetch=(wget -q --timeout=15 -O "$archive.partial" "$url")
  else
    echo "get_cifar10: error: neither curl nor wget is installed; put cifar-10-binary.tar.gz into $dir/ and run this again" >&2
    exit 1
  fi
  if ! "${fetch[@]}"; then
    rm -f "$archive.partial"
    echo "get_cifar10: error: could not download $url (offline?). Copy cifar-10-binary.tar.gz (MD5 $md5) into $dir/ and run this script again, or train on Fashion-MNIST with --dataset fashion-mnist." >&2
    exit 1
  fi
  mv "$archive.partial" "$archive"
fi
actual=$(md5sum "$archive" | cut -d' ' -f1)
if [ "$actual" != "$md5" ]; then
  echo "get_cifar10: error: $archive has MD5 $actual, expected $md5 (incomplete or wrong file; delete it and run again)" >&2
  exit 1
fi
tar -xzf "$archive" -C "$dir"
echo "get_cifar10: CIFAR-10 unpacked into $dir/cifar-10-batches-bin"
