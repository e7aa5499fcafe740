// SPDX-License-Identifier: Apache-2.0
// Boot images of stored OCI images, as composefs-rs's composefs-oci boot.rs
// keeps them: built from the merged layers (container transformation with
// the xattr mode, then the boot transformation), one EROFS image per format
// the repository writes, named in the image's config stream by
// oci::boot_image_ref_key(version, mode) ("composefs.image.boot",
// "composefs.image.boot.v1", "...xattrs=keep-user-xattrs"); refs of other
// modes stay.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "composefs-cpp/base/error.h"
#include "composefs-cpp/boot/transform.h"
#include "composefs-cpp/oci/pull.h"
#include "composefs-cpp/oci/store.h"

namespace cfs::boot {

// Reads a regular file's data from the store's objects.
selinux::FileReader store_reader(const oci::Store& store);

struct BootTree {
  Tree tree;
  std::vector<BootEntry> entries;  // found before /boot was emptied
};
// The bootable filesystem of a stored image.
Result<BootTree> oci_boot_tree(const oci::Store& store, const oci::StoredImage& img,
                               XattrMode mode = XattrMode::AllowlistOnly,
                               const BootOptions& opts = {});

// The config ref of the boot image in the store's default format for
// `mode`, if one is linked.
std::optional<fsverity::Digest> linked_boot_image(const oci::Store& store,
                                                  const oci::StoredImage& img,
                                                  XattrMode mode = XattrMode::AllowlistOnly);

struct GeneratedBootImage {
  fsverity::Digest id;  // the default format's
  std::vector<repository::CommittedImage> images;
  bool cached = false;  // already linked: nothing was built
};
// composefs-rs's generate_boot_image: the linked boot image of `mode` when
// there is one, else builds, stores and links one per format.
Result<GeneratedBootImage> generate_boot_image(oci::Store& store, const oci::StoredImage& img,
                                               XattrMode mode = XattrMode::AllowlistOnly,
                                               const BootOptions& opts = {});

// The formats boot images are made in (composefs-rs's BOOT_VERSIONS).
inline constexpr uint32_t kBootVersions[] = {1, 2};

struct BootImageMatch {
  bool found = false;
  XattrMode mode = XattrMode::AllowlistOnly;
  uint32_t version = 1;
  fsverity::Digest digest;
  size_t tried = 0;       // (mode, version) combinations tried
  bool computed = false;  // built now (and linked), not found linked
};
// composefs-rs's find_matching_boot_image: for each mode (allowlist-only
// first), the linked refs of formats 1 and 2, then (for formats without a
// ref) the images built from one tree; the first image whose digest is
// `expected` wins, and a built one is stored and linked under its ref.
Result<BootImageMatch> find_matching_boot_image(oci::Store& store, const oci::StoredImage& img,
                                                const fsverity::Digest& expected,
                                                const BootOptions& opts = {});

}  // namespace cfs::boot
