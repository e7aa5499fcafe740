#!/usr/bin/env bash
# The fs-verity digest (sha256, 4 KiB blocks) of one large file: ours on every
# core (composefs-info measure-file: fsverity::digest_of_file_parallel) and on
# one core (taskset), against libfsverity's `fsverity digest` (one core), with
# the page cache warm.  The digests must be equal.  Prints the speedup over
# `fsverity digest` and ours against the hashing floor: the file's bytes and
# its Merkle tree (x 128/127) over what `nproc` copies of `openssl speed`
# hash at once now.
#
#   bench/verity_file_bench.sh [-s MIB] [-k random|sparse]...
#
# Default: a 1024 MiB file, random and then sparse (one hole).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
mib=1024
kinds=()
while getopts "s:k:" o; do
  case $o in
    s) mib=$OPTARG ;;
    k) kinds+=("$OPTARG") ;;
    *) exit 2 ;;
  esac
done
((${#kinds[@]})) || kinds=(random sparse)
command -v fsverity >/dev/null || { echo "needs fsverity (fsverity package)" >&2; exit 1; }
cores=$(nproc)

machine
bytes=$((mib << 20))
rate=$(hash_rate sha256 "$cores")
floor=$(calc "$bytes * 128 / 127 / $rate")
echo "sha256 now on $cores cores (openssl): $(calc "$rate / 1048576") MiB/s; floor for $mib MiB: $floor s"
f=$work/file
for kind in "${kinds[@]}"; do
  rm -f "$f"
  case $kind in
    random) head -c "$bytes" /dev/urandom >"$f" ;;
    sparse) truncate -s "$bytes" "$f" ;;
    *) echo "unknown kind $kind" >&2; exit 2 ;;
  esac
  cat "$f" >/dev/null
  theirs=$(fsverity digest --hash-alg=sha256 --block-size=4096 "$f" | cut -d' ' -f1)
  ours=$("$bin/composefs-info" measure-file "$f")
  [[ $theirs == "sha256:$ours" ]] ||
    { echo "error: $kind: fsverity digest $theirs, ours $ours" >&2; exit 1; }
  ref=$(best_of taskset -c 0 fsverity digest "$f")
  one=$(best_of taskset -c 0 "$bin/composefs-info" measure-file "$f")
  all=$(best_of "$bin/composefs-info" measure-file "$f")
  echo
  echo "$kind $mib MiB file, digest $ours (equal to fsverity digest's)"
  for r in "fsverity digest (1 core):$ref" "ours, 1 core:$one" "ours, $cores cores:$all"; do
    printf '  %-26s %6.2f s wall %6.2f s CPU %4s MiB  %6.0f MiB/s\n' "${r%%:*}" "$(secs "${r#*:}")" \
      "$(cpu "${r#*:}")" "$(rss_mib "${r#*:}")" "$(calc "$mib / $(nz "$(secs "${r#*:}")")")"
  done
  printf '  %-40s %5.2fx (1 core: %.2fx)\n' "speedup over fsverity digest:" \
    "$(calc "$(secs "$ref") / $(nz "$(secs "$all")")")" "$(calc "$(secs "$ref") / $(nz "$(secs "$one")")")"
  [[ $kind == random ]] &&
    result "  $kind: ours ($cores cores) / hashing floor" "$(calc "$(secs "$all") / $floor")" 1.3 ""
done
rm -f "$f"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
