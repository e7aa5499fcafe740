// SPDX-License-Identifier: Apache-2.0
// Base utilities and the tree model: atomic files, mappings, hex, the xattr
// budget, sorted children; and that images do not depend on input order.
#include <gtest/gtest.h>
#include <sys/file.h>

#include <algorithm>
#include <filesystem>
#include <random>

#include "composefs-cpp/base/base64.h"
#include "composefs-cpp/base/fd.h"
#include "composefs-cpp/base/hex.h"
#include "composefs-cpp/dump/dump.h"
#include "composefs-cpp/erofs/writer.h"
#include "composefs-cpp/tree/tree.h"
#include "test_util.h"

namespace cfs {
namespace {

TEST(AtomicFile, AppearsOnlyOnCommit) {
  test::TempDir tmp;
  std::string path = tmp / "out";
  {
    auto f = AtomicFile::create(path);
    ASSERT_TRUE(f) << f.error().message();
    ASSERT_TRUE(write_full(f->fd(), std::string_view("hello")));
    EXPECT_FALSE(std::filesystem::exists(path));
    ASSERT_TRUE(f->commit());
  }
  EXPECT_EQ(test::read_file(path), "hello");
  {
    auto f = AtomicFile::create(path);
    ASSERT_TRUE(f);
    ASSERT_TRUE(write_full(f->fd(), std::string_view("discarded")));
  }  // dropped uncommitted
  EXPECT_EQ(test::read_file(path), "hello");
  size_t entries = 0;
  for (auto& e : std::filesystem::directory_iterator(tmp.path())) entries += !e.path().empty();
  EXPECT_EQ(entries, 1u);
  EXPECT_FALSE(AtomicFile::create(tmp / "missing-dir/out"));
}

// RFC 4648 section 10's test vectors.
TEST(Base64, Rfc4648Vectors) {
  const std::pair<std::string_view, std::string_view> v[] = {{"", ""},
                                                             {"f", "Zg=="},
                                                             {"fo", "Zm8="},
                                                             {"foo", "Zm9v"},
                                                             {"foob", "Zm9vYg=="},
                                                             {"fooba", "Zm9vYmE="},
                                                             {"foobar", "Zm9vYmFy"}};
  for (auto [plain, coded] : v) {
    EXPECT_EQ(base64_encode(plain), coded);
    EXPECT_EQ(base64_decode(coded), std::string(plain));
  }
  EXPECT_EQ(base64_encode(std::string_view("\xff\xfe\x00", 3)), "//4A");
  EXPECT_FALSE(base64_decode("Zm9v!"));
}

// The named fallback (a filesystem without O_TMPFILE) gets a fresh name with
// the prefix, distinct each time; an unnamed one leaves no name behind.
TEST(TmpFile, NamedFallbackAndUnnamed) {
  test::TempDir tmp;
  auto dir = open_at(AT_FDCWD, tmp.path(), O_RDONLY | O_DIRECTORY);
  ASSERT_TRUE(dir);
  auto a = create_tmpfile(dir->get(), 0600, ".t-", true);
  auto b = create_tmpfile(dir->get(), 0600, ".t-", true);
  ASSERT_TRUE(a && b);
  EXPECT_TRUE(a->name.starts_with(".t-"));
  EXPECT_EQ(a->name.size(), 3u + 12u);
  EXPECT_NE(a->name, b->name);
  EXPECT_TRUE(std::filesystem::exists(tmp / a->name));
  auto u = unnamed_tmpfile(dir->get());
  ASSERT_TRUE(u);
  ASSERT_TRUE(write_full(u->get(), std::string_view("x")));
  size_t entries = 0;
  for (auto& e : std::filesystem::directory_iterator(tmp.path())) entries += !e.path().empty();
  EXPECT_EQ(entries, 2u);  // a and b only
  auto named = link_tmpfile(u->get(), dir->get(), ".l-");
  ASSERT_TRUE(named) << named.error().message();
  EXPECT_EQ(test::read_file(tmp / *named), "x");
  EXPECT_TRUE(flock_retry(dir->get(), LOCK_EX, "the test directory"));
}

TEST(MappedFile, FileAndPipe) {
  test::TempDir tmp;
  test::write_file(tmp / "f", "mapped contents");
  auto m = MappedFile::open(tmp / "f");
  ASSERT_TRUE(m);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(m->bytes().data()), m->size()),
            "mapped contents");
  MappedFile moved = std::move(*m);
  EXPECT_EQ(moved.size(), 15u);
  // The whole file whatever the descriptor's position.
  UniqueFd f(::open((tmp / "f").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_EQ(::lseek(f.get(), 7, SEEK_SET), 7);
  auto whole = MappedFile::open(f.get());
  ASSERT_TRUE(whole);
  EXPECT_EQ(whole->size(), 15u);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ASSERT_EQ(::write(fds[1], "piped", 5), 5);
  ::close(fds[1]);
  auto p = MappedFile::open(fds[0]);
  ::close(fds[0]);
  ASSERT_TRUE(p);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(p->bytes().data()), p->size()), "piped");
  EXPECT_FALSE(MappedFile::open(tmp / "nope"));
}

TEST(Hex, RoundTrip) {
  std::vector<uint8_t> b = {0x00, 0x7f, 0x80, 0xff};
  EXPECT_EQ(to_hex(b), "007f80ff");
  EXPECT_EQ(*from_hex("007F80fF"), b);
  EXPECT_FALSE(from_hex("0"));
  EXPECT_FALSE(from_hex("0g"));
}

TEST(Tree, ChildrenStaySortedAndUnique) {
  Tree t;
  Node* root = t.new_node();
  root->mode = S_IFDIR | 0755;
  t.set_root(root);
  for (const char* n : {"b", "a", "c", "-", "\xff", ".hidden"}) {
    Node* c = t.new_node();
    c->mode = S_IFREG | 0644;
    ASSERT_TRUE(t.add_child(root, n, c));
  }
  std::vector<std::string> names;
  for (Node* c : root->children) names.push_back(c->name);
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  Node* dup = t.new_node();
  dup->mode = S_IFREG;
  EXPECT_FALSE(t.add_child(root, "a", dup));
  EXPECT_FALSE(t.add_child(root, "", dup));
  EXPECT_FALSE(t.add_child(root, ".", dup));
  EXPECT_FALSE(t.add_child(root, "a/b", dup));
  EXPECT_FALSE(t.add_child(root, std::string(256, 'x'), dup));
  EXPECT_EQ(t.lookup("//a"), root->find_child("a"));
  EXPECT_EQ(t.lookup("/"), root);
  EXPECT_EQ(t.lookup("/a/x"), nullptr);
  EXPECT_EQ(root->find_child("c")->path(), "/c");
}

TEST(Tree, XattrBudgetMatchesTheReferenceAccounting) {
  Node n;
  // 12 (header) + 7 + key + value per xattr, at most 32767.
  ASSERT_TRUE(n.set_xattr_checked("user.a", std::string(32767 - 12 - 7 - 6, 'x')));
  EXPECT_FALSE(n.set_xattr_checked("user.b", ""));
  // Replacing refunds the old value.
  ASSERT_TRUE(n.set_xattr_checked("user.a", "small"));
  EXPECT_TRUE(n.set_xattr_checked("user.b", "fits now"));
  EXPECT_FALSE(n.set_xattr_checked("", "v"));
  EXPECT_FALSE(n.set_xattr_checked(std::string(256, 'k'), "v"));
  EXPECT_FALSE(n.set_xattr_checked("user.big", std::string(65536, 'v')));
}

// The image does not depend on the order of dump lines (parents first).
TEST(Determinism, DumpLineOrder) {
  for (const char* name : {"special.dump", "special_v1.dump"}) {
    std::string text = test::read_file(test::data_dir() + "/composefs/" + name);
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    auto depth = [](const std::string& l) {
      std::string path = l.substr(0, l.find(' '));
      return path == "/" ? 0 : static_cast<int>(std::count(path.begin(), path.end(), '/'));
    };
    auto base = dump::parse(text);
    ASSERT_TRUE(base);
    auto want = erofs::build_image(*base);
    ASSERT_TRUE(want);
    std::mt19937 rng(7);
    for (int round = 0; round < 5; round++) {
      std::shuffle(lines.begin() + 1, lines.end(), rng);
      std::stable_sort(lines.begin(), lines.end(),
                       [&](const auto& a, const auto& b) { return depth(a) < depth(b); });
      std::string shuffled;
      for (auto& l : lines) shuffled += l + "\n";
      auto t = dump::parse(shuffled);
      ASSERT_TRUE(t) << t.error().message();
      auto img = erofs::build_image(*t);
      ASSERT_TRUE(img);
      EXPECT_EQ(*img, *want) << name << " round " << round;
    }
  }
}

}  // namespace
}  // namespace cfs
