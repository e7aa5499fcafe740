#!/usr/bin/env bash
# Fetches Debian packages for the VM tests without touching the host's apt
# state: a private sources list (the mirror taken from this machine's own apt
# configuration), private lists and cache, all under the cache directory
# (outside the repository).  Packages are downloaded and extracted, never
# installed.
#
#   scripts/debs.sh extract SUITE PKG...   extract each PKG of SUITE; prints one
#                                          directory per PKG (cached by version)
#   scripts/debs.sh version SUITE PKG      the candidate version of PKG in SUITE
#   scripts/debs.sh kernel SUITE           the kernel of SUITE (linux-image-amd64
#                                          resolved to its packages); prints a
#                                          directory holding vmlinuz, modules/
#                                          (lib/modules/<kver>), kver and root/
#   scripts/debs.sh mirror                 the Debian mirror URL in use
#
# SUITE: bookworm, bookworm-backports, trixie, trixie-backports, ...
# --arch ARCH (before the command; default amd64): packages of another Debian
# architecture, e.g. arm64 for the aarch64 cross build's sysroot (with its own
# lists; the host's dpkg architectures are never touched).
# CFS_CACHE (default /var/cache/composefs-cpp) holds everything; lists are
# refreshed when older than a day (CFS_APT_MAX_AGE seconds).
set -euo pipefail

cache=${CFS_CACHE:-/var/cache/composefs-cpp}
arch=amd64
if [[ ${1:-} == --arch ]]; then
  [[ -n ${2:-} ]] || { echo "debs.sh: --arch needs a Debian architecture" >&2; exit 2; }
  arch=$2
  shift 2
fi
# amd64 keeps the unsuffixed names (caches made before --arch stay valid).
asuf=""
[[ $arch == amd64 ]] || asuf="-$arch"
max_age=${CFS_APT_MAX_AGE:-86400}

die() { echo "debs.sh: $*" >&2; exit 1; }

# One run at a time: ctest starts VM tests in parallel, and two apt-get
# updates of one suite's private lists would collide.
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9

# The first http(s) Debian archive URI the host's apt uses (deb822 or
# one-line format); never a host name written here.
mirror() {
  local uri=""
  if [[ -d /etc/apt/sources.list.d ]]; then
    uri=$(awk 'tolower($1)=="uris:" {for (i=2;i<=NF;i++) print $i}' \
      /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v -- '-security' | head -n1 || true)
  fi
  if [[ -z $uri && -f /etc/apt/sources.list ]]; then
    uri=$(awk '$1=="deb" {for (i=2;i<=NF;i++) if ($i ~ /^https?:/) {print $i; exit}}' \
      /etc/apt/sources.list | grep -v -- '-security' | head -n1 || true)
  fi
  [[ -n $uri ]] || die "no Debian mirror found in /etc/apt/sources.list{,.d}"
  echo "${uri%/}"
}

# apt with a private state for one suite.
apt_suite() {
  local suite=$1
  shift
  local st="$cache/apt/$suite$asuf"
  echo -o Dir::Etc::SourceList="$st/sources.list" -o Dir::Etc::SourceParts=- \
    -o Dir::State::Lists="$st/lists" -o Dir::Cache="$st/cache" \
    -o Dir::State::Status="$st/status" -o APT::Architecture="$arch" \
    -o APT::Architectures="$arch" \
    -o Debug::NoLocking=1 -o APT::Sandbox::User=root
}

update() {
  local suite=$1 st="$cache/apt/$suite$asuf"
  mkdir -p "$st/lists/partial" "$st/cache/archives/partial"
  [[ -f $st/status ]] || : >"$st/status"
  local m
  m=$(mirror)
  local want="deb $m $suite main"
  if [[ ! -f $st/sources.list ]] || [[ $(cat "$st/sources.list") != "$want" ]]; then
    echo "$want" >"$st/sources.list"
    rm -f "$st/stamp"
  fi
  local now stamp=0
  now=$(date +%s)
  [[ -f $st/stamp ]] && stamp=$(cat "$st/stamp")
  if ((now - stamp > max_age)); then
    # shellcheck disable=SC2046
    apt-get $(apt_suite "$suite") -qq update >&2 || die "apt-get update for $suite failed"
    echo "$now" >"$st/stamp"
  fi
}

version() {
  local suite=$1 pkg=$2
  update "$suite"
  local v
  # shellcheck disable=SC2046
  v=$(apt-cache $(apt_suite "$suite") show --no-all-versions "$pkg" 2>/dev/null |
    awk '/^Version:/ {print $2; exit}')
  [[ -n $v ]] || die "package $pkg not found in $suite"
  echo "$v"
}

# Extracts PKG (its candidate version in SUITE) and prints the directory.
extract_one() {
  local suite=$1 pkg=$2 v dir
  v=$(version "$suite" "$pkg")
  dir="$cache/debs/${pkg}_${v//[:~]/_}$asuf"
  if [[ ! -f $dir/.complete ]]; then
    rm -rf "$dir" "$dir.tmp"
    mkdir -p "$dir.tmp"
    (
      cd "$dir.tmp"
      # shellcheck disable=SC2046
      apt-get $(apt_suite "$suite") -qq download "$pkg=$v" >&2 ||
        die "downloading $pkg=$v from $suite failed"
      dpkg-deb -x ./*.deb root
      rm -f ./*.deb
    )
    touch "$dir.tmp/.complete"
    mv "$dir.tmp" "$dir"
  fi
  echo "$dir/root"
}

# The kernel of SUITE: linux-image-amd64 resolved to its versioned image
# package; newer kernels split it into linux-binary-* and linux-modules-*
# packages of the same version, which are extracted into the same tree.
kernel() {
  local suite=$1 img v dir
  update "$suite"
  # shellcheck disable=SC2046
  img=$(apt-cache $(apt_suite "$suite") show --no-all-versions linux-image-amd64 |
    awk -F': ' '/^Depends:/ {print $2; exit}' | tr ',' '\n' |
    sed -n 's/^ *\(linux-image-[0-9][^ ]*\).*/\1/p' | head -n1)
  [[ -n $img ]] || die "cannot resolve linux-image-amd64 in $suite"
  v=$(version "$suite" "$img")
  dir="$cache/kernels/${img}_${v//[:~]/_}"
  if [[ ! -f $dir/.complete ]]; then
    local pkgs=("$img") extra
    # shellcheck disable=SC2046
    extra=$(apt-cache $(apt_suite "$suite") show --no-all-versions "$img" |
      awk -F': ' '/^Depends:/ {print $2; exit}' | tr ',|' '\n\n' |
      sed -n 's/^ *\(linux-\(binary\|modules\)-[0-9][^ ]*\).*/\1/p')
    for e in $extra; do pkgs+=("$e"); done
    rm -rf "$dir" "$dir.tmp"
    mkdir -p "$dir.tmp"
    (
      cd "$dir.tmp"
      for p in "${pkgs[@]}"; do
        # shellcheck disable=SC2046
        apt-get $(apt_suite "$suite") -qq download "$p=$v" >&2 ||
          die "downloading $p=$v from $suite failed"
      done
      for d in ./*.deb; do dpkg-deb -x "$d" root; done
      rm -f ./*.deb
    )
    # One layout whatever the package's: vmlinuz, modules (the
    # lib/modules/<kver> directory) and kver next to root/.
    local mdir kver
    mdir=$(find "$dir.tmp/root" -mindepth 3 -maxdepth 4 -type d -path '*lib/modules/*' | head -n1)
    [[ -n $mdir ]] || die "no lib/modules/<kver> in ${pkgs[*]}"
    kver=$(basename "$mdir")
    echo "$kver" >"$dir.tmp/kver"
    ln -s "${mdir#"$dir.tmp/"}" "$dir.tmp/modules"
    if [[ -f $dir.tmp/root/boot/vmlinuz-$kver ]]; then
      ln -s "root/boot/vmlinuz-$kver" "$dir.tmp/vmlinuz"
    elif [[ -f $mdir/vmlinuz ]]; then
      ln -s "${mdir#"$dir.tmp/"}/vmlinuz" "$dir.tmp/vmlinuz"
    else
      die "no vmlinuz in ${pkgs[*]}"
    fi
    touch "$dir.tmp/.complete"
    mv "$dir.tmp" "$dir"
  fi
  echo "$dir"
}

cmd=${1:-}
shift || true
case $cmd in
  mirror) mirror ;;
  version) (($# == 2)) || die "usage: version SUITE PKG"; version "$@" ;;
  extract)
    (($# >= 2)) || die "usage: extract SUITE PKG..."
    suite=$1
    shift
    for p in "$@"; do extract_one "$suite" "$p"; done
    ;;
  kernel) (($# == 1)) || die "usage: kernel SUITE"; kernel "$1" ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d' >&2; exit 2 ;;
esac
