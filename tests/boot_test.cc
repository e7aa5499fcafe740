// SPDX-License-Identifier: Apache-2.0
// The boot transformation's library parts on trees parsed from dump files:
// boot-resource discovery (composefs-rs bootloader.rs, boot-spec 1.7),
// emptying /boot and /sysroot (1.5, composefs-rs #396 and 0.9.0's rule),
// and what happens to hardlinks whose inode lived there.  The expected
// trees are written out as dumps by hand from those rules.
#include <gtest/gtest.h>

#include <string>

#include "composefs-cpp/boot/resources.h"
#include "composefs-cpp/boot/transform.h"
#include "composefs-cpp/dump/dump.h"
#include "composefs-cpp/erofs/writer.h"

namespace cfs {
namespace {

std::string esc(std::string_view s) { return dump::escape(s, dump::kEscapeStandard); }

std::string dir(std::string_view path, std::string_view mtime = "0.0",
                std::string_view xattrs = "") {
  return fmt::format("{} 0 40755 2 0 0 0 {} - - -{}{}\n", path, mtime, xattrs.empty() ? "" : " ",
                     xattrs);
}
std::string file(std::string_view path, std::string_view data) {
  return fmt::format("{} {} 100644 1 0 0 0 0.0 - {} -\n", path, data.size(), esc(data));
}
constexpr std::string_view kDigest =
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
std::string external(std::string_view path, uint32_t nlink) {
  return fmt::format("{} 100 100644 {} 0 0 0 0.0 {}/{} - {}\n", path, nlink, kDigest.substr(0, 2),
                     kDigest.substr(2), kDigest);
}
std::string link(std::string_view path, std::string_view target) {
  return fmt::format("{} 0 @100644 0 0 0 0 0.0 {} - -\n", path, target);
}

Tree parse(const std::string& text) {
  auto t = dump::parse(text);
  if (!t) ADD_FAILURE() << t.error().message() << "\n" << text;
  return t ? std::move(*t) : Tree();
}

// A tree with every kind of boot resource, in an order that is not the
// discovery order.
std::string boot_tree() {
  std::string s;
  s += dir("/");
  s += dir("/boot", "200.123");
  s += dir("/boot/EFI");
  s += dir("/boot/EFI/Linux");
  s += file("/boot/EFI/Linux/a.efi", "uki-a");
  s += dir("/boot/EFI/Linux/a.efi.extra.d");
  s += file("/boot/EFI/Linux/a.efi.extra.d/x.addon.efi", "addon");
  s += file("/boot/EFI/Linux/readme.txt", "not a PE");
  s += external("/boot/k", 1);
  s += dir("/boot/loader");
  s += dir("/boot/loader/addons");
  s += file("/boot/loader/addons/g.addon.efi", "global");
  s += dir("/boot/loader/entries");
  s += file("/boot/loader/entries/a.conf", "title A\nlinux /boot/k\noptions rw\n");
  s += file("/boot/loader/entries/b.conf",
            "title B\nlinux /usr/lib/modules/6.1/vmlinuz\ninitrd "
            "/usr/lib/modules/6.1/initramfs.img\n");
  s += file("/boot/loader/entries/c.txt", "linux /nonexistent\n");
  s += dir("/sysroot", "1.5");
  s += dir("/sysroot/ostree");
  s += dir("/usr", "300.456");
  s += dir("/usr/lib");
  s += dir("/usr/lib/modules");
  s += dir("/usr/lib/modules/6.1");
  s += file("/usr/lib/modules/6.1/initramfs.img", "initrd");
  s += file("/usr/lib/modules/6.1/u.efi", "uki-u");
  s += file("/usr/lib/modules/6.1/vmlinuz", "kernel");
  s += dir("/usr/lib/modules/6.2");  // no vmlinuz: no entry
  s += file("/usr/lib/os-release", "ID=test\n");
  return s;
}

TEST(BootResources, FoundInComposefsRsOrder) {
  Tree t = parse(boot_tree());
  auto r = boot::get_boot_resources(t, nullptr);
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_EQ(r->size(), 7u);
  auto& a = std::get<boot::Type1Entry>((*r)[0]);
  EXPECT_EQ(a.filename, "a.conf");
  EXPECT_EQ(a.value("linux"), "/boot/k");
  ASSERT_EQ(a.files.count("/boot/k"), 1u);
  EXPECT_EQ(a.files.at("/boot/k").digest->hex(), kDigest);
  auto& b = std::get<boot::Type1Entry>((*r)[1]);
  EXPECT_EQ(b.filename, "b.conf");
  EXPECT_EQ(b.files.at("/usr/lib/modules/6.1/initramfs.img").content, "initrd");
  std::vector<std::tuple<std::string, boot::PeType, std::optional<std::string>>> pes;
  for (size_t i = 2; i < 6; i++) {
    auto& e = std::get<boot::Type2Entry>((*r)[i]);
    pes.emplace_back(e.file_path, e.pe_type, e.kver);
  }
  using P = boot::PeType;
  decltype(pes) want{{"a.efi", P::Uki, std::nullopt},
                     {"a.efi.extra.d/x.addon.efi", P::UkiAddon, std::nullopt},
                     {"g.addon.efi", P::GlobalUkiAddon, std::nullopt},
                     {"u.efi", P::Uki, "6.1"}};
  EXPECT_EQ(pes, want);
  auto& v = std::get<boot::VmlinuzEntry>((*r)[6]);
  EXPECT_EQ(v.kver, "6.1");
  EXPECT_EQ(v.vmlinuz.content, "kernel");
  ASSERT_TRUE(v.initramfs);
  EXPECT_EQ(v.initramfs->path, "/usr/lib/modules/6.1/initramfs.img");
}

TEST(BootResources, BadEntriesAreErrors) {
  // An entry naming a file the image lacks, a .conf that is a directory, an
  // .efi that is a symlink: composefs-rs refuses each.
  std::string base = dir("/") + dir("/boot") + dir("/boot/loader") + dir("/boot/loader/entries");
  auto err = [](const std::string& text) {
    Tree t = parse(text);
    auto r = boot::get_boot_resources(t, nullptr);
    return r ? std::string("(no error)") : r.error().message();
  };
  EXPECT_NE(err(base + file("/boot/loader/entries/x.conf", "linux /vmlinuz\n")).find("/vmlinuz"),
            std::string::npos);
  EXPECT_NE(err(base + dir("/boot/loader/entries/d.conf")).find("is a directory"),
            std::string::npos);
  EXPECT_NE(err(dir("/") + dir("/boot") + dir("/boot/EFI") + dir("/boot/EFI/Linux") +
                "/boot/EFI/Linux/l.efi 3 120777 1 0 0 0 0.0 x.efi - -\n")
                .find("not a regular file"),
            std::string::npos);
}

TEST(BootResources, AddCmdline) {
  boot::Type1Entry e;
  e.lines = {"title x", "options root=/dev/sda quiet", "options second"};
  e.add_cmdline("composefs=abc");
  e.add_cmdline("root=UUID=1");
  e.add_cmdline("quiet");
  EXPECT_EQ(e.text(), "title x\noptions root=UUID=1 quiet composefs=abc\noptions second\n");
  boot::Type1Entry n;
  n.lines = {"title y"};
  n.add_cmdline("rw");
  EXPECT_EQ(n.text(), "title y\noptions rw\n");
}

TEST(BootTransform, EmptiesBootAndSysrootWithUsrMtime) {
  for (auto rule : {boot::MtimeRule::WithNanoseconds, boot::MtimeRule::SecondsOnly}) {
    Tree t = parse(boot_tree());
    ASSERT_TRUE(boot::empty_toplevel_dirs(t, {rule}));
    const Node* b = t.lookup("/boot");
    const Node* s = t.lookup("/sysroot");
    ASSERT_TRUE(b && s);
    EXPECT_TRUE(b->children.empty());
    EXPECT_TRUE(s->children.empty());
    EXPECT_EQ(b->mtime_sec, 300);
    EXPECT_EQ(s->mtime_sec, 300);
    // #396 copies the nanoseconds too; 0.9.0 left the directories' own.
    bool nsec = rule == boot::MtimeRule::WithNanoseconds;
    EXPECT_EQ(b->mtime_nsec, nsec ? 456u : 123u);
    EXPECT_EQ(s->mtime_nsec, nsec ? 456u : 5u);
    EXPECT_EQ(b->mode & 07777, 0755u);
  }
}

TEST(BootTransform, MissingDirectoriesAreNamed) {
  for (std::string missing : {"boot", "sysroot", "usr"}) {
    std::string s = dir("/");
    for (std::string d : {"boot", "sysroot", "usr"})
      if (d != missing) s += dir("/" + d);
    Tree t = parse(s);
    auto st = boot::empty_toplevel_dirs(t);
    ASSERT_FALSE(st) << missing;
    EXPECT_NE(st.error().message().find("/" + missing + " does not exist"), std::string::npos)
        << st.error().message();
  }
}

// An inode whose first path is below /boot lives on at its first remaining
// path, with one link fewer per entry removed: the image is the one of the
// tree that never had the /boot entries.
TEST(BootTransform, HardlinksIntoBootAreRehomed) {
  std::string top = dir("/") + dir("/boot") + dir("/boot/sub");
  std::string rest = dir("/sysroot") + dir("/usr") + dir("/usr/a") + dir("/usr/b");
  Tree t = parse(top + external("/boot/k", 4) + link("/boot/sub/k2", "/boot/k") + rest +
                 link("/usr/a/k", "/boot/k") + link("/usr/b/k", "/boot/k") + external("/usr/z", 2) +
                 link("/sysroot/z", "/usr/z"));
  ASSERT_TRUE(boot::empty_toplevel_dirs(t));
  Tree want = parse(dir("/") + dir("/boot") + dir("/sysroot") + dir("/usr") + dir("/usr/a") +
                    external("/usr/a/k", 2) + dir("/usr/b") + link("/usr/b/k", "/usr/a/k") +
                    external("/usr/z", 1));
  EXPECT_EQ(dump::to_string(t), dump::to_string(want));
  for (uint32_t v : {0u, 1u, 2u}) {
    auto got = erofs::build_image(t, v);
    auto exp = erofs::build_image(want, v);
    ASSERT_TRUE(got && exp);
    EXPECT_EQ(*got, *exp) << "format " << v;
  }
}

TEST(BootTransform, SubsecondMtimesAreListed) {
  Tree t = parse(dir("/") + dir("/boot", "1.5") + dir("/etc", "1.5") + dir("/etc/x", "1.0") +
                 "/etc/y 0 100644 1 0 0 0 3.000000001 - - -\n" + dir("/usr", "7.25") +
                 dir("/sysroot", "1.0"));
  size_t total = 0;
  auto p = boot::subsecond_mtimes(t, 2, &total);
  EXPECT_EQ(p, (std::vector<std::string>{"/etc", "/etc/y"}));
  EXPECT_EQ(total, 3u);
}

TEST(BootTransform, XattrModeNames) {
  for (auto m : boot::kXattrModes) EXPECT_EQ(*boot::parse_xattr_mode(boot::xattr_mode_name(m)), m);
  EXPECT_FALSE(boot::parse_xattr_mode("all"));
}

}  // namespace
}  // namespace cfs
