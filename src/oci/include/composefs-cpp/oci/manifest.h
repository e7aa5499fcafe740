// SPDX-License-Identifier: Apache-2.0
// OCI image JSON (image index / Docker manifest list, image manifest, image
// config), parsed strictly: unknown media types, malformed digests, negative
// sizes and layer/diff_id count mismatches are errors.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "composefs-cpp/base/error.h"

namespace cfs::oci {

inline constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kOciConfig = "application/vnd.oci.image.config.v1+json";
inline constexpr std::string_view kDockerList =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr std::string_view kDockerManifest =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view kDockerConfig = "application/vnd.docker.container.image.v1+json";

// Manifests and configs larger than this are refused (registries cap
// manifests at 4 MiB).
inline constexpr size_t kMaxManifestSize = 4 << 20;
inline constexpr size_t kMaxConfigSize = 16 << 20;

struct Platform {
  std::string os, architecture, variant;
};

struct Descriptor {
  std::string media_type;
  std::string digest;
  uint64_t size = 0;
  std::optional<Platform> platform;
  std::map<std::string, std::string> annotations;
};

struct Index {
  std::vector<Descriptor> manifests;
};

struct Manifest {
  std::string media_type;
  Descriptor config;
  std::vector<Descriptor> layers;
};

struct ImageConfig {
  std::string architecture, os;
  std::vector<std::string> diff_ids;
};

bool is_index_type(std::string_view media_type);
bool is_manifest_type(std::string_view media_type);

// The media type of a manifest or index document (its mediaType field, or
// inferred from its members when absent, as older writers leave it out).
Result<std::string> document_media_type(std::string_view json);

Result<Index> parse_index(std::string_view json);
Result<Manifest> parse_manifest(std::string_view json);
Result<ImageConfig> parse_config(std::string_view json);

// This machine's platform in OCI terms (GOOS/GOARCH names).
Platform host_platform();
// The manifest of `index` for `want`: exact variant preferred, attestation
// manifests skipped.  Errors listing the platforms offered.
Result<Descriptor> select_platform(const Index& index, const Platform& want);

// Docker's v2 schema 1 manifests are refused with this message.
inline constexpr std::string_view kSchema1Message =
    "Docker schema 1 manifests are not supported (deprecated; re-push the image)";

}  // namespace cfs::oci
