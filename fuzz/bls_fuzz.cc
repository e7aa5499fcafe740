// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: Boot Loader Specification Type 1 entries (the files a
// deployment's boot directory holds, which an image or another tool may have
// written) and entry file names.  Invariants beyond "no crash": a rejected
// entry has a message; an accepted one writes, and what it writes parses to
// an entry that writes the same bytes again; a counter appended to any name
// is stripped again exactly (only the last "+N[-M]" counts, as systemd-boot
// reads it: "a+3+3.conf" is entry "a+3.conf"), and a name is the same entry
// as itself and, with any two counters, the same entry.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "composefs-cpp/boot/bls.h"

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "invariant violated: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cfs::boot;
  if (size > size_t{64} * 1024) return 0;
  std::string_view input(reinterpret_cast<const char*>(data), size);

  auto e = bls::parse(input);
  if (!e) {
    if (e.error().message().empty()) fail("parse error without a message");
  } else {
    auto text = bls::write(*e);
    if (!text) fail("an accepted entry does not write");
    auto again = bls::parse(*text);
    if (!again) fail("a written entry does not parse");
    auto text2 = bls::write(*again);
    if (!text2 || *text2 != *text) fail("write(parse(write(e))) != write(e)");
  }

  // The first line as a file name.
  std::string_view name = input.substr(0, input.find('\n'));
  std::string stripped = bls::strip_boot_counting(name);
  std::string base(name);
  for (const char* counter : {"+3", "+0-7", "+12-0"})
    if (bls::strip_boot_counting(base + counter + ".conf") != base + ".conf")
      fail("an appended boot counter is not stripped exactly");
  if (!bls::same_entry(name, name)) fail("same_entry not reflexive");
  if (!bls::same_entry(base + "+2-1.conf", base + "+0-3.conf"))
    fail("two counts of one name are not the same entry");
  if (stripped.size() > name.size()) fail("stripping made a name longer");
  return 0;
}
