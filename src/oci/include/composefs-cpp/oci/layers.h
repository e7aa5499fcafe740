// SPDX-License-Identifier: Apache-2.0
// Merges container layers into one filesystem with OCI whiteout semantics,
// applies composefs-rs's container-root transformation, and produces the
// cfs::Tree that the image writer consumes.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <variant>
#include <vector>

#include "composefs-cpp/base/error.h"
#include "composefs-cpp/fsverity/fsverity.h"
#include "composefs-cpp/oci/tar.h"
#include "composefs-cpp/tree/tree.h"

namespace cfs::oci {

// Files up to this size are stored inline in the image (and in split
// streams); larger ones are objects.  composefs-rs's INLINE_CONTENT_MAX_V0.
inline constexpr uint64_t kInlineMax = 64;

// A regular file's content as the image needs it.
struct FileData {
  std::string inline_data;                 // size <= kInlineMax
  std::optional<fsverity::Digest> digest;  // size > kInlineMax: the object
};

// Layer merging.  Semantics (OCI image-spec "changesets"):
//  - `.wh.NAME` removes NAME and `.wh..wh..opq` empties its directory; both
//    apply only to what lower layers left (entries of the same layer are
//    never hidden, whatever their order in the archive);
//  - a directory over a directory replaces the metadata only; anything else
//    replaces what was there, including a whole directory;
//  - a hardlink shares the inode its target names at that point;
//  - parents must exist and be directories: nothing is created implicitly and
//    nothing is reached through a symlink;
//  - a path may appear only once in a layer.
// composefs-rs applies whiteouts in archive order instead, so a
// `.wh..wh..opq` after same-layer entries removes them there (its issue #8);
// for layers written by real tools (markers before their siblings) the two
// agree.
class LayerMerger {
 public:
  LayerMerger();
  ~LayerMerger();
  LayerMerger(LayerMerger&&) noexcept;
  LayerMerger& operator=(LayerMerger&&) noexcept;

  // `name` identifies the layer in error messages (its diff_id).
  void begin_layer(std::string name);
  Status add(TarEntry entry, FileData data);
  Status end_layer();

  // composefs-rs 0.9 transform_for_oci: the root takes /usr's mode, owner,
  // mtime and xattrs; /run (if present) is emptied and takes /usr's mtime;
  // every xattr other than security.capability is dropped.  Without /usr
  // (images built FROM scratch, which composefs-rs refuses) the root keeps
  // its own metadata (0755 root:root, mtime 0 when no layer has a root
  // entry) and /run its mtime.  Errors when /usr or /run is not a directory.
  // `keep_user_xattrs`: user.* xattrs stay too (composefs-rs's
  // keep-user-xattrs filtering mode).
  Status transform_for_oci(bool keep_user_xattrs = false);

  // The merged tree; hardlinked inodes are primary at their first path in
  // sorted depth-first order (as a directory scan and composefs-rs pick).
  // Consumes the merger's own tree as it goes (call it once, last).
  Result<Tree> to_tree();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// The xattrs composefs-rs keeps on container filesystems.
bool allowed_container_xattr(std::string_view key);

}  // namespace cfs::oci
