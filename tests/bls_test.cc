// SPDX-License-Identifier: Apache-2.0
// Type 1 entries as bootc writes them and composefs-rs relocates them.  The
// expected strings are boot-spec 2.3's (bootc's BLSConfig order and names)
// and 1.7's (relocate), and the UAPI Boot Loader Specification's
// boot-counting examples (3.9: "foo+3.conf", "foo+0-3.efi").
#include "composefs-cpp/boot/bls.h"

#include <gtest/gtest.h>

#include "composefs-cpp/boot/resources.h"
#include "composefs-cpp/deploy/write_boot.h"

namespace cfs {
namespace {

TEST(Bls, ParseAnyOrderWithComments) {
  auto e = boot::bls::parse(
      "# written by hand\n"
      "options root=UUID=1 rw composefs=abc\n"
      "sort-key bootc-fedora-0\n"
      "  initrd /bootc_composefs-abc/initrd\n"
      "linux\t/bootc_composefs-abc/vmlinuz\n"
      "custom-key some value  \n"
      "\n"
      "title Fedora Linux 42\n"
      "version 42\n");
  ASSERT_TRUE(e) << e.error().message();
  EXPECT_EQ(e->title, "Fedora Linux 42");
  EXPECT_EQ(e->linux, "/bootc_composefs-abc/vmlinuz");
  ASSERT_EQ(e->initrd.size(), 1u);
  EXPECT_EQ(e->options, "root=UUID=1 rw composefs=abc");
  ASSERT_EQ(e->extra.size(), 1u);
  EXPECT_EQ(e->extra[0].first, "custom-key");
  EXPECT_EQ(e->extra[0].second, "some value");
  auto text = boot::bls::write(*e);
  ASSERT_TRUE(text);
  EXPECT_EQ(*text,
            "title Fedora Linux 42\n"
            "version 42\n"
            "linux /bootc_composefs-abc/vmlinuz\n"
            "initrd /bootc_composefs-abc/initrd\n"
            "options root=UUID=1 rw composefs=abc\n"
            "sort-key bootc-fedora-0\n"
            "custom-key some value\n");
  // What it writes reads back the same.
  auto again = boot::bls::parse(*text);
  ASSERT_TRUE(again);
  EXPECT_EQ(*boot::bls::write(*again), *text);
}

TEST(Bls, EfiAndUkiKeys) {
  auto e = boot::bls::parse(
      "uki /EFI/Linux/bootc/bootc_composefs-abc.efi\ntitle T\n"
      "machine-id 0123\nsort-key bootc-os-1\n");
  ASSERT_TRUE(e) << e.error().message();
  EXPECT_EQ(e->efi_key, "uki");
  EXPECT_EQ(*boot::bls::write(*e),
            "title T\nuki /EFI/Linux/bootc/bootc_composefs-abc.efi\nmachine-id 0123\n"
            "sort-key bootc-os-1\n");
  e->efi_key = "efi";
  EXPECT_EQ(*boot::bls::write(*e),
            "title T\nefi /EFI/Linux/bootc/bootc_composefs-abc.efi\nmachine-id 0123\n"
            "sort-key bootc-os-1\n");
}

TEST(Bls, LinuxWithEfiIsRejected) {
  auto e = boot::bls::parse("title x\nlinux /vmlinuz\nefi /x.efi\n");
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().message().find("both linux and efi"), std::string::npos);
  EXPECT_FALSE(boot::bls::parse("title x\nlinux /v\nuki /x.efi\n"));
  EXPECT_FALSE(boot::bls::parse("title x\noptions rw\n"));
  EXPECT_FALSE(boot::bls::parse("title\nlinux /v\n"));
  boot::bls::Entry w;
  w.linux = "/v";
  w.efi = "/x.efi";
  EXPECT_FALSE(boot::bls::write(w));
}

TEST(Bls, BootcNames) {
  EXPECT_EQ(boot::bls::bootc_entry_filename("fedora-coreos", "42.20250101", true),
            "bootc_fedora_coreos-42.20250101-1.conf");
  EXPECT_EQ(boot::bls::bootc_entry_filename("fedora-coreos", "42.20250101", false),
            "bootc_fedora_coreos-42.20250101-0.conf");
  EXPECT_EQ(boot::bls::bootc_sort_key("fedora-coreos", true), "bootc-fedora-coreos-0");
  EXPECT_EQ(boot::bls::bootc_sort_key("fedora-coreos", false), "bootc-fedora-coreos-1");
  EXPECT_EQ(boot::bls::bootc_kernel_dir("ab12") + "/vmlinuz", "bootc_composefs-ab12/vmlinuz");
}

TEST(Bls, BootCountingSuffixes) {
  EXPECT_EQ(boot::bls::strip_boot_counting("foo+3.conf"), "foo.conf");
  EXPECT_EQ(boot::bls::strip_boot_counting("foo+0-3.efi"), "foo.efi");
  EXPECT_EQ(boot::bls::strip_boot_counting("foo.conf"), "foo.conf");
  EXPECT_EQ(boot::bls::strip_boot_counting("c++.conf"), "c++.conf");
  EXPECT_EQ(boot::bls::strip_boot_counting("a+b-1.conf"), "a+b-1.conf");
  // Only the last "+N[-M]" is a counter (systemd-boot reads entry "a+3.conf").
  EXPECT_EQ(boot::bls::strip_boot_counting("a+3+3.conf"), "a+3.conf");
  EXPECT_TRUE(boot::bls::same_entry("bootc_os-1-1+2-1.conf", "bootc_os-1-1.conf"));
  EXPECT_FALSE(boot::bls::same_entry("bootc_os-1-1.conf", "bootc_os-1-0.conf"));
}

TEST(Bls, RelocateType1Entry) {
  boot::Type1Entry e;
  e.filename = "fedora-6.1.conf";
  e.lines = {"title Fedora", "linux /6.1/vmlinuz", "initrd /6.1/initramfs.img", "options quiet"};
  e.files["/6.1/vmlinuz"].path = "/6.1/vmlinuz";
  e.files["/6.1/initramfs.img"].path = "/6.1/initramfs.img";
  boot::Type1Entry sub = e;
  e.relocate(std::nullopt, "example");
  EXPECT_EQ(e.filename, "example.conf");
  EXPECT_EQ(e.text(),
            "title Fedora\nlinux /example/vmlinuz\ninitrd /example/initramfs.img\noptions quiet\n");
  ASSERT_EQ(e.files.count("/example/vmlinuz"), 1u);
  EXPECT_EQ(e.files["/example/vmlinuz"].path, "/6.1/vmlinuz");  // still the image's file
  EXPECT_EQ(e.files.count("/6.1/vmlinuz"), 0u);
  sub.relocate("boot", "x");
  EXPECT_EQ(sub.text(),
            "title Fedora\nlinux /boot/x/vmlinuz\ninitrd /boot/x/initramfs.img\noptions quiet\n");
  EXPECT_EQ(sub.files.size(), 2u);
}

// boot-spec 1.8 step 3: V1-only repositories get composefs.digest=v1-...,
// every other one (dual V1+V2 included, with the V1 id) composefs=.
TEST(PrepareBootKarg, FollowsTheRepositoryFormats) {
  auto id = fsverity::Digest::from_hex(std::string(64, 'a'));
  ASSERT_TRUE(id);
  std::string hex(64, 'a');
  using FC = repository::FormatConfig;
  auto alg = fsverity::HashAlg::Sha256;
  EXPECT_EQ(boot::prepare_boot_karg(FC{1, {}}, alg, *id, false),
            "composefs.digest=v1-sha256-12:" + hex);
  EXPECT_EQ(boot::prepare_boot_karg(FC{1, {}}, alg, *id, true),
            "composefs.digest=?v1-sha256-12:" + hex);
  EXPECT_EQ(boot::prepare_boot_karg(FC{1, {2}}, alg, *id, false), "composefs=" + hex);
  EXPECT_EQ(boot::prepare_boot_karg(FC{2, {}}, alg, *id, true), "composefs=?" + hex);
}

}  // namespace
}  // namespace cfs
