// SPDX-License-Identifier: Apache-2.0
// Tar layers into split streams (headers and small files inline, larger files
// as objects) and back into a merged filesystem.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "composefs-cpp/oci/io.h"
#include "composefs-cpp/oci/layers.h"
#include "composefs-cpp/oci/store.h"
#include "composefs-cpp/repository/splitstream.h"

namespace cfs::oci {

// Split streams are the repository's format; OCI code names them unqualified.
using repository::content_type;
using repository::SplitInlineReader;
using repository::SplitStreamChunk;
using repository::SplitStreamReader;
using repository::SplitStreamWriter;

// The content types of the streams an OCI image is stored as.
inline constexpr uint64_t kLayerContentType = content_type("ocilayer");
inline constexpr uint64_t kConfigContentType = content_type("ociconfg");
inline constexpr uint64_t kManifestContentType = content_type("ocimanif");
inline constexpr uint64_t kBlobContentType = content_type("oci_blob");

struct ImportStats {
  std::atomic<uint64_t> objects{0};      // external files seen
  std::atomic<uint64_t> new_objects{0};  // of which were not stored before
  std::atomic<uint64_t> new_bytes{0};
  std::atomic<uint64_t> inline_bytes{0};
};

// Splits an uncompressed tar stream: every tar byte is kept (so the stream
// reassembles exactly), regular files over kInlineMax bytes become objects.
// Stores the split stream (in bounded memory, whatever the layer's size) and
// returns its object id; the caller registers it.
Result<fsverity::Digest> split_tar(Reader& tar, Store& store, ImportStats& stats);

// Writes the whole reassembled stream to `out_fd`, optionally hashing it.
Status cat_stream(const Store& store, SplitStreamReader& r, int out_fd, Sha256* sha = nullptr);

// Adds the entries of a stored layer to `merger` (one layer).
Status merge_layer_stream(const Store& store, SplitStreamReader& r, LayerMerger& merger,
                          const std::string& layer_name);

}  // namespace cfs::oci
