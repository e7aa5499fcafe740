#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make cross-aarch64: builds the image modules (CFS_CORE_ONLY: base, fsverity,
# tree, dump, erofs, scan), mkcomposefs, composefs-info and composefs-dump for
# aarch64 with Debian's cross compiler, and runs their tests (fs-verity
# digests against libfsverity, dumps, the EROFS reference vectors) under
# qemu-user.  The arm64 libraries come from Debian packages extracted by
# scripts/debs.sh --arch arm64 into BUILD/sysroot; the host's dpkg
# architectures are never touched, and no binfmt registration is needed.
#
#   scripts/cross-aarch64.sh [BUILD]     (default build-aarch64)
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
build=$(realpath -m "${1:-build-aarch64}")
suite=${CROSS_SUITE:-bookworm}
jobs=${JOBS:-$(nproc)}
die() { echo "cross-aarch64: $*" >&2; exit 1; }

for t in aarch64-linux-gnu-g++ qemu-aarch64; do
  command -v "$t" >/dev/null ||
    die "$t missing: run 'make deps' as root (g++-aarch64-linux-gnu, qemu-user)"
done

# The sysroot: what the image modules and their tests link (the compiler's
# own libc and libstdc++ are in /usr/aarch64-linux-gnu).  Header-only
# packages come from it too, so nothing of the host's /usr/include is used.
pkgs=(libssl-dev libssl3 libfmt-dev libfmt9 libgtest-dev libgmock-dev
  libfsverity-dev libfsverity0 libexpected-dev libcli11-dev)
mapfile -t roots < <(scripts/debs.sh --arch arm64 extract "$suite" "${pkgs[@]}")
((${#roots[@]} == ${#pkgs[@]})) || die "extracting ${pkgs[*]} failed"
sysroot=$build/sysroot
if [[ ! -f $sysroot/.roots || $(cat "$sysroot/.roots") != "${roots[*]}" ]]; then
  rm -rf "$sysroot"
  mkdir -p "$sysroot"
  for r in "${roots[@]}"; do cp -a "$r/." "$sysroot/"; done
  # Absolute links (/usr/lib/...) must point into the sysroot, not the host.
  find "$sysroot" -type l -lname '/*' -print0 | while IFS= read -r -d '' l; do
    ln -sfn "$sysroot$(readlink "$l")" "$l"
  done
  echo "${roots[*]}" >"$sysroot/.roots"
fi

# Tests start the tools through the shell, which cannot run aarch64 binaries
# without binfmt: they get wrappers that run them under qemu-user.
emu=(qemu-aarch64 -L /usr/aarch64-linux-gnu -E "LD_LIBRARY_PATH=$sysroot/usr/lib/aarch64-linux-gnu")
mkdir -p "$build/bin-qemu"
for t in mkcomposefs composefs-info composefs-dump; do
  printf '#!/bin/sh\nexec %s %s "$@"\n' "${emu[*]}" "$build/bin/$t" >"$build/bin-qemu/$t"
  chmod +x "$build/bin-qemu/$t"
done

gen=$(command -v ninja >/dev/null && echo "-G Ninja" || true)
if [[ ! -f $build/.configured ]]; then
  # shellcheck disable=SC2086
  cmake -S "$src" -B "$build" $gen -DCMAKE_TOOLCHAIN_FILE="$src/cmake/aarch64-toolchain.cmake" \
    -DCFS_SYSROOT="$sysroot" -DCFS_CORE_ONLY=ON -DCMAKE_BUILD_TYPE=Release -DCFS_WERROR=ON \
    -DCFS_TEST_BIN_DIR="$build/bin-qemu" ||
    { rm -f "$build/CMakeCache.txt"; die "configuring $build failed"; }
  touch "$build/.configured"
fi
cmake --build "$build" -j "$jobs"
for t in mkcomposefs composefs-info composefs-dump; do
  readelf -h "$build/bin/$t" | grep -q 'Machine:.*AArch64' || die "$build/bin/$t is not an aarch64 binary"
done
"${emu[@]}" "$build/bin/mkcomposefs" --help >/dev/null ||
  die "qemu-aarch64 cannot run $build/bin/mkcomposefs"
cd "$build"
# Left out under emulation, where they take many minutes and test nothing
# an architecture changes: the byte-by-byte corruption sweeps of the reader,
# the multi-GiB sparse file (the host's fsverity tool reads it), and the
# extra tree levels at 32 and 64 KiB blocks (hundreds of MiB each; the levels
# are checked at 1 to 16 KiB blocks, and hashing at every block size).
export GTEST_FILTER=${GTEST_FILTER:--DamagedImage*:*SparseFileMatchesFsverityTool*:*_bs32768_salt0_auto:*_bs65536_salt0_auto}
ctest -j "$jobs" --output-on-failure
