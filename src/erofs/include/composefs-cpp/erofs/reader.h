// SPDX-License-Identifier: Apache-2.0
// Reads composefs images: the header, the EROFS superblock, inodes,
// directories and xattrs, with every offset, size, count and name taken from
// the image checked before use, and turns an image back into a Tree the way
// the C reference's reader (lcfs_load_node_from_image) does.
//
// The image is used in place (mmap for files); nothing is decoded until asked
// for, so a path lookup or an object listing reads only what it needs.  An
// Image holds no mutable state: its const methods may run on several threads.
// A malformed image gives an Errc::Corrupt (or Unsupported / TooBig) error
// saying what is wrong and at which byte offset.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "composefs-cpp/base/error.h"
#include "composefs-cpp/base/fd.h"
#include "composefs-cpp/fsverity/fsverity.h"
#include "composefs-cpp/tree/tree.h"

namespace cfs::erofs {

struct ReadOptions {
  // Load only these entries of the root directory (composefs-info --filter);
  // empty loads everything.
  std::vector<std::string> toplevel_filter;
  // Memory a Tree may take (nodes, names, xattrs, contents) before loading is
  // refused with Errc::TooBig.  0: 64 MiB + 64 times the image size, far above
  // what any real image needs but bounded for hostile ones (xattrs shared by
  // many inodes are copied into each).
  uint64_t max_tree_bytes = 0;
};

// An inode as stored in the image (fields decoded, nothing interpreted).
struct InodeInfo {
  uint64_t nid = 0;
  uint64_t offset = 0;  // of the inode in the image
  bool compact = false;
  uint16_t layout = 0;  // kLayoutFlatPlain, kLayoutFlatInline or kLayoutChunkBased
  uint32_t mode = 0;
  uint32_t nlink = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;
  int64_t mtime_sec = 0;  // compact inodes: the superblock's build time
  uint32_t mtime_nsec = 0;
  uint32_t rdev = 0;   // character and block devices only
  uint32_t raw_u = 0;  // i_u: block address, device number or chunk format
  uint32_t ino = 0;
  uint32_t inode_size = 0;  // 32 (compact) or 64 (extended)
  uint32_t xattr_size = 0;  // bytes of the xattr area that follows the inode

  uint32_t type() const { return mode & S_IFMT; }
  bool is_dir() const { return type() == S_IFDIR; }
};

// One xattr entry as stored: name index (a prefix such as "user."), the rest
// of the name, and the value; views into the image.
struct XattrRef {
  uint8_t name_index = 0;
  std::string_view suffix;
  std::string_view value;
  uint64_t offset = 0;  // of the entry in the image
  bool shared = false;  // from the shared xattr table
  // The full name: the index's prefix followed by the suffix.
  std::string name() const;
};

// One directory entry; the name is a view into the image.
struct DirEntry {
  std::string_view name;
  uint64_t nid = 0;
  uint8_t file_type = 0;  // erofs::FileType
  uint64_t offset = 0;    // of the entry in the image
};

// A regular file that names a backing object (see Image::for_each_object).
// The views point into the image and stay valid while the Image lives,
// except `path`, which is valid during the callback only.
struct ObjectRef {
  std::string_view path;  // where the file is first found, e.g. "/usr/bin/sh"
  uint64_t nid = 0;
  uint64_t size = 0;
  // trusted.overlay.redirect without its leading '/': the object's path under
  // the base directory, e.g. "35/d02f…" (what composefs-info objects prints).
  std::optional<std::string_view> payload;
  // From trusted.overlay.metacopy: the fs-verity digest the object must have.
  std::optional<fsverity::Digest> digest;
};

class Image {
 public:
  // The bytes must outlive the Image.
  static Result<Image> open(std::span<const uint8_t> bytes);
  // Maps the file (or reads it, for pipes) and keeps the mapping.  As with
  // any mapping, the file must not shrink while the Image lives (reads past
  // its new end fault); repository images are immutable.
  static Result<Image> open(int fd);
  static Result<Image> open(const std::string& path);

  Image(Image&&) noexcept;
  Image& operator=(Image&&) noexcept;
  Image(const Image&) = delete;
  Image& operator=(const Image&) = delete;
  ~Image();

  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  uint32_t composefs_version() const { return composefs_version_; }
  uint32_t header_flags() const { return header_flags_; }
  uint64_t root_nid() const { return root_nid_; }

  // --- whole-image operations -------------------------------------------

  // The tree, as the C reference's reader builds it:
  //  - "." and "..", character devices 0/0 (overlay whiteouts, including the
  //    "00".."ff" stubs the writer adds to the root) are skipped; in format 2
  //    images (composefs-rs's, which has no stubs and does not escape
  //    whiteouts) a character device 0/0 is a whiteout of the tree and kept;
  //  - the first visit of an inode in depth-first order is its primary entry,
  //    later ones are hardlinks (Node::link_to; the link copies the mode);
  //  - trusted.overlay.overlay.X becomes trusted.overlay.X, other
  //    trusted.overlay.* xattrs and the whiteout markers are dropped;
  //    an escaped whiteout file becomes a character device 0/0 again;
  //  - trusted.overlay.metacopy gives the digest, trusted.overlay.redirect
  //    the payload (without its leading '/'); flat regular files of up to
  //    5000 bytes give their content;
  //  - compact inodes take the superblock's build time as mtime; a
  //    directory's size is its i_size.
  // Refused: directories reachable twice (cycles, directory hardlinks),
  // nesting deeper than kMaxDepth, duplicate or invalid names, and anything
  // out of bounds.  A 36-byte metacopy gives a sha256 digest as in C; a
  // 68-byte one naming sha512 (composefs-rs) gives a sha512 digest.
  Result<Tree> to_tree(const ReadOptions& opts = {}) const;

  // Calls fn for each regular file with a redirect or a metacopy digest,
  // once per inode (hardlinks are not repeated), in depth-first order; for
  // garbage collection and missing-object checks.  Reads only directories
  // and the xattrs of regular files.  Honours opts.toplevel_filter.
  Status for_each_object(const std::function<Status(const ObjectRef&)>& fn,
                         const ReadOptions& opts = {}) const;
  // The distinct digests of all objects, sorted.
  Result<std::vector<fsverity::Digest>> object_digests() const;

  // --- single entries ---------------------------------------------------

  // The nid at `path` ("/usr/bin/sh"; empty components are ignored), found by
  // binary search in each directory as the kernel does; symlinks are not
  // followed.  nullopt when it does not exist or a parent is not a directory.
  Result<std::optional<uint64_t>> lookup(std::string_view path) const;
  // Fills `out` with the inode's metadata translated as to_tree() does,
  // without children; `out.name` and tree links are left alone.  Returns
  // false (and leaves `out` unspecified) for an inode to_tree() skips (a
  // character device 0/0 in formats 0 and 1).
  Result<bool> load_node(uint64_t nid, Node& out) const;

  // --- raw access (debugging, fsck) -------------------------------------

  // Decodes and bounds-checks the inode: its xattr area and inline data lie
  // in the image, its layout is one composefs can read.
  Result<InodeInfo> inode(uint64_t nid) const;
  // Inline xattrs, then shared ones (the order the C reader applies them).
  Status for_each_xattr(const InodeInfo& inode,
                        const std::function<Status(const XattrRef&)>& fn) const;
  // All entries of a directory in stored order, including "." and "..".
  Status for_each_dirent(const InodeInfo& dir,
                         const std::function<Status(const DirEntry&)>& fn) const;
  // A symlink's target or a flat regular file's content (at most 5000
  // bytes, the composefs limit).
  Result<std::string> read_data(const InodeInfo& inode) const;

 private:
  Image() = default;
  Status init();
  friend class ImageReader;

  std::unique_ptr<MappedFile> map_;  // owns the bytes when opened from a file
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  uint32_t composefs_version_ = 0;
  uint32_t header_flags_ = 0;
  uint64_t root_nid_ = 0;
  uint64_t meta_base_ = 0;   // byte offset of nid 0
  uint64_t xattr_base_ = 0;  // byte offset that shared xattr ids count from
  int64_t build_time_ = 0;
  uint32_t build_time_nsec_ = 0;
};

}  // namespace cfs::erofs
