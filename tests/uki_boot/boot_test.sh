#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Smoke boot of the UKIs `cfsctl uki` builds, under OVMF with Secure Boot on
# (Debian's snakeoil keys enrolled as PK, KEK and db), in qemu (TCG):
#   1. systemd-boot and the UKI signed with the snakeoil key boot; the guest
#      (a busybox initramfs) prints /proc/cmdline, which must be exactly the
#      sealed .cmdline, and the kernel's Secure Boot state, which must be on;
#   2. the UKI signed with another key is refused by the firmware;
#   3. the unsigned UKI is refused.
# Usage: boot_test.sh CFSCTL.  Exit 0 passed, 1 failed, 77 skipped (with
# the reason on stdout: missing qemu, OVMF, systemd-boot-efi, busybox or
# no Debian kernel).
set -euo pipefail
cfsctl=${1:?usage: $0 CFSCTL}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

# skip, die, need_secure_boot, need_busybox, need_tools, debian_kernel.
# shellcheck source=../vm/lib.sh
. "$root/tests/vm/lib.sh"
need_secure_boot
need_busybox
need_tools mkfs.vfat mcopy
debian_kernel bookworm-backports

work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT

# The guest: /init prints what the test checks, then powers off.
mkdir -p "$work/initrd/bin"
cp /bin/busybox "$work/initrd/bin/busybox"
cat >"$work/initrd/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
echo "CFS-CMDLINE:[$(/bin/busybox cat /proc/cmdline)]"
sb=$(/bin/busybox dmesg | /bin/busybox grep -io 'secure boot [a-z]*' | /bin/busybox head -n1)
echo "CFS-SECUREBOOT:[$sb]"
echo "CFS-DONE"
/bin/busybox poweroff -f
INIT
chmod +x "$work/initrd/init"
(cd "$work/initrd" && find . | busybox cpio -o -H newc 2>/dev/null) >"$work/initrd.cpio"

# The UKI: the kernel, the initramfs, a sealed command line.
digest=$(printf '%0128x' 12648430)
printf 'PRETTY_NAME="composefs-cpp boot test"\nID=cfs-test\nVERSION_ID=1\n' >"$work/os-release"
openssl pkey -in "$sk_key" -passin pass:snakeoil -out "$work/db.key" 2>/dev/null
"$cfsctl" uki build --linux "$kdir/vmlinuz" --initrd "$work/initrd.cpio" \
  --os-release @"$work/os-release" --cmdline "console=ttyS0 panic=-1 rdinit=/init" \
  --composefs-digest "$digest" --output "$work/uki.efi" 2>"$work/build.err" ||
  die "cfsctl uki build: $(cat "$work/build.err")"
expected=$("$cfsctl" uki inspect --json "$work/uki.efi" |
  /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["cmdline"])')
[[ $expected == "composefs.digest=v1-sha512-12:$digest composefs=$digest console=ttyS0"* ]] ||
  die "unexpected sealed cmdline: $expected"

"$cfsctl" uki sign "$work/uki.efi" --secureboot-private-key "$work/db.key" \
  --secureboot-certificate "$sk_cert" --output "$work/uki-db.efi"
"$cfsctl" uki sign "$sdboot" --secureboot-private-key "$work/db.key" \
  --secureboot-certificate "$sk_cert" --output "$work/BOOTX64.EFI"
openssl req -new -x509 -newkey rsa:2048 -nodes -sha256 -days 30 -subj "/CN=not enrolled" \
  -keyout "$work/other.key" -out "$work/other.pem" 2>/dev/null
"$cfsctl" uki sign "$work/uki.efi" --secureboot-private-key "$work/other.key" \
  --secureboot-certificate "$work/other.pem" --output "$work/uki-other.efi"

# boot NAME UKI TIMEOUT STOP: an ESP with systemd-boot and that UKI, booted
# once; the serial console goes to $work/NAME.log.  qemu is stopped as soon
# as the console matches the extended regex STOP (the firmware waits in its
# menu after refusing an image), else after TIMEOUT seconds.
boot() {
  local name=$1 uki=$2 secs=$3 stop=$4 esp=$work/$1.esp
  mkdir -p "$work/$name/EFI/BOOT" "$work/$name/EFI/Linux" "$work/$name/loader"
  cp "$work/BOOTX64.EFI" "$work/$name/EFI/BOOT/BOOTX64.EFI"
  cp "$uki" "$work/$name/EFI/Linux/cfs-test.efi"
  printf 'timeout 0\n' >"$work/$name/loader/loader.conf"
  truncate -s 64M "$esp"
  mkfs.vfat -F 32 -n ESP "$esp" >/dev/null
  mcopy -s -i "$esp" "$work/$name"/* ::/
  cp "$ovmf_vars" "$work/$name.vars"
  : >"$work/$name.log"
  timeout "$secs" qemu-system-x86_64 -machine q35,smm=on -accel tcg -m 1024 -smp 1 \
    -global driver=cfi.pflash01,property=secure,value=on \
    -drive if=pflash,format=raw,unit=0,readonly=on,file="$ovmf_code" \
    -drive if=pflash,format=raw,unit=1,file="$work/$name.vars" \
    -drive if=none,id=esp,format=raw,file="$esp" -device virtio-blk-pci,drive=esp \
    -nographic -serial file:"$work/$name.log" -monitor none -nodefaults -no-reboot \
    </dev/null >/dev/null 2>&1 &
  local qemu=$!
  while kill -0 "$qemu" 2>/dev/null; do
    if grep -qiE "$stop" "$work/$name.log"; then
      sleep 1  # let the rest of the line arrive
      kill "$qemu" 2>/dev/null || true
      break
    fi
    sleep 1
  done
  wait "$qemu" 2>/dev/null || true
  tr -d '\r' <"$work/$name.log" | sed 's/\x1b\[[0-9;]*m//g' >"$work/$name.txt"
}

fails=0
check() { if eval "$2"; then echo "ok: $1"; else echo "FAIL: $1"; fails=$((fails + 1)); fi; }

boot enrolled "$work/uki-db.efi" 150 "CFS-DONE|kernel panic"
log=$work/enrolled.txt
check "signed with the enrolled key: boots to the initramfs" "grep -q CFS-DONE '$log'"
check "the guest's /proc/cmdline is the sealed .cmdline" "grep -qF 'CFS-CMDLINE:[$expected]' '$log'"
check "the kernel reports Secure Boot enabled" "grep -qi 'CFS-SECUREBOOT:\[secure boot enabled\]' '$log'"
grep -E 'CFS-|Secure boot' "$log" | sed 's/^/  console: /' || true
[[ $fails == 0 ]] || { echo "--- serial console:"; tail -n 40 "$log"; }

for case in other:"$work/uki-other.efi" unsigned:"$work/uki.efi"; do
  name=${case%%:*}
  boot "$name" "${case#*:}" 90 "access denied|security violation|CFS-DONE"
  log=$work/$name.txt
  check "$name: refused by the firmware (Access Denied / Security Violation)" \
    "grep -qiE 'access denied|security violation' '$log'"
  check "$name: never reached the initramfs" "! grep -q CFS-DONE '$log'"
  grep -iE 'access denied|security violation' "$log" | head -n2 | sed 's/^/  console: /' || true
  [[ $fails == 0 ]] || { echo "--- serial console ($name):"; tail -n 20 "$log"; }
done
[[ $fails == 0 ]] || exit 1
echo "PASS"
