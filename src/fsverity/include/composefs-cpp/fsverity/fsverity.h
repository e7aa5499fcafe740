// SPDX-License-Identifier: Apache-2.0
// fs-verity file digests computed in userspace (identical to the kernel's and
// libfsverity's), and the kernel ioctls that enable and measure fs-verity.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "composefs-cpp/base/error.h"
#include "composefs-cpp/fsverity/sha.h"

namespace cfs::fsverity {

// A file digest: the hash of the fs-verity descriptor.
class Digest {
 public:
  Digest() = default;
  Digest(HashAlg alg, std::span<const uint8_t> bytes);

  HashAlg alg() const { return alg_; }
  size_t size() const { return hash_digest_size(alg_); }
  std::span<const uint8_t> bytes() const { return {bytes_.data(), size()}; }
  std::string hex() const;
  // "xx/yyyy…": the object path inside a store.
  std::string object_path() const;

  // Parses 64 (sha256) or 128 (sha512) hex digits.
  static std::optional<Digest> from_hex(std::string_view hex);
  static std::optional<Digest> from_hex(HashAlg alg, std::string_view hex);

  friend bool operator==(const Digest& a, const Digest& b) {
    return a.alg_ == b.alg_ && a.bytes_ == b.bytes_;
  }
  friend bool operator<(const Digest& a, const Digest& b) {
    return a.alg_ != b.alg_ ? a.alg_ < b.alg_ : a.bytes_ < b.bytes_;
  }

 private:
  HashAlg alg_ = HashAlg::Sha256;
  std::array<uint8_t, 64> bytes_{};
};

struct Params {
  HashAlg alg = HashAlg::Sha256;
  uint32_t block_size = 4096;  // a power of two, 1 KiB .. 64 KiB
  std::vector<uint8_t> salt;   // at most 32 bytes
  HashImpl impl = HashImpl::Auto;
};

Status validate(const Params& p);

// Streaming Merkle-tree hasher: feed data in any chunking, then finish().
// Memory is one block per tree level.
class Hasher {
 public:
  explicit Hasher(Params params = {});
  Hasher(Hasher&&) noexcept;
  Hasher& operator=(Hasher&&) noexcept;
  ~Hasher();

  void update(std::span<const uint8_t> data);
  void update(std::string_view s) {
    update({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
  }
  // Adds `n` zero bytes cheaply (holes in sparse files).
  void update_zeros(uint64_t n);
  // Adds the hashes of whole data blocks hashed elsewhere (by threads hashing
  // slices of one file), `data_bytes` being the data they cover; only the
  // last call may cover a partial final block.  Nothing may be pending.
  void update_block_hashes(std::span<const uint8_t> hashes, uint64_t data_bytes);
  uint64_t size() const;
  Digest finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

Digest digest_of(std::span<const uint8_t> data, const Params& p = {});
inline Digest digest_of(std::string_view s, const Params& p = {}) {
  return digest_of({reinterpret_cast<const uint8_t*>(s.data()), s.size()}, p);
}
// Reads the file from its current offset to EOF (leaving the offset there).
// With `probe_holes`, holes (SEEK_DATA/SEEK_HOLE) are hashed without being
// read; callers that know a file is dense skip the extra syscalls.
Result<Digest> digest_of_fd(int fd, const Params& p = {}, bool probe_holes = true);
// The same, reading through the caller's buffer (hot loops reuse one).
Result<Digest> digest_of_fd(int fd, const Params& p, bool probe_holes, std::span<uint8_t> buf);
// A regular file of `size` bytes from offset 0, its data blocks hashed on up
// to `threads` threads (0: the CPUs this process may run on); the Merkle
// tree's upper levels, 1/128 of the work, stay on one thread.  Memory stays
// bounded (a window of a few MiB per thread), whatever the size.  A file
// shorter than `size` is an error; sparse files are best left to
// digest_of_fd, which hashes holes without reading them.
Result<Digest> digest_of_file_parallel(int fd, uint64_t size, const Params& p = {},
                                       unsigned threads = 0);
// A good buffer size for it: small enough to stay in L2 between read and hash.
inline constexpr size_t kReadChunk = 256 << 10;

// ---- kernel --------------------------------------------------------------

// FS_IOC_ENABLE_VERITY.  The fd must be read-only with no writers.
// Errc::Unsupported with "not supported by this filesystem" where it lacks
// fs-verity; EEXIST (already enabled) is success.
Status enable(int fd, HashAlg alg = HashAlg::Sha256, uint32_t block_size = 4096);
// FS_IOC_MEASURE_VERITY.  Errc::VerityMissing when not enabled,
// Errc::Unsupported when the filesystem cannot do fs-verity.
Result<Digest> measure(int fd);

}  // namespace cfs::fsverity
