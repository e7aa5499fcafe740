#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The full chain of trust on a real distribution (make e2e): a Debian 12
# system with systemd and SELinux policy, Debian's 6.12 kernel and a dracut
# initramfs carrying composefs-setup-root, built with podman from
# examples/debian-uki (compute-karg against the mounted base, the UKI built
# and signed with the snakeoil key inside the build), installed with
# `cfsctl install to-disk`, booted under OVMF with Secure Boot on (qemu,
# TCG) to multi-user.target.  Then, inside the guest: an /etc change and a
# /var file, `cfsctl upgrade` from a second disk holding version 2, the
# shutdown finalizes (contrib/systemd/composefs-finalize-staged.service),
# version 2 boots with the /etc change and /var kept, `cfsctl rollback`,
# version 1 boots again.  Each boot is checked from the serial console; a
# table of boot times, image sizes and digests is printed at the end.
# Usage: full_chain.sh BUILD_DIR.  Exit 0 passed, 1 failed, 77 skipped.
# CFS_E2E_BOOT_TIMEOUT: seconds one boot may take (default 900).
# CFS_E2E_WORK=DIR: work there and keep it; a second run reuses the built
# images and the installed disk found there (for working on the boots).
set -euo pipefail
build=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
cfsctl=$build/bin/cfsctl
boot_timeout=${CFS_E2E_BOOT_TIMEOUT:-900}
t_start=$(date +%s)

# skip, die, the need_* checks, debian_kernel, and the guest helpers.
# shellcheck source=../vm/lib.sh
. "$src/tests/vm/lib.sh"

((EUID == 0)) || skip "needs root (loop devices, podman, debootstrap)"
need_secure_boot
need_busybox
need_tools podman skopeo dracut lsinitrd depmod debootstrap sfdisk mkfs.vfat mkfs.ext4 xz
[[ -x $cfsctl && -x $build/bin/composefs-setup-root ]] || die "the tools are not built in $build"
debian_kernel bookworm-backports
tree=$("$src/scripts/selinux-rootfs.sh" --systemd) ||
  skip "no Debian tree with systemd (scripts/selinux-rootfs.sh --systemd failed)"

if [[ -n ${CFS_E2E_WORK:-} ]]; then
  work=$CFS_E2E_WORK
  mkdir -p "$work"
else
  work=$(mktemp -d "${TMPDIR:-/var/tmp}/cfs-e2e.XXXXXX")
fi
tag=localhost/composefs-cpp-e2e/os-$$
cleanup() {
  podman rmi -f "$tag-v1:latest" "$tag-v1-base:latest" "$tag-v2:latest" "$tag-v2-base:latest" \
    >/dev/null 2>&1 || true
  [[ -n ${CFS_E2E_WORK:-} ]] || rm -rf -- "$work"
}
trap cleanup EXIT
# The installer VM and the guest both mount the second disk at /img, so the
# image install records (oci:/img/oci:latest) is the one `cfsctl upgrade`
# pulls again in the guest, where the second disk then holds version 2.
images=/img
declare -A t_stage=()
stage() { t_stage[$1]=$(($(date +%s) - $2)); }

# ---- cfsctl for the guest: the binary with the libraries it was built
# against and their loader (the Debian tree has none of them).
guest_cfsctl() {  # DIR: installs DIR/usr/lib/composefs-cpp and DIR/usr/bin/cfsctl
  "$src/scripts/bundle-tool.sh" "$cfsctl" "$1/usr/lib/composefs-cpp"
  mkdir -p "$1/usr/bin"
  ln -sf ../lib/composefs-cpp/cfsctl "$1/usr/bin/cfsctl"
}

# ---- the OS tree of version V: the Debian tree, the kernel with its
# modules, cfsctl, the finalize unit, and the test's own unit, which prints
# what the test checks and runs the step the second disk names.
make_tree() {  # V DIR
  local v=$1 r=$2
  cp -a "$tree/." "$r/"
  mkdir -p "$r/usr/lib/modules/$kver"
  cp -a "$kdir/modules/." "$r/usr/lib/modules/$kver/"
  depmod -b "$r" "$kver"
  guest_cfsctl "$r"
  # /img: where the second disk is mounted (the root is read-only).
  mkdir -p "$r/usr/lib/cfs-e2e" "$r/etc/systemd/system/multi-user.target.wants" "$r/sysroot" \
    "$r/img"
  echo "$v" >"$r/usr/lib/cfs-e2e/version"
  cp "$src/contrib/systemd/composefs-finalize-staged.service" "$r/etc/systemd/system/"
  ln -sf ../composefs-finalize-staged.service \
    "$r/etc/systemd/system/multi-user.target.wants/composefs-finalize-staged.service"
  # The ESP, where systemd-boot reads the entries cfsctl writes.
  printf 'LABEL=ESP /sysroot/boot vfat umask=0077 0 0\n' >"$r/etc/fstab"
  # The serial console is the test's: no login prompt on it.
  ln -sf /dev/null "$r/etc/systemd/system/serial-getty@ttyS0.service"
  cat >"$r/etc/systemd/system/cfs-e2e.service" <<'UNIT'
[Unit]
Description=composefs-cpp end-to-end test step
After=multi-user.target composefs-finalize-staged.service
[Service]
Type=exec
ExecStart=/usr/lib/cfs-e2e/step
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
[Install]
WantedBy=multi-user.target
UNIT
  ln -sf ../cfs-e2e.service "$r/etc/systemd/system/multi-user.target.wants/cfs-e2e.service"
  cat >"$r/usr/lib/cfs-e2e/step" <<STEP
#!/bin/sh
say() { printf 'CFS-E2E-%s:[%s]\n' "\$1" "\$2"; }
say VERSION "\$(cat /usr/lib/cfs-e2e/version)"
say ROOT "\$(awk '\$5 == "/" {print \$0}' /proc/self/mountinfo | tail -n1)"
say CMDLINE "\$(cat /proc/cmdline)"
sb=\$(od -An -tu1 /sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c 2>/dev/null | awk '{print \$NF}')
say SECUREBOOT "\$sb"
say RUNNING "\$(systemctl is-system-running --wait)"
say FAILED "\$(systemctl --failed --plain --no-legend | tr '\n' ' ')"
say STATUS "\$(cfsctl status --json 2>&1 | tr -d '\n')"
say ETC "\$(cat /etc/cfs-e2e-local 2>&1)"
say VAR "\$(cat /var/lib/cfs-e2e-var 2>&1)"
mount -o ro /dev/vdb $images && . $images/step.sh
say DONE "\$(cat /usr/lib/cfs-e2e/version)"
systemctl poweroff
STEP
  chmod 0755 "$r/usr/lib/cfs-e2e/step"
}

# ---- the dracut initramfs (host dracut: Debian 12's, like the guest's
# systemd) with our module, from the guest's kernel modules.
t0=$(date +%s)
if [[ -d $work/out-v2/oci ]]; then
  echo "reusing the images built in $work"
else
rm -rf "$work/v1" "$work/v2"
mkdir -p "$work/v1" "$work/v2"
make_tree v1 "$work/v1"
mkdir -p "$work/dracut"
cp -a /usr/lib/dracut/. "$work/dracut/"
cp -a "$src/contrib/initramfs/dracut/37composefs" "$work/dracut/modules.d/"
: >"$work/dracut.conf"
mkdir -p "$work/dracut.conf.d"
dracutbasedir=$work/dracut COMPOSEFS_SETUP_ROOT=$build/bin/composefs-setup-root \
  dracut --force --no-hostonly --kver "$kver" --kmoddir "$work/v1/usr/lib/modules/$kver" \
  --conf "$work/dracut.conf" --confdir "$work/dracut.conf.d" --tmpdir "$work" \
  -m "base systemd systemd-initrd dracut-systemd kernel-modules rootfs-block udev-rules fs-lib composefs" \
  --add-drivers "virtio_blk virtio_pci ext4 erofs overlay loop" \
  "$work/initramfs.img" >"$work/dracut.log" 2>&1 || { tail -n 30 "$work/dracut.log"; die "dracut failed"; }
lsinitrd "$work/initramfs.img" >"$work/initramfs.list"
grep -q 'usr/bin/composefs-setup-root$' "$work/initramfs.list" ||
  die "the initramfs lacks composefs-setup-root"
stage initramfs "$t0"

# ---- the two image versions, each sealed and signed in its own podman build.
t0=$(date +%s)
make_tree v2 "$work/v2"
for v in v1 v2; do
  "$src/examples/debian-uki/build.sh" --build "$build" --rootfs "$work/$v" --kernel "$kdir" \
    --initrd "$work/initramfs.img" --tag "$tag-$v:latest" \
    --cmdline "rw root=LABEL=root console=ttyS0 systemd.show_status=1 panic=-1" \
    "$work/out-$v" >"$work/build-$v.log" 2>&1 || { tail -n 30 "$work/build-$v.log"; die "build.sh $v failed"; }
  rm -rf "$work/$v"
done
fi
stage "podman builds" "$t0"

# ---- install version 1 to a disk image, in a VM (fs-verity).
t0=$(date +%s)
openssl pkey -in "$sk_key" -passin pass:snakeoil -out "$work/db.key" 2>/dev/null
if [[ -r $work/disk.installed.img ]] && grep -q CFS-INSTALL-OK "$work/install.txt" 2>/dev/null; then
  echo "reusing the disk installed in $work"
  cp --sparse=always "$work/disk.installed.img" "$work/disk.img"
else
rm -rf "$work/payload"
mkdir -p "$work/payload"
cp -a "$work/out-v1/oci" "$work/payload/oci"
cp "$work/db.key" "$work/payload/db.key"
cp "$sk_cert" "$work/payload/db.pem"
echo latest >"$work/payload/tag"
truncate -s 6G "$work/disk.img"
install_in_vm "$work" "$kdir/vmlinuz" "$cfsctl" "$work/payload" "$work/disk.img" 2048
rm -rf "$work/payload"
[[ -z ${CFS_E2E_WORK:-} ]] || cp --sparse=always "$work/disk.img" "$work/disk.installed.img"
fi
digest_v1=$(sed -n 's/^installed \([0-9a-f]*\).*/\1/p' "$work/install.txt" | tail -n1)
[[ $digest_v1 =~ ^[0-9a-f]{128}$ ]] || die "install printed no digest: $(tail -n 20 "$work/install.txt")"
stage install "$t0"
# The digest each UKI seals, read back from the UKI inside each image.
sealed() {  # V: the composefs= digest of the UKI in that image's /boot
  local d=$work/sealed-$1
  mkdir -p "$d"
  umoci raw unpack --rootless --image "$work/out-$1/oci:latest" "$d/root" >/dev/null 2>&1 ||
    die "umoci could not unpack $1"
  local uki
  uki=$(ls "$d/root/boot/EFI/Linux/"*.efi | head -n1)
  "$cfsctl" uki inspect --json "$uki" | python3 -c \
    'import json,re,sys; c=json.load(sys.stdin)["cmdline"]; print(re.search(r"(?:^| )composefs(?:\.digest=v1-sha512-12:|=\??)([0-9a-f]{128})", c).group(1))'
}
sealed_v1=$(sealed v1)
sealed_v2=$(sealed v2)
[[ $sealed_v1 == "$digest_v1" ]] || die "installed $digest_v1, but v1's UKI seals $sealed_v1"
[[ $sealed_v2 != "$sealed_v1" ]] || die "v1 and v2 seal the same digest"

# ---- boots: each one runs qemu on the same disk (and firmware variables)
# until the guest powers off; the second disk holds the step to run and,
# for the upgrade, version 2's OCI layout at the same path.
cp "$ovmf_vars" "$work/vars.fd"
fails=0
check() { if eval "$2"; then echo "ok: $1"; else echo "FAIL: $1"; fails=$((fails + 1)); fi; }
declare -A t_boot=()
boot() {  # NAME STEP-SCRIPT [OCI-DIR]
  local name=$1 ctl=$work/ctl-$1
  mkdir -p "$ctl"
  printf '%s\n' "$2" >"$ctl/step.sh"
  [[ -z ${3:-} ]] || cp -a "$3" "$ctl/oci"
  rm -f "$work/ctl.img"
  truncate -s 1G "$work/ctl.img"
  mkfs.ext4 -q -F -b 4096 -d "$ctl" "$work/ctl.img"
  local t0
  t0=$(date +%s)
  # One vCPU: with two, multi-threaded TCG once let a vCPU run a stale copy
  # of kernel text mid-patch (an int3 left at a static key, RIP inside a
  # nopl), and the guest panicked in CI.  panic=-1 (sealed above) with
  # -no-reboot ends qemu at a panic instead of waiting out the timeout.
  timeout "$boot_timeout" qemu-system-x86_64 -machine q35,smm=on -accel tcg -m 2048 -smp 1 \
    -global driver=cfi.pflash01,property=secure,value=on \
    -drive if=pflash,format=raw,unit=0,readonly=on,file="$ovmf_code" \
    -drive if=pflash,format=raw,unit=1,file="$work/vars.fd" \
    -drive if=none,id=disk,format=raw,file="$work/disk.img" -device virtio-blk-pci,drive=disk \
    -drive if=none,id=ctl,format=raw,file="$work/ctl.img" -device virtio-blk-pci,drive=ctl \
    -nographic -serial file:"$work/$name.log" -monitor none -nodefaults -no-reboot \
    </dev/null >/dev/null 2>&1 || echo "qemu ($name) ended with $? (124: timed out after ${boot_timeout}s)"
  t_boot[$name]=$(($(date +%s) - t0))
  tr -d '\r' <"$work/$name.log" | sed 's/\x1b\[[0-9;]*[a-zA-Z]//g' >"$work/$name.txt"
  rm -rf "$ctl"
}
field() { sed -n "s/^CFS-E2E-$2:\[\(.*\)\]\$/\1/p" "$work/$1.txt" | tail -n1; }
booted_is() {  # NAME DIGEST: status --json's booted deployment is DIGEST
  field "$1" STATUS | python3 -c '
import json, sys
b = json.load(sys.stdin)["status"]["booted"]
sys.exit(0 if b and b["composefs"]["verity"] == sys.argv[1] else 1)' "$2" 2>/dev/null
}
check_boot() {  # NAME VERSION DIGEST
  local n=$1 log=$work/$1.txt
  check "$n: version $2 reached multi-user.target and ran the test step" "[[ \$(field $n DONE) == $2 ]]"
  check "$n: the kernel reports Secure Boot on (UEFI variable SecureBoot=1)" "[[ \$(field $n SECUREBOOT) == 1 ]]"
  check "$n: / is the overlay of composefs image $3 with verity=require" \
    "field $n ROOT | grep -q ' / / .* - overlay composefs:$3 .*verity=require'"
  check "$n: the kernel command line seals $3" \
    "field $n CMDLINE | grep -Eq '(^| )composefs(=|\.digest=v1-sha512-12:)$3( |\$)'"
  check "$n: systemctl is-system-running says running" "[[ \$(field $n RUNNING) == running ]]"
  check "$n: cfsctl status names $3 as booted" "booted_is $n $3"
  grep -E '^CFS-E2E-' "$log" | cut -c1-200 | sed 's/^/  console: /' || true
  if ((fails)); then
    # The first kernel warning or oops, which the tail of a panic scrolls off.
    local oops
    if oops=$(grep -m1 -B2 -A40 -E '(WARNING:|BUG:|Oops:|Kernel panic)' "$log"); then
      echo "--- serial console ($n), the first kernel warning or oops:"
      echo "$oops"
    fi
    echo "--- serial console ($n), last lines:"
    tail -n 60 "$log"
  fi
}

boot boot1-v1 'echo "changed in v1" >/etc/cfs-e2e-local
echo "written in v1" >/var/lib/cfs-e2e-var
say UPGRADE "$(cfsctl upgrade 2>&1 | tr "\n" " ")"' "$work/out-v2/oci"
check_boot boot1-v1 v1 "$sealed_v1"
check "boot1-v1: cfsctl upgrade staged version 2" "field boot1-v1 UPGRADE | grep -q 'staged $sealed_v2'"

boot boot2-v2 'say ROLLBACK "$(cfsctl rollback 2>&1 | tr "\n" " ")"'
check_boot boot2-v2 v2 "$sealed_v2"
check "boot2-v2: the /etc change made in v1 survived the upgrade (three-way merge)" \
  "[[ \$(field boot2-v2 ETC) == 'changed in v1' ]]"
check "boot2-v2: /var is shared with v1" "[[ \$(field boot2-v2 VAR) == 'written in v1' ]]"
check "boot2-v2: cfsctl rollback succeeded" "[[ -n \$(field boot2-v2 ROLLBACK) ]] && ! field boot2-v2 ROLLBACK | grep -qi error"

boot boot3-v1 ':'
check_boot boot3-v1 v1 "$sealed_v1"
check "boot3-v1: the /etc of v1 still has its change" "[[ \$(field boot3-v1 ETC) == 'changed in v1' ]]"

# ---- the table.
echo
echo "| stage | seconds |"
echo "|---|---|"
for s in initramfs "podman builds" install; do echo "| $s | ${t_stage[$s]} |"; done
for b in boot1-v1 boot2-v2 boot3-v1; do echo "| boot $b (firmware to poweroff, TCG) | ${t_boot[$b]} |"; done
echo "| total | $(($(date +%s) - t_start)) |"
echo
echo "| artifact | size / digest |"
echo "|---|---|"
echo "| initramfs (dracut) | $(du -h "$work/initramfs.img" | cut -f1) |"
for v in v1 v2; do
  echo "| OCI image $v | $(du -sh "$work/out-$v/oci" | cut -f1) |"
done
echo "| sealed digest v1 | $sealed_v1 |"
echo "| sealed digest v2 | $sealed_v2 |"
echo "| disk image (allocated) | $(du -h "$work/disk.img" | cut -f1) |"
((fails == 0)) || exit 1
echo PASS
