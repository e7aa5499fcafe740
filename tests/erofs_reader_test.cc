// SPDX-License-Identifier: Apache-2.0
// The image reader against the reference vectors (trees that write the same
// bytes again, dumps equal to what the reference's composefs-info prints for
// the same image, lookups that agree with the tree), against truncated and
// corrupted images, and against images erofs-utils writes; format 2 images
// (composefs-rs's layout) of the vectors' trees read as their format 1
// images do.
#include <gtest/gtest.h>
#include <sys/xattr.h>

#include <filesystem>
#include <functional>
#include <map>
#include <set>

#include "composefs-cpp/base/hex.h"
#include "composefs-cpp/dump/dump.h"
#include "composefs-cpp/erofs/format.h"
#include "composefs-cpp/erofs/reader.h"
#include "composefs-cpp/erofs/writer.h"
#include "test_util.h"
#include "vector_util.h"

namespace cfs {
namespace {

using erofs::Image;
using test::Bytes;
using test::expect_reference_output;
using test::expected_dir;
using test::load_dump;
using test::non_strict;
using test::param_name;
using test::pinned_version;
using test::vector_image;
using test::vector_names;
using test::vector_write_options;

class ReadVector : public ::testing::TestWithParam<std::string> {};

TEST_P(ReadVector, TreeWritesTheSameImage) {
  const Bytes& image = vector_image(GetParam());
  auto img = Image::open(image);
  ASSERT_TRUE(img) << img.error().message();
  auto tree = img->to_tree();
  ASSERT_TRUE(tree) << tree.error().message();
  erofs::WriteOptions wo;
  wo.min_version = wo.max_version = img->composefs_version();
  auto again = erofs::build_image(*tree, wo);
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_TRUE(*again == image) << "the image read and written again differs";
}

TEST_P(ReadVector, DumpIsTheReferences) {
  auto img = Image::open(vector_image(GetParam()));
  ASSERT_TRUE(img) << img.error().message();
  auto tree = img->to_tree();
  ASSERT_TRUE(tree) << tree.error().message();
  expect_reference_output(GetParam(), "dump", dump::to_string(*tree));
}

// The reference's test: composefs-info dump | mkcomposefs --from-file gives
// the same image.
TEST_P(ReadVector, DumpParsesBackToTheSameImage) {
  const std::string name = GetParam();
  const Bytes& image = vector_image(name);
  auto img = Image::open(image);
  ASSERT_TRUE(img);
  auto tree = img->to_tree();
  ASSERT_TRUE(tree) << tree.error().message();
  dump::ParseOptions po;
  po.strict = !non_strict(name);
  auto parsed = dump::parse(dump::to_string(*tree), po);
  ASSERT_TRUE(parsed) << parsed.error().message();
  auto again = erofs::build_image(*parsed, vector_write_options(name));
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_TRUE(*again == image);
}

void collect_digests(const Node* n, std::set<std::string>& out) {
  if (!n->link_to && n->is_reg() && n->digest) out.insert(n->digest->hex());
  for (const Node* c : n->children) collect_digests(c, out);
}

TEST_P(ReadVector, ObjectsAreTheReferences) {
  auto img = Image::open(vector_image(GetParam()));
  ASSERT_TRUE(img);
  std::set<std::string> payloads;
  std::set<std::string> paths;
  ASSERT_TRUE(img->for_each_object([&](const erofs::ObjectRef& o) -> Status {
    if (o.payload) payloads.insert(std::string(*o.payload));
    EXPECT_TRUE(paths.insert(std::string(o.path)).second) << "reported twice: " << o.path;
    return {};
  }));
  std::string listed;
  for (auto& p : payloads) listed += p + "\n";
  expect_reference_output(GetParam(), "objects", listed);

  // The digests are those of the tree's files (checked against the
  // reference's dump above).
  auto tree = img->to_tree();
  ASSERT_TRUE(tree);
  std::set<std::string> want;
  collect_digests(tree->root(), want);
  auto digests = img->object_digests();
  ASSERT_TRUE(digests) << digests.error().message();
  std::set<std::string> got;
  for (auto& d : *digests) got.insert(d.hex());
  EXPECT_EQ(got, want);
  EXPECT_EQ(digests->size(), got.size()) << "object_digests() repeats digests";
}

void expect_same_inode(const Node& a, const Node& b, const std::string& path) {
  EXPECT_EQ(a.mode, b.mode) << path;
  EXPECT_EQ(a.nlink, b.nlink) << path;
  EXPECT_EQ(a.uid, b.uid) << path;
  EXPECT_EQ(a.gid, b.gid) << path;
  EXPECT_EQ(a.rdev, b.rdev) << path;
  EXPECT_EQ(a.size, b.size) << path;
  EXPECT_EQ(a.mtime_sec, b.mtime_sec) << path;
  EXPECT_EQ(a.mtime_nsec, b.mtime_nsec) << path;
  EXPECT_EQ(a.payload, b.payload) << path;
  EXPECT_EQ(a.content, b.content) << path;
  EXPECT_EQ(a.digest.has_value(), b.digest.has_value()) << path;
  if (a.digest && b.digest) {
    EXPECT_EQ(a.digest->hex(), b.digest->hex()) << path;
  }
  EXPECT_EQ(a.xattrs, b.xattrs) << path;
}

void check_lookups(const Image& img, const Tree& tree, const Node* dir, std::string& path,
                   size_t& count) {
  for (const Node* c : dir->children) {
    size_t len = path.size();
    path += '/';
    path += c->name;
    auto nid = img.lookup(path);
    ASSERT_TRUE(nid) << path << ": " << nid.error().message();
    ASSERT_TRUE(nid->has_value()) << path << " not found";
    Node loaded;
    auto ok = img.load_node(**nid, loaded);
    ASSERT_TRUE(ok) << path << ": " << ok.error().message();
    ASSERT_TRUE(*ok) << path;
    expect_same_inode(loaded, *c->target(), path);
    if (c->link_to) {
      auto target_nid = img.lookup(c->target()->path());
      ASSERT_TRUE(target_nid && *target_nid);
      EXPECT_EQ(**target_nid, **nid) << path << " is not the same inode as its target";
    }
    // Names next to this one that are not in the directory.
    for (std::string other : {path + "\x01", path + "~", path + "\xff", path.substr(0, len + 1)}) {
      if (tree.lookup(other)) continue;
      auto miss = img.lookup(other);
      ASSERT_TRUE(miss) << miss.error().message();
      EXPECT_FALSE(miss->has_value()) << other << " found";
    }
    count++;
    check_lookups(img, tree, c, path, count);
    path.resize(len);
  }
}

TEST_P(ReadVector, LookupFindsEveryEntry) {
  auto img = Image::open(vector_image(GetParam()));
  ASSERT_TRUE(img);
  auto tree = img->to_tree();
  ASSERT_TRUE(tree);
  std::string path;
  size_t count = 0;
  check_lookups(*img, *tree, tree->root(), path, count);
  EXPECT_EQ(count + 1, tree->node_count());
  auto root = img->lookup("/");
  ASSERT_TRUE(root && *root);
  EXPECT_EQ(**root, img->root_nid());
  // The root's "00".."ff" whiteout stubs are in the image but not the tree.
  if (!tree->lookup("/00")) {
    auto stub = img->lookup("/00");
    ASSERT_TRUE(stub && *stub);
    Node n;
    auto loaded = img->load_node(**stub, n);
    ASSERT_TRUE(loaded);
    EXPECT_FALSE(*loaded);
  }
}

INSTANTIATE_TEST_SUITE_P(Reference, ReadVector, ::testing::ValuesIn(vector_names()), param_name);

// ---------------------------------------------------------------- format 2

// A vector's tree as format 2 can hold it: inline files cut to 512 bytes
// and symlink targets to 1024 (composefs-rs reads no more), files to 8 TiB
// (one chunk).
Tree format2_tree(const std::string& name) {
  dump::ParseOptions po;
  po.strict = !non_strict(name);
  auto t = dump::parse(load_dump(name), po);
  EXPECT_TRUE(t) << t.error().message();
  if (!t) return Tree();
  std::vector<Node*> stack{t->root()};
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    if (n->link_to) continue;
    if (n->is_reg() && n->content && n->content->size() > 512) {
      n->content->resize(512);
      n->size = 512;
    }
    if (n->is_reg() && !n->content) n->size = std::min<uint64_t>(n->size, uint64_t{1} << 43);
    if (n->type() == S_IFLNK && n->payload && n->payload->size() > 1024) {
      n->payload->resize(1024);
      n->size = 1024;
    }
    for (Node* c : n->children) stack.push_back(c);
  }
  return std::move(*t);
}

// What the reader makes of the format 1 and format 2 images of a tree,
// entry by entry, agrees but for what format 2 does not keep: nanoseconds,
// the link counts the tree gives files (it counts names), and the payloads
// of files with a digest (its redirect is the digest's object path); and
// for the opaque=x markers format 1 adds next to whiteouts.
void expect_same_entry(const Node& v1, const Node& v2, const std::string& path) {
  EXPECT_EQ(v1.mode, v2.mode) << path;
  EXPECT_EQ(v1.uid, v2.uid) << path;
  EXPECT_EQ(v1.gid, v2.gid) << path;
  EXPECT_EQ(v1.rdev, v2.rdev) << path;
  EXPECT_EQ(v1.mtime_sec, v2.mtime_sec) << path;
  EXPECT_EQ(v2.mtime_nsec, 0u) << path;
  if (v1.is_dir()) {
    EXPECT_EQ(v1.nlink, v2.nlink) << path;
  } else {
    EXPECT_EQ(v1.size, v2.size) << path;
  }
  EXPECT_EQ(v1.content, v2.content) << path;
  EXPECT_EQ(v1.digest.has_value(), v2.digest.has_value()) << path;
  if (v1.digest && v2.digest) {
    EXPECT_EQ(v1.digest->hex(), v2.digest->hex()) << path;
    EXPECT_EQ(v2.payload, v2.digest->object_path()) << path;
  } else {
    EXPECT_EQ(v1.payload, v2.payload) << path;
  }
  auto keyed = [](const Node& n) {
    std::map<std::string, std::string> m;
    for (auto& x : n.xattrs)
      if (!(n.is_dir() && x.value == "x" &&
            (x.key == "trusted.overlay.opaque" || x.key == "user.overlay.opaque")))
        m[x.key] = x.value;
    return m;
  };
  EXPECT_EQ(keyed(v1), keyed(v2)) << path;
}

void compare_trees(const Node* v1, const Node* v2, std::string& path, size_t& count) {
  ASSERT_EQ(v1->children.size(), v2->children.size()) << path;
  for (size_t i = 0; i < v1->children.size(); i++) {
    const Node* a = v1->children[i];
    const Node* b = v2->children[i];
    size_t len = path.size();
    path += "/" + a->name;
    ASSERT_EQ(a->name, b->name) << path;
    EXPECT_EQ(a->link_to != nullptr, b->link_to != nullptr) << path;
    expect_same_entry(*a->target(), *b->target(), path);
    count++;
    if (!a->link_to) compare_trees(a, b, path, count);
    path.resize(len);
  }
}

class ReadVectorV2 : public ::testing::TestWithParam<std::string> {};

TEST_P(ReadVectorV2, ReadsAsTheFormat1ImageDoes) {
  Tree t = format2_tree(GetParam());
  auto v1 = erofs::build_image(t, 1);
  auto v2 = erofs::build_image(t, 2);
  ASSERT_TRUE(v1 && v2) << (v1 ? v2.error().message() : v1.error().message());
  auto i1 = Image::open(*v1);
  auto i2 = Image::open(*v2);
  ASSERT_TRUE(i1 && i2);
  EXPECT_EQ(i2->composefs_version(), 2u);
  auto t1 = i1->to_tree();
  auto t2 = i2->to_tree();
  ASSERT_TRUE(t1) << t1.error().message();
  ASSERT_TRUE(t2) << t2.error().message();
  std::string path;
  size_t count = 0;
  expect_same_entry(*t1->root(), *t2->root(), "/");
  compare_trees(t1->root(), t2->root(), path, count);
  EXPECT_EQ(count + 1, t2->node_count());
  auto d1 = i1->object_digests();
  auto d2 = i2->object_digests();
  ASSERT_TRUE(d1 && d2);
  EXPECT_EQ(*d1, *d2);
}

TEST_P(ReadVectorV2, TreeWritesTheSameImage) {
  auto image = erofs::build_image(format2_tree(GetParam()), 2);
  ASSERT_TRUE(image) << image.error().message();
  auto img = Image::open(*image);
  ASSERT_TRUE(img);
  auto tree = img->to_tree();
  ASSERT_TRUE(tree) << tree.error().message();
  auto again = erofs::build_image(*tree, 2);
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_TRUE(*again == *image) << "the format 2 image read and written again differs";
  if (test::have_command("fsck.erofs")) {
    test::TempDir dir;
    test::write_file(dir / "image", std::string(image->begin(), image->end()));
    auto r = test::run("fsck.erofs " + test::shell_quote(dir / "image"));
    EXPECT_EQ(r.status, 0) << r.out << r.err;
  }
}

TEST_P(ReadVectorV2, LookupFindsEveryEntry) {
  auto image = erofs::build_image(format2_tree(GetParam()), 2);
  ASSERT_TRUE(image) << image.error().message();
  auto img = Image::open(*image);
  ASSERT_TRUE(img);
  auto tree = img->to_tree();
  ASSERT_TRUE(tree);
  std::string path;
  size_t count = 0;
  check_lookups(*img, *tree, tree->root(), path, count);
  EXPECT_EQ(count + 1, tree->node_count());
  EXPECT_FALSE(img->lookup("/00").value()) << "format 2 has no root stubs";
}

INSTANTIATE_TEST_SUITE_P(Reference, ReadVectorV2, ::testing::ValuesIn(vector_names()), param_name);

TEST(Reader, FilterIsTheReferences) {
  auto tree = dump::parse(load_dump("special.dump"));
  ASSERT_TRUE(tree);
  auto image = erofs::build_image(*tree);
  ASSERT_TRUE(image);
  auto img = Image::open(*image);
  ASSERT_TRUE(img);
  erofs::ReadOptions ro;
  ro.toplevel_filter = {"chardev", "inline", "whiteout"};
  auto filtered = img->to_tree(ro);
  ASSERT_TRUE(filtered) << filtered.error().message();
  EXPECT_EQ(dump::to_string(*filtered), test::read_file(expected_dir() + "/special.filtered.dump"));
}

TEST(Reader, OpensFilesAndDescriptors) {
  const Bytes& image = vector_image("special.dump");
  test::TempDir dir;
  std::string path = dir / "image.cfs";
  test::write_file(path, std::string(image.begin(), image.end()));
  auto from_path = Image::open(path);
  ASSERT_TRUE(from_path) << from_path.error().message();
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(fd);
  auto from_fd = Image::open(fd.get());
  ASSERT_TRUE(from_fd) << from_fd.error().message();
  fd.reset();  // the mapping outlives the descriptor
  auto moved = std::move(*from_fd);
  auto a = from_path->to_tree();
  auto b = moved.to_tree();
  ASSERT_TRUE(a && b);
  EXPECT_EQ(dump::to_string(*a), dump::to_string(*b));
  EXPECT_EQ(from_path->composefs_version(), *pinned_version("special.dump"));

  auto missing = Image::open(dir / "nope");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), Errc::NotFound) << missing.error().message();
}

TEST(Reader, FileTruncatedWhileOpenCannotCrashIt) {
  // Someone truncates the image after we opened it: a mapping would raise
  // SIGBUS on the next access; the reader works on what it read at open.
  const Bytes& image = vector_image("special.dump");
  test::TempDir dir;
  std::string path = dir / "image.cfs";
  test::write_file(path, std::string(image.begin(), image.end()));
  auto img = Image::open(path);
  ASSERT_TRUE(img) << img.error().message();
  ASSERT_EQ(::truncate(path.c_str(), 0), 0);
  auto tree = img->to_tree();
  ASSERT_TRUE(tree) << tree.error().message();
  auto whole = Image::open(image)->to_tree();
  ASSERT_TRUE(whole);
  EXPECT_EQ(dump::to_string(*tree), dump::to_string(*whole));
}

// ------------------------------------------------------- damaged images

bool located(const Error& e) {
  bool code =
      e.code() == Errc::Corrupt || e.code() == Errc::Unsupported || e.code() == Errc::TooBig;
  return code && e.message().find("offset") != std::string::npos;
}

bool same_node(const Node* a, const Node* b) {
  if (a->name != b->name || (a->link_to == nullptr) != (b->link_to == nullptr)) return false;
  if (a->link_to) return a->target()->path() == b->target()->path();
  if (a->mode != b->mode || a->nlink != b->nlink || a->uid != b->uid || a->gid != b->gid ||
      a->rdev != b->rdev || a->size != b->size || a->mtime_sec != b->mtime_sec ||
      a->mtime_nsec != b->mtime_nsec || a->payload != b->payload || a->content != b->content ||
      a->digest != b->digest || a->xattrs != b->xattrs || a->children.size() != b->children.size())
    return false;
  for (size_t i = 0; i < a->children.size(); i++)
    if (!same_node(a->children[i], b->children[i])) return false;
  return true;
}

// Reads a damaged image every way there is.  Each read either fails with a
// reason naming an offset, or succeeds (then the tree must be one the writer
// can handle).  Returns the tree, or nullopt when loading failed.
std::optional<Tree> read_damaged(std::span<const uint8_t> bytes, const std::string& what,
                                 const Tree* whole = nullptr) {
  auto img = Image::open(bytes);
  if (!img) {
    EXPECT_TRUE(located(img.error())) << what << ": " << img.error().message();
    return std::nullopt;
  }
  auto objects = img->for_each_object([](const erofs::ObjectRef&) -> Status { return {}; });
  if (!objects) {
    EXPECT_TRUE(located(objects.error())) << what << ": " << objects.error().message();
  }
  auto nid = img->lookup("/a/b");
  if (!nid) {
    EXPECT_TRUE(located(nid.error())) << what << ": " << nid.error().message();
  }
  auto tree = img->to_tree();
  if (!tree) {
    EXPECT_TRUE(located(tree.error())) << what << ": " << tree.error().message();
    return std::nullopt;
  }
  if (!whole || !same_node(tree->root(), whole->root())) {
    (void)dump::to_string(*tree);
    (void)erofs::build_image(*tree);
  }
  return std::move(*tree);
}

Tree reference_tree(const Bytes& image) {
  auto img = Image::open(image);
  EXPECT_TRUE(img);
  auto tree = img->to_tree();
  EXPECT_TRUE(tree);
  return tree ? std::move(*tree) : Tree();
}

// A shorter image is refused, or (when only unread padding is gone) reads
// exactly as the whole one.
TEST(DamagedImage, TruncatedAtManyLengths) {
  for (const char* name :
       {"special.dump", "longlink.dump", "bigfile-xattr.dump", "honggfuzz-long-symlink.dump"}) {
    const Bytes& image = vector_image(name);
    const Tree whole = reference_tree(image);
    // Everything up to the end of the root directory's data must be there.
    auto img = Image::open(image);
    ASSERT_TRUE(img);
    auto root = img->inode(img->root_nid());
    ASSERT_TRUE(root);
    uint64_t needed =
        root->layout == erofs::kLayoutFlatInline
            ? root->offset + root->inode_size + root->xattr_size + root->size % erofs::kBlockSize
            : uint64_t{root->raw_u} * erofs::kBlockSize + root->size;
    for (size_t len = 0; len < image.size(); len += (len < 1300 ? 1 : 7)) {
      auto got = read_damaged({image.data(), len}, fmt::format("{} cut at {}", name, len));
      if (len < needed) {
        EXPECT_FALSE(got) << name << " cut at " << len << " was not refused";
      } else if (got) {
        EXPECT_TRUE(same_node(got->root(), whole.root()))
            << name << " cut at " << len << " reads differently";
      }
    }
  }
}

// Every byte of the header, superblock, inode table, shared xattrs and the
// root directory's first block damaged in turn (header and superblock with
// several values).  Data blocks after that hold more of the same structures.
class EveryByte : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryByte, CorruptedInTurn) {
  const std::string name = GetParam();
  Bytes image = vector_image(name);
  const Tree whole = reference_tree(image);
  auto img = Image::open(image);
  ASSERT_TRUE(img);
  auto root = img->inode(img->root_nid());
  ASSERT_TRUE(root);
  ASSERT_EQ(root->layout, erofs::kLayoutFlatPlain);  // the root's block is the first data block
  const size_t end = std::min<size_t>(image.size(), (root->raw_u + 1) * erofs::kBlockSize);
  size_t refused = 0, changed = 0, tried = 0;
  for (size_t off = 0; off < end; off++) {
    const uint8_t orig = image[off];
    std::vector<uint8_t> values{static_cast<uint8_t>(orig ^ 0xff)};
    if (off < erofs::kSuperOffset + sizeof(erofs::SuperBlock)) {
      values.push_back(0);
      values.push_back(static_cast<uint8_t>(orig + 1));
    }
    for (uint8_t v : values) {
      if (v == orig) continue;
      image[off] = v;
      auto got = read_damaged(image, fmt::format("{}: byte {} = {:#x}", name, off, v), &whole);
      tried++;
      if (!got)
        refused++;
      else if (!same_node(got->root(), whole.root()))
        changed++;
    }
    image[off] = orig;
  }
  // Not every byte matters (padding, unused fields), but much damage is
  // refused and some reads as a different tree.
  EXPECT_GT(refused, tried / 10) << name;
  EXPECT_GT(changed, 0u) << name;
  std::printf("%s: %zu corruptions, %zu refused, %zu read differently\n", name.c_str(), tried,
              refused, changed);
}

INSTANTIATE_TEST_SUITE_P(DamagedImage, EveryByte,
                         ::testing::Values("special.dump", "bigfile-xattr.dump"), param_name);

// Finds structures in a real image with the reader's raw API, to damage them.
struct Located {
  Bytes image;
  std::unique_ptr<Image> img;

  explicit Located(const Bytes& b) : image(b) {
    auto i = Image::open(image);
    EXPECT_TRUE(i) << i.error().message();
    img = std::make_unique<Image>(std::move(*i));
  }
  erofs::InodeInfo inode(std::string_view path) {
    auto nid = img->lookup(path);
    EXPECT_TRUE(nid && *nid) << path;
    auto in = img->inode(**nid);
    EXPECT_TRUE(in);
    return *in;
  }
  std::vector<erofs::DirEntry> dirents(std::string_view path) {
    std::vector<erofs::DirEntry> out;
    EXPECT_TRUE(img->for_each_dirent(inode(path), [&](const erofs::DirEntry& e) -> Status {
      out.push_back(e);
      return {};
    }));
    return out;
  }
  erofs::DirEntry dirent(std::string_view dir, std::string_view name) {
    for (auto& e : dirents(dir))
      if (e.name == name) return e;
    ADD_FAILURE() << "no entry " << name << " in " << dir;
    return {};
  }
  std::vector<erofs::XattrRef> xattrs(std::string_view path) {
    std::vector<erofs::XattrRef> out;
    EXPECT_TRUE(img->for_each_xattr(inode(path), [&](const erofs::XattrRef& x) -> Status {
      out.push_back(x);
      return {};
    }));
    return out;
  }
  void put16(uint64_t off, uint16_t v) {
    image[off] = v & 0xff;
    image[off + 1] = v >> 8;
  }
  void put32(uint64_t off, uint32_t v) {
    for (int i = 0; i < 4; i++) image[off + i] = (v >> (8 * i)) & 0xff;
  }
  void put64(uint64_t off, uint64_t v) {
    for (int i = 0; i < 8; i++) image[off + i] = (v >> (8 * i)) & 0xff;
  }
  // The error loading the damaged image gives (or "loaded").
  std::string error(const erofs::ReadOptions& ro = {}) {
    auto i = Image::open(image);
    if (!i) return i.error().message();
    auto t = i->to_tree(ro);
    if (!t) {
      EXPECT_TRUE(located(t.error())) << t.error().message();
      return t.error().message();
    }
    return "loaded";
  }
};

::testing::AssertionResult has(const std::string& msg, const std::string& part) {
  if (msg.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << msg << "' does not contain '" << part << "'";
}

TEST(DamagedImage, HeaderAndSuperblock) {
  const Bytes& special = vector_image("special.dump");
  {
    Located l(special);
    l.image.resize(4095);
    EXPECT_TRUE(has(l.error(), "image of 4095 bytes is too small"));
  }
  {
    Located l(special);
    l.put32(0, 0x12345678);
    EXPECT_EQ(l.error(),
              "not a composefs image: magic 0x12345678, expected 0xd078629a (at offset 0)");
  }
  {
    Located l(special);
    l.put32(4, 2);
    auto i = Image::open(l.image);
    ASSERT_FALSE(i);
    EXPECT_EQ(i.error().code(), Errc::Unsupported);
    EXPECT_EQ(i.error().message(), "composefs header version 2 (only 1 is known) (at offset 4)");
  }
  {
    Located l(special);
    l.put32(1024, 0);
    EXPECT_EQ(l.error(),
              "no EROFS superblock: magic 0x00000000, expected 0xe0f5e1e2 (at offset 1024)");
  }
  {
    Located l(special);
    l.image[1036] = 10;
    EXPECT_EQ(l.error(), "EROFS block size 2^10 (only 4096 is supported) (at offset 1036)");
  }
  {
    Located l(special);
    l.put32(1104, 0x80);
    EXPECT_EQ(l.error(), "unsupported EROFS incompatible features 0x80 (at offset 1104)");
  }
  {
    Located l(special);
    l.put32(1064, 1000);
    EXPECT_TRUE(has(l.error(), "metadata block 1000 is past the end of the image"));
  }
  {
    Located l(special);
    l.put16(1038, 0xffff);
    EXPECT_TRUE(has(l.error(), "inode number 65535 is past the end of the image"));
  }
  {
    Located l(special);
    l.put16(1038, static_cast<uint16_t>(l.inode("/inline").nid));
    EXPECT_TRUE(has(l.error(), "is not a directory"));
  }
  {
    // The composefs format version is not checked (as in the reference).
    Located l(special);
    l.put32(12, 7);
    EXPECT_EQ(l.error(), "loaded");
  }
}

TEST(DamagedImage, Inodes) {
  const Bytes& special = vector_image("special.dump");
  Located probe(special);
  const uint64_t root = probe.inode("/").offset;
  {
    Located l(special);
    l.put16(root, 0x10);
    EXPECT_TRUE(has(l.error(), "has unsupported i_format 0x10 (at offset 1152)"));
  }
  {
    Located l(special);
    l.put16(root, 5 << 1);
    EXPECT_TRUE(has(l.error(), "has invalid data layout 5"));
  }
  {
    Located l(special);
    l.put16(root, 1 << 1);
    EXPECT_TRUE(has(l.error(), "has compressed data (layout 1)"));
  }
  {
    Located l(special);
    l.put16(root + 4, 0);
    EXPECT_TRUE(has(l.error(), "has invalid file mode 0 (at offset 1156)"));
  }
  {
    Located l(special);
    l.put16(root + 2, 0xffff);
    EXPECT_TRUE(has(l.error(), "xattr area of 262148 bytes runs past the end of the image"));
  }
  {
    // A directory far bigger than the image.
    Located l(special);
    erofs::InodeInfo in = probe.inode("/");
    if (in.compact)
      l.put32(root + 8, 0x7fffffff);
    else
      l.put64(root + 8, 1ull << 62);
    EXPECT_TRUE(has(l.error(), "more than the image's"));
  }
  {
    // Directory blocks past the end.
    Located l(special);
    erofs::InodeInfo in = probe.inode("/");
    ASSERT_GE(in.size, erofs::kBlockSize);
    l.put32(root + 16, 0x00ffffff);
    EXPECT_TRUE(has(l.error(), "data blocks 16777215..16777215 run past the end of the image"));
  }
  {
    // Inline data that would cross into the next block.
    Located l(special);
    erofs::InodeInfo in = probe.inode("/inline");
    ASSERT_EQ(in.layout, erofs::kLayoutFlatInline);
    uint64_t tail = in.offset + in.inode_size + in.xattr_size;
    uint64_t room = erofs::kBlockSize - tail % erofs::kBlockSize;
    l.put32(in.offset + 8, static_cast<uint32_t>(room + 1));
    EXPECT_TRUE(has(l.error(), "crosses a block boundary"));
  }
  {
    const Bytes& links = vector_image("honggfuzz-long-symlink.dump");
    Located l(links);
    erofs::InodeInfo in = l.inode("/symlink");
    l.put32(in.offset + 8, 0);
    EXPECT_TRUE(has(l.error(), "has an empty target"));
  }
  {
    // A whiteout with two links: refused, as the current C reference does.
    Located l(special);
    erofs::InodeInfo in = probe.inode("/00");
    ASSERT_TRUE(in.compact);
    l.put16(in.offset + 6, 2);
    EXPECT_TRUE(has(l.error(), "whiteout inode"));
  }
}

TEST(DamagedImage, Xattrs) {
  const Bytes& special = vector_image("special.dump");
  Located probe(special);
  auto xs = probe.xattrs("/escaped-xattr");
  const erofs::XattrRef* inl = nullptr;
  const erofs::XattrRef* shared = nullptr;
  for (auto& x : xs) (x.shared ? shared : inl) = &x;
  ASSERT_TRUE(inl && shared);
  {
    Located l(special);
    l.image[inl->offset + 1] = 7;
    EXPECT_TRUE(has(l.error(), "xattr with unknown name index 7"));
  }
  {
    Located l(special);
    l.image[inl->offset + 1] = 0x81;
    EXPECT_TRUE(has(l.error(), "xattr with a long name prefix (0x81)"));
  }
  {
    Located l(special);
    l.put16(inl->offset + 2, 0xffff);
    EXPECT_TRUE(has(l.error(), "runs past the end of its area"));
  }
  {
    Located l(special);
    erofs::InodeInfo in = probe.inode("/");
    l.image[in.offset + in.inode_size + 4] = 255;
    EXPECT_TRUE(has(l.error(), "255 shared xattrs do not fit its xattr area"));
  }
  {
    // A shared xattr id pointing past the end of the image.
    Located l(special);
    erofs::InodeInfo in = probe.inode("/escaped-xattr");
    l.put32(in.offset + in.inode_size + 12, 0xfffffff0);
    EXPECT_TRUE(has(l.error(), "shared xattr 4294967280 (id at offset"));
  }
  {
    // An xattr whose name has a NUL byte.
    Located l(special);
    ASSERT_GT(inl->suffix.size(), 0u);
    l.image[inl->offset + 4] = 0;
    EXPECT_TRUE(has(l.error(), "contains a NUL byte"));
  }
}

TEST(DamagedImage, Directories) {
  const Bytes& special = vector_image("special.dump");
  Located probe(special);
  auto root_entries = probe.dirents("/");
  ASSERT_GT(root_entries.size(), 3u);
  const uint64_t block = root_entries[0].offset;  // the first dirent is at the block start
  {
    Located l(special);
    l.put16(block + 8, 5);
    EXPECT_TRUE(has(l.error(), "invalid first name offset 5"));
  }
  {
    Located l(special);
    l.put16(block + 8, 0);
    EXPECT_TRUE(has(l.error(), "invalid first name offset 0"));
  }
  {
    // The second name starting where the first does.
    Located l(special);
    l.put16(block + 12 + 8, static_cast<uint16_t>(l.image[block + 8] | l.image[block + 9] << 8));
    EXPECT_TRUE(has(l.error(), "not after the previous one"));
  }
  {
    Located l(special);
    erofs::DirEntry e = probe.dirent("/", "inline");
    l.put64(e.offset, uint64_t{1} << 40);
    EXPECT_TRUE(has(l.error(), "'/inline' (entry at offset"));
    EXPECT_TRUE(has(l.error(), "inode number 1099511627776 is past the end of the image"));
  }
  {
    // A name with '/' in it.
    Located l(special);
    erofs::DirEntry e = probe.dirent("/", "inline");
    l.image[e.name.data() - reinterpret_cast<const char*>(probe.image.data()) + 1] = '/';
    EXPECT_TRUE(has(l.error(), "has a name containing '/'"));
  }
  {
    // A name with a NUL byte (not the block's last name).
    Located l(special);
    erofs::DirEntry e = probe.dirent("/", "inline");
    l.image[e.name.data() - reinterpret_cast<const char*>(probe.image.data()) + 1] = 0;
    EXPECT_TRUE(has(l.error(), "has a name containing a NUL byte"));
  }
  {
    // Two entries with the same name.
    Located l(special);
    erofs::DirEntry a = probe.dirent("/", "inline-large1");
    erofs::DirEntry b = probe.dirent("/", "inline-large2");
    std::memcpy(&l.image[b.name.data() - reinterpret_cast<const char*>(probe.image.data())],
                a.name.data(), a.name.size());
    EXPECT_TRUE(has(l.error(), "'inline-large1' is not after 'inline-large1' in name order"));
  }
  {
    // Names out of order: the kernel's binary search would not find them,
    // and the first entry of a hardlinked inode would not be the first name.
    Located l(special);
    erofs::DirEntry a = probe.dirent("/", "blockdev");
    erofs::DirEntry b = probe.dirent("/", "whiteout");
    std::memcpy(&l.image[b.name.data() - reinterpret_cast<const char*>(probe.image.data())],
                a.name.data(), a.name.size());
    EXPECT_TRUE(has(l.error(), "directory entry 'blockdev' is not after 'inline-large3'"));
  }
}

// An inode with thousands of xattrs, some names repeated (which no writer
// makes): later entries replace earlier ones the way the C library does (the
// last entry moves into the hole), in linear time.
TEST(DamagedImage, ManyXattrsWithRepeatedNames) {
  Tree t;
  Node* root = t.new_node();
  root->mode = S_IFDIR | 0755;
  t.set_root(root);
  Node* f = t.new_node();
  f->mode = S_IFREG | 0644;
  for (int i = 0; i < 2000; i++) f->set_xattr(fmt::format("user.k{:04}", i), fmt::format("v{}", i));
  ASSERT_TRUE(t.add_child(root, "f", f));
  auto image = erofs::build_image(t);
  ASSERT_TRUE(image) << image.error().message();
  Located l(*image);
  auto entries = l.xattrs("/f");
  ASSERT_EQ(entries.size(), 2000u);
  // Every third entry takes the name of the one before it.
  for (size_t i = 3; i < entries.size(); i += 3)
    std::memcpy(&l.image[entries[i].offset + 4], entries[i - 1].suffix.data(), 5);
  std::vector<Xattr> want;
  for (size_t i = 0; i < entries.size(); i++) {
    std::string key = "user." + std::string(entries[i % 3 == 0 && i ? i - 1 : i].suffix);
    std::string value(entries[i].value);
    for (size_t j = 0; j < want.size(); j++) {
      if (want[j].key == key) {
        want[j] = want.back();
        want.pop_back();
        break;
      }
    }
    want.push_back({key, value});
  }
  auto img = Image::open(l.image);
  ASSERT_TRUE(img);
  auto nid = img->lookup("/f");
  ASSERT_TRUE(nid && *nid);
  Node n;
  auto ok = img->load_node(**nid, n);
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_EQ(n.xattrs, want);
}

// A directory that contains itself, or two entries for one directory: the
// C reader would make a hardlink to a directory; a naive walk would loop.
TEST(DamagedImage, CyclesAndDirectoryHardlinks) {
  Tree t;
  Node* root = t.new_node();
  root->mode = S_IFDIR | 0755;
  t.set_root(root);
  Node* a = t.new_node();
  a->mode = S_IFDIR | 0755;
  ASSERT_TRUE(t.add_child(root, "a", a));
  Node* b = t.new_node();
  b->mode = S_IFDIR | 0755;
  ASSERT_TRUE(t.add_child(a, "b", b));
  Node* c = t.new_node();
  c->mode = S_IFDIR | 0755;
  ASSERT_TRUE(t.add_child(root, "c", c));
  auto image = erofs::build_image(t);
  ASSERT_TRUE(image);
  Located probe(*image);
  {
    // /a/b -> the root.
    Located l(*image);
    l.put64(probe.dirent("/a", "b").offset, probe.img->root_nid());
    EXPECT_TRUE(has(l.error(), "'/a/b' is another entry for directory inode"));
    Located again(l.image);
    auto r = again.img->for_each_object([](const erofs::ObjectRef&) -> Status { return {}; });
    ASSERT_FALSE(r);
    EXPECT_TRUE(has(r.error().message(), "another entry for directory inode"));
  }
  {
    // /a/b -> /a (its parent).
    Located l(*image);
    l.put64(probe.dirent("/a", "b").offset, probe.dirent("/", "a").nid);
    EXPECT_TRUE(has(l.error(), "'/a/b' is another entry for directory inode"));
  }
  {
    // /c -> /a: two entries for one directory.
    Located l(*image);
    l.put64(probe.dirent("/", "c").offset, probe.dirent("/", "a").nid);
    EXPECT_TRUE(has(l.error(), "'/c' is another entry for directory inode"));
  }
  {
    // ".." pointing elsewhere is ignored, as by the C reader.
    Located l(*image);
    l.put64(probe.dirent("/a", "..").offset, probe.dirent("/", "c").nid);
    EXPECT_EQ(l.error(), "loaded");
  }
}

TEST(DamagedImage, DepthAndMemoryAreBounded) {
  Tree t;
  Node* n = t.new_node();
  n->mode = S_IFDIR | 0755;
  t.set_root(n);
  for (size_t i = 0; i < kMaxDepth; i++) {
    Node* c = t.new_node();
    c->mode = S_IFDIR | 0755;
    ASSERT_TRUE(t.add_child(n, "d", c));
    n = c;
  }
  auto image = erofs::build_image(t);
  ASSERT_TRUE(image) << image.error().message();
  auto img = Image::open(*image);
  ASSERT_TRUE(img);
  auto tree = img->to_tree();
  ASSERT_FALSE(tree);
  EXPECT_EQ(tree.error().code(), Errc::TooBig);
  EXPECT_TRUE(has(tree.error().message(), "directories nested deeper than 4096 levels"));
  auto objects = img->for_each_object([](const erofs::ObjectRef&) -> Status { return {}; });
  ASSERT_FALSE(objects);
  EXPECT_EQ(objects.error().code(), Errc::TooBig);
  // The deepest path is still found.
  std::string deep;
  for (size_t i = 0; i < kMaxDepth; i++) deep += "/d";
  auto nid = img->lookup(deep);
  ASSERT_TRUE(nid && *nid);

  auto special = Image::open(vector_image("special.dump"));
  ASSERT_TRUE(special);
  erofs::ReadOptions ro;
  ro.max_tree_bytes = 2000;
  auto small = special->to_tree(ro);
  ASSERT_FALSE(small);
  EXPECT_EQ(small.error().code(), Errc::TooBig);
  EXPECT_TRUE(has(small.error().message(), "needs more than 2000 bytes of memory"));
}

// Images made by the writer of trees the reader must turn back into the same
// tree: hardlinks (primary = first in depth-first order), escaped overlay
// xattrs, whiteouts, big external files and sha512 digests (composefs-rs).
TEST(Reader, TreeFeaturesRoundTrip) {
  const char* text =
      "/ 4096 40755 2 0 0 0 10.5 - - - trusted.overlay.custom=1 user.x=y\n"
      "/a 0 40700 2 1 2 0 11.0 - - -\n"
      "/a/link 0 @120777 - - - - 0.0 /z/file - -\n"
      "/a/wh 0 20644 1 0 0 0 12.0 - - -\n"
      "/big 9000000000 100644 1 0 0 0 13.7 ab/cdef - "
      "1111111111111111111111111111111111111111111111111111111111111111\n"
      "/sha512 10 100644 1 0 0 0 13.7 cd/ef - "
      "2222222222222222222222222222222222222222222222222222222222222222"
      "2222222222222222222222222222222222222222222222222222222222222222\n"
      "/z 0 40755 2 0 0 0 10.5 - - -\n"
      "/z/file 3 100644 2 0 0 0 10.5 - abc - security.selinux=lbl\n";
  auto tree = dump::parse(text);
  ASSERT_TRUE(tree) << tree.error().message();
  auto image = erofs::build_image(*tree);
  ASSERT_TRUE(image);
  auto img = Image::open(*image);
  ASSERT_TRUE(img);
  EXPECT_EQ(img->composefs_version(), 1u);  // it holds a whiteout
  auto read = img->to_tree();
  ASSERT_TRUE(read) << read.error().message();
  // /a/link comes first in depth-first order, so it is the primary now.
  // Without /sha512 this is what the reference's composefs-info prints for
  // the same image, except for /big's payload: its reader copies one byte
  // past the redirect value (value_size++), and here the entry ends on a
  // 4-byte boundary followed by the chunk map, so it prints "ab/cdef\xff\xff".
  EXPECT_EQ(dump::to_string(*read),
            "/ 4096 40755 4 0 0 0 10.5 - - - trusted.overlay.custom=1 user.x=y\n"
            "/a 57 40700 2 1 2 0 11.0 - - - trusted.overlay.opaque=x user.overlay.opaque=x\n"
            "/a/link 3 100644 2 0 0 0 10.5 - abc - security.selinux=lbl\n"
            "/a/wh 0 20644 1 0 0 0 12.0 - - -\n"
            "/big 9000000000 100644 1 0 0 0 13.7 ab/cdef - "
            "1111111111111111111111111111111111111111111111111111111111111111\n"
            "/sha512 10 100644 1 0 0 0 13.7 cd/ef - "
            "2222222222222222222222222222222222222222222222222222222222222222"
            "2222222222222222222222222222222222222222222222222222222222222222\n"
            "/z 43 40755 2 0 0 0 10.5 - - -\n"
            "/z/file 3 @100644 2 0 0 0 10.5 /a/link abc - security.selinux=lbl\n");
  std::vector<std::string> objects;
  ASSERT_TRUE(img->for_each_object([&](const erofs::ObjectRef& o) -> Status {
    objects.push_back(fmt::format("{} {} {} {}", o.path, o.payload.value_or("-"), o.size,
                                  o.digest ? o.digest->hex().substr(0, 4) : "-"));
    return {};
  }));
  EXPECT_EQ(objects,
            (std::vector<std::string>{"/big ab/cdef 9000000000 1111", "/sha512 cd/ef 10 2222"}));
  erofs::ReadOptions ro;
  ro.toplevel_filter = {"sha512"};
  objects.clear();
  ASSERT_TRUE(img->for_each_object(
      [&](const erofs::ObjectRef& o) -> Status {
        objects.push_back(std::string(o.path));
        return {};
      },
      ro));
  EXPECT_EQ(objects, std::vector<std::string>{"/sha512"});
}

// ----------------------------------------------------- erofs-utils images

class MkfsErofs : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test::have_command("mkfs.erofs")) GTEST_SKIP() << "mkfs.erofs (erofs-utils) not found";
    src_ = dir_ / "src";
    std::filesystem::create_directories(src_ + "/dir/sub");
    test::write_file(src_ + "/file", "hello\n");
    test::write_file(src_ + "/dir/mid", std::string(3000, 'x'));
    test::write_file(src_ + "/dir/five-k", std::string(5000, 'y'));
    test::write_file(src_ + "/empty", "");
    for (int i = 0; i < 400; i++)
      test::write_file(fmt::format("{}/dir/sub/entry-with-a-longish-name-{:04}", src_, i),
                       std::to_string(i));
    std::filesystem::create_symlink("file", src_ + "/link");
    std::filesystem::create_hard_link(src_ + "/file", src_ + "/dir/hard");
    ASSERT_EQ(::mkfifo((src_ + "/fifo").c_str(), 0640), 0);
    ASSERT_EQ(::lsetxattr((src_ + "/file").c_str(), "user.color", "blue", 4, 0), 0);
    ASSERT_EQ(::lsetxattr((src_ + "/dir").c_str(), "user.color", "blue", 4, 0), 0);
    ASSERT_EQ(
        ::lsetxattr((src_ + "/dir/mid").c_str(), "user.long", std::string(300, 'v').data(), 300, 0),
        0);
  }

  Bytes mkfs(const std::string& opts, bool with_header) {
    std::string out = dir_ / "image";
    auto r = test::run("mkfs.erofs --quiet " + opts + " " + out + " " + src_);
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    std::string s = test::read_file(out);
    Bytes b(s.begin(), s.end());
    if (with_header && b.size() >= 32) {
      // erofs-utils leaves the first 1024 bytes zero: give it a composefs header.
      erofs::ComposefsHeader h{};
      h.magic = erofs::kComposefsMagic;
      h.version = erofs::kComposefsHeaderVersion;
      std::memcpy(b.data(), &h, sizeof h);
    }
    return b;
  }

  // Compares the tree with the source directory, entry by entry.
  void expect_matches_source(const Tree& tree) {
    size_t checked = 0;
    for (auto& e : std::filesystem::recursive_directory_iterator(src_)) {
      std::string rel = e.path().string().substr(src_.size());
      const Node* n = tree.lookup(rel);
      ASSERT_TRUE(n) << rel << " missing";
      const Node* t = n->target();
      struct stat st;
      ASSERT_EQ(::lstat(e.path().c_str(), &st), 0);
      EXPECT_EQ(t->mode, st.st_mode) << rel;
      EXPECT_EQ(t->uid, st.st_uid) << rel;
      EXPECT_EQ(t->gid, st.st_gid) << rel;
      if (S_ISREG(st.st_mode)) {
        EXPECT_EQ(t->size, static_cast<uint64_t>(st.st_size)) << rel;
        EXPECT_EQ(t->nlink, st.st_nlink) << rel;
        EXPECT_EQ(t->content.value_or(""), test::read_file(e.path())) << rel;
      }
      if (S_ISLNK(st.st_mode)) {
        EXPECT_EQ(t->payload.value_or(""), std::filesystem::read_symlink(e.path()).string());
      }
      char names[1024];
      ssize_t len = ::llistxattr(e.path().c_str(), names, sizeof names);
      ASSERT_GE(len, 0);
      size_t user = 0;
      for (ssize_t i = 0; i < len; i += strlen(names + i) + 1) {
        std::string key = names + i;
        if (!key.starts_with("user.")) continue;
        user++;
        char value[1024];
        ssize_t vl = ::lgetxattr(e.path().c_str(), key.c_str(), value, sizeof value);
        const Xattr* x = t->find_xattr(key);
        ASSERT_TRUE(x) << rel << " lacks " << key;
        EXPECT_EQ(x->value, std::string(value, vl)) << rel << " " << key;
      }
      size_t have = 0;
      for (auto& x : t->xattrs) have += x.key.starts_with("user.");
      EXPECT_EQ(have, user) << rel;
      checked++;
    }
    EXPECT_EQ(checked + 1, tree.node_count());
  }

  test::TempDir dir_;
  std::string src_;
};

TEST_F(MkfsErofs, WithoutComposefsHeaderIsRefused) {
  Bytes b = mkfs("", false);
  auto img = Image::open(b);
  ASSERT_FALSE(img);
  EXPECT_EQ(img.error().code(), Errc::Corrupt);
  EXPECT_EQ(img.error().message(),
            "not a composefs image: magic 0x00000000, expected 0xd078629a (at offset 0)");
}

// Given a composefs header, erofs-utils's layouts (its own inode placement,
// meta and xattr block addresses, tail packing, compact and extended
// inodes, real hardlinks) read correctly.
TEST_F(MkfsErofs, LayoutsReadCorrectly) {
  for (std::string opts : {"", "-Eforce-inode-extended", "-Eforce-inode-compact", "-Enoinline_data",
                           "-x1", "-T0 --all-root", "--chunksize=4096"}) {
    SCOPED_TRACE(opts);
    Bytes b = mkfs(opts, true);
    auto img = Image::open(b);
    ASSERT_TRUE(img) << img.error().message();
    auto tree = img->to_tree();
    if (opts == "--chunksize=4096") {
      // Chunked files carry their data outside the inode: like the C
      // reader, only files without data (or with inline data) have content.
      ASSERT_TRUE(tree) << tree.error().message();
      const Node* mid = tree->lookup("/dir/mid");
      ASSERT_TRUE(mid);
      EXPECT_EQ(mid->size, 3000u);
      EXPECT_FALSE(mid->content);
      continue;
    }
    ASSERT_TRUE(tree) << tree.error().message();
    expect_matches_source(*tree);
    // Lookups agree with the tree.
    for (const char* p : {"/dir/sub/entry-with-a-longish-name-0399", "/dir/hard", "/link"}) {
      auto nid = img->lookup(p);
      ASSERT_TRUE(nid && *nid) << p;
    }
    auto absent = img->lookup("/dir/sub/entry-with-a-longish-name-0400");
    ASSERT_TRUE(absent);
    EXPECT_FALSE(*absent);
    EXPECT_TRUE(img->for_each_object([](const erofs::ObjectRef&) -> Status { return {}; }));
  }
}

TEST_F(MkfsErofs, WhatComposefsCannotHoldIsRefused) {
  test::write_file(src_ + "/dir/big", std::string(6000, 'z'));
  {
    Bytes b = mkfs("", true);
    auto img = Image::open(b);
    ASSERT_TRUE(img);
    auto tree = img->to_tree();
    ASSERT_FALSE(tree);
    EXPECT_EQ(tree.error().code(), Errc::Unsupported);
    EXPECT_TRUE(has(tree.error().message(), "'/dir/big': regular file inode"));
    EXPECT_TRUE(has(tree.error().message(), "stores 6000 bytes in the image"));
  }
  {
    Bytes b = mkfs("-zlz4", true);
    auto img = Image::open(b);
    ASSERT_TRUE(img);
    auto tree = img->to_tree();
    ASSERT_FALSE(tree);
    EXPECT_EQ(tree.error().code(), Errc::Unsupported);
    EXPECT_TRUE(has(tree.error().message(), "has compressed data"));
  }
}

}  // namespace
}  // namespace cfs
