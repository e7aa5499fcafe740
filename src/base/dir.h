// SPDX-License-Identifier: Apache-2.0
// Listing a directory: names and types, sorted, with errors as values.
#pragma once

#include <dirent.h>

#include <string>
#include <vector>

#include "base/error.h"

namespace cfs {

struct DirEntryInfo {
  std::string name;
  unsigned char type = DT_UNKNOWN;  // DT_* (resolved with lstat when readdir lacks it)
};

// The entries of `rel` below `dirfd` ("." for dirfd itself) except "." and
// "..", sorted by name.  `rel` is opened without following a final symlink.
Result<std::vector<DirEntryInfo>> list_dir(int dirfd, const std::string& rel);

}  // namespace cfs
