// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/base/fd.h"

#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <cstdlib>
#include <random>

namespace cfs {

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) {
    int saved = errno;
    ::close(fd_);
    errno = saved;
  }
  fd_ = fd;
}

Result<UniqueFd> open_at(int dirfd, const std::string& path, int flags, mode_t mode) {
  int fd;
  do {
    fd = ::openat(dirfd, path.c_str(), flags | O_CLOEXEC, mode);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return sys_error(fmt::format("cannot open '{}'", path));
  return UniqueFd(fd);
}

Result<size_t> read_full(int fd, std::span<std::byte> buf) {
  size_t done = 0;
  while (done < buf.size()) {
    ssize_t r = ::read(fd, buf.data() + done, buf.size() - done);
    if (r < 0) {
      if (errno == EINTR) continue;
      return sys_error("read");
    }
    if (r == 0) break;
    done += static_cast<size_t>(r);
  }
  return done;
}

Result<size_t> pread_full(int fd, std::span<std::byte> buf, uint64_t offset) {
  size_t done = 0;
  while (done < buf.size()) {
    ssize_t r =
        ::pread(fd, buf.data() + done, buf.size() - done, static_cast<off_t>(offset + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return sys_error("read");
    }
    if (r == 0) break;
    done += static_cast<size_t>(r);
  }
  return done;
}

Status write_full(int fd, std::span<const std::byte> buf) {
  size_t done = 0;
  while (done < buf.size()) {
    ssize_t r = ::write(fd, buf.data() + done, buf.size() - done);
    if (r < 0) {
      if (errno == EINTR) continue;
      return sys_error("write");
    }
    if (r == 0) return sys_error(ENOSPC, "write");
    done += static_cast<size_t>(r);
  }
  return {};
}

Result<std::string> read_fd(int fd, size_t max_size) {
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t r = ::read(fd, buf, sizeof buf);
    if (r < 0) {
      if (errno == EINTR) continue;
      return sys_error("read");
    }
    if (r == 0) break;
    if (out.size() + static_cast<size_t>(r) > max_size)
      return errorf(Errc::TooBig, "file larger than {} bytes", max_size);
    out.append(buf, static_cast<size_t>(r));
  }
  return out;
}

Result<std::string> read_file(int dirfd, const std::string& path, size_t max_size) {
  CFS_TRY_ASSIGN(UniqueFd fd, open_at(dirfd, path, O_RDONLY));
  auto r = read_fd(fd.get(), max_size);
  if (!r) return tl::unexpected(std::move(r.error()).context(path));
  return r;
}

MappedFile::MappedFile(MappedFile&& o) noexcept
    : data_(o.data_), size_(o.size_), mapped_(o.mapped_), heap_(std::move(o.heap_)) {
  if (!mapped_) data_ = reinterpret_cast<const std::byte*>(heap_.data());
  o.data_ = nullptr;
  o.size_ = 0;
  o.mapped_ = false;
}

MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
  if (this != &o) {
    this->~MappedFile();
    new (this) MappedFile(std::move(o));
  }
  return *this;
}

MappedFile::~MappedFile() {
  if (mapped_ && data_) ::munmap(const_cast<std::byte*>(data_), size_);
  data_ = nullptr;
  mapped_ = false;
}

namespace {

// Whether nobody can shrink the file while it is mapped (a shrunk mapping
// raises SIGBUS on access, which no bounds check can prevent): fs-verity and
// immutable files cannot be truncated, nor can files on a read-only mount.
bool size_is_fixed(int fd) {
  int flags = 0;
  if (::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0 && (flags & (FS_VERITY_FL | FS_IMMUTABLE_FL)))
    return true;
  struct statvfs vfs;
  return ::fstatvfs(fd, &vfs) == 0 && (vfs.f_flag & ST_RDONLY);
}

}  // namespace

Result<MappedFile> MappedFile::open(int fd) {
  struct stat st;
  if (::fstat(fd, &st) < 0) return sys_error("fstat");
  MappedFile m;
  if (S_ISREG(st.st_mode) && st.st_size > 0 && size_is_fixed(fd)) {
    void* p = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
    if (p != MAP_FAILED) {
      m.data_ = static_cast<const std::byte*>(p);
      m.size_ = static_cast<size_t>(st.st_size);
      m.mapped_ = true;
      return m;
    }
  }
  if (S_ISREG(st.st_mode)) {
    // From offset 0 whatever the descriptor's position, as the mapping would.
    m.heap_.resize(static_cast<size_t>(st.st_size));
    size_t got = 0;
    while (got < m.heap_.size()) {
      ssize_t r = ::pread(fd, m.heap_.data() + got, m.heap_.size() - got, static_cast<off_t>(got));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return sys_error("read");
      if (r == 0) break;  // shrunk meanwhile: what is there
      got += static_cast<size_t>(r);
    }
    m.heap_.resize(got);
  } else {
    CFS_TRY_ASSIGN(m.heap_, read_fd(fd, SIZE_MAX));
  }
  m.data_ = reinterpret_cast<const std::byte*>(m.heap_.data());
  m.size_ = m.heap_.size();
  return m;
}

Result<MappedFile> MappedFile::open(const std::string& path) {
  CFS_TRY_ASSIGN(UniqueFd fd, open_at(AT_FDCWD, path, O_RDONLY));
  auto m = open(fd.get());
  if (!m) return tl::unexpected(std::move(m.error()).context(path));
  return m;
}

std::string dirname_of(const std::string& path) {
  auto pos = path.find_last_of('/');
  if (pos == std::string::npos) return ".";
  if (pos == 0) return "/";
  return path.substr(0, pos);
}

std::string basename_of(const std::string& path) {
  auto pos = path.find_last_of('/');
  return pos == std::string::npos ? path : path.substr(pos + 1);
}

AtomicFile::AtomicFile(AtomicFile&& o) noexcept
    : fd_(std::move(o.fd_)),
      dirfd_(std::move(o.dirfd_)),
      dir_(std::move(o.dir_)),
      name_(std::move(o.name_)),
      tmp_name_(std::move(o.tmp_name_)),
      committed_(o.committed_) {
  o.committed_ = true;
}

AtomicFile& AtomicFile::operator=(AtomicFile&& o) noexcept {
  if (this != &o) {
    discard();
    fd_ = std::move(o.fd_);
    dirfd_ = std::move(o.dirfd_);
    dir_ = std::move(o.dir_);
    name_ = std::move(o.name_);
    tmp_name_ = std::move(o.tmp_name_);
    committed_ = o.committed_;
    o.committed_ = true;
  }
  return *this;
}

AtomicFile::~AtomicFile() { discard(); }

void AtomicFile::discard() {
  if (!committed_ && !tmp_name_.empty() && dirfd_.valid()) {
    int saved = errno;
    ::unlinkat(dirfd_.get(), tmp_name_.c_str(), 0);
    errno = saved;
  }
  committed_ = true;
  fd_.reset();
}

std::string random_name(std::string_view prefix) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::string s(prefix);
  for (int i = 0; i < 12; i++) s += chars[rng() % (sizeof chars - 1)];
  return s;
}

Status flock_retry(int fd, int op, std::string_view what) {
  while (::flock(fd, op) < 0) {
    if (errno != EINTR) return sys_error(fmt::format("cannot lock {}", what));
  }
  return {};
}

Result<TmpFile> create_tmpfile(int dirfd, mode_t mode, std::string_view prefix, bool force_named) {
  TmpFile t;
  if (!force_named) {
    int fd = ::openat(dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, mode);
    if (fd >= 0) {
      t.fd.reset(fd);
      return t;
    }
    // Only "this filesystem has no O_TMPFILE" falls back to a named file.
    if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL && errno != ENOENT)
      return sys_error("cannot create a temporary file");
  }
  for (int attempt = 0; attempt < 100; attempt++) {
    std::string name = random_name(prefix);
    int fd = ::openat(dirfd, name.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, mode);
    if (fd >= 0) {
      t.fd.reset(fd);
      t.name = std::move(name);
      return t;
    }
    if (errno != EEXIST) return sys_error("cannot create a temporary file");
  }
  return make_error(Errc::Io, "cannot find a free temporary file name");
}

Result<std::string> link_tmpfile(int fd, int dirfd, std::string_view prefix) {
  std::string proc = fmt::format("/proc/self/fd/{}", fd);
  for (int attempt = 0; attempt < 100; attempt++) {
    std::string name = random_name(prefix);
    if (::linkat(AT_FDCWD, proc.c_str(), dirfd, name.c_str(), AT_SYMLINK_FOLLOW) == 0) return name;
    if (errno != EEXIST) return sys_error("cannot link a temporary file");
  }
  return make_error(Errc::Io, "cannot find a free temporary file name");
}

Result<UniqueFd> unnamed_tmpfile(int dirfd) {
  CFS_TRY_ASSIGN(TmpFile t, create_tmpfile(dirfd, 0600, ".tmp-"));
  if (!t.name.empty()) ::unlinkat(dirfd, t.name.c_str(), 0);
  return std::move(t.fd);
}

Result<AtomicFile> AtomicFile::create(const std::string& path, mode_t mode) {
  AtomicFile f;
  f.dir_ = dirname_of(path);
  f.name_ = basename_of(path);
  if (f.name_.empty() || f.name_ == "." || f.name_ == "..")
    return errorf(Errc::InvalidArgument, "'{}' is not a file name", path);
  CFS_TRY_ASSIGN(f.dirfd_, open_at(AT_FDCWD, f.dir_, O_RDONLY | O_DIRECTORY));
  f.committed_ = false;
  auto t = create_tmpfile(f.dirfd_.get(), mode, "." + f.name_ + ".tmp-");
  if (!t) return tl::unexpected(std::move(t.error()).context(f.dir_));
  f.fd_ = std::move(t->fd);
  f.tmp_name_ = std::move(t->name);
  return f;
}

Status AtomicFile::commit(bool durable) {
  if (committed_) return errorf(Errc::InvalidArgument, "'{}' already committed", name_);
  if (durable && ::fsync(fd_.get()) < 0) return sys_error(fmt::format("fsync '{}'", name_));
  // The mode was applied (through the umask) when the file was created.
  if (tmp_name_.empty()) {
    // Give the anonymous file a temporary name, then rename it over the target
    // so that an existing file is replaced atomically.
    auto name = link_tmpfile(fd_.get(), dirfd_.get(), "." + name_ + ".tmp-");
    if (!name)
      return tl::unexpected(
          std::move(name.error()).context(fmt::format("'{}' in '{}'", name_, dir_)));
    tmp_name_ = std::move(*name);
  }
  if (::renameat(dirfd_.get(), tmp_name_.c_str(), dirfd_.get(), name_.c_str()) < 0)
    return sys_error(fmt::format("cannot rename into '{}/{}'", dir_, name_));
  if (durable && ::fsync(dirfd_.get()) < 0) return sys_error(fmt::format("fsync '{}'", dir_));
  committed_ = true;
  tmp_name_.clear();
  fd_.reset();
  return {};
}

}  // namespace cfs
