// SPDX-License-Identifier: Apache-2.0
// On-disk structures of composefs images: the composefs header and the EROFS
// structures it uses.  Field names follow the kernel's erofs_fs.h so they can
// be grepped against it; every integer is explicitly little-endian.
//
// composefs format versions (the header's composefs_version):
//   0  the original layout (composefs < 1.0.3 and the default without whiteouts)
//   1  adds "opaque=x" markers on directories holding escaped whiteouts, so
//      that overlayfs >= 6.8 treats them as xwhiteouts; everything else is
//      byte-identical to version 0.
//   2  composefs-rs's own layout (its FormatVersion::V2): extended inodes in
//      depth-first order, no root stubs, whiteouts stored as they are,
//      shared xattr ids counted from byte 0, whole-second mtimes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "composefs-cpp/base/endian.h"

namespace cfs::erofs {

inline constexpr uint32_t kComposefsMagic = 0xd078629a;
inline constexpr uint32_t kComposefsHeaderVersion = 1;  // LCFS_EROFS_VERSION
inline constexpr uint32_t kComposefsFlagHasAcl = 1;
inline constexpr uint32_t kMaxFormatVersion = 2;

inline constexpr uint32_t kSuperMagic = 0xE0F5E1E2;
inline constexpr uint64_t kSuperOffset = 1024;
inline constexpr unsigned kBlockBits = 12;
inline constexpr uint64_t kBlockSize = 1u << kBlockBits;
inline constexpr unsigned kSlotBits = 5;
inline constexpr uint64_t kSlotSize = 1u << kSlotBits;

inline constexpr uint32_t kFeatureCompatSbChksum = 0x1;
inline constexpr uint32_t kFeatureCompatMtime = 0x2;
inline constexpr uint32_t kFeatureCompatXattrFilter = 0x4;
inline constexpr uint32_t kFeatureIncompatChunkedFile = 0x4;

// Data layouts (i_format >> 1).
inline constexpr uint16_t kLayoutFlatPlain = 0;
inline constexpr uint16_t kLayoutFlatInline = 2;
inline constexpr uint16_t kLayoutChunkBased = 4;

inline constexpr uint32_t kNullAddr = 0xFFFFFFFF;
inline constexpr uint32_t kChunkFormatBlkbitsMask = 0x1F;
inline constexpr uint32_t kChunkFormatIndexes = 0x20;
// The writer keeps an external file's chunk map within one block.
inline constexpr uint32_t kMaxChunks = 1024;

// Xattr name indexes.
inline constexpr uint8_t kXattrIndexUser = 1;
inline constexpr uint8_t kXattrIndexPosixAclAccess = 2;
inline constexpr uint8_t kXattrIndexPosixAclDefault = 3;
inline constexpr uint8_t kXattrIndexTrusted = 4;
inline constexpr uint8_t kXattrIndexLustre = 5;
inline constexpr uint8_t kXattrIndexSecurity = 6;
// The name prefix of each index, as the C library maps them (its table has
// "lustre." although its writer uses index 5 only when asked).
inline constexpr std::string_view kXattrPrefixes[] = {
    "",        "user.",    "system.posix_acl_access", "system.posix_acl_default", "trusted.",
    "lustre.", "security."};
inline constexpr size_t kXattrPrefixCount = sizeof(kXattrPrefixes) / sizeof(kXattrPrefixes[0]);

// The overlayfs xattrs the writers add or escape and the reader interprets.
inline constexpr std::string_view kOverlayPrefix = "trusted.overlay.";
inline constexpr std::string_view kOverlayEscapedPrefix = "trusted.overlay.overlay.";
inline constexpr std::string_view kXattrMetacopy = "trusted.overlay.metacopy";
inline constexpr std::string_view kXattrRedirect = "trusted.overlay.redirect";
inline constexpr std::string_view kXattrOpaque = "trusted.overlay.opaque";
inline constexpr std::string_view kXattrEscWhiteout = "trusted.overlay.overlay.whiteout";
inline constexpr std::string_view kXattrEscWhiteouts = "trusted.overlay.overlay.whiteouts";
inline constexpr std::string_view kXattrEscOpaque = "trusted.overlay.overlay.opaque";
inline constexpr std::string_view kXattrUserWhiteout = "user.overlay.whiteout";
inline constexpr std::string_view kXattrUserWhiteouts = "user.overlay.whiteouts";
inline constexpr std::string_view kXattrUserOpaque = "user.overlay.opaque";
inline constexpr std::string_view kXattrSelinux = "security.selinux";
inline constexpr uint32_t kXattrFilterSeed = 0x25BBE08F;
inline constexpr uint32_t kXattrFilterDefault = 0xFFFFFFFF;
inline constexpr uint8_t kXattrLongPrefix = 0x80;

// Directory entry file types.
enum FileType : uint8_t {
  kFtUnknown = 0,
  kFtRegFile = 1,
  kFtDir = 2,
  kFtChrdev = 3,
  kFtBlkdev = 4,
  kFtFifo = 5,
  kFtSock = 6,
  kFtSymlink = 7,
};

struct ComposefsHeader {
  le32 magic;
  le32 version;
  le32 flags;
  le32 composefs_version;
  le32 unused[4];
};
static_assert(sizeof(ComposefsHeader) == 32);

struct SuperBlock {
  le32 magic;
  le32 checksum;
  le32 feature_compat;
  uint8_t blkszbits;
  uint8_t sb_extslots;
  le16 root_nid;
  le64 inos;
  le64 build_time;
  le32 build_time_nsec;
  le32 blocks;
  le32 meta_blkaddr;
  le32 xattr_blkaddr;
  uint8_t uuid[16];
  uint8_t volume_name[16];
  le32 feature_incompat;
  le16 u1;  // available_compr_algs / lz4_max_distance
  le16 extra_devices;
  le16 devt_slotoff;
  uint8_t dirblkbits;
  uint8_t xattr_prefix_count;
  le32 xattr_prefix_start;
  le64 packed_nid;
  uint8_t xattr_filter_reserved;
  uint8_t reserved2[23];
};
static_assert(sizeof(SuperBlock) == 128);
static_assert(offsetof(SuperBlock, root_nid) == 14);
static_assert(offsetof(SuperBlock, feature_incompat) == 80);
static_assert(offsetof(SuperBlock, xattr_filter_reserved) == 104);

struct InodeCompact {
  le16 i_format;
  le16 i_xattr_icount;
  le16 i_mode;
  le16 i_nlink;
  le32 i_size;
  le32 i_reserved;
  le32 i_u;  // raw_blkaddr, rdev or chunk info
  le32 i_ino;
  le16 i_uid;
  le16 i_gid;
  le32 i_reserved2;
};
static_assert(sizeof(InodeCompact) == 32);

struct InodeExtended {
  le16 i_format;
  le16 i_xattr_icount;
  le16 i_mode;
  le16 i_reserved;
  le64 i_size;
  le32 i_u;
  le32 i_ino;
  le32 i_uid;
  le32 i_gid;
  le64 i_mtime;
  le32 i_mtime_nsec;
  le32 i_nlink;
  uint8_t i_reserved2[16];
};
static_assert(sizeof(InodeExtended) == 64);

struct XattrIbodyHeader {
  le32 h_name_filter;
  uint8_t h_shared_count;
  uint8_t h_reserved2[7];
};
static_assert(sizeof(XattrIbodyHeader) == 12);

struct XattrEntry {
  uint8_t e_name_len;
  uint8_t e_name_index;
  le16 e_value_size;
};
static_assert(sizeof(XattrEntry) == 4);

struct Dirent {
  le64 nid;
  le16 nameoff;
  uint8_t file_type;
  uint8_t reserved;
};
static_assert(sizeof(Dirent) == 12);

static_assert(std::is_trivially_copyable_v<SuperBlock> && std::is_trivially_copyable_v<Dirent>);

// overlayfs's struct ovl_metacopy: version 0, length, flags, fs-verity algorithm.
inline constexpr size_t kMetacopyHeaderSize = 4;

uint32_t xxh32(const void* data, size_t len, uint32_t seed);

inline constexpr uint64_t round_up(uint64_t x, uint64_t align) {
  return (x + align - 1) / align * align;
}

}  // namespace cfs::erofs
