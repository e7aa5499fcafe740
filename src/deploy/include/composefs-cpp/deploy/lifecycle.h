// SPDX-License-Identifier: Apache-2.0
// Changing deployments as bootc does (boot-spec 2.7, 2.9): stage a new
// deployment (switch, upgrade) into loader/entries.staged, finalize it by
// merging /etc three ways and exchanging entries.staged with entries
// (renameat2 RENAME_EXCHANGE), roll back by exchanging re-keyed entries, and
// collect what no boot entry needs.  Every step that boots from something
// writes that something completely first, so a crash leaves entries that
// point at complete images.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "composefs-cpp/base/error.h"
#include "composefs-cpp/deploy/deployments.h"
#include "composefs-cpp/oci/pull.h"
#include "composefs-cpp/repository/repository.h"

namespace cfs::deploy {

// One /etc entry, compared by type, permissions, owner, data (file content
// or symlink target) and xattrs, as bootc's etc-merge compares them: a
// relabelled file (security.selinux) or a user.* note is a local change.
struct EtcEntry {
  uint32_t mode = 0;  // with the type bits
  uint32_t uid = 0, gid = 0;
  std::string data;
  std::map<std::string, std::string> xattrs;
  friend bool operator==(const EtcEntry&, const EtcEntry&) = default;
};
using EtcTree = std::map<std::string, EtcEntry>;  // relative path -> entry

Result<EtcTree> load_etc_dir(const std::string& dir);
// An image's /etc as its boot image shows it (SELinux labels applied, the
// xattrs the boot transformation keeps), which is what the booted system's
// pristine /etc is.
Result<EtcTree> load_etc_image(const oci::Store& store, const oci::StoredImage& img);
// Any directory of an image ("/var"), read the same way; empty if absent.
Result<EtcTree> load_image_dir(const oci::Store& store, const oci::StoredImage& img,
                               const std::string& path);

struct EtcMerge {
  EtcTree result;
  std::vector<std::string> conflicts;  // changed locally and in the new image, differently
};
// pristine: the booted image's /etc; current: the running /etc; next: the
// new image's /etc.  A path unchanged locally takes the new image's state
// (removal included); a path the new image did not change keeps the local
// state; otherwise both agree or it is a conflict.
EtcMerge merge_etc(const EtcTree& pristine, const EtcTree& current, const EtcTree& next);
// Writes `t` as directory `dir` (which must not exist).
Status write_etc(const EtcTree& t, const std::string& dir);

struct StageOptions {
  std::string source;  // pull source ("oci:DIR:TAG", "docker://..."); empty: from the origin
  std::vector<std::string> extra_kargs;  // appended to a new Type 1 entry's options
  bool download_only = false;            // finalization_locked
  Steps* steps = nullptr;
};
struct StageResult {
  bool staged = false;  // false: the image's deployment exists already
  std::string digest;
  std::string message;
};
// Pulls (tagging localhost/bootc-<manifest>), makes the boot image, and
// stages it from the current deployment.  /etc conflicts are refused before
// anything is written.
Result<StageResult> stage(repository::Repository& repo, const Layout& l, const SystemStatus& st,
                          const StageOptions& o);

// Applies the staged deployment: /etc merged into its state, then
// entries.staged exchanged with entries.  Returns false when nothing was
// staged.
Result<bool> finalize(repository::Repository& repo, const Layout& l, const SystemStatus& st,
                      Steps* steps = nullptr);

// Makes the rollback entry the first one (and the first the rollback).
Status rollback(const Layout& l, const SystemStatus& st, Steps* steps = nullptr);

struct GcReport {
  std::vector<std::string> removed;  // paths and tags removed, for the log
  uint64_t objects_removed = 0;
};
Result<GcReport> gc(repository::Repository& repo, const Layout& l, const SystemStatus& st,
                    bool dry_run = false);

}  // namespace cfs::deploy
