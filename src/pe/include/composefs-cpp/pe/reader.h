// SPDX-License-Identifier: Apache-2.0
// A bounds-checked PE/COFF reader over untrusted bytes (UKIs, addons, EFI
// stubs, kernels): every offset, size and count is checked against the file
// before use, and errors name the field and its file offset.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "composefs-cpp/base/error.h"
#include "composefs-cpp/pe/format.h"

namespace cfs::pe {

struct Section {
  std::string name;  // the 8-byte name up to its first NUL
  uint32_t virtual_size = 0;
  uint32_t virtual_address = 0;
  uint32_t size_of_raw_data = 0;
  uint32_t pointer_to_raw_data = 0;
  uint32_t characteristics = 0;
  size_t header_offset = 0;  // file offset of its 40-byte header

  // What the loader (and systemd-stub) takes as the section's contents:
  // VirtualSize bytes, capped by SizeOfRawData.
  uint32_t data_size() const { return std::min(virtual_size, size_of_raw_data); }
  // The bytes it occupies once loaded (VirtualSize, or SizeOfRawData when 0).
  uint32_t memory_size() const { return virtual_size ? virtual_size : size_of_raw_data; }
};

struct Certificate {
  size_t offset = 0;  // of its WIN_CERTIFICATE header
  uint32_t length = 0;
  uint16_t revision = 0;
  uint16_t type = 0;
  std::span<const uint8_t> data;  // bCertificate
};

class PeFile {
 public:
  // Checks the headers, the section table and every section's placement:
  // raw data inside the file and after the headers, no two sections'
  // raw data or memory ranges overlapping, everything inside SizeOfImage, the
  // certificate table (if any) inside the file.  Keeps a view of `bytes`,
  // which must outlive the PeFile.
  static Result<PeFile> parse(std::span<const uint8_t> bytes);

  std::span<const uint8_t> bytes() const { return bytes_; }
  bool pe32_plus() const { return pe32_plus_; }

  const CoffHeader& coff() const { return coff_; }
  size_t coff_offset() const { return coff_offset_; }
  size_t optional_header_offset() const { return opt_offset_; }
  size_t section_table_offset() const { return section_table_offset_; }
  size_t checksum_offset() const { return opt_offset_ + offsetof(OptionalHeader64, CheckSum); }
  // File offset of DataDirectory[i]; nullopt when NumberOfRvaAndSizes <= i.
  std::optional<size_t> data_directory_offset(size_t i) const;
  DataDirectory data_directory(size_t i) const;  // zeros when absent

  uint32_t number_of_rva_and_sizes() const { return number_of_rva_and_sizes_; }
  uint32_t size_of_headers() const { return size_of_headers_; }
  uint32_t file_alignment() const { return file_alignment_; }
  uint32_t section_alignment() const { return section_alignment_; }
  uint32_t size_of_image() const { return size_of_image_; }
  uint32_t checksum() const { return load_le32(bytes_.data() + checksum_offset()); }
  uint16_t subsystem() const { return subsystem_; }
  uint16_t major_image_version() const { return major_image_version_; }

  const std::vector<Section>& sections() const { return sections_; }
  // The first section of that name (as composefs-rs and systemd-stub).
  const Section* find(std::string_view name) const;
  std::span<const uint8_t> data(const Section& s) const {
    return bytes_.subspan(s.pointer_to_raw_data, s.data_size());
  }
  // The end of the image proper: where the certificate table starts, or the
  // file's end when it has none.
  size_t image_end() const { return image_end_; }
  // The end of the last section's raw data (or of the headers).
  size_t sections_end() const { return sections_end_; }

  // The WIN_CERTIFICATE entries of the certificate table, each checked.
  Result<std::vector<Certificate>> certificates() const;

 private:
  std::span<const uint8_t> bytes_;
  bool pe32_plus_ = true;
  CoffHeader coff_{};
  size_t coff_offset_ = 0, opt_offset_ = 0, section_table_offset_ = 0, data_dirs_offset_ = 0;
  uint32_t number_of_rva_and_sizes_ = 0, size_of_headers_ = 0, file_alignment_ = 0,
           section_alignment_ = 0, size_of_image_ = 0;
  uint16_t subsystem_ = 0, major_image_version_ = 0;
  std::vector<Section> sections_;
  size_t image_end_ = 0, sections_end_ = 0;
};

// The standard PE checksum (what sbsign writes and EDK2 can check): 16-bit
// one's-complement sum of the file with the CheckSum field taken as zero,
// plus the file length.
uint32_t pe_checksum(std::span<const uint8_t> file, size_t checksum_offset);

// UTF-8 validity (composefs-rs reads text sections as UTF-8).
bool is_valid_utf8(std::string_view s);

}  // namespace cfs::pe
