// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/base/copy.h"

#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "composefs-cpp/base/fd.h"

namespace cfs {

namespace {

// Copies [off, end) at explicit offsets: copy_file_range, else pread/pwrite.
Status copy_range(int src, int dst, uint64_t off, uint64_t end) {
  bool use_cfr = true;
  while (off < end) {
    if (use_cfr) {
      loff_t in = static_cast<loff_t>(off), out = in;
      ssize_t r = ::copy_file_range(src, &in, dst, &out, end - off, 0);
      if (r > 0) {
        off += static_cast<uint64_t>(r);
        continue;
      }
      if (r == 0) return errorf(Errc::Io, "file changed while copying (EOF at {})", off);
      if (errno == EINTR) continue;
      if (errno == ENOSPC || errno == EDQUOT || errno == EIO) return sys_error("copy");
      use_cfr = false;
    }
    char buf[1 << 16];
    ssize_t r =
        ::pread(src, buf, std::min<uint64_t>(sizeof buf, end - off), static_cast<off_t>(off));
    if (r < 0) {
      if (errno == EINTR) continue;
      return sys_error("read");
    }
    if (r == 0) return errorf(Errc::Io, "file changed while copying (EOF at {})", off);
    for (ssize_t w = 0; w < r;) {
      ssize_t n = ::pwrite(dst, buf + w, static_cast<size_t>(r - w), static_cast<off_t>(off) + w);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return sys_error("write");
      w += n;
    }
    off += static_cast<uint64_t>(r);
  }
  return {};
}

// Copies only the data extents of a sparse file, so its holes stay holes in
// the copy (a multi-GiB sparse file must not become gigabytes of zeros in a
// store).  Returns false, having written nothing, where SEEK_DATA is unknown.
Result<bool> copy_sparse(int src, int dst, uint64_t size) {
  uint64_t off = 0;
  while (off < size) {
    off_t data = ::lseek(src, static_cast<off_t>(off), SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // only a hole up to EOF
      if (off == 0 && (errno == EINVAL || errno == EOPNOTSUPP)) return false;
      return sys_error("lseek(SEEK_DATA)");
    }
    off_t hole = ::lseek(src, data, SEEK_HOLE);
    if (hole < 0) return sys_error("lseek(SEEK_HOLE)");
    uint64_t end = std::min<uint64_t>(static_cast<uint64_t>(hole), size);
    if (static_cast<uint64_t>(data) >= end) break;
    CFS_TRY(copy_range(src, dst, static_cast<uint64_t>(data), end));
    off = end;
  }
  if (::ftruncate(dst, static_cast<off_t>(size)) < 0) return sys_error("ftruncate");
  return true;
}

}  // namespace

Status copy_file_data(int src, int dst, uint64_t size) {
  if (::ioctl(dst, FICLONE, src) == 0) return {};
  if (struct stat st; ::fstat(src, &st) == 0 && static_cast<uint64_t>(st.st_blocks) * 512 < size) {
    CFS_TRY_ASSIGN(bool copied, copy_sparse(src, dst, size));
    if (copied) return {};
  }
  uint64_t done = 0;
  bool use_cfr = true;
  while (done < size) {
    if (use_cfr) {
      ssize_t r = ::copy_file_range(src, nullptr, dst, nullptr, size - done, 0);
      if (r > 0) {
        done += static_cast<uint64_t>(r);
        continue;
      }
      if (r == 0) break;  // source shorter than expected
      if (errno == EINTR) continue;
      if (errno == ENOSPC || errno == EDQUOT || errno == EIO) return sys_error("copy");
      if (done != 0) return sys_error("copy");
      use_cfr = false;  // EXDEV, EINVAL, EOPNOTSUPP...: plain copy
    }
    char buf[1 << 16];
    ssize_t r = ::read(src, buf, sizeof buf);
    if (r < 0) {
      if (errno == EINTR) continue;
      return sys_error("read");
    }
    if (r == 0) break;
    CFS_TRY(write_full(dst, std::as_bytes(std::span(buf, static_cast<size_t>(r)))));
    done += static_cast<uint64_t>(r);
  }
  if (done != size)
    return errorf(Errc::Io, "file changed while copying ({} of {} bytes)", done, size);
  return {};
}

}  // namespace cfs
