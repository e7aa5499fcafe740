// SPDX-License-Identifier: Apache-2.0
// PE/COFF: the reader, the UKI builder and Authenticode, checked against
// objdump, Python's pefile, sbsign --hash-only, sbverify and openssl, on
// Debian's real systemd-stub, systemd-boot and kernel and on synthetic PEs.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "composefs-cpp/base/hex.h"
#include "composefs-cpp/pe/authenticode.h"
#include "composefs-cpp/pe/builder.h"
#include "composefs-cpp/pe/reader.h"
#include "composefs-cpp/pe/uki.h"
#include "pe_util.h"

using namespace cfs;
using namespace cfs::pe;
using namespace cfs::test;
using json = nlohmann::json;

namespace {

std::string pefile_script() { return std::string(CFS_SOURCE_DIR) + "/tests/pe/pefile_dump.py"; }

bool have_pefile() {
  return have_file(kPython) && run(std::string(kPython) + " -c 'import pefile'").status == 0;
}

json pefile_dump(const std::string& path) {
  auto r = run(std::string(kPython) + " " + shell_quote(pefile_script()) + " " + shell_quote(path));
  EXPECT_EQ(r.status, 0) << r.err;
  return json::parse(r.out);
}

// The Authenticode hash sbsign computes for a file: Debian 12's sbsign
// (0.9.4) has no --hash-only, so sign a copy with a throw-away key and read
// the SHA-256 its SpcIndirectDataContent carries (the DigestInfo right after
// the sha256 AlgorithmIdentifier with NULL parameters).
std::string sbsign_hash(const std::string& path) {
  static TempDir keys;
  static bool have_key = make_test_key(keys.path(), "sbsign oracle");
  EXPECT_TRUE(have_key);
  TempDir t;
  auto r = run("sbsign --key " + shell_quote(keys / "key.pem") + " --cert " +
               shell_quote(keys / "cert.pem") + " --output " + shell_quote(t / "signed") + " " +
               shell_quote(path) + " && sbattach --detach " + shell_quote(t / "sig") + " " +
               shell_quote(t / "signed"));
  EXPECT_EQ(r.status, 0) << r.err;
  Bytes der = read_bytes(t / "sig");
  const Bytes pat{0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03,
                  0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
  auto it = std::search(der.begin(), der.end(), pat.begin(), pat.end());
  if (it == der.end() || der.end() - it < long(pat.size() + 32))
    return "no digest in sbsign's signature";
  return to_hex(std::span<const uint8_t>(&*(it + long(pat.size())), 32));
}

std::string sha256_hex(std::span<const uint8_t> b) {
  auto r = authenticode_sha256(b);
  return r ? to_hex(*r) : "error: " + r.error().message();
}

#define REQUIRE_TOOLS()                                                                           \
  do {                                                                                            \
    if (!have_file(kStub)) GTEST_SKIP() << kStub << " missing (Debian package systemd-boot-efi)"; \
    if (!have_command("sbsign")) GTEST_SKIP() << "sbsign missing (Debian package sbsigntool)";    \
    if (!have_pefile()) GTEST_SKIP() << "python3-pefile missing";                                 \
  } while (0)

struct Built {
  Bytes stub, kernel, uki;
  UkiInputs in;
  BuildNotes notes;
};

Built build_test_uki(const Bytes& kernel) {
  Built b;
  b.stub = read_bytes(kStub);
  b.kernel = kernel;
  b.in.linux = kernel;
  b.in.osrel = "PRETTY_NAME=\"Test OS 1\"\nID=test\nVERSION_ID=1\n";
  b.in.cmdline = "composefs.digest=v1-sha512-12:" + std::string(128, 'a') +
                 " composefs=" + std::string(128, 'a') + " rw console=ttyS0";
  b.in.uname = "6.99.0-test";
  b.in.initrds = {pattern(1001, 1), pattern(4096, 2), pattern(3, 3)};
  auto stub = PeFile::parse(b.stub);
  EXPECT_TRUE(stub) << stub.error().message();
  auto secs = uki_sections(*stub, b.in);
  EXPECT_TRUE(secs) << secs.error().message();
  auto uki = add_sections(b.stub, *secs, &b.notes);
  EXPECT_TRUE(uki) << uki.error().message();
  if (uki) b.uki = *uki;
  return b;
}

}  // namespace

// ------------------------------------------------------------------ reader

TEST(PeReader, RealStubMatchesObjdumpAndPefile) {
  REQUIRE_TOOLS();
  Bytes stub = read_bytes(kStub);
  auto pe = PeFile::parse(stub);
  ASSERT_TRUE(pe) << pe.error().message();
  auto r = run(std::string("objdump -h ") + kStub);
  ASSERT_EQ(r.status, 0);
  // Section lines: "  0 .text  0000bff0  0000000000004000  0000000000004000  00000400  2**4"
  // (no std::regex: GCC 12 warns inside it under the sanitizer build).
  std::istringstream in(r.out);
  std::string l;
  size_t n = 0;
  while (std::getline(in, l)) {
    std::istringstream f(l);
    std::string idx_s, name, size, vma, lma, off, algn;
    if (!(f >> idx_s >> name >> size >> vma >> lma >> off >> algn) || algn.rfind("2**", 0) != 0 ||
        idx_s.find_first_not_of("0123456789") != std::string::npos)
      continue;
    size_t idx = std::stoul(idx_s);
    ASSERT_LT(idx, pe->sections().size());
    const Section& s = pe->sections()[idx];
    EXPECT_EQ(s.name, name);
    EXPECT_EQ(s.virtual_size, std::stoul(size, nullptr, 16)) << s.name;
    EXPECT_EQ(s.virtual_address, std::stoul(vma, nullptr, 16)) << s.name;
    EXPECT_EQ(s.pointer_to_raw_data, std::stoul(off, nullptr, 16)) << s.name;
    n++;
  }
  EXPECT_EQ(n, pe->sections().size());
  json j = pefile_dump(kStub);
  EXPECT_EQ(j["optional"]["SizeOfHeaders"], pe->size_of_headers());
  EXPECT_EQ(j["optional"]["SizeOfImage"], pe->size_of_image());
  EXPECT_EQ(j["optional"]["FileAlignment"], pe->file_alignment());
  EXPECT_EQ(j["optional"]["CheckSum"], pe->checksum());
  EXPECT_EQ(j["optional_offset"], pe->optional_header_offset());
  EXPECT_EQ(stub_version(*pe), 252u);
  ASSERT_NE(pe->find(".sbat"), nullptr);
  EXPECT_EQ(to_hex(pe->data(*pe->find(".sbat"))).substr(0, 10),
            to_hex(Bytes{'s', 'b', 'a', 't', ','}));
}

TEST(PeReader, DebianKernelAndItsSignature) {
  std::string k = debian_kernel();
  if (k.empty())
    GTEST_SKIP() << "no Debian kernel (scripts/debs.sh kernel bookworm-backports failed)";
  Bytes kernel = read_bytes(k);
  auto pe = PeFile::parse(kernel);
  ASSERT_TRUE(pe) << pe.error().message();
  EXPECT_GE(pe->major_image_version(), 1);  // LoadFile2 initrd support
  auto certs = pe->certificates();
  ASSERT_TRUE(certs) << certs.error().message();
  ASSERT_EQ(certs->size(), 1u);  // Debian signs its kernels
  EXPECT_EQ((*certs)[0].revision, kWinCertRevision2);
  EXPECT_EQ((*certs)[0].type, kWinCertTypePkcsSignedData);
  auto rel = kernel_release(kernel);
  ASSERT_TRUE(rel);
  EXPECT_EQ(*rel, trim(read_file(k.substr(0, k.rfind('/')) + "/kver")));
  if (have_command("sbsign")) {
    EXPECT_EQ(sha256_hex(kernel), sbsign_hash(k));
  }
}

TEST(PeReader, SectionDataIsVirtualSizeCappedBySizeOfRawData) {
  SynthPe s;
  s.sections = {{".a", 0x1000, pattern(100, 1)}, {".b", 0x2000, pattern(10, 2)}};
  s.sections[0].vsize = 50;    // shorter than the raw data: 50 bytes
  s.sections[1].vsize = 4000;  // longer: capped by SizeOfRawData (0x200)
  Bytes f = make_pe(s);
  auto pe = PeFile::parse(f);
  ASSERT_TRUE(pe) << pe.error().message();
  EXPECT_EQ(pe->data(pe->sections()[0]).size(), 50u);
  EXPECT_EQ(pe->data(pe->sections()[1]).size(), 0x200u);
  EXPECT_EQ(pe->find(".c"), nullptr);
}

TEST(PeReader, TextSectionsLabelAndDigest) {
  SynthPe s;
  std::string osrel = "PRETTY_NAME='TestOS'\nVERSION_ID=1.0\n", cmd = "root=/dev/sda1 quiet";
  s.sections = {{".osrel", 0x1000, Bytes(osrel.begin(), osrel.end())},
                {".cmdline", 0x2000, Bytes(cmd.begin(), cmd.end())},
                {".linux", 0x3000, pattern(10, 1)},
                {".initrd", 0x4000, pattern(20, 2)},
                {".bad", 0x5000, Bytes{0xff, 0xfe}}};
  Bytes f = make_pe(s);
  auto pe = PeFile::parse(f);
  ASSERT_TRUE(pe);
  EXPECT_EQ(*text_section(*pe, ".cmdline"), cmd);
  EXPECT_EQ(*boot_label(*pe), "TestOS 1.0");
  auto missing = text_section(*pe, ".missing");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), Errc::NotFound);
  EXPECT_NE(missing.error().message().find(".missing"), std::string::npos);
  auto bad = text_section(*pe, ".bad");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("UTF-8"), std::string::npos);
  // bootc's boot digest: SHA-256 of .linux then .initrd (no .dtb here).
  Bytes both = pattern(10, 1);
  Bytes i = pattern(20, 2);
  both.insert(both.end(), i.begin(), i.end());
  auto r = run("printf '" + [&] {
    std::string esc;
    for (uint8_t c : both) esc += fmt::format("\\{:03o}", c);
    return esc;
  }() + "' | sha256sum");
  EXPECT_EQ(*boot_digest(*pe), r.out.substr(0, 64));
  EXPECT_TRUE(check_addon(*pe).error().message().find(".linux") != std::string::npos);
}

// Table-driven corrupt inputs: each must be refused with a message naming
// the field, never crash or read out of bounds (the ASan build checks).
TEST(PeReader, CorruptInputsAreRefused) {
  SynthPe base;
  base.sections = {{".text", 0x1000, pattern(600, 1)}, {".data", 0x2000, pattern(300, 2)}};
  const Bytes good = make_pe(base);
  ASSERT_TRUE(PeFile::parse(good));
  const size_t coff = base.e_lfanew + 4, opt = coff + 20, table = opt + 240;
  auto put32 = [](Bytes& b, size_t off, uint32_t v) {
    for (int i = 0; i < 4; i++) b[off + i] = uint8_t(v >> (8 * i));
  };
  auto put16 = [](Bytes& b, size_t off, uint16_t v) {
    b[off] = uint8_t(v);
    b[off + 1] = uint8_t(v >> 8);
  };
  struct Case {
    const char* what;
    std::function<void(Bytes&)> mutate;
    const char* expect;
  };
  const Case cases[] = {
      {"bad MZ", [&](Bytes& b) { b[0] = 'X'; }, "e_magic"},
      {"e_lfanew past end", [&](Bytes& b) { put32(b, 0x3c, 0xfffffff0); }, "e_lfanew"},
      {"bad PE signature", [&](Bytes& b) { b[base.e_lfanew] = 'Q'; }, "PE signature"},
      {"huge NumberOfSections", [&](Bytes& b) { put16(b, coff + 2, 0xffff); }, "NumberOfSections"},
      {"huge SizeOfOptionalHeader", [&](Bytes& b) { put16(b, coff + 16, 0xfff0); },
       "SizeOfOptionalHeader"},
      {"small SizeOfOptionalHeader", [&](Bytes& b) { put16(b, coff + 16, 100); },
       "SizeOfOptionalHeader"},
      {"bad optional magic", [&](Bytes& b) { put16(b, opt, 0x107); }, "Magic"},
      {"NumberOfRvaAndSizes > 16", [&](Bytes& b) { put32(b, opt + 108, 17); },
       "NumberOfRvaAndSizes"},
      {"FileAlignment not a power of two", [&](Bytes& b) { put32(b, opt + 36, 0x300); },
       "FileAlignment"},
      {"SectionAlignment zero", [&](Bytes& b) { put32(b, opt + 32, 0); }, "SectionAlignment"},
      {"SizeOfHeaders past the end", [&](Bytes& b) { put32(b, opt + 60, 0x7fffffff); },
       "SizeOfHeaders"},
      {"SizeOfHeaders below the section table", [&](Bytes& b) { put32(b, opt + 60, 0x100); },
       "SizeOfHeaders"},
      {"raw data past the end", [&](Bytes& b) { put32(b, table + 40 + 20, 0xfffff000); },
       "past the end"},
      {"raw size past the end", [&](Bytes& b) { put32(b, table + 16, 0x7ffffff0); },
       "past the end"},
      {"raw data inside the headers", [&](Bytes& b) { put32(b, table + 20, 0x200); },
       "overlaps the headers"},
      {"overlapping raw data", [&](Bytes& b) { put32(b, table + 40 + 20, 0x400); },
       "overlap in the file"},
      {"overlapping memory", [&](Bytes& b) { put32(b, table + 40 + 12, 0x1100); },
       "overlap in memory"},
      {"section past SizeOfImage", [&](Bytes& b) { put32(b, table + 40 + 12, 0x7fff0000); },
       "SizeOfImage"},
      {"certificate table past the end",
       [&](Bytes& b) {
         put32(b, opt + 112 + 32, uint32_t(b.size()));
         put32(b, opt + 112 + 36, 16);
       },
       "certificate table"},
      {"certificate table over the sections",
       [&](Bytes& b) {
         put32(b, opt + 112 + 32, 0x400);
         put32(b, opt + 112 + 36, 16);
       },
       "certificate table"},
  };
  for (const auto& c : cases) {
    Bytes b = good;
    c.mutate(b);
    auto r = PeFile::parse(b);
    ASSERT_FALSE(r) << c.what << " was accepted";
    EXPECT_NE(r.error().message().find(c.expect), std::string::npos)
        << c.what << ": " << r.error().message();
  }
  // Every truncation is refused (or, past the headers, still bounds-checked).
  for (size_t n = 0; n < good.size(); n++) {
    auto r = PeFile::parse(std::span<const uint8_t>(good.data(), n));
    EXPECT_FALSE(r) << "truncated to " << n << " bytes was accepted";
  }
}

TEST(PeReader, CertificateEntriesAreChecked) {
  SynthPe s;
  s.sections = {{".text", 0x1000, pattern(512, 1)}};
  s.tail = Bytes(16, 0);
  Bytes f = make_pe(s);
  size_t dd = s.e_lfanew + 4 + 20 + 112 + 4 * 8;
  size_t table = f.size() - 16;
  for (int i = 0; i < 4; i++) f[dd + i] = uint8_t(table >> (8 * i));
  f[dd + 4] = 16;
  // dwLength 200 does not fit the 16-byte table.
  f[table] = 200;
  auto pe = PeFile::parse(f);
  ASSERT_TRUE(pe) << pe.error().message();
  auto c = pe->certificates();
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message().find("dwLength"), std::string::npos);
  f[table] = 4;  // below the header's own size
  EXPECT_FALSE(PeFile::parse(f)->certificates());
  f[table] = 16;
  auto ok = PeFile::parse(f)->certificates();
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->size(), 1u);
}

// ------------------------------------------------------------------ builder

TEST(UkiBuilder, LayoutCheckedByPefileAndObjdump) {
  REQUIRE_TOOLS();
  Built b = build_test_uki(synthetic_kernel());
  ASSERT_FALSE(b.uki.empty());
  EXPECT_TRUE(b.notes.stripped_symbol_table);  // Debian's stub ships one
  TempDir t;
  write_bytes(t / "uki.efi", b.uki);
  json j = pefile_dump(t / "uki.efi");
  json stub = pefile_dump(kStub);
  // pefile finds nothing beyond what it finds in the stub itself (it warns
  // about the stub's own relocation data).
  EXPECT_EQ(j["warnings"], stub["warnings"]) << j["warnings"].dump();

  const auto& o = j["optional"];
  const uint32_t fa = o["FileAlignment"], sa = o["SectionAlignment"];
  // Everything the builder does not own is the stub's.
  for (const char* k :
       {"Magic", "AddressOfEntryPoint", "BaseOfCode", "ImageBase", "SectionAlignment",
        "FileAlignment", "Subsystem", "DllCharacteristics", "SizeOfCode", "MajorImageVersion",
        "MinorImageVersion", "MajorSubsystemVersion", "SizeOfStackReserve", "SizeOfHeapReserve",
        "LoaderFlags", "NumberOfRvaAndSizes", "MajorLinkerVersion", "MinorLinkerVersion"})
    EXPECT_EQ(o[k], stub["optional"][k]) << k;
  EXPECT_EQ(o["Subsystem"], kSubsystemEfiApplication);
  EXPECT_EQ(j["data_directories"], stub["data_directories"]);
  EXPECT_EQ(j["coff"]["Machine"], stub["coff"]["Machine"]);
  EXPECT_EQ(j["coff"]["PointerToSymbolTable"], 0);
  EXPECT_EQ(j["coff"]["NumberOfSymbols"], 0);
  EXPECT_EQ(j["coff"]["Characteristics"].get<int>(),
            stub["coff"]["Characteristics"].get<int>() | 8);
  EXPECT_EQ(o["CheckSum"], j["generated_checksum"]);
  EXPECT_EQ(o["SizeOfHeaders"], stub["optional"]["SizeOfHeaders"]);

  // Sections: the stub's first (.sbat moved: its merged text does not fit
  // before .sdmagic in memory), then ukify's order with .linux last before .sbat.
  std::vector<std::string> names;
  for (const auto& s : j["sections"]) names.push_back(s["Name"]);
  EXPECT_EQ(names, (std::vector<std::string>{".text", ".reloc", ".data", ".dynamic", ".rela",
                                             ".dynsym", ".sdmagic", ".osrel", ".cmdline", ".uname",
                                             ".initrd", ".linux", ".sbat"}));
  EXPECT_TRUE(b.notes.sbat_moved);
  EXPECT_EQ(j["coff"]["NumberOfSections"], names.size());
  // Stub sections keep their place in memory and their bytes.
  for (size_t i = 0; i < 7; i++) {
    const auto& s = j["sections"][i];
    bool found = false;
    for (const auto& t2 : stub["sections"])
      if (t2["Name"] == s["Name"]) {
        found = true;
        EXPECT_EQ(s["VirtualAddress"], t2["VirtualAddress"]);
        EXPECT_EQ(s["Misc_VirtualSize"], t2["Misc_VirtualSize"]);
        EXPECT_EQ(s["sha256"], t2["sha256"]);
        EXPECT_EQ(s["Characteristics"], t2["Characteristics"]);
      }
    EXPECT_TRUE(found);
  }
  uint64_t prev_va_end = 0, prev_raw_end = 0, init = stub["optional"]["SizeOfInitializedData"];
  std::string sbat_text;
  for (size_t i = 7; i < names.size(); i++) {
    const auto& s = j["sections"][i];
    uint32_t va = s["VirtualAddress"], vs = s["Misc_VirtualSize"], raw = s["SizeOfRawData"],
             ptr = s["PointerToRawData"];
    EXPECT_EQ(va % sa, 0u) << names[i];
    EXPECT_EQ(ptr % fa, 0u) << names[i];
    EXPECT_EQ(raw % fa, 0u) << names[i];
    EXPECT_LE(vs, raw);
    EXPECT_GE(raw, vs);
    EXPECT_LT(raw - vs, fa);
    EXPECT_GE(va, prev_va_end);
    EXPECT_GE(ptr, prev_raw_end);
    prev_va_end = uint64_t(va) + vs;
    prev_raw_end = uint64_t(ptr) + raw;
    uint32_t want_ch = kScnMemRead | (names[i] == ".linux" ? kScnCntCode : kScnCntInitializedData);
    EXPECT_EQ(s["Characteristics"], want_ch) << names[i];
    init += vs;
  }
  // The stub's old .sbat no longer counts; the new one does.
  init -= 0xe2;
  EXPECT_EQ(o["SizeOfInitializedData"], init);
  EXPECT_EQ(o["SizeOfImage"], (prev_va_end + sa - 1) / sa * sa);
  EXPECT_EQ(j["size"], prev_raw_end);

  // Contents are exactly the inputs.
  auto pe = PeFile::parse(b.uki);
  ASSERT_TRUE(pe);
  auto data = [&](const char* n) {
    auto d = pe->data(*pe->find(n));
    return Bytes(d.begin(), d.end());
  };
  EXPECT_EQ(data(".linux"), b.kernel);
  EXPECT_EQ(*text_section(*pe, ".cmdline"), *b.in.cmdline);
  EXPECT_EQ(*text_section(*pe, ".osrel"), *b.in.osrel);
  EXPECT_EQ(*text_section(*pe, ".uname"), "6.99.0-test");
  EXPECT_EQ(*boot_label(*pe), "Test OS 1 1");
  Bytes initrd = data(".initrd");
  ASSERT_EQ(initrd.size(), 1004u + 4096u + 4u);  // each padded to 4 bytes
  EXPECT_TRUE(std::equal(b.in.initrds[0].begin(), b.in.initrds[0].end(), initrd.begin()));
  EXPECT_EQ(initrd[1001], 0);
  EXPECT_TRUE(std::equal(b.in.initrds[1].begin(), b.in.initrds[1].end(), initrd.begin() + 1004));
  std::string sbat = *text_section(*pe, ".sbat");
  EXPECT_EQ(
      sbat,
      std::string(kSbatSelfLine) +
          "\nsystemd,1,The systemd Developers,systemd,252,https://systemd.io/\n"
          "systemd.debian,1,Debian GNU/Linux,systemd,252.39-1~deb12u2,https://bugs.debian.org/\n"
          "linux,1,Test,linux,6.99,https://example.invalid\n" +
          std::string(kSbatUkiLine) + "\n" + std::string(1, '\0'));

  // objdump reads the same layout (VMA = ImageBase + VirtualAddress).
  auto r = run("objdump -h -p " + shell_quote(t / "uki.efi"));
  ASSERT_EQ(r.status, 0) << r.err;
  for (const auto& s : pe->sections())
    EXPECT_NE(r.out.find(
                  fmt::format("{:<13} {:08x}  {:016x}", s.name, s.virtual_size, s.virtual_address)),
              std::string::npos)
        << s.name << "\n"
        << r.out;
  EXPECT_NE(r.out.find(fmt::format("SizeOfImage\t\t{:08x}", pe->size_of_image())),
            std::string::npos);
  EXPECT_NE(r.out.find(fmt::format("CheckSum\t\t{:08x}", pe->checksum())), std::string::npos);
}

TEST(UkiBuilder, RealDebianKernel) {
  REQUIRE_TOOLS();
  std::string k = debian_kernel();
  if (k.empty())
    GTEST_SKIP() << "no Debian kernel (scripts/debs.sh kernel bookworm-backports failed)";
  Built b = build_test_uki(read_bytes(k));
  ASSERT_FALSE(b.uki.empty());
  TempDir t;
  write_bytes(t / "uki.efi", b.uki);
  json j = pefile_dump(t / "uki.efi");
  EXPECT_EQ(j["warnings"], pefile_dump(kStub)["warnings"]);
  EXPECT_EQ(j["optional"]["CheckSum"], j["generated_checksum"]);
  auto pe = PeFile::parse(b.uki);
  ASSERT_TRUE(pe);
  auto lin = pe->data(*pe->find(".linux"));
  EXPECT_TRUE(std::equal(lin.begin(), lin.end(), b.kernel.begin(), b.kernel.end()));
  EXPECT_EQ(sha256_hex(b.uki), sbsign_hash(t / "uki.efi"));
}

TEST(UkiBuilder, SbatInPlaceWhenItFits) {
  // A stub with room after .sbat (in the file and in memory): replaced in
  // place, as ukify does, so the section table keeps its order.
  SynthPe s;
  std::string old = "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n";
  s.sections = {{".text", 0x1000, pattern(700, 1), kScnMemRead | kScnCntCode | kScnMemExecute},
                {".sbat", 0x2000, Bytes(old.begin(), old.end())},
                {".data", 0x3000, pattern(10, 2)}};
  Bytes stub = make_pe(s);
  std::string sbat = merge_sbat({old}, {std::string(kSbatUkiLine)});
  BuildNotes notes;
  auto uki = add_sections(stub,
                          {{".osrel", Bytes{'I', 'D', '=', 'x'}},
                           {".linux", synthetic_kernel()},
                           {".sbat", Bytes(sbat.begin(), sbat.end())}},
                          &notes);
  ASSERT_TRUE(uki) << uki.error().message();
  EXPECT_FALSE(notes.sbat_moved);
  auto pe = PeFile::parse(*uki);
  ASSERT_TRUE(pe);
  EXPECT_EQ(pe->sections()[1].name, ".sbat");
  EXPECT_EQ(pe->sections()[1].virtual_address, 0x2000u);
  EXPECT_EQ(pe->sections()[1].virtual_size, sbat.size());
  EXPECT_EQ(pe->sections().size(), 5u);
  EXPECT_EQ(pe->sections().back().name, ".linux");
}

TEST(UkiBuilder, Refusals) {
  SynthPe s;
  s.sections = {{".text", 0x1000, pattern(100, 1)}};
  Bytes stub = make_pe(s);
  // 0x400 of headers hold (0x400 - 0x188) / 40 = 15 section headers, but
  // headers may grow up to the first section (0x1000): 92 in all.
  std::vector<NewSection> many;
  for (int i = 0; i < 100; i++) many.push_back({fmt::format(".s{}", i), Bytes{1}});
  auto r = add_sections(stub, many);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("not enough header space"), std::string::npos);
  many.resize(60);
  auto ok = add_sections(stub, many);
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_GT(PeFile::parse(*ok)->size_of_headers(), 0x400u);
  EXPECT_FALSE(add_sections(stub, {{".waytoolong", Bytes{1}}}));
  EXPECT_FALSE(add_sections(stub, {{".empty", Bytes{}}}));
  // A signed stub (certificate table present) is refused.
  s.tail = Bytes(16, 0);
  Bytes signed_stub = make_pe(s);
  size_t dd = s.e_lfanew + 4 + 20 + 112 + 32;
  uint32_t at = uint32_t(signed_stub.size() - 16);
  for (int i = 0; i < 4; i++) signed_stub[dd + i] = uint8_t(at >> (8 * i));
  signed_stub[dd + 4] = 16;
  signed_stub[at] = 16;
  auto sr = add_sections(signed_stub, {{".osrel", Bytes{1}}});
  ASSERT_FALSE(sr);
  EXPECT_NE(sr.error().message().find("already signed"), std::string::npos);
  // Garbage after the sections that is not a symbol table.
  s.tail = Bytes{1, 2, 3};
  EXPECT_FALSE(add_sections(make_pe(s), {{".osrel", Bytes{1}}}));
  // A kernel that is not a PE image.
  UkiInputs in;
  in.linux = Bytes(100, 0);
  auto secs = uki_sections(*PeFile::parse(stub), in);
  ASSERT_FALSE(secs);
  EXPECT_NE(secs.error().message().find("EFI-stub kernel"), std::string::npos);
}

TEST(UkiBuilder, AddonSections) {
  REQUIRE_TOOLS();
  Bytes stub = read_bytes(kStub);
  UkiInputs in;
  in.cmdline = "debug";
  in.initrds = {pattern(10, 4)};
  auto secs = uki_sections(*PeFile::parse(stub), in);
  ASSERT_TRUE(secs);
  auto addon = add_sections(stub, *secs);
  ASSERT_TRUE(addon) << addon.error().message();
  auto pe = PeFile::parse(*addon);
  ASSERT_TRUE(pe);
  EXPECT_TRUE(check_addon(*pe));
  EXPECT_EQ(pe->find(".linux"), nullptr);
  EXPECT_EQ(*text_section(*pe, ".sbat"), std::string(kSbatSelfLine) + "\n" +
                                             std::string(kSbatAddonLine) + "\n" +
                                             std::string(1, '\0'));
}

// ------------------------------------------------------------- authenticode

TEST(Authenticode, HashEqualsSbsignOnEveryTestPe) {
  REQUIRE_TOOLS();
  TempDir t;
  std::vector<std::pair<std::string, Bytes>> files;
  files.push_back({"stub", read_bytes(kStub)});
  if (have_file(kSystemdBoot)) files.push_back({"systemd-boot", read_bytes(kSystemdBoot)});
  files.push_back({"kernel", synthetic_kernel()});
  Built b = build_test_uki(synthetic_kernel());
  files.push_back({"uki", b.uki});
  SynthPe odd;  // ends on no 8-byte boundary, with trailing data
  odd.file_alignment = 0x20;
  odd.section_alignment = 0x20;
  odd.size_of_headers = 0x1a0 + 0x40;
  odd.sections = {{".text", 0x1000, pattern(33, 9)}};
  odd.tail = {1, 2, 3};
  files.push_back({"odd", make_pe(odd)});
  ASSERT_TRUE(make_test_key(t.path(), "cfs test"));
  auto key = SigningKey::load(t / "key.pem", t / "cert.pem");
  ASSERT_TRUE(key) << key.error().message();
  auto signed_uki = sign_image(b.uki, *key);
  ASSERT_TRUE(signed_uki);
  files.push_back({"signed-uki", *signed_uki});
  for (const auto& [name, data] : files) {
    write_bytes(t / name, data);
    EXPECT_EQ(sha256_hex(data), sbsign_hash(t / name)) << name;
  }
}

TEST(Authenticode, SignaturesVerifyWithSbverify) {
  REQUIRE_TOOLS();
  TempDir t, other;
  ASSERT_TRUE(make_test_key(t.path(), "cfs test db"));
  ASSERT_TRUE(make_test_key(other.path(), "someone else"));
  auto key = SigningKey::load(t / "key.pem", t / "cert.pem");
  ASSERT_TRUE(key) << key.error().message();
  std::string cert = read_file(t / "cert.pem");
  Built b = build_test_uki(synthetic_kernel());
  std::vector<std::pair<std::string, Bytes>> files{{"uki.efi", b.uki}};
  if (have_file(kSystemdBoot)) files.push_back({"BOOTX64.EFI", read_bytes(kSystemdBoot)});
  UkiInputs addon_in;
  addon_in.cmdline = "quiet";
  auto addon_secs = uki_sections(*PeFile::parse(b.stub), addon_in);
  files.push_back({"x.addon.efi", *add_sections(b.stub, *addon_secs)});
  for (const auto& [name, data] : files) {
    auto s = sign_image(data, *key);
    ASSERT_TRUE(s) << name << ": " << s.error().message();
    // Deterministic: the same input signs to the same bytes.
    EXPECT_EQ(*s, *sign_image(data, *key)) << name;
    std::string path = t / ("signed-" + name);
    write_bytes(path, *s);
    auto r = run("sbverify --cert " + shell_quote(t / "cert.pem") + " " + shell_quote(path));
    EXPECT_EQ(r.status, 0) << name << ": " << r.out << r.err;
    EXPECT_NE(r.out.find("Signature verification OK"), std::string::npos) << r.out;
    r = run("sbverify --cert " + shell_quote(other / "cert.pem") + " " + shell_quote(path));
    EXPECT_NE(r.status, 0) << name << " verified with the wrong certificate";
    EXPECT_EQ(*verify_image(*s, cert), 1u);
    EXPECT_FALSE(verify_image(*s, read_file(other / "cert.pem")));
    json j = pefile_dump(path);
    EXPECT_EQ(j["optional"]["CheckSum"], j["generated_checksum"]) << name;
    EXPECT_EQ(j["data_directories"][4]["VirtualAddress"].get<uint64_t>() % 8, 0u);
    EXPECT_EQ(j["data_directories"][4]["Size"].get<uint64_t>() % 8, 0u);
    // Stripping gives back the unsigned image.
    auto stripped = strip_signatures(*s);
    ASSERT_TRUE(stripped);
    EXPECT_EQ(sha256_hex(*stripped), sha256_hex(data));
  }
  // A second signature is appended; sbverify lists both and the image
  // verifies with either certificate.
  auto other_key = SigningKey::load(other / "key.pem", other / "cert.pem");
  auto twice = sign_image(*sign_image(b.uki, *key), *other_key);
  ASSERT_TRUE(twice);
  write_bytes(t / "twice.efi", *twice);
  auto r = run("sbverify --list " + shell_quote(t / "twice.efi"));
  EXPECT_NE(r.out.find("signature 2"), std::string::npos) << r.out;
  EXPECT_EQ(
      run("sbverify --cert " + shell_quote(other / "cert.pem") + " " + shell_quote(t / "twice.efi"))
          .status,
      0);
  EXPECT_EQ(*verify_image(*twice, cert), 1u);  // one of the two is enough, as for firmware
  EXPECT_EQ(*verify_image(*twice, read_file(other / "cert.pem")), 1u);
  // A tampered image fails both checks.
  Bytes bad = *sign_image(b.uki, *key);
  bad[PeFile::parse(bad)->find(".cmdline")->pointer_to_raw_data] ^= 1;
  write_bytes(t / "bad.efi", bad);
  EXPECT_NE(run("sbverify --cert " + shell_quote(t / "cert.pem") + " " + shell_quote(t / "bad.efi"))
                .status,
            0);
  auto v = verify_image(bad, cert);
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().code(), Errc::VerityMismatch);
}

TEST(Authenticode, SignedDataMatchesSbsignsStructure) {
  REQUIRE_TOOLS();
  TempDir t;
  ASSERT_TRUE(make_test_key(t.path(), "cfs asn1"));
  Built b = build_test_uki(synthetic_kernel());
  write_bytes(t / "uki.efi", b.uki);
  ASSERT_EQ(
      run("sbsign --key " + shell_quote(t / "key.pem") + " --cert " + shell_quote(t / "cert.pem") +
          " --output " + shell_quote(t / "theirs.efi") + " " + shell_quote(t / "uki.efi"))
          .status,
      0);
  ASSERT_EQ(run("sbattach --detach " + shell_quote(t / "theirs.der") + " " +
                shell_quote(t / "theirs.efi"))
                .status,
            0);
  auto key = SigningKey::load(t / "key.pem", t / "cert.pem");
  auto digest = authenticode_sha256(b.uki);
  auto ours = authenticode_signature(*digest, *key);
  ASSERT_TRUE(ours);
  write_bytes(t / "ours.der", *ours);
  Bytes theirs = read_bytes(t / "theirs.der");
  // The SpcIndirectDataContent is byte for byte sbsign's: find ours in theirs.
  auto pe7 = run("openssl asn1parse -inform DER -in " + shell_quote(t / "ours.der"));
  auto th7 = run("openssl asn1parse -inform DER -in " + shell_quote(t / "theirs.der"));
  ASSERT_EQ(pe7.status, 0);
  ASSERT_EQ(th7.status, 0);
  for (const char* oid : {"1.3.6.1.4.1.311.2.1.4", "1.3.6.1.4.1.311.2.1.15", "sha256",
                          "pkcs7-signedData", "contentType", "messageDigest", "rsaEncryption"}) {
    EXPECT_NE(pe7.out.find(oid), std::string::npos) << oid << "\n" << pe7.out;
    EXPECT_NE(th7.out.find(oid), std::string::npos) << oid;
  }
  // The IDC: SEQUENCE { SEQUENCE { OID spcPEImageData ... } ... }.
  const Bytes spc_pe{0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x01, 0x0f};
  auto idc_of = [&](const Bytes& d) -> Bytes {
    auto it = std::search(d.begin(), d.end(), spc_pe.begin(), spc_pe.end());
    if (it == d.end() || it - d.begin() < 4) return {};
    size_t start = size_t(it - d.begin()) - 4;  // 30 len 30 len 06 ...
    size_t len = d[start + 1];
    return Bytes(d.begin() + long(start), d.begin() + long(start + 2 + len));
  };
  Bytes a = idc_of(*ours), c = idc_of(theirs);
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(a, c);
  // And sbverify accepts ours embedded, as checked above; here also sbsign's
  // signature passes our own verifier.
  EXPECT_EQ(*verify_image(read_bytes(t / "theirs.efi"), read_file(t / "cert.pem")), 1u);
}

TEST(Authenticode, KeyErrors) {
  TempDir t;
  ASSERT_TRUE(make_test_key(t.path(), "k"));
  ASSERT_EQ(run("openssl pkey -in " + shell_quote(t / "key.pem") +
                " -aes256 -passout pass:x -out " + shell_quote(t / "enc.pem"))
                .status,
            0);
  auto r = SigningKey::load(t / "enc.pem", t / "cert.pem");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("encrypted"), std::string::npos) << r.error().message();
  TempDir o;
  ASSERT_TRUE(make_test_key(o.path(), "o"));
  r = SigningKey::load(o / "key.pem", t / "cert.pem");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("does not belong"), std::string::npos);
  EXPECT_FALSE(SigningKey::load(t / "missing.pem", t / "cert.pem"));
  if (have_file("/usr/share/ovmf/PkKek-1-snakeoil.key")) {
    auto s = SigningKey::load("/usr/share/ovmf/PkKek-1-snakeoil.key",
                              "/usr/share/ovmf/PkKek-1-snakeoil.pem");
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().message().find("encrypted"), std::string::npos);
  }
}

// Not a check: writes the pe_reader fuzz target's seed corpus
// (CFS_WRITE_PE_SEEDS=DIR build/tests/pe_test --gtest_filter=PeSeeds.*).
TEST(PeSeeds, Write) {
  const char* dir = std::getenv("CFS_WRITE_PE_SEEDS");
  if (!dir) GTEST_SKIP() << "set CFS_WRITE_PE_SEEDS=DIR to write the fuzz seeds";
  SynthPe s;
  s.file_alignment = 0x20;
  s.section_alignment = 0x20;
  s.size_of_headers = 0x200;
  std::string sbat = merge_sbat({}, {std::string(kSbatUkiLine)});
  std::string osrel = "PRETTY_NAME='Seed OS'\nVERSION_ID=1\n",
              cmd = "composefs=" + std::string(64, 'a');
  s.size_of_headers = 0x400;
  s.sections = {
      {".text", 0x400, pattern(40, 1), kScnMemRead | kScnCntCode},
      {".sbat", 0x440, Bytes(sbat.begin(), sbat.end())},
      {".sdmagic", 0x600,
       Bytes{'s', 'y', 's', 't', 'e', 'm', 'd', '-', 's', 't', 'u', 'b', ' ', '2', '5', '2'}}};
  Bytes stub = make_pe(s);
  write_bytes(std::string(dir) + "/stub", stub);
  UkiInputs in;
  in.linux = make_pe(
      SynthPe{0x40, 0x20, 0x20, 0x200, 1, kMachineAmd64, {{".text", 0x200, pattern(20, 2)}}, {}});
  in.osrel = osrel;
  in.cmdline = cmd;
  in.initrds = {pattern(5, 3)};
  auto uki = add_sections(stub, *uki_sections(*PeFile::parse(stub), in));
  ASSERT_TRUE(uki) << uki.error().message();
  write_bytes(std::string(dir) + "/uki", *uki);
  TempDir t;
  ASSERT_TRUE(make_test_key(t.path(), "seed"));
  auto key = SigningKey::load(t / "key.pem", t / "cert.pem");
  write_bytes(std::string(dir) + "/signed-uki", *sign_image(*uki, *key));
  UkiInputs addon;
  addon.cmdline = "quiet";
  write_bytes(std::string(dir) + "/addon",
              *add_sections(stub, *uki_sections(*PeFile::parse(stub), addon)));
  write_bytes(std::string(dir) + "/kernel", synthetic_kernel());
}

// Found by the pe_reader fuzzer: a stub with two sections of a name being
// added is refused (which one readers see would be ambiguous).
TEST(UkiBuilder, DuplicateStubSectionsAreRefused) {
  SynthPe s;
  s.sections = {{".osrel", 0x1000, pattern(10, 1)}, {".osrel", 0x2000, pattern(10, 2)}};
  auto r = add_sections(make_pe(s), {{".osrel", Bytes{'I', 'D', '=', 'x'}}});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("more than one .osrel"), std::string::npos);
  EXPECT_TRUE(add_sections(make_pe(s), {{".cmdline", Bytes{'x'}}}));
}
