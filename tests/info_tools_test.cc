// SPDX-License-Identifier: Apache-2.0
// composefs-info and composefs-dump as programs: their output for the
// reference vectors' images equals the reference tools' output (committed in
// tests/data/composefs-info), composefs-dump reproduces every image, and bad
// input gives an error and a failing exit status.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <sstream>

#include "composefs-cpp/erofs/reader.h"
#include "test_util.h"
#include "vector_util.h"

namespace cfs {
namespace {

using test::Bytes;
using test::shell_quote;

std::string info() { return test::tool("composefs-info"); }
std::string dumper() { return test::tool("composefs-dump"); }

std::string write_image(const test::TempDir& dir, const std::string& name, const Bytes& image) {
  std::string path = dir / name;
  test::write_file(path, std::string(image.begin(), image.end()));
  return path;
}

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

class InfoVector : public ::testing::TestWithParam<std::string> {};

TEST_P(InfoVector, OutputsAreTheReferences) {
  const std::string name = GetParam();
  test::TempDir dir;
  std::string image = write_image(dir, "image.cfs", test::vector_image(name));
  for (const char* cmd : {"dump", "ls", "objects"}) {
    auto r = test::run(info() + " " + cmd + " " + shell_quote(image));
    ASSERT_EQ(r.status, 0) << cmd << ": " << r.err;
    EXPECT_EQ(r.err, "");
    test::expect_reference_output(name, cmd, r.out);
  }
}

// The reference's test-checksums.sh: composefs-dump writes the same bytes.
TEST_P(InfoVector, ComposefsDumpReproducesTheImage) {
  const std::string name = GetParam();
  test::TempDir dir;
  const Bytes& bytes = test::vector_image(name);
  std::string image = write_image(dir, "image.cfs", bytes);
  auto r = test::run(dumper() + " " + shell_quote(image) + " " + shell_quote(dir / "out.cfs"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(test::read_file(dir / "out.cfs") == std::string(bytes.begin(), bytes.end()));
}

// And its other check: composefs-info dump | mkcomposefs --from-file too.
TEST_P(InfoVector, DumpPipedToMkcomposefsReproducesTheImage) {
  const std::string name = GetParam();
  test::TempDir dir;
  const Bytes& bytes = test::vector_image(name);
  std::string image = write_image(dir, "image.cfs", bytes);
  std::string args;
  if (auto v = test::pinned_version(name))
    args = fmt::format(" --min-version={} --max-version={}", *v, *v);
  std::string env = test::non_strict(name) ? "env -u CFS_PARSE_STRICT " : "CFS_PARSE_STRICT=1 ";
  auto r =
      test::run(info() + " dump " + shell_quote(image) + " | " + env + test::tool("mkcomposefs") +
                args + " --from-file - " + shell_quote(dir / "out.cfs"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(test::read_file(dir / "out.cfs") == std::string(bytes.begin(), bytes.end()));
}

INSTANTIATE_TEST_SUITE_P(Reference, InfoVector, ::testing::ValuesIn(test::vector_names()),
                         test::param_name);

TEST(ComposefsInfo, SeveralImagesAndFilters) {
  test::TempDir dir;
  std::string special = write_image(dir, "special.cfs", test::vector_image("special.dump"));
  std::string longlink = write_image(dir, "longlink.cfs", test::vector_image("longlink.dump"));
  auto both = test::run(info() + " ls " + special + " " + longlink);
  ASSERT_EQ(both.status, 0) << both.err;
  EXPECT_EQ(both.out, test::read_file(test::expected_dir() + "/special.ls") +
                          test::read_file(test::expected_dir() + "/longlink.ls"));

  // Options anywhere, both spellings, as getopt_long accepts them.
  std::string want = test::read_file(test::expected_dir() + "/special.filtered.dump");
  auto tree = dump::parse(test::load_dump("special.dump"));
  ASSERT_TRUE(tree);
  auto image = erofs::build_image(*tree);  // default options, as the reference's test
  ASSERT_TRUE(image);
  std::string plain = write_image(dir, "plain.cfs", *image);
  for (std::string args :
       {"--filter=chardev --filter=inline --filter=whiteout dump " + plain,
        "dump --filter chardev " + plain + " --filter=inline --filter whiteout"}) {
    auto r = test::run(info() + " " + args);
    ASSERT_EQ(r.status, 0) << args << ": " << r.err;
    EXPECT_EQ(r.out, want) << args;
  }
  auto slash = test::run(info() + " --filter=a/b dump " + plain);
  EXPECT_EQ(slash.status, 1);
  EXPECT_NE(slash.err.find("filter must be a single name: a/b"), std::string::npos) << slash.err;
}

// objects lists every backing file; missing-objects those not under
// --basedir (all of them without one, as the reference behaves).
TEST(ComposefsInfo, MissingObjects) {
  test::TempDir dir;
  std::string image = write_image(dir, "config.cfs", test::vector_image("config.dump.gz"));
  auto all = test::run(info() + " objects " + image);
  ASSERT_EQ(all.status, 0) << all.err;
  test::expect_reference_output("config.dump.gz", "objects", all.out);
  std::vector<std::string> objects = lines(all.out);
  ASSERT_GT(objects.size(), 100u);

  std::string base = dir / "objects";
  std::string expected_missing;
  for (size_t i = 0; i < objects.size(); i++) {
    if (i % 3 == 0) {
      expected_missing += objects[i] + "\n";
      continue;
    }
    std::filesystem::path p = std::filesystem::path(base) / objects[i];
    std::filesystem::create_directories(p.parent_path());
    test::write_file(p, "");
  }
  auto missing = test::run(info() + " --basedir=" + base + " missing-objects " + image);
  ASSERT_EQ(missing.status, 0) << missing.err;
  EXPECT_EQ(missing.out, expected_missing);

  auto no_base = test::run(info() + " missing-objects " + image + " </dev/null");
  ASSERT_EQ(no_base.status, 0) << no_base.err;
  EXPECT_EQ(no_base.out, all.out);

  auto bad_base = test::run(info() + " --basedir=" + (dir / "nope") + " missing-objects " + image);
  EXPECT_EQ(bad_base.status, 1);
  EXPECT_NE(bad_base.err.find("can't open basedir"), std::string::npos) << bad_base.err;
}

// measure-file prints what the fsverity tool computes (libfsverity).
TEST(ComposefsInfo, MeasureFile) {
  if (!test::have_command("fsverity")) GTEST_SKIP() << "the fsverity tool is not installed";
  test::TempDir dir;
  std::vector<std::string> files;
  for (size_t size : {0, 1, 4095, 4096, 4097, 1 << 20}) {
    std::string f = dir / ("f" + std::to_string(size));
    std::string data(size, '\0');
    for (size_t i = 0; i < size; i++) data[i] = static_cast<char>(i * 7 + size);
    test::write_file(f, data);
    files.push_back(f);
  }
  std::string args, want;
  for (auto& f : files) {
    args += " " + f;
    auto r = test::run("fsverity digest --compact " + f);
    ASSERT_EQ(r.status, 0) << r.err;
    want += r.out;
  }
  auto r = test::run(info() + " measure-file" + args);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, want);

  auto none = test::run(info() + " measure-file");
  EXPECT_EQ(none.status, 2);
  EXPECT_NE(none.err.find("No files specified"), std::string::npos);
  auto missing = test::run(info() + " measure-file " + (dir / "nope"));
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.err.find("nope"), std::string::npos) << missing.err;
}

TEST(ComposefsInfo, BadUsageAndBadImages) {
  test::TempDir dir;
  std::string special = write_image(dir, "special.cfs", test::vector_image("special.dump"));
  test::write_file(dir / "text", std::string(8192, 'x'));

  auto none = test::run(info());
  EXPECT_EQ(none.status, 2);
  EXPECT_NE(none.err.find("No command specified"), std::string::npos);
  auto no_image = test::run(info() + " dump");
  EXPECT_EQ(no_image.status, 2);
  EXPECT_NE(no_image.err.find("No image path specified"), std::string::npos);
  auto unknown = test::run(info() + " frobnicate " + special);
  EXPECT_EQ(unknown.status, 1);
  EXPECT_NE(unknown.err.find("unknown command 'frobnicate'"), std::string::npos);

  auto missing = test::run(info() + " dump " + (dir / "nope"));
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.err.find("cannot open '" + (dir / "nope") + "'"), std::string::npos)
      << missing.err;

  auto text = test::run(info() + " ls " + (dir / "text"));
  EXPECT_EQ(text.status, 1);
  EXPECT_NE(text.err.find("failed to load '" + (dir / "text") +
                          "': not a composefs image: magic 0x78787878"),
            std::string::npos)
      << text.err;
  EXPECT_EQ(text.out, "");

  // A damaged image: refused with where, no partial listing.
  Bytes damaged = test::vector_image("special.dump");
  damaged[1152 + 4] = 0;  // the root inode's mode
  damaged[1152 + 5] = 0;
  std::string bad = write_image(dir, "bad.cfs", damaged);
  auto r = test::run(info() + " dump " + bad);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("invalid file mode 0 (at offset 1156)"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST(ComposefsDump, BadInput) {
  test::TempDir dir;
  auto usage = test::run(dumper() + " " + (dir / "x"));
  EXPECT_EQ(usage.status, 2);
  EXPECT_NE(usage.err.find("no destination path specified"), std::string::npos);

  test::write_file(dir / "text", std::string(8192, 'x'));
  auto text = test::run(dumper() + " " + (dir / "text") + " " + (dir / "out"));
  EXPECT_EQ(text.status, 1);
  EXPECT_NE(text.err.find("not a composefs image"), std::string::npos) << text.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "out"));

  // A format version this writer does not know is refused, not rewritten
  // as another version; no output appears.
  Bytes v3 = test::vector_image("special.dump");
  v3[12] = 3;
  std::string img = write_image(dir, "v3.cfs", v3);
  auto r = test::run(dumper() + " " + img + " " + (dir / "out"));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("composefs format version 3"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "out"));
}

// Format 2 (composefs-rs's layout) images: composefs-dump writes them back
// byte for byte, their dump gives them again through mkcomposefs
// --min-version=2, and they name the objects the format 1 image names.
TEST(Format2, ToolsReadAndRewriteThem) {
  test::TempDir dir;
  std::string dump = test::read_file(test::data_dir() + "/composefs-rs/simple.dump") +
                     "/d 0 40755 2 7 8 0 5.0 - - - user.x=1 trusted.overlay.y=2\n"
                     "/d/gone 0 20000 1 0 0 0 5.0 - - -\n"
                     "/d/link 0 @100000 0 0 0 0 0.0 /regular-external - -\n";
  test::write_file(dir / "tree.dump", dump);
  auto mk = [&](const std::string& version, const std::string& out) {
    auto r = test::run(test::tool("mkcomposefs") + " --min-version=" + version + " --from-file " +
                       shell_quote(dir / "tree.dump") + " " + shell_quote(out));
    ASSERT_EQ(r.status, 0) << r.err;
  };
  mk("2", dir / "v2.cfs");
  mk("1", dir / "v1.cfs");
  auto d = test::run(dumper() + " " + shell_quote(dir / "v2.cfs") + " " +
                     shell_quote(dir / "again.cfs"));
  ASSERT_EQ(d.status, 0) << d.err;
  EXPECT_TRUE(test::read_file(dir / "again.cfs") == test::read_file(dir / "v2.cfs"));
  auto piped = test::run(info() + " dump " + shell_quote(dir / "v2.cfs") + " | " +
                         test::tool("mkcomposefs") + " --min-version=2 --from-file - " +
                         shell_quote(dir / "piped.cfs"));
  ASSERT_EQ(piped.status, 0) << piped.err;
  EXPECT_TRUE(test::read_file(dir / "piped.cfs") == test::read_file(dir / "v2.cfs"));
  auto o2 = test::run(info() + " objects " + shell_quote(dir / "v2.cfs"));
  auto o1 = test::run(info() + " objects " + shell_quote(dir / "v1.cfs"));
  ASSERT_EQ(o2.status, 0) << o2.err;
  EXPECT_EQ(o2.out, o1.out);
  std::string hex;
  for (int i = 0; i < 32; i++) hex += "5a";
  EXPECT_EQ(o2.out, hex.substr(0, 2) + "/" + hex.substr(2) + "\n");
  // The whiteout is a character device 0/0 of the tree in format 2.
  auto ls = test::run(info() + " dump " + shell_quote(dir / "v2.cfs"));
  EXPECT_NE(ls.out.find("/d/gone 0 20000 1 0 0 0 5.0 - - -\n"), std::string::npos) << ls.out;
  EXPECT_NE(ls.out.find(" 40755 2 7 8 0 5.0 - - - trusted.overlay.y=2 user.x=1\n"),
            std::string::npos)
      << ls.out;
}

}  // namespace
}  // namespace cfs
