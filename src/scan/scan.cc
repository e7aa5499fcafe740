// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/scan/scan.h"

#include <dirent.h>
#include <linux/fs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "composefs-cpp/base/copy.h"
#include "composefs-cpp/base/cpu.h"
#include "composefs-cpp/base/dir.h"

namespace cfs::scan {

namespace {

// Paths below the root are opened with open_beneath(..., false): no symlink
// is followed, so a tree that changes under the scan cannot redirect it
// elsewhere, and O_NONBLOCK keeps a FIFO swapped in from blocking the open.

// Where to read xattrs from: an open fd, or a path whose final component is
// not followed (so a symlink's own xattrs are read).
// Linux 6.13 has *xattrat(): no /proc path walk per file.
#ifndef SYS_listxattrat
#define SYS_getxattrat 464
#define SYS_listxattrat 465
#endif
struct XattrArgs {  // struct xattr_args
  uint64_t value;
  uint32_t size;
  uint32_t flags;
};

// Where to read xattrs from: an open fd, or a name in a directory (whose
// final component is not followed, so a symlink's own xattrs are read).
struct XattrSource {
  int fd = -1;
  int dirfd = -1;
  const char* name = nullptr;
  bool* have_at = nullptr;  // whether the *xattrat() calls exist

  std::string proc_path() const { return fmt::format("/proc/self/fd/{}/{}", dirfd, name); }
  ssize_t list(char* buf, size_t size) const {
    if (fd >= 0) return ::flistxattr(fd, buf, size);
    if (*have_at) {
      long r = ::syscall(SYS_listxattrat, dirfd, name, AT_SYMLINK_NOFOLLOW, buf, size);
      if (r >= 0 || errno != ENOSYS) return r;
      *have_at = false;
    }
    return ::llistxattr(proc_path().c_str(), buf, size);
  }
  ssize_t get(const char* key, void* buf, size_t size) const {
    if (fd >= 0) return ::fgetxattr(fd, key, buf, size);
    if (*have_at) {
      XattrArgs args{reinterpret_cast<uintptr_t>(buf), static_cast<uint32_t>(size), 0};
      long r = ::syscall(SYS_getxattrat, dirfd, name, AT_SYMLINK_NOFOLLOW, key, &args, sizeof args);
      if (r >= 0 || errno != ENOSYS) return r;
      *have_at = false;
    }
    return ::lgetxattr(proc_path().c_str(), key, buf, size);
  }
};

Status read_xattrs(const XattrSource& src, Node* node, const Options& opts) {
  std::string names;
  for (;;) {
    ssize_t n = src.list(nullptr, 0);
    if (n < 0) {
      if (errno == ENOTSUP) return {};
      return sys_error("cannot list xattrs");
    }
    names.resize(static_cast<size_t>(n));
    n = src.list(names.data(), names.size());
    if (n < 0 && errno == ERANGE) continue;  // grew meanwhile
    if (n < 0) return sys_error("cannot list xattrs");
    names.resize(static_cast<size_t>(n));
    break;
  }
  std::string value;
  for (size_t pos = 0; pos < names.size();) {
    size_t end = names.find('\0', pos);
    if (end == std::string::npos) end = names.size();
    std::string key = names.substr(pos, end - pos);
    pos = end + 1;
    if (key.empty()) continue;
    if (opts.user_xattrs && key.compare(0, 5, "user.") != 0) continue;
    if (opts.xattr_filter && !opts.xattr_filter(key)) continue;
    for (;;) {
      ssize_t n = src.get(key.c_str(), nullptr, 0);
      if (n < 0) {
        if (errno == ENODATA) break;  // removed meanwhile
        return sys_error(fmt::format("cannot read xattr '{}'", key));
      }
      value.resize(static_cast<size_t>(n));
      n = src.get(key.c_str(), value.data(), value.size());
      if (n < 0 && errno == ERANGE) continue;
      if (n < 0) return sys_error(fmt::format("cannot read xattr '{}'", key));
      value.resize(static_cast<size_t>(n));
      auto st = node->set_xattr_checked(key, value);
      if (!st) return tl::unexpected(std::move(st.error()).context(fmt::format("xattr '{}'", key)));
      break;
    }
  }
  return {};
}

void fill_stat(Node* n, const struct stat& st, const Options& opts) {
  n->mode = st.st_mode;
  n->uid = st.st_uid;
  n->gid = st.st_gid;
  n->rdev = st.st_rdev;
  n->size = static_cast<uint64_t>(st.st_size);
  n->nlink = 1;
  if (!opts.use_epoch) {
    n->mtime_sec = st.st_mtim.tv_sec;
    n->mtime_nsec = static_cast<uint32_t>(st.st_mtim.tv_nsec);
  }
}

struct FileItem {
  Node* node;
  std::string rel;
  bool sparse;  // fewer blocks allocated than the size needs: probe holes
  dev_t dev;    // what the walk saw, which the file must still be
  ino_t ino;
};

std::string describe(const struct stat& st) {
  const char* type = S_ISREG(st.st_mode)    ? "regular file"
                     : S_ISDIR(st.st_mode)  ? "directory"
                     : S_ISLNK(st.st_mode)  ? "symlink"
                     : S_ISFIFO(st.st_mode) ? "FIFO"
                     : S_ISSOCK(st.st_mode) ? "socket"
                                            : "device";
  return fmt::format("a {}-byte {} (inode {})", st.st_size, type, st.st_ino);
}

bool same_time(const struct timespec& a, const struct timespec& b) {
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

// A worker's read buffers: a chunk for hashing files as a stream, and, when
// storing, one a file is read into whole, so the store writes what was hashed
// instead of reading and hashing the file a second time.  That one grows to
// the largest such file, up to Scanner::whole_max, and is never initialised.
struct WorkerBuffers {
  std::vector<uint8_t> chunk = std::vector<uint8_t>(fsverity::kReadChunk);
  std::unique_ptr<uint8_t[]> whole;
  size_t whole_cap = 0;
  std::span<uint8_t> whole_for(size_t n) {
    if (n > whole_cap) {
      whole_cap = std::max<size_t>(std::bit_ceil(n), 64 << 10);
      whole = std::make_unique_for_overwrite<uint8_t[]>(whole_cap);
    }
    return {whole.get(), n};
  }
};

// Walks the tree on one thread while a pool hashes (and stores) the regular
// files found so far: the walk is mostly syscalls, the hashing CPU.
struct Scanner {
  Scanner(const Options& o, std::string root) : opts(o), root_path(std::move(root)) {}
  const Options& opts;
  UniqueFd rootfd;
  std::string root_path;
  Tree tree;
  std::map<std::pair<dev_t, ino_t>, std::vector<Node*>> inodes;  // --hardlinks
  std::vector<FileItem> deferred;  // --hardlinks: files with several links
  bool have_xattrat = true;        // used by the walking thread only
  // Files under this size are read whole when stored (see WorkerBuffers).
  uint64_t whole_max = 0;

  // Work queue: files in discovery order, consumed by index.
  std::mutex mu;
  std::condition_variable cv;
  std::deque<FileItem> files;
  size_t next_file = 0;
  bool walk_done = false;
  std::atomic<bool> failed{false};
  std::optional<Error> first_error;
  size_t first_error_index = SIZE_MAX;

  void enqueue(FileItem item) {
    {
      std::lock_guard lock(mu);
      files.push_back(std::move(item));
    }
    cv.notify_one();
  }
  void finish_walk() {
    {
      std::lock_guard lock(mu);
      walk_done = true;
    }
    cv.notify_all();
  }

  std::string display(const std::string& rel) const {
    return rel.empty() ? root_path : root_path + "/" + rel;
  }

  Status scan_dir(Node* dir, const std::string& rel,
                  std::vector<std::pair<Node*, std::string>>& queue) {
    if (opts.skip_contents && opts.skip_contents(rel)) return {};
    CFS_TRY_ASSIGN(UniqueFd fd, open_beneath(rootfd.get(), rel, O_RDONLY | O_DIRECTORY, false));
    auto listed = list_dir(fd.get(), ".");
    if (!listed) return tl::unexpected(std::move(listed.error()).context(display(rel)));
    std::vector<std::pair<std::string, Node*>> children;
    children.reserve(listed->size());
    for (auto& entry : *listed) {
      const std::string& name = entry.name;
      std::string child_rel = rel.empty() ? name : rel + "/" + name;
      struct stat st;
      if (::fstatat(fd.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT) continue;  // deleted while scanning
        return sys_error(fmt::format("cannot stat '{}'", display(child_rel)));
      }
      uint32_t type = st.st_mode & S_IFMT;
      if (opts.skip_devices && (type == S_IFCHR || type == S_IFBLK)) continue;
      Node* n = tree.new_node();
      fill_stat(n, st, opts);
      if (type == S_IFLNK) {
        std::string target(kPathMax + 1, '\0');
        ssize_t len = ::readlinkat(fd.get(), name.c_str(), target.data(), target.size());
        if (len < 0) return sys_error(fmt::format("cannot read symlink '{}'", display(child_rel)));
        if (static_cast<size_t>(len) >= kPathMax)
          return errorf(Errc::TooBig, "symlink '{}' has a target longer than {} bytes",
                        display(child_rel), kPathMax - 1);
        if (len == 0)
          return errorf(Errc::Corrupt, "symlink '{}' has an empty target", display(child_rel));
        target.resize(static_cast<size_t>(len));
        n->size = target.size();
        n->payload = std::move(target);
      }
      if (!opts.skip_xattrs) {
        auto st2 = read_xattrs({-1, fd.get(), name.c_str(), &have_xattrat}, n, opts);
        if (!st2) return tl::unexpected(std::move(st2.error()).context(display(child_rel)));
      }
      if (opts.hardlinks && type != S_IFDIR) inodes[{st.st_dev, st.st_ino}].push_back(n);
      if (type == S_IFDIR)
        queue.emplace_back(n, child_rel);
      else if (type == S_IFREG && st.st_size > 0) {
        FileItem item{n, child_rel, st.st_blocks * 512 < st.st_size, st.st_dev, st.st_ino};
        if (opts.hardlinks && st.st_nlink > 1)
          deferred.push_back(std::move(item));  // hashed once the primary is known
        else
          enqueue(std::move(item));
      }
      children.emplace_back(name, n);
    }
    auto st = tree.set_children(dir, std::move(children));
    if (!st) return tl::unexpected(std::move(st.error()).context(display(rel)));
    return {};
  }

  // With --hardlinks: the first path in sorted depth-first order is the
  // primary (as a dump of the tree lists it); the others link to it.
  void link_hardlinks() {
    std::map<const Node*, size_t> dfs_pos;
    std::vector<const Node*> stack{tree.root()};
    size_t pos = 0;
    while (!stack.empty()) {
      const Node* n = stack.back();
      stack.pop_back();
      dfs_pos[n] = pos++;
      for (auto it = n->children.rbegin(); it != n->children.rend(); ++it) stack.push_back(*it);
    }
    for (auto& [key, nodes] : inodes) {
      if (nodes.size() < 2) continue;
      std::sort(nodes.begin(), nodes.end(),
                [&](const Node* a, const Node* b) { return dfs_pos[a] < dfs_pos[b]; });
      Node* primary = nodes[0];
      for (size_t i = 1; i < nodes.size(); i++) {
        tree.make_hardlink(nodes[i], primary);
        nodes[i]->xattrs.clear();
        nodes[i]->payload.reset();
      }
    }
    for (auto& f : deferred)
      if (!f.node->link_to) enqueue(std::move(f));
    deferred.clear();
  }

  // Hashes a file the walk found: the same file (device, inode, type and
  // size as the walk saw them), exactly its size in bytes, and unchanged
  // while it was read; anything else is an error, never a wrong digest.
  Status hash_one(const FileItem& item, WorkerBuffers& buf) {
    Node* n = item.node;
    CFS_TRY_ASSIGN(UniqueFd fd, open_beneath(rootfd.get(), item.rel, O_RDONLY | O_NOCTTY, false));
    struct stat before, after;
    if (::fstat(fd.get(), &before) < 0) return sys_error("fstat");
    if (before.st_dev != item.dev || before.st_ino != item.ino || !S_ISREG(before.st_mode) ||
        static_cast<uint64_t>(before.st_size) != n->size)
      return errorf(Errc::Corrupt,
                    "changed during the scan: it was a {}-byte regular file (inode {}), now {}",
                    n->size, item.ino, describe(before));
    fsverity::Params params;
    params.alg = opts.alg;
    bool do_inline = n->size <= opts.inline_max;
    fsverity::Digest digest;
    uint64_t hashed = 0;
    std::span<const uint8_t> whole;  // the content read whole, when it was
    if (do_inline) {
      // One byte more than the size tells a file that grew.
      std::string content(n->size + 1, '\0');
      CFS_TRY_ASSIGN(hashed, pread_full(fd.get(), std::as_writable_bytes(std::span(content)), 0));
      content.resize(std::min<uint64_t>(hashed, n->size));
      digest = fsverity::digest_of(content, params);
      n->content = std::move(content);
    } else if (opts.store && !item.sparse && n->size < whole_max) {
      // Read once for both: the bytes hashed are the bytes the store writes.
      // Hashed a chunk at a time as it arrives, while it is still in cache.
      // Exactly its size: a file that grew is told by the fstat below.
      std::span<uint8_t> all = buf.whole_for(n->size);
      fsverity::Hasher h(params);
      while (hashed < all.size()) {
        auto part = all.subspan(hashed, std::min<size_t>(buf.chunk.size(), all.size() - hashed));
        CFS_TRY_ASSIGN(size_t got, pread_full(fd.get(), std::as_writable_bytes(part), hashed));
        h.update(part.first(got));
        hashed += got;
        if (got < part.size()) break;  // it shrank: told below
      }
      whole = all.first(hashed);
      digest = h.finish();
    } else {
      CFS_TRY_ASSIGN(digest, fsverity::digest_of_fd(fd.get(), params, item.sparse, buf.chunk));
      off_t end = ::lseek(fd.get(), 0, SEEK_CUR);  // where hashing stopped: the bytes hashed
      if (end < 0) return sys_error("lseek");
      hashed = static_cast<uint64_t>(end);
    }
    if (::fstat(fd.get(), &after) < 0) return sys_error("fstat");
    if (hashed != n->size || after.st_size != before.st_size ||
        !same_time(after.st_mtim, before.st_mtim) || !same_time(after.st_ctim, before.st_ctim))
      return errorf(Errc::Corrupt,
                    "changed during the scan: {} of its {} bytes read, now {} (modified while "
                    "being read)",
                    hashed, n->size, describe(after));
    n->digest = digest;
    n->payload = digest.object_path();
    if (!do_inline && opts.store) {
      if (whole.empty() && ::lseek(fd.get(), 0, SEEK_SET) < 0) return sys_error("lseek");
      CFS_TRY(opts.store({fd.get(), n->size, whole}, digest));
    }
    return {};
  }

  void record_error(size_t i, Error e) {
    std::lock_guard g(mu);
    // Report the earliest file's error, whatever the thread timing.
    if (i < first_error_index) {
      first_error_index = i;
      first_error = std::move(e);
    }
    failed = true;
    cv.notify_all();
  }

  // A worker: hashes queued files until the walk is over and the queue empty.
  // Nothing escapes it (an exception would end the process).
  void work() {
    auto st = catch_exceptions([&]() -> Status {
      work_loop();
      return {};
    });
    if (!st) record_error(SIZE_MAX - 1, std::move(st.error()));
  }

  void work_loop() {
    WorkerBuffers buf;  // one set per worker
    for (;;) {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return next_file < files.size() || walk_done || failed; });
      if (failed || next_file >= files.size()) {
        if (walk_done || failed) return;
        continue;
      }
      size_t i = next_file++;
      const FileItem& item = files[i];  // deque: stable while others append
      lock.unlock();
      auto st = catch_exceptions([&] { return hash_one(item, buf); });
      if (!st) record_error(i, std::move(st.error()).context(display(item.rel)));
    }
  }
};

}  // namespace

Result<Tree> scan_directory(const std::string& path, const Options& opts) {
  if (opts.skip_xattrs && opts.user_xattrs)
    return make_error(Errc::InvalidArgument, "--skip-xattrs and --user-xattrs conflict");
  Scanner s(opts, path);
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOTDIR) return errorf(Errc::InvalidArgument, "'{}' is not a directory", path);
    return sys_error(fmt::format("cannot open '{}'", path));
  }
  s.rootfd.reset(fd);
  struct stat st;
  if (::fstat(fd, &st) < 0) return sys_error(fmt::format("cannot stat '{}'", path));
  Node* root = s.tree.new_node();
  fill_stat(root, st, opts);
  s.tree.set_root(root);
  if (!opts.skip_xattrs) {
    auto r = read_xattrs({fd, -1, nullptr, &s.have_xattrat}, root, opts);
    if (!r) return tl::unexpected(std::move(r.error()).context(path));
  }
  unsigned nthreads = opts.threads ? opts.threads : default_threads();
  // Reading a file whole saves a read and a hash of it; the buffers for that
  // stay within 128 MiB however many workers there are.
  s.whole_max = std::clamp<uint64_t>((128 << 20) / nthreads, 1 << 20, 8 << 20);
  std::vector<std::jthread> workers;
  // With one thread the walk and the hashing take turns.
  for (unsigned t = 1; t < nthreads; t++) {
    try {
      workers.emplace_back([&s] { s.work(); });
    } catch (const std::exception&) {
      break;  // no more threads to be had: fewer hash
    }
  }
  std::vector<std::pair<Node*, std::string>> queue{{root, ""}};
  Status walked;
  for (size_t i = 0; i < queue.size() && walked && !s.failed; i++) {
    auto [dir, rel] = queue[i];
    walked = s.scan_dir(dir, rel, queue);
  }
  if (walked && opts.hardlinks) s.link_hardlinks();
  if (!walked) s.failed = true;
  if (walked && opts.after_walk) opts.after_walk();
  s.finish_walk();
  s.work();
  for (auto& t : workers) t.join();
  if (!walked) return tl::unexpected(std::move(walked.error()));
  if (s.first_error) return tl::unexpected(std::move(*s.first_error));
  return std::move(s.tree);
}

// ------------------------------------------------------------------ store

Result<DigestStore> DigestStore::open(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0755) < 0 && errno != EEXIST)
    return sys_error(fmt::format("cannot create digest store '{}'", dir));
  CFS_TRY_ASSIGN(UniqueFd fd, open_at(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY));
  return DigestStore(std::move(fd));
}

Status DigestStore::store(const ObjectSource& src, const fsverity::Digest& digest) const {
  std::string hex = digest.hex();
  std::string sub = hex.substr(0, 2);
  std::string rest = hex.substr(2);
  auto subdir = subdirs_->get(dirfd_.get(), digest.bytes()[0], true);
  if (!subdir) return tl::unexpected(std::move(subdir.error()).context("the digest store"));
  int sd = *subdir;
  struct stat st;
  if (::fstatat(sd, rest.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) return {};
  // Write an unnamed file, then give it its name: never a partial object.
  auto created = create_tmpfile(sd, 0644, ".tmp-");
  if (!created && ::fstat(sd, &st) == 0 && st.st_nlink == 0) {
    // The directory was removed since it was opened: made and opened again.
    subdir = subdirs_->get(dirfd_.get(), digest.bytes()[0], true, true);
    if (!subdir) return tl::unexpected(std::move(subdir.error()).context("the digest store"));
    sd = *subdir;
    created = create_tmpfile(sd, 0644, ".tmp-");
  }
  if (!created) return tl::unexpected(std::move(created.error()).context("the digest store"));
  TmpFile tmp = std::move(*created);
  std::string tmp_name = std::move(tmp.name);
  UniqueFd tmpfd = std::move(tmp.fd);
  auto cleanup = [&] {
    if (!tmp_name.empty()) ::unlinkat(sd, tmp_name.c_str(), 0);
  };
  // Bytes the scan hashed are written as they are; a reflink or a copy of
  // the file is checked below, as the file may have changed since.
  bool hashed = src.content.size() == src.size && ::ioctl(tmpfd.get(), FICLONE, src.fd) < 0;
  auto st_copy = hashed ? write_full(tmpfd.get(), std::as_bytes(src.content))
                        : copy_file_data(src.fd, tmpfd.get(), src.size);
  if (!st_copy) {
    cleanup();
    return st_copy;
  }
  if (::fchmod(tmpfd.get(), 0644) < 0) {
    cleanup();
    return sys_error("chmod");
  }
  // fs-verity needs a read-only fd with no writer: reopen, then enable.
  std::string proc = fmt::format("/proc/self/fd/{}", tmpfd.get());
  bool enabled = false;
  if (UniqueFd ro(::open(proc.c_str(), O_RDONLY | O_CLOEXEC)); ro.valid()) {
    tmpfd = std::move(ro);                                              // closes the writable fd
    enabled = fsverity::enable(tmpfd.get(), digest.alg()).has_value();  // best effort
  }
  // Verified as a repository verifies its objects (measured by the kernel,
  // else hashed here unless the bytes are the ones hashed): a source that
  // changed after it was hashed never becomes an object under a name that is
  // not its digest.
  Result<fsverity::Digest> got = digest;
  if (enabled || !hashed) got = fsverity::measure(tmpfd.get());
  if (!got && !hashed) {
    fsverity::Params p;
    p.alg = digest.alg();
    if (::lseek(tmpfd.get(), 0, SEEK_SET) < 0) {
      cleanup();
      return sys_error("lseek");
    }
    got = fsverity::digest_of_fd(tmpfd.get(), p);
  }
  if (!got || *got != digest) {
    cleanup();
    if (!got) return tl::unexpected(std::move(got.error()).context("object " + hex));
    return errorf(Errc::VerityMismatch,
                  "content changed while being stored: expected digest {}, stored content has {}",
                  hex, got->hex());
  }
  if (tmp_name.empty()) {
    proc = fmt::format("/proc/self/fd/{}", tmpfd.get());
    if (::linkat(AT_FDCWD, proc.c_str(), sd, rest.c_str(), AT_SYMLINK_FOLLOW) < 0 &&
        errno != EEXIST)
      return sys_error(fmt::format("cannot link object '{}/{}'", sub, rest));
  } else {
    if (::renameat(sd, tmp_name.c_str(), sd, rest.c_str()) < 0) {
      cleanup();
      return sys_error(fmt::format("cannot rename object '{}/{}'", sub, rest));
    }
  }
  return {};
}

Status DigestStore::sync() const {
  if (::syncfs(dirfd_.get()) < 0) return sys_error("syncfs on the digest store");
  return {};
}

}  // namespace cfs::scan
