#!/bin/bash
# Times composefs-info (ours against the C reference's) on images:
#   bench/composefs-info.sh REFERENCE_TOOLS_DIR IMAGE...
# For each image and command (dump, ls, objects), prints the best of 5 runs'
# wall time for each implementation, and checks that the outputs are equal.
set -euo pipefail
ref=${1:?usage: $0 REFERENCE_TOOLS_DIR IMAGE...}
shift
here=$(cd "$(dirname "$0")" && pwd)
ours=${CFS_BIN:-$here/../build/bin}
best() {
  local b=999999 t s e
  for _ in 1 2 3 4 5; do
    s=$(date +%s%N)
    "$@" >/dev/null
    e=$(date +%s%N)
    t=$(((e - s) / 1000000))
    [ "$t" -lt "$b" ] && b=$t
  done
  echo "$b"
}
printf '%-40s %-8s %10s %10s\n' image command 'ref ms' 'ours ms'
for img in "$@"; do
  for cmd in dump ls objects; do
    cmp -s <("$ref/composefs-info" "$cmd" "$img") <("$ours/composefs-info" "$cmd" "$img") ||
      echo "warning: outputs differ for $cmd $img" >&2
    printf '%-40s %-8s %10s %10s\n' "$(basename "$img")" "$cmd" \
      "$(best "$ref/composefs-info" "$cmd" "$img")" "$(best "$ours/composefs-info" "$cmd" "$img")"
  done
done
