// SPDX-License-Identifier: Apache-2.0
// A directory read as the bootable image composefs-rs makes of it (cfsctl
// create-image/compute-id/compute-karg --bootable): read as a container
// root (the container transformation with the xattr mode, unless
// `transform` is off), then the boot transformation.  With a repository the
// files go there and the policy and boot entries are read back from it
// (transform_for_boot); without one the policy is read from the directory,
// confined to it, and the boot resources are not looked at
// (transform_for_boot_from_dir).
#pragma once

#include <string>

#include "composefs-cpp/base/error.h"
#include "composefs-cpp/boot/transform.h"
#include "composefs-cpp/fsverity/fsverity.h"
#include "composefs-cpp/repository/repository.h"
#include "composefs-cpp/tree/tree.h"

namespace cfs::boot {

struct DirectoryOptions {
  fsverity::HashAlg alg = fsverity::HashAlg::Sha512;
  bool transform = true;  // false: --no-propagate-usr-to-root
  XattrMode xattrs = XattrMode::AllowlistOnly;
  bool bootable = true;
  BootOptions boot;
  repository::Repository* repo = nullptr;  // where the files go, if anywhere
  // Called with the tree as read, before the boot transformation.
  std::function<void(const Tree&)> inspect;
};

Result<Tree> read_directory(const std::string& path, const DirectoryOptions& opts);

// The fs-verity digest of `tree`'s image in `format_version`.
Result<fsverity::Digest> image_digest(const Tree& tree, uint32_t format_version,
                                      fsverity::HashAlg alg);

}  // namespace cfs::boot
