// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the image reader on arbitrary bytes.  Besides "no crash,
// no hang, no unbounded allocation", it checks what must hold for any image
// the reader accepts: the tree it gives is one the writer can write, and the
// writer's image reads back to a tree that writes the very same bytes again
// (writer after reader is a fixed point), with every path findable by lookup.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>

#include "composefs-cpp/dump/dump.h"
#include "composefs-cpp/erofs/reader.h"
#include "composefs-cpp/erofs/writer.h"

namespace {

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "invariant violated: %s: %s\n", what, detail.c_str());
  std::abort();
}

// Keeps allocation far from libFuzzer's rss limit on tiny inputs.
constexpr uint64_t kTreeBudget = 64 << 20;

void visit_paths(const cfs::Tree& tree, const cfs::erofs::Image& img, const cfs::Node* n,
                 std::string& path) {
  for (const cfs::Node* c : n->children) {
    size_t len = path.size();
    path += '/';
    path += c->name;
    auto nid = img.lookup(path);
    if (!nid || !*nid) fail("lookup of a written path", path);
    cfs::Node loaded;
    auto ok = img.load_node(**nid, loaded);
    if (!ok || !*ok) fail("load_node of a written path", path);
    if (loaded.mode != c->target()->mode) fail("load_node mode", path);
    visit_paths(tree, img, c, path);
    path.resize(len);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cfs;
  auto img = erofs::Image::open(std::span<const uint8_t>(data, size));
  if (!img) {
    if (img.error().message().empty()) fail("error without message", "open");
    return 0;
  }
  erofs::ReadOptions ro;
  ro.max_tree_bytes = kTreeBudget;
  // Exercised for memory safety; their results are not comparable with
  // to_tree() on hostile images (unsorted directories, partial reads).
  (void)img->for_each_object([](const erofs::ObjectRef&) -> Status { return {}; }, ro);
  (void)img->lookup("/a/b");
  auto tree = img->to_tree(ro);
  if (!tree) {
    if (tree.error().message().empty()) fail("error without message", "to_tree");
    return 0;
  }
  (void)dump::to_string(*tree);

  erofs::WriteOptions wo;
  wo.min_version = wo.max_version = img->composefs_version() > 2 ? 1 : img->composefs_version();
  auto first = erofs::build_image(*tree, wo);
  if (!first) return 0;  // e.g. a file too big for the writer's chunk map
  auto img2 = erofs::Image::open(*first);
  if (!img2) fail("reading a written image", img2.error().message());
  auto tree2 = img2->to_tree();
  if (!tree2) fail("loading a written image", tree2.error().message());
  auto second = erofs::build_image(*tree2, wo);
  if (!second) fail("rewriting a written image", second.error().message());
  if (*first != *second) fail("writer/reader fixed point", "images differ");
  std::string path;
  visit_paths(*tree2, *img2, tree2->root(), path);
  return 0;
}
