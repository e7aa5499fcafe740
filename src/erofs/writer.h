// SPDX-License-Identifier: Apache-2.0
// Writes composefs EROFS images byte-identical to the C reference's
// mkcomposefs (format versions 0 and 1).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "base/error.h"
#include "tree/tree.h"

namespace cfs::erofs {

struct WriteOptions {
  // The image is written in min_version unless the tree needs a later one
  // (whiteouts need 1) and max_version allows it.  mkcomposefs's defaults.
  uint32_t min_version = 0;
  uint32_t max_version = 1;
};

// Receives the image in order, in pieces.
using Sink = std::function<Status(std::span<const uint8_t>)>;

// Writes the image of `tree`; returns the format version written.  The tree
// is not modified.
Result<uint32_t> write_image(const Tree& tree, const WriteOptions& opts, const Sink& sink);

// The image in memory.
Result<std::vector<uint8_t>> build_image(const Tree& tree, const WriteOptions& opts = {});

}  // namespace cfs::erofs
