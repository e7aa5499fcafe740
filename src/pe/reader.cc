// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/pe/reader.h"

#include <algorithm>
#include <cstring>

namespace cfs::pe {

namespace {

template <class T>
T load(std::span<const uint8_t> b, size_t off) {
  T v;
  std::memcpy(&v, b.data() + off, sizeof(T));
  return v;
}

bool is_pow2(uint64_t v) { return v && !(v & (v - 1)); }

std::string section_name(const SectionHeader& h) {
  size_t n = 0;
  while (n < sizeof(h.Name) && h.Name[n]) n++;
  return std::string(reinterpret_cast<const char*>(h.Name), n);
}

// Printable for messages: a hostile name may hold anything.
std::string printable(std::string_view s) {
  std::string out;
  for (unsigned char c : s)
    out += (c >= 0x20 && c < 0x7f) ? std::string(1, char(c)) : fmt::format("\\x{:02x}", c);
  return out;
}

}  // namespace

Result<PeFile> PeFile::parse(std::span<const uint8_t> b) {
  PeFile f;
  f.bytes_ = b;
  const uint64_t size = b.size();
  if (size < sizeof(DosHeader))
    return errorf(Errc::Corrupt, "truncated PE file: {} bytes, the DOS header alone needs 64",
                  size);
  auto dos = load<DosHeader>(b, 0);
  if (dos.e_magic != kDosMagic)
    return errorf(Errc::Corrupt, "not a PE file: e_magic at 0x0 is 0x{:04x}, not 0x5a4d (\"MZ\")",
                  uint16_t(dos.e_magic));
  uint64_t pe = dos.e_lfanew;
  if (pe + 4 + sizeof(CoffHeader) > size)
    return errorf(Errc::Corrupt,
                  "e_lfanew (at 0x3c) is 0x{:x}: the PE signature and COFF header would end past "
                  "the end of the file ({} bytes)",
                  pe, size);
  if (load_le32(b.data() + pe) != kPeSignature)
    return errorf(Errc::Corrupt, "no PE signature at 0x{:x} (e_lfanew): found 0x{:08x}", pe,
                  load_le32(b.data() + pe));
  f.coff_offset_ = pe + 4;
  f.coff_ = load<CoffHeader>(b, f.coff_offset_);
  f.opt_offset_ = f.coff_offset_ + sizeof(CoffHeader);
  const uint64_t opt_size = f.coff_.SizeOfOptionalHeader;
  if (f.opt_offset_ + opt_size > size)
    return errorf(Errc::Corrupt,
                  "SizeOfOptionalHeader (at 0x{:x}) is {}: the optional header at 0x{:x} would end "
                  "past the end of the file ({} bytes)",
                  f.coff_offset_ + offsetof(CoffHeader, SizeOfOptionalHeader), opt_size,
                  f.opt_offset_, size);
  if (opt_size < 2)
    return errorf(Errc::Corrupt, "SizeOfOptionalHeader (at 0x{:x}) is {}: no optional header",
                  f.coff_offset_ + offsetof(CoffHeader, SizeOfOptionalHeader), opt_size);
  uint16_t magic = load<le16>(b, f.opt_offset_);
  size_t fixed;
  if (magic == kPe32PlusMagic) {
    fixed = sizeof(OptionalHeader64);
    f.pe32_plus_ = true;
  } else if (magic == kPe32Magic) {
    fixed = sizeof(OptionalHeader32);
    f.pe32_plus_ = false;
  } else {
    return errorf(Errc::Corrupt,
                  "optional header Magic at 0x{:x} is 0x{:x}, neither PE32 (0x10b) nor PE32+ "
                  "(0x20b)",
                  f.opt_offset_, magic);
  }
  if (opt_size < fixed)
    return errorf(Errc::Corrupt,
                  "SizeOfOptionalHeader (at 0x{:x}) is {}, less than the {} bytes of a {} optional "
                  "header",
                  f.coff_offset_ + offsetof(CoffHeader, SizeOfOptionalHeader), opt_size, fixed,
                  f.pe32_plus_ ? "PE32+" : "PE32");
  if (f.pe32_plus_) {
    auto o = load<OptionalHeader64>(b, f.opt_offset_);
    f.number_of_rva_and_sizes_ = o.NumberOfRvaAndSizes;
    f.size_of_headers_ = o.SizeOfHeaders;
    f.file_alignment_ = o.FileAlignment;
    f.section_alignment_ = o.SectionAlignment;
    f.size_of_image_ = o.SizeOfImage;
    f.subsystem_ = o.Subsystem;
    f.major_image_version_ = o.MajorImageVersion;
  } else {
    auto o = load<OptionalHeader32>(b, f.opt_offset_);
    f.number_of_rva_and_sizes_ = o.NumberOfRvaAndSizes;
    f.size_of_headers_ = o.SizeOfHeaders;
    f.file_alignment_ = o.FileAlignment;
    f.section_alignment_ = o.SectionAlignment;
    f.size_of_image_ = o.SizeOfImage;
    f.subsystem_ = o.Subsystem;
    f.major_image_version_ = o.MajorImageVersion;
  }
  const size_t nrva_at = f.opt_offset_ + fixed - 4;
  f.data_dirs_offset_ = f.opt_offset_ + fixed;
  if (f.number_of_rva_and_sizes_ > kMaxDataDirectories)
    return errorf(Errc::Corrupt, "NumberOfRvaAndSizes (at 0x{:x}) is {}, more than {}", nrva_at,
                  f.number_of_rva_and_sizes_, kMaxDataDirectories);
  if (fixed + uint64_t(f.number_of_rva_and_sizes_) * sizeof(DataDirectory) > opt_size)
    return errorf(Errc::Corrupt,
                  "NumberOfRvaAndSizes (at 0x{:x}) is {}: the data directories do not fit in "
                  "SizeOfOptionalHeader ({})",
                  nrva_at, f.number_of_rva_and_sizes_, opt_size);
  const size_t align_at = f.opt_offset_ + offsetof(OptionalHeader64, SectionAlignment);
  if (!is_pow2(f.file_alignment_) || f.file_alignment_ > 0x10000)
    return errorf(Errc::Corrupt,
                  "FileAlignment (at 0x{:x}) is 0x{:x}, not a power of two <= 64 KiB", align_at + 4,
                  f.file_alignment_);
  if (!is_pow2(f.section_alignment_))
    return errorf(Errc::Corrupt, "SectionAlignment (at 0x{:x}) is 0x{:x}, not a power of two",
                  align_at, f.section_alignment_);

  f.section_table_offset_ = f.opt_offset_ + opt_size;
  const uint64_t nsec = f.coff_.NumberOfSections;
  const uint64_t table_end = f.section_table_offset_ + nsec * sizeof(SectionHeader);
  if (table_end > size)
    return errorf(Errc::Corrupt,
                  "NumberOfSections (at 0x{:x}) is {}: the section table at 0x{:x} would end at "
                  "0x{:x}, past the end of the file ({} bytes)",
                  f.coff_offset_ + offsetof(CoffHeader, NumberOfSections), nsec,
                  f.section_table_offset_, table_end, size);
  const size_t soh_at = f.opt_offset_ + offsetof(OptionalHeader64, SizeOfHeaders);
  if (f.size_of_headers_ < table_end || f.size_of_headers_ > size)
    return errorf(Errc::Corrupt,
                  "SizeOfHeaders (at 0x{:x}) is 0x{:x}: it must cover the headers and section "
                  "table (0x{:x}) and lie inside the file (0x{:x} bytes)",
                  soh_at, f.size_of_headers_, table_end, size);

  f.sections_.reserve(nsec);
  f.sections_end_ = f.size_of_headers_;
  for (size_t i = 0; i < nsec; i++) {
    size_t at = f.section_table_offset_ + i * sizeof(SectionHeader);
    auto h = load<SectionHeader>(b, at);
    Section s;
    s.name = section_name(h);
    s.virtual_size = h.VirtualSize;
    s.virtual_address = h.VirtualAddress;
    s.size_of_raw_data = h.SizeOfRawData;
    s.pointer_to_raw_data = h.PointerToRawData;
    s.characteristics = h.Characteristics;
    s.header_offset = at;
    std::string what = fmt::format("section {} '{}' (header at 0x{:x})", i, printable(s.name), at);
    if (s.size_of_raw_data) {
      uint64_t end = uint64_t(s.pointer_to_raw_data) + s.size_of_raw_data;
      if (end > size)
        return errorf(Errc::Corrupt,
                      "{}: raw data [0x{:x}, 0x{:x}) (PointerToRawData, SizeOfRawData) ends past "
                      "the end of the file (0x{:x} bytes)",
                      what, s.pointer_to_raw_data, end, size);
      if (s.pointer_to_raw_data < f.size_of_headers_)
        return errorf(Errc::Corrupt,
                      "{}: raw data at 0x{:x} (PointerToRawData) overlaps the headers "
                      "(SizeOfHeaders 0x{:x})",
                      what, s.pointer_to_raw_data, f.size_of_headers_);
      f.sections_end_ = std::max<size_t>(f.sections_end_, end);
    }
    uint64_t vend = uint64_t(s.virtual_address) + s.memory_size();
    if (s.memory_size() && (vend > f.size_of_image_ || s.virtual_address < f.size_of_headers_))
      return errorf(Errc::Corrupt,
                    "{}: memory range [0x{:x}, 0x{:x}) (VirtualAddress, VirtualSize) is not inside "
                    "the image [SizeOfHeaders 0x{:x}, SizeOfImage 0x{:x})",
                    what, s.virtual_address, vend, f.size_of_headers_, f.size_of_image_);
    f.sections_.push_back(std::move(s));
  }
  // No two sections may share file bytes or memory.
  std::vector<const Section*> order;
  for (const auto& s : f.sections_) order.push_back(&s);
  std::sort(order.begin(), order.end(), [](const Section* x, const Section* y) {
    return x->pointer_to_raw_data < y->pointer_to_raw_data;
  });
  const Section* prev = nullptr;
  for (const Section* s : order) {
    if (!s->size_of_raw_data) continue;
    if (prev &&
        uint64_t(prev->pointer_to_raw_data) + prev->size_of_raw_data > s->pointer_to_raw_data)
      return errorf(Errc::Corrupt,
                    "sections '{}' (header at 0x{:x}) and '{}' (header at 0x{:x}) overlap in the "
                    "file at 0x{:x}",
                    printable(prev->name), prev->header_offset, printable(s->name),
                    s->header_offset, s->pointer_to_raw_data);
    prev = s;
  }
  std::sort(order.begin(), order.end(), [](const Section* x, const Section* y) {
    return x->virtual_address < y->virtual_address;
  });
  prev = nullptr;
  for (const Section* s : order) {
    if (!s->memory_size()) continue;
    if (prev && uint64_t(prev->virtual_address) + prev->memory_size() > s->virtual_address)
      return errorf(
          Errc::Corrupt,
          "sections '{}' (header at 0x{:x}) and '{}' (header at 0x{:x}) overlap in memory "
          "at 0x{:x}",
          printable(prev->name), prev->header_offset, printable(s->name), s->header_offset,
          s->virtual_address);
    prev = s;
  }

  f.image_end_ = size;
  DataDirectory sec = f.data_directory(kDirSecurity);
  if (sec.Size) {
    uint64_t start = sec.VirtualAddress, end = start + sec.Size;
    if (end > size || start < f.sections_end_)
      return errorf(Errc::Corrupt,
                    "the certificate table (DataDirectory[4] at 0x{:x}) [0x{:x}, 0x{:x}) is not "
                    "between the end of the sections (0x{:x}) and the end of the file (0x{:x})",
                    *f.data_directory_offset(kDirSecurity), start, end, f.sections_end_, size);
    f.image_end_ = start;
  }
  return f;
}

std::optional<size_t> PeFile::data_directory_offset(size_t i) const {
  if (i >= number_of_rva_and_sizes_) return std::nullopt;
  return data_dirs_offset_ + i * sizeof(DataDirectory);
}

DataDirectory PeFile::data_directory(size_t i) const {
  auto off = data_directory_offset(i);
  if (!off) return {};
  return load<DataDirectory>(bytes_, *off);
}

const Section* PeFile::find(std::string_view name) const {
  for (const auto& s : sections_)
    if (s.name == name) return &s;
  return nullptr;
}

Result<std::vector<Certificate>> PeFile::certificates() const {
  std::vector<Certificate> out;
  DataDirectory sec = data_directory(kDirSecurity);
  uint64_t pos = sec.VirtualAddress, end = pos + sec.Size;
  if (!sec.Size) return out;
  while (pos < end) {
    if (pos + sizeof(WinCertificate) > end)
      return errorf(Errc::Corrupt,
                    "certificate table: a WIN_CERTIFICATE header at 0x{:x} is cut off at 0x{:x}",
                    pos, end);
    auto w = load<WinCertificate>(bytes_, pos);
    if (w.dwLength < sizeof(WinCertificate) || pos + w.dwLength > end)
      return errorf(Errc::Corrupt,
                    "certificate table: WIN_CERTIFICATE at 0x{:x} has dwLength {}, which does not "
                    "fit the table ending at 0x{:x}",
                    pos, uint32_t(w.dwLength), end);
    Certificate c;
    c.offset = pos;
    c.length = w.dwLength;
    c.revision = w.wRevision;
    c.type = w.wCertificateType;
    c.data = bytes_.subspan(pos + sizeof(WinCertificate), w.dwLength - sizeof(WinCertificate));
    out.push_back(c);
    pos = (pos + w.dwLength + 7) & ~uint64_t(7);
  }
  return out;
}

uint32_t pe_checksum(std::span<const uint8_t> file, size_t checksum_offset) {
  uint64_t sum = 0;
  size_t n = file.size();
  for (size_t i = 0; i < n; i += 2) {
    uint32_t w = file[i] | (i + 1 < n ? uint32_t(file[i + 1]) << 8 : 0);
    if (i >= checksum_offset && i < checksum_offset + 4) w = 0;
    sum += w;
    sum = (sum & 0xffff) + (sum >> 16);
  }
  sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint32_t>(sum + n);
}

bool is_valid_utf8(std::string_view s) {
  size_t i = 0, n = s.size();
  while (i < n) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t len;
    uint32_t cp;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (size_t k = 1; k < len; k++) {
      auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xc0) != 0x80) return false;
      cp = cp << 6 | (d & 0x3f);
    }
    static const uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += len;
  }
  return true;
}

}  // namespace cfs::pe
