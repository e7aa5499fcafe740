// SPDX-License-Identifier: Apache-2.0
// Builds UKIs and addons the way systemd's ukify lays them out: sections
// appended to an unsigned systemd-stub, aligned to FileAlignment in the file
// and SectionAlignment in memory, VirtualSize = data length, .linux last
// among the large sections, the stub's .sbat replaced by a merged one.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "composefs-cpp/base/error.h"
#include "composefs-cpp/pe/reader.h"

namespace cfs::pe {

struct NewSection {
  std::string name;  // at most 8 bytes
  std::vector<uint8_t> data;
};

// What happened to the stub while building (for the tool to report).
struct BuildNotes {
  bool stripped_symbol_table = false;
  bool realigned = false;
  // The merged .sbat did not fit where the stub had its own (in the file or
  // before the next section in memory), so it moved to the end.
  bool sbat_moved = false;
};

// Appends `sections` (in this order) to `stub`.  A section whose name the
// stub already has replaces it in place when the new data fits both its
// file space and its memory (else the old one is dropped and the new one
// appended).  Prepares the stub as ukify does first: a trailing COFF symbol
// table is cut off, sections are realigned to FileAlignment, SizeOfHeaders
// rounded up.  Refuses a signed stub, names longer than 8 bytes, and more
// section headers than SizeOfHeaders has room for.  Sets SizeOfImage,
// SizeOfInitializedData and a correct CheckSum.
Result<std::vector<uint8_t>> add_sections(std::span<const uint8_t> stub,
                                          const std::vector<NewSection>& sections,
                                          BuildNotes* notes = nullptr);

inline constexpr std::string_view kSbatSelfLine =
    "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md";
inline constexpr std::string_view kSbatUkiLine =
    "uki,1,UKI,uki,1,https://uapi-group.org/specifications/specs/unified_kernel_image/";
inline constexpr std::string_view kSbatAddonLine =
    "uki-addon,1,UKI Addon,addon,1,https://www.freedesktop.org/software/systemd/man/latest/"
    "systemd-stub.html";

// ukify's merge_sbat: the self line, then every other line of each input
// (the stub's .sbat, the kernel's .sbat) in order, then `extra` lines; joined
// with '\n', followed by "\n" and a NUL.
std::string merge_sbat(const std::vector<std::string_view>& inputs,
                       const std::vector<std::string>& extra);

// ukify's initrd joining: each initrd padded with zeros to 4 bytes.
std::vector<uint8_t> join_initrds(const std::vector<std::vector<uint8_t>>& initrds);

struct UkiInputs {
  std::optional<std::vector<uint8_t>> linux;  // required for a UKI, absent in an addon
  std::vector<std::vector<uint8_t>> initrds;
  std::optional<std::vector<uint8_t>> ucode;
  std::optional<std::string> osrel;
  std::optional<std::string> cmdline;
  std::optional<std::string> uname;
  std::optional<std::vector<uint8_t>> splash;
  std::optional<std::vector<uint8_t>> dtb;
  std::optional<std::string> pcrpkey;
  std::vector<NewSection> extra;  // ukify's --section, after the known ones
  // SBAT lines added after the stub's and the kernel's; empty: ukify's
  // default (the uki line, or the uki-addon line for an addon).
  std::vector<std::string> sbat;
};

// The sections of a UKI (or addon, without linux) in ukify's build order:
// .osrel .cmdline .dtb .uname .splash .pcrpkey .initrd .ucode, the extra
// ones, .linux, .sbat (each only when non-empty).  A UKI's .sbat merges the
// stub's, the kernel's and the extra lines; an addon's is the self line and
// its own lines.  `.pcrsig` is never here: it is added after measuring.
Result<std::vector<NewSection>> uki_sections(const PeFile& stub, const UkiInputs& in);

}  // namespace cfs::pe
