// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the dump parser, and through it the writer and reader.
// For any dump the parser accepts: writing the tree as a dump and parsing
// that gives the same dump again; and if the writer makes an image of it,
// loading and writing it again gives an image that loads and writes to the
// very same bytes (what composefs-dump promises for mkcomposefs's images).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "composefs-cpp/dump/dump.h"
#include "composefs-cpp/erofs/reader.h"
#include "composefs-cpp/erofs/writer.h"

namespace {

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "invariant violated: %s: %s\n", what, detail.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cfs;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  dump::ParseOptions strict;
  strict.strict = true;
  (void)dump::parse(input, strict);
  auto tree = dump::parse(input);
  if (!tree) {
    if (tree.error().message().empty()) fail("error without message", "parse");
    return 0;
  }
  std::string text = dump::to_string(*tree);
  auto again = dump::parse(text);
  if (!again) fail("re-parsing a written dump", again.error().message());
  if (dump::to_string(*again) != text) fail("dump fixed point", "dumps differ");

  auto image = erofs::build_image(*tree);
  if (!image) return 0;
  auto img = erofs::Image::open(*image);
  if (!img) fail("reading a written image", img.error().message());
  auto loaded = img->to_tree();
  if (!loaded) fail("loading a written image", loaded.error().message());
  erofs::WriteOptions wo;
  wo.min_version = wo.max_version = img->composefs_version();
  auto rewritten = erofs::build_image(*loaded, wo);
  if (!rewritten) fail("rewriting a loaded image", rewritten.error().message());
  // The first image can differ from the rewritten one where the dump holds
  // what an image cannot (a FIFO's size still decides compact vs extended
  // inodes in the C layout); from there on, reading and writing is stable.
  auto img2 = erofs::Image::open(*rewritten);
  if (!img2) fail("reading a rewritten image", img2.error().message());
  auto loaded2 = img2->to_tree();
  if (!loaded2) fail("loading a rewritten image", loaded2.error().message());
  auto third = erofs::build_image(*loaded2, wo);
  if (!third) fail("writing a reloaded image", third.error().message());
  if (*third != *rewritten) fail("composefs-dump round trip", "images differ");

  // Format 2 (composefs-rs's layout): the same fixed point from the tree
  // read back (the first image may hold what a read tree cannot, e.g.
  // user.overlay.whiteout xattrs, which every reader drops).
  auto v2 = erofs::build_image(*tree, 2);
  if (!v2) return 0;  // e.g. over composefs-rs's inline or symlink limits
  auto img_v2 = erofs::Image::open(*v2);
  if (!img_v2) fail("reading a written format 2 image", img_v2.error().message());
  auto loaded_v2 = img_v2->to_tree();
  if (!loaded_v2) fail("loading a written format 2 image", loaded_v2.error().message());
  auto rewritten_v2 = erofs::build_image(*loaded_v2, 2);
  if (!rewritten_v2) fail("rewriting a format 2 image", rewritten_v2.error().message());
  auto img3 = erofs::Image::open(*rewritten_v2);
  if (!img3) fail("reading a rewritten format 2 image", img3.error().message());
  auto loaded3 = img3->to_tree();
  if (!loaded3) fail("loading a rewritten format 2 image", loaded3.error().message());
  auto fourth = erofs::build_image(*loaded3, 2);
  if (!fourth) fail("writing a reloaded format 2 image", fourth.error().message());
  if (*fourth != *rewritten_v2) fail("format 2 round trip", "images differ");
  return 0;
}
