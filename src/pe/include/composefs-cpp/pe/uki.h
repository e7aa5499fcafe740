// SPDX-License-Identifier: Apache-2.0
// Reading UKIs and addons as composefs-rs, bootc and systemd-stub read them:
// text sections, the boot label, the composefs karg, the boot digest, the
// stub's version, and the addon rules.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "composefs-cpp/base/error.h"
#include "composefs-cpp/pe/reader.h"

namespace cfs::pe {

// A section's bytes as UTF-8 text, not trimmed (composefs-rs's
// get_text_section): NotFound "missing section .x", or Corrupt when the
// bytes are not UTF-8.
Result<std::string> text_section(const PeFile& pe, std::string_view name);

// composefs-rs's get_boot_label: the label built from .osrel.
Result<std::string> boot_label(const PeFile& pe);

// What bootc records as a UKI's boot digest: hex SHA-256 of .linux, .initrd
// and (when present) .dtb, concatenated.  .linux and .initrd are required.
Result<std::string> boot_digest(const PeFile& pe);

// The systemd-stub version from .sdmagic ("#### LoaderInfo: systemd-stub
// 252.39-1~deb12u2 ####" gives 252), or nullopt when the stub has none.
std::optional<unsigned> stub_version(const PeFile& pe);
// The newest systemd-stub behaviour known here, assumed for stubs that do
// not name their version.
inline constexpr unsigned kNewestStubVersion = 258;
inline unsigned stub_version_or_newest(const PeFile& pe) {
  auto v = stub_version(pe);
  return v ? *v : kNewestStubVersion;
}

// Where an addon may differ from a UKI (systemd-stub's rules): no .linux,
// and at least one of .cmdline .dtb .dtbauto .initrd .ucode.
Status check_addon(const PeFile& pe);

// The kernel release an x86 bzImage names in its setup header
// (kernel_version), as ukify detects .uname; nullopt when absent.
std::optional<std::string> kernel_release(std::span<const uint8_t> kernel);

}  // namespace cfs::pe
