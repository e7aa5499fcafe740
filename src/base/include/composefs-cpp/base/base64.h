// SPDX-License-Identifier: Apache-2.0
// Standard base64 (RFC 4648 section 4, with padding): HTTP Basic
// credentials, bsdtar's xattr values, systemd's PCR signatures.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace cfs {

std::string base64_encode(std::span<const uint8_t> in);
inline std::string base64_encode(std::string_view in) {
  return base64_encode({reinterpret_cast<const uint8_t*>(in.data()), in.size()});
}

// Decodes up to the first '='; nothing when a character is not base64.
std::optional<std::string> base64_decode(std::string_view in);

}  // namespace cfs
