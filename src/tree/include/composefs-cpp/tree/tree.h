// SPDX-License-Identifier: Apache-2.0
// The in-memory filesystem tree that dump files, directory scans, images and
// OCI layers are turned into, and that the image writer consumes.
//
// A hardlink is a directory entry whose node has `link_to` set: it names the
// inode of the node it links to (the "primary" entry, whose own fields hold
// the inode's metadata).  This is the model of composefs's C library, which
// the image layout depends on: the primary's place in the tree decides the
// inode's place in the image.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "composefs-cpp/base/error.h"
#include "composefs-cpp/fsverity/fsverity.h"

namespace cfs {

struct Xattr {
  std::string key;
  std::string value;
  friend bool operator==(const Xattr&, const Xattr&) = default;
};

// composefs's per-inode xattr budget for external input (dump files, scans):
// each xattr costs 2*4-1 + key + value bytes, the first one 12 more, and the
// total must stay within UINT16_MAX/2 so the writer can add its own.
inline constexpr size_t kXattrBudget = 32767;
inline constexpr size_t kMaxXattrName = 255;
inline constexpr size_t kMaxXattrValue = 65535;
inline constexpr size_t kMaxNameLength = 255;
// Inline content from a dump file may be this long (composefs's limit).
inline constexpr size_t kMaxInlineContent = 5000;
// A directory scan inlines regular files up to this size; changing it
// changes image digests.
inline constexpr size_t kScanInlineMax = 64;
inline constexpr size_t kPathMax = 4096;  // payloads must be shorter than this
// Directory nesting accepted from any input: tree walks recurse, so depth is
// bounded (a path within PATH_MAX cannot nest deeper than 2048).
inline constexpr size_t kMaxDepth = 4096;

class Node {
 public:
  std::string name;             // empty for the root
  Node* parent = nullptr;       // the root's parent is nullptr
  Node* link_to = nullptr;      // set on hardlink entries
  std::vector<Node*> children;  // sorted by name, bytewise

  uint32_t mode = 0;
  uint32_t nlink = 1;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t rdev = 0;
  uint64_t size = 0;
  int64_t mtime_sec = 0;
  uint32_t mtime_nsec = 0;

  // Symlink target, or the backing object path of a regular file.
  std::optional<std::string> payload;
  // Inline file data; never present and empty.
  std::optional<std::string> content;
  std::optional<fsverity::Digest> digest;
  std::vector<Xattr> xattrs;
  // Running cost of xattrs against kXattrBudget (see set_xattr_checked).
  size_t xattr_cost = 0;

  uint32_t type() const { return mode & S_IFMT; }
  bool is_dir() const { return type() == S_IFDIR; }
  bool is_reg() const { return type() == S_IFREG; }
  // The node that holds the inode's data (follows hardlink chains).
  const Node* target() const;
  Node* target();

  Node* find_child(std::string_view name) const;
  // Makes this entry hold `from`'s inode (for moving an inode from one of
  // its hardlink entries to another): every inode field but nlink, which
  // the caller sets; not name, parent or children; link_to cleared.
  void assign_inode_from(const Node& from);
  const Xattr* find_xattr(std::string_view key) const;
  // Sets or replaces an xattr with composefs's per-inode budget check, in the
  // way its C library does (the same inputs are accepted and refused).
  Status set_xattr_checked(std::string_view key, std::string_view value);
  // Sets or replaces an xattr without budget accounting.
  void set_xattr(std::string_view key, std::string_view value);
  bool remove_xattr(std::string_view key);
  // "/a/b" (the root is "/").
  std::string path() const;
};

class Tree {
 public:
  Tree() = default;
  Tree(Tree&&) noexcept = default;
  Tree& operator=(Tree&&) noexcept = default;
  Tree(const Tree&) = delete;
  Tree& operator=(const Tree&) = delete;

  Node* root() const { return root_; }
  void set_root(Node* n) { root_ = n; }
  Node* new_node();
  size_t node_count() const { return count_; }

  // Inserts `child` under `parent` keeping children sorted.  Errors on a
  // non-directory parent, a bad name or a duplicate.
  Status add_child(Node* parent, std::string name, Node* child);
  // Inserts many children at once (sorted here); for directory scans.
  Status set_children(Node* parent, std::vector<std::pair<std::string, Node*>> children);
  // Looks a path up from the root, without following hardlinks or symlinks.
  Node* lookup(std::string_view path) const;
  // Makes `entry` a hardlink to `target` and counts the link in target's nlink.
  void make_hardlink(Node* entry, Node* target);

 private:
  // Nodes live in fixed-size chunks: stable addresses, few allocations.
  static constexpr size_t kChunk = 1024;
  std::vector<std::unique_ptr<Node[]>> chunks_;
  size_t count_ = 0;
  Node* root_ = nullptr;
};

bool valid_file_type(uint32_t mode);

}  // namespace cfs
