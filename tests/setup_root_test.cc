// SPDX-License-Identifier: Apache-2.0
// composefs-setup-root: its configuration parser, and the whole sequence run
// by the tool in a private mount namespace (unshare -m) against a fake
// sysroot: a repository made by cfsctl, state directories and a command line
// string.  This host has no fs-verity, so the kargs carry '?'; the image is
// then still checked against the karg by hashing it in userspace.
#include "composefs-cpp/setuproot/setup_root.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "composefs-cpp/setuproot/config.h"
#include "test_util.h"

using namespace cfs;
using namespace cfs::setuproot;
using cfs::test::run;
using cfs::test::shell_quote;
using cfs::test::TempDir;
using cfs::test::tool;
using cfs::test::write_file;

namespace {

// ---- the configuration file ---------------------------------------------

TEST(SetupRootConfig, EmptyGivesComposefsRsDefaults) {
  auto c = parse_config("", "c.toml");
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_FALSE(c->root_transient);
  EXPECT_EQ(c->etc, MountMode::Overlay);
  EXPECT_EQ(c->var, MountMode::Bind);
}

TEST(SetupRootConfig, AllKeysAndBootcAliases) {
  auto c = parse_config(
      "[root]\ntransient = true\n[etc]\nmount = \"volatile\"\n[var]\nmount = \"root\"\n", "c.toml");
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_TRUE(c->root_transient);
  EXPECT_EQ(c->etc, MountMode::Transient);
  EXPECT_EQ(c->var, MountMode::None);
  auto d = parse_config("[etc]\nmount = \"bind\"\n[var]\nmount = \"overlay\"\n", "c.toml");
  ASSERT_TRUE(d) << d.error().message();
  EXPECT_EQ(d->etc, MountMode::Bind);
  EXPECT_EQ(d->var, MountMode::Overlay);
}

TEST(SetupRootConfig, TransientKeyOnlyWhenMountUnset) {
  auto c =
      parse_config("[etc]\ntransient = true\n[var]\ntransient = true\nmount = \"bind\"\n", "c");
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->etc, MountMode::Transient);
  EXPECT_EQ(c->var, MountMode::Bind);
}

TEST(SetupRootConfig, BadConfigsNameFileAndLine) {
  struct Case {
    const char* text;
    const char* where;
    const char* what;
  } cases[] = {
      {"[etc]\nmount = \"tmpfs\"\n", "x.toml:2", "unknown mount mode"},
      {"[etc]\nmount = \"overlay\"\nmoutn = \"bind\"\n", "x.toml:3", "unknown key \"moutn\""},
      {"\n[usr]\nmount = \"bind\"\n", "x.toml:2", "unknown table"},
      {"[root]\ntransient = \"yes\"\n", "x.toml:2", "true or false"},
      {"[root]\nvolatile = true\n", "x.toml:2", "unknown key"},
      {"[etc]\nmount = 3\n", "x.toml:2", "must be a string"},
      {"[etc\nmount = \"bind\"\n", "x.toml:1", ""},
  };
  for (const Case& c : cases) {
    auto r = parse_config(c.text, "x.toml");
    ASSERT_FALSE(r) << c.text;
    EXPECT_NE(r.error().message().find(c.where), std::string::npos) << r.error().message();
    EXPECT_NE(r.error().message().find(c.what), std::string::npos) << r.error().message();
  }
}

TEST(SetupRootConfig, VarExplicitOnlyWhenVarSetsSomething) {
  struct Case {
    const char* text;
    bool explicit_;
  } cases[] = {
      {"", false},
      {"[etc]\nmount = \"bind\"\n", false},
      {"[var]\n", false},
      {"[var]\nmount = \"bind\"\n", true},
      {"[var]\ntransient = false\n", true},
  };
  for (const Case& c : cases) {
    auto r = parse_config(c.text, "c.toml");
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(r->var_explicit, c.explicit_) << c.text;
    EXPECT_EQ(r->var, MountMode::Bind) << c.text;
  }
}

TEST(SetupRootConfig, MissingFileMeansDefaults) {
  TempDir t;
  auto c = load_config(t / "none.toml");
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(*c, Config{});
}

// ---- pieces of the sequence --------------------------------------------

TEST(SetupRootHint, Linux70RegressionNamedOnlyForEioOrDigestMessageOn70) {
  std::string h = linux_7_0_hint(EIO, "mount(overlay): Input/output error", "7.0.3");
  EXPECT_NE(h.find("bootc #2174"), std::string::npos) << h;
  EXPECT_NE(h.find("Linux 7.0.3"), std::string::npos) << h;
  EXPECT_NE(linux_7_0_hint(0, "lower file '/usr/x' has no fs-verity digest", "7.0.1-200.fc44"), "");
  EXPECT_NE(linux_7_0_hint(EIO, "", "7.0"), "");
  EXPECT_NE(linux_7_0_hint(EIO, "", "7.0-rc2"), "");
  EXPECT_EQ(linux_7_0_hint(EIO, "Input/output error", "6.12.0"), "");
  EXPECT_EQ(linux_7_0_hint(EIO, "", "17.0.1"), "");
  EXPECT_EQ(linux_7_0_hint(EIO, "", "7.1.0"), "");
  EXPECT_EQ(linux_7_0_hint(EINVAL, "Invalid argument", "7.0.3"), "");
  EXPECT_EQ(linux_7_0_hint(ENOENT, "No such file or directory", "7.0"), "");
}

TEST(SetupRootVolatile, StateOrOverlayLastOneWins) {
  EXPECT_TRUE(volatile_var("quiet systemd.volatile=state rw"));
  EXPECT_TRUE(volatile_var("systemd.volatile=overlay"));
  EXPECT_FALSE(volatile_var("systemd.volatile=yes"));
  EXPECT_FALSE(volatile_var("systemd.volatile"));
  EXPECT_FALSE(volatile_var("quiet rw"));
  EXPECT_FALSE(volatile_var("systemd.volatile=state systemd.volatile=no"));
  EXPECT_TRUE(volatile_var("systemd.volatile=no systemd.volatile=state"));
  EXPECT_FALSE(volatile_var("xsystemd.volatile=state"));
}

TEST(SetupRootSequence, NamesRoundTrip) {
  for (MountSequence m : {MountSequence::Auto, MountSequence::Pre615, MountSequence::Floating}) {
    auto p = parse_mount_sequence(to_string(m));
    ASSERT_TRUE(p) << to_string(m);
    EXPECT_EQ(*p, m);
  }
  EXPECT_EQ(to_string(MountSequence::Floating), "6.15");
  EXPECT_FALSE(parse_mount_sequence("6.14"));
}

// The probe against the kernel's version (independent of it): 6.15 added
// mounts inside detached trees.
TEST(SetupRootSequence, ProbeMatchesKernelVersion) {
  if (!cfs::test::is_root()) GTEST_SKIP() << "needs root (fsopen)";
  struct utsname u {};
  ASSERT_EQ(::uname(&u), 0);
  int major = 0, minor = 0;
  ASSERT_EQ(std::sscanf(u.release, "%d.%d", &major, &minor), 2) << u.release;
  bool expected = major > 6 || (major == 6 && minor >= 15);
  EXPECT_EQ(kernel_mounts_in_detached_trees(), expected) << u.release;
}

// ---- the sequence, in a private mount namespace --------------------------

// A fake physical root: SYSROOT/composefs (insecure sha512 repository) with
// one image, SYSROOT/state/deploy/<hex>/{etc,var}.  `mounted_`: the sysroot
// is a mount of its own (bound onto itself in the namespace), as in an
// initramfs; otherwise a plain directory.
class SetupRootBase : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cfs::test::is_root()) GTEST_SKIP() << "needs root (mount namespaces, mounts)";
    if (!cfs::test::have_command("unshare")) GTEST_SKIP() << "needs unshare(1)";
    sysroot_ = t_ / "sysroot";
    std::string tree = t_ / "tree";
    for (const char* d : {"sysroot", "tree/etc", "tree/var", "tree/sysroot", "tree/usr"})
      std::filesystem::create_directories(t_ / d);
    write_file(tree + "/usr/greeting", "hello from the image\n");
    // Big enough to be an external object (read through the data-only layer).
    big_ = std::string(20000, 'b') + "end\n";
    write_file(tree + "/usr/big", big_);
    write_file(tree + "/etc/app.conf", "from-image\n");
    std::string repo = sysroot_ + "/composefs";
    auto init = run(tool("cfsctl") + " --repo " + shell_quote(repo) + " init --insecure");
    ASSERT_EQ(init.status, 0) << init.err;
    auto img =
        run(tool("cfsctl") + " --repo " + shell_quote(repo) + " create-image " + shell_quote(tree));
    ASSERT_EQ(img.status, 0) << img.err;
    hex_ = cfs::test::trim(img.out);
    if (hex_.rfind("sha512:", 0) == 0) hex_ = hex_.substr(7);
    ASSERT_EQ(hex_.size(), 128u) << img.out;
    state_ = sysroot_ + "/state/deploy/" + hex_;
    std::filesystem::create_directories(state_ + "/etc");
    std::filesystem::create_directories(state_ + "/var");
    write_file(state_ + "/var/state-marker", "var-of-the-deployment\n");
    write_file(state_ + "/etc/local.conf", "state-etc\n");  // seen when bound
    std::filesystem::create_directories(state_ + "/etc/upper");
    write_file(state_ + "/etc/upper/local.conf", "state-etc-upper\n");  // seen as overlay
  }

  // Runs the tool in a new mount namespace; prints the namespace's mounts
  // under the temp dir before and after, then runs `after` there.
  struct Outcome {
    int rc = -1;
    std::string before, after, checks, err;
  };
  Outcome setup(const std::string& cmdline, const std::string& config_text = "",
                const std::string& after = "", const std::string& extra_args = "") {
    std::string config = t_ / "conf.toml";
    if (!config_text.empty()) write_file(config, config_text);
    std::string filt = "grep -F " + shell_quote(t_.path()) + " /proc/self/mountinfo";
    std::string bind =
        mounted_ ? "mount --bind " + shell_quote(sysroot_) + " " + shell_quote(sysroot_) + " && "
                 : "";
    std::string script =
        "mount --make-rprivate / && " + bind + filt + "; echo @@; " + tool("composefs-setup-root") +
        " --mount-sequence " + sequence_ + " --sysroot " + shell_quote(sysroot_) + " --config " +
        shell_quote(config_text.empty() ? t_ / "missing.toml" : config) + " --cmdline " +
        shell_quote(cmdline) + " " + extra_args + "; echo @@$?; " + filt + "; echo @@; " + after;
    auto r = run("unshare -m sh -c " + shell_quote(script));
    Outcome o;
    o.err = r.err;
    auto a = r.out.find("@@\n");
    auto b = r.out.find("@@", a + 3);
    auto c = r.out.find("@@\n", b + 2);
    if (a == std::string::npos || b == std::string::npos || c == std::string::npos) {
      ADD_FAILURE() << "unexpected output: " << r.out << r.err;
      return o;
    }
    o.before = r.out.substr(0, a);
    o.rc = std::stoi(r.out.substr(b + 2));
    o.after = r.out.substr(r.out.find('\n', b) + 1, c - r.out.find('\n', b) - 1);
    o.checks = r.out.substr(c + 3);
    return o;
  }

  // The mountinfo line whose mount point is `mp`.
  static std::string line_at(const std::string& mounts, const std::string& mp) {
    std::istringstream in(mounts);
    std::string line;
    std::string found;
    while (std::getline(in, line)) {
      std::istringstream f(line);
      std::string id, parent, dev, root, point;
      f >> id >> parent >> dev >> root >> point;
      if (point == mp) found = line;  // the last one is on top
    }
    return found;
  }
  static std::string field(const std::string& line, int n) {
    std::istringstream f(line);
    std::string w;
    for (int i = 0; i <= n; i++) f >> w;
    return w;
  }

  void expect_failure_untouched(const Outcome& o, std::initializer_list<std::string> words) {
    EXPECT_NE(o.rc, 0);
    EXPECT_EQ(o.after, o.before) << "mounts left behind";
    for (const std::string& w : words) EXPECT_NE(o.err.find(w), std::string::npos) << o.err;
  }

  TempDir t_;
  std::string sysroot_, state_, hex_, big_;
  std::string sequence_ = "auto";
  bool mounted_ = false;
};

// Every sequence test runs in both mount sequences, on a sysroot that is a
// directory and on one that is a mount.
struct SeqParam {
  const char* sequence;
  bool mounted;
};

class SetupRootSeq : public SetupRootBase, public ::testing::WithParamInterface<SeqParam> {
 protected:
  void SetUp() override {
    sequence_ = GetParam().sequence;
    mounted_ = GetParam().mounted;
    SetupRootBase::SetUp();
  }
};

INSTANTIATE_TEST_SUITE_P(Sequences, SetupRootSeq,
                         ::testing::Values(SeqParam{"pre-6.15", false}, SeqParam{"6.15", false},
                                           SeqParam{"pre-6.15", true}, SeqParam{"6.15", true}),
                         [](const ::testing::TestParamInfo<SeqParam>& i) {
                           return std::string(i.param.sequence[0] == 'p' ? "Pre615" : "V615") +
                                  (i.param.mounted ? "SysrootMount" : "SysrootDir");
                         });

TEST_P(SetupRootSeq, MountsImageWithSysrootEtcVar) {
  auto o = setup("quiet composefs=?" + hex_ + " rw", "",
                 "cat " + shell_quote(sysroot_) + "/usr/greeting " + shell_quote(sysroot_) +
                     "/etc/app.conf " + shell_quote(sysroot_) + "/etc/local.conf " +
                     shell_quote(sysroot_) + "/var/state-marker; md5sum < " +
                     shell_quote(sysroot_) + "/usr/big; ls " + shell_quote(sysroot_) +
                     "/sysroot; touch " + shell_quote(sysroot_) + "/etc/new && echo etc-rw");
  ASSERT_EQ(o.rc, 0) << o.err;
  EXPECT_NE(o.err.find("(mount sequence " + sequence_ + ")"), std::string::npos) << o.err;
  std::string phys_before = line_at(o.before, sysroot_);
  EXPECT_EQ(phys_before.empty(), !mounted_) << o.before;
  std::string root = line_at(o.after, sysroot_);
  EXPECT_NE(root.find(" - overlay composefs:" + hex_ + " "), std::string::npos) << root;
  for (const char* opt : {"metacopy=on", "redirect_dir=on", "datadir+=", "lowerdir"})
    EXPECT_NE(root.find(opt), std::string::npos) << opt << ": " << root;
  EXPECT_NE(root.find(" ro,"), std::string::npos) << root;
  // The physical root (its own directory, as the clone shows it) inside.
  std::string phys = line_at(o.after, sysroot_ + "/sysroot");
  EXPECT_NE(phys.find(" " + sysroot_ + " " + sysroot_ + "/sysroot "), std::string::npos) << phys;
  EXPECT_EQ(field(phys, 1), field(root, 0)) << "the physical root is not inside the new root";
  // pre-6.15 leaves the physical root mount under the image; 6.15 detaches
  // it (the new root takes its place).
  if (mounted_) {
    bool still = o.after.find(phys_before) != std::string::npos;
    EXPECT_EQ(still, sequence_ == "pre-6.15") << o.after;
  }
  // /etc an overlay (the default), /var a bind of the state's var.
  EXPECT_NE(line_at(o.after, sysroot_ + "/etc").find(" - overlay overlay "), std::string::npos);
  std::string var = line_at(o.after, sysroot_ + "/var");
  EXPECT_NE(var.find("/state/deploy/" + hex_ + "/var " + sysroot_ + "/var "), std::string::npos)
      << var;
  std::string md5 = run("md5sum < " + shell_quote(t_ / "tree/usr/big")).out;
  EXPECT_EQ(o.checks, "hello from the image\nfrom-image\nstate-etc-upper\nvar-of-the-deployment\n" +
                          md5 + "composefs\nstate\netc-rw\n");
  // The overlay's upper/work were made with their modes.
  EXPECT_EQ(std::filesystem::status(state_ + "/etc/work").permissions(),
            std::filesystem::perms(0700));
  EXPECT_EQ(std::filesystem::status(state_ + "/etc/upper").permissions(),
            std::filesystem::perms(0755));
  EXPECT_TRUE(std::filesystem::exists(state_ + "/etc/upper/new"));
  // Nothing leaks out of the namespace.
  EXPECT_EQ(run("grep -F " + shell_quote(t_.path()) + " /proc/self/mountinfo").out, "");
}

TEST_P(SetupRootSeq, SkipsMissingImagesInOrder) {
  std::string missing(128, 'a');
  auto o = setup("composefs.digest=?v1-sha512-12:" + missing + " composefs=?" + hex_);
  ASSERT_EQ(o.rc, 0) << o.err;
  EXPECT_NE(o.err.find("image " + missing + " not found, trying next karg"), std::string::npos)
      << o.err;
  EXPECT_NE(line_at(o.after, sysroot_).find("composefs:" + hex_), std::string::npos);
}

TEST_P(SetupRootSeq, TransientRootAndModesFromConfig) {
  auto o =
      setup("composefs=?" + hex_,
            "[root]\ntransient = true\n[etc]\nmount = \"bind\"\n[var]\nmount = \"volatile\"\n",
            "touch " + shell_quote(sysroot_) + "/usr/x && echo root-writable; cat " +
                shell_quote(sysroot_) + "/etc/local.conf; ls " + shell_quote(sysroot_) + "/var");
  ASSERT_EQ(o.rc, 0) << o.err;
  EXPECT_NE(line_at(o.after, sysroot_).find(" - overlay transient:composefs=" + hex_ + " "),
            std::string::npos)
      << o.after;
  EXPECT_NE(line_at(o.after, sysroot_ + "/etc").find("/state/deploy/" + hex_ + "/etc"),
            std::string::npos);
  EXPECT_NE(line_at(o.after, sysroot_ + "/var").find(" - overlay transient "), std::string::npos);
  EXPECT_NE(line_at(o.after, sysroot_ + "/sysroot"), "");
  // A transient /var starts empty: the image's /var, not the state's.
  EXPECT_EQ(o.checks, "root-writable\nstate-etc\n");
  EXPECT_FALSE(std::filesystem::exists(t_ / "tree/usr/x"));
}

TEST_P(SetupRootSeq, NoneLeavesEtcAndVarOfTheImage) {
  auto o = setup("composefs=?" + hex_, "[etc]\nmount = \"none\"\n[var]\nmount = \"root\"\n");
  ASSERT_EQ(o.rc, 0) << o.err;
  EXPECT_EQ(line_at(o.after, sysroot_ + "/etc"), "");
  EXPECT_EQ(line_at(o.after, sysroot_ + "/var"), "");
}

// ---- each step failing in turn: a message naming it, nothing mounted ----

TEST_P(SetupRootSeq, FailsWithoutKarg) {
  expect_failure_untouched(setup("quiet rw"), {"kernel command line", "no composefs karg"});
}

TEST_P(SetupRootSeq, FailsOnMalformedKarg) {
  expect_failure_untouched(setup("composefs=?abc"), {"kernel command line"});
}

TEST_P(SetupRootSeq, FailsOnUnknownDigest) {
  std::string missing(128, 'c');
  expect_failure_untouched(setup("composefs=?" + missing), {"no composefs image found", missing});
}

TEST_P(SetupRootSeq, FailsOnMissingRepository) {
  std::filesystem::rename(sysroot_ + "/composefs", sysroot_ + "/elsewhere");
  expect_failure_untouched(setup("composefs=?" + hex_), {"repository", sysroot_ + "/composefs"});
}

TEST_P(SetupRootSeq, VerityRequiredWithoutQuestionMark) {
  expect_failure_untouched(setup("composefs=" + hex_), {"repository", hex_});
}

TEST_P(SetupRootSeq, FailsOnTamperedImage) {
  std::string target = std::filesystem::canonical(sysroot_ + "/composefs/images/" + hex_);
  auto r = run("printf x >> " + shell_quote(target));
  ASSERT_EQ(r.status, 0);
  expect_failure_untouched(setup("composefs=?" + hex_),
                           {"mounting image " + hex_, "expected sha512:" + hex_});
}

TEST_P(SetupRootSeq, FailsOnBadConfig) {
  expect_failure_untouched(setup("composefs=?" + hex_, "[etc]\nmount = \"bindd\"\n"),
                           {"config", "conf.toml:2", "bindd"});
}

TEST_P(SetupRootSeq, FailsOnMissingStateDir) {
  std::filesystem::remove_all(sysroot_ + "/state");
  expect_failure_untouched(setup("composefs=?" + hex_), {"state directory", hex_});
}

// The image and the physical root are already mounted when /etc fails:
// they must be undone.
TEST_P(SetupRootSeq, FailsOnMissingStateEtcAfterMounting) {
  std::filesystem::remove_all(state_ + "/etc");
  expect_failure_untouched(setup("composefs=?" + hex_, "[etc]\nmount = \"bind\"\n"),
                           {"/etc", state_ + "/etc"});
}

TEST_P(SetupRootSeq, FailsOnMissingStateVarAfterEtc) {
  std::filesystem::remove_all(state_ + "/var");
  expect_failure_untouched(setup("composefs=?" + hex_, "[root]\ntransient = true\n"),
                           {"/var", state_ + "/var"});
}

// ---- both sequences build the same tree ----------------------------------

class SetupRootBoth : public SetupRootBase {
 protected:
  // The topmost mount at each mount point, without what differs between any
  // two mounts (ids, device numbers) and without how overlay layers were
  // named: pre-6.15 makes /etc and /var overlays with mount(2), which shows
  // lowerdir=/proc/self/fd/N (and uuid=on), where 6.15 gives them by fd.
  // The parent is kept as the mount point of the nearest ancestor mounted
  // elsewhere: pre-6.15 stacks mounts on what they replace (the image on the
  // physical root, a transient overlay on its tmpfs), 6.15 does not.
  static std::map<std::string, std::string> tree(const std::string& mounts) {
    std::map<std::string, std::string> id_to_mp, id_to_parent, top;
    std::istringstream in(mounts);
    std::string line;
    std::vector<std::string> lines;
    while (std::getline(in, line)) {
      id_to_mp[field(line, 0)] = field(line, 4);
      id_to_parent[field(line, 0)] = field(line, 1);
      lines.push_back(line);
    }
    for (const std::string& l : lines) {
      std::istringstream f(l);
      std::string id, parent, dev, root, mp, opts, w;
      f >> id >> parent >> dev >> root >> mp >> opts;
      while (f >> w && w != "-") {
      }
      std::string fstype, source, super;
      f >> fstype >> source >> super;
      std::string kept;
      std::istringstream so(super);
      for (std::string o; std::getline(so, o, ',');) {
        if (o.starts_with("lowerdir") || o.starts_with("upperdir") || o.starts_with("workdir") ||
            o.starts_with("uuid="))
          continue;
        kept += o + ",";
      }
      while (id_to_mp.count(parent) && id_to_mp[parent] == mp) parent = id_to_parent[parent];
      std::string parent_mp = id_to_mp.count(parent) ? id_to_mp[parent] : "(outside)";
      top[mp] = fmt::format("root={} opts={} parent={} type={} source={} super={}", root, opts,
                            parent_mp, fstype, source, kept);
    }
    return top;
  }
};

TEST_F(SetupRootBoth, SameMountsAndFilesInBothSequences) {
  mounted_ = true;
  const std::string q = shell_quote(sysroot_);
  const std::string checks = "cat " + q + "/usr/greeting " + q + "/etc/app.conf; cat " + q +
                             "/etc/local.conf 2>/dev/null; ls " + q + "/var " + q +
                             "/sysroot; touch " + q + "/etc/new && echo etc-rw";
  const char* configs[] = {
      "",
      "[root]\ntransient = true\n[etc]\nmount = \"bind\"\n[var]\nmount = \"transient\"\n",
      "[etc]\nmount = \"transient\"\n[var]\nmount = \"overlay\"\n",
  };
  for (const char* config : configs) {
    SCOPED_TRACE(config);
    std::filesystem::remove_all(state_ + "/etc/upper/new");
    std::filesystem::remove(state_ + "/etc/new");
    sequence_ = "pre-6.15";
    auto a = setup("composefs=?" + hex_, config, checks);
    ASSERT_EQ(a.rc, 0) << a.err;
    std::filesystem::remove_all(state_ + "/etc/upper/new");
    std::filesystem::remove(state_ + "/etc/new");
    sequence_ = "6.15";
    auto b = setup("composefs=?" + hex_, config, checks);
    ASSERT_EQ(b.rc, 0) << b.err;
    auto ta = tree(a.after), tb = tree(b.after);
    EXPECT_EQ(ta, tb) << "pre-6.15:\n" << a.after << "6.15:\n" << b.after;
    EXPECT_EQ(a.checks, b.checks);
    // What is compared is there: the root, the physical root, /etc.
    EXPECT_NE(
        tb[sysroot_].find("composefs" +
                          std::string(config[0] == '[' && config[1] == 'r' ? "=" : ":") + hex_),
        std::string::npos)
        << tb[sysroot_];
    EXPECT_NE(tb[sysroot_ + "/sysroot"].find("parent=" + sysroot_ + " "), std::string::npos)
        << tb[sysroot_ + "/sysroot"];
    EXPECT_NE(b.checks.find("hello from the image\n"), std::string::npos) << b.checks;
  }
}

TEST_F(SetupRootBoth, AutoTakesSixFifteenWhereTheKernelCan) {
  mounted_ = true;
  auto o = setup("composefs=?" + hex_);
  ASSERT_EQ(o.rc, 0) << o.err;
  std::string expected = kernel_mounts_in_detached_trees() ? "6.15" : "pre-6.15";
  EXPECT_NE(o.err.find("(mount sequence " + expected + ")"), std::string::npos) << o.err;
}

TEST_F(SetupRootBoth, BadMountSequenceIsRefusedBeforeAnything) {
  sequence_ = "6.14";
  expect_failure_untouched(setup("composefs=?" + hex_), {"--mount-sequence", "6.14"});
}

// No fault that gives EIO can be made here without fs-verity: the hint's
// condition is tested above; here, that --kernel-release reaches it and a
// failure of another kind on 7.0 does not blame the kernel.
TEST_F(SetupRootBoth, Linux70HintNotForOtherFailures) {
  std::string target = std::filesystem::canonical(sysroot_ + "/composefs/images/" + hex_);
  ASSERT_EQ(run("printf x >> " + shell_quote(target)).status, 0);
  auto o = setup("composefs=?" + hex_, "", "", "--kernel-release 7.0.3");
  expect_failure_untouched(o, {"mounting image " + hex_});
  EXPECT_EQ(o.err.find("bootc #2174"), std::string::npos) << o.err;
}

// ---- the GPT workaround ---------------------------------------------------

class SetupRootGpt : public SetupRootBase {
 protected:
  void SetUp() override {
    SetupRootBase::SetUp();
    if (IsSkipped()) return;
    dev_ = t_ / "dev";
    run_ = t_ / "run";
    std::filesystem::create_directories(dev_);
    std::filesystem::create_directories(run_ + "/systemd");
    link_ = run_ + "/systemd/volatile-root";
  }
  void make_node(unsigned maj, unsigned min) {
    ASSERT_EQ(::mknod((dev_ + "/gpt-auto-root").c_str(), S_IFBLK | 0600, makedev(maj, min)), 0)
        << std::strerror(errno);
  }
  std::string args() const {
    return "--dev-dir " + shell_quote(dev_) + " --run-dir " + shell_quote(run_);
  }
  std::string link_target() const {
    std::error_code ec;
    auto t = std::filesystem::read_symlink(link_, ec);
    return ec ? "(none)" : t.string();
  }
  std::string dev_, run_, link_;
};

TEST_F(SetupRootGpt, LinksVolatileRootToTheGptAutoRootDevice) {
  make_node(259, 3);
  auto o = setup("composefs=?" + hex_, "", "", args());
  ASSERT_EQ(o.rc, 0) << o.err;
  EXPECT_EQ(link_target(), "/dev/block/259:3");
  EXPECT_NE(o.err.find("volatile-root -> /dev/block/259:3"), std::string::npos) << o.err;
}

TEST_F(SetupRootGpt, ExistingLinkIsKept) {
  make_node(8, 1);
  ASSERT_EQ(::symlink("/dev/block/253:0", link_.c_str()), 0);
  auto o = setup("composefs=?" + hex_, "", "", args());
  ASSERT_EQ(o.rc, 0) << o.err;
  EXPECT_EQ(link_target(), "/dev/block/253:0");
}

TEST_F(SetupRootGpt, ErrorsAreIgnored) {
  make_node(8, 1);
  std::filesystem::remove_all(run_ + "/systemd");  // symlink() fails: ENOENT
  auto o = setup("composefs=?" + hex_, "", "", args());
  ASSERT_EQ(o.rc, 0) << o.err;
  EXPECT_FALSE(std::filesystem::exists(run_ + "/systemd"));
}

TEST_F(SetupRootGpt, NothingWithoutGptAutoRoot) {
  auto o = setup("composefs=?" + hex_, "", "", args());
  ASSERT_EQ(o.rc, 0) << o.err;
  EXPECT_EQ(link_target(), "(none)");
}

// composefs-rs does it first, whatever happens next.
TEST_F(SetupRootGpt, DoneEvenWhenSetupFails) {
  make_node(7, 2);
  auto o = setup("quiet", "", "", args());
  expect_failure_untouched(o, {"no composefs karg"});
  EXPECT_EQ(link_target(), "/dev/block/7:2");
}

// ---- systemd.volatile= (bootc) ---------------------------------------------

TEST_P(SetupRootSeq, VolatileStateOrOverlayLeavesVarToSystemd) {
  for (const char* v : {"state", "overlay"}) {
    auto o = setup("composefs=?" + hex_ + " systemd.volatile=" + std::string(v));
    ASSERT_EQ(o.rc, 0) << o.err;
    EXPECT_EQ(line_at(o.after, sysroot_ + "/var"), "") << v << "\n" << o.after;
    EXPECT_NE(line_at(o.after, sysroot_ + "/etc").find(" - overlay overlay "), std::string::npos);
    EXPECT_NE(o.err.find("systemd.volatile"), std::string::npos) << o.err;
  }
}

TEST_P(SetupRootSeq, VolatileOtherValuesOrExplicitVarStillBindVar) {
  struct Case {
    std::string karg, config;
  } cases[] = {
      {"systemd.volatile=yes", ""},
      {"systemd.volatile=state systemd.volatile=no", ""},
      {"systemd.volatile=state", "[var]\nmount = \"bind\"\n"},
  };
  for (const Case& c : cases) {
    auto o = setup("composefs=?" + hex_ + " " + c.karg, c.config);
    ASSERT_EQ(o.rc, 0) << o.err;
    std::string var = line_at(o.after, sysroot_ + "/var");
    EXPECT_NE(var.find("/state/deploy/" + hex_ + "/var " + sysroot_ + "/var "), std::string::npos)
        << c.karg << " " << c.config << "\n"
        << o.after;
  }
}

// ---- --root-fs --------------------------------------------------------------

TEST_P(SetupRootSeq, RootFsStandsInForTheImageWithoutTheRepository) {
  std::string rootfs = t_ / "rootfs";
  for (const char* d : {"etc", "var", "sysroot", "usr"})
    std::filesystem::create_directories(rootfs + "/" + d);
  write_file(rootfs + "/usr/marker", "from-root-fs\n");
  write_file(rootfs + "/etc/app.conf", "root-fs-etc\n");
  std::filesystem::remove_all(sysroot_ + "/composefs");
  const std::string q = shell_quote(sysroot_);
  auto o = setup("composefs=?" + hex_, "",
                 "cat " + q + "/usr/marker " + q + "/etc/app.conf " + q + "/etc/local.conf " + q +
                     "/var/state-marker; ls " + q + "/sysroot",
                 "--root-fs " + shell_quote(rootfs));
  ASSERT_EQ(o.rc, 0) << o.err;
  std::string root = line_at(o.after, sysroot_);
  EXPECT_EQ(field(root, 3), rootfs) << root;  // a clone of that directory
  EXPECT_EQ(root.find("composefs:"), std::string::npos) << root;
  EXPECT_EQ(field(line_at(o.after, sysroot_ + "/sysroot"), 1), field(root, 0)) << o.after;
  EXPECT_NE(line_at(o.after, sysroot_ + "/etc").find(" - overlay overlay "), std::string::npos);
  EXPECT_EQ(o.checks, "from-root-fs\nroot-fs-etc\nstate-etc-upper\nvar-of-the-deployment\nstate\n");
}

// composefs-rs ignores ENOENT there: an image without /sysroot does not
// show the physical root.
TEST_P(SetupRootSeq, RootWithoutSysrootDirectoryStillMounts) {
  std::string rootfs = t_ / "rootfs";
  for (const char* d : {"etc", "var", "usr"}) std::filesystem::create_directories(rootfs + "/" + d);
  auto o = setup("composefs=?" + hex_, "", "ls " + shell_quote(sysroot_),
                 "--root-fs " + shell_quote(rootfs));
  ASSERT_EQ(o.rc, 0) << o.err;
  EXPECT_EQ(field(line_at(o.after, sysroot_), 3), rootfs) << o.after;
  EXPECT_EQ(line_at(o.after, sysroot_ + "/sysroot"), "") << o.after;
  EXPECT_NE(line_at(o.after, sysroot_ + "/var"), "") << o.after;
  EXPECT_EQ(o.checks, "etc\nusr\nvar\n");
}

TEST_P(SetupRootSeq, RootFsMissingFailsUntouched) {
  expect_failure_untouched(
      setup("composefs=?" + hex_, "", "", "--root-fs " + shell_quote(t_ / "no-such-tree")),
      {"root", "--root-fs " + (t_ / "no-such-tree")});
}

TEST_P(SetupRootSeq, RootFsStillNeedsTheStateDirectory) {
  std::filesystem::remove_all(sysroot_ + "/state");
  expect_failure_untouched(
      setup("composefs=?" + hex_, "", "", "--root-fs " + shell_quote(t_ / "tree")),
      {"state directory", hex_});
}

}  // namespace
