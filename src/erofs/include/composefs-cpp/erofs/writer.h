// SPDX-License-Identifier: Apache-2.0
// Writes composefs EROFS images in the three layouts in use:
//   0, 1  byte-identical to the C reference's mkcomposefs (writer.cc);
//   2     byte-identical to composefs-rs's own layout, its FormatVersion::V2
//         (writer_v2.cc), which older composefs-rs and bootc repositories
//         hold and name by digest.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "composefs-cpp/base/error.h"
#include "composefs-cpp/tree/tree.h"

namespace cfs::erofs {

struct WriteOptions {
  // As mkcomposefs's --min-version/--max-version: the image is written in
  // min_version unless the tree needs a later one (whiteouts need 1) and
  // max_version allows it; the defaults are mkcomposefs's.  Format 2 is a
  // different layout, not a feature level: it is written when min_version
  // is 2, never chosen otherwise (a max_version of 2 acts as 1).
  uint32_t min_version = 0;
  uint32_t max_version = 1;

  // composefs-rs's FormatVersion: 0 is mkcomposefs's default (format 0, or
  // 1 when the tree has whiteouts), 1 is `--min-version=1`, 2 is format 2.
  static WriteOptions for_format(uint32_t format_version) {
    return {format_version, format_version == 0 ? 1 : format_version};
  }
};

// Receives the image in order, in pieces.
using Sink = std::function<Status(std::span<const uint8_t>)>;

// Writes the image of `tree`; returns the format version written (the
// header's composefs_version).  The tree is not modified.
Result<uint32_t> write_image(const Tree& tree, const WriteOptions& opts, const Sink& sink);

// The image in memory.
Result<std::vector<uint8_t>> build_image(const Tree& tree, const WriteOptions& opts = {});
// The image in a composefs-rs FormatVersion (see WriteOptions::for_format);
// what repositories commit.
Result<std::vector<uint8_t>> build_image(const Tree& tree, uint32_t format_version);

}  // namespace cfs::erofs
