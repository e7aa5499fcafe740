// SPDX-License-Identifier: Apache-2.0
// The reference test vectors: every dump must give an image whose sha256 is
// the one the C reference's mkcomposefs wrote, fsck.erofs must accept it, and
// every should-fail input must be refused with a line number and a reason.
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <filesystem>

#include "composefs-cpp/base/hex.h"
#include "composefs-cpp/dump/dump.h"
#include "composefs-cpp/erofs/encode.h"
#include "composefs-cpp/erofs/writer.h"
#include "test_util.h"

namespace cfs {
namespace {

std::string vectors_dir() { return test::data_dir() + "/composefs"; }

std::string sha256_hex(std::span<const uint8_t> data) {
  uint8_t out[32];
  unsigned len = 0;
  EVP_Digest(data.data(), data.size(), out, &len, EVP_sha256(), nullptr);
  return to_hex({out, 32});
}

std::string load_dump(const std::string& name) {
  std::string path = vectors_dir() + "/" + name;
  if (name.size() > 3 && name.substr(name.size() - 3) == ".gz") {
    auto r = test::run("gzip -dc " + test::shell_quote(path));
    EXPECT_EQ(r.status, 0) << r.err;
    return r.out;
  }
  return test::read_file(path);
}

// The table that decides which xattrs are shared: entries in order of first
// appearance, counts per (key, value), through growth from a small start.
TEST(XattrTable, CountsPairsInFirstSeenOrderAcrossGrowth) {
  struct Pair {
    std::string_view key, value;
    uint32_t entry = UINT32_MAX;
  };
  std::vector<std::string> values;
  for (int i = 0; i < 5000; i++) values.push_back(std::to_string(i) + "v");
  std::vector<Pair> pairs;
  for (int round = 0; round < 3; round++)
    for (int i = 0; i < 5000; i++) {
      if (round == 2 && i % 2) continue;  // odd values twice, even ones three times
      pairs.push_back({i % 3 ? "user.a" : "user.b", values[i]});
    }
  pairs.push_back({"user.c", "0v"});  // same value, other key
  erofs::detail::XattrTable table(1);
  table.add_all([&](auto&& f) {
    for (auto& p : pairs) f(p);
  });
  for (size_t k = 0; k + 1 < pairs.size(); k++)
    EXPECT_EQ(pairs[k].entry, std::stoul(std::string(pairs[k].value))) << k;
  EXPECT_EQ(pairs.back().entry, 5000U);
  auto& entries = table.entries();
  ASSERT_EQ(entries.size(), 5001U);
  for (int i = 0; i < 5000; i++) {
    EXPECT_EQ(entries[i].value, values[i]);
    EXPECT_EQ(entries[i].count, i % 2 ? 2U : 3U) << i;
  }
  EXPECT_EQ(entries[5000].count, 1U);
}

// Vectors the reference parses without CFS_PARSE_STRICT.
bool non_strict(const std::string& name) {
  return name == "no-newline.dump" || name == "longlink.dump" ||
         name == "honggfuzz-longlink-unterminated.dump";
}

std::vector<std::string> vector_names(bool should_fail) {
  std::vector<std::string> names;
  for (auto& e : std::filesystem::directory_iterator(vectors_dir())) {
    std::string n = e.path().filename();
    bool is_dump = n.ends_with(".dump") || n.ends_with(".dump.gz");
    if (!is_dump) continue;
    if (n.starts_with("should-fail-") == should_fail) names.push_back(n);
  }
  std::sort(names.begin(), names.end());
  return names;
}

class Vector : public ::testing::TestWithParam<std::string> {};

TEST_P(Vector, ImageMatchesReference) {
  const std::string name = GetParam();
  dump::ParseOptions po;
  po.strict = !non_strict(name);
  auto tree = dump::parse(load_dump(name), po);
  ASSERT_TRUE(tree) << tree.error().message();
  erofs::WriteOptions wo;
  std::string vfile = vectors_dir() + "/" + name + ".version";
  if (std::filesystem::exists(vfile)) {
    wo.min_version = wo.max_version = std::stoul(test::read_file(vfile));
  }
  auto image = erofs::build_image(*tree, wo);
  ASSERT_TRUE(image) << image.error().message();
  std::string want = test::trim(test::read_file(vectors_dir() + "/" + name + ".sha256"));
  EXPECT_EQ(sha256_hex(*image), want.substr(0, 64));

  // The image is a valid EROFS filesystem for erofs-utils too.
  if (test::have_command("fsck.erofs")) {
    test::TempDir dir;
    std::string path = dir / "image";
    test::write_file(path, std::string(image->begin(), image->end()));
    auto r = test::run("fsck.erofs " + path);
    EXPECT_EQ(r.status, 0) << r.out << r.err;
  }
}

TEST_P(Vector, WriterIsDeterministic) {
  const std::string name = GetParam();
  dump::ParseOptions po;
  po.strict = !non_strict(name);
  std::string data = load_dump(name);
  auto a = dump::parse(data, po);
  auto b = dump::parse(data, po);
  ASSERT_TRUE(a && b);
  auto ia = erofs::build_image(*a);
  auto ib = erofs::build_image(*b);
  ASSERT_TRUE(ia && ib);
  EXPECT_EQ(*ia, *ib);
}

INSTANTIATE_TEST_SUITE_P(Reference, Vector, ::testing::ValuesIn(vector_names(false)),
                         [](const auto& p) {
                           std::string n = p.param;
                           for (auto& c : n)
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

class ShouldFail : public ::testing::TestWithParam<std::string> {};

TEST_P(ShouldFail, IsRefusedWithLineAndReason) {
  const std::string name = GetParam();
  std::string data = load_dump(name);
  for (bool strict : {false, true}) {
    dump::ParseOptions po;
    po.strict = strict;
    auto tree = dump::parse(data, po);
    if (tree) {
      // Some inputs are only refused when the image is laid out (too big).
      auto image = erofs::build_image(*tree);
      ASSERT_FALSE(image) << name << " was accepted";
      EXPECT_FALSE(image.error().message().empty());
      continue;
    }
    const std::string& msg = tree.error().message();
    EXPECT_TRUE(msg.starts_with("line ")) << msg;
  }
}

INSTANTIATE_TEST_SUITE_P(Reference, ShouldFail, ::testing::ValuesIn(vector_names(true)),
                         [](const auto& p) {
                           std::string n = p.param;
                           for (auto& c : n)
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

// The reasons, spot-checked (the reference's messages, in our words).
TEST(ShouldFail, Reasons) {
  auto reason = [](const std::string& name) {
    auto t = dump::parse(load_dump(name));
    return t ? std::string("accepted") : t.error().message();
  };
  EXPECT_EQ(reason("should-fail-big-inline.dump"),
            "line 2: inline content size 5004 exceeds maximum 5000");
  EXPECT_EQ(reason("should-fail-dir-hardlink.dump"), "line 2: directories can't be hardlinked");
  EXPECT_EQ(reason("should-fail-self-hardlink.dump"),
            "line 2: self-referential hardlink '/037blockdev'");
  EXPECT_EQ(reason("should-fail-no-ftype.dump"), "line 2: invalid file type in mode 0");
  EXPECT_NE(reason("should-fail-honggfuzz-long-xattr.dump").find("per-inode limit"),
            std::string::npos);
}

}  // namespace
}  // namespace cfs
