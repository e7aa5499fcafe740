// SPDX-License-Identifier: Apache-2.0
// composefs-rs's split stream format (version 0): a stream stored as inline
// chunks and references to objects, zstd-compressed, plus arrays of the
// object and stream digests it references (for garbage collection) and named
// stream references.  Both header layouts are read (the old one written by
// bootc <= 1.15 before repr(C)); the new one is written.
//
//   header  magic "SplitStream", version 0, flags u16, algorithm u8, lg 12,
//           info FileRange                                          (32 bytes)
//   info    stream_refs, object_refs, stream, named_refs (FileRanges),
//           content_type u64, stream_size u64                        (80 bytes)
//   then    stream_refs digests | object_refs digests |
//           zstd("idx:name\0"...) | zstd(chunks: i64 <0 inline -n bytes,
//           >=0 index into object_refs)
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "composefs-cpp/base/error.h"
#include "composefs-cpp/base/fd.h"
#include "composefs-cpp/base/reader.h"
#include "composefs-cpp/fsverity/fsverity.h"

namespace cfs::repository {

// Content types: eight ASCII bytes read as a little-endian u64 (the OCI
// ones are in oci/import.h).
constexpr uint64_t content_type(const char (&s)[9]) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | static_cast<uint8_t>(s[i]);
  return v;
}

// Inline data buffered before chunk_boundary() compresses it.
inline constexpr size_t kInlineFlush = 1 << 20;
// Compressed bytes kept in memory before they go to the spill file.
inline constexpr size_t kSpillThreshold = 1 << 20;

class SplitStreamWriter {
 public:
  // With `spill_dirfd`, the compressed stream goes to an unnamed temporary
  // file in that directory once it passes kSpillThreshold, so a stream of
  // any size is written in bounded memory (then finish_file() gives it).
  SplitStreamWriter(fsverity::HashAlg alg, uint64_t content_type, int spill_dirfd = -1);
  ~SplitStreamWriter();
  SplitStreamWriter(const SplitStreamWriter&) = delete;
  SplitStreamWriter& operator=(const SplitStreamWriter&) = delete;

  // Adjacent inline data is coalesced into one chunk until a boundary.
  Status write_inline(std::span<const uint8_t> data);
  // A place where the inline chunk may end: inline data past kInlineFlush is
  // compressed as one chunk here.  composefs-rs reads every tar header from
  // a single chunk, so layers mark only the start of each entry.
  Status chunk_boundary();
  // A chunk that is the whole content of object `d` (`size` bytes).
  Status write_external(const fsverity::Digest& d, uint64_t size);
  void add_named_ref(const std::string& name, const fsverity::Digest& stream);
  // Whether the stream went to the spill file (then only finish_file()).
  bool spilled() const { return spill_.valid(); }
  // The complete file, in memory.
  Result<std::string> finish();
  // The complete file in a temporary file (read-write, at offset 0), with
  // its size and fs-verity digest.
  struct File {
    UniqueFd fd;
    uint64_t size = 0;
    fsverity::Digest digest;
  };
  Result<File> finish_file();

 private:
  Status flush_inline();
  Status compress(std::span<const uint8_t> data);
  Status end_stream();
  Status spill();
  std::string header(uint64_t stream_bytes, const std::string& named) const;
  fsverity::HashAlg alg_;
  uint64_t content_type_;
  int spill_dirfd_;
  UniqueFd spill_;
  uint64_t spilled_bytes_ = 0;
  struct Z;
  std::unique_ptr<Z> z_;
  std::string stream_;
  std::string inline_;
  uint64_t total_ = 0;
  std::vector<fsverity::Digest> object_refs_, stream_refs_;
  std::map<fsverity::Digest, size_t> object_index_, stream_index_;
  std::map<std::string, size_t> named_;
};

// Inline data is handed out in pieces of at most this size.
inline constexpr size_t kMaxInlinePiece = 1 << 20;

struct SplitStreamChunk {
  bool external = false;
  std::string data;         // inline bytes (a piece of a chunk: see kMaxInlinePiece)
  fsverity::Digest object;  // external
};

class SplitStreamReader {
 public:
  // Parses and checks the header, the reference arrays and the named refs;
  // the stream itself is decompressed as it is read.  Nothing is allocated
  // by a size the file states: ranges must lie within the file, and inline
  // chunks are read in bounded pieces and refused when longer than what the
  // compressed bytes left can hold.
  static Result<SplitStreamReader> open(std::string file, fsverity::HashAlg alg,
                                        std::optional<uint64_t> expected_type);
  // The same from a file (at offset 0; its size is taken once): only the
  // header, the arrays and the named refs are held in memory.
  static Result<SplitStreamReader> open(UniqueFd fd, fsverity::HashAlg alg,
                                        std::optional<uint64_t> expected_type);
  SplitStreamReader(SplitStreamReader&&) noexcept;
  SplitStreamReader& operator=(SplitStreamReader&&) noexcept;
  ~SplitStreamReader();

  uint64_t content_type() const { return content_type_; }
  uint64_t stream_size() const { return stream_size_; }
  const std::vector<fsverity::Digest>& object_refs() const { return object_refs_; }
  const std::vector<fsverity::Digest>& stream_refs() const { return stream_refs_; }
  const std::map<std::string, fsverity::Digest>& named_refs() const { return named_; }
  std::optional<fsverity::Digest> named_ref(const std::string& name) const;

  // The next chunk; nullopt at the end (then the total size is checked).
  Result<std::optional<SplitStreamChunk>> next_chunk();

  // Reads inline data only: an external chunk where inline data is expected
  // is an error, unless the caller takes it with take_external().
  Result<size_t> read_inline(std::span<uint8_t> buf);
  // When the next chunk is external, consumes and returns it.
  Result<std::optional<fsverity::Digest>> take_external();

 private:
  struct D;
  SplitStreamReader() = default;
  static Result<SplitStreamReader> open_source(std::unique_ptr<D> d, fsverity::HashAlg alg,
                                               std::optional<uint64_t> expected_type);
  Result<size_t> decompress(std::span<uint8_t> out);
  Status read_exact(std::span<uint8_t> out);
  Result<bool> read_chunk_header();

  uint64_t content_type_ = 0, stream_size_ = 0;
  std::vector<fsverity::Digest> object_refs_, stream_refs_;
  std::map<std::string, fsverity::Digest> named_;
  std::unique_ptr<D> d_;
  uint64_t inline_left_ = 0;
  std::optional<fsverity::Digest> pending_external_;
  uint64_t produced_ = 0;  // inline bytes (objects add their sizes)
  bool eof_ = false;
};

// A Reader over a split stream's inline data (see read_inline).
class SplitInlineReader : public Reader {
 public:
  explicit SplitInlineReader(SplitStreamReader& r) : r_(r) {}
  Result<size_t> read(std::span<uint8_t> buf) override { return r_.read_inline(buf); }

 private:
  SplitStreamReader& r_;
};

}  // namespace cfs::repository
