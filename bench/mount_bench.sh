#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Mount benchmark: time to mount + unmount a composefs image of a large tree,
# and cold-cache (drop_caches) find+stat of every entry and read of every
# file through the mount against the same on the source directory.  Given
# the C reference's mount.composefs, times it on the same image too.
#
#   bench/mount_bench.sh [-b BUILD] [-s SOURCE] [-n ITERATIONS] [-k] [REF_MOUNT_COMPOSEFS]
#
# Needs root (mounting, dropping caches).  Dropping caches slows everything
# else on the machine for a moment.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build="$top/build"
src=/usr/share
iters=20
keep=0
usage() {
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}
while getopts "b:s:n:kh" opt; do
  case $opt in
    b) build=$OPTARG ;;
    s) src=$OPTARG ;;
    n) iters=$OPTARG ;;
    k) keep=1 ;;
    h) usage 0 ;;
    *) usage 1 ;;
  esac
done
shift $((OPTIND - 1))
ref=${1:-}
[[ $build = /* ]] || build="$PWD/$build"
ours="$build/bin/mount.composefs"
mkcfs="$build/bin/mkcomposefs"

die() { echo "mount_bench: $*" >&2; exit 1; }
[[ $EUID -eq 0 ]] || die "needs root (mounting and dropping caches)"
[[ -x $ours && -x $mkcfs ]] || die "build first: $ours"
[[ -z $ref || -x $ref ]] || die "not an executable: $ref"
[[ -d $src ]] || die "no such directory: $src"

work=$(mktemp -d /var/tmp/cfs-mount-bench.XXXXXX)
mnt="$work/mnt"
mkdir "$mnt"
cleanup() {
  if mountpoint -q "$mnt"; then umount "$mnt"; fi
  if ((keep)); then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

now_ns() { date +%s%N; }
ms_since() { echo $((($(now_ns) - $1) / 1000000)); }
cold() {
  sync
  echo 3 >/proc/sys/vm/drop_caches
}
# Every entry stat()ed: find's %s/%m/%U/%T need the inode.
stat_all() { find "$1" -printf '%s %m %U %G %T@\n' >/dev/null; }
read_all() { find "$1" -type f -print0 | xargs -0 -r cat >/dev/null; }

echo "== image of $src"
t=$(now_ns)
"$mkcfs" --digest-store="$work/objects" "$src" "$work/image.cfs"
entries=$(find "$src" | wc -l)
printf 'mkcomposefs: %d ms; %d entries, %s, image %s\n' "$(ms_since "$t")" "$entries" \
  "$(du -sh "$src" 2>/dev/null | cut -f1)" "$(du -h "$work/image.cfs" | cut -f1)"

mount_with() { "$1" "$work/image.cfs" "$mnt" -o "basedir=$work/objects"; }

# Mean microseconds for one mount + umount.
mount_cycle() {
  local tool=$1 t
  mount_with "$tool" && umount "$mnt"  # warm the binary and the image
  t=$(now_ns)
  for ((i = 0; i < iters; i++)); do
    mount_with "$tool"
    umount "$mnt"
  done
  echo $((($(now_ns) - t) / iters / 1000))
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

echo "== mount + umount, mean of $iters"
ours_us=$(mount_cycle "$ours")
printf '%-28s %10s us\n' "ours" "$ours_us"
if [[ -n $ref ]]; then
  ref_us=$(mount_cycle "$ref")
  printf '%-28s %10s us   ours/ref %s\n' "reference" "$ref_us" "$(ratio "$ours_us" "$ref_us")"
fi

# One cold-cache run of "$2 DIR" through a mount made by tool $1 (or on the
# source when $1 is empty); prints milliseconds.
cold_run() {
  local tool=$1 what=$2 dir=$src t ms
  if [[ -n $tool ]]; then
    mount_with "$tool"
    dir=$mnt
  fi
  cold
  t=$(now_ns)
  "$what" "$dir"
  ms=$(ms_since "$t")
  if [[ -n $tool ]]; then umount "$mnt"; fi
  echo "$ms"
}

for what in stat_all read_all; do
  case $what in
    stat_all) echo "== cold cache: find + stat of every entry" ;;
    read_all) echo "== cold cache: read every file" ;;
  esac
  src_ms=$(cold_run "" "$what")
  ours_ms=$(cold_run "$ours" "$what")
  printf '%-28s %10s ms\n' "source directory" "$src_ms"
  printf '%-28s %10s ms   mount/source %s\n' "mount (ours)" "$ours_ms" \
    "$(ratio "$ours_ms" "$src_ms")"
  if [[ -n $ref ]]; then
    ref_ms=$(cold_run "$ref" "$what")
    printf '%-28s %10s ms   mount/source %s   ours/ref %s\n' "mount (reference)" "$ref_ms" \
      "$(ratio "$ref_ms" "$src_ms")" "$(ratio "$ours_ms" "$ref_ms")"
  fi
done
