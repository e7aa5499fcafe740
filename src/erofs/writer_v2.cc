// SPDX-License-Identifier: Apache-2.0
// composefs-rs's own image layout (its FormatVersion::V2, all it wrote
// before 0.9 and what older bootc deployments boot), reproduced decision by
// decision from its writer, since kernel command lines name these images by
// digest:
//   1. inodes in depth-first pre-order: a directory, then its entries in
//      name order, a subdirectory's whole subtree before the next entry; an
//      inode with several names where the first of them is met;
//   2. every inode extended (64 bytes), i_ino = nid, mtimes in whole
//      seconds, build time 0, header flags 0; no root stubs, no opaque=y,
//      whiteouts (chr 0/0) stored as they are;
//   3. an inode's xattrs: metacopy and redirect (external files), then its
//      own in name order, trusted.overlay.* renamed in place to
//      trusted.overlay.overlay.*; a (name, value) on two inodes is shared,
//      with no per-inode cap; the shared table ascends by (name index,
//      suffix, value) and ids count 4-byte units from byte 0;
//   4. an inline tail that would cross into another block pushes its inode
//      along so that the tail starts in the next block; then the shared
//      table; then directory blocks in inode order.
// What composefs-rs's own reader refuses in these images (inline files over
// 512 bytes, symlink targets over 1024) is refused here rather than written,
// and so are files over 8 TiB, whose chunk map composefs-rs cuts short.
#include <algorithm>
#include <memory_resource>
#include <unordered_map>

#include "composefs-cpp/erofs/encode.h"
#include "composefs-cpp/erofs/format.h"

namespace cfs::erofs::detail {
namespace {

constexpr size_t kMaxInline = 512;     // composefs-rs's MAX_INLINE_CONTENT
constexpr size_t kMaxSymlink = 1024;   // composefs-rs's SYMLINK_MAX
constexpr uint32_t kChunkFormat = 31;  // one chunk of 2^43 bytes, whatever the size
constexpr uint64_t kMaxSize = uint64_t{1} << (kBlockBits + kChunkFormat);
constexpr uint64_t kInodeSize = sizeof(InodeExtended);

struct X {
  std::string_view key;  // the name as stored (escaped)
  std::string_view suffix;
  std::string_view value;
  uint8_t index = 0;
  uint32_t entry = 0;  // in the XattrTable
};

struct Ent {
  std::string_view name;
  uint32_t ino;
};

struct Ino {
  const Node* node = nullptr;  // the inode's metadata (a hardlink's target)
  uint32_t parent = 0;
  uint32_t nlink = 1;
  uint32_t x_begin = 0, x_end = 0;  // xattrs_
  uint32_t d_begin = 0, d_end = 0;  // dirents_
  uint16_t layout = kLayoutFlatPlain;
  uint64_t size = 0;
  uint32_t rdev = 0;
  uint32_t inline_size = 0;  // bytes stored after the xattrs
  bool chunk_word = false;   // the one chunk index (files with a digest)
  uint32_t n_blocks = 0;
  uint32_t filter = 0;
  uint32_t n_shared = 0;
  uint32_t xattr_size = 0;
  uint64_t pos = 0;    // of the inode
  uint64_t block = 0;  // of its data blocks

  uint32_t type() const { return node->mode & S_IFMT; }
};

class V2Writer {
 public:
  explicit V2Writer(const Tree& tree) : tree_(tree) {}
  Status run(const SinkFn& sink);

 private:
  Status collect();
  Result<uint32_t> new_inode(const Node* n, uint32_t parent);
  Status finish_dir(uint32_t ino, std::vector<Ent>& ents, uint32_t subdirs);
  Status add_xattrs(Ino& in);
  Status add_xattr(Ino& in, std::string_view key, std::string_view value);
  Status share();
  Status layout();
  Status write(Out& out);
  void write_inode(Out& out, const Ino& in);
  std::string_view own(std::string_view s) {
    char* p = static_cast<char*>(arena_.allocate(s.size() ? s.size() : 1, 1));
    std::memcpy(p, s.data(), s.size());
    return {p, s.size()};
  }
  std::string_view own_joined(std::string_view a, std::string_view b) {
    char* p = static_cast<char*>(arena_.allocate(a.size() + b.size() + 1, 1));
    std::memcpy(p, a.data(), a.size());
    std::memcpy(p + a.size(), b.data(), b.size());
    return {p, a.size() + b.size()};
  }
  uint64_t nid(uint32_t ino) const { return inodes_[ino].pos / kSlotSize; }

  const Tree& tree_;
  std::pmr::monotonic_buffer_resource arena_{1 << 16};
  std::vector<Ino> inodes_;
  std::vector<X> xattrs_;
  std::vector<Ent> dirents_;
  std::vector<uint32_t> shared_;          // table entries, in table order
  std::vector<int64_t> shared_offset_;    // by table entry; -1: not shared
  std::vector<XattrTable::Entry> table_;  // (key, value) pairs and their counts
  uint64_t inodes_end_ = 0;
  uint64_t end_ = 0;
};

Result<uint32_t> V2Writer::new_inode(const Node* n, uint32_t parent) {
  if (!valid_file_type(n->mode))
    return errorf(Errc::InvalidArgument, "'{}' has an invalid file mode {:o}", n->path(), n->mode);
  Ino in;
  in.node = n;
  in.parent = parent;
  switch (n->type()) {
    case S_IFDIR: break;  // laid out when its entries are known
    case S_IFREG:
      if (n->content) {
        if (n->content->size() > kMaxInline)
          return errorf(Errc::TooBig,
                        "'{}': {} bytes of inline content; format 2 holds at most {} (composefs-rs "
                        "reads no more)",
                        n->path(), n->content->size(), kMaxInline);
        in.layout = kLayoutFlatInline;
        in.size = n->content->size();
        in.inline_size = static_cast<uint32_t>(in.size);
      } else if (n->size > 0) {
        // One chunk map entry whatever the size: beyond one chunk, the map
        // composefs-rs writes is cut short (a corrupt image), so refuse.
        if (n->size > kMaxSize)
          return errorf(Errc::TooBig,
                        "'{}' is {} bytes; format 2 holds files of at most {} bytes (one chunk)",
                        n->path(), n->size, kMaxSize);
        in.layout = kLayoutChunkBased;
        in.size = n->size;
        // composefs-rs writes the chunk index only for files it knows the
        // digest of; the others' data is never read from the image.
        in.chunk_word = n->digest.has_value();
        in.inline_size = in.chunk_word ? 4 : 0;
      }
      break;
    case S_IFLNK:
      if (!n->payload || n->payload->empty())
        return errorf(Errc::InvalidArgument, "symlink '{}' has no target", n->path());
      if (n->payload->size() > kMaxSymlink)
        return errorf(Errc::TooBig,
                      "symlink '{}': a target of {} bytes; format 2 holds at most {} (composefs-rs "
                      "reads no more)",
                      n->path(), n->payload->size(), kMaxSymlink);
      in.layout = kLayoutFlatInline;
      in.size = n->payload->size();
      in.inline_size = static_cast<uint32_t>(in.size);
      break;
    case S_IFCHR:
    case S_IFBLK:
      if (n->rdev > UINT32_MAX)
        return errorf(Errc::InvalidArgument, "'{}': device number {:#x} does not fit 32 bits",
                      n->path(), n->rdev);
      in.rdev = static_cast<uint32_t>(n->rdev);
      break;
    default: break;
  }
  if (!n->is_dir() && !n->children.empty())
    return errorf(Errc::InvalidArgument, "'{}' has children but is not a directory", n->path());
  if (inodes_.size() >= UINT32_MAX) return make_error(Errc::TooBig, "too many inodes");
  inodes_.push_back(in);
  return static_cast<uint32_t>(inodes_.size() - 1);
}

Status V2Writer::finish_dir(uint32_t ino, std::vector<Ent>& ents, uint32_t subdirs) {
  std::sort(ents.begin(), ents.end(), [](const Ent& a, const Ent& b) { return a.name < b.name; });
  for (size_t i = 1; i < ents.size(); i++)
    if (ents[i].name == ents[i - 1].name)
      return errorf(Errc::InvalidArgument, "'{}' has two entries named '{}'",
                    inodes_[ino].node->path(), ents[i].name);
  Ino& in = inodes_[ino];
  in.d_begin = static_cast<uint32_t>(dirents_.size());
  dirents_.insert(dirents_.end(), ents.begin(), ents.end());
  in.d_end = static_cast<uint32_t>(dirents_.size());
  in.nlink = 2 + subdirs;
  auto split = split_dirents(ents.size(), [&](size_t i) { return ents[i].name.size(); });
  in.n_blocks = split.n_blocks;
  in.size = uint64_t{split.n_blocks} * kBlockSize + split.tail;
  in.inline_size = split.tail;
  in.layout = split.tail ? kLayoutFlatInline : kLayoutFlatPlain;
  return {};
}

Status V2Writer::collect() {
  const Node* root = tree_.root();
  if (!root || !root->is_dir())
    return make_error(Errc::InvalidArgument, "the root is not a directory");
  // Inodes with several names, found first: each is written once, where
  // its first name is met.
  struct Linked {
    uint32_t ino = UINT32_MAX;
    uint32_t refs = 0;
    bool primary = false;  // its own entry is in the tree
  };
  std::unordered_map<const Node*, Linked> linked;
  {
    std::vector<const Node*> stack{root};
    while (!stack.empty()) {
      const Node* n = stack.back();
      stack.pop_back();
      for (const Node* c : n->children) {
        if (c->link_to)
          linked.emplace(c->target(), Linked{});
        else if (c->is_dir())
          stack.push_back(c);
      }
    }
  }
  inodes_.reserve(tree_.node_count());
  CFS_TRY(new_inode(root, 0));
  struct Frame {
    const Node* dir;
    uint32_t ino;
    size_t next = 0;
    uint32_t subdirs = 0;
    std::vector<Ent> ents;
  };
  std::vector<Frame> stack;
  stack.push_back({root, 0, 0, 0, {{".", 0}, {"..", 0}}});
  while (!stack.empty()) {
    Frame& f = stack.back();
    if (f.next == f.dir->children.size()) {
      CFS_TRY(finish_dir(f.ino, f.ents, f.subdirs));
      stack.pop_back();
      continue;
    }
    const Node* c = f.dir->children[f.next++];
    const Node* t = c->link_to ? c->target() : c;
    if (t->is_dir()) {
      if (c->link_to)
        return errorf(Errc::InvalidArgument, "hardlink '{}' points to a directory", c->path());
      if (stack.size() >= kMaxDepth)
        return errorf(Errc::TooBig, "'{}': directories nested deeper than {} levels", c->path(),
                      kMaxDepth);
      CFS_TRY_ASSIGN(uint32_t ino, new_inode(t, f.ino));
      f.ents.push_back({c->name, ino});
      f.subdirs++;
      stack.push_back({t, ino, 0, 0, {{".", ino}, {"..", f.ino}}});
      continue;
    }
    uint32_t ino;
    if (auto it = linked.find(t); it != linked.end()) {
      Linked& l = it->second;
      if (l.ino == UINT32_MAX) {
        CFS_TRY_ASSIGN(l.ino, new_inode(t, f.ino));
      }
      l.refs++;
      if (!c->link_to) l.primary = true;
      ino = l.ino;
    } else {
      CFS_TRY_ASSIGN(ino, new_inode(t, f.ino));
    }
    f.ents.push_back({c->name, ino});
  }
  for (auto& [node, l] : linked) {
    if (!l.primary)
      return errorf(Errc::InvalidArgument, "a hardlink to '{}' points outside the tree",
                    node->path());
    inodes_[l.ino].nlink = l.refs;
    // An overlay whiteout stands for an absent name: it cannot have two.
    if (node->type() == S_IFCHR && node->rdev == 0 && l.refs > 1)
      return errorf(Errc::InvalidArgument, "whiteout '{}' has {} names (hardlinked)", node->path(),
                    l.refs);
  }
  for (auto& in : inodes_) CFS_TRY(add_xattrs(in));
  return {};
}

Status V2Writer::add_xattr(Ino& in, std::string_view key, std::string_view value) {
  X x;
  x.key = key;
  x.value = value;
  x.index = xattr_index(key, /*with_lustre=*/true, &x.suffix);
  if (x.suffix.size() > UINT8_MAX || value.size() > UINT16_MAX)
    return errorf(Errc::TooBig, "'{}': xattr '{}' is too long for EROFS", in.node->path(), key);
  in.filter |= xattr_filter_bit(x.index, x.suffix);
  xattrs_.push_back(x);
  return {};
}

Status V2Writer::add_xattrs(Ino& in) {
  const Node* n = in.node;
  in.x_begin = static_cast<uint32_t>(xattrs_.size());
  if (in.layout == kLayoutChunkBased) {
    // The overlay xattrs come first.  Without a digest composefs-rs writes
    // an empty metacopy (no verity), and a redirect when the object's path
    // is known.
    if (n->digest) {
      auto d = n->digest;
      CFS_TRY(add_xattr(in, kXattrMetacopy,
                        own(metacopy_value(d->bytes(), static_cast<uint8_t>(d->alg())))));
      CFS_TRY(add_xattr(in, kXattrRedirect, own_joined("/", d->object_path())));
    } else {
      CFS_TRY(add_xattr(in, kXattrMetacopy, ""));
      if (n->payload && !n->payload->empty())
        CFS_TRY(add_xattr(in, kXattrRedirect, own_joined("/", *n->payload)));
    }
  }
  std::vector<const Xattr*> sorted;
  sorted.reserve(n->xattrs.size());
  for (const Xattr& x : n->xattrs) sorted.push_back(&x);
  std::sort(sorted.begin(), sorted.end(),
            [](const Xattr* a, const Xattr* b) { return a->key < b->key; });
  for (const Xattr* x : sorted) {
    std::string_view key = x->key;
    if (key.starts_with(kOverlayPrefix))
      key =
          own(std::string(kOverlayEscapedPrefix) + std::string(key.substr(kOverlayPrefix.size())));
    CFS_TRY(add_xattr(in, key, x->value));
  }
  in.x_end = static_cast<uint32_t>(xattrs_.size());
  return {};
}

Status V2Writer::share() {
  XattrTable table(xattrs_.size());
  table.add_all([&](auto&& f) {
    for (auto& x : xattrs_) f(x);
  });
  table_ = std::move(table.entries());
  // A pair on two inodes is shared (each inode names a key once).
  struct Shared {
    uint32_t entry;
    uint8_t index;
    std::string_view suffix;
  };
  std::vector<Shared> multi;
  for (uint32_t e = 0; e < table_.size(); e++) {
    if (table_[e].count < 2) continue;
    Shared s{e, 0, {}};
    s.index = xattr_index(table_[e].key, /*with_lustre=*/true, &s.suffix);
    multi.push_back(s);
  }
  std::sort(multi.begin(), multi.end(), [&](const Shared& a, const Shared& b) {
    if (a.index != b.index) return a.index < b.index;
    if (a.suffix != b.suffix) return a.suffix < b.suffix;
    return table_[a.entry].value < table_[b.entry].value;
  });
  shared_offset_.assign(table_.size(), -1);
  for (const Shared& s : multi) {
    shared_offset_[s.entry] = 0;  // placed by layout()
    shared_.push_back(s.entry);
  }
  for (auto& in : inodes_) {
    if (in.x_begin == in.x_end) continue;
    uint64_t size = sizeof(XattrIbodyHeader);
    for (uint32_t i = in.x_begin; i < in.x_end; i++) {
      const X& x = xattrs_[i];
      if (shared_offset_[x.entry] >= 0) {
        in.n_shared++;
        size += 4;
      } else {
        size += xattr_entry_size(x.suffix, x.value.size());
      }
    }
    if (in.n_shared > UINT8_MAX)
      return errorf(Errc::TooBig, "'{}' has {} shared xattrs; an inode holds at most {}",
                    in.node->path(), in.n_shared, UINT8_MAX);
    if ((size - sizeof(XattrIbodyHeader)) / 4 + 1 > UINT16_MAX)
      return errorf(Errc::TooBig, "too many xattrs on '{}'", in.node->path());
    in.xattr_size = static_cast<uint32_t>(size);
  }
  return {};
}

Status V2Writer::layout() {
  uint64_t pos = kSuperOffset + sizeof(SuperBlock);
  for (auto& in : inodes_) {
    pos = round_up(pos, kSlotSize);
    uint64_t meta = kInodeSize + in.xattr_size;
    if (in.layout == kLayoutFlatInline) {
      // composefs-rs's rule: if the inode's last metadata byte and the byte
      // after the tail are in different blocks, skip to just past the next
      // block boundary (a tail ending exactly at a boundary moves too).
      uint64_t last_meta = pos + meta - 1;
      uint64_t tail_end = pos + meta + in.size % kBlockSize;
      if (last_meta / kBlockSize != tail_end / kBlockSize) {
        pos += kBlockSize - last_meta % kBlockSize;
        pos = round_up(pos, kSlotSize);
      }
      // The kernel reads inline data only from within one block.
      if ((pos + meta) % kBlockSize + in.inline_size > kBlockSize)
        return errorf(Errc::TooBig,
                      "'{}': its inode, {} bytes of xattrs and {} bytes of inline data do not fit "
                      "one block",
                      in.node->path(), in.xattr_size, in.inline_size);
    }
    in.pos = pos;
    pos += meta + in.inline_size;
  }
  pos = round_up(pos, kSlotSize);
  inodes_end_ = pos;
  for (uint32_t e : shared_) {
    shared_offset_[e] = static_cast<int64_t>(pos);
    std::string_view suffix;
    xattr_index(table_[e].key, true, &suffix);
    pos += xattr_entry_size(suffix, table_[e].value.size());
  }
  if (pos / 4 > UINT32_MAX)
    return make_error(Errc::TooBig, "the shared xattrs lie beyond 16 GiB, out of reach of ids");
  pos = round_up(pos, kBlockSize);
  for (auto& in : inodes_) {
    in.block = pos;
    pos += uint64_t{in.n_blocks} * kBlockSize;
  }
  end_ = pos;
  if (nid(0) > UINT16_MAX)
    return make_error(Errc::TooBig, "the root inode does not fit the superblock's 16-bit nid");
  if (inodes_end_ / kSlotSize > UINT32_MAX || end_ / kBlockSize > UINT32_MAX)
    return make_error(Errc::TooBig, "the image is too large for EROFS's 32-bit addresses");
  return {};
}

void V2Writer::write_inode(Out& out, const Ino& in) {
  out.pad(in.pos - out.pos());
  uint32_t type = in.type();
  uint32_t i_u = 0;
  if (type == S_IFCHR || type == S_IFBLK)
    i_u = in.rdev;
  else if (in.layout == kLayoutChunkBased)
    i_u = kChunkFormat;
  else if (type == S_IFDIR && in.n_blocks > 0)
    i_u = static_cast<uint32_t>(in.block / kBlockSize);
  InodeExtended e{};
  e.i_format = static_cast<uint16_t>(in.layout << 1 | 1);
  e.i_xattr_icount = xattr_icount(in.xattr_size);
  e.i_mode = static_cast<uint16_t>(type | (in.node->mode & 07777));
  e.i_size = in.size;
  e.i_u = i_u;
  e.i_ino = static_cast<uint32_t>(in.pos / kSlotSize);
  e.i_uid = in.node->uid;
  e.i_gid = in.node->gid;
  e.i_mtime = static_cast<uint64_t>(in.node->mtime_sec);
  e.i_mtime_nsec = 0;
  e.i_nlink = in.nlink;
  out.put(e);
  if (in.xattr_size) {
    write_xattr_header(out, in.filter, static_cast<uint8_t>(in.n_shared));
    for (uint32_t i = in.x_begin; i < in.x_end; i++) {
      int64_t off = shared_offset_[xattrs_[i].entry];
      if (off < 0) continue;
      le32 id = static_cast<uint32_t>(off / 4);
      out.put(id);
    }
    for (uint32_t i = in.x_begin; i < in.x_end; i++) {
      const X& x = xattrs_[i];
      if (shared_offset_[x.entry] < 0) write_xattr_entry(out, x.index, x.suffix, x.value);
    }
  }
  switch (type) {
    case S_IFDIR: {
      size_t count = in.d_end - in.d_begin;
      const Ent* ents = dirents_.data() + in.d_begin;
      auto name_len = [&](size_t i) { return ents[i].name.size(); };
      DirSplit split{in.n_blocks, in.inline_size};
      for_each_dir_chunk(count, name_len, split, [&](size_t first, size_t n, bool is_tail) {
        if (!is_tail) return;
        write_dirent_chunk(
            out, n,
            [&](size_t i) {
              const Ent& d = ents[first + i];
              return DirentInfo{d.name, nid(d.ino), dirent_file_type(inodes_[d.ino].node->mode)};
            },
            1);
      });
      break;
    }
    case S_IFLNK: out.write(*in.node->payload); break;
    case S_IFREG:
      if (in.layout == kLayoutFlatInline) {
        out.write(*in.node->content);
      } else if (in.chunk_word) {
        le32 null_addr = kNullAddr;
        out.put(null_addr);
      }
      break;
    default: break;
  }
}

Status V2Writer::write(Out& out) {
  SuperInfo si;
  si.composefs_version = 2;
  si.root_nid = nid(0);
  si.inos = inodes_.size();
  si.blocks = end_ / kBlockSize;
  write_header_and_superblock(out, si);
  for (const auto& in : inodes_) write_inode(out, in);
  out.align(kSlotSize);
  if (out.pos() != inodes_end_) return make_error(Errc::Io, "internal error: inode table size");
  for (uint32_t e : shared_) {
    std::string_view suffix;
    uint8_t index = xattr_index(table_[e].key, true, &suffix);
    write_xattr_entry(out, index, suffix, table_[e].value);
  }
  out.align(kBlockSize);
  for (const auto& in : inodes_) {
    if (in.n_blocks == 0) continue;
    if (out.pos() != in.block) return make_error(Errc::Io, "internal error: data block layout");
    size_t count = in.d_end - in.d_begin;
    const Ent* ents = dirents_.data() + in.d_begin;
    auto name_len = [&](size_t i) { return ents[i].name.size(); };
    DirSplit split{in.n_blocks, in.inline_size};
    for_each_dir_chunk(count, name_len, split, [&](size_t first, size_t n, bool is_tail) {
      if (is_tail) return;
      write_dirent_chunk(
          out, n,
          [&](size_t i) {
            const Ent& d = ents[first + i];
            return DirentInfo{d.name, nid(d.ino), dirent_file_type(inodes_[d.ino].node->mode)};
          },
          kBlockSize);
    });
  }
  if (out.pos() != end_) return make_error(Errc::Io, "internal error: image size");
  return out.finish();
}

Status V2Writer::run(const SinkFn& sink) {
  if (!tree_.root()) return make_error(Errc::InvalidArgument, "empty tree");
  CFS_TRY(collect());
  CFS_TRY(share());
  CFS_TRY(layout());
  Out out(sink);
  return write(out);
}

}  // namespace

Status write_image_v2(const Tree& tree, const SinkFn& sink) {
  V2Writer w(tree);
  return w.run(sink);
}

}  // namespace cfs::erofs::detail
