// SPDX-License-Identifier: Apache-2.0
// Small directory helpers for walking a repository (gc, fsck).
#pragma once

#include <dirent.h>

#include <string>
#include <vector>

#include "base/dir.h"
#include "base/error.h"

namespace cfs::repository {

using ::cfs::DirEntryInfo;
using ::cfs::list_dir;
// A symlink's target.
Result<std::string> read_link(int dirfd, const std::string& rel);

}  // namespace cfs::repository
