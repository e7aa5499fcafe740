// SPDX-License-Identifier: Apache-2.0
// Pull-style byte streams for image import: files, memory, byte ranges of a
// file, sha256 digests computed on the way through, and size limits.
#pragma once

#include <openssl/evp.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "base/error.h"
#include "base/fd.h"

namespace cfs::oci {

// A source of bytes.  read() returns 0 only at the end of the stream.
class Reader {
 public:
  virtual ~Reader() = default;
  virtual Result<size_t> read(std::span<uint8_t> buf) = 0;
  // Skips n bytes without reading them where the source can (files);
  // false when it cannot, and the caller reads them instead.
  virtual Result<bool> skip(uint64_t) { return false; }
};

// Reads exactly buf.size() bytes unless the stream ends first; returns the
// count read.
Result<size_t> read_up_to(Reader& r, std::span<uint8_t> buf);
// Reads the rest of a stream into memory, refusing more than max_size bytes.
Result<std::string> read_all(Reader& r, size_t max_size, std::string_view what);

class FdReader : public Reader {
 public:
  explicit FdReader(int fd) : fd_(fd) {}
  Result<size_t> read(std::span<uint8_t> buf) override;
  Result<bool> skip(uint64_t n) override;

 private:
  int fd_;
};

// [offset, offset + size) of a file, read with pread (several readers may
// share one fd).  Reaching the file's end early is an error.
class RangeReader : public Reader {
 public:
  RangeReader(int fd, uint64_t offset, uint64_t size) : fd_(fd), pos_(offset), left_(size) {}
  Result<size_t> read(std::span<uint8_t> buf) override;

 private:
  int fd_;
  uint64_t pos_;
  uint64_t left_;
};

class MemReader : public Reader {
 public:
  explicit MemReader(std::string_view data) : data_(data) {}
  Result<size_t> read(std::span<uint8_t> buf) override;

 private:
  std::string_view data_;
};

// Incremental sha256.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(std::span<const uint8_t> data);
  void update(std::string_view s) {
    update({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
  }
  // "sha256:<64 hex>"; the hasher cannot be used afterwards.
  std::string finish();

 private:
  EVP_MD_CTX* ctx_;
};

std::string sha256_digest(std::string_view data);

// Passes bytes through while counting and hashing them.  With an expected
// size and digest, the end of the stream is an error unless both match, and
// reading past the expected size is an error at once (a hostile server
// cannot make us read forever).
class VerifyingReader : public Reader {
 public:
  VerifyingReader(Reader& in, std::string what, std::string expected_digest = {},
                  int64_t expected_size = -1)
      : in_(in),
        what_(std::move(what)),
        expected_digest_(std::move(expected_digest)),
        expected_size_(expected_size) {}
  Result<size_t> read(std::span<uint8_t> buf) override;
  uint64_t count() const { return count_; }
  // Valid after the stream ended.
  const std::string& digest() const { return digest_; }

 private:
  Reader& in_;
  std::string what_;
  std::string expected_digest_;
  int64_t expected_size_;
  Sha256 sha_;
  uint64_t count_ = 0;
  std::string digest_;
  bool done_ = false;
};

// Passes at most `limit` bytes through; a longer stream is an error naming
// `what` (an uncompressed layer: a bomb must not fill the disk).
class LimitReader : public Reader {
 public:
  LimitReader(Reader& in, uint64_t limit, std::string what)
      : in_(in), limit_(limit), what_(std::move(what)) {}
  Result<size_t> read(std::span<uint8_t> buf) override;

 private:
  Reader& in_;
  uint64_t limit_;
  std::string what_;
  uint64_t count_ = 0;
};

// Checks an OCI digest string "sha256:<64 lowercase hex>" (the only
// algorithm we can verify); other algorithms are refused.
Status check_digest(std::string_view digest);

}  // namespace cfs::oci
