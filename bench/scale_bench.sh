#!/usr/bin/env bash
# How time and peak memory grow with the number of entries (issue 15's
# scaling goal: 1M entries within 11x of 100k).  For each size N it times
#   dump -> image        mkcomposefs --from-file of a generated dump
#   reader               composefs-info ls of that image
#   create-image         cfsctl create-image of a generated tree of N entries
#                        into an empty repository (--insecure: no fs-verity here)
#   fsck                 cfsctl fsck of that repository
#   gc                   cfsctl gc with the image referenced (nothing deleted)
# and two floors on the same filesystem, what the kernel alone costs at N:
#   file-floor           bench/write_floor: as many files of the objects'
#                        sizes written from memory and linked into xx/ (no
#                        reading, no hashing), next to create-image
#   read-floor           bench/read_floor of objects/: every object opened
#                        and read on every core (no hashing), next to fsck
# and prints per-stage ratios between consecutive sizes, all from this one run
# (the machine is shared: ratios, not absolute times, are the result).
#
#   bench/scale_bench.sh [-b BUILD] [--big] [SIZES...]
#
# Default sizes 10000 100000; --big adds 1000000 (a 1M-file tree: ~4 GiB of
# blocks and a few minutes).  Work directory in ${TMPDIR:-/var/tmp} (a disk;
# a freshly made filesystem gives create-image and fsck steadier numbers).
# RUNS (default 3): the best of that many runs per stage, create-image
# excepted (one run into an empty repository).
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"  # top, build, bin, work, runs, measure, best_of
sizes=()
while (($#)); do
  case $1 in
    -b) build=$2; shift 2 ;;
    --big) big=1; shift ;;
    *) sizes+=("$1"); shift ;;
  esac
done
((${#sizes[@]})) || sizes=(10000 100000)
[[ -n ${big:-} ]] && sizes+=(1000000)
bin=$build/bin
gen="python3 $top/bench/gen_scale.py"

stages=(dump-image reader create-image file-floor fsck read-floor gc)
declare -A T M

# record STAGE N RESULT: the seconds and peak RSS (KiB) of a measure or
# best_of result.  The stages that can be repeated take the best of RUNS:
# single runs at 1M entries varied by half from one run to the next, which
# swamped the ratio being measured; create-image into an empty repository
# runs once.
# measure fails for a failed command; anything else that is not its three
# numbers stops the script here too.
record() {
  [[ $3 =~ ^[0-9.]+\ [0-9]+\ [0-9.]+$ ]] || { echo "error: $1 at $2 entries failed: $3" >&2; exit 1; }
  T[$1,$2]=$(secs "$3")
  M[$1,$2]=$(awk -v r="$3" 'BEGIN{split(r, f, " "); print f[2]}')
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores"
for n in "${sizes[@]}"; do
  $gen dump "$n" >"$work/in.dump"
  record dump-image "$n" "$(best_of "$bin/mkcomposefs" --from-file "$work/in.dump" "$work/a.img")"
  record reader "$n" "$(best_of "$bin/composefs-info" ls "$work/a.img")"
  lines=$("$bin/composefs-info" ls "$work/a.img" | wc -l)
  [[ $lines -eq $n ]] || { echo "error: ls printed $lines entries, not $n" >&2; exit 1; }
  rm -f "$work/in.dump" "$work/a.img"

  $gen tree "$n" "$work/tree"
  repo=$work/repo
  "$bin/cfsctl" --repo "$repo" init --insecure >/dev/null
  record create-image "$n" "$(measure "$bin/cfsctl" --repo "$repo" create-image \
    --no-propagate-usr-to-root "$work/tree" bench)"
  record fsck "$n" "$(best_of "$bin/cfsctl" --repo "$repo" fsck)"
  record gc "$n" "$(best_of "$bin/cfsctl" --repo "$repo" gc)"
  find "$repo/objects" -type f -printf '%s\n' >"$work/sizes"
  objects=$(wc -l <"$work/sizes")
  [[ $objects -ge $((n * 9 / 10)) ]] || { echo "error: $objects objects for $n entries" >&2; exit 1; }
  record read-floor "$n" "$(best_of "$build/bench/read_floor" "$repo/objects")"
  # After the repository, beside it: a removal between the two would slow
  # the second's file creation (ext4 skipping recently freed inodes).
  record file-floor "$n" "$(measure "$build/bench/write_floor" "$work/sizes" "$work/wf")"
  rm -rf "$work/tree" "$repo" "$work/wf" "$work/sizes"
  sync
  printf '%8d entries done (load %s)\n' "$n" "$(cut -d' ' -f1 /proc/loadavg)"
done
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"
echo

printf '%-13s' stage
for n in "${sizes[@]}"; do printf ' | %17s' "$n"; done
for ((i = 1; i < ${#sizes[@]}; i++)); do printf ' | %9s' "$((sizes[i] / sizes[i - 1]))x N"; done
echo
for s in "${stages[@]}"; do
  printf '%-13s' "$s"
  for n in "${sizes[@]}"; do
    awk -v t="${T[$s,$n]}" -v m="${M[$s,$n]}" 'BEGIN{printf " | %6.2fs %6.1f MiB", t, m/1024}'
  done
  for ((i = 1; i < ${#sizes[@]}; i++)); do
    a=${sizes[i - 1]} b=${sizes[i]}
    awk -v ta="${T[$s,$a]}" -v tb="${T[$s,$b]}" -v ma="${M[$s,$a]}" -v mb="${M[$s,$b]}" \
      'BEGIN{printf " | t%5.1fx m%4.1fx", (ta > 0 ? tb/ta : 0), (ma > 0 ? mb/ma : 0)}'
  done
  echo
done
echo "(ratios: time and peak memory of a size over the previous size; linear growth is the N ratio)"
for pair in create-image:file-floor fsck:read-floor; do
  printf '%-28s' "${pair%%:*} / ${pair#*:}:"
  for n in "${sizes[@]}"; do
    awk -v a="${T[${pair%%:*},$n]}" -v b="${T[${pair#*:},$n]}" -v n="$n" \
      'BEGIN{printf "  %.2fx at %d", a / (b > 0.01 ? b : 0.01), n}'
  done
  echo
done
