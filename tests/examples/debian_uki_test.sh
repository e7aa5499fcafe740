#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs examples/debian-uki (the seed talk's Containerfile flow) with podman and
# checks what it promises, each against a tool other than the one that made it:
#   - the final image carries a UKI (umoci's unpacking) that sbverify accepts
#     with the signing certificate and refuses with another one;
#   - the digest sealed in its .cmdline (objcopy) is the final image's bootable
#     digest, computed three ways: from the OCI image pulled into a repository,
#     from umoci's unpacking of it as a directory, and by prepare-boot, which
#     accepts the UKI and writes it under EFI/Linux/;
#   - an image derived from it with one more file is refused by prepare-boot,
#     the error naming both digests.
# Usage: debian_uki_test.sh BUILD_DIR.  Exit 0 passed, 1 failed, 77 skipped.
set -euo pipefail
build=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cfsctl=$build/bin/cfsctl

skip() { echo "SKIP: $*"; exit 77; }
die() { echo "FAIL: $*"; exit 1; }
((EUID == 0)) || skip "needs root (podman build, debootstrap)"
for t in podman skopeo umoci busybox debootstrap sbverify objcopy openssl; do
  command -v "$t" >/dev/null || skip "$t is not installed (scripts/install-deps.sh)"
done
[[ -r /usr/lib/systemd/boot/efi/linuxx64.efi.stub ]] || skip "systemd-boot-efi missing"
[[ -r /usr/share/ovmf/PkKek-1-snakeoil.key ]] || skip "ovmf (snakeoil keys) missing"
rootfs=$("$root/scripts/selinux-rootfs.sh") || skip "no Debian tree (scripts/selinux-rootfs.sh failed)"
kernel=$("$root/scripts/debs.sh" kernel bookworm-backports | tail -n1) ||
  skip "no Debian kernel (scripts/debs.sh kernel bookworm-backports failed)"

work=$(mktemp -d)
tag=localhost/composefs-cpp-test/debian-uki-$$:latest
derived=localhost/composefs-cpp-test/debian-uki-derived-$$:latest
cleanup() {
  podman rmi -f "$tag" "${tag%:*}-base:latest" "$derived" >/dev/null 2>&1 || true
  rm -rf -- "$work"
}
trap cleanup EXIT

"$root/examples/debian-uki/build.sh" --build "$build" --rootfs "$rootfs" --kernel "$kernel" \
  --tag "$tag" "$work/out" >"$work/build.log" 2>&1 || {
  tail -n 30 "$work/build.log"
  die "examples/debian-uki/build.sh failed"
}
kver=$(cat "$work/out/kver")

# The UKI, as umoci unpacks the final image.
umoci unpack --image "$work/out/oci:latest" "$work/bundle" >/dev/null 2>&1 ||
  die "umoci unpack of the final image failed"
uki=$work/bundle/rootfs/boot/EFI/Linux/$kver.efi
[[ -f $uki ]] || die "no /boot/EFI/Linux/$kver.efi in the final image"
sbverify --cert /usr/share/ovmf/PkKek-1-snakeoil.pem "$uki" >/dev/null 2>&1 ||
  die "sbverify refuses the UKI with the snakeoil certificate"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/other.key" -out "$work/other.pem" \
  -days 1 -subj /CN=other >/dev/null 2>&1
! sbverify --cert "$work/other.pem" "$uki" >/dev/null 2>&1 ||
  die "sbverify accepts the UKI with an unrelated certificate"
objcopy -O binary --only-section=.cmdline "$uki" "$work/cmdline"
cmdline=$(tr -d '\0' <"$work/cmdline")
[[ $cmdline =~ ^composefs\.digest=v1-sha512-12:([0-9a-f]{128})\ rw\ console=ttyS0$ ]] ||
  die "unexpected .cmdline: '$cmdline'"
sealed=${BASH_REMATCH[1]}
echo "sealed: $sealed"

# The final image's bootable digest: from the OCI image in a repository (the
# host kernel has no fs-verity: an insecure sha512 repository)...
repo=$work/sysroot/composefs
"$cfsctl" --repo "$repo" init --insecure --hash sha512 >/dev/null
"$cfsctl" --repo "$repo" oci pull "oci:$work/out/oci:latest" os >/dev/null ||
  die "cfsctl oci pull of the final image failed"
from_oci=$("$cfsctl" --repo "$repo" oci compute-id --bootable os)
[[ $from_oci == "$sealed" ]] || die "oci compute-id --bootable gives $from_oci, the UKI seals $sealed"
# ... and from umoci's unpacking, as a directory.
from_dir=$("$cfsctl" --no-repo --hash sha512 compute-id --bootable "$work/bundle/rootfs" 2>/dev/null)
[[ $from_dir == "$sealed" ]] || die "compute-id --bootable of the unpacked image gives $from_dir"

# prepare-boot accepts the UKI (it checks the sealed digest itself).
"$cfsctl" --repo "$repo" oci prepare-boot os --bootdir "$work/boot" >"$work/prep.log" 2>&1 || {
  cat "$work/prep.log"
  die "prepare-boot refused the example's UKI"
}
cmp -s "$uki" "$work/boot/EFI/Linux/$kver.efi" || die "prepare-boot did not write the UKI as built"
[[ -d $work/sysroot/state/deploy/$sealed/etc/upper ]] || die "no state directory for $sealed"

# One file more after sealing: the UKI no longer names the image.
mkdir -p "$work/derive"
printf 'FROM %s\nRUN echo changed >/etc/changed-after-sealing\n' "$tag" >"$work/derive/Containerfile"
podman build --isolation chroot -t "$derived" "$work/derive" >"$work/derive.log" 2>&1 ||
  die "podman build of the derived image failed"
skopeo copy -q "containers-storage:$derived" "oci:$work/derived:latest"
"$cfsctl" --repo "$repo" oci pull "oci:$work/derived:latest" derived >/dev/null
changed=$("$cfsctl" --repo "$repo" oci compute-id --bootable derived)
[[ $changed != "$sealed" ]] || die "the derived image has the sealed digest"
if "$cfsctl" --repo "$repo" oci prepare-boot derived --bootdir "$work/boot2" >"$work/prep2.log" 2>&1; then
  die "prepare-boot accepted a UKI that seals another image"
fi
grep -q "$sealed" "$work/prep2.log" && grep -q "$changed" "$work/prep2.log" ||
  die "prepare-boot's refusal does not name both digests: $(cat "$work/prep2.log")"
[[ ! -e $work/boot2/EFI/Linux/$kver.efi ]] || die "prepare-boot wrote the refused UKI"
echo "PASS: the final image's bootable digest is the one its signed UKI seals"
