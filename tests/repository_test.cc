// SPDX-License-Identifier: Apache-2.0
// The repository library: meta.json as composefs-rs writes and reads it (the
// expected bytes are written out by hand from composefs-rs 0.9's serde
// definitions), a repository laid out by hand as composefs-rs lays it out,
// names, object atomicity and concurrent writers.
#include "composefs-cpp/repository/repository.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "composefs-cpp/base/fd.h"
#include "composefs-cpp/dump/dump.h"
#include "composefs-cpp/erofs/writer.h"
#include "composefs-cpp/fsverity/fsverity.h"
#include "composefs-cpp/repository/images.h"
#include "composefs-cpp/repository/metadata.h"
#include "composefs-cpp/repository/names.h"
#include "test_util.h"

namespace cfs::repository {
namespace {

using fsverity::Digest;
using fsverity::HashAlg;

// serde_json::to_vec_pretty of RepoMetadata::new_with_formats(SHA256,
// single(V1)) plus the '\n' composefs-rs appends: field order of the struct,
// kebab-case feature names, "extra" skipped when empty.
constexpr const char* kRsSha256V1 = R"({
  "version": 1,
  "algorithm": "fsverity-sha256-12",
  "features": {
    "compatible": [],
    "read-only-compatible": [
      "v1_erofs"
    ],
    "incompatible": []
  },
  "erofs_formats": {
    "default": 1
  }
}
)";

TEST(Metadata, WritesComposefsRsBytes) {
  EXPECT_EQ(Metadata::create(HashAlg::Sha256, {1, {}}).to_json(), kRsSha256V1);
  std::string sha512 = kRsSha256V1;
  sha512.replace(sha512.find("sha256"), 6, "sha512");
  EXPECT_EQ(Metadata::create(HashAlg::Sha512, {1, {}}).to_json(), sha512);
  // A dual-format repository (V1 default, V2 extra), as composefs-rs writes it.
  std::string dual = kRsSha256V1;
  dual.replace(dual.find("\"default\": 1\n"), 13,
               "\"default\": 1,\n    \"extra\": [\n      2\n    ]\n");
  EXPECT_EQ(Metadata::create(HashAlg::Sha256, {1, {2}}).to_json(), dual);
  // Format 0: no v1_erofs flag.
  auto v0 = Metadata::create(HashAlg::Sha256, {0, {}});
  EXPECT_TRUE(v0.features.read_only_compatible.empty());
  EXPECT_NE(v0.to_json().find("\"read-only-compatible\": [],"), std::string::npos);
}

TEST(Metadata, ReadsComposefsRsShapes) {
  auto m = Metadata::parse(kRsSha256V1);
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m->alg, HashAlg::Sha256);
  EXPECT_EQ(m->format_config(), (FormatConfig{1, {}}));
  EXPECT_TRUE(m->check());
  EXPECT_TRUE(m->check()->empty());
  EXPECT_EQ(*m, Metadata::create(HashAlg::Sha256, {1, {}}));

  // Repositories older than erofs_formats: format 2 unless v1_erofs is set;
  // unknown fields (an old erofs_version) are ignored.
  auto legacy = Metadata::parse(R"({"version":1,"algorithm":"fsverity-sha256-12","features":{}})");
  ASSERT_TRUE(legacy);
  EXPECT_EQ(legacy->format_config(), (FormatConfig{2, {}}));
  auto legacy_v1 = Metadata::parse(
      R"({"version":1,"algorithm":"fsverity-sha512-12","features":{"read-only-compatible":["v1_erofs"]}})");
  ASSERT_TRUE(legacy_v1);
  EXPECT_EQ(legacy_v1->alg, HashAlg::Sha512);
  EXPECT_EQ(legacy_v1->format_config(), (FormatConfig{1, {}}));
  auto old_field = Metadata::parse(
      R"({"version":1,"algorithm":"fsverity-sha256-12","features":{},"erofs_version":2})");
  ASSERT_TRUE(old_field);
  EXPECT_EQ(old_field->format_config(), (FormatConfig{2, {}}));
  auto no_features = Metadata::parse(R"({"version":1,"algorithm":"fsverity-sha256-12"})");
  ASSERT_TRUE(no_features);
  EXPECT_TRUE(no_features->features.compatible.empty());
}

TEST(Metadata, FormatConfigAsComposefsRs) {
  // versions(): the default first, then the extra ones ascending, without
  // a repeat of the default (composefs-rs's FormatConfig::versions).
  EXPECT_EQ((FormatConfig{1, {}}).versions(), std::vector<uint32_t>{1});
  EXPECT_EQ((FormatConfig{1, {2}}).versions(), (std::vector<uint32_t>{1, 2}));
  EXPECT_EQ((FormatConfig{2, {0, 1, 2}}).versions(), (std::vector<uint32_t>{2, 0, 1}));
  EXPECT_EQ((FormatConfig{1, {2}}).to_string(), "1+2");
  // v1_erofs is written exactly when the default is 1.
  auto has_flag = [](const Metadata& m) {
    auto& ro = m.features.read_only_compatible;
    return std::find(ro.begin(), ro.end(), kFeatureV1Erofs) != ro.end();
  };
  EXPECT_TRUE(has_flag(Metadata::create(HashAlg::Sha512, {1, {2}})));
  EXPECT_FALSE(has_flag(Metadata::create(HashAlg::Sha512, {2, {1}})));
  EXPECT_FALSE(has_flag(Metadata::create(HashAlg::Sha512, {0, {1}})));
  // An explicit {"default": 2} is the field's serde default: composefs-rs
  // cannot tell it from an absent field, so v1_erofs decides there too.
  auto explicit2 = Metadata::parse(
      R"({"version":1,"algorithm":"fsverity-sha256-12","features":{"read-only-compatible":["v1_erofs"]},"erofs_formats":{"default":2}})");
  ASSERT_TRUE(explicit2);
  EXPECT_EQ(explicit2->format_config(), (FormatConfig{1, {}}));
  auto dual = Metadata::parse(
      R"({"version":1,"algorithm":"fsverity-sha256-12","erofs_formats":{"default":2,"extra":[1,1]}})");
  ASSERT_TRUE(dual);
  EXPECT_EQ(dual->format_config(), (FormatConfig{2, {1}}));
  // A default of 1 without the flag (another writer's omission) is 1.
  auto no_flag = Metadata::parse(
      R"({"version":1,"algorithm":"fsverity-sha256-12","erofs_formats":{"default":1}})");
  ASSERT_TRUE(no_flag);
  EXPECT_EQ(no_flag->format_config(), (FormatConfig{1, {}}));
}

TEST(Metadata, FeatureTiers) {
  auto m = Metadata::create(HashAlg::Sha512, {1, {}});
  m.features.compatible.push_back("optional-hint");
  ASSERT_TRUE(m.check());
  EXPECT_TRUE(m.check()->empty());
  m.features.read_only_compatible.push_back("new-index");
  ASSERT_TRUE(m.check());
  EXPECT_EQ(*m.check(), std::vector<std::string>{"new-index"});
  m.features.incompatible.push_back("fancy-new-thing");
  auto c = m.check();
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message().find("fancy-new-thing"), std::string::npos);
  auto v2 = Metadata::parse(R"({"version":2,"algorithm":"fsverity-sha256-12"})");
  ASSERT_TRUE(v2);
  ASSERT_FALSE(v2->check());
  EXPECT_NE(v2->check().error().message().find("version 2"), std::string::npos);
}

TEST(Metadata, RefusesMalformed) {
  for (const char* bad : {
           "",
           "[]",
           "{",
           R"({"algorithm":"fsverity-sha256-12"})",
           R"({"version":1})",
           R"({"version":-1,"algorithm":"fsverity-sha256-12"})",
           R"({"version":"1","algorithm":"fsverity-sha256-12"})",
           R"({"version":1,"algorithm":"fsverity-sha1-12"})",
           R"({"version":1,"algorithm":"fsverity-sha256-13"})",
           R"({"version":1,"algorithm":"sha256"})",
           R"({"version":1,"algorithm":"fsverity-sha256-12","features":{"compatible":[1]}})",
           R"({"version":1,"algorithm":"fsverity-sha256-12","features":[]})",
           R"({"version":1,"algorithm":"fsverity-sha256-12","erofs_formats":{"default":3}})",
           R"({"version":1,"algorithm":"fsverity-sha256-12","erofs_formats":{}})",
       }) {
    EXPECT_FALSE(Metadata::parse(bad)) << bad;
  }
}

TEST(Names, RelativeTargetsAsComposefsRs) {
  // symlink_impl: common leading components dropped, ".." per remaining
  // parent component of the link.
  EXPECT_EQ(relative_target("images/abc", "objects/ab/c"), "../objects/ab/c");
  EXPECT_EQ(relative_target("images/refs/name", "images/abc"), "../abc");
  EXPECT_EQ(relative_target("images/refs/a/b/c", "images/abc"), "../../../abc");
  EXPECT_EQ(relative_target("streams/oci-layer-sha256:1", "objects/12/34"), "../objects/12/34");
  EXPECT_EQ(relative_target("streams/refs/x", "streams/oci-layer-sha256:1"),
            "../oci-layer-sha256:1");
}

TEST(Names, RefNameValidation) {
  for (const char* ok : {"a", "app/v1", "quay.io/x:latest", "a.b", "..a", "x/.y"})
    EXPECT_TRUE(validate_ref_name(ok)) << ok;
  for (std::string bad :
       {std::string(""), std::string("/abs"), std::string("a//b"), std::string("a/"),
        std::string("."), std::string(".."), std::string("../x"), std::string("a/../../x"),
        std::string("a/./b"), std::string("a\0b", 3), std::string(300, 'x')})
    EXPECT_FALSE(validate_ref_name(bad)) << bad;
}

TEST(Names, DigestsFromObjectPaths) {
  std::string hex(64, 'a');
  auto d = digest_from_object_path("../objects/aa/" + hex.substr(2), HashAlg::Sha256);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->hex(), hex);
  EXPECT_FALSE(digest_from_object_path("../objects/aa" + hex.substr(2), HashAlg::Sha256));
  EXPECT_FALSE(digest_from_object_path("aa/" + hex.substr(3), HashAlg::Sha256));
  EXPECT_FALSE(parse_hex_digest(hex, HashAlg::Sha512));
  EXPECT_TRUE(parse_hex_digest(std::string(128, 'F'), HashAlg::Sha512));
}

// A repository as composefs-rs lays it out, written by hand: one object, and
// a format 1 image whose file /f is that object.
struct HandMadeRepo {
  test::TempDir tmp;
  std::string path = tmp / "repo";
  Digest image;
  Digest object;
  std::string image_bytes;
  std::string object_bytes = std::string(70000, 'o');

  HandMadeRepo() {
    namespace fs = std::filesystem;
    fs::create_directories(path + "/objects");
    test::write_file(path + "/meta.json", kRsSha256V1);
    fsverity::Params p;
    object = fsverity::digest_of(object_bytes, p);
    auto tree =
        dump::parse(fmt::format("/ 0 40755 2 0 0 0 0.0 - - -\n"
                                "/f 70000 100644 1 0 0 0 0.0 {} - {}\n",
                                object.object_path(), object.hex()));
    EXPECT_TRUE(tree);
    erofs::WriteOptions wo;
    wo.min_version = wo.max_version = 1;
    auto img = erofs::build_image(*tree, wo);
    EXPECT_TRUE(img);
    image_bytes.assign(img->begin(), img->end());
    image = fsverity::digest_of(image_bytes, p);
    for (auto [d, bytes] : {std::pair{image, image_bytes}, std::pair{object, object_bytes}}) {
      fs::create_directories(path + "/objects/" + d.hex().substr(0, 2));
      test::write_file(path + "/objects/" + d.object_path(), bytes);
    }
    fs::create_directories(path + "/images/refs/app");
    fs::create_symlink("../objects/" + image.object_path(), path + "/images/" + image.hex());
    fs::create_symlink("../../" + image.hex(), path + "/images/refs/app/v1");
  }
};

TEST(Repository, OpensComposefsRsLayout) {
  HandMadeRepo h;
  auto r = Repository::open(h.path);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->alg(), HashAlg::Sha256);
  EXPECT_TRUE(r->insecure());  // meta.json has no fs-verity
  for (std::string name : {h.image.hex(), std::string("refs/app/v1")}) {
    auto img = r->open_image(name);
    ASSERT_TRUE(img) << name << ": " << img.error().message();
    auto bytes = read_fd(img->fd.get(), 1 << 20);
    ASSERT_TRUE(bytes);
    EXPECT_EQ(*bytes, h.image_bytes);
  }
  EXPECT_TRUE(r->has_object(h.object));
  auto obj = r->open_object(h.object, true);
  ASSERT_TRUE(obj) << obj.error().message();
  auto f = r->fsck();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->objects_checked, 2u);
  EXPECT_EQ(f->images_checked, 1u);
  EXPECT_TRUE(f->ok()) << f->to_text();
  // gc keeps what the ref reaches: the image and its object; an unreferenced
  // object goes.
  std::string junk(5000, 'j');
  Digest jd = fsverity::digest_of(junk);
  std::filesystem::create_directories(h.path + "/objects/" + jd.hex().substr(0, 2));
  test::write_file(h.path + "/objects/" + jd.object_path(), junk);
  ASSERT_TRUE(r->ensure_writable());
  auto g = r->gc({}, false);
  ASSERT_TRUE(g) << g.error().message();
  EXPECT_EQ(g->objects_removed, 1u);
  EXPECT_EQ(g->objects_bytes, 5000u);
  EXPECT_TRUE(r->has_object(h.object));
  EXPECT_TRUE(r->has_object(h.image));
  EXPECT_FALSE(r->has_object(jd));
  // Without the object, fsck says which image misses what.
  std::filesystem::remove(h.path + "/objects/" + h.object.object_path());
  auto f2 = r->fsck();
  ASSERT_TRUE(f2);
  ASSERT_EQ(f2->errors.size(), 1u) << f2->to_text();
  EXPECT_EQ(f2->errors[0].text,
            "fsck: image-missing-object: images/" + h.image.hex() + ": " + h.object.hex());
}

TEST(Repository, ImageNamesCannotEscape) {
  HandMadeRepo h;
  namespace fs = std::filesystem;
  fs::create_symlink("/etc/passwd", h.path + "/images/refs/evil");
  fs::create_symlink("../../../../outside", h.path + "/images/refs/up");
  test::write_file(h.tmp / "outside", "x");
  auto r = Repository::open(h.path);
  ASSERT_TRUE(r);
  for (const char* bad : {"refs/evil", "evil", "refs/up", "refs/../../outside", "../outside",
                          "/etc/passwd", "refs/", "refs//app/v1", "app/v1"}) {
    auto img = r->open_image(bad);
    EXPECT_FALSE(img) << bad;
  }
  // A hex name of the wrong length, and a digest whose image is absent.
  EXPECT_FALSE(r->open_image(h.image.hex().substr(0, 62)));
  auto missing = r->open_image(std::string(64, '0'));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), Errc::NotFound);
  // A digest name is verified against the content.
  test::write_file(h.path + "/objects/" + h.image.object_path(), h.image_bytes + "x");
  auto tampered = r->open_image(h.image.hex());
  ASSERT_FALSE(tampered);
  EXPECT_EQ(tampered.error().code(), Errc::VerityMismatch);
}

// Symlinks leading out of the repository and FIFOs planted where files
// belong: fsck reports each, gc and open neither follow nor block on them,
// and refs are never created through a planted directory symlink.
TEST(Repository, PlantedSymlinksAndFifosNeverLeadOutOrBlock) {
  namespace fs = std::filesystem;
  HandMadeRepo h;
  std::string outside = h.tmp / "outside";
  fs::create_directories(outside + "/ab");
  // A FIFO stored as an object, an image entry and a rooted stream naming it.
  std::string fifo_hex = "ab" + std::string(62, '1');
  std::string fifo_obj = h.path + "/objects/ab/" + fifo_hex.substr(2);
  fs::create_directories(h.path + "/objects/ab");
  ASSERT_EQ(::mkfifo(fifo_obj.c_str(), 0644), 0);
  fs::create_symlink("../objects/ab/" + fifo_hex.substr(2), h.path + "/images/" + fifo_hex);
  fs::create_directories(h.path + "/streams/refs");
  fs::create_symlink("../objects/ab/" + fifo_hex.substr(2), h.path + "/streams/fifo");
  // A stream leading out of the repository, to something shaped like an
  // object (the pre-confinement code read it as a split stream).
  std::string out_hex = "ab" + std::string(62, '2');
  test::write_file(outside + "/ab/" + out_hex.substr(2), "not yours");
  fs::create_symlink("../../outside/ab/" + out_hex.substr(2), h.path + "/streams/out");
  // A ref directory that is a symlink to a directory outside.
  fs::create_directories(outside + "/refdir");
  fs::create_symlink(outside + "/refdir", h.path + "/images/refs/team");

  test::FifoWatchdog dog({fifo_obj});
  auto r = Repository::open(h.path);
  ASSERT_TRUE(r) << r.error().message();
  auto f = r->fsck();
  ASSERT_TRUE(f) << f.error().message();
  std::string report = f->to_text();
  EXPECT_NE(
      report.find("object-open-failed: objects/ab/" + fifo_hex.substr(2) + ": not a regular file"),
      std::string::npos)
      << report;
  EXPECT_NE(report.find("symlink-outside-repository: streams/out"), std::string::npos) << report;
  EXPECT_NE(report.find("image-open-failed: images/" + fifo_hex), std::string::npos) << report;
  EXPECT_NE(report.find("stream-open-failed: streams/fifo"), std::string::npos) << report;
  EXPECT_NE(report.find("symlink-outside-repository: images/refs/team"), std::string::npos)
      << report;

  // A ref written below the planted directory symlink is refused; nothing
  // appears outside.
  ASSERT_TRUE(r->ensure_writable());
  auto w =
      r->write_image({reinterpret_cast<const uint8_t*>(h.image_bytes.data()), h.image_bytes.size()},
                     std::string("team/app"));
  EXPECT_FALSE(w);
  EXPECT_FALSE(fs::exists(fs::symlink_status(outside + "/refdir/app")));
  // An image named by a FIFO is an error, not a hang.
  EXPECT_FALSE(r->open_image(fifo_hex));

  // gc: rooted stream leading to the FIFO (kept as the rooted stream's
  // object), the escaping stream never read; nothing outside is touched.
  fs::create_symlink("../fifo", h.path + "/streams/refs/f");
  auto g = r->gc({}, false);
  ASSERT_TRUE(g) << g.error().message();
  // Links out of the repository go as dangling ones do; what they led to stays.
  EXPECT_FALSE(fs::exists(fs::symlink_status(h.path + "/streams/out")));
  EXPECT_FALSE(fs::exists(fs::symlink_status(h.path + "/images/refs/team")));
  EXPECT_TRUE(fs::exists(outside + "/ab/" + out_hex.substr(2)));
  EXPECT_TRUE(fs::exists(outside + "/refdir"));
  EXPECT_TRUE(r->has_object(h.object)) << "what the ref reaches stays";
  EXPECT_FALSE(dog.fired()) << "something blocked opening a FIFO in the repository";
}

TEST(Repository, MetadataThatIsAFifoOrLeadsOutIsRefused) {
  namespace fs = std::filesystem;
  {
    HandMadeRepo h;
    fs::remove(h.path + "/meta.json");
    ASSERT_EQ(::mkfifo((h.path + "/meta.json").c_str(), 0644), 0);
    test::FifoWatchdog dog({h.path + "/meta.json"});
    auto r = Repository::open(h.path);
    EXPECT_FALSE(dog.fired()) << "open blocked on a FIFO meta.json";
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message().find("not a regular file"), std::string::npos)
        << r.error().message();
  }
  {
    HandMadeRepo h;
    fs::rename(h.path + "/meta.json", h.tmp / "meta.json");
    fs::create_symlink(h.tmp / "meta.json", h.path + "/meta.json");
    auto r = Repository::open(h.path);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message().find("outside"), std::string::npos) << r.error().message();
  }
  {
    // objects/ itself a symlink to a directory elsewhere.
    HandMadeRepo h;
    fs::rename(h.path + "/objects", h.tmp / "elsewhere");
    fs::create_symlink(h.tmp / "elsewhere", h.path + "/objects");
    auto r = Repository::open(h.path);
    EXPECT_FALSE(r);
  }
}

TEST(Repository, RefusesBadMetadata) {
  test::TempDir tmp;
  std::string path = tmp / "repo";
  std::filesystem::create_directories(path);
  auto none = Repository::open(path);
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message().find("cfsctl init"), std::string::npos);
  test::write_file(
      path + "/meta.json",
      R"({"version":1,"algorithm":"fsverity-sha256-12","features":{"incompatible":["zstd-objects"]}})");
  auto incompat = Repository::open(path);
  ASSERT_FALSE(incompat);
  EXPECT_NE(incompat.error().message().find("zstd-objects"), std::string::npos);
  test::write_file(path + "/meta.json", kRsSha256V1);
  OpenOptions o;
  o.expected_alg = HashAlg::Sha512;
  EXPECT_FALSE(Repository::open(path, o));
  // Unknown read-only-compatible features: readable, not writable.
  test::write_file(
      path + "/meta.json",
      R"({"version":1,"algorithm":"fsverity-sha256-12","features":{"read-only-compatible":["v1_erofs","new-index"]}})");
  auto ro = Repository::open(path);
  ASSERT_TRUE(ro) << ro.error().message();
  auto w = ro->ensure_writable();
  ASSERT_FALSE(w);
  EXPECT_NE(w.error().message().find("new-index"), std::string::npos);
  EXPECT_TRUE(ro->fsck());
}

TEST(Repository, UpgradesOldFormat) {
  test::TempDir tmp;
  std::string path = tmp / "repo";
  std::filesystem::create_directories(path + "/objects");
  OpenOptions o;
  o.no_upgrade = true;
  EXPECT_FALSE(Repository::open(path, o));
  EXPECT_FALSE(Repository::open(path));  // nothing to infer the algorithm from
  std::string data(1000, 'q');
  fsverity::Params p;
  p.alg = HashAlg::Sha512;
  Digest d = fsverity::digest_of(data, p);
  std::filesystem::create_directories(path + "/objects/" + d.hex().substr(0, 2));
  test::write_file(path + "/objects/" + d.object_path(), data);
  EXPECT_FALSE(Repository::open(path, o));
  auto r = Repository::open(path);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->alg(), HashAlg::Sha512);
  std::string expected = kRsSha256V1;
  expected.replace(expected.find("sha256"), 6, "sha512");
  EXPECT_EQ(test::read_file(path + "/meta.json"), expected);
}

TEST(Repository, InitIsIdempotentAndRefusesChanges) {
  test::TempDir tmp;
  std::string path = tmp / "a/b/repo";
  InitOptions o;
  o.alg = HashAlg::Sha256;
  o.insecure = true;
  auto first = init(path, o);
  ASSERT_TRUE(first) << first.error().message();
  EXPECT_TRUE(*first);
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  ASSERT_EQ(::stat((path + "/meta.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  EXPECT_EQ(test::read_file(path + "/meta.json"), kRsSha256V1);
  auto again = init(path, o);
  ASSERT_TRUE(again);
  EXPECT_FALSE(*again);
  o.alg = HashAlg::Sha512;
  EXPECT_FALSE(init(path, o));
  // Without --insecure the filesystem must support fs-verity.
  InitOptions secure;
  auto s = init(tmp / "secure", secure);
  if (!s) {
    EXPECT_EQ(s.error().code(), Errc::Unsupported);
    EXPECT_NE(s.error().message().find("--insecure"), std::string::npos);
    EXPECT_FALSE(std::filesystem::exists(tmp / "secure/meta.json"));
  }
}

// composefs-rs's "simple" tree (tests/data/composefs-rs): committed in a
// dual repository, one image per format under the digests composefs-rs pins
// for them; the image bytes are the same in a sha512 repository, named by
// their sha512 digest (measured here with the fsverity tool).
class CommitImages : public ::testing::TestWithParam<HashAlg> {};

TEST_P(CommitImages, OnePerFormatOnlyTheDefaultNamed) {
  if (!test::have_command("fsverity")) GTEST_SKIP() << "no fsverity tool (fsverity-utils)";
  const HashAlg alg = GetParam();
  const std::string v1_sha256 = "ad6db6427568a1e4fdc772cbab7b6063f5eb4b33cb62982a740ba9213e5962b5";
  const std::string v2_sha256 = "a8fcd41f8b313bede69f462f2af0a38d64b99a6333f5df884ea9ab4037fac722";
  test::TempDir tmp;
  InitOptions o;
  o.alg = alg;
  o.insecure = true;
  o.formats = {1, {2}};
  ASSERT_TRUE(init(tmp / "repo", o));
  auto tree = dump::parse(test::read_file(test::data_dir() + "/composefs-rs/simple.dump"));
  ASSERT_TRUE(tree) << tree.error().message();
  auto repo = Repository::open(tmp / "repo");
  ASSERT_TRUE(repo) << repo.error().message();
  ASSERT_TRUE(repo->ensure_writable());
  EXPECT_EQ(repo->format_config(), (FormatConfig{1, {2}}));
  auto images = commit_images(*repo, *tree, std::string("simple"));
  ASSERT_TRUE(images) << images.error().message();
  ASSERT_EQ(images->size(), 2u);
  EXPECT_EQ((*images)[0].version, 1u);
  EXPECT_EQ((*images)[1].version, 2u);
  std::string alg_name = alg == HashAlg::Sha256 ? "sha256" : "sha512";
  for (auto& [version, id] : *images) {
    std::string obj = tmp / ("repo/" + repo->object_path(id));
    auto measure = [&](const std::string& a) {
      auto r = test::run("fsverity digest --hash-alg=" + a + " " + test::shell_quote(obj));
      EXPECT_EQ(r.status, 0) << r.err;
      return r.out.substr(a.size() + 1, r.out.find(' ') - a.size() - 1);
    };
    EXPECT_EQ(measure("sha256"), version == 1 ? v1_sha256 : v2_sha256);
    EXPECT_EQ(measure(alg_name), id.hex());
    EXPECT_TRUE(std::filesystem::is_symlink(tmp / ("repo/images/" + id.hex())));
  }
  EXPECT_EQ(std::filesystem::read_symlink(tmp / "repo/images/refs/simple").string(),
            "../" + (*images)[0].id.hex());
  // The images' objects (one external file), read from either format.
  for (auto& [version, id] : *images) {
    auto img = repo->open_image(id.hex());
    ASSERT_TRUE(img) << img.error().message();
    auto objs = image_object_digests(img->fd.get());
    ASSERT_TRUE(objs) << objs.error().message();
    ASSERT_EQ(objs->size(), 1u);
    std::string want;
    for (int i = 0; i < 32; i++) want += "5a";
    EXPECT_EQ((*objs)[0].hex(), want);
  }
  // Narrowed to one format for this process: only it is written, and named.
  repo->set_erofs_version(2);
  EXPECT_EQ(repo->format_config(), (FormatConfig{2, {}}));
  auto only = commit_images(*repo, *tree, std::string("v2"));
  ASSERT_TRUE(only);
  ASSERT_EQ(only->size(), 1u);
  EXPECT_EQ((*only)[0].id, (*images)[1].id);
  EXPECT_EQ(std::filesystem::read_symlink(tmp / "repo/images/refs/v2").string(),
            "../" + (*images)[1].id.hex());
  // A format the tree does not fit in fails the commit, naming the format.
  auto big = dump::parse("/ 0 40755 2 0 0 0 0.0 - - -\n/l 2000 120777 1 0 0 0 0.0 " +
                         std::string(2000, 't') + " - -\n");
  ASSERT_TRUE(big);
  auto refused = commit_images(*repo, *big, std::nullopt);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("EROFS format 2"), std::string::npos)
      << refused.error().message();
}

INSTANTIATE_TEST_SUITE_P(Algorithms, CommitImages,
                         ::testing::Values(HashAlg::Sha256, HashAlg::Sha512), [](const auto& p) {
                           return p.param == HashAlg::Sha256 ? "sha256" : "sha512";
                         });

class Store : public ::testing::Test {
 protected:
  void SetUp() override {
    InitOptions o;
    o.alg = HashAlg::Sha256;
    o.insecure = true;
    ASSERT_TRUE(init(path_, o));
  }
  Repository open(bool named_tmp = false) {
    OpenOptions o;
    o.force_named_tmpfile = named_tmp;
    auto r = Repository::open(path_, o);
    EXPECT_TRUE(r);
    EXPECT_TRUE(r->ensure_writable());
    return std::move(*r);
  }
  static Digest digest(const std::string& s) { return fsverity::digest_of(s); }
  UniqueFd source(const std::string& data) {
    std::string p = tmp_ / ("src" + std::to_string(n_++));
    test::write_file(p, data);
    return std::move(*open_at(AT_FDCWD, p, O_RDONLY));
  }
  size_t count_entries(const std::string& rel) {
    size_t n = 0;
    for (auto& e : std::filesystem::recursive_directory_iterator(path_ + "/" + rel)) {
      (void)e;
      n++;
    }
    return n;
  }
  test::TempDir tmp_;
  std::string path_ = tmp_ / "repo";
  int n_ = 0;
};

TEST_F(Store, ObjectsAreVerifiedWholeAndShared) {
  for (bool named : {false, true}) {
    auto r = open(named);
    std::string data(100000 + named, 'x');
    Digest d = digest(data);
    auto fd = source(data);
    auto st = r.store_object(fd.get(), data.size(), d);
    ASSERT_TRUE(st) << st.error().message();
    EXPECT_EQ(*st, StoreResult::Written);
    std::string obj = path_ + "/" + r.object_path(d);
    EXPECT_EQ(test::read_file(obj), data);
    struct stat st1, st2;
    ASSERT_EQ(::stat(obj.c_str(), &st1), 0);
    EXPECT_EQ(st1.st_mode & 07777, 0644u);
    // Storing it again changes nothing.
    auto fd2 = source(data);
    auto again = r.store_object(fd2.get(), data.size(), d);
    ASSERT_TRUE(again);
    EXPECT_EQ(*again, StoreResult::AlreadyPresent);
    ASSERT_EQ(::stat(obj.c_str(), &st2), 0);
    EXPECT_EQ(st1.st_ino, st2.st_ino);
    // A source that is not what its digest says (changed after hashing) is
    // refused, and nothing is stored under the name.
    Digest wrong = digest(data + "y");
    auto fd3 = source(data + "z");
    auto bad = r.store_object(fd3.get(), data.size() + 1, wrong);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().code(), Errc::VerityMismatch);
    EXPECT_FALSE(r.has_object(wrong));
    // No temporary is left behind either way.
    for (auto& e : std::filesystem::directory_iterator(path_ + "/objects"))
      EXPECT_TRUE(e.is_directory()) << e.path();
  }
}

// store_hashed writes the bytes it is given (read and hashed by the caller),
// named and unnamed temporaries alike; a source fd given for a reflink is
// checked where one is made, so its changed content is never stored.
TEST_F(Store, HashedBytesAreStoredAsGiven) {
  for (bool named : {false, true}) {
    auto r = open(named);
    std::string data(50000 + named, 'h');
    Digest d = digest(data);
    auto bytes = std::span(reinterpret_cast<const uint8_t*>(data.data()), data.size());
    auto st = r.store_hashed(bytes, d);
    ASSERT_TRUE(st) << st.error().message();
    EXPECT_EQ(*st, StoreResult::Written);
    EXPECT_EQ(test::read_file(path_ + "/" + r.object_path(d)), data);
    auto again = r.store_hashed(bytes, d);
    ASSERT_TRUE(again);
    EXPECT_EQ(*again, StoreResult::AlreadyPresent);
    std::string other(50000 + named, 'j');
    Digest od = digest(other);
    auto changed = source(std::string(other.size(), 'k'));
    auto ost = r.store_hashed({reinterpret_cast<const uint8_t*>(other.data()), other.size()}, od,
                              changed.get());
    if (!test::can_reflink(tmp_.path())) {
      ASSERT_TRUE(ost) << ost.error().message();
    }
    if (ost) {
      EXPECT_EQ(test::read_file(path_ + "/" + r.object_path(od)), other);
    } else {
      EXPECT_EQ(ost.error().code(), Errc::VerityMismatch) << ost.error().message();
      EXPECT_FALSE(r.has_object(od));
    }
    for (auto& e : std::filesystem::directory_iterator(path_ + "/objects"))
      EXPECT_TRUE(e.is_directory()) << e.path();
  }
}

// The repository keeps objects/xx open between objects: one removed under
// it is made again, and the next object of that directory still lands.
TEST_F(Store, RemovedObjectDirectoryIsMadeAgain) {
  for (bool named : {false, true}) {
    auto r = open(named);
    std::string a = fmt::format("first {}", named), b;
    Digest da = digest(a), db;
    for (int i = 0;; i++) {  // another object of the same objects/xx
      b = fmt::format("second {} {}", named, i);
      db = digest(b);
      if (db.bytes()[0] == da.bytes()[0]) break;
    }
    ASSERT_TRUE(r.store_hashed({reinterpret_cast<const uint8_t*>(a.data()), a.size()}, da));
    std::filesystem::remove_all(path_ + "/objects/" + da.hex().substr(0, 2));
    auto st = r.store_hashed({reinterpret_cast<const uint8_t*>(b.data()), b.size()}, db);
    ASSERT_TRUE(st) << named << ": " << st.error().message();
    EXPECT_EQ(*st, StoreResult::Written);
    EXPECT_EQ(test::read_file(path_ + "/" + r.object_path(db)), b);
    EXPECT_FALSE(r.has_object(da));
  }
}

TEST_F(Store, DamagedObjectIsReplaced) {
  auto r = open();
  std::string data(9000, 'd');
  Digest d = digest(data);
  std::filesystem::create_directories(path_ + "/objects/" + d.hex().substr(0, 2));
  test::write_file(path_ + "/" + r.object_path(d), "truncated");
  auto fd = source(data);
  auto st = r.store_object(fd.get(), data.size(), d);
  ASSERT_TRUE(st) << st.error().message();
  EXPECT_EQ(*st, StoreResult::Written);
  EXPECT_EQ(test::read_file(path_ + "/" + r.object_path(d)), data);
}

TEST_F(Store, ConcurrentWritersOfOneObjectAllSucceed) {
  std::string data(300000, 'c');
  Digest d = digest(data);
  // Several processes, each with several threads, store the same object at
  // the same moment (a pipe releases them together).
  int go[2];
  ASSERT_EQ(::pipe(go), 0);
  std::vector<pid_t> kids;
  for (int k = 0; k < 4; k++) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(go[1]);
      auto r = Repository::open(path_, {});
      if (!r || !r->ensure_writable()) ::_exit(3);
      std::string src = tmp_ / ("kid" + std::to_string(k));
      test::write_file(src, data);
      char c;
      if (::read(go[0], &c, 1) < 0) ::_exit(4);
      std::atomic<int> failures{0};
      std::vector<std::thread> ts;
      for (int t = 0; t < 4; t++)
        ts.emplace_back([&, t] {
          auto fd = open_at(AT_FDCWD, src, O_RDONLY);
          if (!fd || !r->store_object(fd->get(), data.size(), d)) failures++;
          if (!r->store_bytes({reinterpret_cast<const uint8_t*>(data.data()), data.size() - t}))
            failures++;
        });
      for (auto& t : ts) t.join();
      ::_exit(failures ? 1 : 0);
    }
    kids.push_back(pid);
  }
  ::close(go[0]);
  ::close(go[1]);  // EOF: everyone starts
  for (pid_t p : kids) {
    int status = 0;
    ASSERT_EQ(::waitpid(p, &status, 0), p);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  }
  EXPECT_EQ(test::read_file(path_ + "/objects/" + d.object_path()), data);
  auto r = open();
  auto f = r.fsck();
  ASSERT_TRUE(f);
  EXPECT_TRUE(f->ok()) << f->to_text();
  EXPECT_EQ(f->objects_checked, 4u);  // the object and 3 shorter variants
}

TEST_F(Store, WriteImageLaysOutLikeComposefsRs) {
  auto r = open();
  std::string img(12345, 'i');
  auto d = r.write_image({reinterpret_cast<const uint8_t*>(img.data()), img.size()},
                         std::string("team/app"));
  ASSERT_TRUE(d) << d.error().message();
  std::string hex = d->hex();
  EXPECT_EQ(std::filesystem::read_symlink(path_ + "/images/" + hex).string(),
            "../objects/" + hex.substr(0, 2) + "/" + hex.substr(2));
  EXPECT_EQ(std::filesystem::read_symlink(path_ + "/images/refs/team/app").string(),
            "../../" + hex);
  struct stat st;
  ASSERT_EQ(::stat((path_ + "/images/refs/team").c_str(), &st), 0);
  mode_t mask = ::umask(0);
  ::umask(mask);
  EXPECT_EQ(st.st_mode & 0777, 0755u & ~mask);
  // Renaming a ref to another image replaces it atomically.
  std::string img2(100, 'j');
  auto d2 = r.write_image({reinterpret_cast<const uint8_t*>(img2.data()), img2.size()},
                          std::string("team/app"));
  ASSERT_TRUE(d2);
  EXPECT_EQ(std::filesystem::read_symlink(path_ + "/images/refs/team/app").string(),
            "../../" + d2->hex());
  for (const char* bad : {"../x", "/x", "a//b", ".", "a/.."}) {
    auto b = r.write_image({reinterpret_cast<const uint8_t*>(img.data()), 10}, std::string(bad));
    EXPECT_FALSE(b) << bad;
  }
  EXPECT_EQ(count_entries("images"), 5u);  // 2 images, refs, refs/team, refs/team/app
}

}  // namespace
}  // namespace cfs::repository
