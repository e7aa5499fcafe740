// SPDX-License-Identifier: Apache-2.0
// PE/COFF on-disk structures (Microsoft's "PE Format" specification; field
// names as there, so they grep against it, pefile and objdump -p), all
// little-endian byte arrays of alignment 1, for UKIs, addons and EFI stubs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "composefs-cpp/base/endian.h"

namespace cfs::pe {

inline constexpr uint16_t kDosMagic = 0x5a4d;         // "MZ"
inline constexpr uint32_t kPeSignature = 0x00004550;  // "PE\0\0"
inline constexpr uint16_t kPe32Magic = 0x10b;
inline constexpr uint16_t kPe32PlusMagic = 0x20b;

inline constexpr uint16_t kMachineAmd64 = 0x8664;
inline constexpr uint16_t kMachineArm64 = 0xaa64;
inline constexpr uint16_t kMachineI386 = 0x14c;

inline constexpr uint16_t kSubsystemEfiApplication = 10;

// COFF header Characteristics.
inline constexpr uint16_t kFileLocalSymsStripped = 0x0008;

// Section Characteristics.
inline constexpr uint32_t kScnCntCode = 0x00000020;
inline constexpr uint32_t kScnCntInitializedData = 0x00000040;
inline constexpr uint32_t kScnMemExecute = 0x20000000;
inline constexpr uint32_t kScnMemRead = 0x40000000;
inline constexpr uint32_t kScnMemWrite = 0x80000000;

// Data directory indices.
inline constexpr size_t kDirSecurity = 4;  // the certificate table (file offset, not RVA)
inline constexpr size_t kDirBaseReloc = 5;
inline constexpr size_t kMaxDataDirectories = 16;

// WIN_CERTIFICATE
inline constexpr uint16_t kWinCertRevision2 = 0x0200;
inline constexpr uint16_t kWinCertTypePkcsSignedData = 0x0002;

// The COFF symbol table's records and the string table length word.
inline constexpr size_t kCoffSymbolSize = 18;

struct DosHeader {
  le16 e_magic;
  uint8_t e_unused[58];  // the real-mode header; only e_lfanew matters to EFI
  le32 e_lfanew;         // file offset of the PE signature
};
static_assert(sizeof(DosHeader) == 64);
static_assert(offsetof(DosHeader, e_lfanew) == 0x3c);

struct CoffHeader {
  le16 Machine;
  le16 NumberOfSections;
  le32 TimeDateStamp;
  le32 PointerToSymbolTable;
  le32 NumberOfSymbols;
  le16 SizeOfOptionalHeader;
  le16 Characteristics;
};
static_assert(sizeof(CoffHeader) == 20);
static_assert(offsetof(CoffHeader, SizeOfOptionalHeader) == 16);

struct DataDirectory {
  le32 VirtualAddress;
  le32 Size;
};
static_assert(sizeof(DataDirectory) == 8);

// PE32+ (Magic 0x20b): 64-bit images, every EFI stub and kernel we build on.
struct OptionalHeader64 {
  le16 Magic;
  uint8_t MajorLinkerVersion;
  uint8_t MinorLinkerVersion;
  le32 SizeOfCode;
  le32 SizeOfInitializedData;
  le32 SizeOfUninitializedData;
  le32 AddressOfEntryPoint;
  le32 BaseOfCode;
  le64 ImageBase;
  le32 SectionAlignment;
  le32 FileAlignment;
  le16 MajorOperatingSystemVersion;
  le16 MinorOperatingSystemVersion;
  le16 MajorImageVersion;
  le16 MinorImageVersion;
  le16 MajorSubsystemVersion;
  le16 MinorSubsystemVersion;
  le32 Win32VersionValue;
  le32 SizeOfImage;
  le32 SizeOfHeaders;
  le32 CheckSum;
  le16 Subsystem;
  le16 DllCharacteristics;
  le64 SizeOfStackReserve;
  le64 SizeOfStackCommit;
  le64 SizeOfHeapReserve;
  le64 SizeOfHeapCommit;
  le32 LoaderFlags;
  le32 NumberOfRvaAndSizes;
  // DataDirectory[NumberOfRvaAndSizes] follows.
};
static_assert(sizeof(OptionalHeader64) == 112);
static_assert(offsetof(OptionalHeader64, SectionAlignment) == 32);
static_assert(offsetof(OptionalHeader64, SizeOfImage) == 56);
static_assert(offsetof(OptionalHeader64, SizeOfHeaders) == 60);
static_assert(offsetof(OptionalHeader64, CheckSum) == 64);
static_assert(offsetof(OptionalHeader64, Subsystem) == 68);
static_assert(offsetof(OptionalHeader64, NumberOfRvaAndSizes) == 108);

// PE32 (Magic 0x10b): read (32-bit EFI binaries exist), never written.
struct OptionalHeader32 {
  le16 Magic;
  uint8_t MajorLinkerVersion;
  uint8_t MinorLinkerVersion;
  le32 SizeOfCode;
  le32 SizeOfInitializedData;
  le32 SizeOfUninitializedData;
  le32 AddressOfEntryPoint;
  le32 BaseOfCode;
  le32 BaseOfData;
  le32 ImageBase;
  le32 SectionAlignment;
  le32 FileAlignment;
  le16 MajorOperatingSystemVersion;
  le16 MinorOperatingSystemVersion;
  le16 MajorImageVersion;
  le16 MinorImageVersion;
  le16 MajorSubsystemVersion;
  le16 MinorSubsystemVersion;
  le32 Win32VersionValue;
  le32 SizeOfImage;
  le32 SizeOfHeaders;
  le32 CheckSum;
  le16 Subsystem;
  le16 DllCharacteristics;
  le32 SizeOfStackReserve;
  le32 SizeOfStackCommit;
  le32 SizeOfHeapReserve;
  le32 SizeOfHeapCommit;
  le32 LoaderFlags;
  le32 NumberOfRvaAndSizes;
};
static_assert(sizeof(OptionalHeader32) == 96);
static_assert(offsetof(OptionalHeader32, CheckSum) == 64);
static_assert(offsetof(OptionalHeader32, NumberOfRvaAndSizes) == 92);

struct SectionHeader {
  uint8_t Name[8];  // NUL-padded; no "/N" string-table names in executables
  le32 VirtualSize;
  le32 VirtualAddress;
  le32 SizeOfRawData;
  le32 PointerToRawData;
  le32 PointerToRelocations;
  le32 PointerToLinenumbers;
  le16 NumberOfRelocations;
  le16 NumberOfLinenumbers;
  le32 Characteristics;
};
static_assert(sizeof(SectionHeader) == 40);
static_assert(offsetof(SectionHeader, VirtualSize) == 8);
static_assert(offsetof(SectionHeader, PointerToRawData) == 20);
static_assert(offsetof(SectionHeader, Characteristics) == 36);

// The certificate table's entries (Authenticode signatures), each 8-byte
// aligned; dwLength includes this header.
struct WinCertificate {
  le32 dwLength;
  le16 wRevision;
  le16 wCertificateType;
  // bCertificate[dwLength - 8] follows (DER PKCS#7 SignedData).
};
static_assert(sizeof(WinCertificate) == 8);

static_assert(std::is_trivially_copyable_v<DosHeader> && std::is_trivially_copyable_v<CoffHeader> &&
              std::is_trivially_copyable_v<OptionalHeader64> &&
              std::is_trivially_copyable_v<SectionHeader>);

}  // namespace cfs::pe
