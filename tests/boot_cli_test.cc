// SPDX-License-Identifier: Apache-2.0
// cfsctl --bootable end to end, against things that are not our code:
//  - one root tree reached two ways (the directory, as a Containerfile build
//    sees it, and the OCI image umoci makes of it, as bootc installs it)
//    gives one bootable digest, in sha256 and sha512 repositories, formats
//    1 and 2, whatever the thread count and the order the tree was written;
//  - the kernel's mount of the bootable image: /boot and /sysroot empty with
//    /usr's mtime, and every path labelled as libselinux's
//    selabel_lookup_raw labels it from the image's own file_contexts (a
//    policy whose specs libselinux and composefs-rs order alike);
//  - fsck.erofs accepts the boot images;
//  - compute-karg prints the karg forms of boot-spec 1.3 for those digests;
//  - xattr modes, the 0.9.0 mtime rule, the sub-second mtime warning
//    (bootc #2194), the boot image refs and find_matching_boot_image.
#include <selinux/label.h>
#include <selinux/selinux.h>
#include <sys/mount.h>
#include <sys/xattr.h>

#include <filesystem>
#include <map>

#include "composefs-cpp/oci/pull.h"
#include "composefs-cpp/oci/repo_store.h"
#include "composefs-cpp/repository/repository.h"
#include "tar_builder.h"
#include "test_util.h"

namespace cfs::test {
namespace {

namespace fs = std::filesystem;
std::string Q(const std::string& s) { return shell_quote(s); }

constexpr const char* kPolicy =
    "/.*\tsystem_u:object_r:default_t:s0\n"
    "/usr(/.*)?\tsystem_u:object_r:usr_t:s0\n"
    "/usr/bin(/.*)?\tsystem_u:object_r:bin_t:s0\n"
    "/usr/lib/modules/[^/]+/vmlinuz\t--\tsystem_u:object_r:vmlinuz_t:s0\n"
    "/etc(/.*)?\tsystem_u:object_r:etc_t:s0\n"
    "/boot(/.*)?\tsystem_u:object_r:boot_t:s0\n"
    "/tmp(/.*)?\t<<none>>\n"
    "/run\t-d\tsystem_u:object_r:var_run_t:s0\n"
    "/sysroot\tsystem_u:object_r:root_t:s0\n"
    "/\t-d\tsystem_u:object_r:root_t:s0\n";

std::string must(const std::string& cmd) {
  auto r = run(cmd);
  if (r.status != 0) ADD_FAILURE() << cmd << "\n" << r.out << r.err;
  return trim(r.out);
}

std::string cfsctl(const std::string& args) { return must(Q(tool("cfsctl")) + " " + args); }

class BootCli : public ::testing::Test {
 protected:
  static inline TempDir* tmp_ = nullptr;
  static inline std::string skip_;
  static inline std::string root_, layout_;

  // The tree, written in `reverse` order or not; every mtime whole seconds.
  static void write_tree(const std::string& root, bool reverse) {
    std::vector<std::string> steps = {
        "mkdir -p usr/bin usr/lib/modules/6.1 etc/selinux/targeted/contexts/files "
        "boot/EFI/Linux boot/loader/entries sysroot/ostree/deploy run/lock tmp",
        "head -c 300 /dev/zero | tr '\\0' s > usr/bin/sh && python3 -c "
        "'import os; os.setxattr(\"usr/bin/sh\", \"user.test\", b\"one\")'",
        "head -c 200 /dev/zero | tr '\\0' k > usr/lib/modules/6.1/vmlinuz && ln "
        "usr/lib/modules/6.1/vmlinuz boot/vmlinuz-6.1",
        "printf initrd > usr/lib/modules/6.1/initramfs.img && printf 'ID=test\\n' > "
        "usr/lib/os-release",
        "printf 'SELINUX=enforcing\\nSELINUXTYPE=targeted\\n' > etc/selinux/config && printf "
        "'hostname\\n' > etc/hostname",
        "printf 'title t\\nlinux /usr/lib/modules/6.1/vmlinuz\\ninitrd "
        "/usr/lib/modules/6.1/initramfs.img\\n' > boot/loader/entries/t.conf",
        "head -c 500 /dev/zero > boot/EFI/Linux/x.efi && printf deployed > "
        "sysroot/ostree/deploy/f && printf pid > run/lock/x && ln -s ../usr/bin/sh tmp/sh",
    };
    if (reverse) std::reverse(steps.begin() + 1, steps.end());
    for (auto& s : steps) must("cd " + Q(root) + " && " + s);
    write_file(root + "/etc/selinux/targeted/contexts/files/file_contexts", kPolicy);
    must("find " + Q(root) + " -exec touch -h -d @1700000000 {} +");
  }

  static void SetUpTestSuite() {
    tmp_ = new TempDir;
    if (!is_root()) {
      skip_ = "needs root (umoci keeps owners and xattrs only as root)";
      return;
    }
    for (auto* t : {"umoci", "python3", "fsck.erofs", "taskset"})
      if (!have_command(t)) {
        skip_ = std::string("needs ") + t;
        return;
      }
    std::string d = tmp_->path();
    must("cd " + Q(d) +
         " && umoci init --layout img && umoci new --image img:t && umoci unpack "
         "--image img:t bundle >/dev/null");
    root_ = d + "/bundle/rootfs";
    write_tree(root_, false);
    must("cd " + Q(d) + " && umoci repack --image img:t bundle");
    layout_ = d + "/img";
  }
  static void TearDownTestSuite() {
    delete tmp_;
    tmp_ = nullptr;
  }
  void SetUp() override {
    if (!skip_.empty()) GTEST_SKIP() << skip_;
  }

  // A repository (insecure: no fs-verity on the test filesystems).
  static std::string repo(const std::string& name, const std::string& init_args) {
    std::string r = tmp_->path() + "/" + name;
    if (!fs::exists(r)) cfsctl("--repo " + Q(r) + " init --insecure " + init_args);
    return r;
  }
  static std::string pull_boot(const std::string& r, const std::string& extra = "") {
    std::string out = cfsctl("--repo " + Q(r) + " oci pull " + Q("oci:" + layout_ + ":t") +
                             " t --bootable " + extra);
    auto at = out.find("Boot image: ");
    EXPECT_NE(at, std::string::npos) << out;
    return at == std::string::npos
               ? ""
               : out.substr(at + 12, out.find_first_of(" \n", at + 12) - at - 12);
  }
  static std::map<std::string, std::string> refs(const std::string& r) {
    auto repo = repository::Repository::open(r);
    EXPECT_TRUE(repo);
    oci::RepoStore store(*repo);
    auto img = oci::open_image(store, "t");
    EXPECT_TRUE(img) << (img ? "" : img.error().message());
    std::map<std::string, std::string> out;
    if (img)
      for (auto& [k, v] : img->image_refs) out[k] = v.hex();
    return out;
  }
};

TEST_F(BootCli, DirectoryAndOciImageGiveOneBootableDigest) {
  for (std::string hash : {"sha512", "sha256"}) {
    SCOPED_TRACE(hash);
    std::string r = repo("dual-" + hash, "--algorithm fsverity-" + hash +
                                             "-12 --erofs-version 1 --extra-erofs-version 2");
    std::string dir_v1 = cfsctl("--hash " + hash + " --no-repo compute-id --bootable " + Q(root_));
    std::string dir_v2 = cfsctl("--hash " + hash +
                                " --no-repo --erofs-version 2 compute-id "
                                "--bootable " +
                                Q(root_));
    EXPECT_EQ(dir_v1.size(), hash == "sha512" ? 128u : 64u);
    // Through the repository (the files stored, the policy read back).
    std::string created = cfsctl("--repo " + Q(r) + " create-image --bootable " + Q(root_));
    EXPECT_EQ(created, hash + ":" + dir_v1);
    EXPECT_EQ(pull_boot(r), dir_v1);
    auto rs = refs(r);
    EXPECT_EQ(rs["composefs.image.boot.v1"], dir_v1);
    EXPECT_EQ(rs["composefs.image.boot"], dir_v2);
    EXPECT_EQ(cfsctl("--repo " + Q(r) + " oci compute-id --bootable t"), dir_v1);
    EXPECT_EQ(cfsctl("--repo " + Q(r) + " --erofs-version 2 oci compute-id --bootable t"), dir_v2);
    // The plain images are others; pulling again without --bootable keeps
    // the boot refs.
    EXPECT_NE(rs["composefs.image.v1"], dir_v1);
    cfsctl("--repo " + Q(r) + " oci pull " + Q("oci:" + layout_ + ":t") + " t");
    EXPECT_EQ(refs(r), rs);
    // gc keeps what the config links (create-image's unnamed image goes
    // with it only if nothing else names it: here the boot refs do), and
    // fsck.erofs accepts both boot images.
    cfsctl("--repo " + Q(r) + " gc");
    for (auto& id : {dir_v1, dir_v2}) must("fsck.erofs " + Q(r + "/images/" + id));
    EXPECT_EQ(cfsctl("--repo " + Q(r) + " oci fsck t").find("errors found"), std::string::npos);
  }
}

TEST_F(BootCli, StableAcrossThreadsAndWriteOrder) {
  std::string id = cfsctl("--no-repo compute-id --bootable " + Q(root_));
  EXPECT_EQ(
      must("taskset -c 0 " + Q(tool("cfsctl")) + " --no-repo compute-id --bootable " + Q(root_)),
      id);
  std::string other = tmp_->path() + "/reversed";
  fs::create_directory(other);
  write_tree(other, true);
  EXPECT_EQ(cfsctl("--no-repo compute-id --bootable " + Q(other)), id);
  EXPECT_EQ(cfsctl("--no-repo compute-id --bootable " + Q(root_)), id);
}

TEST_F(BootCli, ComputeKarg) {
  std::string v1 = cfsctl("--no-repo compute-id --bootable " + Q(root_));
  std::string v2 = cfsctl("--no-repo --erofs-version 2 compute-id --bootable " + Q(root_));
  EXPECT_EQ(cfsctl("--no-repo compute-karg " + Q(root_)), "composefs.digest=v1-sha512-12:" + v1);
  EXPECT_EQ(cfsctl("--no-repo --erofs-version 2 compute-karg " + Q(root_)), "composefs=" + v2);
  EXPECT_EQ(cfsctl("--no-repo --insecure compute-karg " + Q(root_)),
            "composefs.digest=?v1-sha512-12:" + v1);
  std::string s256 = cfsctl("--no-repo --hash sha256 compute-id --bootable " + Q(root_));
  EXPECT_EQ(cfsctl("--no-repo --hash sha256 compute-karg " + Q(root_)),
            "composefs.digest=v1-sha256-12:" + s256);
  // That digest is the C-identical mkcomposefs's image of the bootable
  // tree's dump (labels, emptied /boot, the re-homed hardlink).
  write_file(tmp_->path() + "/boot.dump",
             cfsctl("--no-repo --hash sha256 create-dumpfile --bootable " + Q(root_)) + "\n");
  EXPECT_EQ(must(Q(tool("mkcomposefs")) +
                 " --from-file --min-version=1 --max-version=1 "
                 "--print-digest-only " +
                 Q(tmp_->path() + "/boot.dump")),
            s256);
}

TEST_F(BootCli, KernelMountHasEmptyBootAndLibselinuxLabels) {
  std::string r = repo("mount", "--algorithm fsverity-sha256-12");
  std::string id = pull_boot(r);
  std::string mnt = tmp_->path() + "/mnt";
  fs::create_directories(mnt);
  auto m = run(Q(tool("cfsctl")) + " --repo " + Q(r) + " oci mount --bootable t " + Q(mnt));
  if (m.status != 0) GTEST_SKIP() << "cannot mount: " << m.err;
  struct Unmount {
    std::string p;
    ~Unmount() { ::umount2(p.c_str(), MNT_DETACH); }
  } unmount{mnt};
  EXPECT_TRUE(fs::is_empty(mnt + "/boot"));
  EXPECT_TRUE(fs::is_empty(mnt + "/sysroot"));
  EXPECT_TRUE(fs::is_empty(mnt + "/run"));
  struct stat usr {
  }, boot{};
  ASSERT_EQ(::stat((mnt + "/usr").c_str(), &usr), 0);
  ASSERT_EQ(::stat((mnt + "/boot").c_str(), &boot), 0);
  EXPECT_EQ(boot.st_mtim.tv_sec, usr.st_mtim.tv_sec);
  EXPECT_EQ(boot.st_mtim.tv_nsec, usr.st_mtim.tv_nsec);
  // /usr/bin/sh kept its content, not its user.* xattr (allowlist-only).
  EXPECT_EQ(fs::file_size(mnt + "/usr/bin/sh"), 300u);
  EXPECT_LT(::lgetxattr((mnt + "/usr/bin/sh").c_str(), "user.test", nullptr, 0), 0);

  std::string fc = root_ + "/etc/selinux/targeted/contexts/files/file_contexts";
  selinux_opt opts[] = {{SELABEL_OPT_PATH, fc.c_str()}};
  selabel_handle* h = selabel_open(SELABEL_CTX_FILE, opts, 1);
  ASSERT_TRUE(h) << "selabel_open: " << std::strerror(errno);
  size_t checked = 0, labelled = 0;
  auto check = [&](const std::string& rel) {
    std::string p = mnt + rel;
    struct stat st {};
    ASSERT_EQ(::lstat(p.c_str(), &st), 0) << p;
    char* con = nullptr;
    std::optional<std::string> want;
    if (selabel_lookup_raw(h, &con, rel.c_str(), static_cast<int>(st.st_mode & S_IFMT)) == 0) {
      want = con;
      freecon(con);
    }
    char buf[256];
    ssize_t n = ::lgetxattr(p.c_str(), "security.selinux", buf, sizeof buf);
    std::optional<std::string> got;
    if (n >= 0) got = std::string(buf, static_cast<size_t>(n));
    EXPECT_EQ(got, want) << rel;
    checked++;
    labelled += got.has_value();
  };
  check("/");
  for (auto& e : fs::recursive_directory_iterator(mnt)) check(e.path().string().substr(mnt.size()));
  selabel_close(h);
  EXPECT_GT(checked, 20u);
  EXPECT_GT(labelled, checked / 2);
  must("fsck.erofs " + Q(r + "/images/" + id));
}

TEST_F(BootCli, XattrModesAndFindMatchingBootImage) {
  std::string keep_dump =
      cfsctl("--no-repo create-dumpfile --bootable --xattrs keep-user-xattrs " + Q(root_));
  std::string dump = cfsctl("--no-repo create-dumpfile --bootable " + Q(root_));
  EXPECT_NE(keep_dump.find("user.test=one"), std::string::npos);
  EXPECT_EQ(dump.find("user.test"), std::string::npos);
  std::string keep_v2 = cfsctl(
      "--no-repo --hash sha256 --erofs-version 2 compute-id --bootable "
      "--xattrs keep-user-xattrs " +
      Q(root_));

  std::string r = repo("find", "--algorithm fsverity-sha256-12");
  cfsctl("--repo " + Q(r) + " oci pull " + Q("oci:" + layout_ + ":t") + " t");
  EXPECT_NE(
      cfsctl("--repo " + Q(r) + " oci dump --xattrs keep-user-xattrs t").find("user.test=one"),
      std::string::npos);
  EXPECT_EQ(cfsctl("--repo " + Q(r) + " oci dump t").find("user.test"), std::string::npos);
  EXPECT_EQ(cfsctl("--repo " + Q(r) +
                   " --erofs-version 2 oci compute-id --bootable --xattrs "
                   "keep-user-xattrs t"),
            keep_v2);
  // A V1 repository finds the V2 keep-user-xattrs image a UKI might name.
  std::string out = cfsctl("--repo " + Q(r) + " oci pull " + Q("oci:" + layout_ + ":t") +
                           " t --bootable --expected-digest " + keep_v2);
  EXPECT_NE(
      out.find("Boot image: " + keep_v2 + " (xattr-mode=keep-user-xattrs, format-version=V2)"),
      std::string::npos)
      << out;
  EXPECT_EQ(refs(r)["composefs.image.boot.xattrs=keep-user-xattrs"], keep_v2);
  // Found again from the ref, and a digest nothing makes is refused.
  out = cfsctl("--repo " + Q(r) + " oci pull " + Q("oci:" + layout_ + ":t") +
               " t --bootable --expected-digest " + keep_v2);
  EXPECT_NE(out.find(keep_v2), std::string::npos);
  auto bad = run(Q(tool("cfsctl")) + " --repo " + Q(r) + " oci pull " + Q("oci:" + layout_ + ":t") +
                 " t --bootable --expected-digest " + std::string(64, 'a'));
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.err.find("tried 4 mode/version combinations"), std::string::npos) << bad.err;
}

TEST_F(BootCli, MtimeRulesAndTheSubsecondWarning) {
  // /boot with its own nanoseconds: #396 replaces them with /usr's, 0.9.0
  // kept them.
  std::string copy = tmp_->path() + "/nsec";
  must("cp -a " + Q(root_) + " " + Q(copy));
  must("touch -d @1700000000.25 " + Q(copy + "/boot") + " " + Q(copy + "/etc"));
  auto now = run(Q(tool("cfsctl")) + " --no-repo create-dumpfile --bootable " + Q(copy));
  auto old = run(Q(tool("cfsctl")) +
                 " --no-repo create-dumpfile --bootable --bootable-compat 0.9.0 " + Q(copy));
  ASSERT_EQ(now.status, 0);
  ASSERT_EQ(old.status, 0);
  auto line = [](const std::string& dump, const std::string& path) {
    size_t at = dump.find("\n" + path + " ");
    return at == std::string::npos ? std::string()
                                   : dump.substr(at + 1, dump.find('\n', at + 1) - at - 1);
  };
  EXPECT_NE(line(now.out, "/boot").find(" 1700000000.0 "), std::string::npos) << now.out;
  EXPECT_NE(line(old.out, "/boot").find(" 1700000000.250000000 "), std::string::npos) << old.out;
  std::string id_now = cfsctl("--no-repo --hash sha256 compute-id --bootable " + Q(copy));
  std::string id_old = cfsctl(
      "--no-repo --hash sha256 compute-id --bootable --bootable-compat "
      "0.9.0 " +
      Q(copy));
  std::cout << "bootable V1 digests of one tree: #396 " << id_now << ", 0.9.0 " << id_old << "\n";
  // Both are the C-identical mkcomposefs's images of the #396 tree, as it
  // is and with /boot's own nanoseconds back.
  std::string dump = cfsctl("--no-repo --hash sha256 create-dumpfile --bootable " + Q(copy));
  std::string edited = dump;
  std::string boot_line = line(dump, "/boot");
  std::string fixed = boot_line;
  fixed.replace(fixed.find(" 1700000000.0 "), 14, " 1700000000.250000000 ");
  edited.replace(edited.find(boot_line), boot_line.size(), fixed);
  write_file(copy + ".dump", dump + "\n");
  write_file(copy + ".old.dump", edited + "\n");
  std::string mk = Q(tool("mkcomposefs")) +
                   " --from-file --min-version=1 --max-version=1 "
                   "--print-digest-only ";
  EXPECT_EQ(must(mk + Q(copy + ".dump")), id_now);
  EXPECT_EQ(must(mk + Q(copy + ".old.dump")), id_old);
  EXPECT_NE(id_now, id_old);
  // The warning names /etc (whose own mtime a tar layer would not keep),
  // not /boot (which takes /usr's).
  EXPECT_NE(now.err.find("sub-second mtimes (/etc)"), std::string::npos) << now.err;
  EXPECT_EQ(cfsctl("--no-repo compute-id --bootable " + Q(root_) + " 2>&1").find("warning"),
            std::string::npos);
  // Boot resources are collected where composefs-rs collects them (the
  // files in a repository), so a Type 1 entry naming a missing kernel fails
  // create-image but not the repository-less compute-id.
  write_file(copy + "/boot/loader/entries/bad.conf", "linux /nope\n");
  std::string br = repo("bad-entry", "--algorithm fsverity-sha256-12");
  auto bad = run(Q(tool("cfsctl")) + " --repo " + Q(br) + " create-image --bootable " + Q(copy));
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.err.find("/nope does not exist"), std::string::npos) << bad.err;
  cfsctl("--no-repo compute-id --bootable " + Q(copy));
  // Missing /sysroot: an error naming it.
  must("rm -rf " + Q(copy + "/sysroot"));
  auto r = run(Q(tool("cfsctl")) + " --no-repo compute-id --bootable " + Q(copy));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("/sysroot does not exist"), std::string::npos) << r.err;
}

// A layer whose /boot mtime has nanoseconds (a PAX record): the UKI that
// composefs-rs 0.9.0 sealed for it names a boot image that #396 no longer
// makes; --expected-digest finds it with --bootable-compat 0.9.0.
TEST_F(BootCli, ExpectedDigestOfThe090Rule) {
  std::string d = tmp_->path() + "/nsec-oci";
  fs::create_directories(d);
  must("cd " + Q(d) + " && umoci init --layout img && umoci new --image img:t");
  TarBuilder b;
  b.dir("usr/").file("usr/x", "x").dir("sysroot/");
  TarBuilder::Entry boot;
  boot.name = "boot/";
  boot.type = '5';
  boot.mode = 0755;
  boot.pax = {{"mtime", "1700000000.5"}};
  b.add(boot);
  write_file(d + "/l.tar", b.finish());
  must("cd " + Q(d) + " && umoci raw add-layer --image img:t l.tar");
  std::string r = repo("nsec-repo", "--algorithm fsverity-sha256-12");
  std::string src = Q("oci:" + d + "/img:t");
  cfsctl("--repo " + Q(r) + " oci pull " + src + " t");
  std::string now = cfsctl("--repo " + Q(r) + " oci compute-id --bootable t");
  std::string old =
      cfsctl("--repo " + Q(r) + " oci compute-id --bootable --bootable-compat 0.9.0 t");
  ASSERT_NE(now, old);
  auto miss = run(Q(tool("cfsctl")) + " --repo " + Q(r) + " oci pull " + src +
                  " t --bootable --expected-digest " + old);
  EXPECT_NE(miss.status, 0);
  EXPECT_NE(cfsctl("--repo " + Q(r) + " oci pull " + src +
                   " t --bootable --bootable-compat 0.9.0 --expected-digest " + old)
                .find("Boot image: " + old + " (xattr-mode=allowlist-only, format-version=V1)"),
            std::string::npos);
}

}  // namespace
}  // namespace cfs::test
