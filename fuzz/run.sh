#!/bin/bash
# Runs one libFuzzer target for a while:  fuzz/run.sh TARGET SECONDS [libFuzzer args...]
# TARGET: image_reader, dump_parser, oci_layer, selinux_policy, kargs, pe_reader or bls.
# Builds build-fuzz/ with clang if needed
# (CFS_FUZZ_BUILD overrides the directory).  The growing corpus is kept in
# fuzz/corpus-run/TARGET, crashes land in fuzz/artifacts/TARGET/ (both ignored
# by git); turn each crash into a fix and a file in fuzz/regressions/TARGET/.
# The per-input timeout is 60 s (FUZZ_TIMEOUT): inputs take milliseconds, but
# a niced fuzzer on a busy machine can be starved for seconds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
if [ $# -lt 2 ]; then
  echo "usage: $0 image_reader|dump_parser|oci_layer|selinux_policy|kargs|pe_reader|bls SECONDS [libFuzzer args...]" >&2
  exit 2
fi
target=$1 secs=$2
shift 2
case $target in
  image_reader | dump_parser | oci_layer | selinux_policy | kargs | pe_reader | bls) ;;
  *) echo "unknown target '$target'" >&2; exit 2 ;;
esac
bdir=${CFS_FUZZ_BUILD:-$root/build-fuzz}
if [ ! -f "$bdir/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$bdir" -G Ninja -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCFS_FUZZ=ON -DCFS_BUILD_TESTS=OFF
fi
ninja -C "$bdir" -j "${JOBS:-2}" "${target}_fuzz" mkcomposefs

corpus=$here/corpus-run/$target
artifacts=$here/artifacts/$target
seeds=$(mktemp -d)
trap 'rm -rf -- "$seeds"' EXIT
mkdir -p "$corpus" "$artifacts" "$here/regressions/$target"

# Only image_reader and dump_parser get generated seeds; the others' seeds are
# their committed corpora.
if [ "$target" = image_reader ] || [ "$target" = dump_parser ]; then "$here/seeds.sh" "$target" "$seeds" "$bdir/bin/mkcomposefs"; fi
case $target in
  dump_parser) max_len=16384 ;;
  selinux_policy) max_len=8192 ;;  # the target ignores longer inputs
  bls) max_len=4096 ;;
  # pe_reader: also Debian's stubs and systemd-boot (about 100 KiB each) as seeds.
  pe_reader)
    max_len=131072
    cp /usr/lib/systemd/boot/efi/*.efi* "$seeds/" 2>/dev/null || true
    ;;
  *) max_len=65536 ;;
esac

"$bdir/fuzz/${target}_fuzz" -max_total_time="$secs" -max_len="$max_len" -timeout="${FUZZ_TIMEOUT:-60}" \
  -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts/" \
  "$@" "$corpus" "$here/corpus/$target" "$here/regressions/$target" "$seeds"
