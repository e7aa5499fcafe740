#!/usr/bin/env bash
# The main job on the bundled sample tree: build a composefs image and its
# object store from demo/rootfs, print the image's fs-verity digest, and (as
# root) mount the image, list it and unmount it.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
[[ $build = /* ]] || build="$top/$build"
bin="$build/bin"
work="$build/demo"
rm -rf "$work"
mkdir -p "$work"

# Git does not keep mtimes: pin them so the digest is the same on every clone.
cp -a "$top/demo/rootfs" "$work/rootfs"
find "$work/rootfs" -exec touch -h -d '2024-01-01 00:00:00 UTC' {} +

echo "== mkcomposefs: image + object store from demo/rootfs"
digest=$("$bin/mkcomposefs" --digest-store="$work/objects" --print-digest \
  "$work/rootfs" "$work/demo.cfs")
echo "image:   $work/demo.cfs ($(stat -c %s "$work/demo.cfs") bytes)"
echo "objects: $(find "$work/objects" -type f | wc -l) in $work/objects"
echo "fs-verity digest of the image (what composefs=<digest> on a kernel command line names):"
echo "$digest"

echo
echo "== cfsctl: a repository, the same tree stored in it, its image digest"
"$bin/cfsctl" --repo "$work/repo" init --insecure --algorithm fsverity-sha256-12
"$bin/cfsctl" --repo "$work/repo" create-image "$work/rootfs" demo
"$bin/cfsctl" --repo "$work/repo" fsck | tail -n 1

echo
echo "== cfsctl oci: demo/rootfs as an OCI image (made by umoci), pulled into a repository"
if [[ $(id -u) -ne 0 ]] || ! command -v umoci >/dev/null; then
  echo "(skipped: needs root and umoci)"
else
  (cd "$work" && umoci init --layout oci && umoci new --image oci:demo &&
    umoci unpack --image oci:demo bundle >/dev/null && cp -a rootfs/. bundle/rootfs/ &&
    umoci repack --image oci:demo bundle && rm -rf bundle) >/dev/null
  "$bin/cfsctl" --repo "$work/repo" init --insecure --algorithm fsverity-sha256-12 >/dev/null
  "$bin/cfsctl" --repo "$work/repo" oci pull "oci:$work/oci:demo" demo
  echo "image id of the pulled image, and of the same tree read from disk (equal):"
  "$bin/cfsctl" --repo "$work/repo" oci compute-id demo
  "$bin/cfsctl" --repo "$work/repo" compute-id "$work/rootfs"
fi

echo
echo "== mount.composefs: mount the image, list it, unmount"
if [[ $(id -u) -ne 0 ]]; then
  echo "(skipped: mounting needs root; 'sudo make demo' shows it)"
  exit 0
fi
mnt="$work/mnt"
mkdir -p "$mnt"
"$bin/mount.composefs" -v -o "basedir=$work/objects,ro" "$work/demo.cfs" "$mnt"
trap 'umount "$mnt" 2>/dev/null || true' EXIT
grep -F " $mnt " /proc/self/mountinfo | sed 's/^/mountinfo: /'
(cd "$mnt" && find . -mindepth 1 \( -type l -printf '%M %5s  %P -> %l\n' \) -o \
  -printf '%M %5s  %P\n' | sort -k3)
echo "--- etc/motd, read through the mount (its data comes from the object store):"
cat "$mnt/etc/motd"
umount "$mnt"
trap - EXIT
echo "unmounted $mnt"
