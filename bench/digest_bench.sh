#!/usr/bin/env bash
# Directory digests against the machine's hashing limit (issue 15: within
# 1.3x).  With the page cache warm, times
#   mkcomposefs --print-digest-only DIR
#   cfsctl --no-repo compute-id DIR
#   cfsctl create-image DIR into a repository that already holds every object
#     (so it hashes and links but writes no object: store_bench.sh times a
#     fresh store)
# and compares each with the floor, measured in the same run:
#   floor = bytes hashed / (cores x one core's SHA-256 rate)   [openssl speed]
#         + the metadata syscalls (bench/read_floor --metadata-only: lstat
#           and the xattrs of every entry)
# and, to show what reading costs, with a second floor: the hashing plus
# bench/read_floor in full (the walk, then every file opened, read(2) to its
# end and closed, on every core; no hashing).
# where bytes hashed is every file's 4 KiB blocks plus its Merkle tree's
# levels (x 128/127).  The ratio printed is time / floor.
#
#   bench/digest_bench.sh [-d DIR] [REF_MKCOMPOSEFS]
#
# DIR defaults to the Debian tree of scripts/selinux-rootfs.sh when it is
# built (240 MB, 11k entries), else /usr/share.  With REF_MKCOMPOSEFS, the C
# reference's --print-digest-only is timed too and its digest compared.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
dir_args "$@"

machine
entries=$(find "$dir" -xdev | wc -l)
# Blocks of every non-empty file, then the Merkle tree over them: each level
# is 1/128 of the one below, so the total is the data x 128/127.
read -r bytes hashed < <(find "$dir" -xdev -type f -size +0 -printf '%s\n' 2>/dev/null |
  awk '{s += $1; b += int(($1 + 4095) / 4096)} END{printf "%.0f %.0f\n", s, b * 4096 * 128 / 127}')
echo "directory: $dir ($entries entries, $bytes bytes in files, $hashed bytes to hash)"

# Warm the page cache: the goal is about hashing, not the disk.
find "$dir" -xdev -type f -print0 2>/dev/null | xargs -0 cat >/dev/null 2>&1 || true

cores=$(nproc)
floor_tool=$build/bench/read_floor
[[ -x $floor_tool ]] || { echo "needs $floor_tool (cmake --build $build --target read_floor)" >&2; exit 1; }
walk=$(best_of "$floor_tool" --metadata-only "$dir")
reads=$(best_of "$floor_tool" "$dir")
declare -A now cpu1 floor cfloor rfloor
for alg in sha256 sha512; do
  cpu1[$alg]=$(hash_rate $alg)
  now[$alg]=$(hash_rate $alg "$cores")
  floor[$alg]=$(calc "$hashed / ${now[$alg]} + $(secs "$walk")")
  cfloor[$alg]=$(calc "$hashed / ${cpu1[$alg]} + $(cpu "$walk")")
  rfloor[$alg]=$(calc "$hashed / ${now[$alg]} + $(secs "$reads")")
  echo "$alg (openssl): 1 core $(calc "${cpu1[$alg]} / 1048576") MiB/s of CPU time;" \
    "$cores at once now $(calc "${now[$alg]} / 1048576") MiB/s"
  echo "  floor: ${floor[$alg]} s wall (hashing now on $cores cores + walk $(secs "$walk") s)," \
    "${cfloor[$alg]} s CPU (hashing + walk $(cpu "$walk") s)"
  echo "  read floor: ${rfloor[$alg]} s wall (hashing + the walk and read(2) of every file:" \
    "$(secs "$reads") s wall, $(cpu "$reads") s CPU)"
done
echo

mk=$(best_of "$bin/mkcomposefs" --print-digest-only "$dir")
id=$(best_of "$bin/cfsctl" --no-repo --hash sha256 compute-id --no-propagate-usr-to-root "$dir")
id5=$(best_of "$bin/cfsctl" --no-repo --hash sha512 compute-id --no-propagate-usr-to-root "$dir")
repo=$work/repo
"$bin/cfsctl" --repo "$repo" init --insecure --algorithm fsverity-sha256-12 >/dev/null
"$bin/cfsctl" --repo "$repo" create-image --no-propagate-usr-to-root "$dir" warm >/dev/null
ci=$(best_of "$bin/cfsctl" --repo "$repo" create-image --no-propagate-usr-to-root "$dir" bench)

row() {  # name result
  printf '%-46s %6.2f s wall %6.2f s CPU %4s MiB  %5.0f MiB/s of files\n' "$1" "$(secs "$2")" \
    "$(cpu "$2")" "$(rss_mib "$2")" "$(calc "$bytes / 1048576 / $(secs "$2")")"
}
row "mkcomposefs --print-digest-only" "$mk"
row "cfsctl compute-id (sha256)" "$id"
row "cfsctl compute-id (sha512, the default)" "$id5"
row "cfsctl create-image (sha256, objects stored)" "$ci"
if [[ -n $ref ]]; then
  rf=$(best_of "$ref" --print-digest-only "$dir")
  row "reference mkcomposefs --print-digest-only" "$rf"
  [[ $("$ref" --print-digest-only "$dir") == $("$bin/mkcomposefs" --print-digest-only "$dir") ]] ||
    { echo "error: the reference's digest differs from ours" >&2; exit 1; }
  echo "  reference / ours: $(calc "$(secs "$rf") / $(secs "$mk")")x (same digest)"
else
  echo "reference mkcomposefs: skipped (no reference binary)"
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
# The goal is on wall-clock time; the CPU ratio (CPU time over the CPU
# floor) is the part of it that the machine's load does not change.
goal_row() {  # name result alg
  result "$1" "$(calc "$(secs "$2") / ${floor[$3]}")" $goal \
    "(CPU: $(calc "$(cpu "$2") / ${cfloor[$3]}")x of the CPU floor; $(calc "$(secs "$2") / ${rfloor[$3]}")x of the read floor)"
}
goal_row "mkcomposefs --print-digest-only / floor" "$mk" sha256
goal_row "cfsctl compute-id sha256 / floor" "$id" sha256
goal_row "cfsctl compute-id sha512 / sha512 floor" "$id5" sha512
goal_row "cfsctl create-image (stored) / floor" "$ci" sha256
