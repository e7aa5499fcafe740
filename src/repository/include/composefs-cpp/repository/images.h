// SPDX-License-Identifier: Apache-2.0
// Committing a tree's EROFS images, as composefs-rs's commit_images: one
// image per format the repository writes (meta.json's erofs_formats), the
// default first; only the default's image is named.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "composefs-cpp/base/error.h"
#include "composefs-cpp/fsverity/fsverity.h"
#include "composefs-cpp/repository/repository.h"
#include "composefs-cpp/tree/tree.h"

namespace cfs::repository {

struct CommittedImage {
  uint32_t version = 0;  // composefs-rs's FormatVersion (erofs::build_image)
  fsverity::Digest id;
};

// Stores one image; `is_default`: it is the default format's.
using ImageWriter =
    std::function<Result<fsverity::Digest>(std::span<const uint8_t> image, bool is_default)>;

// Builds the image of `tree` in each of `versions` (the first is the
// default) and hands each to `write` as soon as it is built; the ids in the
// same order.
Result<std::vector<CommittedImage>> commit_images(const Tree& tree,
                                                  const std::vector<uint32_t>& versions,
                                                  const ImageWriter& write);

// Into `repo`: images/<hex> for each of repo.format_config()'s formats,
// images/refs/<name> for the default's only.
Result<std::vector<CommittedImage>> commit_images(Repository& repo, const Tree& tree,
                                                  const std::optional<std::string>& name);

}  // namespace cfs::repository
