// SPDX-License-Identifier: Apache-2.0
// Deployments on bootc's layout (boot-spec 2.1-2.9): `cfsctl status` on a
// layout bootc makes, built here by hand from the spec; the /etc three-way
// merge; and switch/upgrade/finalize/rollback/deploy-gc end to end on OCI
// images umoci makes, with crashes injected at every durable step.
#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "composefs-cpp/deploy/lifecycle.h"
#include "pe_util.h"
#include "test_util.h"

namespace cfs::test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
std::string Q(const std::string& s) { return shell_quote(s); }

std::string must(const std::string& cmd) {
  auto r = run(cmd);
  if (r.status != 0) ADD_FAILURE() << cmd << "\n" << r.out << r.err;
  return trim(r.out);
}

void put(const std::string& path, const std::string& data) {
  fs::create_directories(fs::path(path).parent_path());
  write_file(path, data);
}

// ------------------------------------------------- status on bootc's layout

class BootcLayout : public ::testing::Test {
 protected:
  void SetUp() override {
    s_ = tmp_.path() + "/sysroot";
    a_ = std::string(128, 'a');
    b_ = std::string(128, 'b');
    c_ = std::string(128, 'c');
    std::string e = s_ + "/boot/loader/entries/";
    // bootc's BLS text (BLSConfig order), Type 1 in /boot (the GRUB layout).
    put(e + "bootc_fedora-42-1.conf",
        "title Fedora Linux 42\nversion 42\nlinux /boot/bootc_composefs-" + a_ +
            "/vmlinuz\ninitrd /boot/bootc_composefs-" + a_ +
            "/initrd\noptions root=UUID=1234 rw composefs=" + a_ + "\nsort-key bootc-fedora-0\n");
    put(e + "bootc_fedora-41-0.conf",
        "title Fedora Linux 41\nversion 41\nlinux /boot/bootc_composefs-" + b_ +
            "/vmlinuz\ninitrd /boot/bootc_composefs-" + b_ +
            "/initrd\noptions root=UUID=1234 rw composefs=" + b_ + "\nsort-key bootc-fedora-1\n");
    // A staged upgrade: the new entry and the booted one re-keyed.
    std::string st = s_ + "/boot/loader/entries.staged/";
    put(st + "bootc_fedora-43-1.conf",
        "title Fedora Linux 43\nversion 43\nlinux /boot/bootc_composefs-" + c_ +
            "/vmlinuz\ninitrd /boot/bootc_composefs-" + c_ +
            "/initrd\noptions root=UUID=1234 rw composefs.digest=v1-sha512-12:" + c_ +
            "\nsort-key bootc-fedora-0\n");
    put(st + "bootc_fedora-42-0.conf", read_file(e + "bootc_fedora-42-1.conf"));
    put(s_ + "/boot/grub2/grub.cfg", "");
    int n = 0;
    for (const auto& d : {a_, b_, c_}) {
      std::string dir = s_ + "/state/deploy/" + d;
      fs::create_directories(dir + "/etc");
      fs::create_directory_symlink("../../os/default/var", dir + "/var");
      // tini's form, with bootc's keys (composefs_consts.rs).
      put(dir + "/" + d + ".origin",
          "[origin]\ncontainer-image-reference=ostree-unverified-image:docker://quay.io/fedora/"
          "fedora-bootc:4" +
              std::to_string(2 - n) +
              "\n\n[boot]\nboot_type = bls\ndigest=" + std::string(64, char('0' + n)) +
              "\n\n[image]\nmanifest_digest=sha256:" + std::string(64, char('d' + n)) + "\n");
      ++n;
    }
    put(tmp_.path() + "/run/staged-deployment",
        "{\"depl_id\":\"" + c_ + "\",\"finalization_locked\":false}");
    put(tmp_.path() + "/cmdline", "BOOT_IMAGE=/vmlinuz root=UUID=1234 rw composefs=" + b_ + "\n");
    // Soft-rebooted into A: the mount source of / wins over the command line.
    put(tmp_.path() + "/mountinfo",
        "22 1 0:21 / /sysroot rw,relatime shared:1 - ext4 /dev/vda3 rw\n"
        "30 1 0:30 / / ro,relatime shared:2 - overlay composefs:" +
            a_ + " ro,lowerdir+=/x\n");
    put(tmp_.path() + "/empty", "");
  }
  json status(const std::string& mountinfo) {
    std::string out = must(Q(tool("cfsctl")) + " status --json --sysroot " + Q(s_) + " --run-dir " +
                           Q(tmp_.path() + "/run") + " --cmdline " + Q(tmp_.path() + "/cmdline") +
                           " --mountinfo " + Q(tmp_.path() + "/" + mountinfo));
    return json::parse(out);
  }
  TempDir tmp_;
  std::string s_, a_, b_, c_;
};

TEST_F(BootcLayout, StatusReadsEveryField) {
  json j = status("mountinfo");
  const json& st = j["status"];
  EXPECT_EQ(st["booted"]["composefs"]["verity"], a_);
  EXPECT_EQ(st["booted"]["composefs"]["bootType"], "bls");
  EXPECT_EQ(st["booted"]["composefs"]["bootloader"], "grub");
  EXPECT_EQ(st["booted"]["composefs"]["bootDigest"], std::string(64, '0'));
  EXPECT_EQ(st["booted"]["image"]["image"]["image"], "quay.io/fedora/fedora-bootc:42");
  EXPECT_EQ(st["booted"]["image"]["image"]["transport"], "registry");
  EXPECT_EQ(st["booted"]["image"]["imageDigest"], "sha256:" + std::string(64, 'd'));
  EXPECT_EQ(st["rollback"]["composefs"]["verity"], b_);
  EXPECT_EQ(st["rollback"]["composefs"]["bootDigest"], std::string(64, '1'));
  EXPECT_EQ(st["staged"]["composefs"]["verity"], c_);
  EXPECT_EQ(st["staged"]["downloadOnly"], false);
  EXPECT_EQ(st["rollbackQueued"], false);
  EXPECT_TRUE(st["otherDeployments"].empty());
  EXPECT_EQ(j["spec"]["bootOrder"], "default");
}

TEST_F(BootcLayout, CmdlineNamesBootedWithoutComposefsRootAndRollbackIsQueued) {
  // Booted B (second entry): the first entry now is the rollback, queued.
  json st = status("empty")["status"];
  EXPECT_EQ(st["booted"]["composefs"]["verity"], b_);
  EXPECT_EQ(st["rollback"]["composefs"]["verity"], a_);
  EXPECT_EQ(st["rollbackQueued"], true);
}

TEST_F(BootcLayout, UkiEntryOnTheEsp) {
  // A systemd-boot ESP layout: a Type 1 entry pointing at the UKI.
  std::string esp = tmp_.path() + "/esp";
  put(esp + "/loader/loader.conf", "timeout 5\n");
  put(esp + "/loader/entries/bootc_fedora-42-1.conf",
      "title Fedora 42\nversion 42\nuki /EFI/Linux/bootc/bootc_composefs-" + a_ +
          ".efi\nsort-key bootc-fedora-0\n");
  std::string o = s_ + "/state/deploy/" + a_ + "/" + a_ + ".origin";
  std::string t = read_file(o);
  t.replace(t.find("boot_type = bls"), 15, "boot_type=uki");
  write_file(o, t);
  put(tmp_.path() + "/run/staged-deployment",
      "{\"depl_id\":\"" + c_ + "\",\"finalization_locked\":true}");
  std::string out =
      must(Q(tool("cfsctl")) + " status --json --sysroot " + Q(s_) + " --boot-dir " + Q(esp) +
           " --run-dir " + Q(tmp_.path() + "/run") + " --cmdline " + Q(tmp_.path() + "/empty") +
           " --mountinfo " + Q(tmp_.path() + "/mountinfo"));
  json st = json::parse(out)["status"];
  EXPECT_EQ(st["booted"]["composefs"]["verity"], a_);
  EXPECT_EQ(st["booted"]["composefs"]["bootType"], "uki");
  EXPECT_EQ(st["booted"]["composefs"]["bootloader"], "systemd");
  EXPECT_TRUE(st["staged"].is_null());  // the ESP has no entries.staged
  EXPECT_TRUE(st["rollback"].is_null());
}

// The entries in systemd-boot's order, from bootctl (the real sorter, not
// ours): their linux paths' kernel directory names.
std::vector<std::string> bootctl_order(const std::string& boot) {
  std::vector<std::string> out;
  must("mount --bind " + Q(boot) + " " + Q(boot));
  auto r = run("SYSTEMD_RELAX_ESP_CHECKS=1 bootctl --esp-path=" + Q(boot) +
               " --no-variables --no-pager --json=short list");
  run("umount " + Q(boot));
  EXPECT_EQ(r.status, 0) << r.err;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    std::string lx = json::parse(line)["linux"];
    out.push_back(fs::path(lx).parent_path().filename().string());
  }
  return out;
}

TEST_F(BootcLayout, RollbackWithFourDeployments) {
  if (!have_command("bootctl")) GTEST_SKIP() << "needs bootctl (systemd-boot)";
  if (!is_root()) GTEST_SKIP() << "needs root (bind mount for bootctl)";
  // Two more deployments after A and B, as another tool may have left them.
  // An os_id sorting before "bootc" (the key rollback writes): the others
  // must not overtake the re-keyed two.
  std::string x(128, '1'), y(128, '2');
  std::string e = s_ + "/boot/loader/entries/";
  for (auto* f : {"bootc_fedora-42-1.conf", "bootc_fedora-41-0.conf"}) {
    std::string t = read_file(e + f);
    t.replace(t.find("sort-key bootc-fedora-"), 22, "sort-key bootc-arch-");
    write_file(e + f, t);
  }
  int n = 2;
  for (const auto& d : {x, y}) {
    put(e + "other-" + std::to_string(n) + ".conf",
        "title Other " + std::to_string(n) + "\nversion 3" + std::to_string(n) +
            "\nlinux /boot/bootc_composefs-" + d + "/vmlinuz\noptions rw composefs=" + d +
            "\nsort-key bootc-arch-" + std::to_string(n) + "\n");
    put(s_ + "/state/deploy/" + d + "/" + d + ".origin",
        "[origin]\ncontainer-image-reference=ostree-unverified-image:docker://q/o:" +
            std::to_string(n) + "\n[boot]\nboot_type=bls\n[image]\nmanifest_digest=sha256:" +
            std::string(64, '9') + "\n");
    ++n;
  }
  // A foreign entry (no deployment: no origin file) must survive untouched.
  std::string z(128, '3');
  put(e + "zz-foreign.conf", "title Foreign\nlinux /z/vmlinuz\noptions composefs=" + z + "\n");
  std::string k = "/boot/bootc_composefs-";
  auto dirs = [&](std::initializer_list<std::string> ds) {
    std::vector<std::string> v;
    for (const auto& d : ds) v.push_back("bootc_composefs-" + d);
    v.push_back("z");
    return v;
  };
  ASSERT_EQ(bootctl_order(s_ + "/boot"), dirs({a_, b_, x, y}));
  std::string args = " --sysroot " + Q(s_) + " --run-dir " + Q(tmp_.path() + "/run") +
                     " --cmdline " + Q(tmp_.path() + "/empty") + " --mountinfo " +
                     Q(tmp_.path() + "/mountinfo");
  auto r = run(Q(tool("cfsctl")) + " rollback" + args);  // booted: A (mountinfo)
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(bootctl_order(s_ + "/boot"), dirs({b_, a_, x, y}));
  EXPECT_EQ(read_file(e + "zz-foreign.conf"),
            "title Foreign\nlinux /z/vmlinuz\noptions composefs=" + z + "\n");
  EXPECT_NE(read_file(e + "bootc_bootc-41-1.conf").find("sort-key bootc-bootc-0\n"),
            std::string::npos);
  EXPECT_NE(read_file(e + "bootc_bootc-42-0.conf").find("sort-key bootc-bootc-1\n"),
            std::string::npos);
  // The staged deployment is dropped (bootc does so too).
  EXPECT_FALSE(fs::exists(s_ + "/boot/loader/entries.staged"));
  EXPECT_FALSE(fs::exists(tmp_.path() + "/run/staged-deployment"));
  json st = status("mountinfo")["status"];
  EXPECT_EQ(st["booted"]["composefs"]["verity"], a_);
  EXPECT_EQ(st["rollback"]["composefs"]["verity"], b_);
  EXPECT_EQ(st["rollbackQueued"], true);
  EXPECT_TRUE(st["staged"].is_null());
  ASSERT_EQ(st["otherDeployments"].size(), 2u);
  EXPECT_EQ(st["otherDeployments"][0]["composefs"]["verity"], x);
  EXPECT_EQ(st["otherDeployments"][1]["composefs"]["verity"], y);
  // Rolling back again restores the order; the booted one is first again.
  r = run(Q(tool("cfsctl")) + " rollback" + args);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(bootctl_order(s_ + "/boot"), dirs({a_, b_, x, y}));
  st = status("mountinfo")["status"];
  EXPECT_EQ(st["booted"]["composefs"]["verity"], a_);
  EXPECT_EQ(st["rollback"]["composefs"]["verity"], b_);
  EXPECT_EQ(st["rollbackQueued"], false);
  // Booted B (the command line, no composefs root): A is its rollback.
  json sb = status("empty")["status"];
  EXPECT_EQ(sb["booted"]["composefs"]["verity"], b_);
  EXPECT_EQ(sb["rollback"]["composefs"]["verity"], a_);
  EXPECT_EQ(sb["rollbackQueued"], true);
  EXPECT_EQ(sb["otherDeployments"].size(), 2u);
}

// ------------------------------------------------------- /etc three ways

deploy::EtcEntry file(const std::string& data, uint32_t mode = 0644) {
  return {S_IFREG | mode, 0, 0, data, {}};
}

TEST(EtcMerge, ThreeWays) {
  deploy::EtcTree pristine{{"same", file("1")},
                           {"local", file("1")},
                           {"image", file("1")},
                           {"gone", file("1")},
                           {"chmod", file("1")}};
  deploy::EtcTree current = pristine, next = pristine;
  current["local"] = file("mine");
  next["image"] = file("theirs");
  next.erase("gone");
  current["added"] = file("new local");
  next["shipped"] = file("new image");
  current["chmod"] = file("1", 0600);
  auto m = deploy::merge_etc(pristine, current, next);
  EXPECT_TRUE(m.conflicts.empty());
  EXPECT_EQ(m.result.at("same"), file("1"));
  EXPECT_EQ(m.result.at("local"), file("mine"));
  EXPECT_EQ(m.result.at("image"), file("theirs"));
  EXPECT_FALSE(m.result.contains("gone"));
  EXPECT_EQ(m.result.at("added"), file("new local"));
  EXPECT_EQ(m.result.at("shipped"), file("new image"));
  EXPECT_EQ(m.result.at("chmod"), file("1", 0600));
}

// Found by the full chain (tests/e2e): /etc/alternatives/awk -> /usr/bin/mawk
// was keyed "../usr/bin/mawk" (fs::relative follows links), so every link
// to an existing file was a change and a conflict.
TEST(EtcMerge, SymlinksAreKeyedByTheirOwnName) {
  TempDir t;
  std::string etc = t.path() + "/etc";
  fs::create_directories(etc + "/alternatives");
  fs::create_symlink("/usr/bin/env", etc + "/alternatives/env");
  fs::create_symlink("/dev/null", etc + "/masked.service");
  fs::create_symlink("../alternatives", etc + "/alternatives/up");
  auto tree = deploy::load_etc_dir(etc);
  ASSERT_TRUE(tree) << tree.error().message();
  std::vector<std::string> keys;
  for (const auto& [k, e] : *tree) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"alternatives", "alternatives/env", "alternatives/up",
                                            "masked.service"}));
  EXPECT_EQ(tree->at("alternatives/env").data, "/usr/bin/env");
  EXPECT_EQ(tree->at("masked.service").data, "/dev/null");
}

TEST(EtcMerge, BothChangedIsAConflict) {
  deploy::EtcTree pristine{{"f", file("1")}, {"g", file("1")}};
  deploy::EtcTree current = pristine, next = pristine;
  current["f"] = file("mine");
  next["f"] = file("theirs");
  current["g"] = file("same");
  next["g"] = file("same");  // the same change on both sides is no conflict
  auto m = deploy::merge_etc(pristine, current, next);
  ASSERT_EQ(m.conflicts, std::vector<std::string>{"f"});
  EXPECT_EQ(m.result.at("g"), file("same"));
}

deploy::EtcEntry with_xattr(deploy::EtcEntry e, const std::string& k, const std::string& v) {
  e.xattrs[k] = v;
  return e;
}

TEST(EtcMerge, XattrsMergeAndConflict) {
  deploy::EtcTree pristine{
      {"label", file("1")}, {"note", file("1")}, {"both", file("1")}, {"img", file("1")}};
  deploy::EtcTree current = pristine, next = pristine;
  // Only an xattr changed locally: kept, and the image's unchanged file too.
  current["label"] = with_xattr(file("1"), "security.selinux", "system_u:object_r:etc_t:s0");
  current["note"] = with_xattr(file("1"), "user.note", "mine");
  // Local xattr, image content: both changed, differently.
  current["both"] = with_xattr(file("1"), "user.note", "mine");
  next["both"] = file("2");
  // The image changed an xattr only: taken.
  next["img"] = with_xattr(file("1"), "security.capability", "cap");
  auto m = deploy::merge_etc(pristine, current, next);
  EXPECT_EQ(m.conflicts, std::vector<std::string>{"both"});
  EXPECT_EQ(m.result.at("label").xattrs.at("security.selinux"), "system_u:object_r:etc_t:s0");
  EXPECT_EQ(m.result.at("note").xattrs.at("user.note"), "mine");
  EXPECT_EQ(m.result.at("img").xattrs.at("security.capability"), "cap");
}

// ------------------------------------------------------------ life cycle

class Lifecycle : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!is_root()) GTEST_SKIP() << "needs root (umoci keeps owners only as root)";
    if (!have_command("umoci")) GTEST_SKIP() << "needs umoci";
    d_ = tmp_.path();
    s_ = d_ + "/sysroot";
    must("cd " + Q(d_) + " && umoci init --layout img && umoci new --image img:t && umoci unpack " +
         "--image img:t bundle >/dev/null");
    root_ = d_ + "/bundle/rootfs";
    must("cd " + Q(root_) +
         " && mkdir -p usr/lib/modules/6.1 boot sysroot etc/sub && printf KERNEL1 > "
         "usr/lib/modules/6.1/vmlinuz && printf INITRD > usr/lib/modules/6.1/initramfs.img && "
         "printf 'ID=test-os\\nVERSION_ID=1\\nPRETTY_NAME=\"Test 1\"\\n' > usr/lib/os-release && "
         "echo a > etc/a && echo b > etc/b && echo c > etc/sub/c");
    // The repository as bootc's: sha512 at <sysroot>/composefs (insecure: no fs-verity here).
    must(Q(tool("cfsctl")) + " --repo " + Q(s_ + "/composefs") + " init --insecure");
    repack();
  }
  void repack() { must("cd " + Q(d_) + " && umoci repack --image img:t bundle"); }
  // A self-signed RSA key and certificate, NAME.key and NAME.crt in d_.
  void make_key(const std::string& name, const std::string& cn) {
    must("cd " + Q(d_) + " && openssl req -x509 -newkey rsa:2048 -nodes -keyout " + name +
         ".key -out " + name + ".crt -days 2 -subj /CN=" + cn + " 2>/dev/null");
  }
  std::string args() {
    return " --sysroot " + Q(s_) + " --run-dir " + Q(d_ + "/run") + " --cmdline /dev/null " +
           "--mountinfo /dev/null";
  }
  CommandResult cfs(const std::string& cmd, const std::string& env = "") {
    return run(env + " " + Q(tool("cfsctl")) + " --insecure " + cmd + args());
  }
  json status() {
    auto r = cfs("status --json");
    EXPECT_EQ(r.status, 0) << r.err;
    return json::parse(r.out)["status"];
  }
  std::vector<std::string> entries(const std::string& dir = "entries") {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(s_ + "/boot/loader/" + dir, ec))
      out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }
  // Every entry (staged too) names a complete image, kernel and state; fsck passes.
  void check_bootable(const std::string& when) {
    for (auto* dir : {"entries", "entries.staged"}) {
      for (const auto& name : entries(dir)) {
        std::string text = read_file(s_ + "/boot/loader/" + dir + "/" + name);
        auto pos = text.find("composefs.digest=?v1-sha512-12:");
        ASSERT_NE(pos, std::string::npos) << when << ": " << text;
        std::string d = text.substr(pos + 31, 128);
        EXPECT_TRUE(fs::exists(s_ + "/composefs/images/" + d)) << when << " " << d;
        EXPECT_EQ(read_file(s_ + "/boot/bootc_composefs-" + d + "/initrd"), "INITRD") << when;
        EXPECT_TRUE(fs::exists(s_ + "/state/deploy/" + d + "/" + d + ".origin")) << when;
      }
    }
    auto r = run(Q(tool("cfsctl")) + " --insecure --repo " + Q(s_ + "/composefs") + " fsck");
    EXPECT_EQ(r.status, 0) << when << "\n" << r.out << r.err;
  }
  void first_install() {
    auto r = cfs("switch " + Q("oci:" + d_ + "/img:t"));
    ASSERT_EQ(r.status, 0) << r.err;
    r = cfs("finalize");
    ASSERT_EQ(r.status, 0) << r.err;
  }
  std::string digest_of(const json& d) { return d["composefs"]["verity"].get<std::string>(); }
  TempDir tmp_;
  std::string d_, s_, root_;
};

TEST_F(Lifecycle, SwitchUpgradeFinalizeRollbackAndGc) {
  first_install();
  auto one = entries();
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0], "bootc_test_os-1-1.conf");
  // Not booted (a disk, not the running system): no booted, no rollback.
  json st = status();
  EXPECT_TRUE(st["booted"].is_null());
  std::string d1 = read_file(s_ + "/boot/loader/entries/" + one[0]);
  auto p = d1.find("composefs.digest=?v1-sha512-12:");
  ASSERT_NE(p, std::string::npos);
  d1 = d1.substr(p + 31, 128);
  // The deployment digest is the bootable image's (oci compute-id --bootable),
  // and the image is tagged as bootc tags it.
  std::string repo = " --insecure --repo " + Q(s_ + "/composefs");
  json images = json::parse(must(Q(tool("cfsctl")) + repo + " oci images --json"))["images"];
  ASSERT_EQ(images.size(), 1u);
  std::string manifest = images[0]["manifest_digest"];
  EXPECT_EQ(images[0]["name"], "localhost/bootc-" + manifest);
  EXPECT_EQ(d1, must(Q(tool("cfsctl")) + repo + " oci compute-id --bootable " + Q("@" + manifest)));
  std::string st1 = s_ + "/state/deploy/" + d1;
  EXPECT_EQ(read_file(st1 + "/etc/a"), "a\n");
  // boot.digest: sha256 of vmlinuz then initrd.
  EXPECT_NE(read_file(st1 + "/" + d1 + ".origin")
                .find("digest=" + must("printf KERNEL1INITRD | sha256sum | cut -d' ' -f1")),
            std::string::npos);
  EXPECT_EQ(fs::read_symlink(st1 + "/var").string(), "../../os/default/var");
  EXPECT_NE(read_file(st1 + "/" + d1 + ".origin")
                .find("container-image-reference=ostree-unverified-image:oci:" + d_ + "/img:t"),
            std::string::npos);

  // A new image version: etc/b changes in the image, etc/a locally.
  write_file(st1 + "/etc/a", "local a\n");
  must("cd " + Q(root_) + " && echo b2 > etc/b && printf KERNEL2 > usr/lib/modules/6.1/vmlinuz");
  must("sed -i 's/VERSION_ID=1/VERSION_ID=2/' " + Q(root_ + "/usr/lib/os-release"));
  repack();
  auto r = cfs("upgrade");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(entries("entries.staged"),
            (std::vector<std::string>{"bootc_test_os-1-0.conf", "bootc_test_os-2-1.conf"}));
  st = status();
  std::string d2 = digest_of(st["staged"]);
  EXPECT_NE(d2, d1);
  // A second upgrade finds nothing new.
  r = cfs("upgrade");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("deployed already"), std::string::npos) << r.out;

  r = cfs("finalize");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_FALSE(fs::exists(s_ + "/boot/loader/entries.staged"));
  EXPECT_EQ(entries(),
            (std::vector<std::string>{"bootc_test_os-1-0.conf", "bootc_test_os-2-1.conf"}));
  std::string e2 = read_file(s_ + "/boot/loader/entries/bootc_test_os-2-1.conf");
  EXPECT_NE(e2.find("sort-key bootc-test-os-0\n"), std::string::npos) << e2;
  EXPECT_NE(e2.find("composefs=?"), std::string::npos) << e2;  // both karg forms
  EXPECT_NE(read_file(s_ + "/boot/loader/entries/bootc_test_os-1-0.conf")
                .find("sort-key bootc-test-os-1\n"),
            std::string::npos);
  std::string st2 = s_ + "/state/deploy/" + d2;
  EXPECT_EQ(read_file(st2 + "/etc/a"), "local a\n");  // changed locally: kept
  EXPECT_EQ(read_file(st2 + "/etc/b"), "b2\n");       // changed in the image: taken
  EXPECT_EQ(read_file(st2 + "/etc/sub/c"), "c\n");
  EXPECT_EQ(read_file(s_ + "/boot/bootc_composefs-" + d2 + "/vmlinuz"), "KERNEL2");
  st = status();
  EXPECT_EQ(digest_of(st["rollback"]), d1);
  check_bootable("after finalize");

  // Rollback makes d1 first; status then reports d2 as the rollback.
  r = cfs("rollback");
  ASSERT_EQ(r.status, 0) << r.err;
  st = status();
  EXPECT_EQ(digest_of(st["rollback"]), d2);
  auto after = entries();
  ASSERT_EQ(after.size(), 2u);
  EXPECT_NE(read_file(s_ + "/boot/loader/entries/bootc_bootc-1-1.conf").find(d1),
            std::string::npos);

  // GC: an orphaned state dir and kernel dir go, both deployments stay.
  std::string orphan(128, 'e');
  fs::create_directories(s_ + "/state/deploy/" + orphan + "/etc");
  fs::create_directories(s_ + "/boot/bootc_composefs-" + orphan);
  // The booted deployment is kept even with no entry naming it.
  std::string booted(128, 'f');
  fs::create_directories(s_ + "/state/deploy/" + booted + "/etc");
  write_file(d_ + "/mountinfo", "30 1 0:30 / / ro - overlay composefs:" + booted + " ro\n");
  r = run(Q(tool("cfsctl")) + " --insecure deploy-gc --sysroot " + Q(s_) + " --run-dir " +
          Q(d_ + "/run") + " --cmdline /dev/null --mountinfo " + Q(d_ + "/mountinfo"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(fs::exists(s_ + "/state/deploy/" + booted));
  EXPECT_FALSE(fs::exists(s_ + "/state/deploy/" + orphan));
  EXPECT_FALSE(fs::exists(s_ + "/boot/bootc_composefs-" + orphan));
  for (const auto& d : {d1, d2}) {
    EXPECT_TRUE(fs::exists(s_ + "/state/deploy/" + d));
    EXPECT_TRUE(fs::exists(s_ + "/boot/bootc_composefs-" + d));
    EXPECT_TRUE(fs::exists(s_ + "/composefs/images/" + d));
  }
  check_bootable("after gc");

  // An entry removed: its deployment's state, kernel, refs, tag and images go.
  fs::remove(s_ + "/boot/loader/entries/bootc_bootc-2-0.conf");
  fs::remove_all(s_ + "/state/deploy/" + booted);
  std::string tags_before = must(Q(tool("cfsctl")) + repo + " oci images --json");
  r = cfs("deploy-gc");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_FALSE(fs::exists(s_ + "/state/deploy/" + d2));
  EXPECT_FALSE(fs::exists(s_ + "/boot/bootc_composefs-" + d2));
  EXPECT_FALSE(fs::exists(s_ + "/composefs/images/refs/deploy/" + d2));
  EXPECT_FALSE(fs::exists(s_ + "/composefs/images/" + d2));
  EXPECT_TRUE(fs::exists(s_ + "/composefs/images/" + d1));
  json left = json::parse(must(Q(tool("cfsctl")) + repo + " oci images --json"))["images"];
  ASSERT_EQ(left.size(), 1u) << tags_before;
  EXPECT_EQ(left[0]["name"], "localhost/bootc-" + manifest);
  check_bootable("after gc of d2");
}

TEST_F(Lifecycle, EtcXattrsSurviveUpgradeAndConflict) {
  if (!have_command("getfattr") || !have_command("setfattr")) GTEST_SKIP() << "needs attr";
  first_install();
  std::string text = read_file(s_ + "/boot/loader/entries/" + entries()[0]);
  std::string d = text.substr(text.find("composefs.digest=?v1-sha512-12:") + 31, 128);
  std::string etc = s_ + "/state/deploy/" + d + "/etc";
  if (run("setfattr -n user.probe -v 1 " + Q(etc + "/a")).status != 0)
    GTEST_SKIP() << "the test file system takes no user.* xattrs";
  // Local xattr-only changes (a note, a relabel), the data as shipped.
  must("setfattr -n user.note -v mine " + Q(etc + "/a"));
  must("setfattr -n security.selinux -v system_u:object_r:etc_t:s0 " + Q(etc + "/sub/c"));
  must("cd " + Q(root_) + " && echo b2 > etc/b && printf KERNEL2 > usr/lib/modules/6.1/vmlinuz");
  repack();
  auto r = cfs("upgrade");
  ASSERT_EQ(r.status, 0) << r.err;
  r = cfs("finalize");
  ASSERT_EQ(r.status, 0) << r.err;
  std::string e2 = read_file(s_ + "/boot/loader/entries/bootc_test_os-1-1.conf");
  // The new deployment is the one whose state is not d's.
  std::string nd;
  for (const auto& de : fs::directory_iterator(s_ + "/state/deploy"))
    if (de.path().filename() != d) nd = de.path().filename().string();
  ASSERT_FALSE(nd.empty()) << e2;
  std::string etc2 = s_ + "/state/deploy/" + nd + "/etc";
  EXPECT_EQ(must("getfattr --only-values -n user.note " + Q(etc2 + "/a")), "mine");
  EXPECT_EQ(must("getfattr --only-values -n security.selinux " + Q(etc2 + "/sub/c")),
            "system_u:object_r:etc_t:s0");
  EXPECT_EQ(read_file(etc2 + "/b"), "b2\n");
  // A local xattr on a file the next image changes: a conflict, nothing staged.
  must("setfattr -n user.note -v mine " + Q(etc2 + "/b"));
  write_file(d_ + "/mountinfo", "30 1 0:30 / / ro - overlay composefs:" + nd + " ro\n");
  must("cd " + Q(root_) + " && echo b3 > etc/b");
  repack();
  r = run(Q(tool("cfsctl")) + " --insecure upgrade --sysroot " + Q(s_) + " --run-dir " +
          Q(d_ + "/run") + " --cmdline /dev/null --mountinfo " + Q(d_ + "/mountinfo"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("/etc/b"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(s_ + "/boot/loader/entries.staged"));
}

TEST_F(Lifecycle, EtcConflictIsRefusedAndNothingWritten) {
  first_install();
  auto dirs = entries();
  ASSERT_EQ(dirs.size(), 1u);
  std::string text = read_file(s_ + "/boot/loader/entries/" + dirs[0]);
  std::string d = text.substr(text.find("composefs.digest=?v1-sha512-12:") + 31, 128);
  write_file(s_ + "/state/deploy/" + d + "/etc/b", "local b\n");
  must("cd " + Q(root_) + " && echo image-b > etc/b");
  repack();
  auto before = must("find " + Q(s_) + " -path '*/composefs' -prune -o -print | sort");
  auto r = cfs("upgrade");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("/etc/b"), std::string::npos) << r.err;
  EXPECT_EQ(must("find " + Q(s_) + " -path '*/composefs' -prune -o -print | sort"), before);
  EXPECT_FALSE(fs::exists(s_ + "/boot/loader/entries.staged"));
}

TEST_F(Lifecycle, KilledAtEveryStepLeavesBootableEntries) {
  first_install();
  must("cd " + Q(root_) + " && echo b2 > etc/b && printf KERNEL2 > usr/lib/modules/6.1/vmlinuz");
  repack();
  for (const char* cmd : {"upgrade", "finalize", "rollback"}) {
    int n = 1;
    for (;; ++n) {
      auto r = cfs(cmd, "CFS_DEPLOY_FAIL_AT=" + std::to_string(n));
      std::string when = std::string(cmd) + " killed at step " + std::to_string(n);
      check_bootable(when);
      if (r.status == 0) break;
      ASSERT_EQ(r.status, 99) << when << ": " << r.err;
      ASSERT_LT(n, 20) << when;
    }
    EXPECT_GE(n, 3) << cmd << ": too few steps were killed";
  }
  // Done: two entries, the rollback (the first install) first.
  EXPECT_EQ(entries().size(), 2u);
  EXPECT_FALSE(fs::exists(s_ + "/boot/loader/entries.staged"));
}

TEST_F(Lifecycle, InstallToDiskImageFile) {
  for (auto* t : {"sfdisk", "mkfs.vfat", "mkfs.ext4", "losetup", "mcopy", "fsck.vfat", "e2fsck"})
    if (!have_command(t)) GTEST_SKIP() << "needs " << t;
  if (!fs::exists("/usr/lib/systemd/boot/efi/systemd-bootx64.efi"))
    GTEST_SKIP() << "needs systemd-boot-efi";
  if (run("losetup -f").status != 0) GTEST_SKIP() << "no free loop device";
  must("mkdir -p " + Q(root_ + "/var/lib/app") + " && echo state > " + Q(root_ + "/var/lib/app/f"));
  repack();
  std::string disk = d_ + "/disk.img";
  auto r = run(Q(tool("cfsctl")) + " --insecure install to-disk " + Q("oci:" + d_ + "/img:t") +
               " " + Q(disk) + " --esp-size 64M --disk-size 300M");
  ASSERT_EQ(r.status, 0) << r.err;
  std::string dump = must("sfdisk --dump " + Q(disk));
  EXPECT_NE(dump.find("label: gpt"), std::string::npos) << dump;
  EXPECT_NE(dump.find("type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B"), std::string::npos) << dump;
  EXPECT_NE(dump.find("type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"), std::string::npos) << dump;
  // The partitions through loop devices at sfdisk's offsets (no udev here).
  auto field = [&](int n, const std::string& key) {
    std::string line =
        must("sfdisk --dump " + Q(disk) + " | grep '^" + disk + std::to_string(n) + " '");
    auto p = line.find(key + "=");
    return std::stoull(line.substr(p + key.size() + 1));
  };
  auto attach = [&](int n) {
    return must("losetup -f --show -o " + std::to_string(field(n, "start") * 512) +
                " --sizelimit " + std::to_string(field(n, "size") * 512) + " " + Q(disk));
  };
  std::string esp = attach(1), root = attach(2);
  EXPECT_EQ(run("fsck.vfat -n " + esp).status, 0);
  EXPECT_EQ(run("e2fsck -fn " + root).status, 0);
  EXPECT_NE(must("tune2fs -l " + root).find(" verity"), std::string::npos);
  std::string m = d_ + "/mnt", espdir = d_ + "/espcopy";
  fs::create_directories(m);
  fs::create_directories(espdir);
  must("mcopy -s -n -i " + esp + " ::/* " + Q(espdir));
  ASSERT_EQ(run("mount " + root + " " + Q(m)).status, 0);
  EXPECT_TRUE(fs::exists(espdir + "/EFI/BOOT/BOOTX64.EFI"));
  EXPECT_EQ(read_file(espdir + "/loader/loader.conf"), "timeout 5\n");
  std::string meta = read_file(m + "/composefs/meta.json");
  EXPECT_NE(meta.find("sha512"), std::string::npos) << meta;
  EXPECT_EQ(read_file(m + "/state/os/default/var/lib/app/f"), "state\n");
  auto st = run(Q(tool("cfsctl")) + " status --json --sysroot " + Q(m) + " --boot-dir " +
                Q(espdir) + " --cmdline /dev/null --mountinfo /dev/null");
  EXPECT_EQ(st.status, 0) << st.err;
  json all = json::parse(st.out)["status"];
  // Not booted: the one deployment is neither booted nor rollback but listed.
  ASSERT_EQ(all["otherDeployments"].size(), 0u);
  std::string entry = must("ls " + Q(espdir + "/loader/entries"));
  std::string text = read_file(espdir + "/loader/entries/" + entry);
  auto p = text.find("composefs.digest=?v1-sha512-12:");
  ASSERT_NE(p, std::string::npos) << text;
  std::string d = text.substr(p + 31, 128);
  // bootc's order: root setup first, the composefs karg last.
  EXPECT_NE(text.find("options root=UUID="), std::string::npos) << text;
  EXPECT_LT(text.find(" rw "), p) << text;
  EXPECT_TRUE(fs::exists(m + "/state/deploy/" + d + "/" + d + ".origin"));
  EXPECT_TRUE(fs::exists(m + "/composefs/images/" + d));
  // systemd-boot's layout (boot-spec 2.3): the kernel directory in the ESP's EFI/Linux.
  EXPECT_TRUE(fs::exists(espdir + "/EFI/Linux/bootc_composefs-" + d + "/vmlinuz"));
  EXPECT_NE(text.find("linux /EFI/Linux/bootc_composefs-" + d + "/vmlinuz\n"), std::string::npos)
      << text;
  EXPECT_FALSE(fs::exists(espdir + "/bootc_composefs-" + d));
  run("umount " + Q(m));
  run("losetup -d " + esp + " " + root);
}

TEST_F(Lifecycle, InstallToDiskWithBootctl) {
  for (auto* t : {"sfdisk", "mkfs.vfat", "mkfs.ext4", "losetup", "mcopy", "mdir", "bootctl"})
    if (!have_command(t)) GTEST_SKIP() << "needs " << t;
  if (run("losetup -f").status != 0) GTEST_SKIP() << "no free loop device";
  std::string disk = d_ + "/disk.img";
  auto r = run(Q(tool("cfsctl")) + " --insecure install to-disk " + Q("oci:" + d_ + "/img:t") +
               " " + Q(disk) + " --esp-size 64M --disk-size 300M --bootloader bootctl");
  ASSERT_EQ(r.status, 0) << r.err;
  // The ESP (vfat, whether mounted or written through mtools) read with mtools.
  std::string line = must("sfdisk --dump " + Q(disk) + " | grep '^" + disk + "1 '");
  auto p = line.find("start=");
  uint64_t start = std::stoull(line.substr(p + 6)) * 512;
  std::string img = Q(disk) + "@@" + std::to_string(start);
  auto ls = [&](const std::string& dir) { return must("mdir -b -i " + img + " " + Q("::" + dir)); };
  EXPECT_NE(ls("/loader").find("entries.srel"), std::string::npos);  // bootctl's mark
  EXPECT_EQ(ls("/loader").find("random-seed"), std::string::npos);
  EXPECT_NE(ls("/EFI/BOOT").find("BOOTX64.EFI"), std::string::npos);
  EXPECT_NE(ls("/EFI/systemd").find("systemd-bootx64.efi"), std::string::npos);
  EXPECT_NE(ls("/EFI/Linux").find("bootc_composefs-"), std::string::npos);
}

TEST_F(Lifecycle, InstallToFilesystemSignsSystemdBoot) {
  for (auto* t : {"openssl", "sbverify"})
    if (!have_command(t)) GTEST_SKIP() << "needs " << t;
  if (!fs::exists("/usr/lib/systemd/boot/efi/systemd-bootx64.efi"))
    GTEST_SKIP() << "needs systemd-boot-efi";
  make_key("db", "test");
  std::string target = d_ + "/target";
  auto r =
      run(Q(tool("cfsctl")) + " --insecure install to-filesystem " + Q("oci:" + d_ + "/img:t") +
          " " + Q(target) + " --karg quiet" + " --secureboot-private-key " + Q(d_ + "/db.key") +
          " --secureboot-certificate " + Q(d_ + "/db.crt"));
  ASSERT_EQ(r.status, 0) << r.err;
  for (auto* f : {"/boot/EFI/BOOT/BOOTX64.EFI", "/boot/EFI/systemd/systemd-bootx64.efi"})
    EXPECT_EQ(run("sbverify --cert " + Q(d_ + "/db.crt") + " " + Q(target + f)).status, 0) << f;
  // The unsigned original does not verify: the check can fail.
  EXPECT_NE(
      run("sbverify --cert " + Q(d_ + "/db.crt") + " /usr/lib/systemd/boot/efi/systemd-bootx64.efi")
          .status,
      0);
  EXPECT_EQ(fs::read_symlink(target + "/ostree/bootc").string(), "../composefs/bootc");
  // A second install into the same root is refused.
  r = run(Q(tool("cfsctl")) + " --insecure install to-filesystem " + Q("oci:" + d_ + "/img:t") +
          " " + Q(target));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("has deployments already"), std::string::npos) << r.err;
}

// The .auth files against efitools: sig-list-to-certs finds the given
// certificate in the signature list after the authentication header, and
// cert-to-efi-sig-list + sign-efi-sig-list, given the same owner GUID and
// timestamp, make the very same bytes (PKCS#1 v1.5 signatures are
// deterministic).
void check_auth_file(const std::string& dir, const std::string& var, const std::string& key,
                     const std::string& cert) {
  std::string f = dir + "/" + var + ".auth", bytes = read_file(f);
  ASSERT_GT(bytes.size(), 16u + 24u + 28u + 16u) << f;
  auto le32 = [&](size_t at) {
    return uint32_t(uint8_t(bytes[at])) | uint32_t(uint8_t(bytes[at + 1])) << 8 |
           uint32_t(uint8_t(bytes[at + 2])) << 16 | uint32_t(uint8_t(bytes[at + 3])) << 24;
  };
  // EFI_VARIABLE_AUTHENTICATION_2: EFI_TIME, then WIN_CERTIFICATE (dwLength first).
  size_t esl_at = 16 + le32(16);
  ASSERT_LT(esl_at, bytes.size()) << f;
  EXPECT_EQ(bytes.substr(20, 4), std::string("\x00\x02\xf1\x0e", 4)) << "revision 2.0, EFI_GUID";
  std::string esl = dir + "/" + var + ".esl";
  write_file(esl, bytes.substr(esl_at));
  must("cd " + Q(dir) + " && sig-list-to-certs " + Q(esl) + " " + var + "-cert >/dev/null");
  must("openssl x509 -in " + Q(cert) + " -outform DER -out " + Q(dir + "/given.der"));
  EXPECT_EQ(read_file(dir + "/" + var + "-cert-0.der"), read_file(dir + "/given.der")) << var;
  // The owner GUID (after the 28-byte list header) and the time, as text.
  auto hex = [&](size_t at, int n, bool rev) {
    std::string out;
    for (int i = 0; i < n; ++i) {
      uint8_t b = uint8_t(bytes[at + (rev ? n - 1 - i : i)]);
      out += fmt::format("{:02x}", b);
    }
    return out;
  };
  size_t g = esl_at + 28;
  std::string guid = hex(g, 4, true) + "-" + hex(g + 4, 2, true) + "-" + hex(g + 6, 2, true) + "-" +
                     hex(g + 8, 2, false) + "-" + hex(g + 10, 6, false);
  std::string ts =
      fmt::format("{}-{:02}-{:02} {:02}:{:02}:{:02}", uint8_t(bytes[0]) | uint8_t(bytes[1]) << 8,
                  uint8_t(bytes[2]), uint8_t(bytes[3]), uint8_t(bytes[4]), uint8_t(bytes[5]),
                  uint8_t(bytes[6]));
  must("cd " + Q(dir) + " && cert-to-efi-sig-list -g " + guid + " " + Q(cert) +
       " ref.esl && TZ=UTC " + "sign-efi-sig-list -t " + Q(ts) + " -g " + guid + " -k " + Q(key) +
       " -c " + Q(cert) + " " + var + " ref.esl ref-" + var + ".auth >/dev/null");
  EXPECT_EQ(bytes, read_file(dir + "/ref-" + var + ".auth")) << var << " differs from efitools'";
}

TEST_F(Lifecycle, InstallWritesSecureBootEnrolmentFiles) {
  for (auto* t : {"openssl", "sig-list-to-certs", "cert-to-efi-sig-list", "sign-efi-sig-list"})
    if (!have_command(t)) GTEST_SKIP() << "needs " << t << " (efitools)";
  if (!fs::exists("/usr/lib/systemd/boot/efi/systemd-bootx64.efi"))
    GTEST_SKIP() << "needs systemd-boot-efi";
  make_key("sb", "enrol");
  // An image shipping its own keys, as bootc copies them.
  std::string keys = root_ + "/usr/lib/bootc/install/secureboot-keys/vendor";
  fs::create_directories(keys);
  write_file(keys + "/db.auth", "VENDOR-DB");
  write_file(keys + "/README", "not copied");
  repack();
  std::string target = d_ + "/target";
  auto r =
      run(Q(tool("cfsctl")) + " --insecure install to-filesystem " + Q("oci:" + d_ + "/img:t") +
          " " + Q(target) + " --secureboot-private-key " + Q(d_ + "/sb.key") +
          " --secureboot-certificate " + Q(d_ + "/sb.crt") + " --secureboot-enroll mine");
  ASSERT_EQ(r.status, 0) << r.err;
  std::string k = target + "/boot/loader/keys";
  EXPECT_EQ(read_file(k + "/vendor/db.auth"), "VENDOR-DB");
  EXPECT_FALSE(fs::exists(k + "/vendor/README"));
  std::string work = d_ + "/check";
  fs::create_directories(work);
  for (auto* var : {"PK", "KEK", "db"}) {
    ASSERT_TRUE(fs::exists(k + "/mine/" + std::string(var) + ".auth")) << var;
    fs::copy_file(k + "/mine/" + std::string(var) + ".auth", work + "/" + var + ".auth");
    check_auth_file(work, var, d_ + "/sb.key", d_ + "/sb.crt");
  }
  // Another certificate is not what was enrolled: the check can fail.
  make_key("o", "other");
  must("cd " + Q(d_) + " && openssl x509 -in o.crt -outform DER -out o.der");
  EXPECT_NE(read_file(work + "/db-cert-0.der"), read_file(d_ + "/o.der"));
  // Enrolment files without a key are refused.
  r = run(Q(tool("cfsctl")) + " --insecure install to-filesystem " + Q("oci:" + d_ + "/img:t") +
          " " + Q(d_ + "/t2") + " --secureboot-enroll mine");
  EXPECT_NE(r.status, 0);
}

TEST_F(Lifecycle, InstallWithBootctlSignsWhatBootctlInstalled) {
  for (auto* t : {"bootctl", "openssl", "sbverify"})
    if (!have_command(t)) GTEST_SKIP() << "needs " << t << " (systemd-boot, sbsigntool)";
  make_key("db", "test");
  std::string target = d_ + "/target";
  auto r =
      run(Q(tool("cfsctl")) + " --insecure install to-filesystem " + Q("oci:" + d_ + "/img:t") +
          " " + Q(target) + " --bootloader bootctl" + " --secureboot-private-key " +
          Q(d_ + "/db.key") + " --secureboot-certificate " + Q(d_ + "/db.crt"));
  ASSERT_EQ(r.status, 0) << r.err;
  std::string esp = target + "/boot";
  // bootctl's own marks: its loader/entries.srel and loader.conf template.
  EXPECT_TRUE(fs::exists(esp + "/loader/entries.srel"));
  EXPECT_NE(read_file(esp + "/loader/loader.conf"), "timeout 5\n");
  EXPECT_FALSE(fs::exists(esp + "/loader/random-seed"));  // a generic image carries none
  for (auto* f : {"/EFI/BOOT/BOOTX64.EFI", "/EFI/systemd/systemd-bootx64.efi"})
    EXPECT_EQ(run("sbverify --cert " + Q(d_ + "/db.crt") + " " + Q(esp + f)).status, 0) << f;
  // bootctl sees its installation (the directory is no mount: bind it for the check).
  must("mount --bind " + Q(esp) + " " + Q(esp));
  auto st = run("SYSTEMD_RELAX_ESP_CHECKS=1 bootctl --esp-path=" + Q(esp) +
                " --no-variables is-installed");
  run("umount " + Q(esp));
  EXPECT_EQ(st.status, 0) << st.out << st.err;
  EXPECT_EQ(trim(st.out), "yes");
  // The entry: systemd-boot's layout.
  std::string entry = must("ls " + Q(esp + "/loader/entries"));
  std::string text = read_file(esp + "/loader/entries/" + entry);
  EXPECT_NE(text.find("linux /EFI/Linux/bootc_composefs-"), std::string::npos) << text;
}

TEST_F(Lifecycle, EspLayoutUpgradeAndGcOfKernelDirectories) {
  if (!fs::exists("/usr/lib/systemd/boot/efi/systemd-bootx64.efi"))
    GTEST_SKIP() << "needs systemd-boot-efi";
  std::string target = d_ + "/target", esp = target + "/boot";
  auto r = run(Q(tool("cfsctl")) + " --insecure install to-filesystem " +
               Q("oci:" + d_ + "/img:t") + " " + Q(target));
  ASSERT_EQ(r.status, 0) << r.err;
  std::string d1 = trim(r.out).substr(10);
  must("cd " + Q(root_) + " && printf KERNEL2 > usr/lib/modules/6.1/vmlinuz");
  repack();
  std::string a = " --sysroot " + Q(target) + " --boot-dir " + Q(esp) + " --run-dir " +
                  Q(d_ + "/run") + " --cmdline /dev/null --mountinfo /dev/null";
  r = run(Q(tool("cfsctl")) + " --insecure upgrade" + a);
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_EQ(r.out.substr(0, 7), "staged ") << r.out;
  std::string d2 = r.out.substr(7, 128);
  ASSERT_NE(d2, d1);
  r = run(Q(tool("cfsctl")) + " --insecure finalize" + a);
  ASSERT_EQ(r.status, 0) << r.err;
  std::string linux_dir = esp + "/EFI/Linux/bootc_composefs-";
  // The upgrade kept systemd-boot's layout and the first install's options.
  EXPECT_EQ(read_file(linux_dir + d1 + "/vmlinuz"), "KERNEL1");
  for (const auto& e : fs::directory_iterator(esp + "/loader/entries")) {
    std::string text = read_file(e.path());
    EXPECT_NE(text.find("linux /EFI/Linux/bootc_composefs-"), std::string::npos) << text;
  }
  EXPECT_EQ(read_file(linux_dir + d2 + "/vmlinuz"), "KERNEL2");
  // Orphans in both forms bootc reads (a kernel directory, a legacy UKI in
  // EFI/Linux, a UKI in EFI/Linux/bootc) go; the files of entries stay.
  std::string orphan(128, 'e');
  fs::create_directories(linux_dir + orphan);
  write_file(esp + "/EFI/Linux/bootc_composefs-" + orphan + ".efi", "x");
  fs::create_directories(esp + "/EFI/Linux/bootc");
  write_file(esp + "/EFI/Linux/bootc/bootc_composefs-" + orphan + ".efi", "x");
  fs::create_directories(esp + "/EFI/Linux/bootc/bootc_composefs-" + orphan + ".efi.extra.d");
  write_file(esp + "/EFI/Linux/other.efi", "not ours");
  r = run(Q(tool("cfsctl")) + " --insecure deploy-gc" + a);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_FALSE(fs::exists(linux_dir + orphan));
  EXPECT_FALSE(fs::exists(esp + "/EFI/Linux/bootc_composefs-" + orphan + ".efi"));
  EXPECT_FALSE(fs::exists(esp + "/EFI/Linux/bootc/bootc_composefs-" + orphan + ".efi"));
  EXPECT_FALSE(fs::exists(esp + "/EFI/Linux/bootc/bootc_composefs-" + orphan + ".efi.extra.d"));
  EXPECT_TRUE(fs::exists(esp + "/EFI/Linux/other.efi"));
  EXPECT_TRUE(fs::exists(linux_dir + d1 + "/vmlinuz"));
  EXPECT_TRUE(fs::exists(linux_dir + d2 + "/initrd"));
}

// boot-spec 2.10's checklist for producing deployments bootc can read, item
// by item, on a root made by install to-filesystem.  Every expected string
// is spelled here from the spec text (2.1, 2.3, 2.5), not taken from our code.
TEST_F(Lifecycle, InstallToFilesystemMeetsBootcChecklist) {
  if (!fs::exists("/usr/lib/systemd/boot/efi/systemd-bootx64.efi"))
    GTEST_SKIP() << "needs systemd-boot-efi";
  must("mkdir -p " + Q(root_ + "/var/lib/app") + " && echo state > " + Q(root_ + "/var/lib/app/f"));
  repack();
  std::string t = d_ + "/target", esp = t + "/boot";
  auto r = run(Q(tool("cfsctl")) + " --insecure install to-filesystem " +
               Q("oci:" + d_ + "/img:t") + " " + Q(t) + " --karg root=UUID=1234 --karg rw");
  ASSERT_EQ(r.status, 0) << r.err;
  std::string repo = " --insecure --repo " + Q(t + "/composefs");

  // "Use a sha512 repository at <root>/composefs with meta.json (dual V1+V2)".
  std::string meta = read_file(t + "/composefs/meta.json");
  EXPECT_NE(meta.find("fsverity-sha512-12"), std::string::npos) << meta;
  // D: "the fs-verity digest of the boot EROFS"; V1 under the bare key.
  json images = json::parse(must(Q(tool("cfsctl")) + repo + " oci images --json"))["images"];
  ASSERT_EQ(images.size(), 1u);
  std::string manifest = images[0]["manifest_digest"];
  std::string d =
      must(Q(tool("cfsctl")) + repo + " oci compute-id --bootable " + Q("@" + manifest));
  ASSERT_EQ(d.size(), 128u);
  size_t erofs = 0;
  for (const auto& e : fs::directory_iterator(t + "/composefs/images"))
    erofs += e.is_regular_file() && e.path().filename().string().size() == 128;
  EXPECT_GE(erofs, 2u) << "a V1 and a V2 image";

  // "Tag localhost/bootc-<manifest>".
  EXPECT_EQ(images[0]["name"], "localhost/bootc-" + manifest);

  // "Create state/deploy/<D>/{etc/, var->../../os/default/var, <D>.origin}
  // with all three .origin sections and boot.boot_type".
  std::string st = t + "/state/deploy/" + d;
  EXPECT_TRUE(fs::is_directory(st + "/etc"));
  EXPECT_EQ(read_file(st + "/etc/a"), "a\n");
  EXPECT_EQ(fs::read_symlink(st + "/var").string(), "../../os/default/var");
  EXPECT_EQ(read_file(t + "/state/os/default/var/lib/app/f"), "state\n");  // install only
  std::string origin = read_file(st + "/" + d + ".origin");
  EXPECT_NE(origin.find("[origin]\ncontainer-image-reference=ostree-unverified-image:oci:" + d_ +
                        "/img:t\n"),
            std::string::npos)
      << origin;
  EXPECT_NE(origin.find("[boot]\nboot_type=bls\n"), std::string::npos) << origin;
  // boot.digest: "SHA-256 over vmlinuz bytes then initramfs bytes".
  EXPECT_NE(origin.find("digest=" + must("printf KERNEL1INITRD | sha256sum | cut -d' ' -f1")),
            std::string::npos)
      << origin;
  EXPECT_NE(origin.find("[image]\nmanifest_digest=" + manifest + "\n"), std::string::npos)
      << origin;
  EXPECT_EQ(fs::status(st + "/" + d + ".origin").permissions() & fs::perms::all, fs::perms(0644));

  // "Name the boot files with the bootc_composefs- prefix and the BLS
  // entries bootc_<osid>-<ver>-1.conf, with sort-key bootc-<osid>-0" (ID
  // test-os: '-' becomes '_' in the name only; VERSION_ID 1).
  std::string entry = esp + "/loader/entries/bootc_test_os-1-1.conf";
  ASSERT_TRUE(fs::exists(entry)) << must("ls " + Q(esp + "/loader/entries"));
  EXPECT_EQ(must("ls " + Q(esp + "/loader/entries")), "bootc_test_os-1-1.conf");
  // systemd-boot: the kernel directory in the ESP's EFI/Linux, "initrd" not
  // "initramfs.img" (2.3).
  std::string kdir = "/EFI/Linux/bootc_composefs-" + d;
  EXPECT_EQ(read_file(esp + kdir + "/vmlinuz"), "KERNEL1");
  EXPECT_EQ(read_file(esp + kdir + "/initrd"), "INITRD");
  // "Put the composefs karg in options (Type1)": the bare composefs= key
  // (bootc <= 1.16.13) with '?' for an insecure repository, after the
  // root-setup kargs; BLSConfig's line order: title, version, linux,
  // initrd, options, sort-key.
  std::string text = read_file(entry);
  std::string opts_line;
  std::istringstream in(text);
  std::vector<std::string> keys;
  for (std::string line; std::getline(in, line);) {
    keys.push_back(line.substr(0, line.find(' ')));
    if (keys.back() == "options") opts_line = line;
  }
  EXPECT_EQ(keys, (std::vector<std::string>{"title", "version", "linux", "initrd", "options",
                                            "sort-key"}))
      << text;
  EXPECT_NE(text.find("title Test 1\n"), std::string::npos) << text;  // PRETTY_NAME
  EXPECT_NE(text.find("version 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("linux " + kdir + "/vmlinuz\n"), std::string::npos) << text;
  EXPECT_NE(text.find("initrd " + kdir + "/initrd\n"), std::string::npos) << text;
  EXPECT_NE(text.find("sort-key bootc-test-os-0\n"), std::string::npos) << text;
  EXPECT_EQ(opts_line.rfind("options root=UUID=1234 rw ", 0), 0u) << opts_line;
  std::vector<std::string> words;
  std::istringstream ow(opts_line);
  for (std::string w; ow >> w;) words.push_back(w);
  EXPECT_NE(std::find(words.begin(), words.end(), "composefs=?" + d), words.end()) << opts_line;
  // "Emit both forms" for bootc-root-setup.service's condition (2.10, 4.3).
  EXPECT_NE(std::find(words.begin(), words.end(), "composefs.digest=?v1-sha512-12:" + d),
            words.end())
      << opts_line;

  // The rest of the layout 2.1/2.3/2.5 name: the compatibility link,
  // loader.conf "timeout 5", nothing staged.
  EXPECT_EQ(fs::read_symlink(t + "/ostree/bootc").string(), "../composefs/bootc");
  EXPECT_EQ(read_file(esp + "/loader/loader.conf"), "timeout 5\n");
  EXPECT_FALSE(fs::exists(esp + "/loader/entries.staged"));
  EXPECT_FALSE(fs::exists(t + "/run/composefs/staged-deployment"));
  EXPECT_FALSE(fs::exists(st + "/etc/.updated"));
}

TEST_F(Lifecycle, DownloadOnlyStageIsNotFinalized) {
  first_install();
  auto before = entries();
  must("cd " + Q(root_) + " && echo b2 > etc/b");
  repack();
  auto r = cfs("upgrade --download-only");
  ASSERT_EQ(r.status, 0) << r.err;
  json st = status();
  EXPECT_EQ(st["staged"]["downloadOnly"], true);
  r = cfs("finalize");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("locked"), std::string::npos) << r.err;
  EXPECT_EQ(entries(), before);
  EXPECT_TRUE(fs::exists(s_ + "/boot/loader/entries.staged"));
}

TEST_F(Lifecycle, UkiDeployment) {
  if (!have_file(kStub)) GTEST_SKIP() << kStub << " missing (systemd-boot-efi)";
  write_bytes(d_ + "/k", synthetic_kernel("6.1"));
  fs::remove(root_ + "/usr/lib/modules/6.1/vmlinuz");
  fs::create_directories(root_ + "/boot/EFI/Linux");
  repack();
  // The bootable digest, from a scratch repository (/boot is emptied by the
  // boot transformation, so the UKI put there below does not change it).
  std::string scratch = d_ + "/scratch", c = Q(tool("cfsctl")) + " --repo " + Q(scratch);
  must(c + " init --insecure");
  must(c + " oci pull " + Q("oci:" + d_ + "/img:t") + " t");
  std::string id = must(c + " oci compute-id --bootable t");
  ASSERT_EQ(id.size(), 128u);
  auto build = [&](const std::string& digest) {
    must(Q(tool("cfsctl")) + " uki build --linux " + Q(d_ + "/k") + " --initrd " +
         Q(root_ + "/usr/lib/modules/6.1/initramfs.img") +
         " --os-release 'ID=uki-os\nVERSION_ID=7\nNAME=UkiOS' --composefs-hash sha512 "
         "--composefs-digest " +
         digest + " --output " + Q(root_ + "/boot/EFI/Linux/os.efi"));
    repack();
  };
  build(std::string(128, '0'));
  auto r = cfs("switch " + Q("oci:" + d_ + "/img:t"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("wrong composefs karg"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(s_ + "/boot/loader/entries.staged"));

  build(id);
  r = cfs("switch " + Q("oci:" + d_ + "/img:t"));
  ASSERT_EQ(r.status, 0) << r.err;
  r = cfs("finalize");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(entries(), std::vector<std::string>{"bootc_uki_os-7-1.conf"});
  std::string text = read_file(s_ + "/boot/loader/entries/bootc_uki_os-7-1.conf");
  EXPECT_NE(text.find("efi /EFI/Linux/bootc/bootc_composefs-" + id + ".efi\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("sort-key bootc-uki-os-0\n"), std::string::npos) << text;
  EXPECT_EQ(read_file(s_ + "/boot/EFI/Linux/bootc/bootc_composefs-" + id + ".efi"),
            read_file(root_ + "/boot/EFI/Linux/os.efi"));
  // Status: the UKI stem names the deployment.
  write_file(d_ + "/mountinfo", "30 1 0:30 / / ro - overlay composefs:" + id + " ro\n");
  r = run(Q(tool("cfsctl")) + " status --json --sysroot " + Q(s_) + " --run-dir " + Q(d_ + "/run") +
          " --cmdline /dev/null --mountinfo " + Q(d_ + "/mountinfo"));
  ASSERT_EQ(r.status, 0) << r.err;
  json st = json::parse(r.out)["status"];
  EXPECT_EQ(st["booted"]["composefs"]["verity"], id);
  EXPECT_EQ(st["booted"]["composefs"]["bootType"], "uki");
  // bootDigest: sha256 of the UKI's .linux then .initrd, the sections as
  // objcopy (binutils) extracts them.
  if (have_command("objcopy")) {
    std::string uki = Q(root_ + "/boot/EFI/Linux/os.efi");
    must("cd " + Q(d_) + " && objcopy -O binary --only-section=.linux " + uki +
         " lx && objcopy -O binary --only-section=.initrd " + uki + " ir");
    EXPECT_EQ(st["booted"]["composefs"]["bootDigest"],
              must("cd " + Q(d_) + " && cat lx ir | sha256sum | cut -d' ' -f1"));
  }
}

}  // namespace
}  // namespace cfs::test
