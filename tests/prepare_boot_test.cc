// SPDX-License-Identifier: Apache-2.0
// cfsctl oci prepare-boot end to end (boot-spec 1.8) on OCI images umoci
// makes: the BLS example's entry (examples/bls/build: --entry-id=example
// --cmdline rw) with the karg's digest checked against `oci compute-id
// --bootable` and against fsverity(1)'s digest of the committed image file;
// a Type 1 entry relocated; a UKI from our `uki build` accepted only with
// the image's digest; and gc keeping the deployment and its UKI's objects.
#include <filesystem>

#include "pe_util.h"
#include "test_util.h"

namespace cfs::test {
namespace {

namespace fs = std::filesystem;
std::string Q(const std::string& s) { return shell_quote(s); }

std::string must(const std::string& cmd) {
  auto r = run(cmd);
  if (r.status != 0) ADD_FAILURE() << cmd << "\n" << r.out << r.err;
  return trim(r.out);
}
std::string cfsctl(const std::string& args) { return must(Q(tool("cfsctl")) + " " + args); }

class PrepareBoot : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!is_root()) GTEST_SKIP() << "needs root (umoci keeps owners only as root)";
    for (auto* t : {"umoci", "fsverity"})
      if (!have_command(t)) GTEST_SKIP() << "needs " << t;
    d_ = tmp_.path();
    must("cd " + Q(d_) + " && umoci init --layout img && umoci new --image img:t && umoci unpack " +
         "--image img:t bundle >/dev/null");
    root_ = d_ + "/bundle/rootfs";
    must("cd " + Q(root_) +
         " && mkdir -p usr/lib/modules/6.1 boot sysroot etc && printf KERNEL > "
         "usr/lib/modules/6.1/vmlinuz && printf INITRD > usr/lib/modules/6.1/initramfs.img");
    repo_ = d_ + "/sys/repo";
    cfsctl("--repo " + Q(repo_) + " init --insecure --algorithm fsverity-sha256-12");
  }
  // Repacks the rootfs as tag `tag` and pulls it.
  void pull(const std::string& tag) {
    must("cd " + Q(d_) + " && umoci repack --image img:" + tag + " bundle");
    cfsctl("--repo " + Q(repo_) + " oci pull " + Q("oci:" + d_ + "/img:" + tag) + " " + tag);
  }
  CommandResult prepare(const std::string& tag, const std::string& args) {
    return run(Q(tool("cfsctl")) + " --repo " + Q(repo_) + " oci prepare-boot " + tag +
               " --bootdir " + Q(d_ + "/bootdir") + " " + args);
  }
  std::string bootable_id(const std::string& tag) {
    return cfsctl("--repo " + Q(repo_) + " oci compute-id --bootable " + tag);
  }
  TempDir tmp_;
  std::string d_, root_, repo_;
};

TEST_F(PrepareBoot, VmlinuzGivesTheBlsExample) {
  pull("t");
  auto r = prepare("t", "--entry-id=example --cmdline rw");
  ASSERT_EQ(r.status, 0) << r.err;
  std::string id = bootable_id("t");
  ASSERT_EQ(id.size(), 64u);
  // The committed image is the file fs-verity names by that digest.
  std::string measured =
      must("fsverity digest --hash-alg=sha256 --compact " + Q(repo_ + "/images/" + id));
  EXPECT_EQ(measured, id);
  // '?': the test repository is insecure (no fs-verity on the test filesystem).
  EXPECT_EQ(read_file(d_ + "/bootdir/loader/entries/example.conf"),
            "# File created by composefs\ntitle todoOS\nversion 0-todo\nlinux /example/vmlinuz\n"
            "initrd /example/initramfs.img\noptions composefs.digest=?v1-sha256-12:" +
                id + " rw\n");
  EXPECT_EQ(read_file(d_ + "/bootdir/example/vmlinuz"), "KERNEL");
  EXPECT_EQ(read_file(d_ + "/bootdir/example/initramfs.img"), "INITRD");
  for (auto* s : {"var", "etc/upper", "etc/work"})
    EXPECT_TRUE(fs::is_directory(d_ + "/sys/state/deploy/" + id + "/" + s)) << s;
  EXPECT_TRUE(fs::exists(repo_ + "/images/refs/deploy/" + id));
}

TEST_F(PrepareBoot, VmlinuzWithoutInitramfsIsRefused) {
  fs::remove(root_ + "/usr/lib/modules/6.1/initramfs.img");
  pull("t");
  auto r = prepare("t", "");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("kernel 6.1 has no initramfs.img in /usr/lib/modules/6.1"),
            std::string::npos)
      << r.err;
}

TEST_F(PrepareBoot, Type1EntryIsRelocated) {
  must("cd " + Q(root_) +
       " && mkdir -p boot/loader/entries && printf 'title T\\nlinux "
       "/usr/lib/modules/6.1/vmlinuz\\ninitrd /usr/lib/modules/6.1/initramfs.img\\noptions "
       "root=/dev/old quiet composefs=old\\n' > boot/loader/entries/a.conf");
  pull("t");
  auto r = prepare("t", "--entry-id x --cmdline root=/dev/new rw");
  ASSERT_EQ(r.status, 0) << r.err;
  std::string id = bootable_id("t");
  // composefs.digest= does not replace composefs= (a different key); root= is replaced.
  EXPECT_EQ(read_file(d_ + "/bootdir/loader/entries/x.conf"),
            "title T\nlinux /x/vmlinuz\ninitrd /x/initramfs.img\noptions root=/dev/new quiet "
            "composefs=old "
            "composefs.digest=?v1-sha256-12:" +
                id + " rw\n");
  EXPECT_EQ(read_file(d_ + "/bootdir/x/vmlinuz"), "KERNEL");
  EXPECT_EQ(read_file(d_ + "/bootdir/x/initramfs.img"), "INITRD");
  EXPECT_FALSE(fs::exists(d_ + "/bootdir/loader/entries/a.conf"));
}

// REF VERITY (composefs-rs's optional positional): the image is used only if
// its stored config stream has that fs-verity digest, here measured by
// fsverity(1) on the stream file.
TEST_F(PrepareBoot, ConfigVerityIsChecked) {
  pull("t");
  std::string cfg = must("cd " + Q(d_) + " && " + Q(tool("cfsctl")) + " --repo " + Q(repo_) +
                         " oci inspect --config t | head -c -1 | sha256sum | cut -d' ' -f1");
  std::string stream = repo_ + "/streams/oci-config-sha256:" + cfg;
  ASSERT_TRUE(fs::exists(stream)) << stream;
  std::string verity = must("fsverity digest --hash-alg=sha256 --compact " + Q(stream));
  ASSERT_EQ(verity.size(), 64u);
  std::string inspected = cfsctl("--repo " + Q(repo_) + " oci inspect t");
  EXPECT_NE(inspected.find("\"config_verity\": \"" + verity + "\""), std::string::npos)
      << inspected;
  EXPECT_EQ(cfsctl("--repo " + Q(repo_) + " oci compute-id --bootable t " + verity),
            bootable_id("t"));
  EXPECT_FALSE(cfsctl("--repo " + Q(repo_) + " oci dump t " + verity).empty());

  std::string other(64, '0');
  auto bad = prepare("t", other);
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.err.find("has fs-verity digest " + verity + ", not VERITY " + other),
            std::string::npos)
      << bad.err;
  EXPECT_FALSE(fs::exists(d_ + "/bootdir")) << "a refused image wrote boot files";
  auto malformed = run(Q(tool("cfsctl")) + " --repo " + Q(repo_) + " oci compute-id t 12ab");
  EXPECT_NE(malformed.status, 0);
  EXPECT_NE(malformed.err.find("VERITY '12ab' is not a sha256 digest"), std::string::npos)
      << malformed.err;

  auto good = prepare("t", verity);
  ASSERT_EQ(good.status, 0) << good.err;
  EXPECT_TRUE(fs::is_directory(d_ + "/bootdir/loader/entries"));
}

TEST_F(PrepareBoot, UkiMustCarryTheImageDigestAndGcKeepsItsObjects) {
  if (!have_file(kStub)) GTEST_SKIP() << kStub << " missing (systemd-boot-efi)";
  write_bytes(d_ + "/k", synthetic_kernel("6.1"));
  fs::remove(root_ + "/usr/lib/modules/6.1/vmlinuz");  // the UKI is the first entry
  pull("t");
  // /boot is emptied by the boot transformation: the UKI added below does
  // not change the bootable digest it is sealed with.
  std::string id = bootable_id("t");
  std::string zero(64, '0');
  auto build = [&](const std::string& digest, const std::string& out) {
    cfsctl("uki build --linux " + Q(d_ + "/k") + " --initrd " +
           Q(root_ + "/usr/lib/modules/6.1/initramfs.img") +
           " --os-release 'ID=t' --composefs-hash sha256 --composefs-digest " + digest +
           " --output " + Q(out));
  };
  must("mkdir -p " + Q(root_ + "/boot/EFI/Linux"));
  build(zero, root_ + "/boot/EFI/Linux/os.efi");
  pull("bad");
  auto bad = prepare("bad", "");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.err.find(zero), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find(bootable_id("bad")), std::string::npos) << bad.err;

  build(id, root_ + "/boot/EFI/Linux/os.efi");
  pull("good");
  ASSERT_EQ(bootable_id("good"), id);
  auto cl = prepare("good", "--cmdline rw");
  EXPECT_NE(cl.status, 0);
  EXPECT_NE(cl.err.find("Can't add --cmdline args to UKIs"), std::string::npos) << cl.err;
  auto r = prepare("good", "--entry-id=deployed");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(read_file(d_ + "/bootdir/EFI/Linux/deployed.efi"),
            read_file(root_ + "/boot/EFI/Linux/os.efi"));

  // Every tag gone: only prepare-boot's refs keep anything.
  for (auto* t : {"t", "bad", "good"}) cfsctl("--repo " + Q(repo_) + " oci untag " + t);
  cfsctl("--repo " + Q(repo_) + " gc");
  EXPECT_TRUE(fs::exists(repo_ + "/images/" + id));
  // The plain image (with /boot) is kept, and with it the UKI's object.
  std::string plain = repo_ + "/images/refs/deploy/" + id + ".source";
  ASSERT_TRUE(fs::exists(plain));
  std::string ls = must(Q(tool("composefs-info")) + " ls " + Q(plain));
  EXPECT_NE(ls.find("/boot/EFI/Linux/os.efi"), std::string::npos) << ls;
  EXPECT_NE(must(Q(tool("composefs-info")) + " objects " + Q(plain)), "");
  EXPECT_EQ(must(Q(tool("composefs-info")) + " --basedir=" + Q(repo_ + "/objects") +
                 " missing-objects " + Q(plain)),
            "");
  cfsctl("--repo " + Q(repo_) + " fsck");
}

}  // namespace
}  // namespace cfs::test
