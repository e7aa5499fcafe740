// SPDX-License-Identifier: Apache-2.0
// Two mount sequences, as composefs-rs's two builds have them.  "pre-6.15":
// the image is attached on --sysroot first, then everything else is mounted
// inside it (the physical root stays underneath).  "6.15": the new root is
// put together as a detached tree (mounts inside detached trees need Linux
// >= 6.15) and only swapped for the sysroot at the very end, so a failure
// before that leaves nothing to undo.  Which overlay layer method the kernel
// takes (fd layers on 6.15+, paths, mount(2)) is chosen by the mount module.
#include "composefs-cpp/setuproot/setup_root.h"

#include <fcntl.h>
#include <fmt/ranges.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>

#include "composefs-cpp/base/fd.h"
#include "composefs-cpp/boot/cmdline.h"
#include "composefs-cpp/fsverity/fsverity.h"
#include "composefs-cpp/mount/fs_context.h"
#include "composefs-cpp/mount/mount.h"
#include "composefs-cpp/repository/repository.h"

namespace cfs::setuproot {

namespace {

constexpr unsigned kOpenTreeClone = 1;          // OPEN_TREE_CLONE
constexpr unsigned kMoveMountFEmptyPath = 0x4;  // MOVE_MOUNT_F_EMPTY_PATH

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

std::string running_release() {
  struct utsname u {};
  if (::uname(&u) != 0) return "";
  return u.release;
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

// ---- the new mount API, for the detached tree ------------------------------

Result<UniqueFd> clone_tree(int dirfd, const std::string& path, const std::string& shown) {
  unsigned flags = kOpenTreeClone | O_CLOEXEC | (path.empty() ? AT_EMPTY_PATH : 0);
  long fd = ::syscall(SYS_open_tree, dirfd, path.c_str(), flags);
  if (fd < 0) return sys_error(fmt::format("open_tree({})", shown));
  return UniqueFd(static_cast<int>(fd));
}

// move_mount() of the detached `mnt` onto `path` relative to `dirfd`.
Status move_onto(int mnt, int dirfd, const std::string& path, const std::string& shown) {
  if (::syscall(SYS_move_mount, mnt, "", dirfd, path.c_str(), kMoveMountFEmptyPath) != 0)
    return sys_error(fmt::format("move_mount to {}", shown));
  return {};
}

Result<UniqueFd> detached_tmpfs() {
  CFS_TRY_ASSIGN(mount::FsContext ctx, mount::FsContext::open("tmpfs"));
  CFS_TRY(ctx.set_string("mode", "0755"));
  CFS_TRY(ctx.create());
  return ctx.fsmount(0);
}

// A readable directory fd (fsconfig's FSCONFIG_SET_FD refuses O_PATH ones).
Result<UniqueFd> open_layer(int dirfd, const std::string& path, const std::string& shown) {
  int fd = ::openat(dirfd, path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return sys_error(fmt::format("opening {}", shown));
  return UniqueFd(fd);
}

// A detached overlay of `lower` with upper/work in `parent` (made there).
Result<UniqueFd> detached_overlay(const std::string& source, int lower, int parent,
                                  const std::string& shown) {
  CFS_TRY(ensure_dir(parent, "upper", 0755, shown));
  CFS_TRY(ensure_dir(parent, "work", 0700, shown));
  CFS_TRY_ASSIGN(UniqueFd upper, open_layer(parent, "upper", shown + "/upper"));
  CFS_TRY_ASSIGN(UniqueFd work, open_layer(parent, "work", shown + "/work"));
  CFS_TRY_ASSIGN(UniqueFd low, open_layer(lower, ".", "the lower layer"));
  CFS_TRY_ASSIGN(mount::FsContext ctx, mount::FsContext::open("overlay"));
  CFS_TRY(ctx.set_string("source", source));
  CFS_TRY(ctx.set_fd("lowerdir+", low.get()));
  CFS_TRY(ctx.set_fd("upperdir", upper.get()));
  CFS_TRY(ctx.set_fd("workdir", work.get()));
  CFS_TRY(ctx.create());
  return ctx.fsmount(0);
}

Result<UniqueFd> detached_transient(const std::string& source, int lower) {
  CFS_TRY_ASSIGN(UniqueFd tmpfs, detached_tmpfs());
  return detached_overlay(source, lower, tmpfs.get(), "the tmpfs");
}

// /etc or /var of the detached root `root`, per `mode`.
Status attach_state_dir(int root, int state_fd, const std::string& state_shown, const char* sub,
                        int lower, MountMode mode) {
  std::string shown = fmt::format("{}/{}", state_shown, sub);
  UniqueFd mnt;
  switch (mode) {
    case MountMode::None: return {};
    case MountMode::Bind: {
      CFS_TRY_ASSIGN(mnt, clone_tree(state_fd, sub, shown));
      break;
    }
    case MountMode::Overlay: {
      CFS_TRY_ASSIGN(UniqueFd dir, open_layer(state_fd, sub, shown));
      if (lower < 0) return errorf(Errc::NotFound, "the image has no /{}", sub);
      CFS_TRY_ASSIGN(mnt, detached_overlay("overlay", lower, dir.get(), shown));
      break;
    }
    case MountMode::Transient:
      if (lower < 0) return errorf(Errc::NotFound, "the image has no /{}", sub);
      CFS_TRY_ASSIGN(mnt, detached_transient("transient", lower));
      break;
  }
  return move_onto(mnt.get(), root, sub, fmt::format("/{} of the new root", sub));
}

bool is_mount_root(int fd) {
  struct statx stx {};
  if (::statx(fd, "", AT_EMPTY_PATH, 0, &stx) != 0) return false;
  return (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
         (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
}

// composefs-rs's gpt_workaround (systemd #35017): systemd-gpt-auto-generator
// wants /run/systemd/volatile-root to name the root device once the root is
// no longer that device's filesystem.  Best effort; an existing link (from
// ostree-prepare-root, say) is fine.
std::optional<std::string> gpt_workaround(const Options& opts) {
  struct stat st {};
  std::string node = opts.dev_dir + "/gpt-auto-root";
  if (::stat(node.c_str(), &st) != 0) return std::nullopt;
  std::string target = fmt::format("/dev/block/{}:{}", major(st.st_rdev), minor(st.st_rdev));
  std::string link = opts.run_dir + "/systemd/volatile-root";
  if (::symlink(target.c_str(), link.c_str()) != 0) return std::nullopt;
  return fmt::format("{} -> {} (for systemd-gpt-auto-generator)", link, target);
}

// What one karg's setup needs, found before anything is mounted.
struct Deployment {
  boot::SetupRootKarg karg;
  UniqueFd image_fd;  // invalid with --root-fs
  std::string image;
  fsverity::Digest digest;
  UniqueFd state_fd;
  std::string state_shown;
  UniqueFd clone_fd;  // the physical root, detached
};

mount::Options image_options(const std::string& repo_path, const Deployment& d) {
  mount::Options mo;
  mo.basedirs = {repo_path + "/objects"};
  mo.expected_digest = d.digest;
  mo.allow_insecure = d.karg.insecure;
  mo.verity = d.karg.insecure ? mount::Verity::Try : mount::Verity::Require;
  mo.read_only = true;
  mo.source = "composefs:" + d.karg.hex;
  mo.tmpdir = "/run";
  if (::access("/run", W_OK) != 0) mo.tmpdir = "/tmp";
  return mo;
}

tl::unexpected<Error> image_error(const Deployment& d, const Error& e, const std::string& release) {
  return tl::unexpected(
      Error(e.code(),
            fmt::format("mounting image {} ({}): {}{}", d.karg.hex, d.image, e.message(),
                        linux_7_0_hint(e.sys_errno(), e.message(), release)),
            e.sys_errno()));
}

// pre-6.15: everything mounted in place on the sysroot, undone by `stack`
// on failure.
Status sequence_pre_6_15(const Options& opts, Deployment& d, const std::string& repo_path,
                         const std::string& release, Stack& stack, Outcome& out) {
  const std::string& sysroot = opts.sysroot;
  if (opts.root_fs) {
    auto root = clone_tree(AT_FDCWD, *opts.root_fs, "--root-fs " + *opts.root_fs);
    if (!root) return step_error("root", root.error());
    if (auto s = move_onto(root->get(), AT_FDCWD, sysroot, sysroot); !s)
      return step_error("root", s.error());
    stack.pushed();
  } else {
    auto m = mount::mount_image_fd(d.image_fd.get(), sysroot, image_options(repo_path, d));
    if (!m) return image_error(d, m.error(), release);
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
            mount_transient(sysroot, image_root.get(), "transient:composefs=" + d.karg.hex, stack);
        !s)
      return step_error("transient root", s.error());
  }

  // The physical root at /sysroot of the new root (an image without
  // /sysroot simply does not show it).
  std::string inner = sysroot + "/sysroot";
  if (auto s = move_onto(d.clone_fd.get(), AT_FDCWD, inner, inner);
      !s && s.error().sys_errno() != ENOENT)
    return step_error("sysroot", s.error());

  if (auto s = mount_state_dir(sysroot, d.state_fd.get(), d.state_shown, "etc", image_etc.get(),
                               opts.config.etc);
      !s)
    return step_error("/etc", s.error());
  if (auto s = mount_state_dir(sysroot, d.state_fd.get(), d.state_shown, "var", image_var.get(),
                               opts.config.var);
      !s)
    return step_error("/var", s.error());
  return {};
}

// 6.15: the new root put together detached; nothing is attached anywhere
// until the final swap, so an earlier failure has nothing to undo.
Status sequence_6_15(const Options& opts, Deployment& d, int sysroot_fd,
                     const std::string& repo_path, const std::string& release, Outcome& out) {
  const std::string& sysroot = opts.sysroot;
  UniqueFd root;
  if (opts.root_fs) {
    auto r = clone_tree(AT_FDCWD, *opts.root_fs, "--root-fs " + *opts.root_fs);
    if (!r) return step_error("root", r.error());
    root = std::move(*r);
  } else {
    auto m = mount::mount_image_fd_detached(d.image_fd.get(), image_options(repo_path, d));
    if (!m) return image_error(d, m.error(), release);
    root = std::move(m->mnt);
    for (auto& n : m->info.notes) out.notes.push_back(n);
  }
  // The image's own /etc and /var, before a transient root covers them.
  UniqueFd image_etc(::openat(root.get(), "etc", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  UniqueFd image_var(::openat(root.get(), "var", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  UniqueFd image;

  if (opts.config.root_transient) {
    image = std::move(root);
    // The overlay takes the image's place as the tree's root: mounts made
    // from here on go into what will be visible.
    // `image` stays open: closing a detached tree's last fd dissolves it,
    // and its /etc and /var are still to be overlay layers.
    auto t = detached_transient("transient:composefs=" + d.karg.hex, image.get());
    if (!t) return step_error("transient root", t.error());
    root = std::move(*t);
  }

  if (auto s = move_onto(d.clone_fd.get(), root.get(), "sysroot", "/sysroot of the new root");
      !s && s.error().sys_errno() != ENOENT)
    return step_error("sysroot", s.error());

  if (auto s = attach_state_dir(root.get(), d.state_fd.get(), d.state_shown, "etc", image_etc.get(),
                                opts.config.etc);
      !s)
    return step_error("/etc", s.error());
  if (auto s = attach_state_dir(root.get(), d.state_fd.get(), d.state_shown, "var", image_var.get(),
                                opts.config.var);
      !s)
    return step_error("/var", s.error());

  // The swap.  A sysroot that is a mount of its own (as in an initramfs) is
  // detached, so that the new root takes its place; a plain directory is
  // just covered.  A spare clone puts it back should the move fail.
  if (is_mount_root(sysroot_fd)) {
    auto spare = clone_tree(sysroot_fd, "", sysroot);
    if (!spare) return step_error("sysroot", spare.error());
    if (::umount2(sysroot.c_str(), MNT_DETACH) != 0)
      return step_error(
          "sysroot", sys_error(fmt::format("detaching the physical root at {}", sysroot)).value());
    if (auto s = move_onto(root.get(), AT_FDCWD, sysroot, sysroot); !s) {
      (void)move_onto(spare->get(), AT_FDCWD, sysroot, sysroot);
      return step_error("root", s.error());
    }
  } else if (auto s = move_onto(root.get(), AT_FDCWD, sysroot, sysroot); !s) {
    return step_error("root", s.error());
  }
  return {};
}

}  // namespace

std::string_view to_string(MountSequence s) {
  switch (s) {
    case MountSequence::Auto: return "auto";
    case MountSequence::Pre615: return "pre-6.15";
    case MountSequence::Floating: return "6.15";
  }
  return "?";
}

Result<MountSequence> parse_mount_sequence(std::string_view s) {
  for (MountSequence m : {MountSequence::Auto, MountSequence::Pre615, MountSequence::Floating})
    if (s == to_string(m)) return m;
  return errorf(Errc::InvalidArgument, "unknown mount sequence \"{}\" (auto, pre-6.15, 6.15)", s);
}

bool kernel_mounts_in_detached_trees() {
  auto a = detached_tmpfs();
  auto b = detached_tmpfs();
  if (!a || !b || ::mkdirat(a->get(), "d", 0755) != 0) return false;
  // Both things the 6.15 sequence does: an overlay whose layers are all in
  // detached mounts (as a transient /etc over the detached image), and a
  // mount moved into a detached tree.  Before 6.15 both fail with EINVAL.
  UniqueFd lower(::openat(a->get(), "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!lower) return false;
  auto ovl = detached_overlay("probe", lower.get(), b->get(), "the probe's tmpfs");
  if (!ovl) return false;
  return ::syscall(SYS_move_mount, ovl->get(), "", a->get(), "d", kMoveMountFEmptyPath) == 0;
}

std::string linux_7_0_hint(int err, std::string_view message, std::string_view release) {
  bool in_range = release.starts_with("7.0.") || release == "7.0" || release.starts_with("7.0-");
  bool symptom = err == EIO || message.find("has no fs-verity digest") != std::string_view::npos;
  if (!in_range || !symptom) return "";
  return fmt::format(
      " (Linux {} has a known regression that breaks verity=require overlay mounts of "
      "correct images: bootc #2174)",
      release);
}

bool volatile_var(std::string_view cmdline) {
  constexpr std::string_view key = "systemd.volatile=";
  std::optional<std::string_view> value;
  for (std::string_view tok : boot::split_cmdline(cmdline))
    if (tok.starts_with(key)) value = tok.substr(key.size());
  return value && (*value == "state" || *value == "overlay");
}

Result<Outcome> setup_root(const Options& opts) {
  Outcome out;
  const std::string& sysroot = opts.sysroot;
  if (auto link = gpt_workaround(opts)) out.notes.push_back("created " + *link);

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
  Config config = opts.config;
  if (!config.var_explicit && volatile_var(cmdline)) {
    config.var = MountMode::None;  // bootc: systemd mounts a tmpfs there
    out.notes.push_back("systemd.volatile= on the command line: /var is left to systemd");
  }
  Options eff = opts;
  eff.config = config;

  MountSequence seq = opts.sequence;
  if (seq == MountSequence::Auto)
    seq = kernel_mounts_in_detached_trees() ? MountSequence::Floating : MountSequence::Pre615;
  else if (seq == MountSequence::Floating && !kernel_mounts_in_detached_trees())
    return errorf(Errc::Unsupported,
                  "mount sequence 6.15: this kernel cannot mount inside a detached mount tree "
                  "(Linux >= 6.15)");
  out.sequence = seq;
  const std::string release = opts.kernel_release ? *opts.kernel_release : running_release();

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
    auto digest = fsverity::Digest::from_hex(k.alg, k.hex);
    if (!digest) return errorf(Errc::InvalidArgument, "kernel command line: bad digest {}", k.hex);
    Deployment d{k, UniqueFd(), "", *digest, UniqueFd(), "", UniqueFd()};
    if (opts.root_fs) {
      d.image = *opts.root_fs;  // the repository is not looked at
    } else {
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
      d.image = repo_path + "/images/" + k.hex;
      int ifd = ::open(d.image.c_str(), O_RDONLY | O_CLOEXEC);
      if (ifd < 0 && errno == ENOENT) {
        d.image = repo_path + "/images/refs/" + k.hex;
        ifd = ::open(d.image.c_str(), O_RDONLY | O_CLOEXEC);
      }
      if (ifd < 0) {
        if (errno == ENOENT) {
          out.notes.push_back(fmt::format("image {} not found, trying next karg", k.hex));
          continue;
        }
        return step_error(fmt::format("image {}", k.hex),
                          sys_error(fmt::format("opening {}", d.image)).value());
      }
      d.image_fd = UniqueFd(ifd);
    }

    int state_raw = ::openat(sysroot_fd.get(), fmt::format("state/deploy/{}", k.hex).c_str(),
                             O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (state_raw < 0)
      return step_error(
          "state directory",
          sys_error(fmt::format("opening {}/state/deploy/{}", sysroot, k.hex)).value());
    d.state_fd = UniqueFd(state_raw);
    d.state_shown = fmt::format("{}/state/deploy/{}", sysroot, k.hex);

    auto clone = clone_tree(sysroot_fd.get(), "", sysroot);
    if (!clone) return step_error("sysroot", clone.error());
    d.clone_fd = std::move(*clone);

    Status s = seq == MountSequence::Floating
                   ? sequence_6_15(eff, d, sysroot_fd.get(), repo_path, release, out)
                   : sequence_pre_6_15(eff, d, repo_path, release, stack, out);
    if (!s) return tl::unexpected(s.error());
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
