#!/usr/bin/env bash
# Fails when a C++ source of the project differs from what clang-format makes
# of it with the repository's .clang-format (`clang-format -i FILE` fixes one).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v clang-format >/dev/null; then
  if [ -n "${CI:-}" ]; then
    echo "check_format: clang-format is not installed (Debian package clang-format)" >&2
    exit 1
  fi
  echo "check_format: clang-format is not installed (Debian package clang-format): skipped"
  exit 77
fi
find src include tests bench examples python \( -name '*.cpp' -o -name '*.h' \) -print0 |
  xargs -0 clang-format --dry-run --Werror
echo "check_format: every source is formatted"
