// SPDX-License-Identifier: Apache-2.0
// cfsctl create-image / compute-id: a directory read as composefs-rs 0.9
// reads a container's root filesystem (read_container_root).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "composefs-cpp/base/error.h"
#include "composefs-cpp/fsverity/fsverity.h"
#include "composefs-cpp/repository/repository.h"
#include "composefs-cpp/tree/tree.h"

namespace cfs::repository {

struct RootOptions {
  fsverity::HashAlg alg = fsverity::HashAlg::Sha512;
  // composefs-rs's OCI transformation (the default): only the
  // security.capability xattr is kept, / takes /usr's mode, owner, mtime and
  // xattrs, and /run is emptied and given /usr's mtime.  Off
  // (--no-propagate-usr-to-root): the tree exactly as found, which is what
  // `mkcomposefs --hardlinks` reads.
  bool transform = true;
  // With the transformation: also keep user.* xattrs (composefs-rs's
  // keep-user-xattrs filtering mode).
  bool keep_user_xattrs = false;
  unsigned threads = 0;  // 0: every CPU this process may use
  // Where file contents go; null computes digests only (compute-id).
  Repository* repo = nullptr;
};

// Reads the tree: hardlinks kept (by st_dev/st_ino), nanosecond mtimes,
// regular files over 64 bytes stored as objects named by their digest.
Result<Tree> read_container_root(const std::string& path, const RootOptions& opts);

}  // namespace cfs::repository
