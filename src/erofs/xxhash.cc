// SPDX-License-Identifier: Apache-2.0
// XXH32 (the 32-bit xxHash), which EROFS uses for its xattr name filter.
#include "composefs-cpp/base/endian.h"
#include "composefs-cpp/erofs/format.h"

namespace cfs::erofs {

namespace {
constexpr uint32_t kP1 = 0x9E3779B1u, kP2 = 0x85EBCA77u, kP3 = 0xC2B2AE3Du, kP4 = 0x27D4EB2Fu,
                   kP5 = 0x165667B1u;
inline uint32_t rotl(uint32_t x, int r) { return (x << r) | (x >> (32 - r)); }
inline uint32_t round(uint32_t acc, uint32_t lane) { return rotl(acc + lane * kP2, 13) * kP1; }
}  // namespace

uint32_t xxh32(const void* data, size_t len, uint32_t seed) {
  const auto* p = static_cast<const uint8_t*>(data);
  const uint8_t* end = p + len;
  uint32_t h;
  if (len >= 16) {
    uint32_t acc[4] = {seed + kP1 + kP2, seed + kP2, seed, seed - kP1};
    while (end - p >= 16) {
      for (auto& a : acc) {
        a = round(a, load_le32(p));
        p += 4;
      }
    }
    h = rotl(acc[0], 1) + rotl(acc[1], 7) + rotl(acc[2], 12) + rotl(acc[3], 18);
  } else {
    h = seed + kP5;
  }
  h += static_cast<uint32_t>(len);
  for (; end - p >= 4; p += 4) h = rotl(h + load_le32(p) * kP3, 17) * kP4;
  for (; p < end; p++) h = rotl(h + *p * kP5, 11) * kP1;
  h ^= h >> 15;
  h *= kP2;
  h ^= h >> 13;
  h *= kP3;
  h ^= h >> 16;
  return h;
}

}  // namespace cfs::erofs
