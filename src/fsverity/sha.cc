// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/fsverity/sha.h"

#include <openssl/evp.h>

#include <cstring>
#include <stdexcept>
#include <vector>

// The SHA-NI path exists only on x86-64 (the intrinsics and CPUID are x86);
// every other architecture hashes through OpenSSL, which uses the CPU's own
// SHA-2 instructions where it has them (ARMv8's among them).
#if defined(__x86_64__)
#define CFS_SHA_NI 1
#include <cpuid.h>
#include <immintrin.h>
#else
#define CFS_SHA_NI 0
#endif

namespace cfs::fsverity {

namespace {

const EVP_MD* evp_md(HashAlg alg) { return alg == HashAlg::Sha256 ? EVP_sha256() : EVP_sha512(); }

struct EvpCtx {
  EVP_MD_CTX* p = EVP_MD_CTX_new();
  EvpCtx() {
    if (!p) throw std::bad_alloc();
  }
  ~EvpCtx() { EVP_MD_CTX_free(p); }
  EvpCtx(const EvpCtx&) = delete;
  EvpCtx& operator=(const EvpCtx&) = delete;
};

class OpenSslHasher final : public FixedHasher {
 public:
  OpenSslHasher(HashAlg alg, size_t message_size, std::span<const uint8_t> salt)
      : alg_(alg), message_size_(message_size) {
    EVP_DigestInit_ex(template_.p, evp_md(alg), nullptr);
    if (!salt.empty()) {
      std::vector<uint8_t> padded(hash_block_size(alg), 0);
      std::memcpy(padded.data(), salt.data(), salt.size());
      EVP_DigestUpdate(template_.p, padded.data(), padded.size());
    }
  }
  size_t digest_size() const override { return hash_digest_size(alg_); }
  void hash_many(const uint8_t* data, size_t count, uint8_t* out) override {
    for (size_t i = 0; i < count; i++) {
      EVP_MD_CTX_copy_ex(work_.p, template_.p);
      EVP_DigestUpdate(work_.p, data + i * message_size_, message_size_);
      unsigned int len = 0;
      EVP_DigestFinal_ex(work_.p, out + i * digest_size(), &len);
    }
  }

 private:
  HashAlg alg_;
  size_t message_size_;
  EvpCtx template_;
  EvpCtx work_;
};

#if CFS_SHA_NI
// ---- SHA-256 with the x86 SHA extensions -------------------------------------

alignas(16) const uint32_t kSha256K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

const uint32_t kSha256Iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                               0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

// The SHA-NI state is kept as the two registers ABEF/CDGH between blocks.
struct NiState {
  __m128i abef, cdgh;
};

__attribute__((target("sha,sse4.1,ssse3"))) inline NiState ni_load(const uint32_t s[8]) {
  __m128i tmp = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s));      // D C B A
  __m128i st1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 4));  // H G F E
  tmp = _mm_shuffle_epi32(tmp, 0xB1);                                      // C D A B
  st1 = _mm_shuffle_epi32(st1, 0x1B);                                      // E F G H
  return {_mm_alignr_epi8(tmp, st1, 8), _mm_blend_epi16(st1, tmp, 0xF0)};  // ABEF, CDGH
}

__attribute__((target("sha,sse4.1,ssse3"))) inline void ni_store(NiState st, uint32_t s[8]) {
  __m128i tmp = _mm_shuffle_epi32(st.abef, 0x1B);  // F E B A
  __m128i st1 = _mm_shuffle_epi32(st.cdgh, 0xB1);  // D C H G
  _mm_storeu_si128(reinterpret_cast<__m128i*>(s), _mm_blend_epi16(tmp, st1, 0xF0));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(s + 4), _mm_alignr_epi8(st1, tmp, 8));
}

// Compresses one 64-byte block into each of N independent states, in lockstep.
template <int N>
__attribute__((target("sha,sse4.1,ssse3"), always_inline)) inline void ni_compress(
    NiState (&st)[N], const uint8_t* const (&blk)[N]) {
  const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
  __m128i w[N][4];
  NiState save[N];
  for (int n = 0; n < N; n++) {
    save[n] = st[n];
    for (int i = 0; i < 4; i++)
      w[n][i] = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk[n] + 16 * i)),
                                 bswap);
  }
#pragma GCC unroll 16
  for (int g = 0; g < 16; g++) {
    const __m128i k = _mm_load_si128(reinterpret_cast<const __m128i*>(kSha256K + size_t{4} * g));
#pragma GCC unroll 4
    for (int n = 0; n < N; n++) {
      __m128i cur;
      if (g < 4) {
        cur = w[n][g];
      } else {
        // W[t..t+3] from W[t-16..t-1] held in w[n][0..3].
        cur = _mm_sha256msg2_epu32(_mm_add_epi32(_mm_sha256msg1_epu32(w[n][0], w[n][1]),
                                                 _mm_alignr_epi8(w[n][3], w[n][2], 4)),
                                   w[n][3]);
        w[n][0] = w[n][1];
        w[n][1] = w[n][2];
        w[n][2] = w[n][3];
        w[n][3] = cur;
      }
      __m128i msg = _mm_add_epi32(cur, k);
      st[n].cdgh = _mm_sha256rnds2_epu32(st[n].cdgh, st[n].abef, msg);
      msg = _mm_shuffle_epi32(msg, 0x0E);
      st[n].abef = _mm_sha256rnds2_epu32(st[n].abef, st[n].cdgh, msg);
    }
  }
  for (int n = 0; n < N; n++) {
    st[n].abef = _mm_add_epi32(st[n].abef, save[n].abef);
    st[n].cdgh = _mm_add_epi32(st[n].cdgh, save[n].cdgh);
  }
}

inline void store_be32(uint8_t* out, const uint32_t s[8]) {
  for (size_t i = 0; i < 8; i++) {
    out[4 * i] = static_cast<uint8_t>(s[i] >> 24);
    out[4 * i + 1] = static_cast<uint8_t>(s[i] >> 16);
    out[4 * i + 2] = static_cast<uint8_t>(s[i] >> 8);
    out[4 * i + 3] = static_cast<uint8_t>(s[i]);
  }
}

__attribute__((target("sha,sse4.1,ssse3"))) void compress_one(uint32_t state[8],
                                                              const uint8_t* block) {
  NiState st[1] = {ni_load(state)};
  const uint8_t* const blk[1] = {block};
  ni_compress<1>(st, blk);
  ni_store(st[0], state);
}

class ShaNiHasher final : public FixedHasher {
 public:
  ShaNiHasher(size_t message_size, std::span<const uint8_t> salt) : message_size_(message_size) {
    std::memcpy(init_, kSha256Iv, sizeof init_);
    uint64_t total = message_size;
    if (!salt.empty()) {
      uint8_t padded[64] = {};
      std::memcpy(padded, salt.data(), salt.size());
      compress_one(init_, padded);
      total += 64;
    }
    // Messages are whole 64-byte blocks, so the padding is one constant block.
    std::memset(pad_, 0, sizeof pad_);
    pad_[0] = 0x80;
    uint64_t bits = total * 8;
    for (int i = 0; i < 8; i++) pad_[63 - i] = static_cast<uint8_t>(bits >> (8 * i));
  }

  size_t digest_size() const override { return 32; }

  void hash_many(const uint8_t* data, size_t count, uint8_t* out) override {
    size_t i = 0;
    for (; i + 4 <= count; i += 4) hash_n<4>(data + i * message_size_, out + i * 32);
    for (; i + 2 <= count; i += 2) hash_n<2>(data + i * message_size_, out + i * 32);
    if (i < count) hash_n<1>(data + i * message_size_, out + i * 32);
  }

 private:
  template <int N>
  __attribute__((target("sha,sse4.1,ssse3"))) void hash_n(const uint8_t* data, uint8_t* out) {
    NiState st[N];
    for (int n = 0; n < N; n++) st[n] = ni_load(init_);
    for (size_t off = 0; off < message_size_; off += 64) {
      const uint8_t* blk[N];
      for (int n = 0; n < N; n++) blk[n] = data + n * message_size_ + off;
      ni_compress<N>(st, blk);
    }
    const uint8_t* pads[N];
    for (int n = 0; n < N; n++) pads[n] = pad_;
    ni_compress<N>(st, pads);
    for (int n = 0; n < N; n++) {
      uint32_t s[8];
      ni_store(st[n], s);
      store_be32(out + size_t{32} * n, s);
    }
  }

  size_t message_size_;
  uint32_t init_[8];
  uint8_t pad_[64];
};

#endif  // CFS_SHA_NI

}  // namespace

bool cpu_has_sha_ni() {
#if CFS_SHA_NI
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  bool sse41 = c & (1u << 19), ssse3 = c & (1u << 9);
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  return sse41 && ssse3 && (b & (1u << 29));
#else
  return false;
#endif
}

std::unique_ptr<FixedHasher> FixedHasher::create(HashAlg alg, size_t message_size,
                                                 std::span<const uint8_t> salt, HashImpl impl) {
#if CFS_SHA_NI
  static const bool has_ni = cpu_has_sha_ni();  // a CPU property, computed once
  if (impl == HashImpl::Auto && alg == HashAlg::Sha256 && has_ni && message_size % 64 == 0 &&
      salt.size() <= 64)
    return std::make_unique<ShaNiHasher>(message_size, salt);
#else
  (void)impl;
#endif
  return std::make_unique<OpenSslHasher>(alg, message_size, salt);
}

void hash_once(HashAlg alg, std::span<const uint8_t> data, uint8_t* out) {
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out, &len, evp_md(alg), nullptr);
}

}  // namespace cfs::fsverity
