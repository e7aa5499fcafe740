#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The chain of trust, end to end (issue 14), in qemu (TCG) with OVMF and
# Secure Boot on (Debian's snakeoil keys enrolled):
#   firmware -> signed systemd-boot -> signed UKI (sealed composefs digest)
#   -> initramfs (contrib/initramfs/init/init + composefs-setup-root)
#   -> composefs root with verity=require -> the image's /sbin/init.
# An OS image (busybox, an /sbin/init printing what is checked, cfsctl) is
# made with umoci; its UKI is built by `cfsctl uki build` sealing the
# image's bootable digest and signed by `cfsctl uki sign`; the disk is made
# by `cfsctl install to-disk`, run in a VM because fs-verity is missing on
# the host.  Then, each from a copy of the installed disk:
#   ok        boots; marker v1 from the root; / is overlay, verity=require,
#             source composefs:<sealed digest>; Secure Boot on; PCR 11
#             (swtpm) equals cfsctl's and systemd-measure's prediction
#   other     UKI signed with another key: the firmware refuses it
#   unsigned  unsigned UKI: the firmware refuses it
#   image     the repository's images swapped after sealing: setup-root
#             refuses (digest mismatch)
#   object    a data block of a file's object changed: reading it gives EIO
#   init      a data block of /sbin/init's object changed: no boot
#   nodigest  a signed UKI sealing a digest no image has: setup-root refuses
#   lifecycle boot 1 changes /etc and /var, `cfsctl switch`es to v2 (from an
#             OCI layout on a second disk) and finalizes; boot 2 is v2 with
#             the changes kept and runs `cfsctl rollback`; boot 3 is v1.
# Usage: chain_test.sh BUILD_DIR
# Exit 0 passed, 1 failed, 77 skipped (the reason on stdout).
set -euo pipefail
build=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
t0=$(date +%s)

# skip, die, the need_* checks, debian_kernel, elf, busybox_in, mods,
# guest_mods, cpio_of, datadisk, install_in_vm.
# shellcheck source=../vm/lib.sh
. "$src/tests/vm/lib.sh"

[[ $(id -u) == 0 ]] || skip "needs root (losetup, debugfs on the disk image)"
need_secure_boot
need_busybox
need_tools umoci mkfs.ext4 debugfs mkfs.vfat mcopy sfdisk blkid fsverity losetup
for t in cfsctl composefs-setup-root; do [[ -x $build/bin/$t ]] || die "$build/bin/$t not built"; done
cfsctl=$build/bin/cfsctl
debian_kernel bookworm-backports

work=$(mktemp -d "${TMPDIR:-/var/tmp}/cfs-chain.XXXXXX")
loops=()
cleanup() {
  local l
  for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done
  [[ -n ${swtpm_pid:-} ]] && kill "$swtpm_pid" 2>/dev/null
  [[ -n ${CFS_CHAIN_KEEP:-} ]] && { echo "kept $work"; return; }
  rm -rf -- "$work"
}
trap cleanup EXIT

# ---- the OS image (umoci), one version at a time --------------------------

# The image's /sbin/init: what the test checks, printed from inside the
# verified root, then the action /action of the second disk names.
os_init() {
  cat <<'INIT'
#!/bin/busybox sh
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
$B mount -t devtmpfs devtmpfs /dev
$B mount -t tmpfs -o mode=0755 tmpfs /run
$B mkdir -p /run/bin /run/data
$B --install -s /run/bin
export PATH=/run/bin:/usr/bin
INIT
  echo "V=$1"
  cat <<'INIT'
echo "CFS-CHAIN-MARKER $V"
# The mount at / (the last one listed): fstype, source, super options.
echo "CFS-ROOT: $(awk '$5 == "/" { for (i = 7; $i != "-"; i++); r = $(i + 1) " " $(i + 2) " " $(i + 3) } END { print r }' /proc/self/mountinfo)"
echo "CFS-CMDLINE:[$(cat /proc/cmdline)]"
mount -t efivarfs efivarfs /sys/firmware/efi/efivars 2>/dev/null
sb=$(od -An -tu1 /sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c 2>/dev/null | awk '{ print $NF }')
echo "CFS-SECUREBOOT: efivar=[$sb] kernel=[$(dmesg | grep -io 'secure boot [a-z]*' | head -n1)]"
if sum=$(sha256sum /usr/share/chain/data 2>/run/err); then
  echo "CFS-DATA: ok ${sum%% *}"
else
  echo "CFS-DATA: error $(cat /run/err)"
fi
[ -r /sys/class/tpm/tpm0/pcr-sha256/11 ] && echo "CFS-PCR11: $(cat /sys/class/tpm/tpm0/pcr-sha256/11)"
action=none
if [ -b /dev/vdb ] && mount -t ext4 -o ro /dev/vdb /run/data; then
  action=$(cat /run/data/action)
fi
echo "CFS-ACTION: $action"
log() { while read -r l; do echo "CFS-LOG: $l"; done; }
esp() { mount -t vfat /dev/vda1 /sysroot/boot 2>&1 | log; }
case $action in
  upgrade)
    echo "changed in $V" >/etc/chain-local 2>&1 | log
    echo "written in $V" >/var/chain-var 2>&1 | log
    esp
    cfsctl switch --sysroot /sysroot oci:/run/data/oci:v2 2>&1 | log
    cfsctl finalize --sysroot /sysroot 2>&1 | log
    cfsctl status --sysroot /sysroot 2>&1 | log
    umount /sysroot/boot
    ;;
  rollback)
    echo "CFS-ETC: [$(cat /etc/chain-local 2>&1)]"
    echo "CFS-VAR: [$(cat /var/chain-var 2>&1)]"
    esp
    cfsctl rollback --sysroot /sysroot 2>&1 | log
    cfsctl status --sysroot /sysroot 2>&1 | log
    umount /sysroot/boot
    ;;
esac
sync
mount -o remount,ro /sysroot 2>/dev/null
echo "CFS-CHAIN-END"
poweroff -f
INIT
}

# The UKI's initramfs: busybox, the modules, composefs-setup-root and
# contrib's /init.
ird=$work/initrd
busybox_in "$ird"
mods "$ird" "${guest_mods[@]}"
elf "$ird" "$build/bin/composefs-setup-root"
mkdir -p "$ird/usr/bin"
mv "$ird$build/bin/composefs-setup-root" "$ird/usr/bin/"
rmdir -p "$ird$build/bin" 2>/dev/null || true
mkdir -p "$ird/proc" "$ird/sys" "$ird/dev" "$ird/run" "$ird/sysroot"
cp "$src/contrib/initramfs/init/init" "$ird/init"
chmod 755 "$ird/init"
cpio_of "$ird" "$work/initrd.cpio"

openssl pkey -in "$sk_key" -passin pass:snakeoil -out "$work/db.key" 2>/dev/null
openssl req -new -x509 -newkey rsa:2048 -nodes -sha256 -days 30 -subj "/CN=not enrolled" \
  -keyout "$work/other.key" -out "$work/other.pem" 2>/dev/null
cmdline="console=ttyS0 panic=-1 quiet root=LABEL=root"

# uki NAME V1HEX V2HEX: $work/NAME.efi (unsigned) and NAME-db.efi (snakeoil).
uki() {
  "$cfsctl" uki build --linux "$kdir/vmlinuz" --initrd "$work/initrd.cpio" \
    --os-release @"$work/os-release" --cmdline "$cmdline" \
    --composefs-digest "$2" --composefs-digest-v2 "$3" --output "$work/$1.efi" ||
    die "cfsctl uki build $1"
  "$cfsctl" uki sign "$work/$1.efi" --secureboot-private-key "$work/db.key" \
    --secureboot-certificate "$sk_cert" --output "$work/$1-db.efi" 2>/dev/null ||
    die "cfsctl uki sign $1"
}

oci=$work/oci
hrepo=$work/hrepo  # the host's scratch repository, for computing digests only
umoci init --layout "$oci"
umoci new --image "$oci:base"
umoci unpack --image "$oci:base" "$work/bundle" >/dev/null
rootfs=$work/bundle/rootfs
skeleton=(bin sbin etc var usr/bin usr/share/chain boot sysroot proc sys dev run tmp)
mkdir -p "${skeleton[@]/#/$rootfs/}"
cp /bin/busybox "$rootfs/bin/busybox"
elf "$rootfs" "$cfsctl"
mv "$rootfs$cfsctl" "$rootfs/usr/bin/cfsctl"
rmdir -p "$rootfs$build/bin" 2>/dev/null || true
# rmdir -p goes on through the image's own empty directories: with the build
# under /var/tmp it took /var with it, and setup-root then had no /var to
# bind the deployment's onto (a fresh clone in /var/tmp failed every boot).
mkdir -p "${skeleton[@]/#/$rootfs/}"
head -c 200000 /dev/urandom >"$rootfs/usr/share/chain/data"
data_sum=$(sha256sum "$rootfs/usr/share/chain/data" | cut -d' ' -f1)
printf 'the image default\n' >"$rootfs/etc/chain-local"
"$cfsctl" --repo "$hrepo" init --insecure --erofs-version 1 --extra-erofs-version 2 >/dev/null

declare -A d1=() d2=()
for v in v1 v2; do
  os_init "$v" >"$rootfs/sbin/init"
  chmod 755 "$rootfs/sbin/init"
  cp "$rootfs/sbin/init" "$work/init-$v"
  printf 'PRETTY_NAME="composefs-cpp chain %s"\nID=cfs-chain\nVERSION_ID=%s\n' "$v" "${v#v}" \
    >"$rootfs/etc/os-release"
  cp "$rootfs/etc/os-release" "$work/os-release"
  rm -rf "$rootfs/boot/EFI"
  umoci repack --image "$oci:$v-base" "$work/bundle"
  "$cfsctl" --repo "$hrepo" oci pull "oci:$oci:$v-base" >/dev/null
  d1[$v]=$("$cfsctl" --repo "$hrepo" --erofs-version 1 oci compute-id --bootable "oci:$oci:$v-base")
  d2[$v]=$("$cfsctl" --repo "$hrepo" --erofs-version 2 oci compute-id --bootable "oci:$oci:$v-base")
  uki "uki-$v" "${d1[$v]}" "${d2[$v]}"
  mkdir -p "$rootfs/boot/EFI/Linux"
  cp "$work/uki-$v-db.efi" "$rootfs/boot/EFI/Linux/cfs-chain.efi"
  umoci repack --image "$oci:$v" "$work/bundle"
  # The UKI is outside the bootable image: adding it changes nothing sealed.
  "$cfsctl" --repo "$hrepo" oci pull "oci:$oci:$v" >/dev/null
  got=$("$cfsctl" --repo "$hrepo" --erofs-version 1 oci compute-id --bootable "oci:$oci:$v")
  [[ $got == "${d1[$v]}" ]] || die "$v: the bootable digest changed with the UKI (${d1[$v]} -> $got)"
done
umoci gc --layout "$oci"
echo "sealed v1 ${d1[v1]:0:16}... (V2 ${d2[v1]:0:16}...), v2 ${d1[v2]:0:16}..."

# ---- install: `cfsctl install to-disk` in a VM (fs-verity) ---------------

mkdir -p "$work/payload"
cp -a "$oci" "$work/payload/oci"
cp "$work/db.key" "$work/payload/db.key"
cp "$sk_cert" "$work/payload/db.pem"
echo v1 >"$work/payload/tag"
truncate -s 1G "$work/disk.img"
echo "prepared in $(($(date +%s) - t0))s"
t1=$(date +%s)
install_in_vm "$work" "$kdir/vmlinuz" "$cfsctl" "$work/payload" "$work/disk.img" 1024 --esp-size 64M
echo "installed in $(($(date +%s) - t1))s: $(grep -a '^installed' "$work/install.txt" || true)"
[[ ${CFS_CHAIN_STOP:-} == install ]] && exit 0

# ---- boots ----------------------------------------------------------------

# boot NAME DISK TIMEOUT STOP [DATADISK]: one OVMF Secure Boot boot of DISK;
# the serial console in $work/NAME.txt.  qemu stops at the console's first
# match of the extended regex STOP (the firmware waits in its menu after a
# refusal, the initramfs in a shell), else after TIMEOUT seconds.
tpm=()
boot() {
  local name=$1 disk=$2 secs=$3 stop=$4 data=${5:-} extra=()
  # shellcheck disable=SC2054  # qemu's option values have commas
  [[ -n $data ]] && extra+=(-drive file="$data",if=none,id=data,format=raw,cache=unsafe
    -device virtio-blk-pci,drive=data)
  cp "$ovmf_vars" "$work/$name.vars"
  : >"$work/$name.log"
  local b0
  b0=$(date +%s)
  timeout "$secs" qemu-system-x86_64 -machine q35,smm=on -accel tcg -m 1024 -smp 1 \
    -global driver=cfi.pflash01,property=secure,value=on \
    -drive if=pflash,format=raw,unit=0,readonly=on,file="$ovmf_code" \
    -drive if=pflash,format=raw,unit=1,file="$work/$name.vars" \
    -drive file="$disk",if=none,id=disk,format=raw,cache=unsafe -device virtio-blk-pci,drive=disk \
    "${extra[@]}" "${tpm[@]}" \
    -nographic -serial file:"$work/$name.log" -monitor none -nodefaults -no-reboot \
    </dev/null >/dev/null 2>&1 &
  local qemu=$!
  while kill -0 "$qemu" 2>/dev/null; do
    if grep -qaiE "$stop" "$work/$name.log"; then
      sleep 1
      kill "$qemu" 2>/dev/null || true
      break
    fi
    sleep 1
  done
  wait "$qemu" 2>/dev/null || true
  tr -d '\r' <"$work/$name.log" | sed 's/\x1b\[[0-9;]*[a-zA-Z]//g' >"$work/$name.txt"
  echo "boot $name: $(($(date +%s) - b0))s"
}

fails=0
check() { if eval "$2"; then echo "ok: $1"; else echo "FAIL: $1"; fails=$((fails + 1)); fi; }
show() { grep -aE "${2:-CFS-}" "$work/$1.txt" | head -n "${3:-20}" | sed 's/^/  console: /' || true; }
dump() { [[ $fails == "$1" ]] || { echo "--- serial console ($2):"; tail -n 30 "$work/$2.txt"; }; }
# scenario NAME DISK TIMEOUT STOP [DATADISK]: one case's boot; its checks
# follow (reading $log), then end_scenario NAME [PATTERN [LINES]] shows the
# console's matching lines, and its tail when one of the case's checks failed.
scenario() { case_fails=$fails; boot "$@"; log=$work/$1.txt; }
end_scenario() { show "$1" "${2:-CFS-}" "${3:-20}"; dump "$case_fails" "$1"; }
copy() { cp --sparse=always "$work/disk.img" "$work/$1.img"; }

# Partition offsets of DISK (bytes): ESP and root.
part_start() { sfdisk -J "$1" | python3 -c "import json,sys; t=json.load(sys.stdin)['partitiontable']; print(t['partitions'][$2-1]['start']*t.get('sectorsize',512))"; }
esp_off=$(part_start "$work/disk.img" 1)
esp_uki=$(mdir -/ -b -i "$work/disk.img@@$esp_off" ::/EFI/Linux | grep -i '\.efi$' | head -n1)
[[ -n $esp_uki ]] || die "no UKI in the installed ESP's /EFI/Linux"
# The installed ESP's UKI is the signed one built here.
mcopy -n -i "$work/disk.img@@$esp_off" "$esp_uki" "$work/esp-uki.efi"
cmp -s "$work/esp-uki.efi" "$work/uki-v1-db.efi" || die "the installed UKI is not the one built"
# put_uki IMG FILE: FILE as the ESP's UKI.
put_uki() { mcopy -o -n -i "$1@@$esp_off" "$2" "$esp_uki"; }
# The menu's 5 s wait, 9 times over, buys nothing here.
printf 'timeout 0\n' >"$work/loader.conf"
mcopy -o -n -i "$work/disk.img@@$esp_off" "$work/loader.conf" ::/loader/loader.conf


# ---- 1. the verified boot (with a TPM when swtpm is there) ---------------
if command -v swtpm >/dev/null; then
  mkdir -p "$work/tpm"
  swtpm socket --tpm2 --tpmstate dir="$work/tpm" --ctrl type=unixio,path="$work/tpm/sock" \
    --flags startup-clear >/dev/null 2>&1 &
  swtpm_pid=$!
  for _ in $(seq 50); do [[ -S $work/tpm/sock ]] && break; sleep 0.1; done
  # shellcheck disable=SC2054
  tpm=(-chardev socket,id=chrtpm,path="$work/tpm/sock" -tpmdev emulator,id=tpm0,chardev=chrtpm
    -device tpm-tis,tpmdev=tpm0)
else
  echo "note: no PCR 11 check: swtpm missing (package swtpm)"
fi
copy ok
mkdir -p "$work/data-upgrade"
cp -a "$oci" "$work/data-upgrade/oci"
echo upgrade >"$work/data-upgrade/action"
datadisk "$work/data-upgrade.img" "$work/data-upgrade"
scenario ok "$work/ok.img" 240 "CFS-CHAIN-END|kernel panic|init: " "$work/data-upgrade.img"
tpm_was=("${tpm[@]}")
tpm=()
[[ -n ${swtpm_pid:-} ]] && { kill "$swtpm_pid" 2>/dev/null || true; swtpm_pid=""; }
sealed=$("$cfsctl" uki inspect --json "$work/uki-v1.efi" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["cmdline"])')
check "boots to the image's /sbin/init: marker v1" "grep -aq '^CFS-CHAIN-MARKER v1' '$log'"
check "/proc/cmdline is the sealed .cmdline" "grep -aqF 'CFS-CMDLINE:[$sealed]' '$log'"
check "/ is overlay, source composefs:<the sealed V1 digest>, verity=require" \
  "grep -aE '^CFS-ROOT: overlay composefs:${d1[v1]} ' '$log' | grep -q 'verity=require'"
check "Secure Boot on (the SecureBoot variable is 1, the kernel says enabled)" \
  "grep -aqiE '^CFS-SECUREBOOT: efivar=\[1\] kernel=\[secure boot enabled\]' '$log'"
check "a file of the image reads back as written" "grep -aq '^CFS-DATA: ok $data_sum' '$log'"
if [[ ${#tpm_was[@]} -gt 0 ]]; then
  # The oracles: cfsctl's prediction (no phases: nothing in this initramfs
  # measures one) and systemd-measure's from the UKI's sections.
  mkdir -p "$work/sec"
  python3 - "$work/uki-v1-db.efi" "$work/sec" <<'PY'
import struct, sys
d = open(sys.argv[1], 'rb').read()
pe = struct.unpack_from('<I', d, 0x3c)[0]
n, = struct.unpack_from('<H', d, pe + 6)
opt, = struct.unpack_from('<H', d, pe + 20)
for i in range(n):
    name, vsize, _, rsize, rptr = struct.unpack_from('<8sIIII', d, pe + 24 + opt + 40 * i)
    name = name.rstrip(b'\0').decode().lstrip('.')
    open(f"{sys.argv[2]}/{name}", 'wb').write(d[rptr:rptr + min(vsize, rsize)])
PY
  want=$("$cfsctl" uki pcr11 --pcr-banks sha256 --phases "" "$work/uki-v1-db.efi" |
    sed -n 's/^11:sha256=//p')
  sdm=$(/lib/systemd/systemd-measure calculate --linux="$work/sec/linux" --osrel="$work/sec/osrel" \
    --cmdline="$work/sec/cmdline" --initrd="$work/sec/initrd" --bank=sha256 --phase= 2>/dev/null |
    sed -n 's/^11:sha256=//p')
  got=$(sed -n 's/^CFS-PCR11: //p' "$log" | tr 'A-F' 'a-f')
  check "PCR 11 read in the guest equals cfsctl uki pcr11's prediction" "[[ -n '$got' && '$got' == '$want' ]]"
  check "... and systemd-measure's" "[[ '$sdm' == '$want' ]]"
  echo "  PCR 11: guest $got, cfsctl $want, systemd-measure ${sdm:-none}"
fi
end_scenario ok


# ---- 2. what must not boot, each on its own copy -------------------------
root_off=$(part_start "$work/disk.img" 2)
# dbg IMG CMD...: debugfs on IMG's root filesystem (-w: writes).
dbg() {
  local img=$1 l rc=0
  shift
  l=$(losetup -f --show -o "$root_off" "$img")
  loops+=("$l")
  debugfs "$@" "$l" 2>/dev/null || rc=$?
  losetup -d "$l"
  return $rc
}
# corrupt IMG FILE: one byte of the first data block of the object holding
# FILE's content (named by its fs-verity digest) changed under ext4.
corrupt() {
  local d blk
  d=$(fsverity digest --hash-alg=sha512 --compact "$2")
  blk=$(dbg "$1" -R "bmap composefs/objects/${d:0:2}/${d:2} 0" | tail -n1)
  [[ $blk =~ ^[0-9]+$ && $blk != 0 ]] || die "no block for the object of $2 ($d): '$blk'"
  printf '\x5a' | dd of="$1" bs=1 seek=$((root_off + blk * 4096 + 7)) conv=notrunc status=none
}
copy unsigned && put_uki "$work/unsigned.img" "$work/uki-v1.efi"
"$cfsctl" uki sign "$work/uki-v1.efi" --secureboot-private-key "$work/other.key" \
  --secureboot-certificate "$work/other.pem" --output "$work/uki-v1-other.efi" 2>/dev/null
copy other && put_uki "$work/other.img" "$work/uki-v1-other.efi"
# The sealed images swapped: each name now holds the other format's image.
copy image
t1=$(dbg "$work/image.img" -R "cat composefs/images/${d1[v1]}")
t2=$(dbg "$work/image.img" -R "cat composefs/images/${d2[v1]}")
printf 'rm composefs/images/%s\nrm composefs/images/%s\nsymlink composefs/images/%s %s\nsymlink composefs/images/%s %s\n' \
  "${d1[v1]}" "${d2[v1]}" "${d1[v1]}" "$t2" "${d2[v1]}" "$t1" >"$work/swap.cmd"
dbg "$work/image.img" -w -f "$work/swap.cmd" >/dev/null
copy object && corrupt "$work/object.img" "$rootfs/usr/share/chain/data"
copy init && corrupt "$work/init.img" "$work/init-v1"
# A signed UKI sealing a digest no image has.
nodigest=$(printf '%0128x' 48879)
uki uki-none "$nodigest" "$(printf '%0128x' 48880)"
copy nodigest && put_uki "$work/nodigest.img" "$work/uki-none-db.efi"

for name in other unsigned; do
  scenario "$name" "$work/$name.img" 90 "access denied|security violation|CFS-CHAIN-END"
  check "$name: the firmware refuses the UKI (Access Denied / Security Violation)" \
    "grep -aqiE 'access denied|security violation' '$log'"
  check "$name: nothing of the image ran" "! grep -aq CFS-CHAIN-MARKER '$log'"
  end_scenario "$name" 'access denied|security violation' 2
done
scenario image "$work/image.img" 150 "setup-root failed|CFS-CHAIN-END|kernel panic"
check "image: composefs-setup-root refuses the swapped image" \
  "grep -aq 'init: composefs-setup-root failed' '$log'"
check "image: ... naming the sealed digest and the mismatch" \
  "grep -a 'composefs-setup-root' '$log' | grep -a '${d1[v1]:0:32}' | grep -aqiE 'mismatch|does not match|expected'"
check "image: nothing of the image ran" "! grep -aq CFS-CHAIN-MARKER '$log'"
end_scenario image 'composefs-setup-root' 4
scenario object "$work/object.img" 150 "setup-root failed|CFS-CHAIN-END|kernel panic"
check "object: the image boots (its metadata is intact)" "grep -aq '^CFS-CHAIN-MARKER v1' '$log'"
check "object: reading the changed file fails with EIO" \
  "grep -aqE '^CFS-DATA: error .*(I/O error|Input/output error)' '$log'"
end_scenario object CFS-DATA 2
scenario init "$work/init.img" 150 "setup-root failed|CFS-CHAIN-END|kernel panic|can't execute"
check "init: a changed /sbin/init does not run" "! grep -aq CFS-CHAIN-MARKER '$log'"
check "init: ... refused with EIO" "grep -aqiE 'input/output error|I/O error' '$log'"
end_scenario init 'error|panic' 3
scenario nodigest "$work/nodigest.img" 150 "setup-root failed|CFS-CHAIN-END|kernel panic"
check "nodigest: composefs-setup-root refuses, naming the digest" \
  "grep -a 'composefs-setup-root' '$log' | grep -aq '${nodigest:0:32}'"
check "nodigest: the initramfs gives up (emergency shell)" \
  "grep -aq 'init: composefs-setup-root failed' '$log'"
check "nodigest: nothing of an image ran" "! grep -aq CFS-CHAIN-MARKER '$log'"
end_scenario nodigest 'composefs-setup-root' 3

# ---- 3. upgrade and rollback: boot ok switched to v2 and finalized -------
show ok CFS-LOG 30
mkdir -p "$work/data-rollback"
echo rollback >"$work/data-rollback/action"
datadisk "$work/data-rollback.img" "$work/data-rollback"
scenario v2 "$work/ok.img" 240 "CFS-CHAIN-END|kernel panic|init: " "$work/data-rollback.img"
check "upgrade: the next boot is v2" "grep -aq '^CFS-CHAIN-MARKER v2' '$log'"
check "upgrade: / is v2's sealed image with verity=require" \
  "grep -aE '^CFS-ROOT: overlay composefs:${d1[v2]} ' '$log' | grep -q 'verity=require'"
check "upgrade: the /etc change made on v1 survived the merge" \
  "grep -aqF 'CFS-ETC: [changed in v1]' '$log'"
check "upgrade: /var is shared (v1's file is there)" "grep -aqF 'CFS-VAR: [written in v1]' '$log'"
end_scenario v2
scenario back "$work/ok.img" 240 "CFS-CHAIN-END|kernel panic|init: "
check "rollback: the next boot is v1 again" "grep -aq '^CFS-CHAIN-MARKER v1' '$log'"
check "rollback: / is v1's sealed image" "grep -aqE '^CFS-ROOT: overlay composefs:${d1[v1]} ' '$log'"
end_scenario back
echo "chain test: $(($(date +%s) - t0))s in all"
[[ $fails == 0 ]] || exit 1
echo "PASS"
