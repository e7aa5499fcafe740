// SPDX-License-Identifier: Apache-2.0
// Fixed-length message hashing for Merkle trees: every tree block has the same
// length (and the same salt prefix), so the padding block is constant and a
// salted prefix reduces to a precomputed initial state.  Hashing two blocks
// in lockstep lets SHA-NI overlap its round latencies (about 1.8x on one core).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

namespace cfs::fsverity {

enum class HashAlg : uint8_t { Sha256 = 1, Sha512 = 2 };

constexpr size_t hash_digest_size(HashAlg a) { return a == HashAlg::Sha256 ? 32 : 64; }
// The hash function's own input block size, to which salts are padded.
constexpr size_t hash_block_size(HashAlg a) { return a == HashAlg::Sha256 ? 64 : 128; }

enum class HashImpl {
  Auto,     // SHA-256: SHA-NI, SHA-512: AVX-512 lanes, where the CPU has them; else OpenSSL
  OpenSsl,  // always OpenSSL (used by tests to cross-check the fast path)
};

// Hashes messages of exactly `message_size` bytes, each prefixed by the
// zero-padded salt when a salt is given.
class FixedHasher {
 public:
  virtual ~FixedHasher() = default;
  virtual size_t digest_size() const = 0;
  // Hashes `count` consecutive messages starting at `data` into `out`
  // (count * digest_size() bytes).
  virtual void hash_many(const uint8_t* data, size_t count, uint8_t* out) = 0;

  static std::unique_ptr<FixedHasher> create(HashAlg alg, size_t message_size,
                                             std::span<const uint8_t> salt,
                                             HashImpl impl = HashImpl::Auto);
};

// One-shot plain hash (no salt), used for descriptors.
void hash_once(HashAlg alg, std::span<const uint8_t> data, uint8_t* out);

bool cpu_has_sha_ni();
// AVX-512 F and BW, with the OS saving their registers: SHA-512 on 8 lanes.
bool cpu_has_avx512_sha512();

}  // namespace cfs::fsverity
