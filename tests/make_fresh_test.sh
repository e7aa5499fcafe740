#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `make build` on a fresh machine (issue 10): a missing package must stop it
# with a message saying to run `make deps` before anything is configured, and
# a configure that fails must leave nothing that makes the next run skip
# configuring (the old failure: "loading 'build.ninja': No such file or
# directory" until build/ was deleted).
#
#   tests/make_fresh_test.sh SOURCE_DIR [MAKEFILE]
#
# A missing libzstd-dev is simulated without touching the machine: dpkg-query
# (first in PATH) reports it as not installed, pkg-config's search path
# (PKG_CONFIG_LIBDIR) holds every .pc file but libzstd.pc, and `id -u` says
# 1000 so install-deps.sh never tries apt-get (which, also faked, fails the
# test if it runs).  `cmake --build` is turned into a ninja dry run (-n): it
# needs a complete build directory, but builds nothing.  Run with the
# Makefile of an older commit as MAKEFILE to see the failure reproduced.
set -euo pipefail
src=$(cd "$1" && pwd)
mk=${2:-$src/Makefile}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
check() {  # check DESCRIPTION COMMAND...
  if "${@:2}"; then echo "ok: $1"; else echo "FAIL: $1" >&2; fails=$((fails + 1)); fi
}

real_cmake=$(command -v cmake)
fake=$tmp/bin
mkdir -p "$fake" "$tmp/pc"
cat >"$fake/dpkg-query" <<'SH'
#!/bin/sh
for last; do :; done
for m in $FAKE_MISSING; do [ "$m" = "$last" ] && exit 1; done
printf 'install ok installed'
SH
cat >"$fake/id" <<'SH'
#!/bin/sh
[ "$1" = -u ] && { echo 1000; exit 0; }
exec /usr/bin/id "$@"
SH
cat >"$fake/apt-get" <<'SH'
#!/bin/sh
echo "make_fresh_test: apt-get must not run" >&2
exit 99
SH
cat >"$fake/cmake" <<SH
#!/bin/sh
if [ "\$1" = --build ]; then exec "$real_cmake" --build "\$2" -- -n; fi
exec "$real_cmake" "\$@"
SH
chmod +x "$fake"/*
for d in $(pkg-config --variable pc_path pkg-config | tr ':' ' '); do
  [ -d "$d" ] || continue
  for f in "$d"/*.pc; do
    [ -e "$f" ] && [ "$(basename "$f")" != libzstd.pc ] && ln -sf "$f" "$tmp/pc/"
  done
done

b=$tmp/build
mk() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL PATH="$fake:$PATH" make --no-print-directory -C "$src" -f "$mk" BUILD="$b" "$@"; }

# 1. libzstd-dev missing (as dpkg and pkg-config see it), not root.
set +e
FAKE_MISSING=libzstd-dev PKG_CONFIG_LIBDIR=$tmp/pc mk build >"$tmp/1.out" 2>&1
rc=$?
set -e
check "make build with a missing package fails" test $rc -ne 0
check "... saying to run 'make deps'" grep -q "make deps" "$tmp/1.out"
check "... naming the package" grep -q "libzstd-dev" "$tmp/1.out"
check "... before configuring anything" test ! -e "$b/CMakeCache.txt"

# 2. The packages look installed but configure still fails (the .pc file
# still missing): nothing may be left that passes for a configured tree.
rm -rf "$b"
set +e
PKG_CONFIG_LIBDIR=$tmp/pc mk build >"$tmp/2.out" 2>&1
rc=$?
set -e
check "make build with a failing configure fails" test $rc -ne 0
check "... and leaves no CMakeCache.txt" test ! -e "$b/CMakeCache.txt"

# 3. Once the package is there, the next run configures and builds (dry run).
set +e
mk build >"$tmp/3.out" 2>&1
rc=$?
set -e
check "make build after the package is installed succeeds" test $rc -eq 0
check "... with a configured tree" test -e "$b/build.ninja" -o -e "$b/Makefile"
if grep -q "loading 'build.ninja'" "$tmp"/*.out; then
  echo "FAIL: the old failure: $(grep -h "loading 'build.ninja'" "$tmp"/*.out | head -n1)" >&2
  fails=$((fails + 1))
fi
if ((fails)); then
  for f in "$tmp"/[123].out; do echo "---- $(basename "$f")"; tail -n 15 "$f"; done >&2
  exit 1
fi
