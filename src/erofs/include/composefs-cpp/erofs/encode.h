// SPDX-License-Identifier: Apache-2.0
// What both image writers (the C reference's layout, formats 0 and 1, and
// composefs-rs's, format 2) encode the same way: buffered output, the
// composefs header and superblock, xattr entries, name indexes and the
// name filter, directory chunks and entries, chunk maps, and counting
// (key, value) pairs for sharing.  Internal to the erofs module.
#pragma once

#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "composefs-cpp/base/error.h"
#include "composefs-cpp/erofs/format.h"
#include "composefs-cpp/tree/tree.h"

namespace cfs::erofs::detail {

// Receives the image in order, in pieces (erofs::Sink).
using SinkFn = std::function<Status(std::span<const uint8_t>)>;

// Buffered output with the running position.
class Out {
 public:
  explicit Out(const SinkFn& sink) : sink_(sink) { buf_.reserve(kCap); }
  void write(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    pos_ += n;
    while (n) {
      size_t take = std::min(n, kCap - buf_.size());
      buf_.insert(buf_.end(), b, b + take);
      b += take;
      n -= take;
      if (buf_.size() == kCap) flush();
    }
  }
  void write(std::string_view s) { write(s.data(), s.size()); }
  template <class T>
  void put(const T& v) {
    write(&v, sizeof v);
  }
  void pad(uint64_t n) {
    static const uint8_t zeros[4096] = {};
    while (n) {
      size_t take = static_cast<size_t>(std::min<uint64_t>(n, sizeof zeros));
      write(zeros, take);
      n -= take;
    }
  }
  void align(uint64_t a) { pad(round_up(pos_, a) - pos_); }
  uint64_t pos() const { return pos_; }
  Status finish() {
    flush();
    if (!status_) return status_;
    return {};
  }

 private:
  static constexpr size_t kCap = 1 << 20;
  void flush() {
    if (status_ && !buf_.empty()) status_ = sink_(buf_);
    buf_.clear();
  }
  const SinkFn& sink_;
  std::vector<uint8_t> buf_;
  uint64_t pos_ = 0;
  Status status_;
};

// The fields of the composefs header and the superblock that vary; the
// rest is fixed (block size, features, zero uuid and name).
struct SuperInfo {
  uint32_t composefs_version = 0;
  uint32_t flags = 0;
  uint64_t root_nid = 0;
  uint64_t inos = 0;
  uint64_t build_time = 0;
  uint32_t build_time_nsec = 0;
  uint64_t blocks = 0;
  uint32_t xattr_blkaddr = 0;
};
// The header, zeros up to the superblock, the superblock: 1152 bytes.
void write_header_and_superblock(Out& out, const SuperInfo& s);

// The xattr name index of `key` and the rest of the name after its prefix.
// C's table has no "lustre." (index 5); composefs-rs's format 2 uses it.
uint8_t xattr_index(std::string_view key, bool with_lustre, std::string_view* suffix);
inline size_t xattr_entry_size(std::string_view suffix, size_t value_size) {
  return round_up(sizeof(XattrEntry) + suffix.size() + value_size, 4);
}
void write_xattr_entry(Out& out, uint8_t index, std::string_view suffix, std::string_view value);
// The bit an xattr sets in an inode's name filter (stored inverted).
inline uint32_t xattr_filter_bit(uint8_t index, std::string_view suffix) {
  return 1u << (xxh32(suffix.data(), suffix.size(), kXattrFilterSeed + index) & 31);
}
// The 12-byte xattr body header: the inverted filter and the shared count.
void write_xattr_header(Out& out, uint32_t filter_bits, uint8_t shared_count);
inline uint16_t xattr_icount(uint32_t xattr_size) {
  return xattr_size ? static_cast<uint16_t>((xattr_size - sizeof(XattrIbodyHeader)) / 4 + 1) : 0;
}

uint8_t dirent_file_type(uint32_t mode);

// How directory entries are packed: 4096-byte chunks in order, a chunk
// ending before the entry that would overflow it; a last chunk over half a
// block goes to a block too, a smaller one is the inline tail.  Both
// writers split this way.  `name_len(i)` is the length of entry i's name.
struct DirSplit {
  uint32_t n_blocks = 0;
  uint32_t tail = 0;  // bytes of the inline tail
};
template <class NameLen>
DirSplit split_dirents(size_t count, NameLen name_len) {
  DirSplit s;
  uint64_t used = 0;
  for (size_t i = 0; i < count; i++) {
    size_t len = sizeof(Dirent) + name_len(i);
    if (used + len > kBlockSize) {
      s.n_blocks++;
      used = 0;
    }
    used += len;
  }
  if (used > kBlockSize / 2) {
    s.n_blocks++;
    used = 0;
  }
  s.tail = static_cast<uint32_t>(used);
  return s;
}

// Calls fn(first, count, is_tail) for each chunk of a directory split as
// split_dirents does (`split` is its result).
template <class NameLen, class Fn>
void for_each_dir_chunk(size_t count, NameLen name_len, const DirSplit& split, Fn fn) {
  size_t used = 0, first = 0;
  uint32_t blocks = 0;
  for (size_t i = 0; i < count; i++) {
    size_t len = sizeof(Dirent) + name_len(i);
    if (used + len > kBlockSize) {
      fn(first, i - first, false);
      blocks++;
      used = 0;
      first = i;
    }
    used += len;
  }
  if (first < count) fn(first, count - first, blocks == split.n_blocks);
}

// One chunk of directory entries: `count` headers, then the names, then
// zeros up to `align`.  `entry(i)` gives {name, nid, file type} of the
// chunk's i-th entry.
struct DirentInfo {
  std::string_view name;
  uint64_t nid;
  uint8_t file_type;
};
template <class Entry>
void write_dirent_chunk(Out& out, size_t count, Entry entry, uint64_t align) {
  uint16_t nameoff = static_cast<uint16_t>(count * sizeof(Dirent));
  for (size_t i = 0; i < count; i++) {
    DirentInfo e = entry(i);
    Dirent d{};
    d.nid = e.nid;
    d.nameoff = nameoff;
    d.file_type = e.file_type;
    nameoff = static_cast<uint16_t>(nameoff + e.name.size());
    out.put(d);
  }
  for (size_t i = 0; i < count; i++) out.write(entry(i).name);
  out.align(align);
}

// Chunk size (as log2) and count of an external file of `size` bytes in C's
// layout: the smallest chunk (at least a block) that makes few chunks.
struct ChunkInfo {
  uint32_t bits;
  uint64_t count;
};
inline ChunkInfo chunking(uint64_t size) {
  uint32_t bits = size > 1 ? 64 - static_cast<uint32_t>(__builtin_clzll(size - 1)) : 0;
  bits = std::max<uint32_t>(bits, kBlockBits);
  bits = std::min<uint32_t>(bits, kChunkFormatBlkbitsMask + kBlockBits);
  uint64_t chunk = uint64_t{1} << bits;
  return {bits, size / chunk + (size % chunk != 0)};
}

// Counts (key, value) pairs without a heap node per entry: an open-addressing
// table of indexes into a flat entry vector (images have ~2 xattrs per file).
// Each slot carries 32 bits of the hash beside the index, so a probe touches
// an entry only when the tags match: at a million files almost every pair
// (redirect, metacopy) is new, and the table and entries are far larger than
// the caches, so the cost is the memory accesses per pair.
class XattrTable {
 public:
  struct Entry {
    std::string_view key, value;
    uint32_t count = 0;
    int64_t offset = -1;  // in the shared table, when shared
  };
  explicit XattrTable(size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2) cap *= 2;
    slots_.assign(cap, kEmpty);
    entries_.reserve(expected);
  }
  // Counts every pair that `for_each(f)` passes to f in turn (structs with
  // key, value and entry, which receives its entry's index; for_each runs
  // twice and must give the same sequence). All are hashed first, so that
  // the slot kPrefetchAhead pairs on is fetched while this one is probed:
  // the memory latency of each probe is hidden behind the others.
  template <class ForEach>
  void add_all(ForEach&& for_each) {
    std::vector<uint64_t> hashes;
    hashes.reserve(entries_.capacity());  // the expected count
    for_each([&](auto& x) { hashes.push_back(hash(x.key, x.value)); });
    size_t k = 0;
    for_each([&](auto& x) {
      if (k + kPrefetchAhead < hashes.size()) prefetch(hashes[k + kPrefetchAhead]);
      x.entry = add(x.key, x.value, hashes[k++]);
    });
  }
  std::vector<Entry>& entries() { return entries_; }

 private:
  static constexpr size_t kPrefetchAhead = 16;
  static constexpr uint64_t kEmpty = UINT64_MAX;  // no tag | index pair is all ones
  static constexpr uint64_t kTagMask = 0xFFFFFFFF00000000ULL;
  static uint64_t hash(std::string_view key, std::string_view value) {
    return std::hash<std::string_view>()(key) * 0x9E3779B97F4A7C15ULL ^
           std::hash<std::string_view>()(value);
  }
  void prefetch(uint64_t h) const { __builtin_prefetch(&slots_[h & (slots_.size() - 1)]); }
  // `h` must be hash(key, value).
  uint32_t add(std::string_view key, std::string_view value, uint64_t h) {
    size_t mask = slots_.size() - 1;
    uint64_t tag = h & kTagMask;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      uint64_t slot = slots_[i];
      if (slot == kEmpty) {
        auto e = static_cast<uint32_t>(entries_.size());
        entries_.push_back({key, value, 1});
        slots_[i] = tag | e;
        if (entries_.size() * 2 > slots_.size()) grow();
        return e;
      }
      if ((slot & kTagMask) != tag) continue;
      auto e = static_cast<uint32_t>(slot);
      Entry& x = entries_[e];
      if (x.key == key && x.value == value) {
        x.count++;
        return e;
      }
    }
  }
  void grow() {
    std::vector<uint64_t> old(slots_.size() * 2, kEmpty);
    old.swap(slots_);
    size_t mask = slots_.size() - 1;
    for (uint64_t slot : old) {
      if (slot == kEmpty) continue;
      const Entry& x = entries_[static_cast<uint32_t>(slot)];
      uint64_t h = hash(x.key, x.value);
      size_t i = h & mask;
      while (slots_[i] != kEmpty) i = (i + 1) & mask;
      slots_[i] = slot;
    }
  }
  std::vector<uint64_t> slots_;
  std::vector<Entry> entries_;
};

// overlayfs's struct ovl_metacopy for a digest: version 0, length, flags 0,
// the fs-verity algorithm's kernel id, then the digest.
std::string metacopy_value(std::span<const uint8_t> digest, uint8_t alg);

// composefs-rs's format 2 (writer_v2.cc); write_image dispatches to it.
Status write_image_v2(const Tree& tree, const SinkFn& sink);

}  // namespace cfs::erofs::detail
