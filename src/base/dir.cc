// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/base/dir.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <deque>

namespace cfs {

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

namespace {

// open_beneath() without openat2: the path resolved one component at a time
// from directory fds, symlinks read and spliced in, nothing above `dirfd`.
Result<UniqueFd> walk_beneath(int dirfd, const std::string& rel, int flags, bool follow) {
  auto outside = [&] {
    return sys_error(EXDEV, fmt::format("'{}' leads outside its directory", rel));
  };
  std::deque<std::string> todo;
  auto split = [](const std::string& p, std::deque<std::string>& out, bool front) {
    std::vector<std::string> parts;
    size_t i = 0;
    while (i <= p.size()) {
      size_t j = std::min(p.find('/', i), p.size());
      if (j > i && p.compare(i, j - i, ".") != 0) parts.push_back(p.substr(i, j - i));
      i = j + 1;
    }
    if (front)
      out.insert(out.begin(), parts.begin(), parts.end());
    else
      out.insert(out.end(), parts.begin(), parts.end());
  };
  if (!rel.empty() && rel[0] == '/') return outside();
  split(rel, todo, false);
  std::vector<UniqueFd> dirs;  // the directories below dirfd we are in
  auto cur = [&] { return dirs.empty() ? dirfd : dirs.back().get(); };
  int links = 0;
  if (todo.empty()) {
    int fd = ::openat(dirfd, ".", flags | O_CLOEXEC);
    if (fd < 0) return sys_error(fmt::format("cannot open '{}'", rel));
    return UniqueFd(fd);
  }
  while (!todo.empty()) {
    std::string name = std::move(todo.front());
    todo.pop_front();
    if (name == "..") {
      if (dirs.empty()) return outside();
      dirs.pop_back();
      if (todo.empty()) {
        int fd = ::openat(cur(), ".", flags | O_CLOEXEC);
        if (fd < 0) return sys_error(fmt::format("cannot open '{}'", rel));
        return UniqueFd(fd);
      }
      continue;
    }
    struct stat st;
    if (::fstatat(cur(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0)
      return sys_error(fmt::format("cannot open '{}'", rel));
    if (S_ISLNK(st.st_mode)) {
      if (!follow) return sys_error(ELOOP, fmt::format("cannot open '{}'", rel));
      if (++links > 40) return sys_error(ELOOP, fmt::format("cannot open '{}'", rel));
      std::string target(4096, '\0');
      ssize_t n = ::readlinkat(cur(), name.c_str(), target.data(), target.size());
      if (n < 0) return sys_error(fmt::format("cannot read the link in '{}'", rel));
      target.resize(static_cast<size_t>(n));
      if (target.empty() || target[0] == '/') return outside();
      split(target, todo, true);
      continue;
    }
    // O_NOFOLLOW: a name swapped for a symlink since the fstatat fails.
    if (todo.empty()) {
      int fd = ::openat(cur(), name.c_str(), flags | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) return sys_error(fmt::format("cannot open '{}'", rel));
      return UniqueFd(fd);
    }
    int fd = ::openat(cur(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return sys_error(fmt::format("cannot open '{}'", rel));
    dirs.emplace_back(fd);
  }
  return sys_error(EINVAL, fmt::format("cannot open '{}'", rel));
}

}  // namespace

Result<UniqueFd> open_beneath(int dirfd, const std::string& rel, int flags, bool follow_symlinks) {
  if (!(flags & O_PATH)) flags |= O_NONBLOCK;  // O_PATH takes no other flags
  struct open_how how {};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  if (!follow_symlinks) how.resolve |= RESOLVE_NO_SYMLINKS;
  const char* path = rel.empty() ? "." : rel.c_str();
  // EAGAIN: a ".." was resolved while a rename or mount happened anywhere on
  // the system; the kernel asks for a retry.  Under constant churn, the
  // component-by-component walk finishes instead.
  long fd = -1;
  for (int tries = 0; tries < 32; tries++) {
    fd = ::syscall(SYS_openat2, dirfd, path, &how, sizeof how);
    if (fd >= 0 || (errno != EAGAIN && errno != EINTR)) break;
  }
  if (fd >= 0) return UniqueFd(static_cast<int>(fd));
  if (errno == ENOSYS || errno == EAGAIN) return walk_beneath(dirfd, rel, flags, follow_symlinks);
  if (errno == EXDEV) return sys_error(EXDEV, fmt::format("'{}' leads outside its directory", rel));
  return sys_error(fmt::format("cannot open '{}'", rel));
}

FanoutDirs::FanoutDirs() {
  for (auto& fd : fds_) fd.store(-1, std::memory_order_relaxed);
}

FanoutDirs::~FanoutDirs() {
  for (auto& fd : fds_)
    if (int f = fd.load(std::memory_order_relaxed); f >= 0) ::close(f);
}

Result<int> FanoutDirs::get(int parent, uint8_t index, bool create, bool reopen) {
  std::atomic<int>& slot = fds_[index];
  int fd = slot.load(std::memory_order_acquire);
  if (fd >= 0 && !reopen) return fd;
  std::string sub = fmt::format("{:02x}", index);
  if (create && ::mkdirat(parent, sub.c_str(), 0755) < 0 && errno != EEXIST)
    return sys_error(fmt::format("cannot create {}", sub));
  auto opened = open_beneath(parent, sub, O_RDONLY | O_DIRECTORY, false);
  if (!opened) {
    if (!create && opened.error().sys_errno() == ENOENT) return -1;
    return tl::unexpected(std::move(opened.error()));
  }
  if (reopen) {
    int old = slot.exchange(opened->get(), std::memory_order_acq_rel);
    std::lock_guard g(retired_mu_);
    if (old >= 0) retired_.emplace_back(old);
    return opened->release();
  }
  if (slot.compare_exchange_strong(fd, opened->get(), std::memory_order_acq_rel))
    return opened->release();
  return fd;  // another thread opened it first (ours is closed)
}

}  // namespace cfs
