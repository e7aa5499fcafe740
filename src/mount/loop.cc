// SPDX-License-Identifier: Apache-2.0
// LOOP_CTL_GET_FREE + LOOP_CONFIGURE, retried when another process takes the
// free device first.
#include "composefs-cpp/mount/loop.h"

#include <linux/loop.h>
#include <sys/ioctl.h>

#include <cstring>

namespace cfs::mount {

LoopDevice& LoopDevice::operator=(LoopDevice&& o) noexcept {
  if (this != &o) {
    reset();
    fd_ = std::move(o.fd_);
    path_ = std::move(o.path_);
    direct_io_ = o.direct_io_;
  }
  return *this;
}

void LoopDevice::reset() {
  if (!fd_) return;
  // Detaches now if unused; with a mounted filesystem on it the kernel only
  // (re)arms autoclear, and the device goes when the filesystem does.
  int saved = errno;
  (void)::ioctl(fd_.get(), LOOP_CLR_FD, 0);
  errno = saved;
  fd_.reset();
  path_.clear();
}

Result<LoopDevice> LoopDevice::attach(int file_fd, const std::string& display_name) {
  UniqueFd ctl(::open("/dev/loop-control", O_RDWR | O_CLOEXEC));
  if (!ctl) return sys_error("cannot open /dev/loop-control");
  // Another process may bind the device between GET_FREE and CONFIGURE
  // (EBUSY): ask for a new one, a bounded number of times.
  int last_errno = 0;
  for (int attempt = 0; attempt < 32; attempt++) {
    int nr = ::ioctl(ctl.get(), LOOP_CTL_GET_FREE);
    if (nr < 0) return sys_error("LOOP_CTL_GET_FREE");
    std::string path = fmt::format("/dev/loop{}", nr);
    UniqueFd dev(::open(path.c_str(), O_RDWR | O_CLOEXEC));
    if (!dev) {
      if (errno == ENOENT || errno == ENXIO) {  // removed meanwhile
        last_errno = errno;
        continue;
      }
      return sys_error(fmt::format("cannot open {}", path));
    }
    struct loop_config cfg {};
    cfg.fd = static_cast<uint32_t>(file_fd);
    cfg.block_size = 4096;  // the EROFS block size
    cfg.info.lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR | LO_FLAGS_DIRECT_IO;
    std::strncpy(reinterpret_cast<char*>(cfg.info.lo_file_name), display_name.c_str(),
                 LO_NAME_SIZE - 1);
    bool dio = true;
    int r = ::ioctl(dev.get(), LOOP_CONFIGURE, &cfg);
    if (r < 0 && errno == EINVAL) {
      // Some kernels refuse direct I/O the backing file cannot do (e.g. an
      // unaligned size or a filesystem without O_DIRECT); buffered is fine.
      cfg.info.lo_flags &= ~LO_FLAGS_DIRECT_IO;
      dio = false;
      r = ::ioctl(dev.get(), LOOP_CONFIGURE, &cfg);
    }
    if (r < 0) {
      if (errno == EBUSY) {
        last_errno = errno;
        continue;
      }
      return sys_error(fmt::format("LOOP_CONFIGURE on {}", path));
    }
    struct loop_info64 info {};
    if (dio && ::ioctl(dev.get(), LOOP_GET_STATUS64, &info) == 0)
      dio = (info.lo_flags & LO_FLAGS_DIRECT_IO) != 0;
    LoopDevice loop;
    loop.fd_ = std::move(dev);
    loop.path_ = std::move(path);
    loop.direct_io_ = dio;
    return loop;
  }
  return sys_error(last_errno, "no free loop device (each was taken by another process)");
}

}  // namespace cfs::mount
