// SPDX-License-Identifier: Apache-2.0
#include "repository/walk.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "tree/tree.h"

namespace cfs::repository {

Result<std::vector<DirEntryInfo>> list_dir(int dirfd, const std::string& rel) {
  int fd = ::openat(dirfd, rel.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return sys_error(fmt::format("cannot open {}", rel));
  DIR* d = ::fdopendir(fd);
  if (!d) {
    int e = errno;
    ::close(fd);
    return sys_error(e, fmt::format("cannot read {}", rel));
  }
  std::vector<DirEntryInfo> out;
  for (;;) {
    errno = 0;
    struct dirent* de = ::readdir(d);
    if (!de) {
      if (errno) {
        int e = errno;
        ::closedir(d);
        return sys_error(e, fmt::format("cannot read {}", rel));
      }
      break;
    }
    std::string name = de->d_name;
    if (name == "." || name == "..") continue;
    unsigned char type = de->d_type;
    if (type == DT_UNKNOWN) {
      struct stat st;
      if (::fstatat(::dirfd(d), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (S_ISDIR(st.st_mode))
          type = DT_DIR;
        else if (S_ISLNK(st.st_mode))
          type = DT_LNK;
        else if (S_ISREG(st.st_mode))
          type = DT_REG;
        else if (S_ISCHR(st.st_mode))
          type = DT_CHR;
        else if (S_ISBLK(st.st_mode))
          type = DT_BLK;
        else if (S_ISFIFO(st.st_mode))
          type = DT_FIFO;
        else if (S_ISSOCK(st.st_mode))
          type = DT_SOCK;
      }
    }
    out.push_back({std::move(name), type});
  }
  ::closedir(d);
  std::sort(out.begin(), out.end(),
            [](const DirEntryInfo& a, const DirEntryInfo& b) { return a.name < b.name; });
  return out;
}

Result<std::string> read_link(int dirfd, const std::string& rel) {
  std::string buf(kPathMax, '\0');
  ssize_t n = ::readlinkat(dirfd, rel.c_str(), buf.data(), buf.size());
  if (n < 0) return sys_error(fmt::format("cannot read symlink {}", rel));
  buf.resize(static_cast<size_t>(n));
  return buf;
}

}  // namespace cfs::repository
