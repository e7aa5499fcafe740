// SPDX-License-Identifier: Apache-2.0
// The mkcomposefs command line: options as the reference has them, output to
// files and stdout, digests, and failures that leave the target untouched.
#include <gtest/gtest.h>

#include <filesystem>

#include "composefs-cpp/base/fd.h"
#include "composefs-cpp/fsverity/fsverity.h"
#include "test_util.h"

namespace cfs {
namespace {

std::string mk() { return test::tool("mkcomposefs"); }
std::string vec(const std::string& n) { return test::data_dir() + "/composefs/" + n; }

std::string file_digest(const std::string& path) {
  auto fd = open_at(AT_FDCWD, path, O_RDONLY);
  return fd ? fsverity::digest_of_fd(fd->get())->hex() : "";
}

TEST(MkcomposefsCli, FileStdoutAndDigestAgree) {
  test::TempDir tmp;
  auto r = test::run(mk() + " --from-file --print-digest " + vec("special.dump") + " " +
                     (tmp / "a.img"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(test::trim(r.out), file_digest(tmp / "a.img"));
  auto r2 = test::run("cat " + vec("special.dump") + " | " + mk() + " --from-file - - > " +
                      (tmp / "b.img"));
  ASSERT_EQ(r2.status, 0) << r2.err;
  EXPECT_EQ(test::read_file(tmp / "a.img"), test::read_file(tmp / "b.img"));
  auto r3 = test::run(mk() + " --from-file --print-digest-only " + vec("special.dump"));
  ASSERT_EQ(r3.status, 0) << r3.err;
  EXPECT_EQ(r3.out, r.out);
}

TEST(MkcomposefsCli, VersionDefaults) {
  // special.dump has whiteouts: the default (0..1) writes version 1; giving
  // only --max-version=0 forbids it; only --min-version=1 implies max 1.
  auto digest = [](const std::string& opts) {
    auto r =
        test::run(mk() + " --from-file --print-digest-only " + opts + " " + vec("special.dump"));
    EXPECT_EQ(r.status, 0) << r.err;
    return test::trim(r.out);
  };
  std::string v0 = digest("--min-version=0 --max-version=0");
  std::string v1 = digest("--min-version=1 --max-version=1");
  EXPECT_NE(v0, v1);
  EXPECT_EQ(digest(""), v1);
  EXPECT_EQ(digest("--max-version=0"), v0);
  EXPECT_EQ(digest("--min-version=1"), v1);
  EXPECT_EQ(digest("--min-version 1 --max-version 1"), v1);  // separate-argument form
}

TEST(MkcomposefsCli, UsageErrors) {
  struct Case {
    std::string args;
    std::string message;
  } cases[] = {
      {"", "SOURCE is required"},
      {"--from-file x", "no image path specified"},
      {"--from-file --print-digest-only x y", "cannot specify an image path"},
      {"--bogus x y", "bogus"},
      {"--threads=0 /tmp x", "invalid threads count"},
      {"--threads=abc /tmp x", "invalid threads count"},
      {"--min-version=3 --from-file x y", "unsupported format version (at most 2)"},
      {"--max-version=x --from-file x y", "invalid max version"},
  };
  for (auto& c : cases) {
    auto r = test::run(mk() + " " + c.args);
    EXPECT_NE(r.status, 0) << c.args;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << c.args << ": " << r.err;
  }
}

TEST(MkcomposefsCli, FailureLeavesTargetUntouched) {
  test::TempDir tmp;
  // No image at all when there was none...
  auto r =
      test::run(mk() + " --from-file " + vec("should-fail-too-big.dump") + " " + (tmp / "new.img"));
  EXPECT_NE(r.status, 0);
  EXPECT_FALSE(std::filesystem::exists(tmp / "new.img"));
  // ...and the old image intact when there was one.
  test::write_file(tmp / "old.img", "previous contents");
  r = test::run(mk() + " --from-file " + vec("should-fail-dot-name.dump") + " " +
                (tmp / "old.img"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("line 2"), std::string::npos) << r.err;
  EXPECT_EQ(test::read_file(tmp / "old.img"), "previous contents");
  // No temporary files left behind either.
  size_t n = 0;
  for (auto& e : std::filesystem::directory_iterator(tmp.path())) n += !e.path().empty();
  EXPECT_EQ(n, 1u);
}

TEST(MkcomposefsCli, ReplacesExistingImage) {
  test::TempDir tmp;
  test::write_file(tmp / "img", "previous contents");
  auto r = test::run(mk() + " --from-file " + vec("special.dump") + " " + (tmp / "img"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(std::filesystem::file_size(tmp / "img") % 4096, 0u);
}

TEST(MkcomposefsCli, StrictModeFromEnvironment) {
  test::TempDir tmp;
  test::write_file(tmp / "d", "/ 0 40755 2 0 0 0 0.0 - - -");
  auto r = test::run(mk() + " --from-file --print-digest-only " + (tmp / "d"));
  EXPECT_EQ(r.status, 0) << r.err;
  r = test::run("CFS_PARSE_STRICT=1 " + mk() + " --from-file --print-digest-only " + (tmp / "d"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("line 1: missing trailing newline"), std::string::npos) << r.err;
}

TEST(MkcomposefsCli, MissingInputNamesIt) {
  auto r = test::run(mk() + " --from-file /nonexistent/dump x.img");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("/nonexistent/dump"), std::string::npos) << r.err;
  r = test::run(mk() + " /nonexistent/dir x.img");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("/nonexistent/dir"), std::string::npos) << r.err;
}

TEST(MkcomposefsCli, UnwritableTargetDirectory) {
  auto r = test::run(mk() + " --from-file " + vec("special.dump") + " /nonexistent/dir/x.img");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("/nonexistent/dir"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace cfs
