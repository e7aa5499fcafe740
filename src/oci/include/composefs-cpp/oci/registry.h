// SPDX-License-Identifier: Apache-2.0
// A client of the OCI distribution API over libcurl: anonymous, bearer-token
// (WWW-Authenticate challenge) and basic auth; credentials from an option or
// containers-auth.json(5); TLS verification optional, falling back to plain
// http for local registries; blobs streamed with interrupted transfers
// resumed by HTTP range requests.
#pragma once

#include <memory>
#include <string>

#include "composefs-cpp/oci/source.h"

namespace cfs::oci {

struct RegistryRef {
  std::string host;        // "127.0.0.1:5000", "registry-1.docker.io"
  std::string repository;  // "library/debian"
  std::string tag;         // empty when pinned by digest
  std::string digest;
};

// "HOST/REPO[:TAG|@DIGEST]" with Docker Hub's defaults for short names.
Result<RegistryRef> parse_registry_ref(std::string_view ref);

// `ref` is what follows "docker://".
Result<std::unique_ptr<Source>> open_registry(const std::string& ref, const SourceOptions& opts);

}  // namespace cfs::oci
