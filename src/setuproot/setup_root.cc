// SPDX-License-Identifier: Apache-2.0
// The mount sequence is the "pre-6.15" one of composefs-rs (the image is
// attached on --sysroot first, then everything else is mounted inside it);
// which overlay layer method the kernel takes (fd layers on 6.15+, paths,
// mount(2)) is chosen by the mount module from what the kernel accepts.
#include "composefs-cpp/setuproot/setup_root.h"

#include <fcntl.h>
#include <fmt/ranges.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>

#include "composefs-cpp/base/fd.h"
#include "composefs-cpp/boot/cmdline.h"
#include "composefs-cpp/fsverity/fsverity.h"
#include "composefs-cpp/mount/mount.h"
#include "composefs-cpp/repository/repository.h"

namespace cfs::setuproot {

namespace {

#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif

std::string proc_fd(int fd) { return fmt::format("/proc/self/fd/{}", fd); }

// Mounts stacked on the sysroot, detached again (topmost first) unless
// the whole sequence succeeds: each detach takes the mounts inside with it.
class Stack {
 public:
  explicit Stack(std::string path) : path_(std::move(path)) {}
  ~Stack() {
    for (; count_ > 0; count_--) (void)::umount2(path_.c_str(), MNT_DETACH);
  }
  void pushed() { count_++; }
  void commit() { count_ = 0; }

 private:
  std::string path_;
  int count_ = 0;
};

tl::unexpected<Error> step_error(std::string_view step, const Error& e) {
  return tl::unexpected(Error(e.code(), fmt::format("{}: {}", step, e.message()), e.sys_errno()));
}

// Linux 7.0 fails verity=require overlays whose files do have fs-verity
// (bootc #2174): say so where the symptom and the kernel match.
std::string regression_hint(const Error& e) {
  struct utsname u {};
  if (::uname(&u) != 0) return "";
  std::string rel = u.release;
  bool in_range = rel.rfind("7.0.", 0) == 0 || rel == "7.0" || rel.rfind("7.0-", 0) == 0;
  bool symptom =
      e.sys_errno() == EIO || e.message().find("has no fs-verity digest") != std::string::npos;
  if (!in_range || !symptom) return "";
  return fmt::format(
      " (Linux {} has a known regression that breaks verity=require overlay mounts of "
      "correct images: bootc #2174)",
      rel);
}

Result<std::string> read_cmdline() {
  std::ifstream in("/proc/cmdline");
  if (!in) return sys_error("reading /proc/cmdline");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// An overlay on `target` with a fresh tmpfs holding upper/work: the tmpfs is
// mounted on `target` itself (hiding it), the overlay on top with the old
// `target` as its lower layer through an fd opened before.
Status mount_transient(const std::string& target, int lower_fd, const std::string& source,
                       Stack& stack) {
  if (::mount("tmpfs", target.c_str(), "tmpfs", 0, "mode=0755") != 0)
    return sys_error(fmt::format("mounting a tmpfs on {}", target));
  stack.pushed();
  std::string upper = target + "/upper", work = target + "/work";
  if (::mkdir(upper.c_str(), 0755) != 0 || ::mkdir(work.c_str(), 0700) != 0)
    return sys_error(fmt::format("creating upper/work in the tmpfs on {}", target));
  std::string data =
      fmt::format("lowerdir={},upperdir={},workdir={}", proc_fd(lower_fd), upper, work);
  if (::mount(source.c_str(), target.c_str(), "overlay", 0, data.c_str()) != 0)
    return sys_error(fmt::format("mounting overlay {} on {}", source, target));
  stack.pushed();
  return {};
}

Status ensure_dir(int dirfd, const char* name, mode_t mode, const std::string& shown) {
  if (::mkdirat(dirfd, name, mode) != 0 && errno != EEXIST)
    return sys_error(fmt::format("creating {}/{}", shown, name));
  struct stat st {};
  if (::fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode))
    return errorf(Errc::InvalidArgument, "{}/{} is not a directory", shown, name);
  return {};
}

// /etc or /var of the new root, per `mode`, from the state directory.
// `lower` is the image's own directory, opened before a transient root
// covered it: an overlay over that one would stack overlays three deep,
// which the kernel refuses (EINVAL).
Status mount_state_dir(const std::string& root, int state_fd, const std::string& state_shown,
                       const char* sub, int lower, MountMode mode) {
  if (mode == MountMode::None) return {};
  std::string target = fmt::format("{}/{}", root, sub);
  std::string shown = fmt::format("{}/{}", state_shown, sub);
  Stack inner(target);  // undone by the root's detach anyway; this keeps errors local
  switch (mode) {
    case MountMode::None: break;
    case MountMode::Bind: {
      int fd = ::openat(state_fd, sub, O_PATH | O_DIRECTORY | O_CLOEXEC);
      if (fd < 0) return sys_error(fmt::format("opening {}", shown));
      UniqueFd src(fd);
      if (::mount(proc_fd(src.get()).c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0)
        return sys_error(fmt::format("bind-mounting {} on {}", shown, target));
      break;
    }
    case MountMode::Overlay: {
      int fd = ::openat(state_fd, sub, O_PATH | O_DIRECTORY | O_CLOEXEC);
      if (fd < 0) return sys_error(fmt::format("opening {}", shown));
      UniqueFd dir(fd);
      int rfd = ::openat(state_fd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (rfd < 0) return sys_error(fmt::format("opening {}", shown));
      UniqueFd rdir(rfd);
      CFS_TRY(ensure_dir(rdir.get(), "upper", 0755, shown));
      CFS_TRY(ensure_dir(rdir.get(), "work", 0700, shown));
      if (lower < 0) return errorf(Errc::NotFound, "the image has no /{}", sub);
      std::string data = fmt::format("lowerdir={},upperdir={}/upper,workdir={}/work",
                                     proc_fd(lower), proc_fd(dir.get()), proc_fd(dir.get()));
      if (::mount("overlay", target.c_str(), "overlay", 0, data.c_str()) != 0)
        return sys_error(fmt::format("mounting overlay of {} on {}", shown, target));
      break;
    }
    case MountMode::Transient:
      if (lower < 0) return errorf(Errc::NotFound, "the image has no /{}", sub);
      CFS_TRY(mount_transient(target, lower, "transient", inner));
      break;
  }
  inner.commit();
  return {};
}

}  // namespace

Result<Outcome> setup_root(const Options& opts) {
  Outcome out;
  const std::string& sysroot = opts.sysroot;

  std::string cmdline;
  if (opts.cmdline) {
    cmdline = *opts.cmdline;
  } else {
    auto c = read_cmdline();
    if (!c) return step_error("kernel command line", c.error());
    cmdline = *c;
  }
  auto kargs = boot::parse_setup_root_kargs(cmdline);
  if (!kargs) return step_error("kernel command line", kargs.error());
  if (kargs->empty())
    return errorf(Errc::NotFound, "kernel command line: no composefs karg found in kernel cmdline");

  int sfd = ::open(sysroot.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (sfd < 0) return step_error("sysroot", sys_error(fmt::format("opening {}", sysroot)).value());
  UniqueFd sysroot_fd(sfd);
  const std::string repo_path = sysroot + "/composefs";

  // The state directory and a clone of the physical root are taken before
  // anything covers the sysroot.
  Stack stack(sysroot);
  std::optional<boot::SetupRootKarg> chosen;
  std::vector<std::string> tried;
  for (const boot::SetupRootKarg& k : *kargs) {
    std::string karg = fmt::format("{}{}", k.insecure ? "?" : "", k.hex);
    tried.push_back(karg);
    repository::OpenOptions ro;
    ro.expected_alg = k.alg;
    ro.no_upgrade = true;
    ro.force_insecure = k.insecure;
    auto repo = repository::Repository::open(repo_path, ro);
    if (!repo)
      return step_error(fmt::format("repository {} (karg {})", repo_path, karg), repo.error());
    if (!k.insecure) {
      if (auto s = repo->require_verity(); !s)
        return step_error(fmt::format("repository {} (karg {})", repo_path, karg), s.error());
    }
    std::string image = repo_path + "/images/" + k.hex;
    int ifd = ::open(image.c_str(), O_RDONLY | O_CLOEXEC);
    if (ifd < 0 && errno == ENOENT) {
      image = repo_path + "/images/refs/" + k.hex;
      ifd = ::open(image.c_str(), O_RDONLY | O_CLOEXEC);
    }
    if (ifd < 0) {
      if (errno == ENOENT) {
        out.notes.push_back(fmt::format("image {} not found, trying next karg", k.hex));
        continue;
      }
      return step_error(fmt::format("image {}", k.hex),
                        sys_error(fmt::format("opening {}", image)).value());
    }
    UniqueFd image_fd(ifd);
    auto digest = fsverity::Digest::from_hex(k.alg, k.hex);
    if (!digest) return errorf(Errc::InvalidArgument, "kernel command line: bad digest {}", k.hex);

    int state_raw = ::openat(sysroot_fd.get(), fmt::format("state/deploy/{}", k.hex).c_str(),
                             O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (state_raw < 0)
      return step_error(
          "state directory",
          sys_error(fmt::format("opening {}/state/deploy/{}", sysroot, k.hex)).value());
    UniqueFd state_fd(state_raw);
    std::string state_shown = fmt::format("{}/state/deploy/{}", sysroot, k.hex);

    long clone =
        ::syscall(SYS_open_tree, sysroot_fd.get(), "", OPEN_TREE_CLONE | AT_EMPTY_PATH | O_CLOEXEC);
    if (clone < 0)
      return step_error("sysroot", sys_error(fmt::format("open_tree({})", sysroot)).value());
    UniqueFd clone_fd(static_cast<int>(clone));

    mount::Options mo;
    mo.basedirs = {repo_path + "/objects"};
    mo.expected_digest = *digest;
    mo.allow_insecure = k.insecure;
    mo.verity = k.insecure ? mount::Verity::Try : mount::Verity::Require;
    mo.read_only = true;
    mo.source = "composefs:" + k.hex;
    mo.tmpdir = "/run";
    if (::access("/run", W_OK) != 0) mo.tmpdir = "/tmp";
    if (opts.root_fs) {
      // Testing: this tree stands in for the image (which must exist).
      if (::mount(opts.root_fs->c_str(), sysroot.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0)
        return step_error(
            "root", sys_error(fmt::format("bind-mounting --root-fs {}", *opts.root_fs)).value());
      stack.pushed();
    } else {
      auto m = mount::mount_image_fd(image_fd.get(), sysroot, mo);
      if (!m) {
        Error e = m.error();
        return tl::unexpected(Error(e.code(),
                                    fmt::format("mounting image {} ({}): {}{}", k.hex, image,
                                                e.message(), regression_hint(e)),
                                    e.sys_errno()));
      }
      stack.pushed();
      for (auto& n : m->notes) out.notes.push_back(n);
    }

    // The image's own /, /etc and /var, before anything covers them.
    auto open_dir = [&](const std::string& p) {
      return UniqueFd(::open(p.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    };
    UniqueFd image_root = open_dir(sysroot);
    if (!image_root)
      return step_error("root", sys_error(fmt::format("opening the new root {}", sysroot)).value());
    UniqueFd image_etc = open_dir(sysroot + "/etc");
    UniqueFd image_var = open_dir(sysroot + "/var");

    if (opts.config.root_transient) {
      if (auto s =
              mount_transient(sysroot, image_root.get(), "transient:composefs=" + k.hex, stack);
          !s)
        return step_error("transient root", s.error());
    }

    // The physical root at /sysroot of the new root (an image without
    // /sysroot simply does not show it).
    std::string inner = sysroot + "/sysroot";
    if (::syscall(SYS_move_mount, clone_fd.get(), "", AT_FDCWD, inner.c_str(),
                  MOVE_MOUNT_F_EMPTY_PATH) != 0 &&
        errno != ENOENT)
      return step_error("sysroot",
                        sys_error(fmt::format("moving the physical root to {}", inner)).value());

    if (auto s = mount_state_dir(sysroot, state_fd.get(), state_shown, "etc", image_etc.get(),
                                 opts.config.etc);
        !s)
      return step_error("/etc", s.error());
    if (auto s = mount_state_dir(sysroot, state_fd.get(), state_shown, "var", image_var.get(),
                                 opts.config.var);
        !s)
      return step_error("/var", s.error());
    chosen = k;
    break;
  }
  if (!chosen)
    return errorf(Errc::NotFound, "image: no composefs image found (tried: {})",
                  fmt::join(tried, ", "));
  stack.commit();
  out.hex = chosen->hex;
  return out;
}

}  // namespace cfs::setuproot
