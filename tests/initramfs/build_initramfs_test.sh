#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Builds an initramfs with dracut and with mkinitramfs, with our integration
# files (contrib/initramfs) and the built composefs-setup-root, and checks
# that the binary, the unit or scripts, and the binary's shared libraries
# are inside.  Nothing of the host's /boot or /usr/lib is written: dracut
# reads a copy of its module tree (dracutbasedir), and mkinitramfs, which
# insists on /lib/modules/KVER, runs in a private mount namespace with an
# overlay on /usr/lib and a scratch /boot (for the kernel config it reads).
# Usage: build_initramfs_test.sh SOURCE_DIR BIN_DIR dracut|initramfs-tools
set -u
src=$1 bin=$2 builder=$3
tool=$bin/composefs-setup-root
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }
[ -x "$tool" ] || fail "no $tool"
[ "$(id -u)" = 0 ] || skip "needs root"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The libraries the binary needs, by soname, from ldd (the oracle).
libs=$(ldd "$tool" | awk '/=>/ && $3 ~ /^\// {print $1}' | grep -v '^linux-vdso')
[ -n "$libs" ] || fail "ldd found no libraries of $tool"

check_listing() {  # $1: listing file, then paths that must appear
    local listing=$1; shift
    for p in "$@"; do
        grep -Eq "(^|[[:space:]])${p#/}( -> .*)?\$" "$listing" || fail "$builder image lacks $p"
    done
    for l in $libs; do
        local re
        re=$(printf '%s' "$l" | sed 's/[].+[]/\\&/g')
        grep -Eq "/$re( -> .*)?\$" "$listing" || fail "$builder image lacks library $l"
    done
}

case $builder in
dracut)
    command -v dracut >/dev/null || skip "dracut not installed (package dracut-core)"
    command -v lsinitrd >/dev/null || skip "lsinitrd not installed"
    cp -a /usr/lib/dracut "$tmp/dracut"
    cp -a "$src/contrib/initramfs/dracut/37composefs" "$tmp/dracut/modules.d/"
    mkdir "$tmp/conf.d"
    : >"$tmp/dracut.conf"
    export dracutbasedir=$tmp/dracut COMPOSEFS_SETUP_ROOT=$tool
    dracut --no-kernel --no-hostonly --force --conf "$tmp/dracut.conf" --confdir "$tmp/conf.d" \
        --tmpdir "$tmp" -m "base systemd systemd-initrd composefs" "$tmp/initrd.img" \
        >"$tmp/log" 2>&1 || { cat "$tmp/log"; fail "dracut failed"; }
    lsinitrd "$tmp/initrd.img" >"$tmp/list" 2>&1 || fail "lsinitrd failed"
    check_listing "$tmp/list" usr/bin/composefs-setup-root \
        usr/lib/systemd/system/composefs-setup-root.service \
        "(etc|usr/lib)/systemd/system/initrd-root-fs.target.wants/composefs-setup-root.service"
    # The unit inside is ours, byte for byte.
    lsinitrd -f usr/lib/systemd/system/composefs-setup-root.service "$tmp/initrd.img" >"$tmp/unit"
    cmp -s "$tmp/unit" "$src/contrib/initramfs/dracut/37composefs/composefs-setup-root.service" ||
        fail "the unit in the image differs from contrib's"
    ;;
initramfs-tools)
    command -v mkinitramfs >/dev/null || skip "mkinitramfs not installed (package initramfs-tools-core)"
    command -v lsinitramfs >/dev/null || skip "lsinitramfs not installed"
    command -v unshare >/dev/null || skip "needs unshare(1)"
    conf=$tmp/conf
    mkdir -p "$conf/hooks" "$conf/scripts/local-bottom" "$conf/conf.d" "$tmp/u" "$tmp/w" "$tmp/boot"
    cp /etc/initramfs-tools/initramfs.conf "$conf/" 2>/dev/null || echo "MODULES=list" >"$conf/initramfs.conf"
    echo "MODULES=list" >>"$conf/initramfs.conf"
    : >"$conf/modules"
    cp "$src/contrib/initramfs/initramfs-tools/hooks/composefs" "$conf/hooks/"
    cp "$src/contrib/initramfs/initramfs-tools/scripts/local-bottom/composefs" "$conf/scripts/local-bottom/"
    kver=0.0.0-composefs-test
    COMPOSEFS_SETUP_ROOT=$tool unshare -m sh -c '
        mount --make-rprivate / &&
        mount -t overlay overlay -o "lowerdir=/usr/lib,upperdir=$1/u,workdir=$1/w" /usr/lib &&
        mount --bind "$1/boot" /boot && echo CONFIG_RD_GZIP=y >/boot/config-$2 &&
        mkdir -p /usr/lib/modules/$2 && touch /usr/lib/modules/$2/modules.order /usr/lib/modules/$2/modules.builtin &&
        mkinitramfs -d "$1/conf" -o "$1/initrd.img" "$2"' sh "$tmp" "$kver" >"$tmp/log" 2>&1 ||
        { cat "$tmp/log"; fail "mkinitramfs failed"; }
    lsinitramfs "$tmp/initrd.img" >"$tmp/list" 2>&1 || fail "lsinitramfs failed"
    check_listing "$tmp/list" usr/bin/composefs-setup-root scripts/local-bottom/composefs
    grep -q composefs "$tmp/list" || fail "no composefs in listing"
    ;;
*) fail "unknown builder $builder" ;;
esac
echo "OK: $builder image has composefs-setup-root, its unit/scripts and libraries: $(echo $libs)"
