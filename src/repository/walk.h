// SPDX-License-Identifier: Apache-2.0
// Small directory helpers for walking a repository (gc, fsck).
#pragma once

#include <dirent.h>

#include <string>
#include <vector>

#include "base/error.h"

namespace cfs::repository {

struct DirEntryInfo {
  std::string name;
  unsigned char type = DT_UNKNOWN;  // DT_* (resolved with lstat when readdir lacks it)
};

// The entries of `rel` below `dirfd` except "." and "..", sorted by name.
Result<std::vector<DirEntryInfo>> list_dir(int dirfd, const std::string& rel);
// A symlink's target.
Result<std::string> read_link(int dirfd, const std::string& rel);

}  // namespace cfs::repository
