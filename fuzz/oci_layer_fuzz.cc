// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: an OCI layer (the tar reader, layer merging, the image
// writer) and, from the same bytes, a split stream.  Invariants: for an
// archive the reader accepts, its raw bytes plus the data it returned are
// the whole input, in order (what split streams rely on); whatever the merger accepts becomes a
// tree the writer accepts or refuses with an error, never a crash.
#include <sys/mman.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "composefs-cpp/base/fd.h"
#include "composefs-cpp/erofs/writer.h"
#include "composefs-cpp/oci/io.h"
#include "composefs-cpp/oci/layers.h"
#include "composefs-cpp/oci/tar.h"
#include "composefs-cpp/repository/splitstream.h"

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "invariant violated: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cfs;
  using namespace cfs::oci;
  using repository::SplitStreamReader;
  std::string_view input(reinterpret_cast<const char*>(data), size);

  MemReader in(input);
  std::string seen;
  TarReader tar(in, [&](std::span<const uint8_t> b) -> Status {
    seen.append(reinterpret_cast<const char*>(b.data()), b.size());
    return {};
  });
  LayerMerger merger;
  merger.begin_layer("fuzz");
  bool ok = true;
  for (int n = 0; n < 100000; n++) {
    auto e = tar.next();
    if (!e) {
      ok = false;
      break;
    }
    if (!*e) break;
    FileData fd;
    std::string content;
    uint8_t buf[4096];
    for (;;) {
      auto r = tar.read_data(buf);
      if (!r) {
        ok = false;
        break;
      }
      if (*r == 0) break;
      seen.append(reinterpret_cast<const char*>(buf), *r);
      if (content.size() < 4096) content.append(reinterpret_cast<const char*>(buf), *r);
    }
    if (!ok) break;
    if ((*e)->type == TarType::Regular) {
      if ((*e)->size <= kInlineMax)
        fd.inline_data = content.substr(0, (*e)->size);
      else
        fd.digest = fsverity::digest_of(content);
    }
    if (!merger.add(std::move(**e), std::move(fd))) {
      ok = false;
      break;
    }
  }
  // After a clean end, everything was consumed and nothing lost.
  if (ok && (seen.size() != input.size() || seen != input))
    fail("tar reader lost or reordered bytes");
  if (ok && merger.end_layer()) {
    (void)merger.transform_for_oci();
    if (auto tree = merger.to_tree()) (void)erofs::build_image(*tree);
  }

  // The same bytes as a split stream: from memory, and from a file (read in
  // pieces, as a repository's are).
  for (auto alg : {fsverity::HashAlg::Sha256, fsverity::HashAlg::Sha512}) {
    Result<SplitStreamReader> r = make_error(Errc::Io, "");
    if (alg == fsverity::HashAlg::Sha256) {
      r = SplitStreamReader::open(std::string(input), alg, std::nullopt);
    } else {
      UniqueFd fd(::memfd_create("fuzz", MFD_CLOEXEC));
      if (!fd || !write_full(fd.get(), input)) fail("memfd");
      r = SplitStreamReader::open(std::move(fd), alg, std::nullopt);
    }
    if (!r) continue;
    for (int n = 0; n < 100000; n++) {
      auto c = r->next_chunk();
      if (!c || !*c) break;
    }
  }
  return 0;
}
