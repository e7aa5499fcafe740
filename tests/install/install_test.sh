#!/usr/bin/env bash
# `cmake --install` of the build into a temporary DESTDIR, then checks of what
# landed there, and a small program (consumer.cc) built against it through
# find_package (shared and static) and pkg-config, run on a file whose
# fs-verity digest the fsverity tool gives independently.
#   install_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

dest=$tmp/dest
DESTDIR=$dest cmake --install "$build" >"$tmp/install.log" || { cat "$tmp/install.log"; fail "install"; }
prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build/CMakeCache.txt")
libdir=$(sed -n 's/^CMAKE_INSTALL_LIBDIR:PATH=//p' "$build/CMakeCache.txt")
root=$dest$prefix

for t in mkcomposefs cfsctl composefs-info composefs-dump; do
  [[ -x $root/bin/$t ]] || fail "bin/$t not installed"
done
[[ -x $dest/sbin/mount.composefs ]] || fail "mount.composefs not in /sbin (mount -t composefs looks there)"
[[ -f $root/include/composefs-cpp/base/error.h ]] || fail "headers not under include/composefs-cpp/"
[[ -z $(ls "$root/include" | grep -v '^composefs-cpp$') ]] || fail "headers outside include/composefs-cpp/"
so=$(readelf -d "$root/$libdir/libcomposefs-cpp.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[[ $so == libcomposefs-cpp.so.0 ]] || fail "SONAME is '$so'"
[[ -f $root/$libdir/$so && -f $root/$libdir/libcomposefs-cpp.a ]] || fail "libraries missing"
if grep -rlE 'openssl/|EVP_|X509|evp_pkey_st' "$root/include"; then
  fail "public headers name OpenSSL types"
fi

# The reference digest, from fsverity-utils.
head -c 300000 /dev/urandom >"$tmp/data"
want=$(fsverity digest --compact "$tmp/data")

cmake -S "$src/tests/install" -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$root" \
  -DCMAKE_BUILD_TYPE=Release >"$tmp/consumer.log" 2>&1 || { cat "$tmp/consumer.log"; fail "find_package"; }
cmake --build "$tmp/consumer" >>"$tmp/consumer.log" 2>&1 || { cat "$tmp/consumer.log"; fail "consumer build"; }
for v in shared static; do
  got=$("$tmp/consumer/consumer_$v" "$tmp/data")
  [[ $got == "$want" ]] || fail "consumer_$v printed '$got', fsverity gives '$want'"
done
ldd "$tmp/consumer/consumer_static" | grep -q composefs-cpp && fail "consumer_static uses the shared library"

export PKG_CONFIG_PATH=$root/$libdir/pkgconfig
# shellcheck disable=SC2046
c++ -std=c++20 -o "$tmp/consumer_pc" "$src/tests/install/consumer.cc" \
  $(pkg-config --cflags --libs composefs-cpp) || fail "pkg-config build"
got=$(LD_LIBRARY_PATH=$root/$libdir "$tmp/consumer_pc" "$tmp/data")
[[ $got == "$want" ]] || fail "pkg-config consumer printed '$got', fsverity gives '$want'"
echo "install tree and both consumers OK ($want)"
