// SPDX-License-Identifier: Apache-2.0
// Every read from the image goes through a bounds check against the image
// size first; arithmetic on values from the image is done in 64 bits where
// it cannot overflow (offsets < 2^45 plus sizes checked against the image).
#include "composefs-cpp/erofs/reader.h"

#include <algorithm>
#include <cstring>
#include <unordered_map>
#include <unordered_set>

#include "composefs-cpp/erofs/format.h"

namespace cfs::erofs {

namespace {

// The C library's budget for xattrs it sets itself (not from a dump file).
constexpr size_t kInternalXattrBudget = UINT16_MAX;
// EROFS_NAME_LEN.
constexpr size_t kMaxDirentName = 255;

// Superblock field offsets, for error messages.
constexpr uint64_t kOffBlkszbits = kSuperOffset + offsetof(SuperBlock, blkszbits);
constexpr uint64_t kOffMetaBlkaddr = kSuperOffset + offsetof(SuperBlock, meta_blkaddr);
constexpr uint64_t kOffIncompat = kSuperOffset + offsetof(SuperBlock, feature_incompat);
// Incompatible features that only concern compressed files, chunk maps of
// other devices or long xattr prefixes: the rest of the image reads the same,
// and inodes or xattrs that use them are refused one by one.  48-bit layouts
// (0x80) and the metabox (0x100) change where metadata is, so they are not.
constexpr uint32_t kKnownIncompat = 0x7F;

uint16_t ld16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }
uint32_t ld32(const uint8_t* p) { return load_le32(p); }
uint64_t ld64(const uint8_t* p) { return ld32(p) | static_cast<uint64_t>(ld32(p + 4)) << 32; }

template <class... A>
tl::unexpected<Error> corrupt(uint64_t offset, fmt::format_string<A...> f, A&&... args) {
  return tl::unexpected(
      Error(Errc::Corrupt,
            fmt::format("{} (at offset {})", fmt::format(f, std::forward<A>(args)...), offset)));
}

template <class... A>
tl::unexpected<Error> unsupported(uint64_t offset, fmt::format_string<A...> f, A&&... args) {
  return tl::unexpected(
      Error(Errc::Unsupported,
            fmt::format("{} (at offset {})", fmt::format(f, std::forward<A>(args)...), offset)));
}

// Printable form of a name from the image for messages.
std::string printable(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f && c != '\\')
      out += static_cast<char>(c);
    else
      out += fmt::format("\\x{:02x}", c);
  }
  return out;
}

bool is_whiteout(const InodeInfo& i) { return i.type() == S_IFCHR && i.rdev == 0; }

// One directory block (or inline tail), validated once: the kernel's checks
// (first nameoff a multiple of 12 inside the block, names non-empty, within
// the block and at most 255 bytes), plus names without NUL or '/', which the
// kernel would not find by path and the C reader would truncate, and names
// in strictly increasing byte order: the kernel finds names by binary
// search, and the first entry of a hardlinked inode (in that order) is its
// primary, so an unsorted directory would read differently from what any
// lookup sees.
struct DirBlock {
  const uint8_t* p = nullptr;
  uint64_t offset = 0;
  uint32_t len = 0;
  uint32_t count = 0;
  uint32_t last_end = 0;  // end of the last entry's name

  uint32_t nameoff(uint32_t i) const { return ld16(p + i * sizeof(Dirent) + 8); }
  uint32_t name_end(uint32_t i) const { return i + 1 < count ? nameoff(i + 1) : last_end; }
  std::string_view name(uint32_t i) const {
    uint32_t b = nameoff(i);
    return {reinterpret_cast<const char*>(p) + b, name_end(i) - b};
  }
  DirEntry entry(uint32_t i) const {
    const uint8_t* d = p + i * sizeof(Dirent);
    return {name(i), ld64(d), d[10], offset + i * sizeof(Dirent)};
  }

  Status validate() {
    if (len < sizeof(Dirent))
      return corrupt(offset, "directory block of {} bytes has no room for an entry", len);
    uint32_t first = nameoff(0);
    if (first < sizeof(Dirent) || first % sizeof(Dirent) != 0 || first >= len)
      return corrupt(offset + 8, "invalid first name offset {} in a directory block of {} bytes",
                     first, len);
    count = first / sizeof(Dirent);
    uint32_t prev = 0;
    for (uint32_t i = 0; i < count; i++) {
      uint32_t off = nameoff(i);
      uint64_t field = offset + i * sizeof(Dirent) + 8;
      if (i > 0 && off <= prev)
        return corrupt(field, "directory entry {} has name offset {} not after the previous one {}",
                       i, off, prev);
      if (off >= len)
        return corrupt(field, "directory entry {} has name offset {} past the block end {}", i, off,
                       len);
      prev = off;
    }
    uint32_t lo = nameoff(count - 1);
    const void* nul = std::memchr(p + lo, 0, len - lo);
    last_end = nul ? static_cast<uint32_t>(static_cast<const uint8_t*>(nul) - p) : len;
    for (uint32_t i = 0; i < count; i++) {
      uint32_t b = nameoff(i), e = name_end(i);
      if (e <= b) return corrupt(offset + b, "directory entry {} has an empty name", i);
      if (e - b > kMaxDirentName)
        return corrupt(offset + b, "directory entry {} has a name of {} bytes (at most {})", i,
                       e - b, kMaxDirentName);
      std::string_view n = name(i);
      if (n.find('\0') != std::string_view::npos)
        return corrupt(offset + b, "directory entry {} has a name containing a NUL byte", i);
      if (n.find('/') != std::string_view::npos)
        return corrupt(offset + b, "directory entry '{}' has a name containing '/'", printable(n));
      if (i > 0 && !(name(i - 1) < n))
        return corrupt(offset + b, "directory entry '{}' is not after '{}' in name order",
                       printable(n), printable(name(i - 1)));
    }
    return {};
  }
};

struct Piece {
  uint64_t offset;
  uint32_t len;
};

// Where a flat inode's data is: whole blocks (the last one possibly partial
// when there is no inline tail) and, for FLAT_INLINE, the tail after the
// xattrs.  inode() has checked that all of it lies in the image.
struct FlatData {
  uint64_t blocks_offset = 0;
  uint64_t n_pieces = 0;
  uint64_t size = 0;
  bool has_tail = false;
  uint64_t tail_offset = 0;

  explicit FlatData(const InodeInfo& in) {
    size = in.size;
    blocks_offset = uint64_t{in.raw_u} * kBlockSize;
    has_tail = in.layout == kLayoutFlatInline && in.size % kBlockSize != 0;
    tail_offset = in.offset + in.inode_size + in.xattr_size;
    n_pieces = in.size / kBlockSize + (in.size % kBlockSize != 0);
  }
  Piece piece(uint64_t i) const {
    if (has_tail && i + 1 == n_pieces)
      return {tail_offset, static_cast<uint32_t>(size % kBlockSize)};
    return {blocks_offset + i * kBlockSize,
            static_cast<uint32_t>(std::min<uint64_t>(kBlockSize, size - i * kBlockSize))};
  }
};

// What overlay xattrs say about an inode while they are applied in order.
struct Overlay {
  uint32_t mode = 0;
  bool whiteout = false;  // an escaped whiteout turned back into chr 0/0
  std::optional<std::string_view> payload;
  std::optional<fsverity::Digest> digest;
};

}  // namespace

std::string XattrRef::name() const {
  std::string n(name_index < kXattrPrefixCount ? kXattrPrefixes[name_index] : std::string_view());
  n += suffix;
  return n;
}

// The decoding, with templated callbacks so that walks over big images make
// no indirect call per entry.
class ImageReader {
 public:
  explicit ImageReader(const Image& img) : img_(img), p_(img.data_), size_(img.size_) {}

  bool fits(uint64_t off, uint64_t len) const { return off <= size_ && len <= size_ - off; }

  Result<InodeInfo> inode(uint64_t nid) const;
  Result<std::string> read_data(const InodeInfo& in) const;
  Result<DirBlock> dir_block(const Piece& piece) const {
    DirBlock b;
    b.p = p_ + piece.offset;
    b.offset = piece.offset;
    b.len = piece.len;
    CFS_TRY(b.validate());
    return b;
  }

  template <class F>
  Status for_each_xattr(const InodeInfo& in, F&& fn) const;
  template <class F>
  Status for_each_dirent(const InodeInfo& dir, F&& fn) const;
  // Applies the C reader's xattr translation; `set` receives the xattrs that
  // remain (name, value, entry offset).
  template <class Set>
  Status translate_xattrs(const InodeInfo& in, Overlay& ov, Set&& set) const;
  // Fills a node from an inode (not a skipped whiteout), as the C reader does.
  Status fill_node(const InodeInfo& in, Node& node, uint64_t* bytes) const;

  Result<std::optional<uint64_t>> lookup_in(const InodeInfo& dir, std::string_view name) const;

 private:
  const Image& img_;
  const uint8_t* p_;
  uint64_t size_;
};

// Iterates a directory's entries block by block (for depth-first walks that
// keep one cursor per open directory).
class DirCursor {
 public:
  DirCursor(const ImageReader& r, const InodeInfo& dir) : r_(&r), data_(dir) {}
  Result<std::optional<DirEntry>> next() {
    while (!block_ || idx_ >= block_->count) {
      if (piece_ >= data_.n_pieces) return std::optional<DirEntry>();
      std::string_view prev_last = block_ ? block_->name(block_->count - 1) : std::string_view();
      CFS_TRY_ASSIGN(block_, r_->dir_block(data_.piece(piece_++)));
      idx_ = 0;
      if (!prev_last.empty() && !(prev_last < block_->name(0)))
        return corrupt(block_->offset + block_->nameoff(0),
                       "directory block starts with '{}', not after the previous block's '{}'",
                       printable(block_->name(0)), printable(prev_last));
    }
    return std::optional<DirEntry>(block_->entry(idx_++));
  }

 private:
  const ImageReader* r_;
  FlatData data_;
  uint64_t piece_ = 0;
  std::optional<DirBlock> block_;
  uint32_t idx_ = 0;
};

Result<InodeInfo> ImageReader::inode(uint64_t nid) const {
  const uint64_t meta = img_.meta_base_;
  if (nid >= (size_ - meta) / kSlotSize)
    return corrupt(meta, "inode number {} is past the end of the image ({} bytes)", nid, size_);
  InodeInfo in;
  in.nid = nid;
  in.offset = meta + nid * kSlotSize;
  if (!fits(in.offset, sizeof(InodeCompact)))
    return corrupt(in.offset, "inode {} is cut off by the end of the image", nid);
  const uint8_t* ip = p_ + in.offset;
  uint16_t format = ld16(ip);
  // Bits 0..3: version and data layout; anything above is a feature we do
  // not know (as the kernel refuses it).
  if (format & ~0xFu)
    return unsupported(in.offset, "inode {} has unsupported i_format {:#x}", nid, format);
  in.compact = (format & 1) == 0;
  in.layout = static_cast<uint16_t>(format >> 1);
  if (in.layout > kLayoutChunkBased)
    return corrupt(in.offset, "inode {} has invalid data layout {}", nid, in.layout);
  uint16_t icount;
  if (in.compact) {
    InodeCompact c;
    std::memcpy(&c, ip, sizeof c);
    in.inode_size = sizeof c;
    icount = c.i_xattr_icount;
    in.mode = c.i_mode;
    in.nlink = c.i_nlink;
    in.size = c.i_size;
    in.raw_u = c.i_u;
    in.ino = c.i_ino;
    in.uid = c.i_uid;
    in.gid = c.i_gid;
    in.mtime_sec = img_.build_time_;
    in.mtime_nsec = img_.build_time_nsec_;
  } else {
    if (!fits(in.offset, sizeof(InodeExtended)))
      return corrupt(in.offset, "extended inode {} is cut off by the end of the image", nid);
    InodeExtended e;
    std::memcpy(&e, ip, sizeof e);
    in.inode_size = sizeof e;
    icount = e.i_xattr_icount;
    in.mode = e.i_mode;
    in.nlink = e.i_nlink;
    in.size = e.i_size;
    in.raw_u = e.i_u;
    in.ino = e.i_ino;
    in.uid = e.i_uid;
    in.gid = e.i_gid;
    in.mtime_sec = static_cast<int64_t>(uint64_t{e.i_mtime});
    in.mtime_nsec = e.i_mtime_nsec;
  }
  if (!valid_file_type(in.mode))
    return corrupt(in.offset + 4, "inode {} has invalid file mode {:o}", nid, in.mode);
  uint32_t type = in.type();
  if (type == S_IFCHR || type == S_IFBLK) in.rdev = in.raw_u;
  in.xattr_size = icount ? static_cast<uint32_t>(sizeof(XattrIbodyHeader) +
                                                 (uint32_t{icount} - 1) * sizeof(XattrEntry))
                         : 0;
  uint64_t body = in.offset + in.inode_size;
  if (!fits(body, in.xattr_size))
    return corrupt(in.offset + 2, "inode {}: xattr area of {} bytes runs past the end of the image",
                   nid, in.xattr_size);

  bool has_data = type == S_IFDIR || type == S_IFLNK || (type == S_IFREG && in.size > 0);
  if (!has_data) return in;
  if (in.layout == 1 || in.layout == 3)
    return unsupported(in.offset, "inode {} has compressed data (layout {})", nid, in.layout);
  uint64_t tail_offset = body + in.xattr_size;
  if (in.layout == kLayoutChunkBased) {
    if (type != S_IFREG)
      return unsupported(in.offset, "inode {} (mode {:o}) has chunk-based data", nid, in.mode);
    // Only the chunk map's extent is checked: the data is not in the image.
    uint32_t cformat = in.raw_u & 0xFFFF;
    if (cformat & ~(kChunkFormatBlkbitsMask | kChunkFormatIndexes))
      return unsupported(in.offset + 16, "inode {} has unsupported chunk format {:#x}", nid,
                         cformat);
    unsigned bits = kBlockBits + (cformat & kChunkFormatBlkbitsMask);
    uint64_t chunks = (in.size >> bits) + ((in.size & ((uint64_t{1} << bits) - 1)) != 0);
    uint64_t unit = (cformat & kChunkFormatIndexes) ? 8 : 4;
    uint64_t map_offset = round_up(tail_offset, unit);
    if (chunks > size_ / unit || !fits(map_offset, chunks * unit))
      return corrupt(map_offset, "inode {}: chunk map of {} entries runs past the end of the image",
                     nid, chunks);
    return in;
  }
  // Flat: whole blocks at raw_u, then for FLAT_INLINE the tail in the inode.
  bool tail_inline = in.layout == kLayoutFlatInline;
  if (tail_inline && in.size % kBlockSize == 0)
    return corrupt(in.offset, "inode {} has inline layout but no inline data (size {})", nid,
                   in.size);
  if (in.size > size_)
    return corrupt(in.offset + 8, "inode {} has size {}, more than the image's {} bytes", nid,
                   in.size, size_);
  uint64_t block_bytes = tail_inline ? in.size / kBlockSize * kBlockSize : in.size;
  uint64_t blocks_offset = uint64_t{in.raw_u} * kBlockSize;
  if (block_bytes && !fits(blocks_offset, block_bytes))
    return corrupt(in.offset + 16, "inode {}: data blocks {}..{} run past the end of the image",
                   nid, in.raw_u, in.raw_u + (block_bytes - 1) / kBlockSize);
  if (tail_inline) {
    uint64_t tail = in.size % kBlockSize;
    if (!fits(tail_offset, tail))
      return corrupt(tail_offset,
                     "inode {}: inline data of {} bytes runs past the end of the image", nid, tail);
    // The kernel refuses inline data that crosses a block boundary.
    if (tail_offset % kBlockSize + tail > kBlockSize)
      return corrupt(tail_offset, "inode {}: inline data of {} bytes crosses a block boundary", nid,
                     tail);
  }
  return in;
}

Result<std::string> ImageReader::read_data(const InodeInfo& in) const {
  uint32_t type = in.type();
  if (type != S_IFLNK && type != S_IFREG)
    return errorf(Errc::InvalidArgument, "inode {} is not a symlink or regular file", in.nid);
  if (in.layout != kLayoutFlatPlain && in.layout != kLayoutFlatInline)
    return unsupported(in.offset, "inode {} has no data in the image (layout {})", in.nid,
                       in.layout);
  uint64_t limit = type == S_IFLNK ? kPathMax - 1 : kMaxInlineContent;
  if (in.size > limit)
    return unsupported(in.offset + 8, "inode {} has {} bytes of data in the image (at most {})",
                       in.nid, in.size, limit);
  FlatData d(in);
  std::string out;
  out.reserve(in.size);
  for (uint64_t i = 0; i < d.n_pieces; i++) {
    Piece pc = d.piece(i);
    out.append(reinterpret_cast<const char*>(p_ + pc.offset), pc.len);
  }
  return out;
}

template <class F>
Status ImageReader::for_each_xattr(const InodeInfo& in, F&& fn) const {
  if (in.xattr_size == 0) return {};
  const uint64_t area = in.offset + in.inode_size;
  const uint64_t end = area + in.xattr_size;
  const uint8_t shared = p_[area + 4];
  if (sizeof(XattrIbodyHeader) + 4 * uint64_t{shared} > in.xattr_size)
    return corrupt(area + 4, "inode {}: {} shared xattrs do not fit its xattr area of {} bytes",
                   in.nid, shared, in.xattr_size);
  auto decode = [&](uint64_t off, uint64_t limit, bool is_shared) -> Result<uint64_t> {
    if (!fits(off, sizeof(XattrEntry)) || off + sizeof(XattrEntry) > limit)
      return corrupt(off, "inode {}: xattr entry runs past the end of its area", in.nid);
    uint8_t name_len = p_[off];
    uint8_t index = p_[off + 1];
    uint16_t value_size = ld16(p_ + off + 2);
    uint64_t len = sizeof(XattrEntry) + name_len + value_size;
    if (len > limit - off)
      return corrupt(off, "inode {}: xattr entry of {} bytes runs past the end of its area", in.nid,
                     len);
    if (index & kXattrLongPrefix)
      return unsupported(off + 1, "inode {}: xattr with a long name prefix ({:#x})", in.nid, index);
    if (index >= kXattrPrefixCount)
      return corrupt(off + 1, "inode {}: xattr with unknown name index {}", in.nid, index);
    XattrRef x;
    x.name_index = index;
    x.suffix = {reinterpret_cast<const char*>(p_ + off + 4), name_len};
    x.value = {reinterpret_cast<const char*>(p_ + off + 4 + name_len), value_size};
    x.offset = off;
    x.shared = is_shared;
    CFS_TRY(fn(x));
    return len;
  };
  // Inline entries; the C reader stops when at most 4 bytes are left.
  uint64_t pos = area + sizeof(XattrIbodyHeader) + 4 * uint64_t{shared};
  while (pos + sizeof(XattrEntry) < end) {
    CFS_TRY_ASSIGN(uint64_t len, decode(pos, end, false));
    pos += round_up(len, 4);
  }
  for (unsigned i = 0; i < shared; i++) {
    uint64_t id_off = area + sizeof(XattrIbodyHeader) + 4 * uint64_t{i};
    uint64_t off = img_.xattr_base_ + uint64_t{ld32(p_ + id_off)} * 4;
    auto r = decode(off, size_, true);
    if (!r)
      return tl::unexpected(std::move(r.error()).context(
          fmt::format("shared xattr {} (id at offset {})", ld32(p_ + id_off), id_off)));
  }
  return {};
}

template <class F>
Status ImageReader::for_each_dirent(const InodeInfo& dir, F&& fn) const {
  DirCursor c(*this, dir);
  for (;;) {
    CFS_TRY_ASSIGN(auto e, c.next());
    if (!e) return {};
    CFS_TRY(fn(*e));
  }
}

template <class Set>
Status ImageReader::translate_xattrs(const InodeInfo& in, Overlay& ov, Set&& set) const {
  std::string name;
  return for_each_xattr(in, [&](const XattrRef& x) -> Status {
    name.assign(kXattrPrefixes[x.name_index]);
    name.append(x.suffix);
    if (name.find('\0') != std::string::npos)
      return corrupt(x.offset, "xattr name '{}' contains a NUL byte", printable(name));
    bool reg = (ov.mode & S_IFMT) == S_IFREG;
    if (name == kXattrRedirect) {
      if (reg) {
        std::string_view v = x.value;
        if (v.size() > 1 && v[0] == '/') v.remove_prefix(1);
        // overlayfs refuses such a redirect; the C reader would cut it short.
        if (v.find('\0') != std::string_view::npos)
          return corrupt(x.offset, "redirect xattr contains a NUL byte");
        ov.payload = v;
      }
      return {};
    }
    if (name == kXattrMetacopy) {
      if (reg) {
        auto* v = reinterpret_cast<const uint8_t*>(x.value.data());
        size_t sha256 = kMetacopyHeaderSize + hash_digest_size(fsverity::HashAlg::Sha256);
        size_t sha512 = kMetacopyHeaderSize + hash_digest_size(fsverity::HashAlg::Sha512);
        if (x.value.size() == sha256)
          ov.digest = fsverity::Digest(fsverity::HashAlg::Sha256, {v + 4, sha256 - 4});
        else if (x.value.size() == sha512 &&
                 v[3] == static_cast<uint8_t>(fsverity::HashAlg::Sha512))
          ov.digest = fsverity::Digest(fsverity::HashAlg::Sha512, {v + 4, sha512 - 4});
      }
      return {};
    }
    if (name == kXattrEscWhiteout && reg) {
      ov.mode = (ov.mode & ~static_cast<uint32_t>(S_IFMT)) | S_IFCHR;
      ov.whiteout = true;
      ov.payload.reset();
      ov.digest.reset();
      return {};
    }
    if (name == kXattrEscWhiteouts || name == kXattrUserWhiteout || name == kXattrUserWhiteouts)
      return {};
    if (name.starts_with(kOverlayPrefix)) {
      if (!name.starts_with(kOverlayEscapedPrefix)) return {};
      name.erase(std::string_view("trusted.").size(), std::string_view("overlay.").size());
    }
    return set(name, x.value, x.offset);
  });
}

Status ImageReader::fill_node(const InodeInfo& in, Node& node, uint64_t* bytes) const {
  node.mode = in.mode;
  node.nlink = in.nlink;
  node.uid = in.uid;
  node.gid = in.gid;
  node.size = in.size;
  node.mtime_sec = in.mtime_sec;
  node.mtime_nsec = in.mtime_nsec;
  node.rdev = in.rdev;
  node.payload.reset();
  node.content.reset();
  node.digest.reset();
  node.xattrs.clear();
  node.xattr_cost = 0;
  uint32_t type = in.type();
  if (type == S_IFLNK) {
    if (in.size == 0) return corrupt(in.offset + 8, "symlink inode {} has an empty target", in.nid);
    CFS_TRY_ASSIGN(std::string target, read_data(in));
    if (target.find('\0') != std::string::npos)
      return corrupt(in.offset, "symlink inode {} has a target containing a NUL byte", in.nid);
    *bytes += target.size();
    node.payload = std::move(target);
  } else if (type == S_IFREG && in.size > 0 && in.layout != kLayoutChunkBased) {
    if (in.size > std::min<uint64_t>(kMaxInlineContent, size_))
      return unsupported(in.offset + 8,
                         "regular file inode {} stores {} bytes in the image (composefs inlines at "
                         "most {})",
                         in.nid, in.size, kMaxInlineContent);
    CFS_TRY_ASSIGN(std::string content, read_data(in));
    *bytes += content.size();
    node.content = std::move(content);
  }
  Overlay ov;
  ov.mode = in.mode;
  constexpr size_t kIndexFrom = 16;
  std::unordered_map<std::string, size_t> index;  // key -> position, for many xattrs
  CFS_TRY(translate_xattrs(
      in, ov, [&](std::string_view key, std::string_view value, uint64_t offset) -> Status {
        if (key.empty() || key.size() > kMaxXattrName)
          return corrupt(offset, "xattr name of {} bytes (must be 1..{})", key.size(),
                         kMaxXattrName);
        // As the C library's internal set_xattr: replacing refunds the old entry,
        // whose place the last entry takes.  Past a few entries, an index
        // keeps hostile inodes with thousands of xattrs from quadratic time.
        if (index.empty() && node.xattrs.size() >= kIndexFrom)
          for (size_t i = 0; i < node.xattrs.size(); i++) index.emplace(node.xattrs[i].key, i);
        size_t found = node.xattrs.size();
        if (!index.empty()) {
          auto it = index.find(std::string(key));
          if (it != index.end()) found = it->second;
        } else {
          for (size_t i = 0; i < node.xattrs.size(); i++)
            if (node.xattrs[i].key == key) found = i;
        }
        if (found < node.xattrs.size()) {
          size_t old = 7 + key.size() + node.xattrs[found].value.size();
          if (!index.empty()) index.erase(node.xattrs[found].key);
          if (found != node.xattrs.size() - 1) {
            node.xattrs[found] = std::move(node.xattrs.back());
            if (!index.empty()) index[node.xattrs[found].key] = found;
          }
          node.xattrs.pop_back();
          node.xattr_cost = node.xattrs.empty() ? 0 : node.xattr_cost - old;
        }
        size_t cost = 7 + key.size() + value.size() + (node.xattrs.empty() ? 12 : 0);
        if (node.xattr_cost + cost > kInternalXattrBudget)
          return errorf(Errc::TooBig, "inode {}: xattrs exceed {} bytes (at offset {})", in.nid,
                        kInternalXattrBudget, offset);
        node.xattrs.push_back({std::string(key), std::string(value)});
        if (!index.empty()) index.emplace(node.xattrs.back().key, node.xattrs.size() - 1);
        node.xattr_cost += cost;
        *bytes += sizeof(Xattr) + key.size() + value.size();
        return {};
      }));
  node.mode = ov.mode;
  if (ov.whiteout) {
    node.rdev = 0;
    node.size = 0;
    node.content.reset();
  }
  if (ov.payload) {
    node.payload = std::string(*ov.payload);
    *bytes += ov.payload->size();
  }
  node.digest = ov.digest;
  return {};
}

Result<std::optional<uint64_t>> ImageReader::lookup_in(const InodeInfo& dir,
                                                       std::string_view name) const {
  using R = std::optional<uint64_t>;
  FlatData d(dir);
  if (d.n_pieces == 0) return R();
  // The blocks are in name order: find the last one whose first name is not
  // after `name`, then search inside it (as the kernel's erofs_namei does).
  uint64_t lo = 0, hi = d.n_pieces;
  while (hi - lo > 1) {
    uint64_t mid = lo + (hi - lo) / 2;
    CFS_TRY_ASSIGN(DirBlock b, dir_block(d.piece(mid)));
    if (b.name(0) <= name)
      lo = mid;
    else
      hi = mid;
  }
  CFS_TRY_ASSIGN(DirBlock b, dir_block(d.piece(lo)));
  uint32_t l = 0, h = b.count;
  while (l < h) {
    uint32_t m = l + (h - l) / 2;
    int c = b.name(m).compare(name);
    if (c == 0) return R(b.entry(m).nid);
    if (c < 0)
      l = m + 1;
    else
      h = m;
  }
  return R();
}

// ------------------------------------------------------------------ Image

Image::Image(Image&&) noexcept = default;
Image& Image::operator=(Image&&) noexcept = default;
Image::~Image() = default;

Result<Image> Image::open(std::span<const uint8_t> bytes) {
  Image img;
  img.data_ = bytes.data();
  img.size_ = bytes.size();
  CFS_TRY(img.init());
  return img;
}

Result<Image> Image::open(int fd) {
  CFS_TRY_ASSIGN(MappedFile m, MappedFile::open(fd));
  Image img;
  img.map_ = std::make_unique<MappedFile>(std::move(m));
  img.data_ = reinterpret_cast<const uint8_t*>(img.map_->bytes().data());
  img.size_ = img.map_->size();
  CFS_TRY(img.init());
  return img;
}

Result<Image> Image::open(const std::string& path) {
  auto fd = open_at(AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
  if (!fd) return tl::unexpected(std::move(fd.error()));
  auto img = open(fd->get());
  if (!img) return tl::unexpected(std::move(img.error()).context(path));
  return img;
}

Status Image::init() {
  if (size_ < kBlockSize)
    return corrupt(0, "image of {} bytes is too small (a composefs image has at least {})", size_,
                   kBlockSize);
  ComposefsHeader h;
  std::memcpy(&h, data_, sizeof h);
  if (h.magic != kComposefsMagic)
    return corrupt(0, "not a composefs image: magic {:#010x}, expected {:#010x}", uint32_t{h.magic},
                   kComposefsMagic);
  if (h.version != kComposefsHeaderVersion)
    return unsupported(4, "composefs header version {} (only {} is known)", uint32_t{h.version},
                       kComposefsHeaderVersion);
  composefs_version_ = h.composefs_version;
  header_flags_ = h.flags;
  SuperBlock sb;
  std::memcpy(&sb, data_ + kSuperOffset, sizeof sb);
  if (sb.magic != kSuperMagic)
    return corrupt(kSuperOffset, "no EROFS superblock: magic {:#010x}, expected {:#010x}",
                   uint32_t{sb.magic}, kSuperMagic);
  if (sb.blkszbits != kBlockBits)
    return unsupported(kOffBlkszbits, "EROFS block size 2^{} (only {} is supported)", sb.blkszbits,
                       kBlockSize);
  uint32_t incompat = sb.feature_incompat;
  if (incompat & ~kKnownIncompat)
    return unsupported(kOffIncompat, "unsupported EROFS incompatible features {:#x}",
                       incompat & ~kKnownIncompat);
  meta_base_ = uint64_t{sb.meta_blkaddr} * kBlockSize;
  if (meta_base_ >= size_)
    return corrupt(kOffMetaBlkaddr, "metadata block {} is past the end of the image ({} bytes)",
                   uint32_t{sb.meta_blkaddr}, size_);
  xattr_base_ = uint64_t{sb.xattr_blkaddr} * kBlockSize;
  root_nid_ = sb.root_nid;
  build_time_ = static_cast<int64_t>(uint64_t{sb.build_time});
  build_time_nsec_ = sb.build_time_nsec;
  return {};
}

Result<InodeInfo> Image::inode(uint64_t nid) const { return ImageReader(*this).inode(nid); }

Result<std::string> Image::read_data(const InodeInfo& in) const {
  return ImageReader(*this).read_data(in);
}

Status Image::for_each_xattr(const InodeInfo& in,
                             const std::function<Status(const XattrRef&)>& fn) const {
  return ImageReader(*this).for_each_xattr(in, fn);
}

Status Image::for_each_dirent(const InodeInfo& dir,
                              const std::function<Status(const DirEntry&)>& fn) const {
  if (!dir.is_dir()) return errorf(Errc::InvalidArgument, "inode {} is not a directory", dir.nid);
  return ImageReader(*this).for_each_dirent(dir, fn);
}

Result<bool> Image::load_node(uint64_t nid, Node& out) const {
  ImageReader r(*this);
  CFS_TRY_ASSIGN(InodeInfo in, r.inode(nid));
  if (is_whiteout(in) && composefs_version_ < 2) return false;
  uint64_t bytes = 0;
  CFS_TRY(r.fill_node(in, out, &bytes));
  return true;
}

Result<std::optional<uint64_t>> Image::lookup(std::string_view path) const {
  ImageReader r(*this);
  uint64_t nid = root_nid_;
  size_t i = 0;
  for (;;) {
    while (i < path.size() && path[i] == '/') i++;
    if (i == path.size()) return std::optional<uint64_t>(nid);
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    CFS_TRY_ASSIGN(InodeInfo dir, r.inode(nid));
    if (!dir.is_dir()) return std::optional<uint64_t>();
    auto found = r.lookup_in(dir, path.substr(i, j - i));
    if (!found)
      return tl::unexpected(
          std::move(found.error())
              .context(fmt::format("looking up '{}'", printable(path.substr(0, j)))));
    if (!*found) return std::optional<uint64_t>();
    nid = **found;
    i = j;
  }
}

namespace {

// Names of the root directory that a filter lets through (all when empty).
class TopFilter {
 public:
  explicit TopFilter(const std::vector<std::string>& names) : set_(names.begin(), names.end()) {}
  bool pass(std::string_view name) const {
    return set_.empty() || set_.count(std::string(name)) != 0;
  }

 private:
  std::unordered_set<std::string> set_;
};

std::string child_path(const std::string& dir, std::string_view name) {
  std::string p = dir;
  p += '/';
  p += name;
  return p;
}

}  // namespace

Result<Tree> Image::to_tree(const ReadOptions& opts) const {
  ImageReader r(*this);
  const uint64_t budget =
      opts.max_tree_bytes ? opts.max_tree_bytes : (uint64_t{64} << 20) + 64 * size_;
  uint64_t bytes = 0;
  TopFilter filter(opts.toplevel_filter);
  Tree tree;

  CFS_TRY_ASSIGN(InodeInfo root_in, r.inode(root_nid_));
  if (!root_in.is_dir())
    return corrupt(root_in.offset, "the root inode {} is not a directory (mode {:o})", root_nid_,
                   root_in.mode);
  Node* root = tree.new_node();
  {
    auto st = r.fill_node(root_in, *root, &bytes);
    if (!st) return tl::unexpected(std::move(st.error()).context("/"));
  }
  tree.set_root(root);

  struct Frame {
    Node* dir;
    uint64_t dir_offset;
    DirCursor cursor;
    size_t path_len;
    std::vector<std::pair<std::string, Node*>> children;
  };
  std::vector<Frame> stack;
  std::unordered_map<uint64_t, Node*> seen;
  seen.reserve(std::min<uint64_t>(size_ / 128, uint64_t{1} << 20));  // about one inode in 128 bytes
  seen.emplace(root_nid_, root);
  std::string path;  // of the directory on top of the stack ("" for the root)
  stack.push_back({root, root_in.offset, DirCursor(r, root_in), 0, {}});

  while (!stack.empty()) {
    Frame& f = stack.back();
    auto next = f.cursor.next();
    if (!next)
      return tl::unexpected(
          std::move(next.error())
              .context(fmt::format("directory '{}'", path.empty() ? "/" : printable(path))));
    if (!*next) {
      auto st = tree.set_children(f.dir, std::move(f.children));
      if (!st)
        return tl::unexpected(Error(
            Errc::Corrupt,
            fmt::format("directory '{}': {} (inode at offset {})",
                        path.empty() ? "/" : printable(path), st.error().message(), f.dir_offset)));
      path.resize(f.path_len);
      stack.pop_back();
      continue;
    }
    const DirEntry& e = **next;
    if (e.name == "." || e.name == "..") continue;
    if (stack.size() == 1 && !filter.pass(e.name)) continue;
    bytes += sizeof(Node) + e.name.size() + sizeof(std::pair<std::string, Node*>);
    if (bytes > budget)
      return errorf(Errc::TooBig,
                    "the image's tree needs more than {} bytes of memory (at offset {})", budget,
                    e.offset);

    if (auto it = seen.find(e.nid); it != seen.end()) {
      Node* target = it->second;
      if (target->is_dir())
        return corrupt(e.offset,
                       "'{}' is another entry for directory inode {} (a directory hardlink or "
                       "cycle)",
                       printable(child_path(path, e.name)), e.nid);
      Node* link = tree.new_node();
      link->link_to = target;
      link->mode = target->mode;
      f.children.emplace_back(std::string(e.name), link);
      continue;
    }
    auto in = r.inode(e.nid);
    if (!in)
      return tl::unexpected(
          std::move(in.error())
              .context(fmt::format("'{}' (entry at offset {})", printable(child_path(path, e.name)),
                                   e.offset)));
    if (is_whiteout(*in)) {
      // A hardlinked whiteout is refused, as the current C reference does
      // (composefs commit 19cd25b) and composefs-rs does for every format.
      if (in->nlink > 1)
        return corrupt(in->offset, "'{}': whiteout inode {} has {} links",
                       printable(child_path(path, e.name)), e.nid, in->nlink);
      // Formats 0 and 1 store whiteouts escaped; a chr 0/0 there is one of
      // the writer's 00..ff stubs, not part of the tree.  Format 2 stores
      // whiteouts as they are.
      if (composefs_version_ < 2) continue;
    }
    Node* n = tree.new_node();
    auto st = r.fill_node(*in, *n, &bytes);
    if (!st)
      return tl::unexpected(
          std::move(st.error()).context(fmt::format("'{}'", printable(child_path(path, e.name)))));
    if (bytes > budget)
      return errorf(Errc::TooBig,
                    "the image's tree needs more than {} bytes of memory (at offset {})", budget,
                    in->offset);
    seen.emplace(e.nid, n);
    f.children.emplace_back(std::string(e.name), n);
    if (in->is_dir()) {
      if (stack.size() >= kMaxDepth)
        return errorf(Errc::TooBig, "'{}': directories nested deeper than {} levels (at offset {})",
                      printable(child_path(path, e.name)), kMaxDepth, e.offset);
      size_t len = path.size();
      path += '/';
      path += e.name;
      stack.push_back({n, in->offset, DirCursor(r, *in), len, {}});
    }
  }
  return tree;
}

Status Image::for_each_object(const std::function<Status(const ObjectRef&)>& fn,
                              const ReadOptions& opts) const {
  ImageReader r(*this);
  TopFilter filter(opts.toplevel_filter);
  CFS_TRY_ASSIGN(InodeInfo root_in, r.inode(root_nid_));
  if (!root_in.is_dir())
    return corrupt(root_in.offset, "the root inode {} is not a directory (mode {:o})", root_nid_,
                   root_in.mode);
  // One bit per possible nid: bounded by the image size.
  const uint64_t max_nids = (size_ - meta_base_) / kSlotSize;
  std::vector<uint64_t> seen((max_nids + 63) / 64);
  auto mark = [&](uint64_t nid) {
    bool was = seen[nid / 64] >> (nid % 64) & 1;
    seen[nid / 64] |= uint64_t{1} << (nid % 64);
    return was;
  };
  mark(root_nid_);
  struct Frame {
    DirCursor cursor;
    size_t path_len;
  };
  std::vector<Frame> stack;
  std::string path;
  stack.push_back({DirCursor(r, root_in), 0});
  auto noop = [](std::string_view, std::string_view, uint64_t) -> Status { return {}; };
  while (!stack.empty()) {
    Frame& f = stack.back();
    auto next = f.cursor.next();
    if (!next)
      return tl::unexpected(
          std::move(next.error())
              .context(fmt::format("directory '{}'", path.empty() ? "/" : printable(path))));
    if (!*next) {
      path.resize(f.path_len);
      stack.pop_back();
      continue;
    }
    const DirEntry& e = **next;
    if (e.name == "." || e.name == "..") continue;
    if (stack.size() == 1 && !filter.pass(e.name)) continue;
    if (e.nid >= max_nids)
      return corrupt(e.offset, "'{}': inode number {} is past the end of the image",
                     printable(child_path(path, e.name)), e.nid);
    // Only directories and regular files matter; the entry's file type
    // is a hint, the inode decides.
    bool was_seen = seen[e.nid / 64] >> (e.nid % 64) & 1;
    if (was_seen) {
      // Directories must not be reached twice (cycles).
      CFS_TRY_ASSIGN(InodeInfo in, r.inode(e.nid));
      if (in.is_dir())
        return corrupt(e.offset,
                       "'{}' is another entry for directory inode {} (a directory hardlink or "
                       "cycle)",
                       printable(child_path(path, e.name)), e.nid);
      continue;
    }
    auto in = r.inode(e.nid);
    if (!in)
      return tl::unexpected(
          std::move(in.error())
              .context(fmt::format("'{}' (entry at offset {})", printable(child_path(path, e.name)),
                                   e.offset)));
    mark(e.nid);
    if (in->is_dir()) {
      if (stack.size() >= kMaxDepth)
        return errorf(Errc::TooBig, "'{}': directories nested deeper than {} levels (at offset {})",
                      printable(child_path(path, e.name)), kMaxDepth, e.offset);
      size_t len = path.size();
      path += '/';
      path += e.name;
      stack.push_back({DirCursor(r, *in), len});
      continue;
    }
    if (in->type() != S_IFREG) continue;
    Overlay ov;
    ov.mode = in->mode;
    auto st = r.translate_xattrs(*in, ov, noop);
    if (!st)
      return tl::unexpected(
          std::move(st.error()).context(fmt::format("'{}'", printable(child_path(path, e.name)))));
    if ((ov.mode & S_IFMT) != S_IFREG || (!ov.payload && !ov.digest)) continue;
    std::string file = child_path(path, e.name);
    ObjectRef ref;
    ref.path = file;
    ref.nid = e.nid;
    ref.size = in->size;
    ref.payload = ov.payload;
    ref.digest = ov.digest;
    CFS_TRY(fn(ref));
  }
  return {};
}

Result<std::vector<fsverity::Digest>> Image::object_digests() const {
  std::vector<fsverity::Digest> out;
  CFS_TRY(for_each_object([&](const ObjectRef& o) -> Status {
    if (o.digest) out.push_back(*o.digest);
    return {};
  }));
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace cfs::erofs
