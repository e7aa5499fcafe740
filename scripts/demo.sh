#!/usr/bin/env bash
# The main job on the bundled sample tree: build a composefs image and its
# object store from demo/rootfs and print the image's fs-verity digest.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
[[ $build = /* ]] || build="$top/$build"
bin="$build/bin"
work="$build/demo"
rm -rf "$work"
mkdir -p "$work"

# Git does not keep mtimes: pin them so the digest is the same on every clone.
cp -a "$top/demo/rootfs" "$work/rootfs"
find "$work/rootfs" -exec touch -h -d '2024-01-01 00:00:00 UTC' {} +

echo "== mkcomposefs: image + object store from demo/rootfs"
digest=$("$bin/mkcomposefs" --digest-store="$work/objects" --print-digest \
  "$work/rootfs" "$work/demo.cfs")
echo "image:   $work/demo.cfs ($(stat -c %s "$work/demo.cfs") bytes)"
echo "objects: $(find "$work/objects" -type f | wc -l) in $work/objects"
echo "fs-verity digest of the image (what composefs=<digest> on a kernel command line names):"
echo "$digest"
