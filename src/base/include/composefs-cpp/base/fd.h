// SPDX-License-Identifier: Apache-2.0
// RAII file descriptors, full reads/writes with EINTR handling, read-only
// mappings and atomically replaced output files.
#pragma once

#include <fcntl.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "composefs-cpp/base/error.h"

namespace cfs {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  // Closes the held fd (keeping errno intact).
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// openat() returning an owned fd or an error naming the path.
Result<UniqueFd> open_at(int dirfd, const std::string& path, int flags, mode_t mode = 0);

// Reads until `buf` is full or EOF; returns the number of bytes read.
Result<size_t> read_full(int fd, std::span<std::byte> buf);
Result<size_t> pread_full(int fd, std::span<std::byte> buf, uint64_t offset);
Status write_full(int fd, std::span<const std::byte> buf);
inline Status write_full(int fd, std::string_view s) {
  return write_full(fd, std::as_bytes(std::span(s.data(), s.size())));
}

// `prefix` followed by 12 random alphanumerics: names for temporaries.
std::string random_name(std::string_view prefix);

// flock(), retried when a signal interrupts the wait; errors name `what`.
Status flock_retry(int fd, int op, std::string_view what);

// A new read-write file in `dirfd`: unnamed (O_TMPFILE) where the filesystem
// allows it and `force_named` is false; else created (O_EXCL) under a fresh
// name `prefix` + random_name(), given in `name`, which the caller links or
// removes.  `mode` goes through the umask as for open().
struct TmpFile {
  UniqueFd fd;
  std::string name;  // empty for an unnamed file
};
Result<TmpFile> create_tmpfile(int dirfd, mode_t mode, std::string_view prefix,
                               bool force_named = false);

// Gives the unnamed file `fd` a fresh name `prefix` + random in `dirfd` (the
// step before renaming it over a target); returns that name.
Result<std::string> link_tmpfile(int fd, int dirfd, std::string_view prefix);

// A read-write file with no name in directory `dirfd` (O_TMPFILE, else a
// named one unlinked at once), for scratch data that must not live in memory.
Result<UniqueFd> unnamed_tmpfile(int dirfd);

// Reads a whole (small) file into memory, refusing anything over max_size.
Result<std::string> read_file(int dirfd, const std::string& path, size_t max_size);
Result<std::string> read_fd(int fd, size_t max_size);

// A read-only view of a whole file: mmap where the file cannot shrink under
// the mapping (fs-verity, immutable, read-only mount), else a heap copy (also
// pipes, /proc files), so a file truncated meanwhile cannot crash the reader.
// Empty files give an empty span.
class MappedFile {
 public:
  MappedFile() = default;
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  static Result<MappedFile> open(int fd);
  static Result<MappedFile> open(const std::string& path);

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  size_t size() const { return size_; }

 private:
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
  bool mapped_ = false;
  std::string heap_;
};

// An output file that appears at `path` only when commit() succeeds: written
// to an unnamed O_TMPFILE (or a hidden temporary) in the same directory and
// renamed over the target.  Dropping it uncommitted leaves nothing behind.
class AtomicFile {
 public:
  AtomicFile() = default;
  AtomicFile(AtomicFile&& o) noexcept;
  AtomicFile& operator=(AtomicFile&& o) noexcept;
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile();

  static Result<AtomicFile> create(const std::string& path, mode_t mode = 0644);
  int fd() const { return fd_.get(); }
  // fsyncs (when durable), then atomically places the file at the target path.
  Status commit(bool durable = false);

 private:
  void discard();
  UniqueFd fd_;
  UniqueFd dirfd_;
  std::string dir_;
  std::string name_;
  std::string tmp_name_;  // non-empty when the O_TMPFILE fallback was used
  bool committed_ = false;
};

std::string dirname_of(const std::string& path);
std::string basename_of(const std::string& path);

}  // namespace cfs
