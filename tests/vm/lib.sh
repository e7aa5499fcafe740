# SPDX-License-Identifier: Apache-2.0
# Shell functions the VM tests share (sourced by tests/chain/chain_test.sh
# and tests/e2e/full_chain.sh): guest trees with binaries and their
# libraries, busybox, kernel modules, and `cfsctl install to-disk` run in a
# VM (the host has no fs-verity, and the repository install creates needs
# it).  The caller sets: kver and mdir (the kernel release and its module
# tree: debian_kernel sets them).  Also the skip checks every VM test starts
# with.

vm_src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# skip REASON: ctest's skip (SKIP_RETURN_CODE 77), the reason on stdout.
skip() { echo "SKIP: $*"; exit 77; }
die() { echo "FAIL: $*"; exit 1; }

# need_tools TOOL...: skips naming the first one not installed.
need_tools() {
  local t
  for t in "$@"; do command -v "$t" >/dev/null || skip "$t is not installed (scripts/install-deps.sh)"; done
}

# need_secure_boot: OVMF with Secure Boot and Debian's snakeoil keys enrolled
# (PK, KEK, db), and systemd-boot's EFI binaries; sets ovmf_code, ovmf_vars,
# sk_key, sk_cert (the snakeoil signing key, passphrase "snakeoil"), sdboot
# and stub, or skips.
need_secure_boot() {
  ovmf_code=/usr/share/OVMF/OVMF_CODE_4M.snakeoil.fd
  ovmf_vars=/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd
  sk_key=/usr/share/ovmf/PkKek-1-snakeoil.key
  sk_cert=/usr/share/ovmf/PkKek-1-snakeoil.pem
  sdboot=/usr/lib/systemd/boot/efi/systemd-bootx64.efi
  stub=/usr/lib/systemd/boot/efi/linuxx64.efi.stub
  need_tools qemu-system-x86_64
  local f
  for f in "$ovmf_code" "$ovmf_vars" "$sk_key" "$sk_cert"; do [[ -r $f ]] || skip "$f missing (ovmf)"; done
  for f in "$sdboot" "$stub"; do [[ -r $f ]] || skip "$f missing (systemd-boot-efi)"; done
}

# need_busybox: a static /bin/busybox (guests have no libraries of their own).
need_busybox() {
  [[ -x /bin/busybox ]] && ! ldd /bin/busybox >/dev/null 2>&1 ||
    skip "/bin/busybox missing or not static (busybox-static)"
}

# debian_kernel SUITE: Debian's kernel of SUITE, fetched and cached by
# scripts/debs.sh; sets kdir (vmlinuz, kver, modules), kver and mdir, or skips.
debian_kernel() {
  kdir=$("$vm_src/scripts/debs.sh" kernel "$1" 2>/dev/null | tail -n1) ||
    skip "no Debian kernel (scripts/debs.sh kernel $1 failed: no apt mirror?)"
  [[ -r $kdir/vmlinuz ]] || skip "no vmlinuz in $kdir"
  kver=$(cat "$kdir/kver")
  mdir=$(readlink -f "$kdir/modules")
}

# elf DEST FILE...: each FILE at its own path under DEST, with its libraries.
elf() {
  local dest=$1 e lib
  shift
  for e in "$@"; do
    mkdir -p "$dest$(dirname "$e")"
    cp -L "$e" "$dest$e"
    ldd "$e" | awk '/=> \//{print $3} /^\t\/[^ ]+ \(/{print $1}' | while read -r lib; do
      [[ -e $dest$lib ]] && continue
      mkdir -p "$dest$(dirname "$lib")"
      cp -L "$lib" "$dest$lib"
    done
  done
}

# busybox_in DEST: /bin/busybox and a link per applet in /bin.
busybox_in() {
  mkdir -p "$1/bin"
  cp /bin/busybox "$1/bin/busybox"
  local a
  for a in $(/bin/busybox --list); do [[ -e $1/bin/$a ]] || ln -s busybox "$1/bin/$a"; done
}

# mods DEST NAME...: the modules (dependencies first, from each module's
# "depends=") decompressed into DEST/lib/modules/KVER with a modules.dep for
# busybox modprobe, and their load order in DEST/etc/modules.  A name
# without a file is built in.
mods() {
  local dest=$1 m
  shift
  local -A seen=()
  local order=() dep=()
  local md=$dest/lib/modules/$kver
  mkdir -p "$md/kernel" "$dest/etc"
  add() {
    local n=${1//-/_} f deps d alt=${1//_/-} line
    [[ -n ${seen[$n]:-} ]] && return 0
    seen[$n]=1
    f=$(find "$mdir/kernel" \( -name "$n.ko" -o -name "$n.ko.*" -o -name "$alt.ko" -o -name "$alt.ko.*" \) \
      -print -quit)
    [[ -n $f ]] || return 0
    case $f in *.xz) xz -dc "$f" ;; *.zst) zstd -qdc "$f" ;; *) cat "$f" ;; esac >"$md/kernel/$n.ko"
    deps=$(tr '\0' '\n' <"$md/kernel/$n.ko" | sed -n 's/^depends=//p' | head -n1)
    line="kernel/$n.ko:"
    for d in ${deps//,/ }; do
      add "$d"
      [[ -e $md/kernel/${d//-/_}.ko ]] && line+=" kernel/${d//-/_}.ko"
    done
    order+=("$n")
    dep+=("$line")
  }
  for m in "$@"; do add "$m"; done
  printf '%s\n' "${dep[@]}" >"$md/modules.dep"
  printf '%s\n' "${order[@]}" >"$dest/etc/modules"
}

# What the guests need: virtio disks, ext4 with its checksums, fs-verity's
# hashes, EROFS, overlay, loop, the ESP (vfat) and EFI variables.
guest_mods=(crc32c_generic libcrc32c crc16 sha256_generic sha512_generic virtio_pci
  virtio_blk ext4 erofs overlay loop vfat nls_cp437 nls_iso8859_1 nls_ascii efivarfs)

cpio_of() { (cd "$1" && find . | busybox cpio -o -H newc 2>/dev/null) >"$2"; }

# datadisk IMG DIR [SIZE]: an ext4 disk image holding DIR's contents.
datadisk() {
  truncate -s "${3:-256M}" "$1"
  mkfs.ext4 -q -F -b 4096 -d "$2" "$1"
}

# install_in_vm WORK VMLINUZ CFSCTL PAYLOAD DISK MEM [OPTION...]: runs
# `cfsctl install to-disk oci:/img/oci:<tag> /dev/vda OPTION...` in a
# direct-kernel qemu boot (busybox, the tools install uses, the modules):
# PAYLOAD is a directory with the OCI layout oci/, the Secure Boot key
# db.key and certificate db.pem, and the file tag; DISK the disk image
# file written.  The console goes to WORK/install.txt.
install_in_vm() {
  local w=$1 vmlinuz=$2 tool=$3 payload=$4 disk=$5 mem=$6 inst=$1/installer
  shift 6
  local sdboot=/usr/lib/systemd/boot/efi/systemd-bootx64.efi
  rm -rf "$inst"
  busybox_in "$inst"
  mods "$inst" "${guest_mods[@]}"
  elf "$inst" "$tool" "$(command -v sfdisk)" "$(command -v mkfs.vfat)" "$(command -v mke2fs)" \
    "$(command -v blkid)" "$(command -v partx)"
  ln -sf mke2fs "$inst$(dirname "$(command -v mke2fs)")/mkfs.ext4"
  [[ -r /etc/mke2fs.conf ]] && cp /etc/mke2fs.conf "$inst/etc/"
  mkdir -p "$inst$(dirname "$sdboot")"
  cp "$sdboot" "$inst$sdboot"
  mkdir -p "$inst/proc" "$inst/sys" "$inst/dev" "$inst/tmp" "$inst/img"
  {
    cat <<'INIT'
#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /etc/modules); do modprobe -q $m || echo "cannot load $m"; done
mount -t ext4 -o ro /dev/vdb /img
INIT
    printf 'if %q install to-disk "oci:/img/oci:$(cat /img/tag)" /dev/vda' "$tool"
    printf ' %q' "$@" --secureboot-private-key /img/db.key --secureboot-certificate /img/db.pem
    cat <<'INIT'
; then
  echo CFS-INSTALL-OK
else
  echo CFS-INSTALL-FAILED
fi
umount /img
sync
poweroff -f
INIT
  } >"$inst/init"
  chmod 755 "$inst/init"
  cpio_of "$inst" "$w/installer.cpio"
  local size
  size=$(du -sm "$payload" | cut -f1)
  datadisk "$w/payload.img" "$payload" "$((size * 2 + 64))M"
  timeout 900 qemu-system-x86_64 -accel tcg -m "$mem" -smp 1 \
    -kernel "$vmlinuz" -initrd "$w/installer.cpio" \
    -append "console=ttyS0 panic=-1 quiet rdinit=/init" \
    -drive file="$disk",if=virtio,format=raw,cache=unsafe \
    -drive file="$w/payload.img",if=virtio,format=raw,cache=unsafe \
    -nographic -serial file:"$w/install.log" -monitor none -nodefaults -no-reboot \
    </dev/null >/dev/null 2>&1 || true
  rm -f "$w/payload.img"
  tr -d '\r' <"$w/install.log" >"$w/install.txt"
  grep -q CFS-INSTALL-OK "$w/install.txt" ||
    { tail -n 40 "$w/install.txt"; die "cfsctl install to-disk failed in the VM"; }
}
