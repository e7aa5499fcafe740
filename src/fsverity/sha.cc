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

// ---- SHA-512, eight messages at once in AVX-512 lanes --------------------
// OpenSSL's SHA-512 hashes one message at a time; a Merkle tree level is
// many independent messages of the same size, so each 64-bit lane of a zmm
// register carries one of them through the same rounds.

alignas(64) const uint64_t kSha512K[80] = {
    0x428a2f98d728ae22ULL, 0x7137449123ef65cdULL, 0xb5c0fbcfec4d3b2fULL, 0xe9b5dba58189dbbcULL,
    0x3956c25bf348b538ULL, 0x59f111f1b605d019ULL, 0x923f82a4af194f9bULL, 0xab1c5ed5da6d8118ULL,
    0xd807aa98a3030242ULL, 0x12835b0145706fbeULL, 0x243185be4ee4b28cULL, 0x550c7dc3d5ffb4e2ULL,
    0x72be5d74f27b896fULL, 0x80deb1fe3b1696b1ULL, 0x9bdc06a725c71235ULL, 0xc19bf174cf692694ULL,
    0xe49b69c19ef14ad2ULL, 0xefbe4786384f25e3ULL, 0x0fc19dc68b8cd5b5ULL, 0x240ca1cc77ac9c65ULL,
    0x2de92c6f592b0275ULL, 0x4a7484aa6ea6e483ULL, 0x5cb0a9dcbd41fbd4ULL, 0x76f988da831153b5ULL,
    0x983e5152ee66dfabULL, 0xa831c66d2db43210ULL, 0xb00327c898fb213fULL, 0xbf597fc7beef0ee4ULL,
    0xc6e00bf33da88fc2ULL, 0xd5a79147930aa725ULL, 0x06ca6351e003826fULL, 0x142929670a0e6e70ULL,
    0x27b70a8546d22ffcULL, 0x2e1b21385c26c926ULL, 0x4d2c6dfc5ac42aedULL, 0x53380d139d95b3dfULL,
    0x650a73548baf63deULL, 0x766a0abb3c77b2a8ULL, 0x81c2c92e47edaee6ULL, 0x92722c851482353bULL,
    0xa2bfe8a14cf10364ULL, 0xa81a664bbc423001ULL, 0xc24b8b70d0f89791ULL, 0xc76c51a30654be30ULL,
    0xd192e819d6ef5218ULL, 0xd69906245565a910ULL, 0xf40e35855771202aULL, 0x106aa07032bbd1b8ULL,
    0x19a4c116b8d2d0c8ULL, 0x1e376c085141ab53ULL, 0x2748774cdf8eeb99ULL, 0x34b0bcb5e19b48a8ULL,
    0x391c0cb3c5c95a63ULL, 0x4ed8aa4ae3418acbULL, 0x5b9cca4f7763e373ULL, 0x682e6ff3d6b2b8a3ULL,
    0x748f82ee5defb2fcULL, 0x78a5636f43172f60ULL, 0x84c87814a1f0ab72ULL, 0x8cc702081a6439ecULL,
    0x90befffa23631e28ULL, 0xa4506cebde82bde9ULL, 0xbef9a3f7b2c67915ULL, 0xc67178f2e372532bULL,
    0xca273eceea26619cULL, 0xd186b8c721c0c207ULL, 0xeada7dd6cde0eb1eULL, 0xf57d4f7fee6ed178ULL,
    0x06f067aa72176fbaULL, 0x0a637dc5a2c898a6ULL, 0x113f9804bef90daeULL, 0x1b710b35131c471bULL,
    0x28db77f523047d84ULL, 0x32caab7b40c72493ULL, 0x3c9ebe0a15c9bebcULL, 0x431d67c49c100d4cULL,
    0x4cc5d4becb3e42b6ULL, 0x597f299cfc657e2aULL, 0x5fcb6fab3ad6faecULL, 0x6c44198c4a475817ULL};

const uint64_t kSha512Iv[8] = {0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL,
                               0xa54ff53a5f1d36f1ULL, 0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL,
                               0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL};

#define CFS_AVX512 __attribute__((target("avx512f,avx512bw")))
// GCC 12's avx512fintrin.h starts some intrinsics from a self-initialized
// "undefined" register, which -Wuninitialized reports where they inline.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

struct Sha512Lanes {
  __m512i s[8];
};

// One 128-byte block of each of the eight messages: block n of lane j is
// at base + lane_offset[j] (bytes).
CFS_AVX512 inline void sha512x8_block(Sha512Lanes& st, const uint8_t* base, __m512i lane_offset) {
  // Big-endian words: reverse the bytes of each 64-bit element.
  const __m512i bswap =
      _mm512_set_epi8(8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13,
                      14, 15, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4,
                      5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
  __m512i w[16];
  for (size_t t = 0; t < 16; t++)
    w[t] = _mm512_shuffle_epi8(_mm512_i64gather_epi64(lane_offset, base + 8 * t, 1), bswap);
  __m512i a = st.s[0], b = st.s[1], c = st.s[2], d = st.s[3];
  __m512i e = st.s[4], f = st.s[5], g = st.s[6], h = st.s[7];
  for (int t = 0; t < 80; t++) {
    __m512i wt;
    if (t < 16) {
      wt = w[t];
    } else {
      // w[t] = s1(w[t-2]) + w[t-7] + s0(w[t-15]) + w[t-16], in a ring of 16.
      __m512i w2 = w[(t - 2) & 15], w15 = w[(t - 15) & 15];
      __m512i s0 = _mm512_ternarylogic_epi64(_mm512_ror_epi64(w15, 1), _mm512_ror_epi64(w15, 8),
                                             _mm512_srli_epi64(w15, 7), 0x96);
      __m512i s1 = _mm512_ternarylogic_epi64(_mm512_ror_epi64(w2, 19), _mm512_ror_epi64(w2, 61),
                                             _mm512_srli_epi64(w2, 6), 0x96);
      wt = _mm512_add_epi64(_mm512_add_epi64(s1, w[(t - 7) & 15]), _mm512_add_epi64(s0, w[t & 15]));
      w[t & 15] = wt;
    }
    __m512i S1 = _mm512_ternarylogic_epi64(_mm512_ror_epi64(e, 14), _mm512_ror_epi64(e, 18),
                                           _mm512_ror_epi64(e, 41), 0x96);
    __m512i ch = _mm512_ternarylogic_epi64(e, f, g, 0xCA);  // e ? f : g
    __m512i t1 =
        _mm512_add_epi64(_mm512_add_epi64(h, S1),
                         _mm512_add_epi64(_mm512_add_epi64(ch, wt),
                                          _mm512_set1_epi64(static_cast<long long>(kSha512K[t]))));
    __m512i S0 = _mm512_ternarylogic_epi64(_mm512_ror_epi64(a, 28), _mm512_ror_epi64(a, 34),
                                           _mm512_ror_epi64(a, 39), 0x96);
    __m512i maj = _mm512_ternarylogic_epi64(a, b, c, 0xE8);  // majority
    h = g;
    g = f;
    f = e;
    e = _mm512_add_epi64(d, t1);
    d = c;
    c = b;
    b = a;
    a = _mm512_add_epi64(t1, _mm512_add_epi64(S0, maj));
  }
  st.s[0] = _mm512_add_epi64(st.s[0], a);
  st.s[1] = _mm512_add_epi64(st.s[1], b);
  st.s[2] = _mm512_add_epi64(st.s[2], c);
  st.s[3] = _mm512_add_epi64(st.s[3], d);
  st.s[4] = _mm512_add_epi64(st.s[4], e);
  st.s[5] = _mm512_add_epi64(st.s[5], f);
  st.s[6] = _mm512_add_epi64(st.s[6], g);
  st.s[7] = _mm512_add_epi64(st.s[7], h);
}

class Avx512Sha512Hasher final : public FixedHasher {
 public:
  Avx512Sha512Hasher(size_t message_size, std::span<const uint8_t> salt)
      : message_size_(message_size) {
    std::memcpy(init_, kSha512Iv, sizeof init_);
    uint64_t total = message_size;
    if (!salt.empty()) {
      alignas(64) uint8_t padded[128] = {};
      std::memcpy(padded, salt.data(), salt.size());
      compress_one(padded);
      total += 128;
    }
    // Messages are whole 128-byte blocks, so the padding is one constant
    // block: 0x80, zeros, the length in bits as a 128-bit big-endian number.
    std::memset(pad_, 0, sizeof pad_);
    pad_[0] = 0x80;
    uint64_t bits = total * 8;
    for (int i = 0; i < 8; i++) pad_[127 - i] = static_cast<uint8_t>(bits >> (8 * i));
    pad_[119] = static_cast<uint8_t>(total >> 61);
  }

  size_t digest_size() const override { return 64; }

  void hash_many(const uint8_t* data, size_t count, uint8_t* out) override {
    for (size_t i = 0; i < count; i += 8) {
      size_t n = std::min<size_t>(8, count - i);
      hash8(data + i * message_size_, n, out + i * 64);
    }
  }

 private:
  // The first n (1..8) messages from data; unused lanes repeat message 0.
  CFS_AVX512 void hash8(const uint8_t* data, size_t n, uint8_t* out) {
    alignas(64) int64_t off[8];
    for (size_t j = 0; j < 8; j++) off[j] = j < n ? static_cast<int64_t>(j * message_size_) : 0;
    const __m512i lane_offset = _mm512_load_si512(off);
    Sha512Lanes st;
    for (int k = 0; k < 8; k++) st.s[k] = _mm512_set1_epi64(static_cast<long long>(init_[k]));
    for (size_t blk = 0; blk < message_size_; blk += 128)
      sha512x8_block(st, data + blk, lane_offset);
    sha512x8_block(st, pad_, _mm512_setzero_si512());
    alignas(64) uint64_t words[8][8];  // [word][lane]
    for (int k = 0; k < 8; k++) _mm512_store_si512(words[k], st.s[k]);
    for (size_t j = 0; j < n; j++)
      for (size_t k = 0; k < 8; k++) store_be64(out + 64 * j + 8 * k, words[k][j]);
  }

  // The salt block, through the same code: all lanes alike, lane 0 kept.
  CFS_AVX512 void compress_one(const uint8_t* block) {
    Sha512Lanes st;
    for (int k = 0; k < 8; k++) st.s[k] = _mm512_set1_epi64(static_cast<long long>(init_[k]));
    sha512x8_block(st, block, _mm512_setzero_si512());
    alignas(64) uint64_t lanes[8];
    for (int k = 0; k < 8; k++) {
      _mm512_store_si512(lanes, st.s[k]);
      init_[k] = lanes[0];
    }
  }

  static void store_be64(uint8_t* p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = static_cast<uint8_t>(v >> (56 - 8 * i));
  }

  size_t message_size_;
  uint64_t init_[8];
  alignas(64) uint8_t pad_[128];
};

#pragma GCC diagnostic pop
#undef CFS_AVX512

#endif  // CFS_SHA_NI

}  // namespace

bool cpu_has_avx512_sha512() {
#if CFS_SHA_NI
  // GCC's check includes the OS's: the zmm state saved (XCR0).
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
#else
  return false;
#endif
}

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
  static const bool has_avx512 = cpu_has_avx512_sha512();
  if (impl == HashImpl::Auto && alg == HashAlg::Sha512 && has_avx512 && message_size % 128 == 0 &&
      salt.size() <= 128)
    return std::make_unique<Avx512Sha512Hasher>(message_size, salt);
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
