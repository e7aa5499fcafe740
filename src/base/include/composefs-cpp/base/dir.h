// SPDX-License-Identifier: Apache-2.0
// Listing a directory: names and types, sorted, with errors as values.
#pragma once

#include <dirent.h>

#include <array>
#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include "composefs-cpp/base/error.h"
#include "composefs-cpp/base/fd.h"

namespace cfs {

struct DirEntryInfo {
  std::string name;
  unsigned char type = DT_UNKNOWN;  // DT_* (resolved with lstat when readdir lacks it)
};

// The entries of `rel` below `dirfd` ("." for dirfd itself) except "." and
// "..", sorted by name.  `rel` is opened without following a final symlink.
Result<std::vector<DirEntryInfo>> list_dir(int dirfd, const std::string& rel);

// Opens `rel` below `dirfd` without ever leaving it (openat2 RESOLVE_BENEATH,
// or the same rules walked here on kernels without it): ".." cannot climb
// above dirfd, absolute symlinks and /proc magic links are refused, and with
// `follow_symlinks` false no symlink is followed at all.  O_NONBLOCK is added
// (unless O_PATH) so that opening a FIFO or a device never blocks.  A path leading outside is
// an error with errno EXDEV.
Result<UniqueFd> open_beneath(int dirfd, const std::string& rel, int flags, bool follow_symlinks);

// The 256 fan-out directories "00".."ff" of a content-addressed store, each
// opened once (beneath the store, never through a symlink) and kept open, so
// storing an object costs no lookup of its directory.  Thread-safe.
class FanoutDirs {
 public:
  FanoutDirs();
  ~FanoutDirs();
  FanoutDirs(const FanoutDirs&) = delete;
  FanoutDirs& operator=(const FanoutDirs&) = delete;

  // The fd of `parent`/<index as two hex digits>, made first when `create`;
  // -1 when it does not exist and not `create`.  `reopen` opens it again
  // (for a directory removed since it was opened).  The fd stays owned here.
  Result<int> get(int parent, uint8_t index, bool create, bool reopen = false);

 private:
  std::array<std::atomic<int>, 256> fds_;  // -1: not opened yet
  // Replaced fds, closed only at the end: another thread may still use one.
  std::mutex retired_mu_;
  std::vector<UniqueFd> retired_;
};

}  // namespace cfs
