#!/usr/bin/env bash
# OCI import side by side (root: umoci unpack keeps owners), one run:
#   ours     cfsctl oci pull oci:DIR into an empty repository (syncfs included)
#   unpack   umoci unpack, then our mkcomposefs --digest-store of the rootfs
#            (and the reference's, given REF_MKCOMPOSEFS), each + sync -f
#   floor    gunzip + sha256sum of every layer, one after another: reading the
#            same compressed bytes once, without writing anything
# on a 2-layer gzip image umoci makes of DIR (everything but /usr/share, then
# /usr/share).  Checks that the pulled image's id equals cfsctl compute-id of
# umoci's unpacking.  Prints ours / each alternative.
#
#   bench/oci_import_bench.sh [-d DIR] [REF_MKCOMPOSEFS]
#
# DIR defaults to the Debian tree of scripts/selinux-rootfs.sh (building it
# when missing needs the network: about 2 minutes), else /usr/share.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
command -v umoci >/dev/null || { echo "needs umoci (scripts/debian-packages.txt)" >&2; exit 1; }
dir_args --build "$@"

machine
cd "$work"
umoci init --layout img >/dev/null
umoci new --image img:base >/dev/null
umoci unpack --image img:base b >/dev/null
# A tree without /usr goes under /usr: an image's id needs one (cfsctl copies
# /usr's metadata to the root).
sub=
[[ -d $dir/usr ]] || { sub=/usr; mkdir b/rootfs/usr; }
tar -C "$dir" --exclude=./usr/share -cf - . | tar -C "b/rootfs$sub" -xf -
umoci repack --image img:base b >/dev/null
if [[ -d $dir/usr/share ]]; then
  # A second repack of the same bundle would not stack a layer on the first
  # (umoci diffs against the bundle's original manifest): unpack again.
  rm -rf b
  umoci unpack --image img:base b >/dev/null
  tar -C "$dir" -cf - ./usr/share | tar -C b/rootfs -xf -
  umoci repack --image img:base b >/dev/null
fi
rm -rf b
layers=$(python3 -c "
import json
i = json.load(open('img/index.json'))
[d] = [m for m in i['manifests'] if m['annotations']['org.opencontainers.image.ref.name'] == 'base']
m = json.load(open('img/blobs/sha256/' + d['digest'][7:]))
print(' '.join('img/blobs/sha256/' + l['digest'][7:] for l in m['layers']))")
# shellcheck disable=SC2086
zbytes=$(cat $layers | wc -c)
# shellcheck disable=SC2086
tbytes=$(for l in $layers; do gzip -dc "$l"; done | wc -c)
echo "image: $(wc -w <<<"$layers") gzip layers of $dir: $(calc "$zbytes / 1e6") MB compressed," \
  "$(calc "$tbytes / 1e6") MB of tar"
cat img/blobs/sha256/* >/dev/null

# shellcheck disable=SC2016
floor=$(best_of sh -c 'for l in "$@"; do gzip -dc "$l" | sha256sum; done' sh $layers)
img=$work/img
fresh_fs $((tbytes * 4 + (512 << 20)))
w=$work
BEFORE="$fresh; '$bin/cfsctl' --repo '$w/repo' init --insecure --algorithm fsverity-sha256-12 >/dev/null; sync -f '$w'"
pull=$(best_of "$bin/cfsctl" --repo "$w/repo" oci pull "oci:$img:base" base)
id_oci=$("$bin/cfsctl" --repo "$w/repo" oci compute-id base)
BEFORE="$fresh; sync -f '$w'"
unpack=$(best_of sh -c "umoci unpack --image '$img:base' '$w/u' && sync -f '$w'")
# The stores' source: one more unpack, outside the filesystem made afresh.
src=$img/../u
umoci unpack --image "$img:base" "$src" >/dev/null
mk=$(best_of sh -c "'$bin/mkcomposefs' --digest-store='$w/store' '$src/rootfs' '$w/a.img' && sync -f '$w'")
[[ -n $ref ]] && rf=$(best_of sh -c "'$ref' --digest-store='$w/store' '$src/rootfs' '$w/a.img' && sync -f '$w'")
unset BEFORE
id_scan=$("$bin/cfsctl" --no-repo --hash sha256 compute-id "$src/rootfs")
[[ $id_oci == "$id_scan" ]] || { echo "error: pulled image $id_oci, umoci unpack $id_scan" >&2; exit 1; }

row() {  # name result
  printf '%-44s %6.2f s wall %6.2f s CPU %4s MiB  %6.1f MB/s of tar\n' "$1" "$(secs "$2")" \
    "$(cpu "$2")" "$(rss_mib "$2")" "$(calc "$tbytes / 1e6 / $(secs "$2")")"
}
echo
row "gunzip + sha256sum of the layers" "$floor"
row "cfsctl oci pull oci: (empty repository)" "$pull"
row "umoci unpack" "$unpack"
row "our mkcomposefs --digest-store (unpacked)" "$mk"
both=$(calc "$(secs "$unpack") + $(secs "$mk")")
if [[ -n $ref ]]; then
  row "reference mkcomposefs --digest-store" "$rf"
  refboth=$(calc "$(secs "$unpack") + $(secs "$rf")")
else
  echo "reference mkcomposefs: skipped (no reference binary)"
fi
echo "image id (both paths): $id_oci"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
printf '%-52s %5.2fx\n' "(umoci unpack + our mkcomposefs) / cfsctl oci pull" "$(calc "$both / $(secs "$pull")")"
[[ -n $ref ]] &&
  printf '%-52s %5.2fx\n' "(umoci unpack + reference) / cfsctl oci pull" "$(calc "$refboth / $(secs "$pull")")"
result "cfsctl oci pull / (gunzip + sha256sum)" "$(calc "$(secs "$pull") / $(secs "$floor")")" 1.5 ""
