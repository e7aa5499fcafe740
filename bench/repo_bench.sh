#!/usr/bin/env bash
# Times cfsctl on a repository against the reference mkcomposefs with a
# digest store, on a large real tree:
#
#   bench/repo_bench.sh [REF_MKCOMPOSEFS] [DIR]
#
#   create-image DIR into an empty repository, then again into the filled
#   one (every object already there: nothing is rewritten), next to
#   `mkcomposefs --digest-store` into an empty and a filled store;
#   fsck and gc, per object.
# DIR defaults to /usr.  The work directory is in ${TMPDIR:-/var/tmp} (a real
# disk, not tmpfs, so copies cost what they cost).  The page cache is warmed
# with one compute-id first; each number is one run.
set -euo pipefail
ref=${1:-}
dir=${2:-/usr}
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${BIN:-$top/build/bin}
cfsctl="$bin/cfsctl"
work=$(mktemp -d "${TMPDIR:-/var/tmp}/cfs-repo-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

secs() {  # secs CMD...: run, print elapsed seconds; fails when CMD fails
  local t0 t1 rc=0
  t0=$(date +%s.%N)
  "$@" >/dev/null || rc=$?
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}'
  return $rc
}
row() { printf '%-44s %8ss%s\n' "$1" "$2" "${3:-}"; }
per() { awk -v t="$1" -v n="$2" 'BEGIN{printf "  (%.1f us per object, %d objects)", n ? t*1e6/n : 0, n}'; }

echo "tree: $dir ($(find "$dir" -xdev -type f 2>/dev/null | wc -l) files, $(du -sxh "$dir" 2>/dev/null | cut -f1))"
"$cfsctl" --no-repo --hash sha256 compute-id --no-propagate-usr-to-root "$dir" >/dev/null

repo="$work/repo"
"$cfsctl" --repo "$repo" init --insecure --algorithm fsverity-sha256-12 >/dev/null
t_empty=$(secs "$cfsctl" --repo "$repo" create-image --no-propagate-usr-to-root "$dir" bench)
objects=$(find "$repo/objects" -type f | wc -l)
t_full=$(secs "$cfsctl" --repo "$repo" create-image --no-propagate-usr-to-root "$dir" bench)
row "cfsctl create-image, empty repository" "$t_empty"
row "cfsctl create-image, filled repository" "$t_full" \
  "$(awk -v a="$t_empty" -v b="$t_full" 'BEGIN{printf "  (%.1fx cheaper)", (b > 0 ? a/b : 0)}')"

if [[ -n $ref ]]; then
  for tool in ref ours; do
    exe=$ref
    [[ $tool = ours ]] && exe="$bin/mkcomposefs"
    store="$work/store-$tool"
    t1=$(secs "$exe" --digest-store="$store" "$dir" "$work/$tool.img")
    t2=$(secs "$exe" --digest-store="$store" "$dir" "$work/$tool.img")
    row "mkcomposefs --digest-store ($tool), empty" "$t1"
    row "mkcomposefs --digest-store ($tool), filled" "$t2"
    if [[ $tool = ref ]]; then  # a baseline for gc's deletions on this disk
      n=$(find "$store" -type f | wc -l)
      t=$(secs rm -rf "$store")
      row "rm -rf of the reference's store" "$t" "$(per "$t" "$n")"
    fi
    rm -rf "$store"
  done
fi

t_fsck=$(secs "$cfsctl" --repo "$repo" fsck)
row "cfsctl fsck" "$t_fsck" "$(per "$t_fsck" "$objects")"
if t_gc=$(secs "$cfsctl" --repo "$repo" gc 2>/dev/null); then
  row "cfsctl gc, everything referenced" "$t_gc" "$(per "$t_gc" "$objects")"
else
  row "cfsctl gc, everything referenced" "n/a" "  (gc through images needs the EROFS reader)"
fi
rm -rf "$repo/images/refs"
t_gc=$(secs "$cfsctl" --repo "$repo" gc)
row "cfsctl gc, nothing referenced (deletes all)" "$t_gc" "$(per "$t_gc" "$objects")"
