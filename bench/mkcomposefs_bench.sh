#!/usr/bin/env bash
# Times our mkcomposefs against a reference mkcomposefs, side by side in one
# run, and prints ratios (reference time / our time: >1 means we are faster).
#
#   bench/mkcomposefs_bench.sh REF_MKCOMPOSEFS [DIR] [DUMP]
#
# DIR  (default /usr): a large real directory, built with --print-digest-only
#      (cache warm, then digests only) and with a fresh --digest-store.
# DUMP (default: the reference's dump of DIR's image): dump -> image.
# Also times our fs-verity digest of a 1 GiB file against `fsverity digest`.
# Each measurement takes the best of RUNS (default 3) runs, alternating tools.
set -euo pipefail
ref=${1:?usage: $0 REF_MKCOMPOSEFS [DIR] [DUMP]}
dir=${2:-/usr}
dump=${3:-}
runs=${RUNS:-3}
top=$(cd "$(dirname "$0")/.." && pwd)
ours=${OURS:-$top/build/bin/mkcomposefs}
work=$(mktemp -d "${TMPDIR:-/var/tmp}/cfs-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

# best_of CMD...: prints "seconds max_rss_kib" of the fastest of $runs runs.
best_of() {
  local best="" rss="" t
  for ((i = 0; i < runs; i++)); do
    [[ -n ${BEFORE:-} ]] && eval "$BEFORE"
    /usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null
    read -r t r <"$work/time"
    if [[ -z $best ]] || awk "BEGIN{exit !($t < $best)}"; then best=$t rss=$r; fi
  done
  echo "$best $rss"
}

row() {  # name ref_result our_result
  read -r rt rm <<<"$2"
  read -r ot om <<<"$3"
  awk -v n="$1" -v rt="$rt" -v ot="$ot" -v rm="$rm" -v om="$om" 'BEGIN{
    printf "%-34s ref %7.2fs %6.0f MiB | ours %7.2fs %6.0f MiB | speedup %5.2fx  mem %4.2fx\n",
      n, rt, rm/1024, ot, om/1024, (ot>0? rt/ot : 0), (om>0? rm/om : 0)}'
}

echo "reference: $ref"
echo "ours:      $ours"
echo "directory: $dir ($(find "$dir" -xdev | wc -l) entries, $(du -sh --apparent-size "$dir" 2>/dev/null | cut -f1))"

if [[ -z $dump ]]; then
  dump=$work/tree.dump
  info=$(dirname "$ref")/composefs-info
  "$ref" "$dir" "$work/ref.img" >/dev/null
  "$info" dump "$work/ref.img" >"$dump"
  rm -f "$work/ref.img"
fi
echo "dump:      $dump ($(wc -l <"$dump") entries)"
echo

r=$(best_of "$ref" --from-file "$dump" "$work/a.img")
o=$(best_of "$ours" --from-file "$dump" "$work/b.img")
row "dump -> image" "$r" "$o"
cmp -s "$work/a.img" "$work/b.img" || echo "  WARNING: images differ"

# Warm the page cache once so both tools hash from memory.
find "$dir" -xdev -type f -print0 2>/dev/null | xargs -0 cat >/dev/null 2>&1 || true
r=$(best_of "$ref" --print-digest-only "$dir")
o=$(best_of "$ours" --print-digest-only "$dir")
row "directory, digest only" "$r" "$o"
bytes=$(find "$dir" -xdev -type f -size +0 -printf '%s\n' 2>/dev/null | awk '{s+=$1} END{printf "%.0f\n", s}')
echo "  bytes hashed: $bytes"

BEFORE="rm -rf '$work/store'; sync"
r=$(best_of "$ref" --digest-store="$work/store" "$dir" "$work/a.img")
o=$(best_of "$ours" --digest-store="$work/store" "$dir" "$work/b.img")
unset BEFORE
row "directory, fresh digest store" "$r" "$o"
rm -rf "$work/store"

if command -v fsverity >/dev/null; then
  head -c $((1 << 30)) /dev/urandom >"$work/1g"
  r=$(best_of fsverity digest "$work/1g")
  o=$(best_of taskset -c 0 "$top/build/bin/composefs-info" measure-file "$work/1g")
  row "fs-verity digest of 1 GiB (1 core)" "$r" "$o"
  # The Merkle tree's data blocks on every core (digest_of_file_parallel).
  o=$(best_of "$top/build/bin/composefs-info" measure-file "$work/1g")
  row "fs-verity digest of 1 GiB ($(nproc) cores)" "$r" "$o"
  cmp <(fsverity digest "$work/1g" | cut -d' ' -f1 | sed 's/^sha256://') \
      <("$top/build/bin/composefs-info" measure-file "$work/1g") ||
    { echo "error: the digests of the 1 GiB file differ" >&2; exit 1; }
fi
