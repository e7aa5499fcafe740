// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: kernel command lines (both composefs karg parsers, the
// splitter) and os-release text.  Invariants beyond "no crash": tokens are
// non-empty and hold no whitespace outside quotes; a karg either parser
// accepts renders to text both parsers accept again with the same digest;
// stripping the composefs kargs leaves none; a boot label is found exactly
// when one of PRETTY_NAME, NAME, ID dequotes.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "composefs-cpp/boot/cmdline.h"
#include "composefs-cpp/boot/os_release.h"

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "invariant violated: %s\n", what);
  std::abort();
}

bool space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r'; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cfs;
  using namespace cfs::boot;
  if (size > size_t{64} * 1024) return 0;
  std::string_view input(reinterpret_cast<const char*>(data), size);

  for (std::string_view tok : split_cmdline(input)) {
    if (tok.empty()) fail("empty token");
    bool quoted = false;
    for (char c : tok) {
      if (c == '"') quoted = !quoted;
      if (!quoted && space(c)) fail("unquoted whitespace in a token");
    }
  }

  for (auto alg : {fsverity::HashAlg::Sha256, fsverity::HashAlg::Sha512}) {
    auto k = parse_composefs_cmdline(input, alg);
    if (!k) {
      if (k.error().message().empty()) fail("error without a message");
      continue;
    }
    if (!*k) continue;
    if ((*k)->digest.size() != fsverity::hash_digest_size(alg)) fail("digest size");
    std::string text = render_karg(**k);
    auto again = parse_composefs_cmdline(text, alg);
    if (!again || !*again || **again != **k) fail("rendered karg does not parse back (A)");
    auto b = parse_setup_root_kargs(text);
    if (!b || b->size() != 1 || (*b)[0].hex != (*k)->hex() || (*b)[0].insecure != (*k)->insecure)
      fail("rendered karg does not parse back (B)");
  }

  auto all = parse_setup_root_kargs(input);
  if (!all && all.error().message().empty()) fail("error without a message");
  if (all) {
    for (const auto& s : *all)
      if (s.hex.size() != 2 * fsverity::hash_digest_size(s.alg)) fail("setup-root hex length");
  }
  std::string stripped = strip_composefs_kargs(input);
  auto none = parse_setup_root_kargs(stripped);
  if (!none || !none->empty()) fail("stripped command line still has composefs kargs");

  auto osr = OsRelease::parse(input);
  bool any = false;
  for (const char* key : {"PRETTY_NAME", "NAME", "ID"}) {
    auto it = osr.raw().find(key);
    if (it != osr.raw().end() && dequote_os_release_value(it->second)) any = true;
  }
  if (osr.boot_label().has_value() != any) fail("boot label presence");
  return 0;
}
