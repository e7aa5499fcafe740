// SPDX-License-Identifier: Apache-2.0
// The new mount API through syscall(); constants are the kernel ABI values
// (uapi/linux/mount.h), so neither glibc nor kernel headers must carry them.
#include "composefs-cpp/mount/fs_context.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace cfs::mount {
namespace {

constexpr unsigned kFsopenCloexec = 0x1;
constexpr unsigned kFsconfigSetFlag = 0;
constexpr unsigned kFsconfigSetString = 1;
constexpr unsigned kFsconfigSetFd = 5;
constexpr unsigned kFsconfigCmdCreate = 6;
constexpr unsigned kFsmountCloexec = 0x1;
constexpr unsigned kMoveMountFEmptyPath = 0x4;
constexpr unsigned kMoveMountTEmptyPath = 0x40;

struct MountAttr {  // struct mount_attr (MOUNT_ATTR_SIZE_VER0)
  uint64_t attr_set;
  uint64_t attr_clr;
  uint64_t propagation;
  uint64_t userns_fd;
};
static_assert(sizeof(MountAttr) == 32);

#if defined(SYS_fsopen) && defined(SYS_fsconfig) && defined(SYS_fsmount) && defined(SYS_move_mount)
int sys_fsopen(const char* name, unsigned flags) {
  return static_cast<int>(::syscall(SYS_fsopen, name, flags));
}
int sys_fsconfig(int fd, unsigned cmd, const char* key, const void* value, int aux) {
  return static_cast<int>(::syscall(SYS_fsconfig, fd, cmd, key, value, aux));
}
int sys_fsmount(int fd, unsigned flags, unsigned attr) {
  return static_cast<int>(::syscall(SYS_fsmount, fd, flags, attr));
}
int sys_move_mount(int from_dfd, const char* from, int to_dfd, const char* to, unsigned flags) {
  return static_cast<int>(::syscall(SYS_move_mount, from_dfd, from, to_dfd, to, flags));
}
#else
int nosys() {
  errno = ENOSYS;
  return -1;
}
int sys_fsopen(const char*, unsigned) { return nosys(); }
int sys_fsconfig(int, unsigned, const char*, const void*, int) { return nosys(); }
int sys_fsmount(int, unsigned, unsigned) { return nosys(); }
int sys_move_mount(int, const char*, int, const char*, unsigned) { return nosys(); }
#endif

int sys_mount_setattr(int dfd, const char* path, unsigned flags, MountAttr* attr) {
#ifdef SYS_mount_setattr
  return static_cast<int>(::syscall(SYS_mount_setattr, dfd, path, flags, attr, sizeof *attr));
#else
  errno = ENOSYS;
  return -1;
#endif
}

}  // namespace

Result<FsContext> FsContext::open(const std::string& fstype) {
  int fd = sys_fsopen(fstype.c_str(), kFsopenCloexec);
  if (fd < 0) return sys_error(fmt::format("fsopen({})", fstype));
  return FsContext(UniqueFd(fd), fstype);
}

std::vector<std::string> FsContext::drain_log() {
  std::vector<std::string> out;
  if (!fd_) return out;
  // Each read returns one message; the log keeps at most a few, so a bound
  // on the loop only guards against a kernel that never says ENODATA.
  for (int i = 0; i < 64; i++) {
    char buf[1024];
    ssize_t n = ::read(fd_.get(), buf, sizeof buf);
    if (n <= 0) break;
    std::string msg(buf, static_cast<size_t>(n));
    while (!msg.empty() && msg.back() == '\n') msg.pop_back();
    // "e ", "w " or "i ": error, warning, information.
    if (msg.size() > 2 && msg[1] == ' ') msg.erase(0, 2);
    out.push_back(std::move(msg));
  }
  return out;
}

tl::unexpected<Error> FsContext::fail(int e, std::string_view what) {
  std::string msg = fmt::format("{}: {}", what, std::strerror(e));
  auto log = drain_log();
  for (size_t i = 0; i < log.size(); i++)
    msg += fmt::format("{}{}", i == 0 ? " (kernel: " : "; ", log[i]);
  if (!log.empty()) msg += ")";
  // Some checks (overlayfs's layer checks among them) only reach dmesg.
  if (log.empty() && what.starts_with("creating")) msg += " (the kernel log, dmesg, may say why)";
  return tl::unexpected(Error(errc_from_errno(e), std::move(msg), e));
}

Status FsContext::set_flag(const std::string& key) {
  if (sys_fsconfig(fd_.get(), kFsconfigSetFlag, key.c_str(), nullptr, 0) < 0) {
    int e = errno;
    return fail(e, fmt::format("fsconfig({}, {})", fstype_, key));
  }
  return {};
}

Status FsContext::set_string(const std::string& key, const std::string& value) {
  if (sys_fsconfig(fd_.get(), kFsconfigSetString, key.c_str(), value.c_str(), 0) < 0) {
    int e = errno;
    return fail(e, fmt::format("fsconfig({}, {}={})", fstype_, key, value));
  }
  return {};
}

Status FsContext::set_fd(const std::string& key, int fd) {
  if (sys_fsconfig(fd_.get(), kFsconfigSetFd, key.c_str(), nullptr, fd) < 0) {
    int e = errno;
    return fail(e, fmt::format("fsconfig({}, {}=<fd>)", fstype_, key));
  }
  return {};
}

Status FsContext::create() {
  if (sys_fsconfig(fd_.get(), kFsconfigCmdCreate, nullptr, nullptr, 0) < 0) {
    int e = errno;
    return fail(e, fmt::format("creating the {} superblock", fstype_));
  }
  return {};
}

Result<UniqueFd> FsContext::fsmount(uint64_t attr) {
  int fd = sys_fsmount(fd_.get(), kFsmountCloexec, static_cast<unsigned>(attr));
  if (fd < 0) {
    int e = errno;
    return fail(e, fmt::format("fsmount({})", fstype_));
  }
  return UniqueFd(fd);
}

Status attach(int mnt_fd, int target_fd, const std::string& target_name) {
  if (sys_move_mount(mnt_fd, "", target_fd, "", kMoveMountFEmptyPath | kMoveMountTEmptyPath) < 0)
    return sys_error(fmt::format("move_mount to '{}'", target_name));
  return {};
}

Status set_idmap(int mnt_fd, int userns_fd) {
  MountAttr attr{};
  attr.attr_set = kAttrIdmap;
  attr.userns_fd = static_cast<uint64_t>(userns_fd);
  if (sys_mount_setattr(mnt_fd, "", AT_EMPTY_PATH, &attr) < 0)
    return sys_error("mount_setattr(MOUNT_ATTR_IDMAP)");
  return {};
}

}  // namespace cfs::mount
