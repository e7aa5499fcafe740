// SPDX-License-Identifier: Apache-2.0
// Shared by the mount test suites: kernel feature checks, the fixture that
// proves no mount, loop device or temporary directory outlives a test, and
// test data helpers.
#pragma once

#include <fcntl.h>
#include <glob.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "composefs-cpp/fsverity/fsverity.h"
#include "composefs-cpp/mount/fs_context.h"
#include "composefs-cpp/mount/mount.h"
#include "test_util.h"

namespace cfs::mount {

using namespace cfs::test;
namespace fs = std::filesystem;

// ------------------------------------------------------------ environment

inline bool in_proc_filesystems(const std::string& name) {
  std::string all = read_file("/proc/filesystems");
  return all.find("\t" + name + "\n") != std::string::npos;
}

// Why mount tests cannot run here, or "".
inline std::string missing_feature() {
  if (!is_root()) return "mounting needs root";
  for (const char* fs : {"erofs", "overlay"}) {
    auto ctx = FsContext::open(fs);  // also loads the module
    if (!ctx && !in_proc_filesystems(fs)) return std::string("the kernel has no ") + fs;
  }
  return "";
}

inline std::string unescape_mountinfo(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 3), nullptr, 8));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

// Mountpoints under `root`, or whose options mention it (layers), innermost last.
inline std::vector<std::string> mounts_touching(const std::string& root) {
  std::vector<std::string> out;
  std::istringstream in(read_file("/proc/self/mountinfo"));
  for (std::string line; std::getline(in, line);) {
    std::istringstream f(line);
    std::string id, parent, dev, rootpath, mp;
    f >> id >> parent >> dev >> rootpath >> mp;
    mp = unescape_mountinfo(mp);
    if (mp.starts_with(root) || unescape_mountinfo(line).find(root) != std::string::npos)
      out.push_back(mp);
  }
  return out;
}

// Loop devices whose backing file is under `root`.
inline std::vector<std::string> loops_backed_under(const std::string& root) {
  std::vector<std::string> out;
  glob_t g{};
  if (::glob("/sys/block/loop*/loop/backing_file", 0, nullptr, &g) == 0) {
    for (size_t i = 0; i < g.gl_pathc; i++) {
      std::string backing = trim(read_file(g.gl_pathv[i]));
      if (backing.starts_with(root)) out.push_back(std::string(g.gl_pathv[i]) + " -> " + backing);
    }
  }
  ::globfree(&g);
  return out;
}

inline std::string pattern(size_t n, uint32_t seed = 1) {
  std::string s(n, '\0');
  uint64_t x = 0x9E3779B97F4A7C15ULL ^ seed;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    s[i] = static_cast<char>(x);
  }
  return s;
}

// The image's digest as the fsverity tool (fsverity-utils) computes it.
inline std::string fsverity_tool_digest(const std::string& file,
                                        const std::string& alg = "sha256") {
  auto r = run("fsverity digest --hash-alg=" + alg + " " + shell_quote(file));
  EXPECT_EQ(r.status, 0) << r.err;
  return r.out.substr(0, r.out.find(' '));  // "sha256:HEX"
}

// Whether files in `dir` can have fs-verity (the kernel and the filesystem).
inline bool fsverity_works_in(const std::string& dir) {
  std::string f = dir + "/.verity-probe";
  write_file(f, "probe");
  int fd = ::open(f.c_str(), O_RDONLY | O_CLOEXEC);
  bool ok = fd >= 0 && fsverity::enable(fd).has_value();
  if (fd >= 0) ::close(fd);
  ::unlink(f.c_str());
  return ok;
}

// ------------------------------------------------------------ fixture

class MountTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = missing_feature(); !why.empty()) GTEST_SKIP() << why;
    fs::create_directories(tmpdir());
    fs::create_directories(p("mnt"));
  }

  // Every mount, loop device and temporary directory of the test must be gone.
  void TearDown() override {
    if (IsSkipped()) return;
    auto mounts = mounts_touching(root_.path());
    for (auto it = mounts.rbegin(); it != mounts.rend(); ++it) {
      if (fast_mounted_ && *it == p("fast")) continue;
      ADD_FAILURE() << "mount left behind: " << *it;
      ::umount2(it->c_str(), MNT_DETACH);
    }
    // An autoclear loop device is detached when its last user lets go,
    // which a loaded machine may do a moment after the unmount returns: a
    // leak is one still there after seconds.
    auto loops = loops_backed_under(root_.path());
    for (int i = 0; i < 50 && !loops.empty(); i++) {
      ::usleep(100 * 1000);
      loops = loops_backed_under(root_.path());
    }
    for (const std::string& l : loops) ADD_FAILURE() << "loop device left behind: " << l;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(tmpdir(), ec))
      ADD_FAILURE() << "temporary file left behind: " << e.path();
    if (fast_mounted_) ::umount2(p("fast").c_str(), MNT_DETACH);
  }

  // A path on a tmpfs of the test's own: big trees are made and removed in
  // seconds there (the disk's synchronous discards take minutes).
  std::string fast(const std::string& rel) {
    if (!fast_mounted_) {
      fs::create_directories(p("fast"));
      if (::mount("cfs-test", p("fast").c_str(), "tmpfs", 0, "size=4g,mode=0755") != 0)
        return p(rel);  // no tmpfs: the disk will do, slowly
      fast_mounted_ = true;
    }
    return p("fast") + "/" + rel;
  }

  std::string p(const std::string& rel) const { return root_ / rel; }
  std::string tmpdir() const { return p("tmp"); }
  std::string mnt() const { return p("mnt"); }

  Options options(std::vector<std::string> basedirs) const {
    Options o;
    o.basedirs = std::move(basedirs);
    o.tmpdir = tmpdir();
    return o;
  }

  // mkcomposefs --digest-store=OBJECTS SRC IMAGE [extra]
  void mkcomposefs(const std::string& src, const std::string& image, const std::string& objects,
                   const std::string& extra = "") {
    auto r = run(shell_quote(tool("mkcomposefs")) + " " + extra + " --digest-store=" +
                 shell_quote(objects) + " " + shell_quote(src) + " " + shell_quote(image));
    ASSERT_EQ(r.status, 0) << r.err;
  }

  // Mounts, compares with `src`, unmounts; returns the mount's description.
  Mounted mount_and_compare(const std::string& src, const std::string& image, const Options& o,
                            CompareOptions co = {}, size_t min_entries = 1) {
    auto m = mount_image(image, mnt(), o);
    EXPECT_TRUE(m) << m.error().message();
    if (!m) return {};
    TreeComparer cmp(co);
    cmp.compare(src, mnt());
    EXPECT_EQ(cmp.failures(), 0u);
    EXPECT_GE(cmp.entries(), min_entries);
    auto u = unmount(mnt());
    EXPECT_TRUE(u) << u.error().message();
    return *m;
  }

  TempDir root_;
  bool fast_mounted_ = false;
};

// A child process in a new user namespace mapping 0..65535 to 100000..165535.
class UserNamespace {
 public:
  UserNamespace() {
    int pipefd[2];
    if (::pipe(pipefd) < 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(pipefd[1]);
      if (::unshare(CLONE_NEWUSER) < 0) ::_exit(1);
      char c;
      (void)::read(pipefd[0], &c, 1);  // wait until the parent is done
      ::_exit(0);
    }
    ::close(pipefd[0]);
    release_ = pipefd[1];
    // Wait until the child is in its namespace.
    std::string mine = fs::read_symlink("/proc/self/ns/user");
    for (int i = 0; i < 10000; i++) {
      std::error_code ec;
      auto ns = fs::read_symlink("/proc/" + std::to_string(pid_) + "/ns/user", ec);
      if (!ec && ns != mine) break;
      ::usleep(1000);
    }
    std::string base = "/proc/" + std::to_string(pid_);
    write_file(base + "/uid_map", "0 100000 65536\n");
    write_file(base + "/setgroups", "deny");
    write_file(base + "/gid_map", "0 100000 65536\n");
    fd_ = ::open((base + "/ns/user").c_str(), O_RDONLY | O_CLOEXEC);
  }
  ~UserNamespace() {
    if (fd_ >= 0) ::close(fd_);
    if (release_ >= 0) ::close(release_);
    if (pid_ > 0) ::waitpid(pid_, nullptr, 0);
  }
  int fd() const { return fd_; }
  std::string path() const { return "/proc/" + std::to_string(pid_) + "/ns/user"; }

 private:
  pid_t pid_ = -1;
  int release_ = -1;
  int fd_ = -1;
};

}  // namespace cfs::mount
