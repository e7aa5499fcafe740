// SPDX-License-Identifier: Apache-2.0
// mount_image: check the image, mount its EROFS layer (detached), decide what
// fs-verity can be enforced, then build the overlay and attach it.  Each
// resource is an RAII object declared in the order it must be undone.
#include "composefs-cpp/mount/mount.h"

#include <dirent.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <deque>
#include <memory>

#include "composefs-cpp/base/fd.h"
#include "composefs-cpp/erofs/format.h"
#include "composefs-cpp/mount/fs_context.h"
#include "composefs-cpp/mount/loop.h"

namespace cfs::mount {
namespace {

// The verity probe looks at this many directory entries of the image at most
// (it stops at the first object it can measure), and at most this many
// objects that are missing from every store before giving up quietly.
constexpr size_t kProbeMaxEntries = 4096;
constexpr int kProbeMaxMissing = 8;
// Legacy mount(2) option strings must fit in one page with their NUL.
constexpr size_t kMaxLegacyOptions = 4095;
constexpr unsigned kOpenTreeClone = 1;  // OPEN_TREE_CLONE

std::string fd_path(int fd) {
  char buf[4096];
  std::string link = fmt::format("/proc/self/fd/{}", fd);
  ssize_t n = ::readlink(link.c_str(), buf, sizeof buf);
  if (n <= 0 || static_cast<size_t>(n) >= sizeof buf) return link;
  return std::string(buf, static_cast<size_t>(n));
}

// A directory made to hold a mount for a moment.  Destruction detaches the
// mount (if any) and removes the directory.
class TempMountDir {
 public:
  static Result<std::unique_ptr<TempMountDir>> create(const std::string& base) {
    std::string tmpl = (base.empty() ? std::string("/tmp") : base) + "/.composefs.XXXXXX";
    if (!::mkdtemp(tmpl.data()))
      return sys_error(fmt::format("cannot create a temporary mountpoint in '{}'", base));
    return std::unique_ptr<TempMountDir>(new TempMountDir(std::move(tmpl)));
  }
  TempMountDir(const TempMountDir&) = delete;
  TempMountDir& operator=(const TempMountDir&) = delete;
  ~TempMountDir() {
    int saved = errno;
    if (mounted_) ::umount2(path_.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW);
    ::rmdir(path_.c_str());
    errno = saved;
  }
  const std::string& path() const { return path_; }
  void set_mounted() { mounted_ = true; }

 private:
  explicit TempMountDir(std::string p) : path_(std::move(p)) {}
  std::string path_;
  bool mounted_ = false;
};

// The image's EROFS layer.  Members are destroyed bottom-up: the mount goes
// first, then its temporary directory, then the loop device under it.
struct ErofsLayer {
  ErofsMethod method = ErofsMethod::Auto;
  std::optional<LoopDevice> loop;
  std::unique_ptr<TempMountDir> tmp;  // when attached to a directory
  UniqueFd mnt;                       // detached mount (new API) or its attached root

  // A path naming the layer, attaching it to a temporary directory if needed.
  Result<std::string> path(const std::string& tmpdir) {
    if (tmp) return tmp->path();
    CFS_TRY_ASSIGN(auto t, TempMountDir::create(tmpdir));
    CFS_TRY_ASSIGN(UniqueFd dir, open_at(AT_FDCWD, t->path(), O_PATH | O_DIRECTORY));
    CFS_TRY(attach(mnt.get(), dir.get(), t->path()));
    t->set_mounted();
    tmp = std::move(t);
    return tmp->path();
  }
};

struct Dir {
  UniqueFd fd;       // O_RDONLY | O_DIRECTORY
  std::string path;  // canonical, for messages and for string-configured layers
};

Result<Dir> open_dir(const std::string& path, std::string_view what) {
  if (path.empty()) return errorf(Errc::InvalidArgument, "empty {} path", what);
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return sys_error(fmt::format("{} '{}'", what, path));
  Dir d{UniqueFd(fd), {}};
  d.path = fd_path(fd);
  return d;
}

// ---------------------------------------------------------------- checks

// Checks the header and the superblock, and says whether the EROFS may be
// mounted without ACL support (noacl): the C layouts (formats 0 and 1) flag
// images holding ACLs; composefs-rs's format 2 never sets the flag, so it
// says nothing there.
Status check_image(int fd, const std::string& name, bool* noacl) {
  struct stat st;
  if (::fstat(fd, &st) < 0) return sys_error(fmt::format("stat '{}'", name));
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
    return errorf(Errc::InvalidArgument, "'{}' is not a regular file or block device", name);
  erofs::ComposefsHeader h{};
  CFS_TRY_ASSIGN(size_t n, pread_full(fd, std::as_writable_bytes(std::span(&h, 1)), 0));
  if (n < sizeof h)
    return errorf(Errc::Corrupt, "'{}' is not a composefs image: only {} bytes", name, n);
  if (h.magic.get() != erofs::kComposefsMagic)
    return errorf(Errc::Corrupt, "'{}' is not a composefs image: magic {:#010x}, expected {:#010x}",
                  name, h.magic.get(), erofs::kComposefsMagic);
  erofs::SuperBlock sb{};
  CFS_TRY_ASSIGN(n, pread_full(fd, std::as_writable_bytes(std::span(&sb, 1)), erofs::kSuperOffset));
  if (n < sizeof sb || sb.magic.get() != erofs::kSuperMagic)
    return errorf(Errc::Corrupt, "'{}' is truncated or corrupt: no EROFS superblock at offset {}",
                  name, erofs::kSuperOffset);
  // A file cut short would mount, then fail every read with EIO.
  uint64_t need = uint64_t{sb.blocks.get()} * erofs::kBlockSize;
  if (S_ISREG(st.st_mode) && sb.blkszbits == erofs::kBlockBits &&
      static_cast<uint64_t>(st.st_size) < need)
    return errorf(Errc::Corrupt, "'{}' is truncated: {} bytes, but its superblock says {}", name,
                  st.st_size, need);
  *noacl = h.composefs_version.get() < 2 && (h.flags.get() & erofs::kComposefsFlagHasAcl) == 0;
  return {};
}

std::string digest_id(const fsverity::Digest& d) {
  return fmt::format("{}:{}", d.alg() == fsverity::HashAlg::Sha256 ? "sha256" : "sha512", d.hex());
}

Status check_digest(int fd, const std::string& name, const Options& opts,
                    std::vector<std::string>& notes) {
  const fsverity::Digest& want = *opts.expected_digest;
  auto measured = fsverity::measure(fd);
  if (measured) {
    if (!(*measured == want))
      return errorf(Errc::VerityMismatch, "image '{}' has fs-verity digest {}, expected {}", name,
                    digest_id(*measured), digest_id(want));
    return {};
  }
  Errc c = measured.error().code();
  if (c != Errc::VerityMissing && c != Errc::Unsupported)
    return tl::unexpected(std::move(measured.error()).context(name));
  if (!opts.allow_insecure)
    return errorf(Errc::VerityMissing,
                  "image '{}' has no fs-verity ({}), so the kernel cannot vouch for its digest; "
                  "refusing to mount (an insecure mount would compute it from the contents)",
                  name, measured.error().message());
  fsverity::Params p;
  p.alg = want.alg();
  if (::lseek(fd, 0, SEEK_SET) < 0) return sys_error(fmt::format("seek '{}'", name));
  auto computed = fsverity::digest_of_fd(fd, p);
  if (!computed) return tl::unexpected(std::move(computed.error()).context(name));
  if (!(*computed == want))
    return errorf(Errc::VerityMismatch, "image '{}' has digest {}, expected {}", name,
                  digest_id(*computed), digest_id(want));
  notes.push_back(fmt::format(
      "image '{}' has no fs-verity: its digest was computed from its contents (insecure)", name));
  return {};
}

// Looks for a reason why the overlay's verity= option would make files
// unreadable: an object store without fs-verity (this kernel or filesystem
// cannot do it), objects without it enabled, or (when every file must have
// one) an image recording no digests.  It measures the first object it finds
// through the image; nullopt means nothing speaks against verity.
Result<std::optional<std::string>> probe_verity(int root_fd, const std::vector<Dir>& basedirs,
                                                bool need_digests) {
  std::deque<std::pair<UniqueFd, std::string>> queue;
  {
    int fd = ::openat(root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return sys_error("opening the image's root");
    queue.emplace_back(UniqueFd(fd), "");
  }
  size_t seen = 0;
  int missing = 0;
  while (!queue.empty() && seen < kProbeMaxEntries) {
    auto [fd, rel] = std::move(queue.front());
    queue.pop_front();
    int dirfd = fd.get();
    std::unique_ptr<DIR, int (*)(DIR*)> d(::fdopendir(fd.release()), ::closedir);
    if (!d) {
      ::close(dirfd);
      return sys_error(fmt::format("reading image directory '/{}'", rel));
    }
    while (struct dirent* e = ::readdir(d.get())) {
      if (++seen > kProbeMaxEntries) break;
      std::string_view name = e->d_name;
      if (name == "." || name == "..") continue;
      std::string child = rel.empty() ? std::string(name) : rel + "/" + std::string(name);
      if (e->d_type == DT_DIR) {
        int cfd = ::openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (cfd >= 0) queue.emplace_back(UniqueFd(cfd), std::move(child));
        continue;
      }
      if (e->d_type != DT_REG) continue;
      std::string path = fmt::format("/proc/self/fd/{}/{}", dirfd, name);
      uint8_t meta[256];
      ssize_t mlen = ::lgetxattr(path.c_str(), "trusted.overlay.metacopy", meta, sizeof meta);
      if (mlen < 0) continue;  // inline data: not in the object store
      // struct ovl_metacopy: version, len, flags, digest_algo, digest.
      bool has_digest = mlen > 4 && meta[3] != 0;
      if (!has_digest) {
        if (need_digests)
          return std::optional<std::string>(fmt::format(
              "the image records no fs-verity digest for '/{}' (built without digests)", child));
        continue;  // verity=on does not check this file
      }
      char redirect[4096];
      ssize_t rlen =
          ::lgetxattr(path.c_str(), "trusted.overlay.redirect", redirect, sizeof redirect - 1);
      std::string object = rlen > 0 ? std::string(redirect, static_cast<size_t>(rlen)) : child;
      while (!object.empty() && object.front() == '/') object.erase(0, 1);
      bool found = false;
      for (const Dir& b : basedirs) {
        int ofd = ::openat(b.fd.get(), object.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (ofd < 0) continue;
        UniqueFd obj(ofd);
        found = true;
        auto m = fsverity::measure(obj.get());
        if (m) return std::optional<std::string>();
        if (m.error().code() == Errc::Unsupported)
          return std::optional<std::string>(fmt::format(
              "the object store '{}' has no fs-verity ({}): this kernel or its filesystem "
              "cannot do it",
              b.path, std::strerror(m.error().sys_errno())));
        if (m.error().code() == Errc::VerityMissing)
          return std::optional<std::string>(
              fmt::format("object '{}' in '{}' does not have fs-verity enabled", object, b.path));
        return std::optional<std::string>(fmt::format("cannot measure object '{}' in '{}': {}",
                                                      object, b.path, m.error().message()));
      }
      if (!found && ++missing >= kProbeMaxMissing) return std::optional<std::string>();
    }
  }
  return std::optional<std::string>();
}

// ---------------------------------------------------------------- EROFS

Result<UniqueFd> erofs_new_api(const std::string& source, bool noacl, int idmap_fd) {
  CFS_TRY_ASSIGN(FsContext ctx, FsContext::open("erofs"));
  CFS_TRY(ctx.set_string("source", source));
  CFS_TRY(ctx.set_flag("ro"));
  // An image without ACLs gains nothing from ACL lookups; a kernel built
  // without EROFS ACL support may reject the flag, which changes nothing.
  if (noacl && !ctx.set_flag("noacl")) (void)ctx.drain_log();
  CFS_TRY(ctx.create());
  CFS_TRY_ASSIGN(UniqueFd mnt, ctx.fsmount(kAttrRdonly));
  if (idmap_fd >= 0) CFS_TRY(set_idmap(mnt.get(), idmap_fd));
  return mnt;
}

Status erofs_legacy_mount(const std::string& source, const std::string& target, bool noacl) {
  if (::mount(source.c_str(), target.c_str(), "erofs", MS_RDONLY | MS_SILENT,
              noacl ? "noacl" : nullptr) < 0)
    return sys_error(fmt::format("mount(erofs, {})", source));
  return {};
}

Result<ErofsLayer> mount_erofs(int image_fd, const std::string& image_name, bool noacl,
                               const Options& opts) {
  const std::string source = fmt::format("/proc/self/fd/{}", image_fd);
  ErofsLayer layer;
  ErofsMethod m = opts.erofs_method;
  if (m != ErofsMethod::Legacy) {
    auto probe = FsContext::open("erofs");
    if (!probe) {
      if (probe.error().sys_errno() == ENODEV)
        return errorf(Errc::Unsupported, "this kernel has no EROFS filesystem");
      if (probe.error().sys_errno() != ENOSYS || m != ErofsMethod::Auto)
        return tl::unexpected(std::move(probe.error()));
      m = ErofsMethod::Legacy;  // no new mount API
    }
  }
  if (m == ErofsMethod::Auto || m == ErofsMethod::File) {
    auto mnt = erofs_new_api(source, noacl, opts.idmap_userns_fd);
    if (mnt) {
      layer.method = ErofsMethod::File;
      layer.mnt = std::move(*mnt);
      return layer;
    }
    if (mnt.error().sys_errno() != ENOTBLK)
      return tl::unexpected(std::move(mnt.error()).context("mounting the image"));
    if (m == ErofsMethod::File)
      return errorf(Errc::Unsupported,
                    "this kernel's EROFS cannot mount a file (Linux >= 6.12 with "
                    "CONFIG_EROFS_FS_BACKED_BY_FILE): {}",
                    mnt.error().message());
    m = ErofsMethod::Loop;
  }
  if (m == ErofsMethod::Loop) {
    CFS_TRY_ASSIGN(LoopDevice loop, LoopDevice::attach(image_fd, image_name));
    auto mnt = erofs_new_api(loop.path(), noacl, opts.idmap_userns_fd);
    if (!mnt)
      return tl::unexpected(
          std::move(mnt.error()).context(fmt::format("mounting the image from {}", loop.path())));
    layer.method = ErofsMethod::Loop;
    layer.loop.emplace(std::move(loop));
    layer.mnt = std::move(*mnt);
    return layer;
  }
  // mount(2): an attached mount on a temporary directory.
  if (opts.idmap_userns_fd >= 0)
    return errorf(Errc::Unsupported, "idmapped mounts need the new mount API (fsopen)");
  layer.method = ErofsMethod::Legacy;
  CFS_TRY_ASSIGN(layer.tmp, TempMountDir::create(opts.tmpdir));
  auto st = erofs_legacy_mount(source, layer.tmp->path(), noacl);
  if (!st && st.error().sys_errno() == ENOTBLK) {
    CFS_TRY_ASSIGN(LoopDevice loop, LoopDevice::attach(image_fd, image_name));
    st = erofs_legacy_mount(loop.path(), layer.tmp->path(), noacl);
    if (st) layer.loop.emplace(std::move(loop));
  }
  if (!st) return tl::unexpected(std::move(st.error()).context("mounting the image"));
  layer.tmp->set_mounted();
  CFS_TRY_ASSIGN(layer.mnt, open_at(AT_FDCWD, layer.tmp->path(), O_PATH | O_DIRECTORY));
  return layer;
}

// ---------------------------------------------------------------- overlay

struct Layers {
  ErofsLayer& erofs;
  const std::vector<Dir>& basedirs;
  const std::optional<Dir>& upper;
  const std::optional<Dir>& work;
};

// The overlay's verity= value, or nullptr.
const char* verity_value(Verity v) {
  switch (v) {
    case Verity::On: return "on";
    case Verity::Require: return "require";
    default: return nullptr;
  }
}

// An overlay attempt's outcome: the detached mount, or an error, flagged
// when it only means "this kernel lacks the method" (so the next may work).
struct Attempt {
  std::optional<UniqueFd> mnt;
  std::optional<Error> error;
  bool method_unsupported = false;
};

Attempt unsupported(Error e) { return Attempt{std::nullopt, std::move(e), true}; }
Attempt failed(Error e) { return Attempt{std::nullopt, std::move(e), false}; }

// Builds the overlay with the new mount API, its layers given as fds
// (by_fd) or as paths.  `verity` may drop from Require to Off when it came
// from Try and the overlay has no verity option.
Attempt overlay_new_api(Layers& l, const Options& opts, bool by_fd, Verity& verity, bool was_try,
                        std::vector<std::string>& notes) {
  auto ctx = FsContext::open("overlay");
  if (!ctx) {
    if (ctx.error().sys_errno() == ENOSYS) return unsupported(std::move(ctx.error()));
    if (ctx.error().sys_errno() == ENODEV)
      return failed(Error(Errc::Unsupported, "this kernel has no overlay filesystem"));
    return failed(std::move(ctx.error()));
  }
  // A filesystem with only the legacy option parser accepts any key here and
  // would silently ignore what it does not know.
  if (ctx->set_string("unsupported", "unsupported"))
    return unsupported(Error(Errc::Unsupported, "overlayfs has no new-mount-API option parser"));
  (void)ctx->drain_log();
  auto fail = [](Error e) { return failed(std::move(e)); };
  if (auto s = ctx->set_string("source", opts.source); !s) return fail(s.error());
  if (auto s = ctx->set_string("metacopy", "on"); !s) return fail(s.error());
  if (auto s = ctx->set_string("redirect_dir", "on"); !s) return fail(s.error());
  if (const char* v = verity_value(verity)) {
    if (auto s = ctx->set_string("verity", v); !s) {
      if (!was_try)
        return failed(
            Error(Errc::Unsupported, fmt::format("this kernel's overlayfs cannot enforce fs-verity "
                                                 "(verity=, Linux >= 6.6): {}",
                                                 s.error().message())));
      (void)ctx->drain_log();
      verity = Verity::Off;
      notes.push_back(
          "tryverity: mounting without fs-verity: this kernel's overlayfs has no "
          "verity option");
    }
  }
  // A refusal at `step`: the next method, or a real failure.
  auto refused = [](OverlayStep step, Error e) {
    return refusal_is_unsupported(step, e.sys_errno()) ? unsupported(std::move(e))
                                                       : failed(std::move(e));
  };
  if (by_fd) {
    const OverlayStep st = OverlayStep::LayerFd;
    if (auto s = ctx->set_fd("lowerdir+", l.erofs.mnt.get()); !s) return refused(st, s.error());
    for (const Dir& b : l.basedirs)
      if (auto s = ctx->set_fd("datadir+", b.fd.get()); !s)
        return refused(st, std::move(s.error()).context(b.path));
    if (l.upper) {
      if (auto s = ctx->set_fd("upperdir", l.upper->fd.get()); !s)
        return refused(st, std::move(s.error()).context(l.upper->path));
      if (auto s = ctx->set_fd("workdir", l.work->fd.get()); !s)
        return refused(st, std::move(s.error()).context(l.work->path));
    }
  } else {
    auto path = l.erofs.path(opts.tmpdir);
    if (!path) return fail(path.error());
    const OverlayStep st = OverlayStep::LayerString;
    if (auto s = ctx->set_string("lowerdir+", *path); !s) return refused(st, s.error());
    for (const Dir& b : l.basedirs)
      if (auto s = ctx->set_string("datadir+", b.path); !s) return refused(st, s.error());
    if (l.upper) {
      if (auto s = ctx->set_string("upperdir", l.upper->path); !s) return refused(st, s.error());
      if (auto s = ctx->set_string("workdir", l.work->path); !s) return refused(st, s.error());
    }
  }
  if (auto s = ctx->create(); !s)
    return refused(by_fd ? OverlayStep::CreateFd : OverlayStep::CreateString, s.error());
  uint64_t attr = opts.mount_attr | (opts.read_only ? kAttrRdonly : 0);
  auto mnt = ctx->fsmount(attr);
  if (!mnt) return fail(mnt.error());
  return Attempt{std::move(*mnt), std::nullopt, false};
}

// Escapes a path for a legacy overlay option (lowerdir splits at ':').
std::string escape_option(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == ',' || c == ':' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

unsigned long ms_flags(uint64_t attr) {
  unsigned long f = 0;
  if (attr & kAttrRdonly) f |= MS_RDONLY;
  if (attr & kAttrNosuid) f |= MS_NOSUID;
  if (attr & kAttrNodev) f |= MS_NODEV;
  if (attr & kAttrNoexec) f |= MS_NOEXEC;
  if (attr & kAttrNodiratime) f |= MS_NODIRATIME;
  if ((attr & kAttrAtimeMask) == kAttrNoatime) f |= MS_NOATIME;
  if ((attr & kAttrAtimeMask) == kAttrStrictatime) f |= MS_STRICTATIME;
  if (attr & kAttrNosymfollow) f |= 256;  // MS_NOSYMFOLLOW
  return f;
}

// mount(2) with the layers in one option string: "lowerdir=IMAGE::OBJECTS..."
// (data-only layers, Linux >= 6.5), else, as the C reference does on older
// kernels, "lowerdir=IMAGE:OBJECTS..." (the stores as ordinary lower layers).
// `forms` lists which of the two to try (true: data-only).  When every form
// is refused with EINVAL and verity was required (or only "::" was allowed),
// one more mount on a temporary directory tells what the kernel lacks.
Status overlay_legacy(Layers& l, const Options& opts, int target_fd, const std::vector<bool>& forms,
                      Verity& verity, bool was_try, std::vector<std::string>& notes,
                      OverlayMethod* used) {
  CFS_TRY_ASSIGN(std::string image, l.erofs.path(opts.tmpdir));
  auto options_for = [&](bool data_only, Verity v) {
    std::string data = "metacopy=on,redirect_dir=on,lowerdir=" + escape_option(image);
    for (const Dir& b : l.basedirs) data += (data_only ? "::" : ":") + escape_option(b.path);
    if (l.upper)
      data +=
          ",upperdir=" + escape_option(l.upper->path) + ",workdir=" + escape_option(l.work->path);
    if (const char* s = verity_value(v)) data += fmt::format(",verity={}", s);
    return data;
  };
  const std::string target = fmt::format("/proc/self/fd/{}", target_fd);
  unsigned long flags = ms_flags(opts.mount_attr | (opts.read_only ? kAttrRdonly : 0)) | MS_SILENT;
  auto try_mount = [&](const std::string& where, bool data_only, Verity v) -> int {
    std::string data = options_for(data_only, v);
    if (data.size() > kMaxLegacyOptions) return E2BIG;
    return ::mount(opts.source.c_str(), where.c_str(), "overlay", flags, data.c_str()) == 0 ? 0
                                                                                            : errno;
  };
  int e = 0;
  for (bool data_only : forms) {
    for (;;) {
      e = try_mount(target, data_only, verity);
      if (e == 0) {
        *used = data_only ? OverlayMethod::Legacy : OverlayMethod::LegacyLower;
        if (!data_only)
          notes.push_back(
              "this kernel's overlayfs has no data-only layers (Linux >= 6.5): the object "
              "directories are mounted as ordinary lower layers");
        return {};
      }
      if (e == EINVAL && was_try && verity != Verity::Off) {
        verity = Verity::Off;  // maybe no verity= before 6.6: try once without
        notes.push_back("tryverity: mounting without fs-verity: overlayfs refused verity=");
        continue;
      }
      break;
    }
    if (e == E2BIG)
      return errorf(Errc::TooBig, "overlay options too long for mount(2) (over {} bytes)",
                    kMaxLegacyOptions);
    const OverlayStep step = data_only ? OverlayStep::LegacyDataOnly : OverlayStep::LegacyLower;
    if (!refusal_is_unsupported(step, e)) break;
  }
  // EINVAL does not say which option the kernel lacks: mount once more
  // without verity= and with either layer syntax, on a temporary directory
  // (undone at once), to name what is missing instead of guessing.
  if (e == EINVAL) {
    const bool forced_data_only = forms.size() == 1 && forms[0];
    if (verity != Verity::Off || forced_data_only) {
      CFS_TRY_ASSIGN(auto probe, TempMountDir::create(opts.tmpdir));
      for (bool data_only : {true, false}) {
        if (try_mount(probe->path(), data_only, Verity::Off) != 0) continue;
        probe->set_mounted();  // undone by its destructor
        if (verity != Verity::Off)
          return errorf(Errc::Unsupported,
                        "this kernel's overlayfs refuses verity={} (the option needs Linux >= "
                        "6.6), so it cannot enforce the objects' fs-verity digests that verity "
                        "and digest= ask for; refusing to mount (noverity mounts without that "
                        "check; the image's own digest= is still verified)",
                        verity_value(verity));
        if (!data_only)
          return errorf(Errc::Unsupported,
                        "this kernel's overlayfs has no data-only layers ('::', Linux >= 6.5)");
        break;
      }
    }
  }
  std::string hint = e == EINVAL ? " (this kernel's overlayfs may lack data-only layers, "
                                   "Linux >= 6.5, or metacopy; see the kernel log)"
                                 : "";
  return tl::unexpected(
      Error(errc_from_errno(e), fmt::format("mount(overlay): {}{}", std::strerror(e), hint), e));
}

}  // namespace

// ---------------------------------------------------------------- public

bool refusal_is_unsupported(OverlayStep step, int e) {
  switch (step) {
    case OverlayStep::LayerFd: return e == EINVAL || e == EBADF;
    case OverlayStep::LayerString:
    case OverlayStep::CreateFd:
    case OverlayStep::LegacyDataOnly: return e == EINVAL;
    case OverlayStep::CreateString:
    case OverlayStep::LegacyLower: return false;
  }
  return false;
}

std::string_view to_string(Verity v) {
  switch (v) {
    case Verity::Off: return "off";
    case Verity::Try: return "try";
    case Verity::On: return "on";
    case Verity::Require: return "require";
  }
  return "?";
}

std::string_view to_string(ErofsMethod m) {
  switch (m) {
    case ErofsMethod::Auto: return "auto";
    case ErofsMethod::File: return "file";
    case ErofsMethod::Loop: return "loop";
    case ErofsMethod::Legacy: return "legacy";
  }
  return "?";
}

std::string_view to_string(OverlayMethod m) {
  switch (m) {
    case OverlayMethod::Auto: return "auto";
    case OverlayMethod::FdLayers: return "fd-layers";
    case OverlayMethod::PathLayers: return "path-layers";
    case OverlayMethod::Legacy: return "legacy";
    case OverlayMethod::LegacyLower: return "legacy-lower";
  }
  return "?";
}

Result<Mounted> mount_image(const std::string& image_path, const std::string& mountpoint,
                            const Options& opts) {
  int fd = ::open(image_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return sys_error(fmt::format("image '{}'", image_path));
  UniqueFd image(fd);
  return mount_image_fd(image.get(), mountpoint, opts);
}

namespace {

// Both public forms: attached on `mountpoint`, or (detached != nullptr) left
// as a detached mount for the caller, `mountpoint` then being unused.
Result<Mounted> mount_impl(int image_fd, const std::string& mountpoint, const Options& opts,
                           UniqueFd* detached) {
  if (opts.basedirs.empty())
    return errorf(Errc::InvalidArgument, "no object directory (basedir) given");
  if (opts.upperdir.empty() != opts.workdir.empty())
    return errorf(Errc::InvalidArgument, "upperdir and workdir must be given together");

  // Our own open file description: O_PATH fds work, and offsets are ours.
  int rfd = ::open(fmt::format("/proc/self/fd/{}", image_fd).c_str(), O_RDONLY | O_CLOEXEC);
  if (rfd < 0) return sys_error("reopening the image");
  UniqueFd image(rfd);
  const std::string name = fd_path(image.get());

  Mounted out;
  out.mountpoint = mountpoint;
  bool noacl = false;
  CFS_TRY(check_image(image.get(), name, &noacl));
  if (opts.expected_digest) CFS_TRY(check_digest(image.get(), name, opts, out.notes));

  std::vector<Dir> basedirs;
  for (const std::string& b : opts.basedirs) {
    CFS_TRY_ASSIGN(Dir d, open_dir(b, "object directory"));
    basedirs.push_back(std::move(d));
  }
  std::optional<Dir> upper, work;
  if (!opts.upperdir.empty()) {
    CFS_TRY_ASSIGN(upper, open_dir(opts.upperdir, "upperdir"));
    CFS_TRY_ASSIGN(work, open_dir(opts.workdir, "workdir"));
  }
  // mount(2) cannot make a detached mount: the legacy methods mount on a
  // temporary directory, cloned from there at the end (and detached again).
  std::unique_ptr<TempMountDir> legacy_dir;
  UniqueFd target;
  if (!detached) {
    int tfd = ::open(mountpoint.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (tfd < 0) return sys_error(fmt::format("mountpoint '{}'", mountpoint));
    target = UniqueFd(tfd);
  }

  CFS_TRY_ASSIGN(ErofsLayer erofs, mount_erofs(image.get(), name, noacl, opts));
  out.erofs_method = erofs.method;

  Verity verity = opts.verity;
  bool was_try = verity == Verity::Try;
  if (verity != Verity::Off) {
    int root = erofs.tmp ? -1 : erofs.mnt.get();
    UniqueFd root_holder;
    if (erofs.tmp) {
      CFS_TRY_ASSIGN(root_holder, open_at(AT_FDCWD, erofs.tmp->path(), O_PATH | O_DIRECTORY));
      root = root_holder.get();
    }
    CFS_TRY_ASSIGN(auto reason, probe_verity(root, basedirs, verity != Verity::On));
    if (reason) {
      if (!was_try)
        return errorf(Errc::VerityMissing,
                      "fs-verity is required ({}), but {}; mount with tryverity or noverity to go "
                      "without it",
                      verity == Verity::On ? "verity=on" : "verity", *reason);
      out.notes.push_back("tryverity: mounting without fs-verity: " + *reason);
      verity = Verity::Off;
    } else if (was_try) {
      verity = Verity::Require;
    }
  }

  Layers layers{erofs, basedirs, upper, work};
  OverlayMethod m = opts.overlay_method;
  std::optional<Error> first_error;
  auto try_new_api = [&](bool by_fd) -> Result<std::optional<UniqueFd>> {
    Attempt a = overlay_new_api(layers, opts, by_fd, verity, was_try, out.notes);
    if (a.mnt) return std::optional<UniqueFd>(std::move(*a.mnt));
    // A real failure: report it.  Forced on a kernel without it: say so.
    if (!a.method_unsupported) return tl::unexpected(*a.error);
    if (m != OverlayMethod::Auto)
      return errorf(Errc::Unsupported, "this kernel's overlayfs cannot mount with {}: {}",
                    to_string(m), a.error->message());
    if (!first_error) first_error = *a.error;
    return std::optional<UniqueFd>();
  };
  std::optional<UniqueFd> ovl;
  if (m == OverlayMethod::Auto || m == OverlayMethod::FdLayers) {
    CFS_TRY_ASSIGN(ovl, try_new_api(true));
    if (ovl) out.overlay_method = OverlayMethod::FdLayers;
  }
  if (!ovl && (m == OverlayMethod::Auto || m == OverlayMethod::PathLayers)) {
    CFS_TRY_ASSIGN(ovl, try_new_api(false));
    if (ovl) out.overlay_method = OverlayMethod::PathLayers;
  }
  if (ovl && detached) {
    *detached = std::move(*ovl);
  } else if (ovl) {
    CFS_TRY(attach(ovl->get(), target.get(), mountpoint));
  } else {
    if (detached) {
      CFS_TRY_ASSIGN(legacy_dir, TempMountDir::create(opts.tmpdir));
      CFS_TRY_ASSIGN(target, open_at(AT_FDCWD, legacy_dir->path(), O_PATH | O_DIRECTORY));
    }
    std::vector<bool> forms;
    if (m == OverlayMethod::Auto || m == OverlayMethod::Legacy) forms.push_back(true);
    if (m == OverlayMethod::Auto || m == OverlayMethod::LegacyLower) forms.push_back(false);
    auto st = overlay_legacy(layers, opts, target.get(), forms, verity, was_try, out.notes,
                             &out.overlay_method);
    if (!st) {
      if (first_error && st.error().code() != Errc::Unsupported)
        return tl::unexpected(
            std::move(st.error())
                .context(fmt::format("the new mount API failed too ({})", first_error->message())));
      return tl::unexpected(std::move(st.error()));
    }
    if (detached) {
      legacy_dir->set_mounted();
      long c = ::syscall(SYS_open_tree, AT_FDCWD, legacy_dir->path().c_str(),
                         kOpenTreeClone | O_CLOEXEC);
      if (c < 0) return sys_error(fmt::format("open_tree({})", legacy_dir->path()));
      *detached = UniqueFd(static_cast<int>(c));
    }
  }
  out.verity = verity;
  return out;  // the EROFS mount, its directory and loop device go here
}

}  // namespace

Result<Mounted> mount_image_fd(int image_fd, const std::string& mountpoint, const Options& opts) {
  return mount_impl(image_fd, mountpoint, opts, nullptr);
}

Result<DetachedMount> mount_image_fd_detached(int image_fd, const Options& opts) {
  DetachedMount d;
  CFS_TRY_ASSIGN(d.info, mount_impl(image_fd, "", opts, &d.mnt));
  return d;
}

Status unmount(const std::string& mountpoint, bool lazy) {
  int flags = UMOUNT_NOFOLLOW | (lazy ? MNT_DETACH : 0);
  if (::umount2(mountpoint.c_str(), flags) < 0) {
    int e = errno;
    if (e == EINVAL)
      return tl::unexpected(
          Error(Errc::InvalidArgument, fmt::format("'{}' is not a mountpoint", mountpoint), e));
    if (e == EBUSY)
      return tl::unexpected(
          Error(Errc::Io,
                fmt::format("'{}' is busy (unmount lazily to detach it anyway)", mountpoint), e));
    return sys_error(e, fmt::format("unmounting '{}'", mountpoint));
  }
  return {};
}

ScopedMount& ScopedMount::operator=(ScopedMount&& o) noexcept {
  if (this != &o) {
    (void)reset();
    m_ = std::move(o.m_);
    o.m_.reset();
  }
  return *this;
}

Status ScopedMount::reset() {
  if (!m_) return {};
  std::string mp = m_->mountpoint;
  m_.reset();
  return unmount(mp, true);
}

Mounted ScopedMount::release() {
  Mounted m = std::move(*m_);
  m_.reset();
  return m;
}

}  // namespace cfs::mount
