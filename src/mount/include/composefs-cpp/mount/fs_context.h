// SPDX-License-Identifier: Apache-2.0
// The kernel's new mount API (fsopen/fsconfig/fsmount/move_mount/mount_setattr)
// as RAII, called through syscall() so no particular libc is needed.  A failed
// step's Error carries the kernel's own explanation from the context's log.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "composefs-cpp/base/error.h"
#include "composefs-cpp/base/fd.h"

namespace cfs::mount {

// Mount attributes (the kernel's MOUNT_ATTR_*), for fsmount() and mount_setattr().
inline constexpr uint64_t kAttrRdonly = 0x1;
inline constexpr uint64_t kAttrNosuid = 0x2;
inline constexpr uint64_t kAttrNodev = 0x4;
inline constexpr uint64_t kAttrNoexec = 0x8;
inline constexpr uint64_t kAttrAtimeMask = 0x70;  // relatime (0), noatime, strictatime
inline constexpr uint64_t kAttrNoatime = 0x10;
inline constexpr uint64_t kAttrStrictatime = 0x20;
inline constexpr uint64_t kAttrNodiratime = 0x80;
inline constexpr uint64_t kAttrIdmap = 0x100000;
inline constexpr uint64_t kAttrNosymfollow = 0x200000;

// A filesystem context from fsopen(): configure it, create the superblock,
// then fsmount() it into a detached mount.  Closing it discards everything.
class FsContext {
 public:
  FsContext() = default;

  // fsopen(fstype).  A kernel without the new mount API gives an error with
  // sys_errno() == ENOSYS; an unknown filesystem type ENODEV.
  static Result<FsContext> open(const std::string& fstype);

  Status set_flag(const std::string& key);
  Status set_string(const std::string& key, const std::string& value);
  // FSCONFIG_SET_FD: the layer or source given as an open file descriptor.
  Status set_fd(const std::string& key, int fd);
  // FSCONFIG_CMD_CREATE.
  Status create();
  // fsmount(): a detached mount of the superblock with MOUNT_ATTR_* `attr`.
  Result<UniqueFd> fsmount(uint64_t attr);

  // Reads (and so clears) the kernel's messages for this context, without
  // their one-letter severity prefix, e.g. "overlay: Unknown parameter 'x'".
  std::vector<std::string> drain_log();

  int fd() const { return fd_.get(); }
  const std::string& fstype() const { return fstype_; }

 private:
  FsContext(UniqueFd fd, std::string fstype) : fd_(std::move(fd)), fstype_(std::move(fstype)) {}
  // The error for a failed call: "fsconfig(erofs, source=…): Invalid argument
  // (kernel: erofs: …)", with the kernel's messages drained from the log.
  // `e` is the errno, read by the caller before anything can change it.
  tl::unexpected<Error> fail(int e, std::string_view what);

  UniqueFd fd_;
  std::string fstype_;
};

// move_mount() of a detached mount onto the directory `target_fd` (an
// O_PATH fd of the mountpoint; `target_name` names it in errors).
Status attach(int mnt_fd, int target_fd, const std::string& target_name);

// mount_setattr(MOUNT_ATTR_IDMAP) on a detached mount: its files' owners are
// shown through the ID mapping of the user namespace `userns_fd`.
Status set_idmap(int mnt_fd, int userns_fd);

}  // namespace cfs::mount
