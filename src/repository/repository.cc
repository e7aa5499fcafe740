// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/repository/repository.h"

#include <dirent.h>
#include <fmt/ranges.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>

#include "composefs-cpp/base/copy.h"
#include "composefs-cpp/base/dir.h"
#include "composefs-cpp/repository/names.h"
#include "composefs-cpp/repository/walk.h"
#include "composefs-cpp/tree/tree.h"

namespace cfs::repository {

using fsverity::Digest;
using fsverity::HashAlg;

namespace {

std::string proc_fd(int fd) { return fmt::format("/proc/self/fd/{}", fd); }

// Reopens an unnamed or temporary file read-only: fs-verity needs a file no
// one has open for writing.
Result<UniqueFd> reopen_ro(int fd) {
  int ro = ::open(proc_fd(fd).c_str(), O_RDONLY | O_CLOEXEC);
  if (ro < 0) return sys_error("cannot reopen a temporary file read-only");
  return UniqueFd(ro);
}

Status enable_meta_verity(int ro_fd, HashAlg alg) {
  auto st = fsverity::enable(ro_fd, alg);
  if (st) return {};
  if (st.error().code() == Errc::Unsupported)
    return make_error(Errc::Unsupported,
                      "cannot enable fs-verity on meta.json: this filesystem does not support it "
                      "(use 'init --insecure' for a repository without fs-verity)");
  return tl::unexpected(std::move(st.error()).context("enabling fs-verity on meta.json"));
}

// Writes meta.json, which must not exist yet (EEXIST otherwise), atomically:
// an unnamed file, synced and sealed with fs-verity when asked, then linked.
Status write_metadata(int dirfd, const Metadata& meta, bool enable_verity) {
  std::string data = meta.to_json();
  const std::string name(kMetadataFile);
  CFS_TRY_ASSIGN(TmpFile tmp, create_tmpfile(dirfd, 0644, ".meta.json.tmp-"));
  // A named temporary (no O_TMPFILE here) never outlives this function.
  struct Unlink {
    int dirfd;
    const std::string& name;
    ~Unlink() {
      if (!name.empty()) ::unlinkat(dirfd, name.c_str(), 0);
    }
  } unlink_tmp{dirfd, tmp.name};
  if (::fchmod(tmp.fd.get(), 0644) < 0) return sys_error("chmod meta.json");
  CFS_TRY(write_full(tmp.fd.get(), data));
  if (::fsync(tmp.fd.get()) < 0) return sys_error("cannot sync meta.json");
  CFS_TRY_ASSIGN(UniqueFd ro, reopen_ro(tmp.fd.get()));
  tmp.fd.reset();
  if (enable_verity) CFS_TRY(enable_meta_verity(ro.get(), meta.alg));
  // linkat never replaces: an existing meta.json gives EEXIST.
  int linked = tmp.name.empty() ? ::linkat(AT_FDCWD, proc_fd(ro.get()).c_str(), dirfd, name.c_str(),
                                           AT_SYMLINK_FOLLOW)
                                : ::linkat(dirfd, tmp.name.c_str(), dirfd, name.c_str(), 0);
  if (linked < 0) return sys_error("cannot create meta.json");
  if (::fsync(dirfd) < 0) return sys_error("cannot sync the repository directory");
  return {};
}

// The algorithm of an old repository (no meta.json), from the length of the
// first object name found, and whether that object has fs-verity.
Result<std::pair<HashAlg, bool>> infer_metadata(int dirfd) {
  auto objects = ::cfs::open_beneath(dirfd, "objects", O_RDONLY | O_DIRECTORY, false);
  if (!objects) return tl::unexpected(std::move(objects.error()));
  for (int b = 0; b < 256; b++) {
    std::string sub = fmt::format("{:02x}", b);
    UniqueFd fd(
        ::openat(objects->get(), sub.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) continue;
    // Only the first object name matters, so no full listing (list_dir).
    std::unique_ptr<DIR, int (*)(DIR*)> d(::fdopendir(fd.get()), ::closedir);
    if (!d) continue;
    fd.release();  // now owned by d
    std::optional<std::pair<HashAlg, std::string>> found;
    while (struct dirent* de = ::readdir(d.get())) {
      size_t len = std::strlen(de->d_name);
      if (len == 62) found = {HashAlg::Sha256, de->d_name};
      if (len == 126) found = {HashAlg::Sha512, de->d_name};
      if (found) break;
    }
    if (found) {
      UniqueFd ofd(::openat(::dirfd(d.get()), found->second.c_str(),
                            O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
      bool verity = ofd && fsverity::measure(ofd.get()).has_value();
      return std::pair{found->first, verity};
    }
  }
  return make_error(Errc::NotFound,
                    "meta.json not found and no objects found in the repository: cannot infer "
                    "its algorithm; initialize it with `cfsctl init`");
}

}  // namespace

// ----------------------------------------------------------------- init

Result<bool> init(const std::string& path, const InitOptions& opts) {
  for (uint32_t v : opts.formats.versions())
    if (v > 2) return errorf(Errc::InvalidArgument, "unknown EROFS format version {}", v);
  std::error_code ec;
  std::filesystem::path p(path);
  if (p.has_parent_path() && !p.parent_path().empty()) {
    std::filesystem::create_directories(p.parent_path(), ec);
    if (ec)
      return errorf(Errc::Io, "cannot create the parent directories of '{}': {}", path,
                    ec.message());
  }
  if (::mkdir(path.c_str(), 0700) < 0 && errno != EEXIST)
    return sys_error(fmt::format("cannot create repository directory '{}'", path));
  CFS_TRY_ASSIGN(UniqueFd dirfd, open_at(AT_FDCWD, path, O_RDONLY | O_DIRECTORY));
  Metadata meta = Metadata::create(opts.alg, opts.formats);
  auto written = write_metadata(dirfd.get(), meta, !opts.insecure);
  if (written) return true;
  auto existing = open_file(dirfd.get(), std::string(kMetadataFile), true).and_then([](UniqueFd f) {
    return read_fd(f.get(), 1 << 20);
  });
  if (!existing) {
    if (existing.error().sys_errno() == ENOENT)
      return tl::unexpected(std::move(written.error()).context(path));
    return tl::unexpected(std::move(existing.error()).context(path));
  }
  auto old = Metadata::parse(*existing);
  if (!old) return tl::unexpected(std::move(old.error()).context(path + "/meta.json"));
  if (*old == meta) return false;
  return errorf(Errc::Exists,
                "repository '{}' already initialized with a different configuration (algorithm: "
                "{}, erofs_version: {}); cannot re-initialize with (algorithm: {}, erofs_version: "
                "{})",
                path, algorithm_name(old->alg), old->format_config().to_string(),
                algorithm_name(meta.alg), meta.format_config().to_string());
}

Status reset_metadata(const std::string& path) {
  std::error_code ec;
  for (const char* d : {"streams", "images"}) {
    std::filesystem::remove_all(path + "/" + d, ec);
    if (ec) return errorf(Errc::Io, "cannot remove {}/{}: {}", path, d, ec.message());
  }
  if (::unlink((path + "/meta.json").c_str()) < 0 && errno != ENOENT)
    return sys_error(fmt::format("cannot remove {}/meta.json", path));
  return {};
}

// ----------------------------------------------------------------- open

struct Repository::WriteHints {
  // An enable that said "unsupported": the filesystem has no fs-verity.
  std::atomic<bool> no_kernel_verity{false};
  // A reflink that could not be made (another filesystem, or none there).
  std::atomic<bool> no_reflink{false};
  // objects/xx, kept open.
  FanoutDirs subdirs;
};

Repository::Repository(Repository&&) noexcept = default;
Repository& Repository::operator=(Repository&&) noexcept = default;

Repository::~Repository() {
  // Closing the directory fd drops the flock.
}

Result<Repository> Repository::open(const std::string& path, const OpenOptions& opts) {
  Repository r;
  r.path_ = path;
  r.hints_ = std::make_unique<WriteHints>();
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT)
      return errorf(Errc::NotFound, "repository '{}' does not exist (create it with `cfsctl init`)",
                    path);
    return sys_error(fmt::format("cannot open repository '{}'", path));
  }
  r.dirfd_.reset(fd);
  // Held until this process is done with the repository: garbage collection
  // waits for it.
  CFS_TRY(flock_retry(fd, LOCK_SH, "the repository"));

  // meta.json, objects/ and everything else are opened beneath the
  // repository: a planted symlink never leads out, a FIFO never blocks.
  auto meta_fd = open_file(fd, std::string(kMetadataFile), true);
  if (!meta_fd && meta_fd.error().sys_errno() == ENOENT) {
    struct stat st;
    if (::fstatat(fd, "objects", &st, 0) < 0) {
      if (errno != ENOENT) return sys_error(fmt::format("{}: cannot stat objects/", path));
      return errorf(Errc::NotFound,
                    "{}: meta.json not found; this repository must be initialized with `cfsctl "
                    "init`",
                    path);
    }
    if (opts.no_upgrade)
      return errorf(Errc::NotFound,
                    "{}: meta.json not found; this appears to be an old-format repository: run "
                    "without --no-upgrade or use `cfsctl init` to migrate it",
                    path);
    auto inferred = infer_metadata(fd);
    if (!inferred) return tl::unexpected(std::move(inferred.error()).context(path));
    if (opts.expected_alg && *opts.expected_alg != inferred->first)
      return errorf(Errc::InvalidArgument,
                    "{}: inferred algorithm {} does not match the expected {}", path,
                    algorithm_name(inferred->first), algorithm_name(*opts.expected_alg));
    // As composefs-rs's open_upgrade: the default format and this algorithm.
    auto wst = write_metadata(fd, Metadata::create(inferred->first, {1, {}}), inferred->second);
    if (!wst && wst.error().sys_errno() != EEXIST)
      return tl::unexpected(std::move(wst.error()).context(path));
    meta_fd = open_file(fd, std::string(kMetadataFile), true);
  }
  if (!meta_fd) return tl::unexpected(std::move(meta_fd.error()).context(path));
  int mfd = meta_fd->get();
  auto text = read_fd(mfd, 1 << 20);
  if (!text) return tl::unexpected(std::move(text.error()).context(path + "/meta.json"));
  auto meta = Metadata::parse(*text);
  if (!meta) return tl::unexpected(std::move(meta.error()).context(path + "/meta.json"));
  r.meta_ = std::move(*meta);
  auto unknown = r.meta_.check();
  if (!unknown) return tl::unexpected(std::move(unknown.error()).context(path));
  r.unknown_ro_features_ = std::move(*unknown);
  if (opts.expected_alg && *opts.expected_alg != r.meta_.alg)
    return errorf(Errc::InvalidArgument, "repository algorithm {} does not match expected {}",
                  algorithm_name(r.meta_.alg), algorithm_name(*opts.expected_alg));
  // fs-verity on meta.json is what marks a repository as secure.
  r.insecure_ = opts.force_insecure || !fsverity::measure(mfd).has_value();
  r.force_named_tmpfile_ = opts.force_named_tmpfile;
  auto objects = ::cfs::open_beneath(fd, "objects", O_RDONLY | O_DIRECTORY, false);
  if (objects)
    r.objects_fd_ = std::move(*objects);
  else if (objects.error().sys_errno() != ENOENT)
    return tl::unexpected(std::move(objects.error()).context(path));
  return r;
}

FormatConfig Repository::format_config() const {
  if (erofs_override_) return {*erofs_override_, {}};
  return meta_.format_config();
}

Status Repository::require_verity() const {
  if (insecure_)
    return make_error(Errc::VerityMissing,
                      "repository was not initialized with fs-verity (hint: re-create with "
                      "`cfsctl init` on a verity-capable filesystem)");
  return {};
}

Status Repository::ensure_writable() {
  if (!unknown_ro_features_.empty())
    return errorf(Errc::Permission,
                  "repository is read-only for this tool: it has unknown read-only-compatible "
                  "features: {}",
                  fmt::join(unknown_ro_features_, ", "));
  struct statvfs sv;
  if (::fstatvfs(dirfd_.get(), &sv) < 0) return sys_error("repository is not writable");
  if (sv.f_flag & ST_RDONLY)
    return make_error(Errc::Permission, "repository is not writable: read-only file system");
  if (::faccessat(dirfd_.get(), ".", W_OK, 0) < 0) return sys_error("repository is not writable");
  if (!objects_fd_) {
    if (::mkdirat(dirfd_.get(), "objects", 0777) < 0 && errno != EEXIST)
      return sys_error("cannot create objects/");
    CFS_TRY_ASSIGN(objects_fd_,
                   ::cfs::open_beneath(dirfd_.get(), "objects", O_RDONLY | O_DIRECTORY, false));
  }
  return {};
}

// ----------------------------------------------------------------- objects

std::string Repository::object_path(const Digest& d) const { return "objects/" + d.object_path(); }

struct Repository::TmpObject {
  UniqueFd fd;
  std::string name;  // set when a named temporary in objects/ was needed
  int objects_fd = -1;
  ~TmpObject() {
    if (!name.empty()) ::unlinkat(objects_fd, name.c_str(), 0);
  }
  TmpObject() = default;
  TmpObject(TmpObject&& o) noexcept
      : fd(std::move(o.fd)), name(std::move(o.name)), objects_fd(o.objects_fd) {
    o.name.clear();
  }
};

Result<Repository::TmpObject> Repository::create_tmp() const {
  if (!objects_fd_) return make_error(Errc::InvalidArgument, "repository not opened for writing");
  TmpObject t;
  t.objects_fd = objects_fd_.get();
  auto f = create_tmpfile(t.objects_fd, 0644, kTmpObjectPrefix, force_named_tmpfile_);
  if (!f) return tl::unexpected(std::move(f.error()).context("objects/"));
  t.fd = std::move(f->fd);
  t.name = std::move(f->name);
  return t;
}

Result<int> Repository::object_subdir(const Digest& d, bool create, bool reopen) const {
  auto fd = hints_->subdirs.get(objects_fd_.get(), d.bytes()[0], create, reopen);
  if (!fd) return tl::unexpected(std::move(fd.error()).context("objects/"));
  return *fd;
}

Result<bool> Repository::existing_object_ok(const Digest& d, uint64_t size, bool* present) const {
  *present = false;
  CFS_TRY_ASSIGN(int sd, object_subdir(d, false, false));
  if (sd < 0) return false;
  std::string rest = d.hex().substr(2);
  struct stat st;
  if (::fstatat(sd, rest.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
    if (errno == ENOENT) return false;
    return sys_error(fmt::format("cannot stat objects/{}", d.object_path()));
  }
  *present = true;  // replaced unless it is right (a symlink never is)
  if (!S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) != size) return false;
  if (insecure_) return true;
  // A secure repository's objects must have fs-verity with their digest; the
  // kernel keeps it, so measuring is cheap (no hashing).
  int fd = ::openat(sd, rest.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return sys_error(fmt::format("cannot open objects/{}", d.object_path()));
  UniqueFd object(fd);
  auto m = fsverity::measure(object.get());
  return m && *m == d;
}

Result<StoreResult> Repository::finish_object(TmpObject& tmp, const Digest& d, bool replace,
                                              bool hashed) {
  if (::fchmod(tmp.fd.get(), 0644) < 0) return sys_error("chmod");
  UniqueFd ro;
  if (hashed && insecure_ && hints_->no_kernel_verity.load(std::memory_order_relaxed)) {
    // Nothing to enable and nothing to check: the bytes are the ones hashed.
    ro = std::move(tmp.fd);
  } else {
    CFS_TRY_ASSIGN(ro, reopen_ro(tmp.fd.get()));
    tmp.fd.reset();  // no writer left: fs-verity can be enabled
    auto en = fsverity::enable(ro.get(), d.alg());
    Digest got = d;
    if (en) {
      auto m = fsverity::measure(ro.get());
      if (!m) return tl::unexpected(std::move(m.error()).context("object " + d.hex()));
      got = *m;
    } else if (en.error().code() != Errc::Unsupported) {
      return tl::unexpected(std::move(en.error()).context("object " + d.hex()));
    } else {
      hints_->no_kernel_verity.store(true, std::memory_order_relaxed);
      if (!insecure_)
        return errorf(
            Errc::VerityMissing,
            "{}: the repository requires fs-verity but its filesystem does not support it", path_);
      if (!hashed) {
        // Copied from a file that might have changed since it was hashed.
        if (::lseek(ro.get(), 0, SEEK_SET) < 0) return sys_error("lseek");
        fsverity::Params p;
        p.alg = d.alg();
        auto m = fsverity::digest_of_fd(ro.get(), p);
        if (!m) return tl::unexpected(std::move(m.error()).context("object " + d.hex()));
        got = *m;
      }
    }
    if (got != d)
      return errorf(Errc::VerityMismatch,
                    "content changed while being stored: expected digest {}, stored content has {}",
                    d.hex(), got.hex());
  }
  CFS_TRY_ASSIGN(int sd, object_subdir(d, true, false));
  auto placed = place_object(tmp, ro.get(), sd, d, replace);
  if (!placed && placed.error().sys_errno() == ENOENT) {
    // objects/xx was removed since it was opened: made and opened again.
    CFS_TRY_ASSIGN(sd, object_subdir(d, true, true));
    placed = place_object(tmp, ro.get(), sd, d, replace);
  }
  return placed;
}

Result<StoreResult> Repository::place_object(TmpObject& tmp, int ro_fd, int sd, const Digest& d,
                                             bool replace) const {
  std::string rel = d.object_path();
  std::string rest = d.hex().substr(2);
  int od = objects_fd_.get();
  if (!replace) {
    if (tmp.name.empty()) {
      if (::linkat(AT_FDCWD, proc_fd(ro_fd).c_str(), sd, rest.c_str(), AT_SYMLINK_FOLLOW) == 0)
        return StoreResult::Written;
      if (errno == EEXIST) return StoreResult::AlreadyPresent;  // a concurrent writer won
      return sys_error(fmt::format("cannot link objects/{}", rel));
    }
    if (::syscall(SYS_renameat2, od, tmp.name.c_str(), sd, rest.c_str(), RENAME_NOREPLACE) == 0) {
      tmp.name.clear();
      return StoreResult::Written;
    }
    if (errno == EEXIST) return StoreResult::AlreadyPresent;
    if (errno != EINVAL && errno != ENOSYS)
      return sys_error(fmt::format("cannot rename into objects/{}", rel));
    // No RENAME_NOREPLACE here: link (which never replaces), then drop the name.
    if (::linkat(od, tmp.name.c_str(), sd, rest.c_str(), 0) < 0 && errno != EEXIST)
      return sys_error(fmt::format("cannot link objects/{}", rel));
    return StoreResult::Written;
  }
  // Replacing a damaged object: give the new one a temporary name, then
  // rename it over the old one, so the name always holds a whole file.
  if (tmp.name.empty()) {
    CFS_TRY_ASSIGN(tmp.name, link_tmpfile(ro_fd, od, kTmpObjectPrefix));
  }
  if (::renameat(od, tmp.name.c_str(), sd, rest.c_str()) < 0)
    return sys_error(fmt::format("cannot replace objects/{}", rel));
  tmp.name.clear();
  return StoreResult::Written;
}

Result<StoreResult> Repository::store_object(int fd, uint64_t size, const Digest& expected) {
  if (expected.alg() != alg())
    return errorf(Errc::InvalidArgument, "a {} digest given to a {} repository",
                  hash_name(expected.alg()), hash_name(alg()));
  bool present = false;
  CFS_TRY_ASSIGN(bool ok, existing_object_ok(expected, size, &present));
  if (ok) return StoreResult::AlreadyPresent;
  CFS_TRY_ASSIGN(TmpObject tmp, create_tmp());
  CFS_TRY(copy_file_data(fd, tmp.fd.get(), size));
  return finish_object(tmp, expected, present, false);
}

Result<StoreResult> Repository::store_hashed(std::span<const uint8_t> content,
                                             const Digest& expected, int src_fd) {
  if (expected.alg() != alg())
    return errorf(Errc::InvalidArgument, "a {} digest given to a {} repository",
                  hash_name(expected.alg()), hash_name(alg()));
  bool present = false;
  CFS_TRY_ASSIGN(bool ok, existing_object_ok(expected, content.size(), &present));
  if (ok) return StoreResult::AlreadyPresent;
  CFS_TRY_ASSIGN(TmpObject tmp, create_tmp());
  // A reflink shares the source's blocks instead of writing them again; its
  // content is the file's now, so it is checked like a copy.
  if (src_fd >= 0 && !hints_->no_reflink.load(std::memory_order_relaxed)) {
    if (::ioctl(tmp.fd.get(), FICLONE, src_fd) == 0)
      return finish_object(tmp, expected, present, false);
    hints_->no_reflink.store(true, std::memory_order_relaxed);
  }
  CFS_TRY(write_full(tmp.fd.get(), std::as_bytes(content)));
  return finish_object(tmp, expected, present, true);
}

Result<Digest> Repository::store_bytes(std::span<const uint8_t> data) {
  fsverity::Params p;
  p.alg = alg();
  Digest d = fsverity::digest_of(data, p);
  bool present = false;
  CFS_TRY_ASSIGN(bool ok, existing_object_ok(d, data.size(), &present));
  if (ok) return d;
  CFS_TRY_ASSIGN(TmpObject tmp, create_tmp());
  CFS_TRY(write_full(tmp.fd.get(), std::as_bytes(data)));
  CFS_TRY(finish_object(tmp, d, present, true));
  return d;
}

bool Repository::has_object(const Digest& d) const {
  if (!objects_fd_) return false;
  auto fd = ::cfs::open_beneath(objects_fd_.get(), d.object_path(), O_PATH, false);
  struct stat st;
  return fd && ::fstat(fd->get(), &st) == 0 && S_ISREG(st.st_mode);
}

Result<UniqueFd> Repository::open_object(const Digest& d, bool verify_insecure) const {
  std::string rel = object_path(d);
  if (!objects_fd_) return errorf(Errc::NotFound, "{}: the repository has no objects", rel);
  auto opened = open_file(objects_fd_.get(), d.object_path(), false);
  if (!opened) return tl::unexpected(std::move(opened.error()).context("objects/"));
  UniqueFd fd = std::move(*opened);
  auto m = fsverity::measure(fd.get());
  if (m) {
    if (*m != d)
      return errorf(Errc::VerityMismatch, "{}: fs-verity digest {} differs from its name", rel,
                    m->hex());
    return fd;
  }
  if (!insecure_)
    return errorf(Errc::VerityMissing, "{}: fs-verity is required but not enabled", rel);
  if (verify_insecure) {
    fsverity::Params p;
    p.alg = alg();
    CFS_TRY_ASSIGN(Digest got, fsverity::digest_of_fd(fd.get(), p));
    if (got != d)
      return errorf(Errc::VerityMismatch, "{}: content digest {} differs from its name", rel,
                    got.hex());
    if (::lseek(fd.get(), 0, SEEK_SET) < 0) return sys_error("lseek");
  }
  return fd;
}

// ----------------------------------------------------------------- symlinks

Status Repository::symlink(std::string_view link, std::string_view target) {
  std::string rel = relative_target(link, target);
  std::string name(link);
  // The directories on the way (images/, images/refs/, images/refs/a/...),
  // one at a time from the last one's fd: a symlink planted in place of one
  // of them is refused, never followed.
  UniqueFd parent;
  int at = dirfd_.get();
  size_t start = 0;
  for (size_t pos = name.find('/'); pos != std::string::npos; pos = name.find('/', start)) {
    std::string dir = name.substr(start, pos - start);
    if (::mkdirat(at, dir.c_str(), 0755) < 0 && errno != EEXIST)
      return sys_error(fmt::format("cannot create '{}'", name.substr(0, pos)));
    auto fd = ::cfs::open_beneath(at, dir, O_RDONLY | O_DIRECTORY, false);
    if (!fd) return tl::unexpected(std::move(fd.error()).context(name.substr(0, pos)));
    parent = std::move(*fd);
    at = parent.get();
    start = pos + 1;
  }
  std::string base = name.substr(start);
  if (::symlinkat(rel.c_str(), at, base.c_str()) == 0) return {};
  if (errno != EEXIST) return sys_error(fmt::format("cannot create symlink '{}'", name));
  std::string cur(kPathMax, '\0');
  ssize_t n = ::readlinkat(at, base.c_str(), cur.data(), cur.size());
  if (n >= 0 && static_cast<size_t>(n) == rel.size() && cur.compare(0, n, rel) == 0) return {};
  // Replace atomically: a new symlink under a temporary name in the
  // repository's top level, renamed over the old one.
  for (int i = 0; i < 16; i++) {
    std::string tmp = random_name(kTmpSymlinkPrefix);
    if (::symlinkat(rel.c_str(), dirfd_.get(), tmp.c_str()) < 0) {
      if (errno == EEXIST) continue;
      return sys_error(fmt::format("cannot create symlink '{}'", name));
    }
    if (::renameat(dirfd_.get(), tmp.c_str(), at, base.c_str()) < 0) {
      int e = errno;
      ::unlinkat(dirfd_.get(), tmp.c_str(), 0);
      return sys_error(e, fmt::format("cannot replace '{}'", name));
    }
    return {};
  }
  return make_error(Errc::Io, "cannot find a free temporary symlink name");
}

Status Repository::sync() const {
  if (::syncfs(dirfd_.get()) < 0) return sys_error("cannot sync the repository");
  return {};
}

// ----------------------------------------------------------------- images

Result<Digest> Repository::write_image(std::span<const uint8_t> data,
                                       const std::optional<std::string>& name) {
  if (name) CFS_TRY(validate_ref_name(*name));
  CFS_TRY(ensure_writable());
  CFS_TRY_ASSIGN(Digest d, store_bytes(data));
  // Everything the image needs reaches the disk before the image is visible.
  CFS_TRY(sync());
  std::string image = "images/" + d.hex();
  CFS_TRY(symlink(image, object_path(d)));
  if (name) CFS_TRY(symlink("images/refs/" + *name, image));
  return d;
}

Result<UniqueFd> Repository::open_beneath(const std::string& rel, int flags) const {
  auto fd = ::cfs::open_beneath(dirfd_.get(), rel, flags, true);
  if (!fd && fd.error().sys_errno() == EXDEV)
    return errorf(Errc::Permission, "'{}' leads outside the repository", rel);
  return fd;
}

Result<ResolvedImage> Repository::open_image(std::string_view name) const {
  ResolvedImage r;
  bool hexish =
      !name.empty() && name.find_first_not_of("0123456789abcdefABCDEF") == std::string_view::npos;
  if (auto d = parse_hex_digest(name, alg())) {
    r.digest = *d;
    r.path = "images/" + d->hex();
  } else if (name.substr(0, 5) == "refs/") {
    CFS_TRY(validate_ref_name(name.substr(5)));
    r.path = "images/" + std::string(name);
  } else if (hexish && name.size() >= 32) {
    return errorf(Errc::InvalidArgument, "'{}' is not a {} digest ({} hex digits)", name,
                  hash_name(alg()), 2 * hash_digest_size(alg()));
  } else if (name.find('/') == std::string_view::npos) {
    CFS_TRY(validate_ref_name(name));
    r.path = "images/refs/" + std::string(name);
  } else {
    return errorf(Errc::InvalidArgument,
                  "image name '{}' must be a hex digest, refs/NAME or a ref name", name);
  }
  auto fd = open_beneath(r.path, O_RDONLY);
  if (!fd) {
    if (fd.error().sys_errno() == ENOENT)
      return errorf(Errc::NotFound, "image not found: {}", name);
    return tl::unexpected(std::move(fd.error()));
  }
  r.fd = std::move(*fd);
  struct stat st;
  if (::fstat(r.fd.get(), &st) < 0) return sys_error("fstat");
  if (!S_ISREG(st.st_mode)) return errorf(Errc::Corrupt, "{} is not a regular file", r.path);
  auto m = fsverity::measure(r.fd.get());
  if (m) r.verity = true;
  if (r.digest) {
    if (m) {
      if (*m != *r.digest)
        return errorf(Errc::VerityMismatch, "{}: fs-verity digest {} differs from the name", r.path,
                      m->hex());
    } else if (!insecure_) {
      return errorf(Errc::VerityMissing, "{}: fs-verity is required but not enabled", r.path);
    } else {
      // No kernel to vouch for it: hash the image (small) ourselves.
      fsverity::Params p;
      p.alg = alg();
      CFS_TRY_ASSIGN(Digest got, fsverity::digest_of_fd(r.fd.get(), p));
      if (got != *r.digest)
        return errorf(Errc::VerityMismatch, "{}: content digest {} differs from the name", r.path,
                      got.hex());
      if (::lseek(r.fd.get(), 0, SEEK_SET) < 0) return sys_error("lseek");
    }
  }
  return r;
}

}  // namespace cfs::repository
