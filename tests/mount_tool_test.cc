// SPDX-License-Identifier: Apache-2.0
// mount.composefs as users and mount(8) run it: options, exit statuses and
// messages, the verity/tryverity behaviour, and "mount -t composefs" through
// the real mount(8) in a private mount namespace.
#include <sys/stat.h>

#include "fs_tree.h"
#include "mount_fixture.h"

namespace cfs::mount {
namespace {

class MountToolTest : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped()) return;
    TreeBuilder t(p("src"));
    t.file("a", pattern(5000, 1));
    t.file("small", "inline");
    t.stamp_mtimes();
    mkcomposefs(p("src"), p("img.cfs"), p("ob,js"));
  }

  CommandResult tool_run(const std::string& args) {
    return run(shell_quote(tool("mount.composefs")) + " " + args);
  }
  std::string img() const { return shell_quote(p("img.cfs")); }
  std::string basedir() const { return "basedir=" + shell_quote(p("ob\\,js")); }
  bool mounted() const {
    return read_file("/proc/self/mountinfo").find(" " + mnt() + " ") != std::string::npos;
  }
};

TEST_F(MountToolTest, MountsLikeTheReference) {
  auto r = tool_run("-t composefs -o " + basedir() + " " + img() + " " + shell_quote(mnt()));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err, "");
  TreeComparer cmp;
  cmp.compare(p("src"), mnt());
  EXPECT_EQ(cmp.failures(), 0u);
  EXPECT_TRUE(unmount(mnt()));
}

// The argument order and flags mount(8) uses for helpers.
TEST_F(MountToolTest, AcceptsWhatMount8Passes) {
  auto r = tool_run(img() + " " + shell_quote(mnt()) + " -n -v -o rw,nosuid,nodev," + basedir() +
                    " -o ro");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("mounted"), std::string::npos) << r.err;  // -v
  std::string info = read_file("/proc/self/mountinfo");
  size_t at = info.find(" " + mnt() + " ");
  ASSERT_NE(at, std::string::npos);
  EXPECT_EQ(info.substr(at + mnt().size() + 2, 15), "ro,nosuid,nodev");
  EXPECT_TRUE(unmount(mnt()));
}

TEST_F(MountToolTest, UsageErrorsExitOne) {
  struct Case {
    std::string args;
    std::string message;
  };
  const std::string m = shell_quote(mnt());
  for (const Case& c : std::vector<Case>{
           {"", "IMAGE is required"},
           {img(), "MOUNTPOINT is required"},
           {"-t ext4 -o " + basedir() + " " + img() + " " + m, "unsupported filesystem type"},
           {"-o " + basedir() + ",bogus " + img() + " " + m, "unsupported option 'bogus'"},
           {img() + " " + m, "no object dirs specified"},
           {"-o " + basedir() + ",upperdir=/x " + img() + " " + m, "both workdir and upperdir"},
           {"-o " + basedir() + ",digest=123 " + img() + " " + m, "not a fs-verity digest"},
       }) {
    auto r = tool_run(c.args);
    EXPECT_EQ(r.status, 1) << c.args << "\n" << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << c.args << "\n" << r.err;
    EXPECT_FALSE(mounted());
  }
  // mount -s: unknown options are ignored.
  auto r = tool_run("-s -o " + basedir() + ",bogus " + img() + " " + m);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(unmount(mnt()));
}

TEST_F(MountToolTest, MountFailuresExitThirtyTwo) {
  const std::string m = shell_quote(mnt());
  auto r = tool_run("-o " + basedir() + " " + shell_quote(p("nope.cfs")) + " " + m);
  EXPECT_EQ(r.status, 32);
  EXPECT_NE(r.err.find("nope.cfs"), std::string::npos) << r.err;
  write_file(p("bad.cfs"), std::string(5000, 'x'));
  r = tool_run("-o " + basedir() + " " + shell_quote(p("bad.cfs")) + " " + m);
  EXPECT_EQ(r.status, 32);
  EXPECT_NE(r.err.find("not a composefs image"), std::string::npos) << r.err;
  EXPECT_FALSE(mounted());
}

TEST_F(MountToolTest, DigestOptions) {
  std::string id = fsverity_tool_digest(p("img.cfs"));
  std::string hex = id.substr(id.find(':') + 1);
  const std::string m = shell_quote(mnt());
  // The image has no fs-verity: refused, unless insecure.
  auto r = tool_run("-o " + basedir() + ",digest=" + hex + " " + img() + " " + m);
  EXPECT_EQ(r.status, 32);
  EXPECT_NE(r.err.find("has no fs-verity"), std::string::npos) << r.err;
  std::string wrong = hex;
  wrong[0] = wrong[0] == 'f' ? 'e' : 'f';
  r = tool_run("-o " + basedir() + ",digest=" + wrong + ",insecure,noverity " + img() + " " + m);
  EXPECT_EQ(r.status, 32);
  EXPECT_NE(r.err.find(hex), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(wrong), std::string::npos) << r.err;
  EXPECT_FALSE(mounted());
  r = tool_run("-o " + basedir() + ",digest=" + hex + ",insecure,tryverity " + img() + " " + m);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("insecure"), std::string::npos) << r.err;
  EXPECT_EQ(read_file(mnt() + "/a"), pattern(5000, 1));
  EXPECT_TRUE(unmount(mnt()));
}

// Where fs-verity is missing: verity fails at mount time, tryverity mounts
// without it and says so, instead of a mount whose every file gives EIO.
TEST_F(MountToolTest, VerityWithoutFsverity) {
  if (fsverity_works_in(p("ob,js"))) GTEST_SKIP() << "this kernel and filesystem have fs-verity";
  const std::string m = shell_quote(mnt());
  auto r = tool_run("-o " + basedir() + ",verity " + img() + " " + m);
  EXPECT_EQ(r.status, 32);
  EXPECT_NE(r.err.find("has no fs-verity"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("tryverity"), std::string::npos) << r.err;
  EXPECT_FALSE(mounted());
  r = tool_run("-o " + basedir() + ",tryverity " + img() + " " + m);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("note: tryverity: mounting without fs-verity"), std::string::npos) << r.err;
  EXPECT_EQ(read_file(mnt() + "/a"), pattern(5000, 1));
  EXPECT_TRUE(unmount(mnt()));
}

TEST_F(MountToolTest, UpperdirWithCommaAndIdmap) {
  fs::create_directories(p("up,per"));
  fs::create_directories(p("work"));
  UserNamespace ns;
  ASSERT_GE(ns.fd(), 0);
  auto r = tool_run("-o " + basedir() + ",upperdir=" + shell_quote(p("up\\,per")) +
                    ",workdir=" + shell_quote(p("work")) + ",idmap=" + ns.path() + " " + img() +
                    " " + shell_quote(mnt()));
  ASSERT_EQ(r.status, 0) << r.err;
  struct stat st;
  ASSERT_EQ(::stat((mnt() + "/a").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 100000u);
  write_file(mnt() + "/new", "n");
  EXPECT_TRUE(unmount(mnt()));
  EXPECT_EQ(read_file(p("up,per") + "/new"), "n");
}

TEST_F(MountToolTest, FakeMountChecksButDoesNotMount) {
  auto r = tool_run("-f -o " + basedir() + " " + img() + " " + shell_quote(mnt()));
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_FALSE(mounted());
}

// "mount -t composefs" with the real mount(8), which finds helpers only in
// /sbin: a private mount namespace gets a /usr/sbin holding ours.
TEST_F(MountToolTest, MountDashTComposefs) {
  if (!have_command("unshare") || !have_command("mount"))
    GTEST_SKIP() << "needs unshare(1) and mount(8)";
  fs::create_directories(p("sbin"));
  fs::create_symlink(tool("mount.composefs"), p("sbin/mount.composefs"));
  std::string script =
      "set -e; mount --bind " + shell_quote(p("sbin")) + " /sbin/; " +  // /sbin may be a link
      "mount -t composefs -o ro,nosuid," + basedir() + " " + img() + " " + shell_quote(mnt()) +
      "; cat " + shell_quote(mnt() + "/a") + " | wc -c; grep -F " + shell_quote(" " + mnt() + " ") +
      " /proc/self/mountinfo; umount " + shell_quote(mnt());
  auto r = run("unshare --mount --propagation private sh -c " + shell_quote(script));
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("5000\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("overlay composefs"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" ro,nosuid"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace cfs::mount
