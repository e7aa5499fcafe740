#!/usr/bin/env bash
# Prints the directory of a Debian bookworm tree with selinux-policy-default
# installed (debootstrap --variant=minbase), building it on first use: the
# SELinux oracle test and bench/selabel_bench label every path of it with the
# tree's own policy.  Cached under CFS_CACHE (default /var/cache/composefs-cpp),
# never in the repository; the mirror is the one this machine's apt uses
# (scripts/debs.sh mirror).  Needs root and debootstrap; about 2 minutes once.
#
#   scripts/selinux-rootfs.sh [--systemd]          build if missing, print the tree's path
#   scripts/selinux-rootfs.sh [--systemd] --check  print the path if it is built, else fail
#
# --systemd: a second tree that boots: the same plus systemd as init, udev
# and kmod (the full chain of tests/chain boots it to multi-user.target).
# About 3 minutes once.
set -euo pipefail

cache=${CFS_CACHE:-/var/cache/composefs-cpp}
suite=bookworm
packages=selinux-policy-default,selinux-utils
name=$suite-minbase-selinux-policy-default
if [[ ${1:-} == --systemd ]]; then
  packages+=,systemd-sysv,udev,kmod
  name=$suite-minbase-systemd-selinux-policy-default
  shift
fi
dir="$cache/selinux/$name"
here=$(cd "$(dirname "$0")" && pwd)

die() { echo "selinux-rootfs.sh: $*" >&2; exit 1; }

if [[ -f $dir/.complete ]]; then
  echo "$dir/root"
  exit 0
fi
[[ ${1:-} == --check ]] && die "not built yet: $dir"
((EUID == 0)) || die "debootstrap needs root"
command -v debootstrap >/dev/null || die "debootstrap is not installed (scripts/install-deps.sh)"
mirror=$("$here/debs.sh" mirror)

mkdir -p "$cache/selinux"
# One builder at a time; a second caller waits and then finds the tree.
exec 9>"$cache/selinux/.lock"
flock 9
if [[ ! -f $dir/.complete ]]; then
  rm -rf "$dir" "$dir.tmp"
  mkdir -p "$dir.tmp"
  echo "selinux-rootfs.sh: debootstrap $suite with $packages from $mirror" >&2
  debootstrap --variant=minbase --include="$packages" \
    "$suite" "$dir.tmp/root" "$mirror" >"$dir.tmp/debootstrap.log" 2>&1 ||
    die "debootstrap failed (log: $dir.tmp/debootstrap.log)"
  [[ -f $dir.tmp/root/etc/selinux/default/contexts/files/file_contexts ]] ||
    die "no file_contexts in the new tree"
  touch "$dir.tmp/.complete"
  mv "$dir.tmp" "$dir"
fi
echo "$dir/root"
