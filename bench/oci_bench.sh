#!/usr/bin/env bash
# OCI import benchmark (root; not run by ctest).
#   bench/oci_bench.sh [-b BUILD] [-r ROOTFS] [REF_MKCOMPOSEFS]
# Builds a 3-layer OCI image of a real Debian root filesystem (debootstrap
# when it can reach Debian's mirror, else a copy of this machine's /usr and
# /etc), then times:
#   1. cfsctl oci pull oci:… into an empty repository;
#   2. the same into a filled repository (a second image sharing two layers);
#   3. umoci unpack + the reference `mkcomposefs --digest-store` of the result
#      (the C tool path from a directory, given as REF_MKCOMPOSEFS);
#   4. pull throughput from a local docker-registry on 127.0.0.1.
# It also checks that cfsctl oci compute-id equals cfsctl compute-id of the
# umoci unpack, so the timed paths produce the same image.
set -euo pipefail
BUILD=build
ROOTFS=
while getopts "b:r:" o; do
  case $o in
    b) BUILD=$OPTARG ;;
    r) ROOTFS=$OPTARG ;;
    *) exit 2 ;;
  esac
done
shift $((OPTIND - 1))
REF=${1:-}
CFSCTL=$(realpath "$BUILD/bin/cfsctl")
for t in umoci skopeo docker-registry; do
  command -v $t >/dev/null || { echo "needs $t (scripts/debian-packages.txt)" >&2; exit 1; }
done
W=$(mktemp -d /var/tmp/oci-bench.XXXXXX)
REG_PID=
cleanup() {
  [[ -n $REG_PID ]] && kill "$REG_PID" 2>/dev/null && wait "$REG_PID" 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
now() { date +%s.%N; }
elapsed() { echo "$(now) - $1" | bc; }

# ---- the root filesystem ------------------------------------------------
if [[ -z $ROOTFS ]]; then
  ROOTFS=$W/debian
  if command -v debootstrap >/dev/null &&
    debootstrap --variant=minbase bookworm "$ROOTFS" >"$W/debootstrap.log" 2>&1; then
    echo "rootfs: debootstrap bookworm minbase"
  else
    echo "rootfs: debootstrap unavailable; copying this machine's /usr and /etc"
    rm -rf "$ROOTFS" && mkdir -p "$ROOTFS"
    cp -a /usr /etc "$ROOTFS"/ 2>/dev/null || true
    mkdir -p "$ROOTFS"/{run,var,tmp}
  fi
fi
echo "rootfs: $(du -sh "$ROOTFS" | cut -f1), $(find "$ROOTFS" | wc -l) entries"

# ---- a 3-layer image: everything but /usr/share, /usr/share, a change -----
# umoci repack makes one layer of all changes since the bundle's unpack, so
# each layer is its own unpack, change and repack.
cd "$W"
umoci init --layout img >/dev/null
umoci new --image img:base >/dev/null
layer() {  # FROM TO CMD...: TO is FROM plus a layer of what CMD does in b/rootfs
  local from=$1 to=$2
  shift 2
  umoci unpack --image "img:$from" b >/dev/null
  "$@"
  umoci repack --image "img:$to" b >/dev/null
  rm -rf b
}
layer base base sh -c "tar -C '$ROOTFS' --exclude=./usr/share -cf - . | tar -C b/rootfs -xf -"
layer base base sh -c "tar -C '$ROOTFS' -cf - ./usr/share | tar -C b/rootfs -xf -"
umoci tag --image img:base two
layer base base sh -c "date > b/rootfs/etc/bench-stamp"
# A second image sharing the first two layers, with a third of its own.
layer two other sh -c "head -c 10000000 /dev/urandom > b/rootfs/usr/bench-blob"
nlayers=$(umoci stat --image img:base --json | python3 -c 'import json,sys; print(sum(1 for h in json.load(sys.stdin)["history"] if not h.get("empty_layer")))')
[[ $nlayers == 3 ]] || { echo "expected 3 layers in img:base, made $nlayers" >&2; exit 1; }
echo "image: 3 gzip layers, $(du -sh img | cut -f1) of blobs with the second image"

# ---- 1 and 2: cfsctl into an empty, then a filled repository --------------
"$CFSCTL" --repo "$W/repo" init --insecure --algorithm fsverity-sha256-12 >/dev/null
sync
t=$(now)
"$CFSCTL" --repo "$W/repo" oci pull "oci:$W/img:base" base >/dev/null
t_empty=$(elapsed "$t")
sync
t=$(now)
"$CFSCTL" --repo "$W/repo" oci pull "oci:$W/img:other" other >/dev/null
t_filled=$(elapsed "$t")
id_oci=$("$CFSCTL" --repo "$W/repo" oci compute-id base)

# ---- 3: umoci unpack + reference mkcomposefs --digest-store ---------------
sync
t=$(now)
umoci unpack --image img:base ref >/dev/null
t_unpack=$(elapsed "$t")
t_ref=
if [[ -n $REF ]]; then
  t=$(now)
  "$REF" --digest-store="$W/store" ref/rootfs "$W/ref.cfs"
  t_ref=$(elapsed "$t")
fi
id_scan=$("$CFSCTL" --repo "$W/repo" compute-id ref/rootfs)
[[ $id_oci == "$id_scan" ]] || { echo "MISMATCH: oci $id_oci vs unpack $id_scan" >&2; exit 1; }

# ---- 4: from a local registry ---------------------------------------------
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >reg.yml <<CFG
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $W/regdata
http:
  addr: 127.0.0.1:$PORT
CFG
docker-registry serve reg.yml >reg.log 2>&1 &
REG_PID=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
skopeo copy -q --dest-tls-verify=false "oci:$W/img:base" "docker://127.0.0.1:$PORT/bench/img:base"
bytes=$(python3 -c "
import json, sys
i = json.load(open('img/index.json'))
[d] = [m for m in i['manifests'] if m['annotations']['org.opencontainers.image.ref.name'] == 'base']
m = json.load(open('img/blobs/sha256/' + d['digest'][7:]))
print(sum(l['size'] for l in m['layers']) + m['config']['size'] + d['size'])")
"$CFSCTL" --repo "$W/repo2" init --insecure --algorithm fsverity-sha256-12 >/dev/null
t=$(now)
"$CFSCTL" --repo "$W/repo2" oci pull --tls-verify=false "docker://127.0.0.1:$PORT/bench/img:base" x >/dev/null
t_reg=$(elapsed "$t")

printf '\n%-52s %8s\n' "step" "seconds"
printf '%-52s %8.2f\n' "cfsctl oci pull oci: (empty repository)" "$t_empty"
printf '%-52s %8.2f\n' "cfsctl oci pull oci: (filled: 2 of 3 layers stored)" "$t_filled"
printf '%-52s %8.2f\n' "umoci unpack" "$t_unpack"
[[ -n $t_ref ]] && printf '%-52s %8.2f\n' "reference mkcomposefs --digest-store (after unpack)" "$t_ref"
[[ -n $t_ref ]] && printf '%-52s %8.2f\n' "  umoci unpack + reference, total" "$(echo "$t_unpack + $t_ref" | bc)"
printf '%-52s %8.2f  (%.0f MiB/s of blobs)\n' "cfsctl oci pull docker:// (local registry)" "$t_reg" \
  "$(echo "$bytes / 1048576 / $t_reg" | bc -l)"
echo "image id (both paths): $id_oci"
