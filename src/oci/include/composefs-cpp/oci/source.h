// SPDX-License-Identifier: Apache-2.0
// Where images come from: `oci:DIR[:TAG]` (OCI image layout),
// `oci-archive:FILE[:TAG]`, `docker-archive:FILE[:REPO:TAG]` (docker save) and
// `docker://HOST/REPO[:TAG|@DIGEST]` (a registry, see registry.h).  A source
// hands out manifests and blobs by descriptor; resolve() walks index →
// manifest → config with every digest and size verified.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "composefs-cpp/oci/io.h"
#include "composefs-cpp/oci/manifest.h"

namespace cfs::oci {

struct SourceOptions {
  bool tls_verify = true;
  std::string credentials;  // "user:password" for registries, optional
  std::string authfile;     // containers-auth.json(5); empty: the usual places
  // CA certificates (*.crt) and a client certificate (*.cert + *.key), as
  // skopeo's --cert-dir; empty: /etc/containers/certs.d/HOST (then
  // /etc/docker/certs.d/HOST) when it exists.
  std::string cert_dir;
  Platform platform = host_platform();
};

class Source {
 public:
  virtual ~Source() = default;
  // The document the reference names (a manifest or an index), and the
  // digest it must have when the reference pins one (else empty).
  virtual Result<std::string> root_manifest(std::string& pinned_digest) = 0;
  // A manifest named by an index (verified by the caller).
  virtual Result<std::string> manifest(const Descriptor& d) = 0;
  // The raw (possibly compressed) bytes of a blob; the caller verifies.
  virtual Result<std::unique_ptr<Reader>> open_blob(const Descriptor& d) = 0;
  // Blobs may be fetched from several threads at once.
  virtual bool concurrent_blobs() const { return true; }
};

// Parses a source reference; the transport prefix is required.
Result<std::unique_ptr<Source>> open_source(const std::string& ref, const SourceOptions& opts);

struct ResolvedImage {
  std::string manifest_digest;
  std::string manifest_json;
  Manifest manifest;
  std::string config_json;
  ImageConfig config;
};

// Fetches and checks the manifest (through an index for `platform`) and the
// config: digests and sizes against their descriptors, and as many layers
// as diff_ids.
Result<ResolvedImage> resolve(Source& src, const Platform& platform);

// Reads a whole blob, verifying its digest and size.
Result<std::string> fetch_verified(Source& src, const Descriptor& d, size_t max_size,
                                   std::string_view what);

}  // namespace cfs::oci
