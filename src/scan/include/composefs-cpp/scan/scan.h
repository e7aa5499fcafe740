// SPDX-License-Identifier: Apache-2.0
// Builds a tree from a directory on disk (mkcomposefs SOURCE, cfsctl
// create-image): real metadata first, then file contents hashed in parallel
// and optionally copied into a content-addressed object store.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "composefs-cpp/base/dir.h"
#include "composefs-cpp/base/error.h"
#include "composefs-cpp/base/fd.h"
#include "composefs-cpp/fsverity/fsverity.h"
#include "composefs-cpp/tree/tree.h"

namespace cfs::scan {

// One file for an ObjectStore.
struct ObjectSource {
  int fd = -1;  // the source file, read-only, at offset 0
  uint64_t size = 0;
  // Empty, or the whole content as the scan read it: exactly the bytes the
  // digest was computed from, so the store writes them without reading or
  // hashing the file again.
  std::span<const uint8_t> content;
};

// Stores one file's content as an object (the digest store or a repository).
// Called from worker threads; must be thread-safe.
using ObjectStore = std::function<Status(const ObjectSource& src, const fsverity::Digest& digest)>;

struct Options {
  bool use_epoch = false;     // all mtimes 0
  bool skip_devices = false;  // leave out block and character devices
  bool skip_xattrs = false;
  bool user_xattrs = false;  // only user.* xattrs
  // Keep hardlinks (same st_dev/st_ino) as one inode, the first path in
  // sorted depth-first order being the primary.  Off by default, as in the
  // C reference, which changes the image digest when on.
  bool hardlinks = false;
  // Which xattrs to keep (after skip/user filtering); null keeps all.
  std::function<bool(std::string_view key)> xattr_filter;
  // Directories (by path relative to the source, "" for the root) whose
  // entries are left out; the directory itself is kept (cfsctl empties /run).
  std::function<bool(const std::string& rel_dir)> skip_contents;
  unsigned threads = 0;  // 0: the CPUs this process may run on
  fsverity::HashAlg alg = fsverity::HashAlg::Sha256;
  size_t inline_max = kScanInlineMax;
  ObjectStore store;  // null: digests only
  // Called once the walk is over (with threads == 1: before any file is
  // hashed), so tests can change the tree between the walk and the reads.
  std::function<void()> after_walk;
};

Result<Tree> scan_directory(const std::string& path, const Options& opts);

// An ObjectStore writing `dir/xx/rest` objects: reflinked where the
// filesystem can, else written from the bytes the scan hashed (or copied
// from the file, then checked); written under a temporary name and linked
// into place, so an object name never holds partial content; fs-verity
// enabled where supported.  Existing objects are kept.
class DigestStore {
 public:
  static Result<DigestStore> open(const std::string& dir);
  Status store(const ObjectSource& src, const fsverity::Digest& digest) const;
  // Flushes everything written so far to disk (one syncfs for the store).
  Status sync() const;
  int dirfd() const { return dirfd_.get(); }

 private:
  explicit DigestStore(UniqueFd fd)
      : dirfd_(std::move(fd)), subdirs_(std::make_unique<FanoutDirs>()) {}
  UniqueFd dirfd_;
  std::unique_ptr<FanoutDirs> subdirs_;  // behind a pointer: it does not move
};

}  // namespace cfs::scan
