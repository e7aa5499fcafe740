// SPDX-License-Identifier: Apache-2.0
// Directory scans: the image of a generated tree with every file type equals
// the C reference's image of it (digests recorded from the reference, see
// tests/data/scan/ORIGIN.md), equals the image of its own dump, and does not
// depend on thread count; the digest store holds exactly the right objects.
#include "composefs-cpp/scan/scan.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/mount.h>

#include <filesystem>
#include <functional>
#include <map>
#include <set>

#include "composefs-cpp/base/fd.h"
#include "composefs-cpp/dump/dump.h"
#include "composefs-cpp/erofs/writer.h"
#include "composefs-cpp/fsverity/fsverity.h"
#include "gen_tree.h"
#include "test_util.h"

namespace cfs::scan {
namespace {

std::string image_digest(const Tree& t, const erofs::WriteOptions& wo = {}) {
  auto img = erofs::build_image(t, wo);
  EXPECT_TRUE(img) << (img ? "" : img.error().message());
  if (!img) return {};
  return fsverity::digest_of(std::span<const uint8_t>(*img)).hex();
}

class GeneratedTree : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = tmp_ / "tree";
    test::GenOptions o;
    o.privileged = test::is_root();
    std::string why;
    if (!test::generate_tree(root_, o, &why)) GTEST_SKIP() << "cannot generate the tree: " << why;
  }
  test::TempDir tmp_;
  std::string root_;
};

// option set name -> the mkcomposefs options it stands for.
struct OptionSet {
  std::string name;
  std::string args;
  Options scan;
  erofs::WriteOptions write;
};

std::vector<OptionSet> option_sets() {
  std::vector<OptionSet> v;
  v.push_back({"default", "", {}, {}});
  {
    OptionSet s{"use-epoch", "--use-epoch", {}, {}};
    s.scan.use_epoch = true;
    v.push_back(s);
  }
  {
    OptionSet s{"skip-xattrs", "--skip-xattrs", {}, {}};
    s.scan.skip_xattrs = true;
    v.push_back(s);
  }
  {
    OptionSet s{"user-xattrs", "--user-xattrs", {}, {}};
    s.scan.user_xattrs = true;
    v.push_back(s);
  }
  {
    OptionSet s{"skip-devices", "--skip-devices", {}, {}};
    s.scan.skip_devices = true;
    v.push_back(s);
  }
  v.push_back({"v1", "--min-version=1 --max-version=1", {}, {1, 1}});
  v.push_back({"v0", "--min-version=0 --max-version=0", {}, {0, 0}});
  v.push_back({"min1", "--min-version=1", {}, {1, 0}});
  v.push_back({"max0", "--max-version=0", {}, {0, 0}});
  return v;
}

std::map<std::string, std::string> reference_digests() {
  std::map<std::string, std::string> m;
  std::istringstream in(test::read_file(test::data_dir() + "/scan/reference-digests.txt"));
  std::string name, digest;
  while (in >> name >> digest) m[name] = digest;
  return m;
}

TEST_F(GeneratedTree, ImagesMatchTheReference) {
  if (!test::is_root()) GTEST_SKIP() << "the reference digests are of the tree as root makes it";
  auto want = reference_digests();
  ASSERT_FALSE(want.empty());
  for (auto& s : option_sets()) {
    auto tree = scan_directory(root_, s.scan);
    ASSERT_TRUE(tree) << tree.error().message();
    EXPECT_EQ(image_digest(*tree, s.write), want[s.name]) << "option set " << s.name;
  }
}

TEST_F(GeneratedTree, MkcomposefsToolMatchesTheReference) {
  if (!test::is_root()) GTEST_SKIP() << "the reference digests are of the tree as root makes it";
  auto want = reference_digests();
  for (auto& s : option_sets()) {
    auto r = test::run(test::tool("mkcomposefs") + " --print-digest-only " + s.args + " " + root_);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(test::trim(r.out), want[s.name]) << "option set " << s.name;
  }
}

TEST_F(GeneratedTree, ImageEqualsImageOfItsDump) {
  std::vector<OptionSet> sets = option_sets();
  OptionSet hl{"hardlinks", "--hardlinks", {}, {}};
  hl.scan.hardlinks = true;
  sets.push_back(hl);
  for (auto& s : sets) {
    auto tree = scan_directory(root_, s.scan);
    ASSERT_TRUE(tree) << tree.error().message();
    std::string text = dump::to_string(*tree);
    auto parsed = dump::parse(text, {true});
    ASSERT_TRUE(parsed) << s.name << ": " << parsed.error().message();
    EXPECT_EQ(image_digest(*tree, s.write), image_digest(*parsed, s.write)) << s.name;
    EXPECT_EQ(dump::to_string(*parsed), text) << s.name;
  }
}

TEST_F(GeneratedTree, HardlinksOption) {
  Options o;
  o.hardlinks = true;
  auto tree = scan_directory(root_, o);
  ASSERT_TRUE(tree) << tree.error().message();
  // The primary is the first path in sorted depth-first order.
  const Node* primary = tree->lookup("/etc/hard2");
  ASSERT_TRUE(primary);
  EXPECT_FALSE(primary->link_to);
  EXPECT_EQ(primary->nlink, 3u);
  EXPECT_EQ(tree->lookup("/usr/bin/hard1")->link_to, primary);
  EXPECT_EQ(tree->lookup("/usr/share/f12345")->link_to, primary);
  EXPECT_EQ(tree->lookup("/usr/share/f1")->target(), tree->lookup("/etc/hard-inline"));
  // Without the option every link is its own inode with nlink 1, as in C.
  auto plain = scan_directory(root_, {});
  ASSERT_TRUE(plain);
  EXPECT_FALSE(plain->lookup("/usr/bin/hard1")->link_to);
  EXPECT_EQ(plain->lookup("/usr/bin/hard1")->nlink, 1u);
  EXPECT_NE(image_digest(*tree), image_digest(*plain));
}

TEST_F(GeneratedTree, IndependentOfThreadCount) {
  std::set<std::string> digests;
  for (unsigned threads : {1u, 2u, 3u, 16u}) {
    Options o;
    o.threads = threads;
    auto tree = scan_directory(root_, o);
    ASSERT_TRUE(tree);
    digests.insert(image_digest(*tree));
  }
  EXPECT_EQ(digests.size(), 1u);
}

TEST_F(GeneratedTree, ImagePassesFsckErofs) {
  if (!test::have_command("fsck.erofs")) GTEST_SKIP() << "fsck.erofs not installed";
  auto r = test::run(test::tool("mkcomposefs") + " " + root_ + " " + (tmp_ / "img"));
  ASSERT_EQ(r.status, 0) << r.err;
  auto f = test::run("fsck.erofs " + (tmp_ / "img"));
  EXPECT_EQ(f.status, 0) << f.out << f.err;
}

// Every object is named by its content's fs-verity digest; one object per
// distinct non-inline content; a second run adds and rewrites nothing.
TEST_F(GeneratedTree, DigestStore) {
  std::string store = tmp_ / "store";
  auto r = test::run(test::tool("mkcomposefs") + " --digest-store=" + store + " " + root_ + " " +
                     (tmp_ / "img"));
  ASSERT_EQ(r.status, 0) << r.err;
  std::map<std::string, struct stat> objects;
  for (auto& e : std::filesystem::recursive_directory_iterator(store)) {
    if (!e.is_regular_file()) continue;
    std::string rel = std::filesystem::relative(e.path(), store);
    auto fd = open_at(AT_FDCWD, e.path(), O_RDONLY);
    ASSERT_TRUE(fd);
    auto d = fsverity::digest_of_fd(fd->get());
    ASSERT_TRUE(d);
    EXPECT_EQ(d->object_path(), rel);
    struct stat st;
    ASSERT_EQ(::stat(e.path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0644u) << rel;
    objects[rel] = st;
  }
  // Distinct contents over 64 bytes in the tree.
  std::set<std::string> want;
  for (auto& e : std::filesystem::recursive_directory_iterator(root_)) {
    if (e.is_symlink() || !e.is_regular_file()) continue;
    if (e.file_size() <= 64) continue;
    auto fd = open_at(AT_FDCWD, e.path(), O_RDONLY);
    want.insert(fsverity::digest_of_fd(fd->get())->object_path());
  }
  EXPECT_EQ(objects.size(), want.size());
  for (auto& w : want) EXPECT_TRUE(objects.count(w)) << w;

  auto r2 = test::run(test::tool("mkcomposefs") + " --digest-store=" + store + " " + root_ + " " +
                      (tmp_ / "img2"));
  ASSERT_EQ(r2.status, 0) << r2.err;
  for (auto& [rel, st] : objects) {
    struct stat st2;
    ASSERT_EQ(::stat((store + "/" + rel).c_str(), &st2), 0);
    EXPECT_EQ(st2.st_ino, st.st_ino) << rel << " was rewritten";
  }
  EXPECT_EQ(test::read_file(tmp_ / "img"), test::read_file(tmp_ / "img2"));
}

// A full disk fails cleanly: a clear error, no image, no partial object.
TEST_F(GeneratedTree, FullDigestStoreFailsCleanly) {
  if (!test::is_root()) GTEST_SKIP() << "mounting a small tmpfs needs root";
  std::string small = tmp_ / "small";
  ASSERT_EQ(::mkdir(small.c_str(), 0755), 0);
  if (::mount("tmpfs", small.c_str(), "tmpfs", 0, "size=64k") != 0)
    GTEST_SKIP() << "cannot mount tmpfs: " << std::strerror(errno);
  auto r = test::run(test::tool("mkcomposefs") + " --digest-store=" + small + "/store " + root_ +
                     " " + (tmp_ / "img"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("No space left on device"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(root_), std::string::npos) << "the error names the file: " << r.err;
  EXPECT_FALSE(std::filesystem::exists(tmp_ / "img"));
  // Whatever objects exist are complete.
  for (auto& e : std::filesystem::recursive_directory_iterator(small + "/store")) {
    if (!e.is_regular_file()) continue;
    std::string rel = std::filesystem::relative(e.path(), small + "/store");
    auto fd = open_at(AT_FDCWD, e.path(), O_RDONLY);
    EXPECT_EQ(fsverity::digest_of_fd(fd->get())->object_path(), rel);
  }
  ::umount2(small.c_str(), MNT_DETACH);
}

TEST(Scan, Errors) {
  test::TempDir tmp;
  auto r = scan_directory(tmp / "missing", {});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("missing"), std::string::npos);
  test::write_file(tmp / "file", "x");
  r = scan_directory(tmp / "file", {});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("is not a directory"), std::string::npos);
  Options both;
  both.skip_xattrs = both.user_xattrs = true;
  EXPECT_FALSE(scan_directory(tmp.path(), both));
}

TEST(Scan, XattrOverBudgetNamesThePath) {
  if (!test::is_root()) GTEST_SKIP() << "needs a tmpfs (root) for large xattrs";
  test::TempDir tmp;
  std::string dir = tmp / "d";
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  if (::mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=1m") != 0)
    GTEST_SKIP() << "cannot mount tmpfs: " << std::strerror(errno);
  test::write_file(dir + "/f", "x");
  int set = 0;
  for (int i = 0; i < 20; i++)
    if (test::set_xattr(dir + "/f", "user.k" + std::to_string(i), std::string(2000, 'v'))) set++;
  if (set < 17) {
    ::umount2(dir.c_str(), MNT_DETACH);
    GTEST_SKIP() << "tmpfs took only " << set << " large user xattrs";
  }
  auto r = scan_directory(dir, {});
  ::umount2(dir.c_str(), MNT_DETACH);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find(dir + "/f"), std::string::npos) << r.error().message();
  EXPECT_NE(r.error().message().find("per-inode limit"), std::string::npos);
}

// Between the walk and the reads the tree changes: every change is an error
// naming the file (never a digest of other bytes, never a hang).
TEST(Scan, FileChangedAfterTheWalkIsAnError) {
  struct Case {
    std::string what;
    std::function<void(const std::string&)> change;
    std::string expect;
  };
  std::vector<Case> cases{
      {"swapped for a FIFO",
       [](const std::string& f) {
         ::unlink(f.c_str());
         ASSERT_EQ(::mkfifo(f.c_str(), 0644), 0);
       },
       "now a 0-byte FIFO"},
      {"grown", [](const std::string& f) { test::write_file(f, std::string(5000, 'g')); },
       "now a 5000-byte regular file"},
      {"shrunk", [](const std::string& f) { test::write_file(f, std::string(10, 's')); },
       "now a 10-byte regular file"},
      {"replaced by another file of the same size",
       [](const std::string& f) {
         test::write_file(f + ".new", std::string(4000, 'r'));
         ASSERT_EQ(::rename((f + ".new").c_str(), f.c_str()), 0);
       },
       "(inode"},
      {"an inline file grown",
       [](const std::string& f) { test::write_file(f + "-small", std::string(60, 'g')); },
       "now a 60-byte regular file"},
      {"swapped for a symlink",
       [](const std::string& f) {
         ::unlink(f.c_str());
         ASSERT_EQ(::symlink("/etc/passwd", f.c_str()), 0);
       },
       "f"},
  };
  // Without a store files are streamed; with one they are read whole.
  for (bool stored : {false, true})
    for (auto& c : cases) {
      test::TempDir tmp, objects;
      std::string f = tmp / "f";
      test::write_file(f, std::string(4000, 'o'));
      test::write_file(f + "-small", "tiny");
      auto store = DigestStore::open(objects / "store");
      ASSERT_TRUE(store) << store.error().message();
      Options o;
      o.threads = 1;
      o.after_walk = [&] { c.change(f); };
      if (stored)
        o.store = [&](const ObjectSource& src, const fsverity::Digest& d) {
          return store->store(src, d);
        };
      test::FifoWatchdog dog({f});
      auto r = scan_directory(tmp.path(), o);
      EXPECT_FALSE(dog.fired()) << c.what << ": the scan blocked on the FIFO";
      ASSERT_FALSE(r) << c.what;
      std::string want_path = c.what == "an inline file grown" ? f + "-small" : f;
      EXPECT_NE(r.error().message().find(want_path), std::string::npos)
          << c.what << ": " << r.error().message();
      EXPECT_NE(r.error().message().find(c.expect), std::string::npos)
          << c.what << ": " << r.error().message();
      // Only an unchanged file's object may be there, under its digest.
      for (auto& e : std::filesystem::recursive_directory_iterator(objects / "store")) {
        if (!e.is_regular_file()) continue;
        std::string content = test::read_file(e.path().string());
        EXPECT_EQ(content, std::string(4000, 'o')) << c.what << ": " << e.path();
        EXPECT_EQ(e.path().string(),
                  objects / ("store/" + fsverity::digest_of(content).object_path()));
      }
    }
}

// An object whose content is not its digest (the source changed after it
// was hashed) never appears in the digest store under that name.
TEST(Scan, DigestStoreVerifiesWhatItStores) {
  test::TempDir tmp;
  auto store = DigestStore::open(tmp / "objects");
  ASSERT_TRUE(store) << store.error().message();
  std::string data(10000, 'a');
  test::write_file(tmp / "src", data);
  auto fd = open_at(AT_FDCWD, tmp / "src", O_RDONLY);
  ASSERT_TRUE(fd);
  fsverity::Digest wrong = fsverity::digest_of(std::string(10000, 'b'));
  auto st = store->store({fd->get(), data.size(), {}}, wrong);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code(), Errc::VerityMismatch) << st.error().message();
  EXPECT_FALSE(std::filesystem::exists(tmp / ("objects/" + wrong.object_path())));
  for (auto& e : std::filesystem::recursive_directory_iterator(tmp / "objects"))
    EXPECT_TRUE(e.is_directory()) << "left behind: " << e.path();
  // The right digest is stored.
  fsverity::Digest right = fsverity::digest_of(data);
  ASSERT_EQ(::lseek(fd->get(), 0, SEEK_SET), 0);
  ASSERT_TRUE(store->store({fd->get(), data.size(), {}}, right));
  EXPECT_EQ(test::read_file(tmp / ("objects/" + right.object_path())), data);
}

// Bytes the scan hashed are stored as they are, not read again: the file
// changed since is not what lands under their digest.  (Where the store
// reflinks the file instead, the copy is checked and refused.)
TEST(Scan, DigestStoreWritesTheBytesItWasGiven) {
  test::TempDir tmp;
  auto store = DigestStore::open(tmp / "objects");
  ASSERT_TRUE(store) << store.error().message();
  std::string hashed(20000, 'h');
  test::write_file(tmp / "src", std::string(20000, 'x'));
  auto fd = open_at(AT_FDCWD, tmp / "src", O_RDONLY);
  ASSERT_TRUE(fd);
  fsverity::Digest d = fsverity::digest_of(hashed);
  auto bytes = std::span(reinterpret_cast<const uint8_t*>(hashed.data()), hashed.size());
  auto st = store->store({fd->get(), hashed.size(), bytes}, d);
  auto object = tmp / ("objects/" + d.object_path());
  if (!test::can_reflink(tmp.path())) {
    ASSERT_TRUE(st) << st.error().message();
  }
  if (st) {
    EXPECT_EQ(test::read_file(object), hashed);
  } else {
    EXPECT_EQ(st.error().code(), Errc::VerityMismatch) << st.error().message();
    EXPECT_FALSE(std::filesystem::exists(object));
  }
}

// The store keeps its xx/ directories open: one removed under it is made
// again for the next object that belongs there.
TEST(Scan, DigestStoreMakesARemovedDirectoryAgain) {
  test::TempDir tmp;
  auto store = DigestStore::open(tmp / "objects");
  ASSERT_TRUE(store) << store.error().message();
  std::string a = "first object", b;
  fsverity::Digest da = fsverity::digest_of(a), db;
  for (int i = 0;; i++) {
    b = fmt::format("second object {}", i);
    db = fsverity::digest_of(b);
    if (db.bytes()[0] == da.bytes()[0]) break;
  }
  auto put = [&](const std::string& data, const fsverity::Digest& d) {
    std::string src = tmp / "src";
    test::write_file(src, data);
    auto fd = open_at(AT_FDCWD, src, O_RDONLY);
    EXPECT_TRUE(fd);
    return store->store(
        {fd->get(), data.size(), {reinterpret_cast<const uint8_t*>(data.data()), data.size()}}, d);
  };
  ASSERT_TRUE(put(a, da));
  std::filesystem::remove_all(tmp / ("objects/" + da.hex().substr(0, 2)));
  auto st = put(b, db);
  ASSERT_TRUE(st) << st.error().message();
  EXPECT_EQ(test::read_file(tmp / ("objects/" + db.object_path())), b);
}

// Files on both sides of the size up to which the scan reads a file whole
// (8 MiB with two workers), and a sparse one, are stored with their
// content under their digest.
TEST(Scan, DigestStoreHoldsFilesReadWholeAndStreamed) {
  test::TempDir tmp;
  ::mkdir((tmp / "src").c_str(), 0755);
  std::vector<std::pair<std::string, std::string>> files;
  for (size_t size : {size_t{70000}, (size_t{8} << 20) - 2, (size_t{8} << 20) - 1, size_t{8} << 20,
                      (size_t{9} << 20) + 5}) {
    std::string data(size, '\0');
    for (size_t i = 0; i < size; i++) data[i] = static_cast<char>((i * 2654435761u) >> 13);
    files.emplace_back(fmt::format("f{}", size), std::move(data));
  }
  for (auto& [name, data] : files) test::write_file(tmp / ("src/" + name), data);
  {
    UniqueFd f(::open((tmp / "src/sparse").c_str(), O_WRONLY | O_CREAT, 0644));
    ASSERT_TRUE(f.valid());
    ASSERT_EQ(::pwrite(f.get(), "end", 3, 20 << 20), 3);
    std::string data(size_t{20} << 20, '\0');
    data += "end";
    files.emplace_back("sparse", std::move(data));
  }
  auto store = DigestStore::open(tmp / "objects");
  ASSERT_TRUE(store) << store.error().message();
  Options o;
  o.threads = 2;
  const DigestStore* sp = &*store;
  o.store = [sp](const ObjectSource& src, const fsverity::Digest& d) { return sp->store(src, d); };
  auto tree = scan_directory(tmp / "src", o);
  ASSERT_TRUE(tree) << tree.error().message();
  for (auto& [name, data] : files) {
    fsverity::Digest d = fsverity::digest_of(data);
    const Node* n = tree->root()->find_child(name);
    ASSERT_NE(n, nullptr) << name;
    EXPECT_EQ(n->digest, d) << name;
    EXPECT_EQ(test::read_file(tmp / ("objects/" + d.object_path())), data) << name;
  }
}

}  // namespace
}  // namespace cfs::scan
