#!/usr/bin/env bash
# SELinux labelling, ours against libselinux's selabel_lookup over the same
# paths, on one core:
#
#   bench/selabel_bench.sh [-b BUILD] [SOURCE_DIR...]
#
# The policy is the one of the Debian tree scripts/selinux-rootfs.sh builds
# (bookworm + selinux-policy-default, cached).  The labelled tree is that
# tree grown to 100,000 entries (siblings of its files), then each
# SOURCE_DIR (default /usr: this machine's, a real tree of ~160k entries)
# under its own path.  Prints the times and the ratios (libselinux / ours).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=$top/build
if [[ ${1:-} == -b ]]; then
  build=$2
  shift 2
fi
(($# > 0)) || set -- /usr
ninja -C "$build" selabel_bench >/dev/null
root=$("$top/scripts/selinux-rootfs.sh")
bench=$build/bench/selabel_bench
echo "== the policy's own tree, grown to 100000 entries"
taskset -c 0 "$bench" "$root" --min-entries 100000
for src in "$@"; do
  echo
  echo "== $src"
  taskset -c 0 "$bench" "$root" "$src" --min-entries 0
done
