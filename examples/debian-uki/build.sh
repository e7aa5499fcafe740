#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the example OS image of this directory's Containerfile with podman:
# a Debian 12 base (debootstrap, imported with podman import: no registry),
# a UKI that seals the base's bootable image, signed for Secure Boot, and the
# final image carrying it.  Writes the final image as an OCI layout.
#
#   examples/debian-uki/build.sh [options] OUT_DIR
#     --build DIR     composefs-cpp build directory with bin/cfsctl (default: build)
#     --rootfs DIR    the base tree (default: scripts/selinux-rootfs.sh's bookworm
#                     minbase with selinux-policy-default, built once and cached)
#     --kernel DIR    a directory with vmlinuz and kver (default: Debian's
#                     bookworm-backports kernel through scripts/debs.sh)
#     --initrd FILE   the initramfs (default: a busybox one that prints the
#                     kernel command line and powers off)
#     --key KEY --cert CERT   the Secure Boot signing key (unencrypted PEM) and
#                     certificate (default: the snakeoil pair Debian's OVMF enrols,
#                     its key decrypted with its published passphrase "snakeoil")
#     --tag NAME      the podman tag (default localhost/composefs-cpp-example/os:latest);
#                     the base image is tagged NAME-base
#     --cmdline ARGS  kernel arguments sealed after the composefs karg
#                     (default "rw console=ttyS0")
#
# OUT_DIR/oci is the OCI layout (tag "latest"); OUT_DIR/kver the kernel release.
# Needs root, podman, skopeo, busybox and systemd-boot-efi.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$root/build rootfs= kernel= initrd= tag=localhost/composefs-cpp-example/os:latest
cmdline="rw console=ttyS0"
key= cert=/usr/share/ovmf/PkKek-1-snakeoil.pem
snakeoil_key=/usr/share/ovmf/PkKek-1-snakeoil.key
stub=/usr/lib/systemd/boot/efi/linuxx64.efi.stub

die() { echo "build.sh: $*" >&2; exit 1; }
while (($#)); do
  case $1 in
    --build) build=$2; shift 2 ;;
    --rootfs) rootfs=$2; shift 2 ;;
    --kernel) kernel=$2; shift 2 ;;
    --initrd) initrd=$2; shift 2 ;;
    --key) key=$2; shift 2 ;;
    --cert) cert=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    --cmdline) cmdline=$2; shift 2 ;;
    -h | --help) sed -n '3,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1" ;;
    *) break ;;
  esac
done
(($# == 1)) || die "usage: $0 [options] OUT_DIR (--help)"
out=$1
cfsctl=$build/bin/cfsctl
[[ -x $cfsctl ]] || die "$cfsctl is missing: run make build (or pass --build)"
for t in podman skopeo busybox; do command -v "$t" >/dev/null || die "$t is not installed"; done
[[ -r $stub ]] || die "$stub is missing (systemd-boot-efi)"
[[ -n $rootfs ]] || rootfs=$("$root/scripts/selinux-rootfs.sh")
[[ -n $kernel ]] || kernel=$("$root/scripts/debs.sh" kernel bookworm-backports | tail -n1)
[[ -r $kernel/vmlinuz && -r $kernel/kver ]] || die "no vmlinuz and kver in $kernel"
kver=$(cat "$kernel/kver")

mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT
ctx=$work/context base_tree=$work/base
mkdir -p "$ctx/tools/lib"
if [[ -z $key ]]; then
  [[ -r $snakeoil_key ]] || die "$snakeoil_key is missing (ovmf); pass --key and --cert"
  key=$work/snakeoil.key
  openssl pkey -in "$snakeoil_key" -passin pass:snakeoil -out "$key"
fi
[[ -r $key && -r $cert ]] || die "signing key $key or certificate $cert is missing"

# cfsctl runs inside the build, where none of its shared libraries are
# installed: it goes in with them and the dynamic loader it was linked for.
"$here/../../scripts/bundle-tool.sh" "$cfsctl" "$ctx/tools"
cp "$stub" "$ctx/tools/"
cp "$here/Containerfile" "$ctx/"

# The initramfs.
if [[ -n $initrd ]]; then
  cp "$initrd" "$ctx/initramfs.img"
else
  mkdir -p "$ctx/initrd/bin"
  cp "$(command -v busybox)" "$ctx/initrd/bin/busybox"
  cat >"$ctx/initrd/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox mkdir -p /proc
/bin/busybox mount -t proc proc /proc
echo "composefs-cpp example: $(/bin/busybox cat /proc/cmdline)"
/bin/busybox poweroff -f
INIT
  chmod +x "$ctx/initrd/init"
  (cd "$ctx/initrd" && find . | busybox cpio -o -H newc 2>/dev/null) >"$ctx/initramfs.img"
  rm -rf "$ctx/initrd"
fi

# The base image, as a registry would serve it: the Debian tree with its
# kernel and initramfs where bootc looks for them (/usr/lib/modules/<kver>/),
# an empty /sysroot (a bootable image needs one), and every mtime in whole
# seconds.  Files that RUN or COPY steps create get nanosecond mtimes in the
# build's overlay but whole seconds in the layers podman writes, so a base
# stage with such steps would not be the tree the UKI's digest was computed
# from (cfsctl compute-karg warns about it; bootc #2194).
mkdir -p "$base_tree"
cp -a "$rootfs/." "$base_tree/"
mkdir -p "$base_tree/usr/lib/modules/$kver" "$base_tree/sysroot"
cp "$kernel/vmlinuz" "$base_tree/usr/lib/modules/$kver/vmlinuz"
cp "$ctx/initramfs.img" "$base_tree/usr/lib/modules/$kver/initramfs.img"
echo composefs-cpp-example >"$base_tree/etc/hostname"
python3 - "$base_tree" <<'PY'
import os, sys
for d, dirs, files in os.walk(sys.argv[1], topdown=False):
    for p in [os.path.join(d, n) for n in files + dirs] + [d]:
        st = os.lstat(p)
        s = st.st_mtime_ns // 10**9 * 10**9
        os.utime(p, ns=(s, s), follow_symlinks=False)
PY
base=${tag%:*}-base:latest
echo "build.sh: importing the base tree as $base" >&2
tar -C "$base_tree" --numeric-owner --xattrs --xattrs-include='*' -cf - . |
  podman import - "$base" >/dev/null

echo "build.sh: podman build (kernel $kver)" >&2
podman build --isolation chroot --build-arg "BASE_IMAGE=$base" --build-arg "KVER=$kver" \
  --build-arg "CMDLINE=$cmdline" \
  --secret "id=key,src=$key" --secret "id=cert,src=$cert" -t "$tag" "$ctx" >&2

rm -rf "$out/oci"
skopeo copy -q "containers-storage:$tag" "oci:$out/oci:latest"
echo "$kver" >"$out/kver"
echo "build.sh: wrote $out/oci (tag latest) from $tag" >&2
