// SPDX-License-Identifier: Apache-2.0
// The tar reader, layer merging and split streams on hand-made archives:
// every tar feature a layer may use, and hostile input of every kind.
#include <gtest/gtest.h>
#include <zstd.h>

#include <set>

#include "composefs-cpp/dump/dump.h"
#include "composefs-cpp/oci/decompress.h"
#include "composefs-cpp/oci/import.h"
#include "composefs-cpp/oci/layers.h"
#include "composefs-cpp/oci/manifest.h"
#include "composefs-cpp/oci/pull.h"
#include "composefs-cpp/oci/registry.h"
#include "composefs-cpp/oci/repo_store.h"
#include "composefs-cpp/oci/tar.h"
#include "composefs-cpp/repository/repository.h"
#include "tar_builder.h"
#include "test_util.h"

namespace cfs::oci {
namespace {

using repository::kInlineFlush;
using repository::kMaxInlinePiece;
using test::TarBuilder;

Result<std::vector<TarEntry>> parse_all(const std::string& tar) {
  MemReader in(tar);
  TarReader r(in);
  std::vector<TarEntry> out;
  for (;;) {
    CFS_TRY_ASSIGN(auto e, r.next());
    if (!e) return out;
    out.push_back(std::move(*e));
  }
}

std::string error_of(const std::string& tar) {
  auto r = parse_all(tar);
  EXPECT_FALSE(r) << "expected an error";
  return r ? "" : r.error().message();
}

TEST(TarReader, UstarEntriesOfEveryType) {
  TarBuilder b;
  b.dir("usr/").file("usr/f", "hello").symlink("usr/s", "f").hardlink("usr/h", "usr/f");
  TarBuilder::Entry c;
  c.name = "usr/null";
  c.type = '3';
  c.devmajor = 1;
  c.devminor = 3;
  b.add(c);
  TarBuilder::Entry f;
  f.name = "usr/fifo";
  f.type = '6';
  b.add(f);
  auto r = parse_all(b.finish());
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_EQ(r->size(), 6u);
  EXPECT_EQ((*r)[0].path, "usr");
  EXPECT_EQ((*r)[0].type, TarType::Directory);
  EXPECT_EQ((*r)[1].size, 5u);
  EXPECT_EQ((*r)[2].link, "f");
  EXPECT_EQ((*r)[3].type, TarType::Hardlink);
  EXPECT_EQ((*r)[3].link, "usr/f");
  EXPECT_EQ((*r)[4].dev_major, 1u);
  EXPECT_EQ((*r)[4].dev_minor, 3u);
  EXPECT_EQ((*r)[5].type, TarType::Fifo);
}

TEST(TarReader, PaxOverridesAndXattrs) {
  TarBuilder b;
  TarBuilder::Entry e;
  e.name = "short";
  e.data = "0123456789";
  std::string long_path;
  for (int i = 0; i < 30; i++) long_path += "dir" + std::to_string(i) + "/";
  long_path += "file";
  e.pax = {{"path", long_path},
           {"uid", "4000000000"},
           {"gid", "77"},
           {"uname", "someone"},
           {"mtime", "1700000000.123456789123"},
           {"SCHILY.xattr.security.capability", std::string("\x01\x00\x00\x02", 4)},
           {"SCHILY.xattr.user.x", "y"},
           // bsdtar's form: %-encoded name, base64 value ("abc").
           {"LIBARCHIVE.xattr.user.%61b", "YWJj"}};
  b.add(e);
  TarBuilder::Entry neg;
  neg.name = "old";
  neg.pax = {{"mtime", "-1.5"}};
  b.add(neg);
  auto r = parse_all(b.finish());
  ASSERT_TRUE(r) << r.error().message();
  auto& x = (*r)[0];
  EXPECT_EQ(x.path, long_path) << "PAX path wins over the ustar name";
  EXPECT_EQ(x.uid, 4000000000u);
  EXPECT_EQ(x.gid, 77u);
  EXPECT_EQ(x.uname, "someone");
  EXPECT_EQ(x.mtime_sec, 1700000000);
  EXPECT_EQ(x.mtime_nsec, 123456789u);
  ASSERT_EQ(x.xattrs.size(), 3u);
  EXPECT_EQ(x.xattrs[0].key, "security.capability");
  EXPECT_EQ(x.xattrs[1].key, "user.ab");
  EXPECT_EQ(x.xattrs[1].value, "abc");
  EXPECT_EQ((*r)[1].mtime_sec, -2);
  EXPECT_EQ((*r)[1].mtime_nsec, 500000000u);
}

TEST(TarReader, GnuLongNamesAndLinks) {
  std::string name = "a/" + std::string(200, 'n');
  std::string target = "a/" + std::string(180, 't');
  TarBuilder b;
  TarBuilder::Entry e;
  e.name = name;
  e.type = '1';
  e.link = target;
  e.gnu_longname = e.gnu_longlink = true;
  b.add(e);
  auto r = parse_all(b.finish());
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ((*r)[0].path, name);
  EXPECT_EQ((*r)[0].link, target);
}

TEST(TarReader, UstarPrefixAndBase256) {
  std::string h = TarBuilder::header("name", '0', 0, "", 0644, 0, 0, 0, 0, 0);
  std::memcpy(&h[345], "some/prefix", 11);
  // uid 2^40 in GNU base-256.
  std::memset(&h[108], 0, 8);
  h[108] = static_cast<char>(0x80);
  h[111] = 1;  // 2^32 << 0 ... bytes 108..115: 80 00 00 01 00 00 00 00 = 2^32
  TarBuilder::fix_checksum(h);
  auto r = parse_all(h + std::string(1024, '\0'));
  ASSERT_FALSE(r) << "uid over 32 bits must be refused";
  EXPECT_NE(r.error().message().find("uid"), std::string::npos) << r.error().message();
  h[111] = 0;
  h[115] = 42;
  TarBuilder::fix_checksum(h);
  r = parse_all(h + std::string(1024, '\0'));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ((*r)[0].path, "some/prefix/name");
  EXPECT_EQ((*r)[0].uid, 42u);
}

TEST(TarReader, HostileInputIsRefusedWithEntryAndOffset) {
  struct Case {
    std::string what;
    std::string tar;
    std::string expect;
  };
  std::vector<Case> cases;
  cases.push_back({"absolute", TarBuilder().file("/etc/passwd", "x").finish(), "absolute path"});
  cases.push_back({"dotdot", TarBuilder().file("a/../../etc/passwd", "x").finish(), "'..'"});
  cases.push_back({"hardlink out", TarBuilder().hardlink("h", "../x").finish(), "'..'"});
  {
    TarBuilder b;
    TarBuilder::Entry e;
    e.name = "huge";
    e.pax = {{"size", std::to_string(1ll << 50)}};
    b.add(e);
    cases.push_back({"absurd size", b.finish(), "absurd"});
  }
  {
    std::string t = TarBuilder().file("a", std::string(5000, 'x')).finish();
    cases.push_back({"truncated data", t.substr(0, 2000), "truncated"});
    cases.push_back({"truncated header", t.substr(0, 300), "truncated"});
  }
  {
    std::string t = TarBuilder().file("a", "x").finish();
    t[10] ^= 1;  // the name, not matching the checksum any more
    cases.push_back({"checksum", t, "checksum"});
  }
  {
    TarBuilder b;
    TarBuilder::Entry e;
    e.name = "sparse";
    e.type = 'S';
    b.add(e);
    cases.push_back({"gnu sparse", b.finish(), "sparse"});
  }
  {
    TarBuilder b;
    TarBuilder::Entry e;
    e.name = "sparse";
    e.pax = {{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"}};
    b.add(e);
    cases.push_back({"pax sparse", b.finish(), "sparse"});
  }
  {
    TarBuilder b;
    TarBuilder::Entry e;
    e.name = "x";
    e.pax = {{"size", "12abc"}};
    b.add(e);
    cases.push_back({"bad pax number", b.finish(), "not a number"});
  }
  {
    std::string t = TarBuilder().file("x", "").finish();
    std::string pax = TarBuilder::header("p", 'x', 9, "", 0, 0, 0, 0, 0, 0) + "99 a=b\n\n\n" +
                      std::string(503, '\0');
    cases.push_back({"bad pax record", pax + t, "PAX record"});
  }
  {
    TarBuilder b;
    TarBuilder::Entry e;
    e.name = "dev";
    e.type = '3';
    e.devmajor = 5000;
    b.add(e);
    cases.push_back({"device number", b.finish(), "out of range"});
  }
  {
    TarBuilder b;
    TarBuilder::Entry e;
    e.name = "d";
    e.type = '5';
    e.data = "junk";
    b.add(e);
    cases.push_back({"directory with data", b.finish(), "non-regular entry with 4 bytes"});
  }
  cases.push_back({"empty symlink", TarBuilder().symlink("s", "").finish(), "without a target"});
  {
    TarBuilder b;
    TarBuilder::Entry e;
    e.name = "x";
    e.pax = {{"path", "a/" + std::string(256, 'n')}};
    b.add(e);
    cases.push_back({"long component", b.finish(), "longer than 255"});
  }
  {
    std::string t = TarBuilder().file("a", "x").finish();
    std::memcpy(&t[257], "xxxxx", 5);
    TarBuilder::fix_checksum(t);
    cases.push_back({"magic", t, "magic"});
  }
  {
    TarBuilder b;
    TarBuilder::Entry e;
    e.name = "x";
    e.type = 'V';
    b.add(e);
    cases.push_back({"volume", b.finish(), "volume"});
  }
  for (auto& c : cases) {
    std::string msg = error_of(c.tar);
    EXPECT_NE(msg.find(c.expect), std::string::npos) << c.what << ": " << msg;
    EXPECT_NE(msg.find("offset"), std::string::npos) << c.what << ": " << msg;
  }
}

TEST(TarReader, RawBytesReproduceTheArchive) {
  TarBuilder b;
  TarBuilder::Entry e;
  e.name = "f";
  e.data = std::string(1000, 'd');
  e.pax = {{"path", "pax/name"}};
  b.add(e);
  std::string tar = b.finish() + std::string(8192, '\0');  // record padding
  MemReader in(tar);
  std::string raw, data;
  TarReader r(in, [&](std::span<const uint8_t> s) -> Status {
    raw.append(reinterpret_cast<const char*>(s.data()), s.size());
    return {};
  });
  auto x = r.next();
  ASSERT_TRUE(x && *x);
  uint8_t buf[300];
  for (;;) {
    auto n = r.read_data(buf);
    ASSERT_TRUE(n);
    if (*n == 0) break;
    data.append(reinterpret_cast<char*>(buf), *n);
  }
  // Header bytes, then the data, then padding, end blocks and trailer.
  size_t header_len = raw.size();
  ASSERT_TRUE(r.next());
  EXPECT_EQ(raw.substr(0, header_len) + data + raw.substr(header_len), tar);
}

TEST(TarReader, TrailerAndExtensionHeadersAreBounded) {
  std::string tar = TarBuilder().file("a", "x").finish();
  // Record padding is fine, a flood after the end of the archive is not.
  EXPECT_TRUE(parse_all(tar + std::string(kMaxTrailer, '\0')));
  std::string msg = error_of(tar + std::string(kMaxTrailer + 1, '\0'));
  EXPECT_NE(msg.find("after the end of the archive at offset 1024"), std::string::npos) << msg;
  // Extension headers before one entry, however they are split: many PAX
  // headers, and empty global headers (512 bytes each, no data).
  std::string recs = TarBuilder::record("comment", std::string(60000, 'c'));
  std::string x = TarBuilder::header("x", 'x', recs.size(), "", 0644, 0, 0, 0, 0, 0) + recs +
                  std::string((512 - recs.size() % 512) % 512, '\0');
  std::string many;
  while (many.size() <= kMaxExtensionBytes) many += x;
  msg = error_of(many + tar);
  EXPECT_NE(msg.find("extension headers of more than 8388608 bytes"), std::string::npos) << msg;
  EXPECT_NE(msg.find("offset 0"), std::string::npos) << msg;
  std::string g = TarBuilder::header("g", 'g', 0, "", 0644, 0, 0, 0, 0, 0), globals;
  while (globals.size() <= kMaxExtensionBytes) globals += g;
  msg = error_of(tar.substr(0, 1024) + globals + tar);
  EXPECT_NE(msg.find("extension headers"), std::string::npos) << msg;
  EXPECT_NE(msg.find("offset 1024"), std::string::npos) << msg;
  // Below the bound, both are fine.
  EXPECT_TRUE(parse_all(x + x + g + g + tar));
}

// ---- layer merging ------------------------------------------------------

struct Layer {
  std::string tar;
};

Result<Tree> merge(const std::vector<std::string>& layers, bool transform = true) {
  LayerMerger m;
  for (size_t i = 0; i < layers.size(); i++) {
    MemReader in(layers[i]);
    TarReader r(in);
    m.begin_layer(fmt::format("layer{}", i));
    for (;;) {
      CFS_TRY_ASSIGN(auto e, r.next());
      if (!e) break;
      FileData d;
      if (e->type == TarType::Regular && e->size > 0) {
        std::string content(e->size, '\0');
        size_t got = 0;
        while (got < content.size()) {
          CFS_TRY_ASSIGN(size_t n, r.read_data({reinterpret_cast<uint8_t*>(content.data()) + got,
                                                content.size() - got}));
          got += n;
        }
        if (e->size <= kInlineMax)
          d.inline_data = content;
        else
          d.digest = fsverity::digest_of(content);
      }
      CFS_TRY(m.add(std::move(*e), std::move(d)));
    }
    CFS_TRY(m.end_layer());
  }
  if (transform) CFS_TRY(m.transform_for_oci());
  return m.to_tree();
}

std::vector<std::string> paths(const Tree& t) {
  std::vector<std::string> out;
  std::function<void(const Node*)> walk = [&](const Node* n) {
    out.push_back(n->path() + (n->link_to ? "=>" + n->link_to->path() : ""));
    for (auto* c : n->children) walk(c);
  };
  walk(t.root());
  return out;
}

TEST(LayerMerger, WhiteoutsOpaqueDirectoriesAndHardlinks) {
  std::string l1 = TarBuilder()
                       .dir("usr")
                       .dir("usr/d")
                       .file("usr/d/old", "1")
                       .dir("usr/d/sub")
                       .file("usr/d/sub/deep", "2")
                       .file("usr/gone", "3")
                       .file("usr/big", std::string(100, 'b'))
                       .dir("run")
                       .file("run/pid", "4")
                       .finish();
  // Layer 2: the opaque marker comes after a same-layer entry (OCI: it hides
  // lower content only), a whiteout, a hardlink to a lower file.
  std::string l2 = TarBuilder()
                       .dir("usr/d")
                       .file("usr/d/new", "5")
                       .file("usr/d/.wh..wh..opq", "")
                       .file("usr/.wh.gone", "")
                       .hardlink("usr/link", "usr/big")
                       .finish();
  auto t = merge({l1, l2});
  ASSERT_TRUE(t) << t.error().message();
  std::vector<std::string> want{
      "/", "/run", "/usr", "/usr/big", "/usr/d", "/usr/d/new", "/usr/link=>/usr/big"};
  EXPECT_EQ(paths(*t), want);
  EXPECT_EQ(t->lookup("/usr/big")->nlink, 2u);
}

TEST(LayerMerger, OpaqueMarkerAfterTheLayersOwnEntries) {
  // The upper layer re-declares lower directories, adds to them, then marks
  // the top one opaque: every lower entry below it goes, its own stay.
  std::string l1 = TarBuilder()
                       .dir("usr")
                       .dir("usr/d")
                       .dir("usr/d/sub")
                       .file("usr/d/sub/old", "1")
                       .file("usr/d/gone", "2")
                       .finish();
  std::string l2 = TarBuilder()
                       .dir("usr/d")
                       .dir("usr/d/sub")
                       .file("usr/d/sub/new", "3")
                       .file("usr/d/.wh..wh..opq", "")
                       .file("usr/d/sub/.wh.new", "")  // its own entry: stays
                       .finish();
  auto t = merge({l1, l2});
  ASSERT_TRUE(t) << t.error().message();
  EXPECT_EQ(paths(*t),
            (std::vector<std::string>{"/", "/usr", "/usr/d", "/usr/d/sub", "/usr/d/sub/new"}));
  // A whiteout repeated in one layer is a duplicate entry.
  auto dup = merge({l1, TarBuilder().file("usr/.wh.d", "").file("usr/.wh.d", "").finish()});
  ASSERT_FALSE(dup);
  EXPECT_NE(dup.error().message().find("duplicate"), std::string::npos);
}

TEST(LayerMerger, OpaqueDirectoryReplacingALowerSymlinkOrFile) {
  // `rm x; mkdir x` in one build step: the upper layer has the directory and
  // its opaque marker where the lower layer had a symlink (or a file).
  std::string l1 =
      TarBuilder().dir("usr").dir("var").symlink("var/run", "../run").file("var/f", "1").finish();
  std::string l2 = TarBuilder()
                       .dir("var/run")
                       .file("var/run/.wh..wh..opq", "")
                       .file("var/run/a", "2")
                       .dir("var/f")
                       .file("var/f/.wh.gone", "")
                       .finish();
  auto t = merge({l1, l2});
  ASSERT_TRUE(t) << t.error().message();
  EXPECT_EQ(paths(*t),
            (std::vector<std::string>{"/", "/usr", "/var", "/var/f", "/var/run", "/var/run/a"}));
  EXPECT_TRUE(S_ISDIR(t->lookup("/var/run")->mode));
}

TEST(LayerMerger, RepeatedDirectoryTakesTheLastMetadata) {
  TarBuilder::Entry again;
  again.name = "usr/d";
  again.type = '5';
  again.mode = 0700;
  std::string l = TarBuilder().dir("usr").dir("usr/d").file("usr/d/x", "1").add(again).finish();
  auto t = merge({l});
  ASSERT_TRUE(t) << t.error().message();
  EXPECT_EQ(t->lookup("/usr/d")->mode & 07777, 0700u);
  EXPECT_NE(t->lookup("/usr/d/x"), nullptr);
  // A directory repeated as a file is still refused.
  auto bad = merge({TarBuilder().dir("usr").dir("usr/d").file("usr/d", "x").finish()});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("duplicate"), std::string::npos) << bad.error().message();
}

TEST(LayerMerger, HardlinkPrimaryIsFirstInDepthFirstOrder) {
  // /a/x sorts before /b in depth-first order although /b is shallower.
  std::string l = TarBuilder()
                      .dir("usr")
                      .file("b", std::string(70, 'x'))
                      .dir("a")
                      .hardlink("a/x", "b")
                      .finish();
  auto t = merge({l});
  ASSERT_TRUE(t) << t.error().message();
  EXPECT_EQ(paths(*t), (std::vector<std::string>{"/", "/a", "/a/x", "/b=>/a/x", "/usr"}));
}

TEST(LayerMerger, TransformCopiesUsrAndEmptiesRun) {
  TarBuilder::Entry usr;
  usr.name = "usr";
  usr.type = '5';
  usr.mode = 0700;
  usr.uid = 5;
  usr.mtime = 1234;
  usr.pax = {{"SCHILY.xattr.security.capability", "c"}, {"SCHILY.xattr.user.a", "b"}};
  TarBuilder b;
  b.dir("./").add(usr).dir("run").file("run/x", "y");
  auto t = merge({b.finish()});
  ASSERT_TRUE(t) << t.error().message();
  const Node* root = t->root();
  EXPECT_EQ(root->mode & 07777, 0700u);
  EXPECT_EQ(root->uid, 5u);
  EXPECT_EQ(root->mtime_sec, 1234);
  ASSERT_EQ(root->xattrs.size(), 1u);
  EXPECT_EQ(root->xattrs[0].key, "security.capability");
  EXPECT_TRUE(t->lookup("/run")->children.empty());
  EXPECT_EQ(t->lookup("/run")->mtime_sec, 1234);
  EXPECT_FALSE(merge({TarBuilder().file("usr", "x").finish()}));  // /usr not a directory
}

// Images built FROM scratch: no /usr, so the root keeps its own metadata
// (composefs-rs refuses them); /run is emptied all the same.
TEST(LayerMerger, ImagesWithoutUsrKeepTheirRoot) {
  TarBuilder::Entry root;
  root.name = "./";
  root.type = '5';
  root.mode = 0710;
  root.uid = 7;
  root.mtime = 4321;
  TarBuilder::Entry run;
  run.name = "run";
  run.type = '5';
  run.mtime = 99;
  TarBuilder b;
  b.add(root).file("app", std::string(100, 'a'), 0755).add(run).file("run/pid", "1");
  auto t = merge({b.finish()});
  ASSERT_TRUE(t) << t.error().message();
  EXPECT_EQ(t->root()->mode & 07777, 0710u);
  EXPECT_EQ(t->root()->uid, 7u);
  EXPECT_EQ(t->root()->mtime_sec, 4321);
  EXPECT_TRUE(t->lookup("/run")->children.empty());
  EXPECT_EQ(t->lookup("/run")->mtime_sec, 99);
  // No root entry at all: a plain 0755 directory owned by root.
  auto bare = merge({TarBuilder().file("app", "x").finish()});
  ASSERT_TRUE(bare) << bare.error().message();
  EXPECT_EQ(bare->root()->mode, static_cast<uint32_t>(S_IFDIR | 0755));
  EXPECT_EQ(bare->root()->uid, 0u);
}

TEST(LayerMerger, HostileLayers) {
  struct Case {
    std::string what;
    std::vector<std::string> layers;
    std::string expect;
  };
  std::vector<Case> cases{
      {"through a symlink",
       {TarBuilder().dir("usr").symlink("etc", "/tmp").file("etc/passwd", "x").finish()},
       "not a directory"},
      {"missing parent", {TarBuilder().dir("usr").file("a/b", "x").finish()}, "does not exist"},
      {"duplicate", {TarBuilder().dir("usr").file("a", "x").file("a", "y").finish()}, "duplicate"},
      {"hardlink to nothing",
       {TarBuilder().dir("usr").hardlink("a", "b").finish()},
       "does not exist"},
      {"hardlink to a directory",
       {TarBuilder().dir("usr").hardlink("a", "usr").finish()},
       "directory"},
      {"hardlink through a symlink",
       {TarBuilder()
            .dir("usr")
            .file("usr/f", "x")
            .symlink("s", "usr")
            .hardlink("h", "s/f")
            .finish()},
       "not a directory"},
      {"root not a directory", {TarBuilder().file(".", "x").finish()}, "root"},
  };
  for (auto& c : cases) {
    auto t = merge(c.layers);
    ASSERT_FALSE(t) << c.what;
    EXPECT_NE(t.error().message().find(c.expect), std::string::npos)
        << c.what << ": " << t.error().message();
  }
}

// ---- split streams ------------------------------------------------------

class SplitStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    repository::InitOptions o;
    o.alg = fsverity::HashAlg::Sha256;
    o.insecure = true;
    ASSERT_TRUE(repository::init(dir_ / "repo", o));
    auto r = repository::Repository::open(dir_ / "repo");
    ASSERT_TRUE(r) << r.error().message();
    repo_ = std::make_unique<repository::Repository>(std::move(*r));
    ASSERT_TRUE(repo_->ensure_writable());
    store_ = std::make_unique<RepoStore>(*repo_);
  }
  test::TempDir dir_;
  std::unique_ptr<repository::Repository> repo_;
  std::unique_ptr<RepoStore> store_;
};

TEST_F(SplitStreamTest, TarRoundTripsByteForByte) {
  TarBuilder b;
  b.dir("usr").file("usr/small", "tiny").file("usr/big", std::string(100000, 'B'));
  b.file("usr/edge64", std::string(64, 'e')).file("usr/edge65", std::string(65, 'f'));
  b.file("usr/big2", std::string(100000, 'B'));  // same content: one object
  std::string huge(5 << 20, 'h');                // through a temporary file
  for (size_t i = 0; i < huge.size(); i += 4096) huge[i] = static_cast<char>(i >> 12);
  b.file("usr/huge", huge);
  std::string tar = b.finish() + std::string(10240 - (b.finish().size() % 10240), '\0');
  MemReader in(tar);
  ImportStats stats;
  auto sid = split_tar(in, *store_, stats);
  ASSERT_TRUE(sid) << sid.error().message();
  auto file = read_object(*store_, *sid, 1 << 30);
  ASSERT_TRUE(file) << file.error().message();
  EXPECT_EQ(stats.objects.load(), 4u);  // big, edge65, big2, huge
  EXPECT_EQ(stats.new_objects.load(), 3u);
  auto r = SplitStreamReader::open(*file, fsverity::HashAlg::Sha256, kLayerContentType);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->stream_size(), tar.size());
  EXPECT_EQ(r->object_refs().size(), 3u);
  test::TempDir out;
  UniqueFd fd(::open((out / "t").c_str(), O_CREAT | O_WRONLY, 0644));
  ASSERT_TRUE(cat_stream(*store_, *r, fd.get()));
  EXPECT_EQ(test::read_file(out / "t"), tar);

  // composefs-rs's old header layout (bootc <= 1.15) reads the same.
  std::string old = *file;
  std::string hdr = file->substr(0, 32);
  old.replace(0, 16, hdr.substr(16, 16));  // info at 0
  old.replace(16, 2, hdr.substr(12, 2));   // flags at 16
  old.replace(18, 11, hdr.substr(0, 11));  // magic at 18
  old[29] = hdr[11], old[30] = hdr[14], old[31] = hdr[15];
  auto r2 = SplitStreamReader::open(old, fsverity::HashAlg::Sha256, kLayerContentType);
  ASSERT_TRUE(r2) << r2.error().message();
  UniqueFd fd2(::open((out / "t2").c_str(), O_CREAT | O_WRONLY, 0644));
  ASSERT_TRUE(cat_stream(*store_, *r2, fd2.get()));
  EXPECT_EQ(test::read_file(out / "t2"), tar);
}

TEST_F(SplitStreamTest, NamedRefsAndCorruption) {
  SplitStreamWriter w(fsverity::HashAlg::Sha256, kConfigContentType);
  auto d1 = fsverity::digest_of(std::string("one"));
  auto d2 = fsverity::digest_of(std::string("two"));
  w.add_named_ref("b", d1);
  w.add_named_ref("a", d2);
  w.add_named_ref("c", d1);
  ASSERT_TRUE(w.write_inline({reinterpret_cast<const uint8_t*>("xyz"), 3}));
  auto f = w.finish();
  ASSERT_TRUE(f);
  auto r = SplitStreamReader::open(*f, fsverity::HashAlg::Sha256, kConfigContentType);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->stream_refs().size(), 2u);
  EXPECT_EQ(*r->named_ref("a"), d2);
  EXPECT_EQ(*r->named_ref("c"), d1);
  EXPECT_FALSE(SplitStreamReader::open(*f, fsverity::HashAlg::Sha256, kLayerContentType));
  EXPECT_FALSE(SplitStreamReader::open(*f, fsverity::HashAlg::Sha512, std::nullopt));
  EXPECT_FALSE(SplitStreamReader::open(f->substr(0, 20), fsverity::HashAlg::Sha256, std::nullopt));
  std::string bad = *f;
  bad[32 + 8] = 0x7f;  // stream_refs end beyond the file
  EXPECT_FALSE(SplitStreamReader::open(bad, fsverity::HashAlg::Sha256, std::nullopt));
  // A truncated compressed stream is an error, not a short read.
  auto t =
      SplitStreamReader::open(f->substr(0, f->size() - 3), fsverity::HashAlg::Sha256, std::nullopt);
  if (t) {
    auto c = t->next_chunk();
    EXPECT_FALSE(c && *c && (*c)->data == "xyz");
  }
}

TEST_F(SplitStreamTest, LargeStreamsSpillToAFileAndReadInPieces) {
  // Incompressible inline data in 64 KiB entries: past the thresholds, the
  // compressed stream goes to a file and inline chunks end at boundaries.
  std::string data(6 << 20, '\0');
  uint64_t x = 88172645463325252ull;
  for (auto& c : data) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    c = static_cast<char>(x);
  }
  SplitStreamWriter w(fsverity::HashAlg::Sha256, kLayerContentType, repo_->dirfd());
  for (size_t off = 0; off < data.size(); off += 65536) {
    ASSERT_TRUE(w.chunk_boundary());
    ASSERT_TRUE(w.write_inline({reinterpret_cast<const uint8_t*>(data.data()) + off, 65536}));
  }
  EXPECT_TRUE(w.spilled());
  EXPECT_FALSE(w.finish()) << "a spilled stream is not assembled in memory";
  auto f = w.finish_file();
  ASSERT_TRUE(f) << f.error().message();
  auto bytes = read_fd(f->fd.get(), 64 << 20);
  ASSERT_TRUE(bytes);
  EXPECT_EQ(bytes->size(), f->size);
  EXPECT_EQ(f->digest, fsverity::digest_of(*bytes));
  ASSERT_EQ(::lseek(f->fd.get(), 0, SEEK_SET), 0);
  auto r = SplitStreamReader::open(std::move(f->fd), fsverity::HashAlg::Sha256, kLayerContentType);
  ASSERT_TRUE(r) << r.error().message();
  std::string back;
  size_t pieces = 0;
  for (;;) {
    auto c = r->next_chunk();
    ASSERT_TRUE(c) << c.error().message();
    if (!*c) break;
    EXPECT_LE((*c)->data.size(), kMaxInlinePiece);
    back += (*c)->data;
    pieces++;
  }
  EXPECT_EQ(back, data);
  EXPECT_GE(pieces, data.size() / (kInlineFlush + 65536));
}

// A layer's inline data is cut into chunks once it passes kInlineFlush,
// and only where an entry begins: composefs-rs reads each header (and small
// file) from a single chunk.
TEST_F(SplitStreamTest, InlineChunksEndAtEntryStarts) {
  TarBuilder b;
  b.dir("usr");
  for (int i = 0; i < 6000; i++) b.file("usr/f" + std::to_string(i), std::to_string(i));
  std::string tar = b.finish();
  auto entries = parse_all(tar);
  ASSERT_TRUE(entries);
  std::set<uint64_t> starts{0};
  for (auto& e : *entries) starts.insert(e.offset);
  starts.insert(tar.size() - 1024);  // the end-of-archive blocks
  MemReader in(tar);
  ImportStats stats;
  auto sid = split_tar(in, *store_, stats);
  ASSERT_TRUE(sid) << sid.error().message();
  auto file = read_object(*store_, *sid, 1 << 30);
  ASSERT_TRUE(file);
  // The raw chunk sequence: the stream section, decompressed.
  auto u64 = [&](size_t at) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | static_cast<uint8_t>((*file)[at + i]);
    return v;
  };
  size_t st_begin = u64(32 + 32), st_end = u64(32 + 40);
  std::string raw;
  ZSTD_DStream* ds = ZSTD_createDStream();
  ZSTD_inBuffer zin{file->data() + st_begin, st_end - st_begin, 0};
  while (zin.pos < zin.size) {
    char buf[65536];
    ZSTD_outBuffer out{buf, sizeof buf, 0};
    ASSERT_FALSE(ZSTD_isError(ZSTD_decompressStream(ds, &out, &zin)));
    raw.append(buf, out.pos);
  }
  ZSTD_freeDStream(ds);
  uint64_t at = 0;
  size_t chunks = 0;
  for (size_t p = 0; p < raw.size();) {
    int64_t len = 0;
    std::memcpy(&len, raw.data() + p, 8);
    ASSERT_LT(len, 0) << "a layer of small files has only inline chunks";
    EXPECT_TRUE(starts.count(at)) << "an inline chunk begins at offset " << at
                                  << ", inside an entry";
    at += static_cast<uint64_t>(-len);
    p += 8 + static_cast<size_t>(-len);
    chunks++;
  }
  EXPECT_EQ(at, tar.size());
  EXPECT_GE(chunks, tar.size() / (kInlineFlush + 1024));
}

TEST_F(SplitStreamTest, ChunkLengthsThatCannotBeAreRefused) {
  // A valid stream, then the same with an inline chunk header claiming 1 TiB
  // and a stream size to match: refused, never allocated.
  auto u64 = [](uint64_t v) {
    std::string s;
    for (int i = 0; i < 8; i++) s.push_back(static_cast<char>(v >> (8 * i)));
    return s;
  };
  SplitStreamWriter w(fsverity::HashAlg::Sha256, kLayerContentType);
  ASSERT_TRUE(w.write_inline({reinterpret_cast<const uint8_t*>("abc"), 3}));
  auto good = w.finish();
  ASSERT_TRUE(good);
  std::string chunks = u64(static_cast<uint64_t>(-(int64_t{1} << 40))) + "abc";
  std::string z(ZSTD_compressBound(chunks.size()), '\0');
  z.resize(ZSTD_compress(z.data(), z.size(), chunks.data(), chunks.size(), 3));
  std::string bad = good->substr(0, 112) + z;
  bad.replace(32 + 32, 16, u64(112) + u64(112 + z.size()));  // the stream range
  bad.replace(32 + 48, 16, u64(112) + u64(112));             // no named refs
  bad.replace(32 + 72, 8, u64(uint64_t{1} << 41));           // stream_size
  auto r = SplitStreamReader::open(bad, fsverity::HashAlg::Sha256, std::nullopt);
  ASSERT_TRUE(r) << r.error().message();
  auto c = r->next_chunk();
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message().find("cannot come from"), std::string::npos) << c.error().message();
}

// ---- JSON, decompression, references ------------------------------------

TEST(Manifest, StrictParsing) {
  EXPECT_FALSE(parse_manifest(R"({"schemaVersion":1})"));
  EXPECT_FALSE(parse_manifest("not json"));
  std::string d = "sha256:" + std::string(64, 'a');
  std::string good = R"({"schemaVersion":2,"config":{"mediaType":")" + std::string(kOciConfig) +
                     R"(","digest":")" + d + R"(","size":5},"layers":[{"mediaType":)" +
                     R"("application/vnd.oci.image.layer.v1.tar+zstd","digest":")" + d +
                     R"(","size":7}]})";
  ASSERT_TRUE(parse_manifest(good));
  EXPECT_FALSE(parse_manifest(std::string(good).replace(good.find("size\":5"), 7, "size\":-5")));
  EXPECT_FALSE(parse_manifest(std::string(good).replace(good.find("aaaa"), 4, "zzzz")));
  EXPECT_FALSE(parse_config(R"({"rootfs":{"type":"layers","diff_ids":["md5:x"]}})"));
  auto c = parse_config(R"({"architecture":"amd64","rootfs":{"type":"layers","diff_ids":[")" + d +
                        R"("]}})");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->diff_ids.size(), 1u);
}

TEST(Manifest, PlatformSelection) {
  std::string d = "sha256:" + std::string(64, 'b');
  auto idx =
      parse_index(R"({"schemaVersion":2,"manifests":[
    {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
                  d +
                  R"(","size":1,"platform":{"os":"linux","architecture":"arm","variant":"v6"}},
    {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
                  d +
                  R"(","size":2,"platform":{"os":"linux","architecture":"arm","variant":"v7"}},
    {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
                  d + R"(","size":3,"platform":{"os":"linux","architecture":"amd64"}}]})");
  ASSERT_TRUE(idx) << idx.error().message();
  auto m = select_platform(*idx, {"linux", "arm", "v7"});
  ASSERT_TRUE(m);
  EXPECT_EQ(m->size, 2u);
  EXPECT_EQ(select_platform(*idx, {"linux", "amd64", ""})->size, 3u);
  auto none = select_platform(*idx, {"linux", "s390x", ""});
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message().find("linux/arm/v7"), std::string::npos);
}

TEST(Decompress, TruncatedAndCorruptStreamsAreErrors) {
  test::TempDir t;
  test::write_file(t / "a", std::string(50000, 'q'));
  ASSERT_EQ(test::run("gzip -k " + (t / "a") + " && zstd -q " + (t / "a")).status, 0);
  for (auto [file, comp] : {std::pair{std::string("a.gz"), Compression::Gzip},
                            std::pair{std::string("a.zst"), Compression::Zstd}}) {
    std::string data = test::read_file(t / file);
    MemReader whole(data);
    auto dec = decompressor(whole, comp);
    auto out = read_all(*dec, 1 << 20, "x");
    ASSERT_TRUE(out) << out.error().message();
    EXPECT_EQ(*out, std::string(50000, 'q'));
    std::string cut = data.substr(0, data.size() / 2);
    MemReader half(cut);
    auto dec2 = decompressor(half, comp);
    EXPECT_FALSE(read_all(*dec2, 1 << 20, "x")) << file;
    std::string bad = data;
    bad[bad.size() / 2] ^= 0x55;
    bad[bad.size() / 2 + 1] ^= 0x55;
    MemReader corrupt(bad);
    auto dec3 = decompressor(corrupt, comp);
    auto r3 = read_all(*dec3, 1 << 20, "x");
    EXPECT_TRUE(!r3 || *r3 != std::string(50000, 'q')) << file;
  }
}

// zstd:chunked layers are zstd frames followed by skippable frames holding
// the chunk manifest: read as plain zstd, the skippable frames contribute
// nothing.
TEST(Decompress, ZstdSkippableFramesAsInZstdChunked) {
  test::TempDir t;
  test::write_file(t / "a", "first frame\n");
  test::write_file(t / "b", "second frame\n");
  ASSERT_EQ(test::run("cd " + t.path() + " && zstd -q a b").status, 0);
  std::string skippable("\x50\x2a\x4d\x18\x05\x00\x00\x00hello", 13);
  std::string data = skippable + test::read_file(t / "a.zst") + skippable +
                     test::read_file(t / "b.zst") + skippable;
  MemReader in(data);
  auto dec = decompressor(in, Compression::Zstd);
  auto out = read_all(*dec, 1 << 20, "x");
  ASSERT_TRUE(out) << out.error().message();
  EXPECT_EQ(*out, "first frame\nsecond frame\n");
}

TEST(Registry, References) {
  auto r = parse_registry_ref("127.0.0.1:5000/a/b:t");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->host, "127.0.0.1:5000");
  EXPECT_EQ(r->repository, "a/b");
  EXPECT_EQ(r->tag, "t");
  r = parse_registry_ref("debian");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->host, "registry-1.docker.io");
  EXPECT_EQ(r->repository, "library/debian");
  EXPECT_EQ(r->tag, "latest");
  r = parse_registry_ref("quay.io/x/y@sha256:" + std::string(64, 'c'));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->digest, "sha256:" + std::string(64, 'c'));
  EXPECT_FALSE(parse_registry_ref("host.io/UPPER:t"));
  EXPECT_FALSE(parse_registry_ref("host.io/x@md5:abc"));
}

TEST(ConfigRefs, ComposefsRsNames) {
  // composefs-rs 0.9's IMAGE_REF_KEY, IMAGE_REF_KEY_V1 and
  // boot_image_ref_key(): by epoch (formats 0 and 1 share one), the default
  // xattr mode without a suffix, another as ".xattrs=<mode>".
  EXPECT_EQ(image_ref_key(2), "composefs.image");
  EXPECT_EQ(image_ref_key(1), "composefs.image.v1");
  EXPECT_EQ(image_ref_key(0), "composefs.image.v1");
  EXPECT_EQ(boot_image_ref_key(2), "composefs.image.boot");
  EXPECT_EQ(boot_image_ref_key(1), "composefs.image.boot.v1");
  EXPECT_EQ(boot_image_ref_key(0, "allowlist-only"), "composefs.image.boot.v1");
  EXPECT_EQ(boot_image_ref_key(1, "keep-user-xattrs"),
            "composefs.image.boot.v1.xattrs=keep-user-xattrs");
  EXPECT_EQ(boot_image_ref_key(2, "keep-user-xattrs"),
            "composefs.image.boot.xattrs=keep-user-xattrs");
}

}  // namespace
}  // namespace cfs::oci
