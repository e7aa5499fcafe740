// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/repository/walk.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "composefs-cpp/tree/tree.h"

namespace cfs::repository {

Result<std::vector<DirEntryInfo>> list_dir(int repo_fd, const std::string& rel) {
  CFS_TRY_ASSIGN(UniqueFd fd, open_beneath(repo_fd, rel, O_RDONLY | O_DIRECTORY, false));
  auto r = ::cfs::list_dir(fd.get(), ".");
  if (!r) return tl::unexpected(std::move(r.error()).context(rel));
  return r;
}

Result<Parent> open_parent(int repo_fd, const std::string& rel) {
  size_t slash = rel.rfind('/');
  Parent p;
  p.name = slash == std::string::npos ? rel : rel.substr(slash + 1);
  std::string dir = slash == std::string::npos ? "" : rel.substr(0, slash);
  CFS_TRY_ASSIGN(p.fd, open_beneath(repo_fd, dir, O_RDONLY | O_DIRECTORY, false));
  return p;
}

Result<std::string> read_link(int repo_fd, const std::string& rel) {
  CFS_TRY_ASSIGN(Parent p, open_parent(repo_fd, rel));
  std::string buf(kPathMax, '\0');
  ssize_t n = ::readlinkat(p.fd.get(), p.name.c_str(), buf.data(), buf.size());
  if (n < 0) return sys_error(fmt::format("cannot read symlink {}", rel));
  buf.resize(static_cast<size_t>(n));
  return buf;
}

Result<UniqueFd> open_file(int repo_fd, const std::string& rel, bool follow) {
  CFS_TRY_ASSIGN(UniqueFd fd, open_beneath(repo_fd, rel, O_RDONLY | O_NOCTTY, follow));
  struct stat st;
  if (::fstat(fd.get(), &st) < 0) return sys_error(fmt::format("cannot stat {}", rel));
  if (!S_ISREG(st.st_mode)) return errorf(Errc::Corrupt, "{} is not a regular file", rel);
  return fd;
}

}  // namespace cfs::repository
