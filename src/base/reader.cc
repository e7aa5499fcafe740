// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/base/reader.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace cfs {

Result<size_t> read_up_to(Reader& r, std::span<uint8_t> buf) {
  size_t got = 0;
  while (got < buf.size()) {
    CFS_TRY_ASSIGN(size_t n, r.read(buf.subspan(got)));
    if (n == 0) break;
    got += n;
  }
  return got;
}

Result<std::string> read_all(Reader& r, size_t max_size, std::string_view what) {
  std::string out;
  uint8_t buf[65536];
  for (;;) {
    CFS_TRY_ASSIGN(size_t n, r.read(buf));
    if (n == 0) return out;
    if (out.size() + n > max_size)
      return errorf(Errc::TooBig, "{} is larger than {} bytes", what, max_size);
    out.append(reinterpret_cast<const char*>(buf), n);
  }
}

Result<size_t> FdReader::read(std::span<uint8_t> buf) {
  for (;;) {
    ssize_t n = ::read(fd_, buf.data(), buf.size());
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != EINTR) return sys_error("read");
  }
}

Result<bool> FdReader::skip(uint64_t n) {
  struct stat st;
  if (::fstat(fd_, &st) < 0 || !S_ISREG(st.st_mode)) return false;
  off_t pos = ::lseek(fd_, 0, SEEK_CUR);
  if (pos < 0) return false;
  // Never seek past the end: a truncated archive must read as truncated.
  if (static_cast<uint64_t>(st.st_size - pos) < n) return false;
  if (::lseek(fd_, static_cast<off_t>(n), SEEK_CUR) < 0) return sys_error("lseek");
  return true;
}

Result<size_t> RangeReader::read(std::span<uint8_t> buf) {
  if (left_ == 0 || buf.empty()) return 0;
  size_t want = static_cast<size_t>(std::min<uint64_t>(left_, buf.size()));
  for (;;) {
    ssize_t n = ::pread(fd_, buf.data(), want, static_cast<off_t>(pos_));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_error("pread");
    if (n == 0)
      return errorf(Errc::Corrupt, "file ends at offset {} inside a member {} bytes short", pos_,
                    left_);
    pos_ += static_cast<uint64_t>(n);
    left_ -= static_cast<uint64_t>(n);
    return static_cast<size_t>(n);
  }
}

Result<size_t> MemReader::read(std::span<uint8_t> buf) {
  size_t n = std::min(buf.size(), data_.size());
  std::memcpy(buf.data(), data_.data(), n);
  data_.remove_prefix(n);
  return n;
}

}  // namespace cfs
