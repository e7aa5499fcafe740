// SPDX-License-Identifier: Apache-2.0
#include "repository/walk.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "tree/tree.h"

namespace cfs::repository {

Result<std::string> read_link(int dirfd, const std::string& rel) {
  std::string buf(kPathMax, '\0');
  ssize_t n = ::readlinkat(dirfd, rel.c_str(), buf.data(), buf.size());
  if (n < 0) return sys_error(fmt::format("cannot read symlink {}", rel));
  buf.resize(static_cast<size_t>(n));
  return buf;
}

}  // namespace cfs::repository
