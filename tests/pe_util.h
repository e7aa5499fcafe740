// SPDX-License-Identifier: Apache-2.0
// Test helpers for PE files: synthetic images written field by field
// (independent of the builder under test), file I/O, signing keys.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "composefs-cpp/pe/format.h"
#include "test_util.h"

namespace cfs::test {

using Bytes = std::vector<uint8_t>;

inline Bytes read_bytes(const std::string& path) {
  std::string s = read_file(path);
  return Bytes(s.begin(), s.end());
}
inline void write_bytes(const std::string& path, const Bytes& b) {
  write_file(path, std::string(b.begin(), b.end()));
}

struct SynthSection {
  std::string name;
  uint32_t va = 0;
  Bytes data;
  uint32_t characteristics = pe::kScnMemRead | pe::kScnCntInitializedData;
  int64_t vsize = -1;  // default: data.size()
};

struct SynthPe {
  uint32_t e_lfanew = 0x80;
  uint32_t file_alignment = 0x200;
  uint32_t section_alignment = 0x1000;
  uint32_t size_of_headers = 0x400;
  uint16_t major_image_version = 1;
  uint16_t machine = pe::kMachineAmd64;
  std::vector<SynthSection> sections;
  Bytes tail;  // appended after the last section
};

inline uint32_t align_to(uint64_t v, uint64_t a) { return uint32_t((v + a - 1) / a * a); }

// Writes a PE32+ EFI application: headers, then each section's data at the
// next FileAlignment boundary.
inline Bytes make_pe(const SynthPe& spec) {
  Bytes f(spec.size_of_headers, 0);
  pe::DosHeader dos{};
  dos.e_magic = pe::kDosMagic;
  dos.e_lfanew = spec.e_lfanew;
  std::memcpy(f.data(), &dos, sizeof(dos));
  uint32_t sig = pe::kPeSignature;
  std::memcpy(f.data() + spec.e_lfanew, &sig, 4);
  pe::CoffHeader coff{};
  coff.Machine = spec.machine;
  coff.NumberOfSections = uint16_t(spec.sections.size());
  coff.SizeOfOptionalHeader = sizeof(pe::OptionalHeader64) + 16 * sizeof(pe::DataDirectory);
  coff.Characteristics = 0x206;
  std::memcpy(f.data() + spec.e_lfanew + 4, &coff, sizeof(coff));
  pe::OptionalHeader64 opt{};
  opt.Magic = pe::kPe32PlusMagic;
  opt.SectionAlignment = spec.section_alignment;
  opt.FileAlignment = spec.file_alignment;
  opt.MajorImageVersion = spec.major_image_version;
  opt.SizeOfHeaders = spec.size_of_headers;
  opt.Subsystem = pe::kSubsystemEfiApplication;
  opt.NumberOfRvaAndSizes = 16;
  uint64_t image_end = spec.size_of_headers;
  size_t table = spec.e_lfanew + 4 + sizeof(coff) + coff.SizeOfOptionalHeader;
  for (size_t i = 0; i < spec.sections.size(); i++) {
    const auto& s = spec.sections[i];
    pe::SectionHeader h{};
    std::memcpy(h.Name, s.name.data(), std::min<size_t>(8, s.name.size()));
    h.VirtualSize = uint32_t(s.vsize >= 0 ? s.vsize : int64_t(s.data.size()));
    h.VirtualAddress = s.va;
    h.SizeOfRawData = align_to(s.data.size(), spec.file_alignment);
    h.PointerToRawData = align_to(f.size(), spec.file_alignment);
    h.Characteristics = s.characteristics;
    f.resize(h.PointerToRawData, 0);
    f.insert(f.end(), s.data.begin(), s.data.end());
    f.resize(h.PointerToRawData + h.SizeOfRawData, 0);
    std::memcpy(f.data() + table + i * sizeof(h), &h, sizeof(h));
    image_end = std::max<uint64_t>(image_end, s.va + std::max<uint64_t>(h.VirtualSize, 1));
    if (s.characteristics & pe::kScnCntCode) {
      opt.SizeOfCode = opt.SizeOfCode + h.SizeOfRawData;
      if (!opt.AddressOfEntryPoint) opt.AddressOfEntryPoint = s.va;
    }
  }
  opt.SizeOfImage = align_to(image_end, spec.section_alignment);
  std::memcpy(f.data() + spec.e_lfanew + 4 + sizeof(coff), &opt, sizeof(opt));
  f.insert(f.end(), spec.tail.begin(), spec.tail.end());
  return f;
}

inline Bytes pattern(size_t n, uint8_t seed) {
  Bytes b(n);
  uint32_t x = seed * 2654435761u + 1;
  for (auto& c : b) {
    x = x * 1103515245u + 12345u;
    c = uint8_t(x >> 16);
  }
  return b;
}

// A small EFI-stub-like kernel: PE32+ with a bzImage setup header ("HdrS",
// kernel_version) so .uname can be detected, and its own .sbat.
inline Bytes synthetic_kernel(const std::string& release = "6.99.0-test") {
  SynthPe k;
  k.e_lfanew = 0x280;
  k.size_of_headers = 0x1000;
  SynthSection text{".text", 0x1000, pattern(0x2345, 7), pe::kScnMemRead | pe::kScnCntCode};
  std::string sbat =
      "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n"
      "linux,1,Test,linux,6.99,https://example.invalid\n";
  SynthSection s{".sbat", 0x5000, Bytes(sbat.begin(), sbat.end())};
  k.sections = {text, s};
  Bytes b = make_pe(k);
  b[0x202] = 'H', b[0x203] = 'd', b[0x204] = 'r', b[0x205] = 'S';
  std::string ver = release + " (test@build) #1 SMP";
  size_t at = 0x800;  // after the PE headers, inside SizeOfHeaders
  std::memcpy(b.data() + at, ver.c_str(), ver.size() + 1);
  b[0x20e] = uint8_t((at - 0x200) & 0xff);
  b[0x20f] = uint8_t((at - 0x200) >> 8);
  return b;
}

// A self-signed RSA-2048 key and certificate in `dir` (key.pem, cert.pem).
inline bool make_test_key(const std::string& dir, const std::string& cn) {
  return run("openssl req -new -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -subj '/CN=" + cn +
             "' -keyout " + shell_quote(dir + "/key.pem") + " -out " +
             shell_quote(dir + "/cert.pem"))
             .status == 0;
}

inline const char* kStub = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";
inline const char* kSystemdBoot = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi";
inline const char* kPython = "/usr/bin/python3";

inline bool have_file(const std::string& p) { return ::access(p.c_str(), R_OK) == 0; }

// Debian 12's backports kernel (vmlinuz, signed by Debian) through
// scripts/debs.sh, which caches it outside the repository; "" if it cannot be
// had (then the tests needing it skip).
inline std::string debian_kernel() {
  auto r = run(std::string(CFS_SOURCE_DIR) + "/scripts/debs.sh kernel bookworm-backports");
  if (r.status != 0) return "";
  std::string dir = trim(r.out);
  dir = dir.substr(dir.rfind('\n') == std::string::npos ? 0 : dir.rfind('\n') + 1);
  return have_file(dir + "/vmlinuz") ? dir + "/vmlinuz" : "";
}

}  // namespace cfs::test
