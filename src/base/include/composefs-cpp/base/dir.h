// SPDX-License-Identifier: Apache-2.0
// Listing a directory: names and types, sorted, with errors as values.
#pragma once

#include <dirent.h>

#include <string>
#include <vector>

#include "composefs-cpp/base/error.h"
#include "composefs-cpp/base/fd.h"

namespace cfs {

struct DirEntryInfo {
  std::string name;
  unsigned char type = DT_UNKNOWN;  // DT_* (resolved with lstat when readdir lacks it)
};

// The entries of `rel` below `dirfd` ("." for dirfd itself) except "." and
// "..", sorted by name.  `rel` is opened without following a final symlink.
Result<std::vector<DirEntryInfo>> list_dir(int dirfd, const std::string& rel);

// Opens `rel` below `dirfd` without ever leaving it (openat2 RESOLVE_BENEATH,
// or the same rules walked here on kernels without it): ".." cannot climb
// above dirfd, absolute symlinks and /proc magic links are refused, and with
// `follow_symlinks` false no symlink is followed at all.  O_NONBLOCK is added
// (unless O_PATH) so that opening a FIFO or a device never blocks.  A path leading outside is
// an error with errno EXDEV.
Result<UniqueFd> open_beneath(int dirfd, const std::string& rel, int flags, bool follow_symlinks);

}  // namespace cfs
