// SPDX-License-Identifier: Apache-2.0
// Byte streams for image import: sha256 digests computed on the way through,
// and size limits (the readers themselves are base/reader.h).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "composefs-cpp/base/error.h"
#include "composefs-cpp/base/fd.h"
#include "composefs-cpp/base/reader.h"

namespace cfs::oci {

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
  struct Ctx;  // OpenSSL stays out of the header
  std::unique_ptr<Ctx> ctx_;
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
