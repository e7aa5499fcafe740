// SPDX-License-Identifier: Apache-2.0
// The reference test vectors (tests/data/composefs) and the reference's
// composefs-info outputs for their images (tests/data/composefs-info), for
// the reader and tool tests.
#pragma once

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "composefs-cpp/base/hex.h"
#include "composefs-cpp/dump/dump.h"
#include "composefs-cpp/erofs/writer.h"
#include "test_util.h"

namespace cfs::test {

using Bytes = std::vector<uint8_t>;

inline std::string vectors_dir() { return data_dir() + "/composefs"; }
inline std::string expected_dir() { return data_dir() + "/composefs-info"; }

inline std::string sha256_hex(std::string_view data) {
  uint8_t out[32];
  unsigned len = 0;
  EVP_Digest(data.data(), data.size(), out, &len, EVP_sha256(), nullptr);
  return to_hex({out, 32});
}
inline std::string sha256_hex(const Bytes& b) {
  return sha256_hex(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
}

inline std::string load_dump(const std::string& name) {
  std::string path = vectors_dir() + "/" + name;
  if (name.ends_with(".gz")) {
    auto r = run("gzip -dc " + shell_quote(path));
    EXPECT_EQ(r.status, 0) << r.err;
    return r.out;
  }
  return read_file(path);
}

// As the reference's test-checksums.sh: these parse without CFS_PARSE_STRICT.
inline bool non_strict(const std::string& name) {
  return name == "no-newline.dump" || name == "longlink.dump" ||
         name == "honggfuzz-longlink-unterminated.dump";
}

inline std::optional<uint32_t> pinned_version(const std::string& name) {
  std::string f = vectors_dir() + "/" + name + ".version";
  if (!std::filesystem::exists(f)) return std::nullopt;
  return static_cast<uint32_t>(std::stoul(read_file(f)));
}

inline erofs::WriteOptions vector_write_options(const std::string& name) {
  erofs::WriteOptions wo;
  if (auto v = pinned_version(name)) wo.min_version = wo.max_version = *v;
  return wo;
}

// The vectors that give images (not should-fail-*), sorted.
inline std::vector<std::string> vector_names() {
  std::vector<std::string> names;
  for (auto& e : std::filesystem::directory_iterator(vectors_dir())) {
    std::string n = e.path().filename();
    if ((n.ends_with(".dump") || n.ends_with(".dump.gz")) && !n.starts_with("should-fail-"))
      names.push_back(n);
  }
  std::sort(names.begin(), names.end());
  return names;
}

// The image the reference's mkcomposefs writes for a vector: built by our
// writer and checked against the sha256 the reference's image has, so it is
// that very image.
inline const Bytes& vector_image(const std::string& name) {
  static std::map<std::string, Bytes> cache;
  auto it = cache.find(name);
  if (it != cache.end()) return it->second;
  dump::ParseOptions po;
  po.strict = !non_strict(name);
  auto tree = dump::parse(load_dump(name), po);
  EXPECT_TRUE(tree) << tree.error().message();
  Bytes image;
  if (tree) {
    auto built = erofs::build_image(*tree, vector_write_options(name));
    EXPECT_TRUE(built) << built.error().message();
    if (built) image = std::move(*built);
  }
  std::string want = trim(read_file(vectors_dir() + "/" + name + ".sha256"));
  EXPECT_EQ(sha256_hex(image), want.substr(0, 64)) << name << " is not the reference's image";
  return cache.emplace(name, std::move(image)).first->second;
}

// Checks `actual` against what the reference's composefs-info printed for
// the vector's image (CMD = dump, ls or objects): the text, or only its
// sha256 for the big vectors.
inline void expect_reference_output(const std::string& name, const std::string& cmd,
                                    const std::string& actual) {
  std::string base = name.substr(0, name.find(".dump"));
  std::string text = expected_dir() + "/" + base + "." + cmd;
  if (std::filesystem::exists(text)) {
    std::string want = read_file(text);
    EXPECT_TRUE(actual == want) << cmd << " of " << name << " differs from the reference's:\n"
                                << "--- reference\n"
                                << want.substr(0, 2000) << "--- ours\n"
                                << actual.substr(0, 2000);
  } else {
    std::string sum = trim(read_file(text + ".sha256"));
    ASSERT_EQ(sum.size(), 64u) << "no expected output for " << name << " " << cmd;
    EXPECT_EQ(sha256_hex(actual), sum) << cmd << " of " << name << " differs from the reference's";
  }
}

inline std::string param_name(const ::testing::TestParamInfo<std::string>& p) {
  std::string n = p.param;
  for (auto& c : n)
    if (!isalnum(static_cast<unsigned char>(c))) c = '_';
  return n;
}

}  // namespace cfs::test
