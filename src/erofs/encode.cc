// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/erofs/encode.h"

namespace cfs::erofs::detail {

void write_header_and_superblock(Out& out, const SuperInfo& s) {
  ComposefsHeader header{};
  header.magic = kComposefsMagic;
  header.version = kComposefsHeaderVersion;
  header.flags = s.flags;
  header.composefs_version = s.composefs_version;
  out.put(header);
  out.pad(kSuperOffset - sizeof header);

  SuperBlock sb{};
  sb.magic = kSuperMagic;
  sb.feature_compat = kFeatureCompatMtime | kFeatureCompatXattrFilter;
  sb.blkszbits = kBlockBits;
  sb.root_nid = static_cast<uint16_t>(s.root_nid);
  sb.inos = s.inos;
  sb.build_time = s.build_time;
  sb.build_time_nsec = s.build_time_nsec;
  sb.blocks = static_cast<uint32_t>(s.blocks);
  sb.meta_blkaddr = 0;
  sb.xattr_blkaddr = s.xattr_blkaddr;
  out.put(sb);
}

uint8_t xattr_index(std::string_view key, bool with_lustre, std::string_view* suffix) {
  // No prefix is a prefix of another, so the order of the search does not
  // matter; only whether "lustre." takes part does.
  for (uint8_t i = 1; i < kXattrPrefixCount; i++) {
    if (i == kXattrIndexLustre && !with_lustre) continue;
    if (key.starts_with(kXattrPrefixes[i])) {
      *suffix = key.substr(kXattrPrefixes[i].size());
      return i;
    }
  }
  *suffix = key;
  return 0;
}

void write_xattr_entry(Out& out, uint8_t index, std::string_view suffix, std::string_view value) {
  XattrEntry e{};
  e.e_name_index = index;
  e.e_name_len = static_cast<uint8_t>(suffix.size());
  e.e_value_size = static_cast<uint16_t>(value.size());
  out.put(e);
  out.write(suffix);
  out.write(value);
  out.align(4);
}

void write_xattr_header(Out& out, uint32_t filter_bits, uint8_t shared_count) {
  XattrIbodyHeader h{};
  h.h_name_filter = kXattrFilterDefault & ~filter_bits;
  h.h_shared_count = shared_count;
  out.put(h);
}

uint8_t dirent_file_type(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return kFtRegFile;
    case S_IFDIR: return kFtDir;
    case S_IFCHR: return kFtChrdev;
    case S_IFBLK: return kFtBlkdev;
    case S_IFIFO: return kFtFifo;
    case S_IFSOCK: return kFtSock;
    case S_IFLNK: return kFtSymlink;
    default: return kFtUnknown;
  }
}

std::string metacopy_value(std::span<const uint8_t> digest, uint8_t alg) {
  std::string v;
  v.push_back(0);  // version
  v.push_back(static_cast<char>(kMetacopyHeaderSize + digest.size()));
  v.push_back(0);  // flags
  v.push_back(static_cast<char>(alg));
  v.append(reinterpret_cast<const char*>(digest.data()), digest.size());
  return v;
}

}  // namespace cfs::erofs::detail
