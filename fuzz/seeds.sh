#!/bin/bash
# Writes seed inputs for a fuzz target into OUTDIR:
#   fuzz/seeds.sh image_reader|dump_parser OUTDIR [MKCOMPOSEFS]
# image_reader: the images of the reference vectors (the small ones, built by
# MKCOMPOSEFS, default build/bin/mkcomposefs), in format 2 too where it can
# hold them, composefs-rs's two trees in format 2, and erofs-utils images of a
# small tree given a composefs header (other inode and directory layouts).
# dump_parser: the reference vectors' dump files.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
target=${1:?usage: $0 image_reader|dump_parser OUTDIR [MKCOMPOSEFS]}
out=${2:?usage: $0 image_reader|dump_parser OUTDIR [MKCOMPOSEFS]}
mkcomposefs=${3:-$root/build/bin/mkcomposefs}
vectors=$root/tests/data/composefs
mkdir -p "$out"
if [ "$target" = dump_parser ]; then
  cp "$vectors"/*.dump "$out/"
  exit 0
fi
for d in "$vectors"/*.dump; do
  case $(basename "$d") in should-fail-*) continue ;; esac
  "$mkcomposefs" --from-file "$d" "$out/$(basename "$d" .dump).cfs"
done
# Format 2 (composefs-rs's layout): the vectors it can hold, composefs-rs's trees.
for d in "$vectors"/*.dump "$root"/tests/data/composefs-rs/*.dump; do
  case $(basename "$d") in should-fail-*) continue ;; esac
  f=$out/$(basename "$d" .dump)-v2.cfs
  "$mkcomposefs" --min-version=2 --from-file "$d" "$f" 2>/dev/null || rm -f "$f"
done
if command -v mkfs.erofs >/dev/null; then
  src=$(mktemp -d)
  trap 'rm -rf -- "$src"' EXIT
  mkdir -p "$src/dir/sub"
  echo hello >"$src/file"
  head -c 3000 /dev/zero | tr '\0' x >"$src/dir/mid"
  ln -s file "$src/link"
  ln "$src/file" "$src/dir/hard"
  mkfifo "$src/fifo"
  for i in $(seq 1 300); do : >"$src/dir/sub/entry-$i"; done
  touch -d @1000000000 "$src" "$src/file" "$src/dir" "$src/dir/sub"
  for opt in "" -Enoinline_data -Eforce-inode-extended --chunksize=4096; do
    f=$out/mkfs.erofs$opt.cfs
    mkfs.erofs --quiet -T1000000000 -U 00000000-0000-0000-0000-000000000000 $opt "$f" "$src" \
      >/dev/null
    # erofs-utils leaves the first 1024 bytes zero; add a composefs header.
    printf '\x9a\x62\x78\xd0\x01\x00\x00\x00' | dd of="$f" conv=notrunc status=none
  done
fi
find "$out" -name '*.cfs' -size +64k -delete
