// SPDX-License-Identifier: Apache-2.0
// A strict streaming tar reader for container layers: ustar, GNU long names
// and links, PAX (path, linkpath, size, mtime with fractions, uid/gid,
// uname/gname, SCHILY.xattr.* and LIBARCHIVE.xattr.*).  Every header field is
// validated; sparse files, multi-volume archives, hostile paths and
// truncated streams are refused with the entry name and offset.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "composefs-cpp/base/error.h"
#include "composefs-cpp/oci/io.h"
#include "composefs-cpp/tree/tree.h"

namespace cfs::oci {

enum class TarType : char {
  Regular = '0',
  Hardlink = '1',
  Symlink = '2',
  Char = '3',
  Block = '4',
  Directory = '5',
  Fifo = '6',
};

// Regular files larger than this are unreasonable in a layer (16 TiB).
inline constexpr uint64_t kMaxTarFileSize = uint64_t{1} << 44;
// Bounds on extension headers, which are held in memory: one PAX header,
// one GNU long name or link, and everything (headers included) that comes
// before one entry's own header.
inline constexpr uint64_t kMaxPaxSize = 8 << 20;
inline constexpr uint64_t kMaxLongName = 64 << 10;
inline constexpr uint64_t kMaxExtensionBytes = 8 << 20;
// Bytes accepted after the end-of-archive blocks: tar writers pad the
// archive to a whole record (10 KiB by default, rarely more than 1 MiB).
inline constexpr uint64_t kMaxTrailer = 1 << 20;

struct TarEntry {
  // Normalized: relative, no "." or empty components, no trailing '/'; ""
  // is the root directory.  Never contains "..".
  std::string path;
  TarType type = TarType::Regular;
  uint32_t mode = 0;  // permission bits (07777)
  uint32_t uid = 0, gid = 0;
  int64_t mtime_sec = 0;
  uint32_t mtime_nsec = 0;
  uint64_t size = 0;  // data bytes that follow (regular files only)
  uint32_t dev_major = 0, dev_minor = 0;
  // Symlink target as stored; hardlink target normalized like `path`.
  std::string link;
  std::string uname, gname;
  std::vector<Xattr> xattrs;  // in archive order, later duplicates replaced
  uint64_t offset = 0;        // of the entry's first header block
};

// Reads entries from an uncompressed tar stream.  Every byte consumed other
// than the data returned by read_data() (headers, extension records,
// padding, end-of-archive blocks and whatever follows them) is passed to the
// `raw` callback in order, so a caller can store the archive losslessly.
class TarReader {
 public:
  using RawSink = std::function<Status(std::span<const uint8_t>)>;
  explicit TarReader(Reader& in, RawSink raw = {}) : in_(in), raw_(std::move(raw)) {}

  // The next entry, or nullopt after the end of the archive (then every
  // remaining byte of the stream has been consumed).  Unread data of the
  // previous entry is skipped (and passed to the raw sink).
  Result<std::optional<TarEntry>> next();
  // Reads the current entry's data; 0 at its end.
  Result<size_t> read_data(std::span<uint8_t> buf);
  // Consumes the rest of the current entry (unread data and padding, passed
  // to the raw sink), so that the next byte is the next entry's first header
  // block: where a split stream may start a new chunk.
  Status skip_entry() { return finish_entry(); }
  // The caller consumed the current entry's data elsewhere (a split stream
  // stores it as an object): the reader continues after it.
  void data_consumed_elsewhere() { data_left_ = 0; }
  uint64_t data_left() const { return data_left_; }
  // Bytes consumed from the stream so far.
  uint64_t offset() const { return offset_; }

 private:
  Result<bool> read_block(uint8_t* block, bool eof_ok);
  Status read_exact(std::span<uint8_t> buf);
  Status emit(std::span<const uint8_t> bytes);
  Status finish_entry();
  Status drain_trailer(uint64_t end_offset);

  Reader& in_;
  RawSink raw_;
  uint64_t offset_ = 0;
  uint64_t data_left_ = 0;
  uint64_t pad_left_ = 0;
  bool ended_ = false;
};

// Normalizes an archive path (see TarEntry::path); errors on absolute paths,
// "..", NUL bytes and over-long components.
Result<std::string> normalize_tar_path(std::string_view raw);

}  // namespace cfs::oci
