#!/usr/bin/env bash
# A fresh object store against what the disk can write (issue 15: within
# 1.3x), both in this run, on the same filesystem:
#   disk   dd if=/dev/zero bs=1M conv=fsync of as many bytes as the tree's
#          objects (the best of RUNS)
#   ours   cfsctl create-image of DIR into an empty repository, and
#          mkcomposefs --digest-store of DIR into an empty store
# each timed up to the data being on disk (`sync -f` of the filesystem is
# part of the timed command: cfsctl calls syncfs itself, mkcomposefs does
# not).  Two floors for a store of many files, next to dd's one file:
#   files  bench/write_floor: files of the objects' sizes written from memory
#          the way a store writes them (O_TMPFILE, linked into objects/xx/,
#          on every core, one syncfs): the filesystem's cost of creating
#          them, with nothing read or hashed; and with --hash, each block
#          hashed as it is written (OpenSSL's SHA-256 of every 4 KiB block):
#          the floor of a store that names objects by their content
#   cp -a  of the tree (its own file per object, read, not hashed)
# The source tree is read from the page cache.  Prints MB/s of object bytes,
# the ratio dd rate / ours and ours / the file floor.
#
# As root, every run writes to a freshly made ext4 (bench/lib.sh fresh_fs).
#
#   bench/store_bench.sh [-d DIR] [REF_MKCOMPOSEFS]
#
# DIR defaults to the Debian tree of scripts/selinux-rootfs.sh when it is
# built, else /usr/share.  Other agents' writes to the same disk are in both
# sides' times.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
dir_args "$@"

machine
find "$dir" -xdev -type f -print0 2>/dev/null | xargs -0 cat >/dev/null 2>&1 || true
repo=$work/repo store=$work/store
"$bin/cfsctl" --repo "$repo" init --insecure --algorithm fsverity-sha256-12 >/dev/null
"$bin/cfsctl" --repo "$repo" create-image --no-propagate-usr-to-root "$dir" probe >/dev/null
sizes=$work/sizes  # stays where it is when $work becomes a fresh ext4
find "$repo/objects" -type f -printf '%s\n' >"$sizes"
bytes=$(awk '{s += $1} END{printf "%.0f\n", s}' "$sizes")
objects=$(find "$repo/objects" -type f | wc -l)
rm -rf "$repo"
mb=$(calc "$bytes / 1e6")
echo "directory: $dir ($(find "$dir" -xdev | wc -l) entries) -> $objects objects, $mb MB"
fresh_fs $((bytes * 3 + (512 << 20)))
[[ $fresh == : ]] || repo=$work/repo store=$work/store
sync -f "$work"

BEFORE="$fresh; rm -f '$work/dd'; sync -f '$work'"
disk=$(best_of dd if=/dev/zero of="$work/dd" bs=1M count=$(((bytes + 1048575) >> 20)) conv=fsync status=none)
BEFORE="$fresh; rm -rf '$work/wf'; sync -f '$work'"
files=$(best_of "$build/bench/write_floor" "$sizes" "$work/wf")
hfiles=$(best_of "$build/bench/write_floor" --hash "$sizes" "$work/wf")
# The same files written by cp -a (its own file per object, no hashing): the
# filesystem's cost of creating this many files, next to dd's raw bandwidth.
BEFORE="$fresh; rm -rf '$work/cp'; sync -f '$work'"
cp=$(best_of sh -c "cp -a '$dir' '$work/cp' && sync -f '$work'")
BEFORE="$fresh; rm -rf '$repo'; '$bin/cfsctl' --repo '$repo' init --insecure --algorithm fsverity-sha256-12 >/dev/null; sync -f '$work'"
ci=$(best_of sh -c "'$bin/cfsctl' --repo '$repo' create-image --no-propagate-usr-to-root '$dir' bench && sync -f '$work'")
BEFORE="$fresh; rm -rf '$store'; sync -f '$work'"
mk=$(best_of sh -c "'$bin/mkcomposefs' --digest-store='$store' '$dir' '$work/a.img' && sync -f '$work'")
if [[ -n $ref ]]; then
  rf=$(best_of sh -c "'$ref' --digest-store='$store' '$dir' '$work/a.img' && sync -f '$work'")
fi
unset BEFORE
rm -rf "$repo" "$store" "$work/dd" "$work/cp" "$work/wf"

row() {  # name result
  printf '%-40s %6.2f s wall %6.2f s CPU %4s MiB  %6.1f MB/s\n' "$1" "$(secs "$2")" "$(cpu "$2")" \
    "$(rss_mib "$2")" "$(calc "$mb / $(secs "$2")")"
}
echo
row "dd conv=fsync (the disk)" "$disk"
row "write_floor (the files, from memory)" "$files"
row "write_floor --hash (and hashed)" "$hfiles"
row "cp -a of the tree (the files, unhashed)" "$cp"
row "cfsctl create-image, fresh repository" "$ci"
row "mkcomposefs --digest-store, fresh store" "$mk"
if [[ -n $ref ]]; then
  row "reference mkcomposefs --digest-store" "$rf"
else
  echo "reference mkcomposefs: skipped (no reference binary)"
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
result "cfsctl create-image: dd rate / ours" "$(calc "$(secs "$ci") / $(secs "$disk")")" $goal ""
result "mkcomposefs --digest-store: dd rate / ours" "$(calc "$(secs "$mk") / $(secs "$disk")")" $goal ""
result "cfsctl create-image: ours / hashed floor" "$(calc "$(secs "$ci") / $(secs "$hfiles")")" $goal \
  "($(calc "$(secs "$ci") / $(secs "$files")")x of the unhashed one)"
result "mkcomposefs --digest-store: ours / floor" "$(calc "$(secs "$mk") / $(secs "$hfiles")")" $goal \
  "($(calc "$(secs "$mk") / $(secs "$files")")x of the unhashed one)"
printf '%-44s %5.2fx\n' "file floor / dd (creating the files):" "$(calc "$(secs "$files") / $(secs "$disk")")"
printf '%-44s %5.2fx (cfsctl) %5.2fx (mkcomposefs)\n' "ours / cp -a:" \
  "$(calc "$(secs "$ci") / $(secs "$cp")")" "$(calc "$(secs "$mk") / $(secs "$cp")")"
