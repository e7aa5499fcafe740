// SPDX-License-Identifier: Apache-2.0
// Layer decompression by media type: gzip (zlib), zstd (libzstd; zstd:chunked
// is plain zstd with skippable frames) and uncompressed.
#pragma once

#include <memory>
#include <string_view>

#include "composefs-cpp/oci/io.h"

namespace cfs::oci {

enum class Compression { None, Gzip, Zstd };

// Wraps `in` (which must outlive the result) in a decompressor.
std::unique_ptr<Reader> decompressor(Reader& in, Compression c);

// The compression of a layer media type (OCI and Docker names), or an error
// for media types that are not tar layers.
Result<Compression> layer_compression(std::string_view media_type);

// Guesses the compression from the first bytes (docker-archive layers carry
// no media type).
Compression sniff_compression(std::span<const uint8_t> head);

}  // namespace cfs::oci
