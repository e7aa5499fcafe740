// SPDX-License-Identifier: Apache-2.0
// The image layout reproduces the C reference's lcfs-writer-erofs.c decision
// by decision (it is what signed kernel command lines name by digest):
//   1. every inode gets its overlay xattrs (trusted.overlay.* escaped one
//      level, metacopy + redirect for external files, whiteouts turned into
//      escaped xwhiteouts), parents before children;
//   2. the root gets opaque=y and chardev stubs "00".."ff" hiding the object
//      store's directories when it is stacked as a plain lower layer;
//   3. inodes are numbered breadth-first, xattrs shared when used twice;
//   4. inodes are laid out with tails kept inside one block, then the shared
//      xattr table, then data blocks in inode order.
#include "composefs-cpp/erofs/writer.h"

#include <algorithm>
#include <cstring>
#include <memory_resource>
#include <unordered_map>

#include "composefs-cpp/erofs/encode.h"
#include "composefs-cpp/erofs/format.h"

namespace cfs::erofs {

namespace {

using detail::ChunkInfo;
using detail::chunking;
using detail::Out;
using detail::XattrTable;

struct WXattr {
  std::string_view key;
  std::string_view value;
  int64_t shared_offset = -1;  // offset in the shared table, or -1 when inline
  uint32_t entry = 0;          // its (key, value) entry in XattrTable
};

struct WDirent {
  std::string_view name;
  uint32_t target;
  bool link;  // ".", ".." and hardlinks: no inode of their own
};

struct WNode {
  const Node* src = nullptr;  // nullptr for the root stubs
  uint32_t parent = 0;
  uint32_t mode = 0, nlink = 1, uid = 0, gid = 0, rdev = 0;
  uint64_t size = 0;
  int64_t mtime_sec = 0;
  uint32_t mtime_nsec = 0;
  const std::string* content = nullptr;  // inline regular file data
  const std::string* symlink = nullptr;
  std::pmr::vector<WXattr> xattrs;
  size_t xattr_cost = 0;  // the C library's budget accounting, from 0 as its clone does
  std::pmr::vector<WDirent> dirents;

  explicit WNode(std::pmr::memory_resource* mr) : xattrs(mr), dirents(mr) {}

  uint32_t first_child = 0;  // index of the first non-link child (they are consecutive)
  uint32_t ino = 0;
  bool compact = false;
  uint32_t ipad = 0, xattr_size = 0, isize = 0, n_blocks = 0, tail = 0;
  uint64_t nid = 0;

  uint32_t type() const { return mode & S_IFMT; }
  bool external() const { return type() == S_IFREG && size > 0 && !content; }
};

uint8_t xattr_index(std::string_view key, std::string_view* suffix) {
  return detail::xattr_index(key, /*with_lustre=*/false, suffix);  // C's table
}

size_t xattr_entry_size(const WXattr& x) {
  std::string_view suffix;
  xattr_index(x.key, &suffix);
  return detail::xattr_entry_size(suffix, x.value.size());
}

class Writer {
 public:
  Writer(const Tree& tree, const WriteOptions& opts) : tree_(tree), opts_(opts) {}
  Result<uint32_t> run(const Sink& sink);

 private:
  Status resolve_version();
  Status collect();
  Status add_overlay_xattrs(uint32_t idx);
  Status set_xattr(WNode& n, std::string_view key, std::string_view value);
  void add_stubs();
  void number_inodes();
  void compute_shared_xattrs();
  Status layout();
  void compute_size(WNode& n);
  uint64_t tail_padding(WNode& n, uint64_t pos, size_t inode_size);
  Status write(Out& out);
  void write_inode(Out& out, WNode& n);
  void write_xattr_entry(Out& out, const WXattr& x);
  void write_dirents(Out& out, const WNode& n, bool blocks, bool tail);
  // Strings the writer creates live in the arena as long as the writer.
  std::string_view own(std::string_view s) {
    char* p = static_cast<char*>(arena_.allocate(s.size() ? s.size() : 1, 1));
    std::memcpy(p, s.data(), s.size());
    return {p, s.size()};
  }

  const Tree& tree_;
  WriteOptions opts_;
  uint32_t version_ = 0;
  std::vector<WNode> nodes_;
  // One bump allocator for every per-inode vector and string: the writer's
  // allocations all die together, and malloc was its main cost.
  std::pmr::monotonic_buffer_resource arena_{1 << 20};
  // Image index of each hardlink target (other inodes need no lookup).
  std::unordered_map<const Node*, uint32_t> link_targets_;
  std::vector<uint32_t> order_;  // breadth-first inode order
  int64_t min_mtime_sec_ = 0;
  uint32_t min_mtime_nsec_ = 0;
  bool has_acl_ = false;
  std::vector<WXattr> shared_;  // the shared xattr table, in table order
  uint64_t shared_size_ = 0;
  uint64_t inodes_end_ = 0;
  uint64_t n_data_blocks_ = 0;
  uint64_t current_end_ = 0;
};

Status Writer::resolve_version() {
  // write_image sends format 2 elsewhere and caps max_version at 1.
  version_ = opts_.min_version;
  uint32_t max = std::max(opts_.max_version, opts_.min_version);
  if (version_ >= 1 || max < 1) return {};
  // Version 1 changed how whiteouts are stored: use it when there are any.
  std::vector<const Node*> stack{tree_.root()};
  while (!stack.empty()) {
    const Node* n = stack.back();
    stack.pop_back();
    if (n->type() == S_IFCHR && static_cast<uint32_t>(n->rdev) == 0) {
      version_ = 1;
      return {};
    }
    for (const Node* c : n->children)
      if (!c->link_to) stack.push_back(c);
  }
  return {};
}

// Sets or replaces an xattr, with the C library's budget check: the accounting
// starts from zero on each inode (its tree clone does not copy it) and uses
// size_t arithmetic, so the same inputs pass and fail.
Status Writer::set_xattr(WNode& n, std::string_view key, std::string_view value) {
  for (size_t i = 0; i < n.xattrs.size(); i++) {
    if (n.xattrs[i].key == key) {
      size_t old_cost = 7 + key.size() + n.xattrs[i].value.size();
      if (i != n.xattrs.size() - 1) n.xattrs[i] = n.xattrs.back();
      n.xattrs.pop_back();
      n.xattr_cost = n.xattrs.empty() ? 0 : n.xattr_cost - old_cost;
      break;
    }
  }
  size_t cost = 7 + key.size() + value.size();
  if (n.xattrs.empty()) cost += sizeof(XattrIbodyHeader);
  if (n.xattr_cost + cost > kXattrBudget)
    return errorf(Errc::TooBig, "cannot add xattr '{}' to '{}': over the per-inode limit", key,
                  n.src ? n.src->path() : "stub");
  n.xattrs.push_back({key, value});
  n.xattr_cost += cost;
  return {};
}

Status Writer::add_overlay_xattrs(uint32_t idx) {
  WNode& n = nodes_[idx];
  for (auto& x : n.xattrs) {
    if (x.key.substr(0, kOverlayPrefix.size()) == kOverlayPrefix)
      x.key = own(std::string(kOverlayEscapedPrefix) +
                  std::string(x.key.substr(kOverlayPrefix.size())));
  }
  if (n.external()) {
    std::string meta;
    if (n.src->digest)
      meta = detail::metacopy_value(n.src->digest->bytes(),
                                    static_cast<uint8_t>(n.src->digest->alg()));
    CFS_TRY(set_xattr(n, kXattrMetacopy, own(meta)));
    if (n.src->payload && !n.src->payload->empty())
      CFS_TRY(set_xattr(n, kXattrRedirect, own("/" + *n.src->payload)));
  }
  if (n.type() == S_IFCHR && n.rdev == 0) {
    // An overlay whiteout in the input: store it escaped, as a regular file
    // that the mounted image presents as a whiteout to an overlay above it.
    n.size = 0;
    n.mode = S_IFREG | (n.mode & ~static_cast<uint32_t>(S_IFMT));
    n.content = nullptr;
    CFS_TRY(set_xattr(n, kXattrEscWhiteout, ""));
    CFS_TRY(set_xattr(n, kXattrUserWhiteout, ""));
    WNode& parent = nodes_[n.parent];
    CFS_TRY(set_xattr(parent, kXattrEscWhiteouts, ""));
    CFS_TRY(set_xattr(parent, kXattrUserWhiteouts, ""));
    if (version_ >= 1) {
      CFS_TRY(set_xattr(parent, kXattrEscOpaque, "x"));
      CFS_TRY(set_xattr(parent, kXattrUserOpaque, "x"));
    }
  }
  return {};
}

Status Writer::collect() {
  const Node* root = tree_.root();
  if (!root || !root->is_dir())
    return make_error(Errc::InvalidArgument, "the root is not a directory");
  nodes_.reserve(tree_.node_count() + 256);
  bool has_links = false;
  auto add = [&](const Node* src, uint32_t parent) {
    WNode& w = nodes_.emplace_back(&arena_);
    w.src = src;
    w.parent = parent;
    w.mode = src->mode;
    w.nlink = src->nlink;
    w.uid = src->uid;
    w.gid = src->gid;
    w.rdev = static_cast<uint32_t>(src->rdev);  // the format stores 32 bits
    w.size = src->size;
    w.mtime_sec = src->mtime_sec;
    w.mtime_nsec = src->mtime_nsec;
    if (src->is_reg() && src->content) w.content = &*src->content;
    if (src->type() == S_IFLNK && src->payload) {
      w.symlink = &*src->payload;
      w.size = src->payload->size();  // a symlink's size is its target's length
    }
    // Room for the metacopy and redirect of an external file too: a vector
    // grown in the monotonic arena leaves its old buffer behind.
    w.xattrs.reserve(src->xattrs.size() + (w.external() ? 2 : 0));
    for (auto& x : src->xattrs) w.xattrs.push_back({x.key, x.value});
  };
  add(root, 0);
  // Parents are processed before their children (breadth-first here; the
  // per-inode sequence of xattr changes is the same as the C depth-first walk).
  for (uint32_t i = 0; i < nodes_.size(); i++) {
    const Node* src = nodes_[i].src;
    if (!valid_file_type(src->mode))
      return errorf(Errc::InvalidArgument, "'{}' has an invalid file mode {:o}", src->path(),
                    src->mode);
    if (src->type() == S_IFLNK && (!src->payload || src->payload->empty()))
      return errorf(Errc::InvalidArgument, "symlink '{}' has no target", src->path());
    if (nodes_[i].external() && chunking(src->size).count > kMaxChunks)
      return errorf(Errc::TooBig, "'{}' is too big ({} bytes)", src->path(), src->size);
    CFS_TRY(add_overlay_xattrs(i));
    if (!src->is_dir()) {
      if (!src->children.empty())
        return errorf(Errc::InvalidArgument, "'{}' has children but is not a directory",
                      src->path());
      continue;
    }
    nodes_[i].first_child = static_cast<uint32_t>(nodes_.size());
    for (const Node* c : src->children) {
      if (c->link_to)
        has_links = true;
      else
        add(c, i);
    }
  }
  if (has_links) {
    for (auto& w : nodes_)
      for (const Node* c : w.src->children)
        if (c->link_to) link_targets_.emplace(c->target(), UINT32_MAX);
    for (uint32_t i = 0; i < nodes_.size(); i++)
      if (auto it = link_targets_.find(nodes_[i].src); it != link_targets_.end()) it->second = i;
  }
  // Directory entries, with "." and ".." sorted in among the names.
  for (uint32_t i = 0; i < nodes_.size(); i++) {
    WNode& w = nodes_[i];
    if (!w.src->is_dir()) continue;
    w.dirents.reserve(w.src->children.size() + 2);
    bool dot_done = false, dotdot_done = false;
    auto add_dots = [&](std::string_view before) {
      if (!dot_done && std::string_view(".") < before) {
        w.dirents.push_back({".", i, true});
        dot_done = true;
      }
      if (!dotdot_done && std::string_view("..") < before) {
        w.dirents.push_back({"..", w.parent, true});
        dotdot_done = true;
      }
    };
    uint32_t next_child = w.first_child;
    for (const Node* c : w.src->children) {
      add_dots(c->name);
      if (!c->link_to) {
        w.dirents.push_back({c->name, next_child++, false});
        continue;
      }
      const Node* t = c->target();
      auto it = link_targets_.find(t);
      if (it == link_targets_.end() || it->second == UINT32_MAX)
        return errorf(Errc::InvalidArgument, "hardlink '{}' points outside the tree", c->path());
      if (t->is_dir())
        return errorf(Errc::InvalidArgument, "hardlink '{}' points to a directory", c->path());
      w.dirents.push_back({c->name, it->second, true});
    }
    add_dots("\xff\xff\xff");
    if (!dot_done) w.dirents.push_back({".", i, true});
    if (!dotdot_done) w.dirents.push_back({"..", w.parent, true});
  }
  return {};
}

void Writer::add_stubs() {
  // Adjacent literals in CFS_ROW are concatenated on purpose ("0" "1" -> "01").
  // NOLINTBEGIN(bugprone-suspicious-missing-comma)
  static const std::string_view names[256] = {
#define CFS_ROW(a)                                                                           \
  a "0", a "1", a "2", a "3", a "4", a "5", a "6", a "7", a "8", a "9", a "a", a "b", a "c", \
      a "d", a "e", a "f"
      CFS_ROW("0"), CFS_ROW("1"), CFS_ROW("2"), CFS_ROW("3"), CFS_ROW("4"), CFS_ROW("5"),
      CFS_ROW("6"), CFS_ROW("7"), CFS_ROW("8"), CFS_ROW("9"), CFS_ROW("a"), CFS_ROW("b"),
      CFS_ROW("c"), CFS_ROW("d"), CFS_ROW("e"), CFS_ROW("f")
#undef CFS_ROW
  };
  // NOLINTEND(bugprone-suspicious-missing-comma)
  const WNode& root = nodes_[0];
  std::string_view selinux;
  bool has_selinux = false;
  for (auto& x : root.xattrs) {
    if (x.key == kXattrSelinux) {
      selinux = x.value;
      has_selinux = true;
    }
  }
  const Node* src_root = root.src;
  std::vector<WDirent> stubs;
  for (auto name : names) {
    if (src_root->find_child(name)) continue;
    uint32_t idx = static_cast<uint32_t>(nodes_.size());
    WNode& s = nodes_.emplace_back(&arena_);
    s.mode = S_IFCHR | 0644;
    s.uid = nodes_[0].uid;
    s.gid = nodes_[0].gid;
    s.mtime_sec = nodes_[0].mtime_sec;
    s.mtime_nsec = nodes_[0].mtime_nsec;
    if (has_selinux) s.xattrs.push_back({kXattrSelinux, selinux});
    stubs.push_back({name, idx, false});
  }
  auto& d = nodes_[0].dirents;
  std::pmr::vector<WDirent> merged(&arena_);
  merged.reserve(d.size() + stubs.size());
  std::merge(d.begin(), d.end(), stubs.begin(), stubs.end(), std::back_inserter(merged),
             [](const WDirent& a, const WDirent& b) { return a.name < b.name; });
  d = std::move(merged);
}

void Writer::number_inodes() {
  order_.reserve(nodes_.size());
  order_.push_back(0);
  min_mtime_sec_ = nodes_[0].mtime_sec;
  min_mtime_nsec_ = nodes_[0].mtime_nsec;
  for (size_t q = 0; q < order_.size(); q++) {
    WNode& n = nodes_[order_[q]];
    if (n.type() == S_IFDIR) {
      uint32_t nlink = 2;
      for (auto& d : n.dirents) {
        if (d.link) continue;
        if (nodes_[d.target].type() == S_IFDIR) nlink++;
        order_.push_back(d.target);
      }
      n.nlink = nlink;
    }
    std::sort(n.xattrs.begin(), n.xattrs.end(),
              [](const WXattr& a, const WXattr& b) { return a.key < b.key; });
    if (n.mtime_sec < min_mtime_sec_ ||
        (n.mtime_sec == min_mtime_sec_ && n.mtime_nsec < min_mtime_nsec_)) {
      min_mtime_sec_ = n.mtime_sec;
      min_mtime_nsec_ = n.mtime_nsec;
    }
    n.ino = static_cast<uint32_t>(q);
    for (auto& x : n.xattrs)
      if (x.key == "system.posix_acl_access" || x.key == "system.posix_acl_default")
        has_acl_ = true;
  }
}

void Writer::compute_shared_xattrs() {
  size_t n_xattrs = 0;
  for (uint32_t i : order_) n_xattrs += nodes_[i].xattrs.size();
  XattrTable table(n_xattrs);
  table.add_all([&](auto&& f) {
    for (uint32_t i : order_)
      for (auto& x : nodes_[i].xattrs) f(x);
  });
  auto& entries = table.entries();
  std::vector<uint32_t> multi;
  for (uint32_t e = 0; e < entries.size(); e++)
    if (entries[e].count > 1) multi.push_back(e);
  // The reference's "canonical" order: descending key, then longer value,
  // then descending value bytes.
  std::sort(multi.begin(), multi.end(), [&](uint32_t ia, uint32_t ib) {
    const auto& a = entries[ia];
    const auto& b = entries[ib];
    if (a.key != b.key) return a.key > b.key;
    if (a.value.size() != b.value.size()) return a.value.size() > b.value.size();
    return std::memcmp(a.value.data(), b.value.data(), a.value.size()) > 0;
  });
  uint64_t offset = 0;
  for (uint32_t e : multi) {
    entries[e].offset = static_cast<int64_t>(offset);
    WXattr x{entries[e].key, entries[e].value};
    shared_.push_back(x);
    offset += xattr_entry_size(x);
  }
  shared_size_ = offset;
  for (uint32_t i : order_) {
    unsigned n_shared = 0;
    for (auto& x : nodes_[i].xattrs) {
      int64_t off = entries[x.entry].offset;
      if (off >= 0 && n_shared < kXattrLongPrefix) {
        x.shared_offset = off;
        n_shared++;
      } else {
        x.shared_offset = -1;
      }
    }
  }
}

void Writer::compute_size(WNode& n) {
  n.n_blocks = 0;
  n.tail = 0;
  switch (n.type()) {
    case S_IFDIR: {
      auto split = detail::split_dirents(n.dirents.size(),
                                         [&](size_t i) { return n.dirents[i].name.size(); });
      n.n_blocks = split.n_blocks;
      n.tail = split.tail;
      break;
    }
    case S_IFLNK: n.tail = static_cast<uint32_t>(n.symlink->size()); break;
    case S_IFREG:
      if (n.size == 0) break;
      if (n.content) {
        n.n_blocks = static_cast<uint32_t>(n.size / kBlockSize);
        n.tail = static_cast<uint32_t>(n.size % kBlockSize);
        if (n.tail > kBlockSize / 2) {
          n.n_blocks++;
          n.tail = 0;
        }
      } else {
        n.tail = static_cast<uint32_t>(chunking(n.size).count * sizeof(uint32_t));
      }
      break;
    default: break;
  }
}

// Padding before an inode so that its inline tail does not straddle a block
// boundary; may move the tail into a data block instead.
uint64_t Writer::tail_padding(WNode& n, uint64_t pos, size_t inode_size) {
  uint64_t non_tail = inode_size + n.xattr_size;
  uint64_t total = non_tail + n.tail;
  if (n.type() == S_IFLNK) {
    // Symlink inode and target stay in one block if they fit; the check uses
    // the size before a too-long target moves out (as the reference does).
    if (total / kBlockSize > 0) {
      n.n_blocks++;
      n.tail = 0;
    }
    if (pos / kBlockSize != (pos + total - 1) / kBlockSize) return round_up(pos, kBlockSize) - pos;
    return 0;
  }
  uint64_t rem = kBlockSize - ((pos + non_tail) % kBlockSize);
  if (rem < n.tail) {
    uint64_t extra = round_up(rem, kSlotSize);
    rem = kBlockSize - ((pos + non_tail + extra) % kBlockSize);
    if (n.tail <= rem) return extra;
    n.n_blocks++;
    n.tail = 0;
    return round_up(pos, kBlockSize) - pos;
  }
  return 0;
}

Status Writer::layout() {
  uint64_t pos = kSuperOffset + sizeof(SuperBlock);
  for (uint32_t i : order_) {
    WNode& n = nodes_[i];
    compute_size(n);
    uint64_t size = n.type() == S_IFDIR ? uint64_t{n.n_blocks} * kBlockSize + n.tail : n.size;
    n.compact = n.mtime_sec == min_mtime_sec_ && n.mtime_nsec == min_mtime_nsec_ &&
                n.nlink <= UINT16_MAX && n.uid <= UINT16_MAX && n.gid <= UINT16_MAX &&
                size <= UINT32_MAX;
    size_t inode_size = n.compact ? sizeof(InodeCompact) : sizeof(InodeExtended);
    size_t n_shared = 0, inline_size = 0;
    for (auto& x : n.xattrs) {
      if (x.shared_offset >= 0)
        n_shared++;
      else
        inline_size += xattr_entry_size(x);
    }
    n.xattr_size = n.xattrs.empty()
                       ? 0
                       : static_cast<uint32_t>(
                             round_up(sizeof(XattrIbodyHeader) + 4 * n_shared + inline_size, 4));
    if (n.xattr_size && (n.xattr_size - sizeof(XattrIbodyHeader)) / 4 + 1 > UINT16_MAX)
      return errorf(Errc::TooBig, "too many xattrs on '{}'", n.src ? n.src->path() : "stub");
    uint64_t aligned = round_up(pos, kSlotSize);
    n.ipad = static_cast<uint32_t>(aligned - pos);
    pos = aligned;
    uint64_t extra = tail_padding(n, pos, inode_size);
    n.ipad += static_cast<uint32_t>(extra);
    pos += extra;
    n.isize = static_cast<uint32_t>(inode_size + n.xattr_size + n.tail);
    n_data_blocks_ += n.n_blocks;
    n.nid = pos / kSlotSize;
    pos += n.isize;
  }
  inodes_end_ = round_up(pos, kSlotSize);
  if (nodes_[0].nid >= UINT16_MAX)
    return make_error(Errc::TooBig, "the root inode does not fit the superblock's 16-bit nid");
  return {};
}

void Writer::write_xattr_entry(Out& out, const WXattr& x) {
  std::string_view suffix;
  uint8_t index = xattr_index(x.key, &suffix);
  detail::write_xattr_entry(out, index, suffix, x.value);
}

void Writer::write_dirents(Out& out, const WNode& n, bool blocks, bool tail) {
  auto name_len = [&](size_t i) { return n.dirents[i].name.size(); };
  detail::DirSplit split{n.n_blocks, n.tail};
  detail::for_each_dir_chunk(
      n.dirents.size(), name_len, split, [&](size_t first, size_t count, bool is_tail) {
        if (is_tail ? !tail : !blocks) return;
        auto entry = [&](size_t i) {
          const WDirent& d = n.dirents[first + i];
          const WNode& t = nodes_[d.target];
          return detail::DirentInfo{d.name, t.nid, detail::dirent_file_type(t.mode)};
        };
        detail::write_dirent_chunk(out, count, entry, is_tail ? 1 : kBlockSize);
      });
}

void Writer::write_inode(Out& out, WNode& n) {
  out.pad(n.ipad);
  uint32_t type = n.type();
  uint16_t layout = n.tail > 0 ? kLayoutFlatInline : kLayoutFlatPlain;
  uint64_t size = 0;
  uint32_t chunk_format = 0;
  uint64_t chunk_count = 0;
  if (type == S_IFDIR) {
    size = uint64_t{n.n_blocks} * kBlockSize + n.tail;
  } else if (type == S_IFREG) {
    size = n.size;
    if (n.external()) {
      ChunkInfo c = chunking(n.size);
      chunk_count = c.count;
      layout = kLayoutChunkBased;
      chunk_format = c.bits - kBlockBits;
    }
  } else if (type == S_IFLNK) {
    size = n.n_blocks == 0 ? n.tail : n.symlink->size();
  }
  uint32_t i_u = 0;
  if (type == S_IFCHR || type == S_IFBLK) {
    i_u = n.rdev;
  } else if (type == S_IFDIR || type == S_IFREG || type == S_IFLNK) {
    if (n.n_blocks > 0) {
      i_u = static_cast<uint32_t>(current_end_ / kBlockSize);
      current_end_ += uint64_t{n.n_blocks} * kBlockSize;
    }
    // The chunk format shares i_u's low 16 bits with a block address (a union
    // in the reference), so a chunk map moved to a block keeps the high bits.
    if (layout == kLayoutChunkBased) i_u = (i_u & 0xFFFF0000u) | (chunk_format & 0xFFFF);
  }
  uint16_t format = static_cast<uint16_t>(layout << 1 | (n.compact ? 0 : 1));
  uint16_t icount = detail::xattr_icount(n.xattr_size);
  if (n.compact) {
    InodeCompact i{};
    i.i_format = format;
    i.i_xattr_icount = icount;
    i.i_mode = static_cast<uint16_t>(n.mode);
    i.i_nlink = static_cast<uint16_t>(n.nlink);
    i.i_size = static_cast<uint32_t>(size);
    i.i_u = i_u;
    i.i_ino = n.ino;
    i.i_uid = static_cast<uint16_t>(n.uid);
    i.i_gid = static_cast<uint16_t>(n.gid);
    out.put(i);
  } else {
    InodeExtended i{};
    i.i_format = format;
    i.i_xattr_icount = icount;
    i.i_mode = static_cast<uint16_t>(n.mode);
    i.i_size = size;
    i.i_u = i_u;
    i.i_ino = n.ino;
    i.i_uid = n.uid;
    i.i_gid = n.gid;
    i.i_mtime = static_cast<uint64_t>(n.mtime_sec);
    i.i_mtime_nsec = n.mtime_nsec;
    i.i_nlink = n.nlink;
    out.put(i);
  }
  if (n.xattr_size) {
    uint32_t filter = 0;
    unsigned n_shared = 0;
    for (auto& x : n.xattrs) {
      std::string_view suffix;
      uint8_t index = xattr_index(x.key, &suffix);
      filter |= detail::xattr_filter_bit(index, suffix);
      if (x.shared_offset >= 0) n_shared++;
    }
    detail::write_xattr_header(out, filter, static_cast<uint8_t>(n_shared));
    for (auto& x : n.xattrs) {
      if (x.shared_offset < 0) continue;
      // Shared ids count 4-byte units from the start of xattr_blkaddr's block.
      le32 id = static_cast<uint32_t>((inodes_end_ % kBlockSize + x.shared_offset) / 4);
      out.put(id);
    }
    for (auto& x : n.xattrs)
      if (x.shared_offset < 0) write_xattr_entry(out, x);
  }
  if (type == S_IFDIR) {
    write_dirents(out, n, false, true);
  } else if (type == S_IFLNK) {
    if (n.n_blocks == 0) out.write(n.symlink->data(), n.symlink->size());
  } else if (type == S_IFREG && n.tail > 0) {
    if (n.content) {
      out.write(n.content->data() + n.size - n.tail, n.tail);
    } else {
      le32 null_addr = kNullAddr;
      for (uint64_t c = 0; c < chunk_count; c++) out.put(null_addr);
    }
  }
}

Status Writer::write(Out& out) {
  uint64_t data_start = round_up(inodes_end_ + shared_size_, kBlockSize);
  detail::SuperInfo si;
  si.composefs_version = version_;
  si.flags = has_acl_ ? kComposefsFlagHasAcl : 0;
  si.root_nid = nodes_[0].nid;
  si.inos = order_.size();
  si.build_time = static_cast<uint64_t>(min_mtime_sec_);
  si.build_time_nsec = min_mtime_nsec_;
  si.blocks = data_start / kBlockSize + n_data_blocks_;
  si.xattr_blkaddr = static_cast<uint32_t>(inodes_end_ / kBlockSize);
  detail::write_header_and_superblock(out, si);

  current_end_ = data_start;
  for (uint32_t i : order_) write_inode(out, nodes_[i]);
  out.align(kSlotSize);
  if (out.pos() != inodes_end_) return make_error(Errc::Io, "internal error: inode table size");
  for (auto& x : shared_) write_xattr_entry(out, x);
  out.align(kBlockSize);
  if (out.pos() != data_start) return make_error(Errc::Io, "internal error: data start");

  for (uint32_t i : order_) {
    const WNode& n = nodes_[i];
    if (n.type() == S_IFDIR) write_dirents(out, n, true, false);
    if (n.n_blocks == 0) continue;
    if (n.type() == S_IFREG && n.external()) {
      // A chunk map that did not fit in the inode: one block of null chunks.
      le32 null_addr = kNullAddr;
      for (uint32_t c = 0; c < kBlockSize / 4; c++) out.put(null_addr);
    } else if (n.type() == S_IFREG) {
      out.write(n.content->data(), std::min<uint64_t>(n.size, kBlockSize));
      out.align(kBlockSize);
    } else if (n.type() == S_IFLNK) {
      out.write(n.symlink->data(), std::min<uint64_t>(n.symlink->size(), kBlockSize));
      out.align(kBlockSize);
    }
  }
  if (out.pos() != current_end_ || out.pos() != data_start + n_data_blocks_ * kBlockSize)
    return make_error(Errc::Io, "internal error: data block layout");
  return out.finish();
}

Result<uint32_t> Writer::run(const Sink& sink) {
  if (!tree_.root()) return make_error(Errc::InvalidArgument, "empty tree");
  CFS_TRY(resolve_version());
  CFS_TRY(collect());
  CFS_TRY(set_xattr(nodes_[0], kXattrOpaque, "y"));
  add_stubs();
  number_inodes();
  compute_shared_xattrs();
  CFS_TRY(layout());
  Out out(sink);
  CFS_TRY(write(out));
  return version_;
}

}  // namespace

Result<uint32_t> write_image(const Tree& tree, const WriteOptions& opts, const Sink& sink) {
  if (opts.min_version > kMaxFormatVersion || opts.max_version > kMaxFormatVersion)
    return errorf(Errc::InvalidArgument, "unsupported format version (at most {})",
                  kMaxFormatVersion);
  if (opts.min_version == 2) {
    CFS_TRY(detail::write_image_v2(tree, sink));
    return 2;
  }
  WriteOptions c = opts;
  c.max_version = std::min<uint32_t>(c.max_version, 1);
  Writer w(tree, c);
  return w.run(sink);
}

Result<std::vector<uint8_t>> build_image(const Tree& tree, const WriteOptions& opts) {
  std::vector<uint8_t> image;
  CFS_TRY(write_image(tree, opts, [&](std::span<const uint8_t> b) -> Status {
    image.insert(image.end(), b.begin(), b.end());
    return {};
  }));
  return image;
}

Result<std::vector<uint8_t>> build_image(const Tree& tree, uint32_t format_version) {
  return build_image(tree, WriteOptions::for_format(format_version));
}

}  // namespace cfs::erofs
