// SPDX-License-Identifier: Apache-2.0
// Loop devices for kernels whose EROFS cannot mount a plain file (before
// Linux 6.12, or without CONFIG_EROFS_FS_BACKED_BY_FILE).
#pragma once

#include <string>

#include "composefs-cpp/base/error.h"
#include "composefs-cpp/base/fd.h"

namespace cfs::mount {

// A loop device bound to a file with LOOP_CONFIGURE: read-only, 4 KiB
// blocks, direct I/O where the backing filesystem allows it, and autoclear,
// so the device detaches itself when its last user (this object or a
// filesystem mounted from it) lets go.  Hold it until the filesystem has
// opened the device; dropping it earlier releases the device at once.
class LoopDevice {
 public:
  LoopDevice() = default;
  LoopDevice(LoopDevice&&) noexcept = default;
  LoopDevice& operator=(LoopDevice&& o) noexcept;
  LoopDevice(const LoopDevice&) = delete;
  LoopDevice& operator=(const LoopDevice&) = delete;
  ~LoopDevice() { reset(); }

  // `display_name` is what losetup shows as the backing file.
  static Result<LoopDevice> attach(int file_fd, const std::string& display_name);

  const std::string& path() const { return path_; }  // "/dev/loopN"
  bool direct_io() const { return direct_io_; }
  // Lets go of the device: it detaches now if nothing else holds it.
  void reset();

 private:
  UniqueFd fd_;
  std::string path_;
  bool direct_io_ = false;
};

}  // namespace cfs::mount
