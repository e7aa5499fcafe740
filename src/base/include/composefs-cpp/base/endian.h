// SPDX-License-Identifier: Apache-2.0
// Little-endian integers stored as byte arrays: alignment 1, explicit byte
// order, safe to memcpy from/to untrusted or unaligned buffers.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

namespace cfs {

template <class T>
class LittleEndian {
  static_assert(std::is_unsigned_v<T>);

 public:
  LittleEndian() = default;
  LittleEndian(T v) { set(v); }  // NOLINT: implicit by design, like a plain integer field
  LittleEndian& operator=(T v) {
    set(v);
    return *this;
  }
  operator T() const { return get(); }  // NOLINT
  T get() const {
    T v = 0;
    for (size_t i = 0; i < sizeof(T); i++) v |= static_cast<T>(static_cast<T>(b_[i]) << (8 * i));
    return v;
  }
  void set(T v) {
    for (size_t i = 0; i < sizeof(T); i++) b_[i] = static_cast<uint8_t>(v >> (8 * i));
  }

 private:
  uint8_t b_[sizeof(T)] = {};
};

using le16 = LittleEndian<uint16_t>;
using le32 = LittleEndian<uint32_t>;
using le64 = LittleEndian<uint64_t>;
static_assert(sizeof(le16) == 2 && alignof(le16) == 1);
static_assert(sizeof(le32) == 4 && alignof(le32) == 1);
static_assert(sizeof(le64) == 8 && alignof(le64) == 1);

inline uint32_t load_le32(const void* p) {
  uint8_t b[4];
  std::memcpy(b, p, 4);
  return static_cast<uint32_t>(b[0]) | static_cast<uint32_t>(b[1]) << 8 |
         static_cast<uint32_t>(b[2]) << 16 | static_cast<uint32_t>(b[3]) << 24;
}

}  // namespace cfs
