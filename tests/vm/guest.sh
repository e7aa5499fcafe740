#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Runs inside the VM (busybox sh, started by vm_test.sh's /init): the
# project's gtest suites on an ext4 disk with fs-verity, then the tools end
# to end.  EXPECT=new: everything works with fs-verity enforced.
# EXPECT=old (6.1): plain mounts work, verity= and digest= are refused naming
# the kernel's missing feature.  Prints "ok:", "FAIL:", "note:" lines and
# finally "CFS-VM-RESULT: PASS" or "CFS-VM-RESULT: FAIL".
. /guest.env
bin=$BUILD/bin
fails=0
ok() { echo "ok: $*"; }
bad() {
  echo "FAIL: $*"
  fails=$((fails + 1))
}
check() {
  d=$1
  shift
  if "$@"; then ok "$d"; else bad "$d"; fi
}
has() { echo "$1" | grep -qi -- "$2"; } # TEXT PATTERN
finish() {
  if [ $fails = 0 ]; then echo "CFS-VM-RESULT: PASS"; else echo "CFS-VM-RESULT: FAIL ($fails)"; fi
  exit 0
}
t_start=$(date +%s)
echo "note: guest up: kernel $(uname -r)"

if ! mount -t ext4 /dev/vda /disk; then
  bad "mounting the ext4 disk"
  finish
fi
export TMPDIR=/disk/tmp CFS_BIN_DIR=$bin
echo probe >/disk/tmp/probe
check "fs-verity can be enabled on the disk" fsverity enable /disk/tmp/probe
rm -f /disk/tmp/probe

# ---------------------------------------------------------------- gtest
# Each suite must pass; the named cases must have run (not skipped) here.
must_run_new="VerityTest.WithFsverityFilesAreVerified DigestTest.ImageWithFsverityIsMeasuredByTheKernel"
run_suite() {
  t=$1
  shift
  s=$(date +%s)
  "$BUILD/tests/$t" "$@" >/disk/tmp/$t.log 2>&1
  rc=$?
  echo "time: $t $(($(date +%s) - s))s"
  grep '^\[  SKIPPED \] [A-Za-z].* ms)$' /disk/tmp/$t.log | sed 's/^\[  SKIPPED \]/note: skipped/'
  grep '^\[       OK \] .* ([0-9]\{4,\} ms)$' /disk/tmp/$t.log | sed 's/^\[       OK \]/note: slow/'
  if [ $rc = 0 ]; then
    ok "$t passes ($(grep -c '^\[       OK \]' /disk/tmp/$t.log) cases)"
  else
    bad "$t (exit $rc)"
    grep -B 12 '^\[  FAILED  \]' /disk/tmp/$t.log | head -n 80 | sed 's/^/  | /'
  fi
}
ran() { grep -q "^\[       OK \] $1 " /disk/tmp/$2.log && ! grep -q "^\[  SKIPPED \] $1 " /disk/tmp/$2.log; }

# Left to the host: a multi-GiB sparse file and a 10k-entry copy of the
# host's /usr, a directory of 100k entries (minutes under TCG, and no /usr
# here), and mount(8)'s helper
# lookup (busybox mount has none).
heavy=MountTest.SparseMultiGiB*:MountTest.RealTree*:MountTest.DirectoryWith100kEntries
heavy=$heavy:MountToolTest.MountDashTComposefs
if [ "$EXPECT" = new ]; then
  for t in mount_test mount_tool_test mount_options_test repository_test; do
    run_suite $t --gtest_filter=-$heavy
  done
  # The kernel's side only: the digest vectors and the sparse multi-GiB file
  # are userspace (the host runs them; minutes under TCG).
  run_suite fsverity_test --gtest_filter='Fsverity.*:-Fsverity.Sparse*'
  for c in $must_run_new; do check "$c ran and passed (skipped on a host without fs-verity)" ran "$c" mount_test; done
else
  # 6.1: no layers by path or fd, no "::", no verity=, no file-backed EROFS:
  # the forced methods report Unsupported (skipped), Auto takes loop +
  # legacy-lower; verity cases expect refusals (below, with the tools).
  for t in mount_options_test repository_test; do run_suite $t; done
  run_suite fsverity_test --gtest_filter='Fsverity.*:-Fsverity.Sparse*'
  run_suite mount_test --gtest_filter='*MethodTest.*:MountTest.Missing*:MountTest.Unmount*:MountTest.Truncated*:MountTest.OverlayFailure*'
fi

# ---------------------------------------------------------------- tools
cfsctl=$bin/cfsctl
repo=/disk/repo
mkdir -p /mnt/a /mnt/b /mnt/o
cp -a /disk/oci.src /disk/tree
out=$($cfsctl --repo $repo init 2>&1)
check "cfsctl init without --insecure" test $? = 0
echo "$out" | grep -q 'not required' && bad "a secure repository says verity is not required: $out"
id=$($cfsctl --repo $repo create-image /disk/tree app 2>/disk/tmp/err)
check "cfsctl create-image: $id $(cat /disk/tmp/err)" test -n "$id"
hex=${id#*:}
alg=${id%%:*}

# Every object has fs-verity, measured by the kernel, and is named by it.
n=0
bad_obj=0
for f in $(find $repo/objects -type f); do
  name=$(echo "$f" | sed "s|^$repo/objects/\(..\)/|\1|")
  m=$(fsverity measure "$f" 2>&1 | cut -d' ' -f1)
  n=$((n + 1))
  [ "$m" = "$alg:$name" ] || {
    bad_obj=$((bad_obj + 1))
    echo "  | $f: measured '$m'"
  }
done
check "all $n objects have fs-verity enabled and are named by the kernel's measurement" \
  test $bad_obj = 0 -a $n -ge 6

same_tree() { # DIR: same files as /disk/tree
  for f in usr/bin/hello etc/os-release usr/share/data/blob1 usr/share/data/blob2 \
    usr/share/data/blob3 usr/share/data/blob4 usr/share/data/blob5; do
    cmp -s "/disk/tree/$f" "$1/$f" || return 1
  done
  [ "$(readlink "$1/usr/bin/link")" = ../share/data/blob1 ]
}
ovl_opts() { grep " $1 " /proc/self/mountinfo | grep ' overlay ' | sed 's/.* overlay //'; }
img=$repo/objects/$(echo $hex | cut -c1-2)/$(echo $hex | cut -c3-)

if [ "$EXPECT" = new ]; then
  check "cfsctl mount by digest" $cfsctl --repo $repo mount $hex /mnt/a
  check "the mount shows the tree" same_tree /mnt/a
  check "the overlay enforces verity=require ($(ovl_opts /mnt/a))" sh -c "grep ' /mnt/a ' /proc/self/mountinfo | grep -q verity=require"
  umount /mnt/a

  check "mount.composefs digest= (the kernel's measurement)" \
    $bin/mount.composefs -o basedir=$repo/objects,digest=$hex $img /mnt/b
  check "the digest= mount shows the tree" same_tree /mnt/b
  check "digest= implies verity=require" sh -c "grep ' /mnt/b ' /proc/self/mountinfo | grep -q verity=require"
  umount /mnt/b
  $bin/mount.composefs -v -o basedir=$repo/objects $img /mnt/b 2>&1 | sed 's/^/note: /'
  umount /mnt/b
  if [ "$(echo $hex | cut -c1)" = 0 ]; then wrong=1; else wrong=0; fi
  wrong=$wrong$(echo $hex | cut -c2-)
  out=$($bin/mount.composefs -o basedir=$repo/objects,digest=$wrong $img /mnt/b 2>&1)
  check "a wrong digest= is refused naming the measured one" has "$out" "$hex"

  # Tampering: an object replaced by one with other contents (with
  # fs-verity of its own) or without fs-verity: EIO on open, others read.
  b3=$(fsverity digest --hash-alg=$alg /disk/tree/usr/share/data/blob3 | cut -d' ' -f1)
  b3=${b3#*:}
  obj=$repo/objects/$(echo $b3 | cut -c1-2)/$(echo $b3 | cut -c3-)
  mv "$obj" /disk/tmp/orig
  for how in other-verity no-verity; do
    cp /disk/tmp/orig /disk/tmp/t
    printf 'X' | dd of=/disk/tmp/t bs=1 seek=100 conv=notrunc 2>/dev/null
    [ $how = other-verity ] && fsverity enable --hash-alg=$alg /disk/tmp/t
    mv /disk/tmp/t "$obj"
    if $cfsctl --repo $repo mount $hex /mnt/a; then
      err=$(cat /mnt/a/usr/share/data/blob3 2>&1 >/dev/null)
      check "tampered object ($how): EIO ($err)" has "$err" 'input/output error'
      check "tampered object ($how): other files still read" cmp -s /disk/tree/usr/share/data/blob2 /mnt/a/usr/share/data/blob2
      umount /mnt/a
    else
      bad "mounting with a tampered object ($how)"
    fi
    rm -f "$obj"
  done
  mv /disk/tmp/orig "$obj"

  s=$(date +%s)
  check "cfsctl oci pull from an OCI layout" $cfsctl --repo $repo oci pull oci:/disk/oci:v1 v1
  check "cfsctl oci mount" $cfsctl --repo $repo oci mount v1 /mnt/o
  check "the OCI mount shows the layer's files" same_tree /mnt/o
  check "the OCI mount enforces verity=require" sh -c "grep ' /mnt/o ' /proc/self/mountinfo | grep -q verity=require"
  umount /mnt/o
  echo "time: oci pull + mount $(($(date +%s) - s))s"
else
  out=$($cfsctl --repo $repo mount $hex /mnt/a 2>&1)
  check "cfsctl mount of a verity repository is refused" test $? != 0
  check "... naming the missing verity= option ($out)" has "$out" 'verity=require.*Linux >= 6.6'
  for o in digest=$hex verity; do
    out=$($bin/mount.composefs -o basedir=$repo/objects,$o $img /mnt/b 2>&1)
    check "mount.composefs $o is refused" test $? = 32
    check "... naming the missing verity= option ($out)" has "$out" 'Linux >= 6.6'
  done
  check "nothing is left mounted after the refusals" sh -c "! grep -q ' overlay ' /proc/self/mountinfo"
  out=$($bin/mount.composefs -v -o basedir=$repo/objects $img /mnt/b 2>&1)
  check "a plain mount works (loop device, objects as lower layers): $out" same_tree /mnt/b
  umount /mnt/b
  out=$($bin/mount.composefs -o basedir=$repo/objects,tryverity $img /mnt/b 2>&1)
  check "tryverity mounts without verity, saying so ($out)" has "$out" tryverity
  check "the tryverity mount shows the tree" same_tree /mnt/b
  umount /mnt/b
  check "cfsctl oci pull from an OCI layout" $cfsctl --repo $repo oci pull oci:/disk/oci:v1 v1
  out=$($cfsctl --repo $repo oci mount v1 /mnt/o 2>&1)
  check "cfsctl oci mount (verity repository) is refused naming verity= ($out)" \
    has "$out" 'Linux >= 6.6'
fi
echo "time: guest $(($(date +%s) - t_start))s"
finish
