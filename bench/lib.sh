# Shared helpers of the bench/*.sh scripts (sourced, not run).
#
# Every script runs both sides of a comparison in the same run, so the ratios
# hold even on a shared, loaded machine where absolute times do not.
# Sets: top (repository), build, bin, work (a fresh directory on a disk,
# removed on exit), runs (RUNS, default 3).

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD:-$top/build}
bin=$build/bin
runs=${RUNS:-3}
work=$(mktemp -d "${TMPDIR:-/var/tmp}/cfs-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The machine and its load, printed at the head of each run.
machine() {
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')," \
    "$(df -T "$work" | awk 'NR==2{print $2}') at $work; $(date -u '+%F %H:%M UTC')"
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
}

# measure CMD...: runs CMD once (stdout discarded), prints
# "seconds peak_rss_kib cpu_seconds" (cpu: user + system of all threads).
# BEFORE, when set, is evaluated first and not timed (e.g. removing a store).
# A failed CMD is an error with its exit status: no time is printed for it.
measure() {
  local rc=0
  [[ -n ${BEFORE:-} ]] && eval "$BEFORE"
  /usr/bin/time -f "%e %M %U %S" -o "$work/.time" "$@" >/dev/null || rc=$?
  if ((rc)); then
    echo "error: $* failed (exit status $rc)" >&2
    return "$rc"
  fi
  awk '{printf "%s %s %.2f\n", $1, $2, $3 + $4}' "$work/.time"
}

# best_of CMD...: the fastest of $runs runs of measure (the run the other
# agents on the machine disturbed least).
best_of() {
  local best="" line t i
  for ((i = 0; i < runs; i++)); do
    line=$(measure "$@") || return
    t=${line%% *}
    if [[ -z $best ]] || awk -v t="$t" -v b="${best%% *}" 'BEGIN{exit !(t < b)}'; then best=$line; fi
  done
  echo "$best"
}

# secs / rss_mib / cpu RESULT: the fields of a measure/best_of result.
secs() { echo "${1%% *}"; }
# nz SECONDS: at least 0.01, /usr/bin/time's resolution (a divisor, never 0).
nz() { awk -v t="$1" 'BEGIN{print (t < 0.01 ? 0.01 : t)}'; }
rss_mib() { awk -v r="$1" 'BEGIN{split(r, f, " "); printf "%.0f", f[2] / 1024}'; }
cpu() { awk -v r="$1" 'BEGIN{split(r, f, " "); print f[3]}'; }

# calc EXPR: floating-point arithmetic.
calc() { awk "BEGIN{printf \"%.3f\", $*}"; }

# hash_rate ALG [N]: bytes per second of ALG (sha256, sha512) with OpenSSL's
# code (SHA-NI/AVX2, what the fsverity module uses too), 64 KiB buffers.
# N = 0 (default): one core, per second of CPU time: the unloaded rate.
# N > 0: N copies at once, the sum of their rates per second of wall-clock
# time: what N cores hash now, with the other agents' load on the machine.
hash_rate() {
  local alg=$1 n=${2:-0} i
  if ((n == 0)); then
    openssl speed -mr -bytes 65536 -seconds "${SHA_SECONDS:-2}" "$alg" 2>/dev/null |
      awk -F: '$1=="+F"{print $4}'
    return
  fi
  for ((i = 0; i < n; i++)); do
    openssl speed -mr -elapsed -bytes 65536 -seconds "${SHA_SECONDS:-2}" "$alg" 2>/dev/null |
      awk -F: '$1=="+F"{print $4}' &
  done | awk '{s += $1} END{printf "%.0f\n", s}'
}

# verdict RATIO GOAL: "met" when RATIO <= GOAL.
verdict() { awk -v r="$1" -v g="$2" 'BEGIN{print (r <= g ? "met" : "NOT met")}'; }

# result NAME RATIO GOAL DETAIL: one line of a script's summary.
result() {
  printf '%-44s ratio %6.2fx  goal <= %sx  %-7s %s\n' "$1" "$2" "$3" "$(verdict "$2" "$3")" "$4"
}

# dir_args [--build] ARGS...: the `[-d DIR] [REF_MKCOMPOSEFS]` arguments of
# the directory benchmarks.  Sets dir, ref (empty without a reference) and
# goal (issue 15's 1.3x).  DIR defaults to the Debian tree of
# scripts/selinux-rootfs.sh when it is built (with --build: building it when
# missing, which needs the network), else /usr/share.
dir_args() {
  local check=--check o OPTIND=1
  if [[ ${1:-} == --build ]]; then check=; shift; fi
  dir=
  while getopts "d:" o; do
    case $o in
      d) dir=$OPTARG ;;
      *) exit 2 ;;
    esac
  done
  shift $((OPTIND - 1))
  ref=${1:-}
  if [[ -z $dir ]]; then
    dir=$("$top/scripts/selinux-rootfs.sh" $check 2>/dev/null) || dir=/usr/share
  fi
  goal=1.3
}

# fresh_fs BYTES: as root, a file-backed ext4 of BYTES, loop-mounted as the
# new $work, and in $fresh the command that makes it afresh (run it in
# BEFORE: every timed run then writes to a new filesystem).  After many
# deletions ext4 skips the recently freed inodes of a block group one by one
# while their inode tables are still dirty (up to 5 minutes), so an rm -rf
# between runs made the next run's file creation cost several times over.
# Without root, fresh is ":" and the runs share the work directory.
fresh=:
fresh_fs() {
  ((EUID == 0)) && command -v mkfs.ext4 >/dev/null || return 0
  local img=$work/fs.img mnt=$work/mnt
  truncate -s "$1" "$img"
  mkdir -p "$mnt"
  fresh="{ umount '$mnt' 2>/dev/null || true; }; mkfs.ext4 -q -F -b 4096 '$img' && mount -o loop '$img' '$mnt'"
  # shellcheck disable=SC2064  # the paths as they are now
  trap "umount '$mnt' 2>/dev/null; rm -rf '$work'" EXIT
  eval "$fresh"
  echo "each timed run writes to a fresh ext4 of $(calc "$1 / 1e9") GB (a loop-mounted file)"
  work=$mnt
}
