// SPDX-License-Identifier: Apache-2.0
// A composefs repository, laid out and locked as composefs-rs does:
//   meta.json                  format, algorithm, features (metadata.h)
//   objects/xx/<rest>          content named by its fs-verity digest
//   images/<hex>               -> ../objects/xx/<rest>   (EROFS images)
//   images/refs/<name>         -> ../<hex>               (named, GC roots)
//   streams/<id>, streams/refs/<name>                    (split streams)
// Every process holds a shared flock on the repository directory while it
// uses it; garbage collection takes it exclusively, so it never runs while
// anything is being written (or while `cfsctl transaction` holds it).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "composefs-cpp/base/error.h"
#include "composefs-cpp/base/fd.h"
#include "composefs-cpp/fsverity/fsverity.h"
#include "composefs-cpp/repository/metadata.h"

namespace cfs::repository {

struct InitOptions {
  fsverity::HashAlg alg = fsverity::HashAlg::Sha512;
  // No fs-verity on meta.json: objects are then not required to have it
  // (filesystems without fs-verity, such as tmpfs).
  bool insecure = false;
  FormatConfig formats{1, {}};
};

// Creates the repository directory (mode 0700, parents as needed) and
// meta.json.  Returns false when an identical repository already exists; a
// different one is an error.  Unless insecure, fs-verity is enabled on
// meta.json, which marks the repository as requiring it on every object.
Result<bool> init(const std::string& path, const InitOptions& opts);

// Deletes streams/, images/ and meta.json, keeping objects/ (cfsctl init
// --reset-metadata).
Status reset_metadata(const std::string& path);

struct OpenOptions {
  // Refuse a repository whose algorithm differs (cfsctl --hash).
  std::optional<fsverity::HashAlg> expected_alg;
  // Without meta.json but with objects/, infer the algorithm and write one
  // (as composefs-rs's open_upgrade), unless this is set.
  bool no_upgrade = false;
  // Treat as insecure even if meta.json has fs-verity (the hidden --insecure).
  bool force_insecure = false;
  // Write objects through named temporaries even where O_TMPFILE works (to
  // test the fallback used on filesystems without it).
  bool force_named_tmpfile = false;
};

// How an object was stored (for statistics).
enum class StoreResult { Written, AlreadyPresent };

// Where a name (cfsctl IMAGE / NAME arguments) leads.
struct ResolvedImage {
  UniqueFd fd;       // the image, opened read-only
  std::string path;  // "images/<hex>" or "images/refs/<name>"
  // Set when the name was a digest: the image was verified against it.
  std::optional<fsverity::Digest> digest;
  bool verity = false;  // the kernel vouches for the digest (fs-verity on the image)
};

struct GcResult {
  uint64_t objects_removed = 0;
  uint64_t objects_bytes = 0;
  uint64_t images_pruned = 0;
  uint64_t streams_pruned = 0;
  uint64_t temporaries_removed = 0;  // leftovers of interrupted writers
};

struct FsckError {
  std::string type;  // kebab-case kind, as composefs-rs names them
  std::string text;  // "fsck: <type>: <path>: <detail>"
};

struct FsckResult {
  bool has_metadata = false;
  bool metadata_error = false;
  uint64_t objects_checked = 0;
  uint64_t objects_corrupted = 0;
  uint64_t streams_checked = 0;
  uint64_t streams_corrupted = 0;
  uint64_t images_checked = 0;
  uint64_t images_corrupted = 0;
  uint64_t broken_links = 0;
  uint64_t missing_objects = 0;
  std::vector<FsckError> errors;

  bool ok() const { return errors.empty(); }
  // composefs-rs's human-readable report.
  std::string to_text() const;
  // composefs-rs's `fsck --json` document.
  std::string to_json() const;
};

class Repository {
 public:
  static Result<Repository> open(const std::string& path, const OpenOptions& opts = {});

  Repository(Repository&&) noexcept;
  Repository& operator=(Repository&&) noexcept;
  ~Repository();

  const std::string& path() const { return path_; }
  int dirfd() const { return dirfd_.get(); }
  fsverity::HashAlg alg() const { return meta_.alg; }
  const Metadata& metadata() const { return meta_; }
  // The EROFS formats images are written in: meta.json's, unless
  // set_erofs_version narrowed them to one for this process (cfsctl's
  // global --erofs-version, as composefs-rs's override; meta.json stays).
  FormatConfig format_config() const;
  void set_erofs_version(uint32_t version) { erofs_override_ = version; }
  bool insecure() const { return insecure_; }
  void set_insecure() { insecure_ = true; }
  // Errors unless the repository requires fs-verity (cfsctl --require-verity).
  Status require_verity() const;
  // Errors when this process must not write: a read-only mount or directory,
  // or read-only-compatible features this tool does not know.  Creates
  // objects/ when missing; call before storing anything.
  Status ensure_writable();

  // ---- objects ----------------------------------------------------------
  // "objects/xx/rest" of a digest.
  std::string object_path(const fsverity::Digest& d) const;
  // Stores `size` bytes read from `fd` (at offset 0) as the object `expected`,
  // verifying the stored content has that digest (so a file that changes
  // while it is stored is refused, never stored under a wrong name).  An
  // existing object of the right size is kept.  Thread-safe.
  Result<StoreResult> store_object(int fd, uint64_t size, const fsverity::Digest& expected);
  // As store_object, from bytes the caller has read and hashed to `expected`:
  // written as they are, with no second read or hash (the kernel still
  // measures them where it has fs-verity).  `src_fd`, when given, is the file
  // they came from, reflinked instead where the filesystem can (and then
  // verified as store_object verifies).  Thread-safe.
  Result<StoreResult> store_hashed(std::span<const uint8_t> content,
                                   const fsverity::Digest& expected, int src_fd = -1);
  // Stores bytes, returning their digest.
  Result<fsverity::Digest> store_bytes(std::span<const uint8_t> data);
  // Opens an object read-only, checking its digest (by fs-verity, or in an
  // insecure repository by hashing it when `verify_insecure`).
  Result<UniqueFd> open_object(const fsverity::Digest& d, bool verify_insecure = false) const;
  bool has_object(const fsverity::Digest& d) const;

  // ---- images -----------------------------------------------------------
  // Stores an EROFS image: the object, then images/<hex>, then (when named)
  // images/refs/<name>.  Everything written so far is synced to disk before
  // the image becomes visible, so a visible image has all its objects.
  Result<fsverity::Digest> write_image(std::span<const uint8_t> data,
                                       const std::optional<std::string>& name);
  // Resolves an image name: a full hex digest (verified), "refs/<name>", or
  // a bare ref name.  Nothing outside the repository is ever opened.
  Result<ResolvedImage> open_image(std::string_view name) const;

  // ---- symlinks and sync ------------------------------------------------
  // Creates (or atomically replaces) the symlink at repository path `link`
  // pointing at repository path `target`, with composefs-rs's relative form,
  // creating the directories on the way.
  Status symlink(std::string_view link, std::string_view target);
  Status sync() const;

  // ---- maintenance ------------------------------------------------------
  // Deletes every object, image and stream no ref (or extra root: an entry
  // name in images/ or streams/) reaches, then the symlinks left dangling.
  // Takes the exclusive lock (waiting for every other user to finish), and
  // returns to the shared one afterwards.  A dry run only counts.
  Result<GcResult> gc(const std::vector<std::string>& extra_roots, bool dry_run);
  Result<FsckResult> fsck() const;

 private:
  Repository() = default;
  // Where `name` below images/ leads (openat2 confined to the repository).
  Result<UniqueFd> open_beneath(const std::string& rel, int flags) const;
  struct TmpObject;
  Result<TmpObject> create_tmp() const;
  // `hashed`: the temporary holds exactly the bytes that hashed to `d` (no
  // user-space check needed).
  Result<StoreResult> finish_object(TmpObject& tmp, const fsverity::Digest& d, bool replace,
                                    bool hashed);
  // Gives the finished temporary its name in objects/xx (`sd`).
  Result<StoreResult> place_object(TmpObject& tmp, int ro_fd, int sd, const fsverity::Digest& d,
                                   bool replace) const;
  // The fd of objects/xx for `d` (kept open by the repository), made when
  // `create`, else -1 when it does not exist; `reopen` replaces a cached one.
  Result<int> object_subdir(const fsverity::Digest& d, bool create, bool reopen) const;
  // Whether the object exists and is sound enough to keep; false when it is
  // absent or must be replaced (wrong size, wrong or missing fs-verity).
  Result<bool> existing_object_ok(const fsverity::Digest& d, uint64_t size, bool* present) const;

  std::string path_;
  UniqueFd dirfd_;
  mutable UniqueFd objects_fd_;
  Metadata meta_;
  bool insecure_ = false;
  bool force_named_tmpfile_ = false;
  // What writing objects has learnt about the filesystem, so later objects
  // skip the calls that cannot succeed (behind a pointer: atomics don't move).
  struct WriteHints;
  std::unique_ptr<WriteHints> hints_;
  std::optional<uint32_t> erofs_override_;
  std::vector<std::string> unknown_ro_features_;
};

// The prefixes of the temporaries writers leave only when killed: object
// data in objects/, symlinks being replaced in the repository's top level.
inline constexpr std::string_view kTmpObjectPrefix = ".tmp-object-";
inline constexpr std::string_view kTmpSymlinkPrefix = ".symlink-";

// The object digests an EROFS image references (its metacopy xattrs), for
// garbage collection, fsck and cfsctl image-objects.
Result<std::vector<fsverity::Digest>> image_object_digests(int image_fd);

}  // namespace cfs::repository
