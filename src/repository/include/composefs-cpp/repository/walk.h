// SPDX-License-Identifier: Apache-2.0
// Reading a repository's directories and links confined to it (gc, fsck,
// listings): no path ever goes through a symlink to a directory (refs and
// object directories are real directories), nothing escapes the repository,
// and no open blocks on a FIFO someone planted there.
#pragma once

#include <dirent.h>

#include <string>
#include <vector>

#include "composefs-cpp/base/dir.h"
#include "composefs-cpp/base/error.h"
#include "composefs-cpp/base/fd.h"

namespace cfs::repository {

using ::cfs::DirEntryInfo;
// The entries of directory `rel` of the repository `repo_fd`, sorted.
Result<std::vector<DirEntryInfo>> list_dir(int repo_fd, const std::string& rel);
// A symlink's target (the link at `rel`, its directories not followed).
Result<std::string> read_link(int repo_fd, const std::string& rel);
// The directory holding `rel` (opened without following symlinks) and the
// last component's name, for *at() calls on that entry alone.
struct Parent {
  UniqueFd fd;
  std::string name;
};
Result<Parent> open_parent(int repo_fd, const std::string& rel);
// A regular file for reading; `follow`: whether symlinks inside the
// repository are followed (images/<hex> -> ../objects/...).  A FIFO, device
// or directory is an error, as is a link out of the repository.
Result<UniqueFd> open_file(int repo_fd, const std::string& rel, bool follow);

}  // namespace cfs::repository
