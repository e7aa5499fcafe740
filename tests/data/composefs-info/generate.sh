#!/bin/bash
# Regenerates the expected outputs in this directory with the C reference's
# tools (nothing here is produced by composefs-cpp):
#   tests/data/composefs-info/generate.sh /path/to/reference/build/tools
# For each vector NAME in tests/data/composefs (should-fail-* excepted), the
# reference's mkcomposefs builds the image exactly as the reference test suite
# does (CFS_PARSE_STRICT except for the three non-strict vectors, and
# --min-version/--max-version from NAME.version), then its composefs-info
# prints NAME.dump, NAME.ls and NAME.objects; for the big .gz vectors only
# the sha256 of each output is kept (NAME.dump.sha256 etc.).  special.filtered.dump is
#   composefs-info --filter=chardev --filter=inline --filter=whiteout dump
# of special.dump's image (the reference's own test-dump-filtered.sh).
set -euo pipefail
ref=${1:?usage: $0 REFERENCE_TOOLS_DIR}
here=$(cd "$(dirname "$0")" && pwd)
vectors=$here/../composefs
tmp=$(mktemp -d)
trap 'rm -rf -- "$tmp"' EXIT
for f in "$vectors"/*.dump "$vectors"/*.dump.gz; do
  n=$(basename "$f")
  case $n in should-fail-*) continue ;; esac
  args=()
  if [ -f "$f.version" ]; then
    v=$(cat "$f.version")
    args=(--min-version="$v" --max-version="$v")
  fi
  case $n in
    no-newline.dump | longlink.dump | honggfuzz-longlink-unterminated.dump) unset CFS_PARSE_STRICT ;;
    *) export CFS_PARSE_STRICT=1 ;;
  esac
  if [[ $n == *.gz ]]; then
    zcat "$f" | "$ref/mkcomposefs" "${args[@]}" --from-file - "$tmp/image"
    base=${n%.gz}
    for cmd in dump ls objects; do
      "$ref/composefs-info" "$cmd" "$tmp/image" | sha256sum | cut -d' ' -f1 \
        >"$here/${base%.dump}.$cmd.sha256"
    done
  else
    "$ref/mkcomposefs" "${args[@]}" --from-file "$f" "$tmp/image"
    for cmd in dump ls objects; do
      "$ref/composefs-info" "$cmd" "$tmp/image" >"$here/${n%.dump}.$cmd"
    done
  fi
  # The image itself is checked against the vector's .sha256 by our tests.
  echo "$(sha256sum <"$tmp/image" | cut -d' ' -f1)  $n" >>"$tmp/sums"
done
unset CFS_PARSE_STRICT
"$ref/mkcomposefs" --from-file "$vectors/special.dump" "$tmp/image"
"$ref/composefs-info" --filter=chardev --filter=inline --filter=whiteout dump "$tmp/image" \
  >"$here/special.filtered.dump"
cat "$tmp/sums"
