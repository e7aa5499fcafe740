// SPDX-License-Identifier: Apache-2.0
// cfsctl end to end: images equal to mkcomposefs's and to composefs-rs's
// pinned digests, the container-root transformation, fsck finding damage,
// kill -9 at random moments, concurrent writers with gc, a full disk, locks.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "composefs-cpp/fsverity/fsverity.h"
#include "gen_tree.h"
#include "test_util.h"

namespace cfs::test {
namespace {

namespace fs = std::filesystem;

std::string cfsctl() { return shell_quote(tool("cfsctl")); }

CommandResult cfs(const std::string& repo, const std::string& args) {
  return run(cfsctl() + " --repo " + shell_quote(repo) + " " + args);
}

std::string init_repo(const TempDir& tmp, const std::string& alg = "sha256",
                      const std::string& name = "repo") {
  std::string repo = tmp / name;
  auto r = cfs(repo, "init --insecure --algorithm fsverity-" + alg + "-12");
  EXPECT_EQ(r.status, 0) << r.err;
  return repo;
}

std::string file_digest(const std::string& path) {
  auto fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  auto d = fsverity::digest_of_fd(fd);
  ::close(fd);
  return d ? d->hex() : "";
}

void write_pattern(const std::string& path, size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  write_file(path, s);
}

// A tree big enough that create-image takes a while, small enough to stay fast.
void make_bulk_tree(const std::string& root, int files, unsigned seed) {
  fs::create_directories(root + "/usr/lib");
  fs::create_directories(root + "/etc");
  fs::create_directories(root + "/run/lock");
  for (int i = 0; i < files; i++) {
    std::string dir = root + "/usr/lib/d" + std::to_string(i % 17);
    fs::create_directories(dir);
    write_pattern(dir + "/f" + std::to_string(i), 100 + (i * 7919) % 60000, seed + i);
  }
  write_file(root + "/etc/hostname", "test\n");
  write_file(root + "/run/lock/x", std::string(1000, 'r'));
}

size_t count_files(const std::string& dir) {
  size_t n = 0;
  if (!fs::exists(dir)) return 0;
  for (auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file() && !e.is_symlink()) n++;
  return n;
}

TEST(Cfsctl, NoPropagateImageIsMkcomposefsHardlinks) {
  TempDir tmp;
  std::string root = tmp / "tree";
  GenOptions o;
  o.privileged = is_root();
  std::string why;
  if (!generate_tree(root, o, &why)) GTEST_SKIP() << "cannot generate the tree: " << why;
  for (std::string alg : {"sha256", "sha512"}) {
    std::string repo = init_repo(tmp, alg, "repo-" + alg);
    auto c = cfs(repo, "create-image --no-propagate-usr-to-root " + shell_quote(root));
    ASSERT_EQ(c.status, 0) << c.err;
    std::string id = trim(c.out);
    ASSERT_EQ(id.substr(0, 7), alg + ":");
    std::string hex = id.substr(7);
    auto ci = cfs(repo, "compute-id --no-propagate-usr-to-root " + shell_quote(root));
    ASSERT_EQ(ci.status, 0) << ci.err;
    EXPECT_EQ(trim(ci.out), hex);
    if (alg != "sha256") continue;
    // The C reference's mkcomposefs stores sha256 digests only: compare the
    // bytes with our mkcomposefs, which is byte-identical to it.
    std::string img = tmp / "mk.img";
    auto mk =
        run(shell_quote(tool("mkcomposefs")) + " --min-version=1 --max-version=1 --hardlinks " +
            shell_quote(root) + " " + shell_quote(img));
    ASSERT_EQ(mk.status, 0) << mk.err;
    EXPECT_EQ(file_digest(img), hex);
    std::string stored = repo + "/objects/" + hex.substr(0, 2) + "/" + hex.substr(2);
    EXPECT_EQ(read_file(stored), read_file(img));
  }
}

// Removes every xattr but security.capability.
void strip_xattrs(const std::string& root) {
  std::vector<std::string> paths{root};
  for (auto& e : fs::recursive_directory_iterator(root)) paths.push_back(e.path());
  for (auto& p : paths) {
    char names[65536];
    ssize_t n = ::llistxattr(p.c_str(), names, sizeof names);
    for (ssize_t i = 0; i < n; i += static_cast<ssize_t>(std::strlen(names + i)) + 1) {
      std::string k = names + i;
      if (k != "security.capability") ::lremovexattr(p.c_str(), k.c_str());
    }
  }
}

TEST(Cfsctl, ContainerRootTransformation) {
  // The same tree twice: one as found (with /run content, a hardlink into
  // /run, root metadata of its own), one transformed by hand the way
  // composefs-rs's transform_for_oci describes.  create-image of the first
  // must be mkcomposefs --hardlinks of the second.
  TempDir tmp;
  GenOptions o;
  o.privileged = is_root();
  std::string why;
  std::string a = tmp / "as-found", b = tmp / "transformed";
  if (!generate_tree(a, o, &why) || !generate_tree(b, o, &why))
    GTEST_SKIP() << "cannot generate the tree: " << why;
  if (o.privileged) {
    set_xattr(a + "/usr", "security.capability",
              std::string("\x01\x00\x00\x02", 4) + std::string(16, '\0'));
    set_xattr(b + "/usr", "security.capability",
              std::string("\x01\x00\x00\x02", 4) + std::string(16, '\0'));
  }
  fs::create_directories(a + "/run/sub");
  write_file(a + "/run/sub/pid", "1234");
  ASSERT_EQ(::link((a + "/usr/share/f70000").c_str(), (a + "/run/link").c_str()), 0);
  ::chmod(a.c_str(), 0700);
  set_time(a + "/run", 1600000000, 5);
  set_time(a, 1500000000, 7);

  fs::create_directories(b + "/run");
  strip_xattrs(b);
  struct stat usr;
  ASSERT_EQ(::lstat((b + "/usr").c_str(), &usr), 0);
  ::chmod(b.c_str(), usr.st_mode & 07777);
  if (o.privileged) {
    ASSERT_EQ(::lchown(b.c_str(), usr.st_uid, usr.st_gid), 0);
    set_xattr(b, "security.capability", std::string("\x01\x00\x00\x02", 4) + std::string(16, '\0'));
  }
  set_time(b + "/run", usr.st_mtim.tv_sec, usr.st_mtim.tv_nsec);
  set_time(b, usr.st_mtim.tv_sec, usr.st_mtim.tv_nsec);

  std::string repo = init_repo(tmp);
  auto c = cfs(repo, "create-image " + shell_quote(a) + " named");
  ASSERT_EQ(c.status, 0) << c.err;
  auto mk =
      run(shell_quote(tool("mkcomposefs")) +
          " --min-version=1 --max-version=1 --hardlinks --print-digest-only " + shell_quote(b));
  ASSERT_EQ(mk.status, 0) << mk.err;
  EXPECT_EQ(trim(c.out), "sha256:" + trim(mk.out));
  // /run's contents were not stored.
  std::string run_obj = file_digest(a + "/run/sub/pid");
  EXPECT_FALSE(fs::exists(repo + "/objects/" + run_obj.substr(0, 2) + "/" + run_obj.substr(2)));
  // Without /usr there is no root metadata to take.
  fs::create_directories(tmp / "nousr/etc");
  auto bad = cfs(repo, "create-image " + shell_quote(tmp / "nousr"));
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.err.find("usr"), std::string::npos) << bad.err;
}

TEST(Cfsctl, ComposefsRsPinnedDigests) {
  // composefs-rs 0.9 pins the V1 (sha512) image id of a one-layer OCI image
  // (crates/composefs-integration-tests, OCI_LAYOUT_COMPOSEFS_V1_ID): usr/
  // 0755, hello.txt 0644 "hello from test layer\n" and a hardlink to it,
  // everything owned by 0:0 with mtime 1234567890.  The same tree as a
  // directory gives the same image.
  if (!is_root()) GTEST_SKIP() << "needs root (owner 0:0)";
  TempDir tmp;
  std::string root = tmp / "oci";
  fs::create_directories(root + "/usr");
  write_file(root + "/hello.txt", "hello from test layer\n");
  ASSERT_EQ(::link((root + "/hello.txt").c_str(), (root + "/hello-link.txt").c_str()), 0);
  ::chmod((root + "/usr").c_str(), 0755);
  ::chmod((root + "/hello.txt").c_str(), 0644);
  for (auto p : {root + "/usr", root + "/hello.txt", root}) set_time(p, 1234567890, 0);
  auto r = run(cfsctl() + " --no-repo --hash sha512 compute-id " + shell_quote(root));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(trim(r.out),
            "d06f1f6a73f62ed48e05ce9442ff045cdf2a9f5ba1ec623795de3d6177a253d9"
            "1076459795d94f55d8c3d71dab458bb3fc0071255a50c0a4896d86ffdc870b9a");

  // composefs-rs's tests/mkfs.rs pins the V1 digest of its "simple" tree
  // (every file type, one external sha256 object): format 1 is its V1.
  std::string ext(64, 'a');
  for (size_t i = 0; i < ext.size(); i += 2) ext[i] = '5';
  std::string dump =
      "/ 0 40755 1 0 0 0 0.0 - - -\n"
      "/blkdev 0 60000 1 0 0 123 0.0 - - -\n"
      "/chrdev 0 20000 1 0 0 123 0.0 - - -\n"
      "/fifo 0 10000 1 0 0 0 0.0 - - -\n"
      "/regular-external 1234 100000 1 0 0 0 0.0 " +
      ext.substr(0, 2) + "/" + ext.substr(2) + " - " + ext +
      "\n"
      "/regular-inline 4 100000 1 0 0 0 0.0 - hihi -\n"
      "/socket 0 140000 1 0 0 0 0.0 - - -\n"
      "/symlink 7 120000 1 0 0 0 0.0 /target - -\n";
  write_file(tmp / "simple.dump", dump);
  auto mk = run(shell_quote(tool("mkcomposefs")) +
                " --min-version=1 --max-version=1 --from-file --print-digest-only " +
                shell_quote(tmp / "simple.dump"));
  ASSERT_EQ(mk.status, 0) << mk.err;
  EXPECT_EQ(trim(mk.out), "ad6db6427568a1e4fdc772cbab7b6063f5eb4b33cb62982a740ba9213e5962b5");
}

TEST(Cfsctl, Sha512ImagesCarrySha512Metacopy) {
  // composefs-rs's OverlayMetacopy<Sha512>: version 0, length 68, flags 0,
  // algorithm 2, then the digest; the redirect is "/xx/rest".  Read back
  // through the kernel's EROFS.
  if (!is_root()) GTEST_SKIP() << "needs root to mount";
  TempDir tmp;
  std::string root = tmp / "tree";
  fs::create_directories(root + "/usr");
  write_pattern(root + "/usr/big", 50000, 1);
  std::string repo = init_repo(tmp, "sha512");
  auto c = cfs(repo, "create-image --no-propagate-usr-to-root " + shell_quote(root));
  ASSERT_EQ(c.status, 0) << c.err;
  std::string hex = trim(c.out).substr(7);
  std::string img = repo + "/objects/" + hex.substr(0, 2) + "/" + hex.substr(2);
  std::string mnt = tmp / "mnt";
  fs::create_directories(mnt);
  if (::mount(img.c_str(), mnt.c_str(), "erofs", MS_RDONLY, nullptr) < 0)
    GTEST_SKIP() << "cannot mount EROFS from a file: " << std::strerror(errno);
  char meta[256], redirect[256];
  ssize_t m =
      ::lgetxattr((mnt + "/usr/big").c_str(), "trusted.overlay.metacopy", meta, sizeof meta);
  ssize_t r = ::lgetxattr((mnt + "/usr/big").c_str(), "trusted.overlay.redirect", redirect,
                          sizeof redirect);
  ::umount2(mnt.c_str(), MNT_DETACH);
  fsverity::Params p;
  p.alg = fsverity::HashAlg::Sha512;
  auto d = fsverity::digest_of(read_file(root + "/usr/big"), p);
  ASSERT_EQ(m, 68);
  EXPECT_EQ(meta[0], 0);
  EXPECT_EQ(meta[1], 68);
  EXPECT_EQ(meta[2], 0);
  EXPECT_EQ(meta[3], 2);
  EXPECT_EQ(std::string(meta + 4, 64),
            std::string(reinterpret_cast<const char*>(d.bytes().data()), 64));
  ASSERT_GT(r, 0);
  EXPECT_EQ(std::string(redirect, r), "/" + d.object_path());
  EXPECT_TRUE(fs::exists(repo + "/objects/" + d.object_path()));
}

TEST(Cfsctl, FsckFindsAFlippedByte) {
  TempDir tmp;
  std::string root = tmp / "tree";
  make_bulk_tree(root, 20, 1);
  std::string repo = init_repo(tmp);
  auto c = cfs(repo, "create-image " + shell_quote(root) + " img");
  ASSERT_EQ(c.status, 0) << c.err;
  auto ok = cfs(repo, "fsck");
  EXPECT_EQ(ok.status, 0) << ok.out << ok.err;
  EXPECT_NE(ok.out.find("status: ok"), std::string::npos);
  std::string victim = root + "/usr/lib/d3/f3";
  std::string hex = file_digest(victim);
  std::string obj = repo + "/objects/" + hex.substr(0, 2) + "/" + hex.substr(2);
  ASSERT_TRUE(fs::exists(obj));
  {
    std::fstream f(obj, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(77);
    char ch;
    f.get(ch);
    f.seekp(77);
    f.put(static_cast<char>(ch ^ 0x20));
  }
  auto bad = cfs(repo, "fsck");
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.out.find("fsck: object-digest-mismatch: objects/" + hex.substr(0, 2) + "/" +
                         hex.substr(2) + ": measured "),
            std::string::npos)
      << bad.out;
  EXPECT_NE(bad.out.find("status: 1 error(s)"), std::string::npos) << bad.out;
  auto json = cfs(repo, "fsck --json");
  EXPECT_EQ(json.status, 0);
  EXPECT_NE(json.out.find("\"ok\": false"), std::string::npos) << json.out;
  EXPECT_NE(json.out.find("\"objects_corrupted\": 1"), std::string::npos) << json.out;
  // A broken ref chain is found too.
  fs::remove(repo + "/images/" + trim(c.out).substr(7));
  auto broken = cfs(repo, "fsck");
  EXPECT_NE(broken.out.find("fsck: broken-symlink: images/refs/img"), std::string::npos)
      << broken.out;
}

TEST(Cfsctl, KilledAtRandomMomentsLeavesASoundRepository) {
  TempDir tmp;
  // On a tmpfs where we can (root): syncfs there is immediate, so a run's
  // length does not depend on what else the machine is writing to disk, and
  // the kills land all over it.
  std::string base = tmp.path();
  struct Unmount {
    std::string m;
    ~Unmount() {
      if (!m.empty()) ::umount2(m.c_str(), MNT_DETACH);
    }
  } unmount;
  if (is_root()) {
    std::string m = tmp / "fast";
    fs::create_directories(m);
    if (::mount("tmpfs", m.c_str(), "tmpfs", 0, "size=256m") == 0) {
      unmount.m = m;
      base = m;
    }
  }
  std::string root = base + "/tree";
  make_bulk_tree(root, 150, 2);
  std::string repo = base + "/repo";
  ASSERT_EQ(cfs(repo, "init --insecure --algorithm fsverity-sha256-12").status, 0);
  auto expect = run(cfsctl() + " --hash sha256 --no-repo compute-id " + shell_quote(root));
  ASSERT_EQ(expect.status, 0);
  // How long an uninterrupted run into an empty repository takes, to spread
  // the kills over it.
  ASSERT_EQ(cfs(base + "/timing", "init --insecure --algorithm fsverity-sha256-12").status, 0);
  auto t0 = std::chrono::steady_clock::now();
  auto timed = cfs(base + "/timing", "create-image " + shell_quote(root));
  ASSERT_EQ(timed.status, 0) << timed.err;
  auto span = std::chrono::steady_clock::now() - t0;
  long max_us =
      std::max<long>(1000, std::chrono::duration_cast<std::chrono::microseconds>(span).count());

  std::mt19937 rng(12345);
  int killed = 0;
  for (int i = 0; i < 24; i++) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      if (i % 2) ::setenv("CFS_REPO_FORCE_NAMED_TMPFILE", "1", 1);
      int null = ::open("/dev/null", O_WRONLY);
      ::dup2(null, 1);
      ::dup2(null, 2);
      std::string r = repo, s = root;
      ::execl(tool("cfsctl").c_str(), "cfsctl", "--repo", r.c_str(), "create-image", s.c_str(),
              "name", nullptr);
      ::_exit(127);
    }
    ::usleep(static_cast<useconds_t>(rng() % static_cast<unsigned long>(max_us)));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (WIFSIGNALED(status)) killed++;
    // Whatever moment it died at, the repository is sound.
    auto f = cfs(repo, "fsck");
    ASSERT_EQ(f.status, 0) << "after kill " << i << ":\n" << f.out << f.err;
    // A run that finished has named its image: drop the name, so that all is
    // garbage, and gc removes every leftover, temporaries included (the next
    // run starts from an empty repository again).
    fs::remove_all(repo + "/images/refs");
    auto g = cfs(repo, "gc");
    ASSERT_EQ(g.status, 0) << g.err;
    ASSERT_EQ(count_files(repo + "/objects"), 0u);
    ASSERT_TRUE(!fs::exists(repo + "/images") || fs::is_empty(repo + "/images"));
    for (auto& e : fs::directory_iterator(repo))
      ASSERT_NE(e.path().filename().string().substr(0, 9), ".symlink-") << e.path();
  }
  EXPECT_GT(killed, 6);
  // And a new run succeeds, giving the image an uninterrupted run gives.
  auto again = cfs(repo, "create-image " + shell_quote(root) + " name");
  ASSERT_EQ(again.status, 0) << again.err;
  EXPECT_EQ(trim(again.out), "sha256:" + trim(expect.out));
  auto f = cfs(repo, "fsck");
  EXPECT_EQ(f.status, 0) << f.out;
}

TEST(Cfsctl, ConcurrentCreateImagesAndGc) {
  TempDir tmp;
  std::string a = tmp / "a", b = tmp / "b";
  make_bulk_tree(a, 120, 3);
  make_bulk_tree(b, 120, 3);  // the same files: both write the same objects
  write_file(b + "/etc/hostname", "other\n");
  std::string repo = init_repo(tmp);
  // gc runs in a loop while two create-images run twice each; gc must wait
  // for every writer, so each finished create-image's objects are all there
  // (nothing is named, so the next gc deletes them again).
  pid_t gc = ::fork();
  ASSERT_GE(gc, 0);
  if (gc == 0) {
    for (int i = 0; i < 1000; i++) {
      auto r = cfs(repo, "gc");
      if (r.status != 0) ::_exit(1);
      if (fs::exists(tmp / "stop")) ::_exit(0);
    }
    ::_exit(0);
  }
  std::vector<std::thread> writers;
  std::atomic<int> failures{0};
  for (const auto& src : {a, b}) {
    writers.emplace_back([&, src] {
      for (int i = 0; i < 2; i++) {
        auto r = cfs(repo, "create-image " + shell_quote(src));
        if (r.status != 0) {
          failures++;
          ADD_FAILURE() << r.err;
        }
      }
    });
  }
  for (auto& t : writers) t.join();
  write_file(tmp / "stop", "");
  int status = 0;
  ::waitpid(gc, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_EQ(failures, 0);
  auto f = cfs(repo, "fsck");
  EXPECT_EQ(f.status, 0) << f.out << f.err;
  // Named images while gc keeps running: afterwards exactly their objects
  // are left.
  auto c = cfs(repo, "create-image " + shell_quote(a) + " first");
  ASSERT_EQ(c.status, 0) << c.err;
  auto probe = cfs(repo, "image-objects refs/first");
  if (probe.status != 0 && probe.err.find("not implemented") != std::string::npos)
    GTEST_SKIP() << "gc with named images needs the EROFS reader: " << probe.err;
  std::atomic<bool> stop{false};
  std::thread gcs([&] {
    while (!stop) EXPECT_EQ(cfs(repo, "gc").status, 0);
  });
  auto c2 = cfs(repo, "create-image " + shell_quote(b) + " second");
  stop = true;
  gcs.join();
  ASSERT_EQ(c2.status, 0) << c2.err;
  ASSERT_EQ(cfs(repo, "gc").status, 0);
  std::set<std::string> want{trim(c.out).substr(7), trim(c2.out).substr(7)};
  for (const auto& src : {a, b})
    for (auto& e : fs::recursive_directory_iterator(src))
      if (e.is_regular_file() && e.file_size() > 64 &&
          e.path().string().find("/run/") == std::string::npos)
        want.insert(file_digest(e.path()));
  std::set<std::string> have;
  for (auto& e : fs::recursive_directory_iterator(repo + "/objects"))
    if (e.is_regular_file())
      have.insert(e.path().parent_path().filename().string() + e.path().filename().string());
  EXPECT_EQ(have, want);
  auto f2 = cfs(repo, "fsck");
  EXPECT_EQ(f2.status, 0) << f2.out << f2.err;
}

TEST(Cfsctl, GcWaitsForATransaction) {
  TempDir tmp;
  std::string root = tmp / "tree";
  make_bulk_tree(root, 5, 4);
  std::string repo = init_repo(tmp);
  ASSERT_EQ(cfs(repo, "create-image " + shell_quote(root)).status, 0);
  size_t before = count_files(repo + "/objects");
  ASSERT_GT(before, 0u);
  auto spawn = [&](const char* cmd) {
    pid_t pid = ::fork();
    if (pid == 0) {
      int null = ::open("/dev/null", O_WRONLY);
      ::dup2(null, 1);
      std::string r = repo;
      ::execl(tool("cfsctl").c_str(), "cfsctl", "--repo", r.c_str(), cmd, nullptr);
      ::_exit(127);
    }
    return pid;
  };
  pid_t tx = spawn("transaction");
  // The transaction holds its shared lock once /proc/locks shows it.
  struct stat st;
  ASSERT_EQ(::stat(repo.c_str(), &st), 0);
  std::string ino = ":" + std::to_string(st.st_ino) + " ";
  auto locks_with = [&](const std::string& what) {
    std::string l = read_file("/proc/locks");
    size_t n = 0;
    for (size_t pos = 0; (pos = l.find('\n', pos)) != std::string::npos; pos++) {
      size_t start = l.rfind('\n', pos - 1);
      std::string line = l.substr(start == std::string::npos ? 0 : start + 1, pos - start);
      if (line.find(ino) != std::string::npos && line.find(what) != std::string::npos) n++;
    }
    return n;
  };
  for (int i = 0; i < 500 && locks_with("FLOCK") == 0; i++) ::usleep(10000);
  ASSERT_GT(locks_with("FLOCK"), 0u);
  pid_t gc = spawn("gc");
  // gc queues for the exclusive lock ("->" lines are waiters) ...
  for (int i = 0; i < 500 && locks_with("-> FLOCK") == 0; i++) ::usleep(10000);
  EXPECT_GT(locks_with("-> FLOCK"), 0u);
  EXPECT_EQ(count_files(repo + "/objects"), before);
  int status = 0;
  EXPECT_EQ(::waitpid(gc, &status, WNOHANG), 0);  // still waiting
  // ... and runs once the transaction ends.
  ::kill(tx, SIGKILL);
  ::waitpid(tx, &status, 0);
  ASSERT_EQ(::waitpid(gc, &status, 0), gc);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_EQ(count_files(repo + "/objects"), 0u);
}

TEST(Cfsctl, FullDiskFailsCleanly) {
  if (!is_root()) GTEST_SKIP() << "needs root to mount a small tmpfs";
  TempDir tmp;
  std::string mnt = tmp / "small";
  fs::create_directories(mnt);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=1m") < 0)
    GTEST_SKIP() << "cannot mount tmpfs: " << std::strerror(errno);
  struct Unmount {
    std::string m;
    ~Unmount() { ::umount2(m.c_str(), MNT_DETACH); }
  } unmount{mnt};
  std::string root = tmp / "tree";
  make_bulk_tree(root, 80, 5);  // about 2.4 MB
  std::string repo = init_repo(tmp, "sha256", "small/repo");
  for (bool named : {false, true}) {
    std::string env = named ? "CFS_REPO_FORCE_NAMED_TMPFILE=1 " : "";
    auto c = run(env + cfsctl() + " --repo " + shell_quote(repo) + " create-image " +
                 shell_quote(root) + " img");
    EXPECT_NE(c.status, 0);
    EXPECT_NE(c.err.find("No space left on device"), std::string::npos) << c.err;
    auto f = cfs(repo, "fsck");
    EXPECT_EQ(f.status, 0) << f.out << f.err;
    EXPECT_FALSE(fs::exists(repo + "/images/refs/img"));
    ASSERT_EQ(cfs(repo, "gc").status, 0);
    EXPECT_EQ(count_files(repo + "/objects"), 0u);
  }
  // Room again: a small tree goes in.
  std::string small = tmp / "smalltree";
  make_bulk_tree(small, 3, 6);
  auto ok = cfs(repo, "create-image " + shell_quote(small) + " img");
  EXPECT_EQ(ok.status, 0) << ok.err;
  EXPECT_EQ(cfs(repo, "fsck").status, 0);
}

std::set<std::string> big_file_digests(const std::string& root) {
  std::set<std::string> out;
  for (auto& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file() && !e.is_symlink() && e.file_size() > 64 &&
        e.path().string().find("/run/") == std::string::npos)
      out.insert(file_digest(e.path()));
  return out;
}

std::set<std::string> repo_objects(const std::string& repo) {
  std::set<std::string> have;
  for (auto& e : fs::recursive_directory_iterator(repo + "/objects"))
    if (e.is_regular_file())
      have.insert(e.path().parent_path().filename().string() + e.path().filename().string());
  return have;
}

TEST(Cfsctl, GcKeepsExactlyWhatRefsReach) {
  TempDir tmp;
  std::string a = tmp / "a", b = tmp / "b";
  make_bulk_tree(a, 30, 10);
  make_bulk_tree(b, 30, 10);
  write_pattern(b + "/usr/lib/only-b", 5000, 99);  // one object only b has
  std::string repo = init_repo(tmp);
  auto ca = cfs(repo, "create-image " + shell_quote(a) + " a");
  auto cb = cfs(repo, "create-image " + shell_quote(b));
  ASSERT_EQ(ca.status, 0) << ca.err;
  ASSERT_EQ(cb.status, 0) << cb.err;
  std::string ha = trim(ca.out).substr(7), hb = trim(cb.out).substr(7);
  std::string extra(9000, 'e');
  write_file(tmp / "extra", extra);
  ASSERT_EQ(run("CFS_X=1 " + cfsctl() + " --repo " + shell_quote(repo) + " import-image junk < " +
                shell_quote(tmp / "extra"))
                .status,
            0);
  fs::remove(repo + "/images/refs/junk");

  // image-objects lists what the image references, as sha256:<hex>.
  auto objs = cfs(repo, "image-objects refs/a");
  ASSERT_EQ(objs.status, 0) << objs.err;
  std::set<std::string> listed;
  std::istringstream in(objs.out);
  for (std::string line; std::getline(in, line);) {
    ASSERT_EQ(line.substr(0, 7), "sha256:");
    listed.insert(line.substr(7));
  }
  EXPECT_EQ(listed, big_file_digests(a));

  // An extra root keeps b's image and objects.
  auto dry = cfs(repo, "gc --dry-run --root " + hb);
  ASSERT_EQ(dry.status, 0) << dry.err;
  EXPECT_EQ(dry.out, "Dry run (no files deleted):\nObjects: 1 removed (9000 bytes)\n");
  auto kept = cfs(repo, "gc -r " + hb);
  ASSERT_EQ(kept.status, 0) << kept.err;
  std::set<std::string> want = big_file_digests(a);
  for (auto& d : big_file_digests(b)) want.insert(d);
  want.insert(ha);
  want.insert(hb);
  EXPECT_EQ(repo_objects(repo), want);
  EXPECT_TRUE(fs::exists(repo + "/images/" + hb));

  // Without it, exactly what refs/a reaches is left.
  auto g = cfs(repo, "gc");
  ASSERT_EQ(g.status, 0) << g.err;
  EXPECT_NE(g.out.find("Objects: 2 removed"), std::string::npos) << g.out;  // b's image, only-b
  EXPECT_NE(g.out.find("Pruned symlinks: 1 images, 0 streams"), std::string::npos) << g.out;
  want = big_file_digests(a);
  want.insert(ha);
  EXPECT_EQ(repo_objects(repo), want);
  EXPECT_FALSE(fs::exists(repo + "/images/" + hb));
  EXPECT_EQ(cfs(repo, "fsck").status, 0);

  // dump-files reads the image back.
  auto df = cfs(repo, "dump-files refs/a /etc/hostname /usr/lib/d1");
  ASSERT_EQ(df.status, 0) << df.err;
  EXPECT_EQ(df.out.substr(0, 20), "/etc/hostname 5 1006");
  EXPECT_NE(df.out.find("\n/usr/lib/d1 "), std::string::npos) << df.out;
  EXPECT_NE(df.out.find("\n/usr/lib/d1/f1 "), std::string::npos) << df.out;
  std::string f1 = file_digest(a + "/usr/lib/d1/f1");
  auto bp = cfs(repo, "dump-files --backing-path-only refs/a usr/lib/d1/f1 etc/hostname");
  EXPECT_EQ(bp.out,
            "usr/lib/d1/f1 " + f1.substr(0, 2) + "/" + f1.substr(2) + "\netc/hostname inline\n");
  EXPECT_NE(cfs(repo, "dump-files refs/a /no/such").status, 0);

  // A missing object is found by fsck through the image.
  fs::remove(repo + "/objects/" + f1.substr(0, 2) + "/" + f1.substr(2));
  auto f = cfs(repo, "fsck");
  EXPECT_EQ(f.status, 1);
  EXPECT_NE(f.out.find("fsck: image-missing-object: images/" + ha + ": " + f1), std::string::npos)
      << f.out;
  EXPECT_NE(f.out.find("missing objects: 1"), std::string::npos) << f.out;
}

// The fs-verity digest of a file as the fsverity tool (fsverity-utils)
// measures it.
std::string tool_digest(const std::string& path, const std::string& alg) {
  auto r = run("fsverity digest --hash-alg=" + alg + " " + shell_quote(path));
  EXPECT_EQ(r.status, 0) << r.err;
  return r.out.substr(alg.size() + 1, r.out.find(' ') - alg.size() - 1);
}

std::set<std::string> image_entries(const std::string& repo) {
  std::set<std::string> out;
  for (auto& e : fs::directory_iterator(repo + "/images"))
    if (e.is_symlink()) out.insert(e.path().filename());
  return out;
}

// Repositories writing several formats, as bootc creates them (format 1,
// and format 2 next to it): every commit writes one image per format, only
// the default's is named; the global --erofs-version narrows a run to one
// format; images of either format are checked, listed and collected alike.
// Both algorithms.
class Formats : public ::testing::TestWithParam<std::string> {};

TEST_P(Formats, DualRepositoriesCommitAnImagePerFormat) {
  if (!have_command("fsverity")) GTEST_SKIP() << "no fsverity tool (fsverity-utils)";
  const std::string alg = GetParam();
  TempDir tmp;
  std::string root = tmp / "tree";
  make_bulk_tree(root, 12, 3);
  std::string repo = tmp / "repo";
  auto i = cfs(repo, "init --insecure --algorithm fsverity-" + alg +
                         "-12 --erofs-version 1 --extra-erofs-version 2");
  ASSERT_EQ(i.status, 0) << i.err;
  std::string meta = read_file(repo + "/meta.json");
  EXPECT_NE(meta.find("\"read-only-compatible\": [\n      \"v1_erofs\"\n    ]"), std::string::npos)
      << meta;
  EXPECT_NE(
      meta.find("\"erofs_formats\": {\n    \"default\": 1,\n    \"extra\": [\n      2\n    ]"),
      std::string::npos)
      << meta;
  // The same again is fine, another format set is not.
  EXPECT_EQ(cfs(repo, "init --insecure --algorithm fsverity-" + alg +
                          "-12 --erofs-version 1 --extra-erofs-version 2")
                .status,
            0);
  auto other = cfs(repo, "init --insecure --algorithm fsverity-" + alg + "-12");
  EXPECT_NE(other.status, 0);
  EXPECT_NE(other.err.find("erofs_version: 1+2"), std::string::npos) << other.err;

  auto v1 = cfs(repo, "--erofs-version 1 compute-id " + shell_quote(root));
  auto v2 = cfs(repo, "--erofs-version 2 compute-id " + shell_quote(root));
  ASSERT_EQ(v1.status, 0) << v1.err;
  ASSERT_EQ(v2.status, 0) << v2.err;
  std::string h1 = trim(v1.out), h2 = trim(v2.out);
  ASSERT_NE(h1, h2);
  EXPECT_EQ(h1.size(), alg == "sha256" ? 64u : 128u);
  auto c = cfs(repo, "create-image " + shell_quote(root) + " app");
  ASSERT_EQ(c.status, 0) << c.err;
  EXPECT_EQ(trim(c.out), alg + ":" + h1);  // the default's
  EXPECT_EQ(image_entries(repo), (std::set<std::string>{h1, h2}));
  EXPECT_EQ(fs::read_symlink(repo + "/images/refs/app").string(), "../" + h1);
  for (const std::string& h : {h1, h2}) {
    std::string obj = repo + "/objects/" + h.substr(0, 2) + "/" + h.substr(2);
    EXPECT_EQ(tool_digest(obj, alg), h);
    std::string hdr = read_file(obj).substr(12, 1);
    EXPECT_EQ(hdr[0], h == h1 ? 1 : 2) << "composefs_version";
    if (have_command("fsck.erofs")) {
      EXPECT_EQ(run("fsck.erofs " + shell_quote(obj)).status, 0);
    }
  }
  // Both name the same objects.
  auto o1 = cfs(repo, "image-objects " + h1);
  auto o2 = cfs(repo, "image-objects " + h2);
  ASSERT_EQ(o2.status, 0) << o2.err;
  EXPECT_EQ(o1.out, o2.out);
  EXPECT_NE(o2.out.find(alg + ":"), std::string::npos);
  auto f = cfs(repo, "fsck");
  EXPECT_EQ(f.status, 0) << f.out;
  EXPECT_NE(f.out.find("images: 2/2 ok"), std::string::npos) << f.out;
  // dump-files reads the format 2 image.
  auto df = cfs(repo, "dump-files " + h2 + " /etc/hostname");
  EXPECT_EQ(df.out.substr(0, 20), "/etc/hostname 5 1006") << df.err;

  // gc keeps what refs reach, in any format: the unnamed format 2 image
  // only as an extra root (composefs-rs names only the default's image).
  auto kept = cfs(repo, "gc -r " + h2);
  ASSERT_EQ(kept.status, 0) << kept.err;
  EXPECT_EQ(image_entries(repo), (std::set<std::string>{h1, h2}));
  auto g = cfs(repo, "gc");
  ASSERT_EQ(g.status, 0) << g.err;
  EXPECT_EQ(image_entries(repo), (std::set<std::string>{h1}));

  // --erofs-version narrows this run to one format, which gets the name.
  auto only2 = cfs(repo, "--erofs-version 2 create-image " + shell_quote(root) + " v2");
  ASSERT_EQ(only2.status, 0) << only2.err;
  EXPECT_EQ(trim(only2.out), alg + ":" + h2);
  EXPECT_EQ(fs::read_symlink(repo + "/images/refs/v2").string(), "../" + h2);
  EXPECT_EQ(image_entries(repo), (std::set<std::string>{h1, h2}));
  EXPECT_EQ(read_file(repo + "/meta.json"), meta) << "the override is not stored";
  EXPECT_EQ(cfs(repo, "fsck").status, 0);
}

TEST_P(Formats, InitOptionsAndOlderRepositories) {
  const std::string alg = GetParam();
  TempDir tmp;
  std::string root = tmp / "tree";
  make_bulk_tree(root, 5, 4);
  auto id = [&](const std::string& v) {
    return trim(run(cfsctl() + " --no-repo --hash " + alg + " --erofs-version " + v +
                    " compute-id " + shell_quote(root))
                    .out);
  };
  // init --erofs-version 2, and the global option as its fallback.
  for (const char* how : {"init --erofs-version 2", "--erofs-version 2 init"}) {
    std::string repo = tmp / ("r" + std::to_string(std::string(how).size()));
    std::string cmd = std::string(how);
    cmd.insert(cmd.find("init") + 4, " --insecure --algorithm fsverity-" + alg + "-12");
    auto i = run(cfsctl() + " --repo " + shell_quote(repo) + " " + cmd);
    ASSERT_EQ(i.status, 0) << i.err;
    std::string meta = read_file(repo + "/meta.json");
    EXPECT_NE(meta.find("\"read-only-compatible\": [],"), std::string::npos) << meta;
    EXPECT_NE(meta.find("\"erofs_formats\": {\n    \"default\": 2\n  }"), std::string::npos)
        << meta;
    auto c = cfs(repo, "create-image " + shell_quote(root) + " x");
    ASSERT_EQ(c.status, 0) << c.err;
    EXPECT_EQ(trim(c.out), alg + ":" + id("2"));
  }
  // Format 0 (mkcomposefs's default), with its extra format 1.
  std::string r0 = tmp / "r0";
  ASSERT_EQ(cfs(r0, "init --insecure --algorithm fsverity-" + alg +
                        "-12 --erofs-version 0 --extra-erofs-version 1")
                .status,
            0);
  auto c0 = cfs(r0, "create-image " + shell_quote(root) + " x");
  EXPECT_EQ(trim(c0.out), alg + ":" + id("0"));
  EXPECT_EQ(image_entries(r0), (std::set<std::string>{id("0"), id("1")}));
  EXPECT_NE(cfs(r0, "init --erofs-version 3").status, 0);

  // A repository from before erofs_formats: format 2, unless v1_erofs says 1.
  std::string old = tmp / "old";
  ASSERT_EQ(cfs(old, "init --insecure --algorithm fsverity-" + alg + "-12").status, 0);
  std::string meta = read_file(old + "/meta.json");
  std::string legacy = meta.substr(0, meta.find(",\n  \"erofs_formats\"")) + "\n}\n";
  ::chmod((old + "/meta.json").c_str(), 0644);
  write_file(old + "/meta.json", legacy);
  EXPECT_EQ(trim(cfs(old, "create-image " + shell_quote(root)).out), alg + ":" + id("1"));
  std::string no_flag = legacy;
  const std::string flag = "[\n      \"v1_erofs\"\n    ]";
  no_flag.replace(no_flag.find(flag), flag.size(), "[]");
  write_file(old + "/meta.json", no_flag);
  EXPECT_EQ(trim(cfs(old, "create-image " + shell_quote(root)).out), alg + ":" + id("2"));
}

INSTANTIATE_TEST_SUITE_P(Algorithms, Formats, ::testing::Values("sha256", "sha512"));

TEST(Cfsctl, MountsByDigestAndRef) {
  if (!is_root()) GTEST_SKIP() << "needs root to mount";
  TempDir tmp;
  std::string root = tmp / "tree";
  make_bulk_tree(root, 10, 8);
  std::string repo = init_repo(tmp);
  auto c = cfs(repo, "create-image " + shell_quote(root) + " app");
  ASSERT_EQ(c.status, 0) << c.err;
  std::string hex = trim(c.out).substr(7);
  std::string mnt = tmp / "mnt";
  fs::create_directories(mnt);
  for (std::string name : {hex, std::string("refs/app")}) {
    auto m = cfs(repo, "mount " + name + " " + shell_quote(mnt));
    if (m.status != 0 && m.err.find("not supported") != std::string::npos) GTEST_SKIP() << m.err;
    ASSERT_EQ(m.status, 0) << m.err;
    std::string f = "/usr/lib/d5/f5";
    EXPECT_EQ(read_file(mnt + f), read_file(root + f));
    EXPECT_TRUE(fs::is_empty(mnt + "/run"));
    EXPECT_NE(read_file("/proc/self/mountinfo").find("composefs:" + name), std::string::npos);
    ASSERT_EQ(::umount2(mnt.c_str(), 0), 0);
  }
  // A digest name must match the image.
  std::string other(64, '0');
  fs::create_symlink("../objects/" + hex.substr(0, 2) + "/" + hex.substr(2),
                     repo + "/images/" + other);
  auto bad = cfs(repo, "mount " + other + " " + shell_quote(mnt));
  EXPECT_NE(bad.status, 0);
  EXPECT_EQ(read_file("/proc/self/mountinfo").find(" " + mnt + " "), std::string::npos);
}

TEST(Cfsctl, CommandLine) {
  TempDir tmp;
  std::string repo = tmp / "repo";
  auto i = cfs(repo, "init --insecure --algorithm fsverity-sha256-12");
  ASSERT_EQ(i.status, 0) << i.err;
  EXPECT_EQ(i.out, "Initialized composefs repository at " + repo +
                       "\n  algorithm: fsverity-sha256-12\n  verity:    not required (insecure)\n");
  auto again = cfs(repo, "init --insecure --algorithm fsverity-sha256-12");
  EXPECT_EQ(again.out, "Repository already initialized at " + repo + "\n");
  EXPECT_NE(cfs(repo, "init --insecure --algorithm fsverity-sha512-12").status, 0);
  EXPECT_NE(cfs(repo, "init --insecure --algorithm fsverity-md5-12").status, 0);
  EXPECT_NE(cfs(repo, "--hash sha512 gc").status, 0);
  // The global --hash chooses init's algorithm, and a disagreeing pair is refused.
  auto h256 = cfs(tmp / "h256", "--hash sha256 init --insecure");
  ASSERT_EQ(h256.status, 0) << h256.err;
  EXPECT_NE(h256.out.find("algorithm: fsverity-sha256-12"), std::string::npos) << h256.out;
  EXPECT_NE(read_file(tmp / "h256/meta.json").find("fsverity-sha256-12"), std::string::npos);
  auto clash = cfs(tmp / "clash", "--hash sha256 init --insecure --algorithm fsverity-sha512-12");
  EXPECT_NE(clash.status, 0);
  EXPECT_NE(clash.err.find("disagrees"), std::string::npos) << clash.err;
  EXPECT_FALSE(fs::exists(tmp / "clash/meta.json"));
  EXPECT_EQ(
      cfs(tmp / "agree", "--hash sha512 init --insecure --algorithm fsverity-sha512-12").status, 0);
  EXPECT_NE(cfs(repo, "--require-verity gc").status, 0);
  EXPECT_NE(cfs(repo, "--no-repo gc").status, 0);
  EXPECT_NE(run(cfsctl() + " --repo " + repo + " --user gc").status, 0);
  auto gc = cfs(repo, "gc");
  EXPECT_EQ(gc.out, "Objects: 0 removed (0 bytes)\n");
  auto dry = cfs(repo, "gc --dry-run");
  EXPECT_EQ(dry.out, "Dry run (no files deleted):\nObjects: 0 removed (0 bytes)\n");

  std::string root = tmp / "tree";
  make_bulk_tree(root, 3, 7);
  for (const char* bad : {"../x", "/abs", "a//b", "a/./b", ".."}) {
    auto c = cfs(repo, "create-image " + shell_quote(root) + " " + shell_quote(bad));
    EXPECT_NE(c.status, 0) << bad;
    EXPECT_FALSE(fs::exists(tmp / "x"));
  }
  auto c = cfs(repo, "create-image " + shell_quote(root) + " app/one");
  ASSERT_EQ(c.status, 0) << c.err;
  std::string hex = trim(c.out).substr(7);
  auto imgs = cfs(repo, "images --json");
  EXPECT_EQ(imgs.out,
            "{\n  \"images\": [\n    {\n      \"name\": \"app/one\",\n      \"digest\": \"" + hex +
                "\"\n    }\n  ]\n}\n");
  // import-image: the same bytes, another name, the same digest.
  std::string img = repo + "/objects/" + hex.substr(0, 2) + "/" + hex.substr(2);
  auto imp =
      run(cfsctl() + " --repo " + shell_quote(repo) + " import-image other < " + shell_quote(img));
  EXPECT_EQ(trim(imp.out), "sha256:" + hex);
  EXPECT_EQ(fs::read_symlink(repo + "/images/refs/other").string(), "../" + hex);
  auto dump = cfs(repo, "create-dumpfile " + shell_quote(root));
  EXPECT_EQ(dump.status, 0);
  EXPECT_EQ(dump.out.substr(0, 2), "/ ");
  EXPECT_NE(dump.out.find("/etc/hostname 5 100644"), std::string::npos) << dump.out;
  EXPECT_NE(cfs(repo, "cat nosuch").status, 0);
  // Named-temporary writers give the same result and leave nothing behind.
  auto named = run("CFS_REPO_FORCE_NAMED_TMPFILE=1 " + cfsctl() + " --repo " + shell_quote(repo) +
                   " create-image " + shell_quote(root));
  EXPECT_EQ(trim(named.out), trim(c.out));
  for (auto& e : fs::directory_iterator(repo + "/objects")) EXPECT_TRUE(e.is_directory());
}

}  // namespace
}  // namespace cfs::test
