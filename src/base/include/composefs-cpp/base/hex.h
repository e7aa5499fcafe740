// SPDX-License-Identifier: Apache-2.0
// Lowercase hex encoding and strict decoding.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace cfs {

namespace detail {
struct HexTable {
  int8_t v[256];
  constexpr HexTable() : v() {
    for (int i = 0; i < 256; i++) v[i] = -1;
    for (int i = 0; i < 10; i++) v['0' + i] = static_cast<int8_t>(i);
    for (int i = 0; i < 6; i++) {
      v['a' + i] = static_cast<int8_t>(10 + i);
      v['A' + i] = static_cast<int8_t>(10 + i);
    }
  }
};
inline constexpr HexTable kHexTable;
}  // namespace detail

// The value of a hex digit (either case), or -1.
inline int hex_value(char c) { return detail::kHexTable.v[static_cast<unsigned char>(c)]; }

inline std::string to_hex(std::span<const uint8_t> bytes) {
  static const char digits[] = "0123456789abcdef";
  std::string s;
  s.resize(bytes.size() * 2);
  for (size_t i = 0; i < bytes.size(); i++) {
    s[2 * i] = digits[bytes[i] >> 4];
    s[2 * i + 1] = digits[bytes[i] & 15];
  }
  return s;
}

// Decodes an even-length hex string (either case); nullopt on any bad char.
inline std::optional<std::vector<uint8_t>> from_hex(std::string_view s) {
  if (s.size() % 2) return std::nullopt;
  std::vector<uint8_t> out(s.size() / 2);
  for (size_t i = 0; i < out.size(); i++) {
    int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return out;
}

}  // namespace cfs
