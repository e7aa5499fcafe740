#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Writes a one-layer OCI image layout (tag "v1") to DIR, and the tree its
# layer holds to DIR.src for comparing a mount with.  Written by hand
# (tar, gzip, sha256sum) so that the guest's `oci pull` reads an image made
# without the project's code.
# Usage: make_oci.sh DIR
set -euo pipefail
out=${1:?usage: $0 DIR}
mkdir -p "$out/blobs/sha256" "$out.src/usr/bin" "$out.src/usr/share/data" "$out.src/etc"
printf '#!/bin/sh\necho hello\n' >"$out.src/usr/bin/hello"
chmod 755 "$out.src/usr/bin/hello"
printf 'ID=cfs-vm\n' >"$out.src/etc/os-release"
for i in 1 2 3 4 5; do
  head -c $((i * 37000)) /dev/urandom >"$out.src/usr/share/data/blob$i"
done
ln -s ../share/data/blob1 "$out.src/usr/bin/link"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@1700000000 \
  -C "$out.src" -cf "$out/layer.tar" .
diff_id=$(sha256sum "$out/layer.tar" | cut -d' ' -f1)
gzip -n -c "$out/layer.tar" >"$out/layer.tar.gz"
rm "$out/layer.tar"
blob() { # FILE: moves it into blobs/, prints "DIGEST SIZE"
  local d s
  d=$(sha256sum "$1" | cut -d' ' -f1)
  s=$(stat -c %s "$1")
  mv "$1" "$out/blobs/sha256/$d"
  echo "$d $s"
}
read -r layer lsize < <(blob "$out/layer.tar.gz")
printf '{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
  "$diff_id" >"$out/config.json"
read -r config csize < <(blob "$out/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
  "$config" "$csize" "$layer" "$lsize" >"$out/manifest.json"
read -r manifest msize < <(blob "$out/manifest.json")
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"v1"}}]}' \
  "$manifest" "$msize" >"$out/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' >"$out/oci-layout"
echo "$out"
