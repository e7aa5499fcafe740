#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# One row of the kernel matrix: boots a Debian kernel in qemu (TCG) with a
# busybox initramfs carrying this build's tools and test executables (with
# the shared libraries they need) and an ext4 disk with fs-verity, and runs
# tests/vm/guest.sh there: the project's mount, verity and repository tests
# with fs-verity enforced, or, on kernels without data-only layers and
# verity=, the refusals expected there.
# Usage: vm_test.sh SUITE BUILD_DIR
#   SUITE: bookworm (6.1), bookworm-backports (6.12), trixie-backports (7.x)
# Exit 0 passed, 1 failed, 77 skipped (the reason on stdout).
# CFS_VM_TIMEOUT: seconds the guest may run (default 600).
set -euo pipefail
suite=${1:?usage: $0 SUITE BUILD_DIR}
build=$(cd "${2:?usage: $0 SUITE BUILD_DIR}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
t0=$(date +%s)

# skip, die, need_tools, need_busybox, debian_kernel.
# shellcheck source=lib.sh
. "$here/lib.sh"
need_tools qemu-system-x86_64 mkfs.ext4 fsverity
need_busybox
for t in cfsctl mount.composefs mkcomposefs; do
  [[ -x $build/bin/$t ]] || die "$build/bin/$t not built"
done
debian_kernel "$suite"

# What the guest asserts: full support, or 6.1's refusals.
case $suite in
  bookworm) expect=old ;;
  *) expect=new ;;
esac

work=$(mktemp -d "${TMPDIR:-/tmp}/cfs-vm.XXXXXX")
trap 'rm -rf -- "$work"' EXIT
ird=$work/initrd
mkdir -p "$ird/bin" "$ird/lib/modules"
cp /bin/busybox "$ird/bin/busybox"

# ---- kernel modules, dependencies first (from each module's own
# "depends=" in .modinfo: no kmod needed); a name without a file is
# built into this kernel.
declare -A seen=()
order=()
modfile() {
  local n=$1 alt=${1//_/-}
  find "$mdir/kernel" \( -name "$n.ko" -o -name "$n.ko.*" -o -name "$alt.ko" -o -name "$alt.ko.*" \) \
    -print -quit
}
decompress() {
  case $1 in
    *.xz) xz -dc "$1" ;;
    *.zst) zstd -qdc "$1" ;;
    *.gz) gzip -dc "$1" ;;
    *) cat "$1" ;;
  esac
}
addmod() {
  local n=${1//-/_} f deps d
  [[ -n ${seen[$n]:-} ]] && return 0
  seen[$n]=1
  f=$(modfile "$n")
  [[ -n $f ]] || return 0
  decompress "$f" >"$ird/lib/modules/$n.ko"
  deps=$(tr '\0' '\n' <"$ird/lib/modules/$n.ko" | sed -n 's/^depends=//p' | head -n1)
  for d in ${deps//,/ }; do addmod "$d"; done
  order+=("$n")
}
# crc32c and the sha2 drivers are requested by name at run time (ext4's
# checksums, fs-verity's hashes): no modprobe in the guest, so load them.
for m in crc32c_generic crc32c_intel crc32c_cryptoapi libcrc32c crc16 sha256_generic sha256_ssse3 \
  sha512_generic sha512_ssse3 sha256 sha512 virtio_pci virtio_blk ext4 erofs overlay loop; do
  addmod "$m"
done
printf '%s\n' "${order[@]}" >"$ird/modules.list"

# ---- executables at their build paths (the tests find data and tools by
# the absolute paths compiled into them), with their shared libraries.
tests=(mount_test mount_tool_test mount_options_test repository_test fsverity_test)
elfs=()
for t in cfsctl mount.composefs mkcomposefs composefs-info composefs-dump; do
  [[ -x $build/bin/$t ]] && elfs+=("$build/bin/$t")
done
for t in "${tests[@]}"; do
  [[ -x $build/tests/$t ]] || die "$build/tests/$t not built"
  elfs+=("$build/tests/$t")
done
elfs+=("$(command -v fsverity)")
for e in "${elfs[@]}"; do
  mkdir -p "$ird$(dirname "$e")"
  cp "$e" "$ird$e"
  ldd "$e" | awk '/=> \//{print $3} /^\t\/[^ ]+ \(/{print $1}' | while read -r lib; do
    [[ -e $ird$lib ]] && continue
    mkdir -p "$ird$(dirname "$lib")"
    cp -L "$lib" "$ird$lib"
  done
done
mkdir -p "$ird$src/tests"
cp -a "$src/tests/data" "$ird$src/tests/data"
cp "$here/guest.sh" "$ird/guest.sh"
printf 'BUILD=%s\nEXPECT=%s\nKVER=%s\nTESTS="%s"\n' "$build" "$expect" "$kver" "${tests[*]}" \
  >"$ird/guest.env"
# No tmpfs on /tmp: the initramfs is writable already, and a build under
# /tmp (a clone there) would be hidden by it.
cat >"$ird/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin:/sbin
mkdir -p /proc /sys /dev /tmp /disk /usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules.list); do insmod /lib/modules/$m.ko || echo "insmod $m failed"; done
sh /guest.sh
echo "CFS-VM-END"
poweroff -f
INIT
chmod +x "$ird/init"
(cd "$ird" && find . | busybox cpio -o -H newc 2>/dev/null) >"$work/initrd.cpio"

# ---- the disk: ext4 with 4 KiB blocks (fs-verity needs block = page size)
# and an OCI layout for `oci pull` (no network in the guest).
pl=$work/payload
"$here/make_oci.sh" "$pl/oci" >/dev/null
mkdir -p "$pl/tmp"
truncate -s 2G "$work/disk.img"
mkfs.ext4 -q -b 4096 -O verity -d "$pl" "$work/disk.img"

prep=$(($(date +%s) - t0))
echo "kernel $kver ($suite), expecting '$expect'; prepared in ${prep}s"
log=$work/console.log
set +e
timeout "${CFS_VM_TIMEOUT:-600}" qemu-system-x86_64 -accel tcg -m 2048 -smp 2 \
  -kernel "$kdir/vmlinuz" -initrd "$work/initrd.cpio" \
  -append "console=ttyS0 panic=-1 rdinit=/init quiet loglevel=4" \
  -drive file="$work/disk.img",if=virtio,format=raw,cache=unsafe \
  -nographic -serial file:"$log" -monitor none -nodefaults -no-reboot </dev/null >/dev/null 2>&1
qrc=$?
set -e
tr -d '\r' <"$log" >"$work/console.txt"
grep -E '^(ok|FAIL|SKIP|note|time):|^  [|] ' "$work/console.txt" || true
echo "VM row $suite: $(($(date +%s) - t0))s in all (qemu exit $qrc)"
if grep -q '^CFS-VM-RESULT: PASS' "$work/console.txt"; then
  echo "PASS"
  exit 0
fi
echo "--- serial console (last 80 lines):"
tail -n 80 "$work/console.txt"
[[ $qrc == 124 ]] && die "the guest did not finish within ${CFS_VM_TIMEOUT:-600}s"
die "the guest reported failures"
