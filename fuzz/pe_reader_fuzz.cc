// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: any bytes as a PE image (UKI, addon, stub, kernel).
// Invariants beyond "no crash": every section the reader accepts lies inside
// the file; the certificate walk, text sections, boot label, boot digest and
// Authenticode hash return values or errors with messages; an accepted
// unsigned PE32+ image either refuses new sections with an error or gives
// an image that reads back with them, hashes, and keeps the old sections'
// bytes; stripping signatures gives an image that reads back unsigned.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "composefs-cpp/pe/authenticode.h"
#include "composefs-cpp/pe/builder.h"
#include "composefs-cpp/pe/reader.h"
#include "composefs-cpp/pe/uki.h"

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "invariant violated: %s\n", what);
  std::abort();
}

template <class T>
void expect_message(const cfs::Result<T>& r) {
  if (!r && r.error().message().empty()) fail("error without a message");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cfs;
  using namespace cfs::pe;
  if (size > 1 << 20) return 0;
  std::span<const uint8_t> in(data, size);
  (void)kernel_release(in);
  auto pe = PeFile::parse(in);
  expect_message(pe);
  if (!pe) return 0;
  for (const auto& s : pe->sections()) {
    auto d = pe->data(s);
    if (d.size() && (d.data() < data || d.data() + d.size() > data + size))
      fail("section data outside the file");
  }
  auto certs = pe->certificates();
  expect_message(certs);
  if (certs)
    for (const auto& c : *certs)
      if (c.data.data() < data || c.data.data() + c.data.size() > data + size)
        fail("certificate outside the file");
  for (const char* n : {".cmdline", ".osrel", ".uname", ".sbat"})
    expect_message(text_section(*pe, n));
  expect_message(boot_label(*pe));
  expect_message(boot_digest(*pe));
  (void)stub_version(*pe);
  (void)check_addon(*pe);
  auto hash = authenticode_sha256(in);
  expect_message(hash);

  auto stripped = strip_signatures(in);
  expect_message(stripped);
  if (stripped) {
    auto back = PeFile::parse(*stripped);
    if (!back || back->data_directory(kDirSecurity).Size)
      fail("stripped image does not read back unsigned");
  }

  std::string osrel = "ID=fuzz\n";
  auto built = add_sections(
      in, {{".osrel", std::vector<uint8_t>(osrel.begin(), osrel.end())},
           {".linux", std::vector<uint8_t>(data, data + std::min<size_t>(size, 512))}});
  expect_message(built);
  if (built) {
    auto out = PeFile::parse(*built);
    if (!out) fail("built image does not read back");
    const Section* s = out->find(".osrel");
    if (!s || out->data(*s).size() != osrel.size()) fail("built image lost its new section");
    for (const auto& old : pe->sections()) {
      if (old.name == ".osrel" || old.name == ".linux") continue;
      const Section* n = out->find(old.name);
      if (!n) fail("built image lost a stub section");
      auto a = pe->data(old);
      auto b = out->data(*n);
      // (Realignment may pad a section whose raw size was not aligned.)
      if (pe->find(old.name) == &old &&
          (b.size() < a.size() || !std::equal(a.begin(), a.end(), b.begin())))
        fail("built image changed a stub section");
    }
    // An image that could be hashed (it has a certificate table entry)
    // still can with the new sections.
    auto h2 = authenticode_sha256(*built);
    if (hash && !h2) {
      std::fprintf(stderr, "%s\n", h2.error().message().c_str());
      fail("built image cannot be hashed");
    }
  }
  return 0;
}
