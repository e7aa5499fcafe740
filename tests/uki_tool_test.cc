// SPDX-License-Identifier: Apache-2.0
// cfsctl uki: building, sealing, signing, inspecting and measuring through
// the command line, checked with sbverify, systemd-measure and our reader.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "composefs-cpp/base/hex.h"
#include "composefs-cpp/boot/cmdline.h"
#include "composefs-cpp/pe/pcr.h"
#include "composefs-cpp/pe/reader.h"
#include "composefs-cpp/pe/uki.h"
#include "pe_util.h"

using namespace cfs;
using namespace cfs::test;
using json = nlohmann::json;

namespace {

const std::string kV1(128, 'a');
const std::string kV2(128, 'b');

class UkiTool : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_file(kStub)) GTEST_SKIP() << kStub << " missing (systemd-boot-efi)";
    write_bytes(t_ / "vmlinuz", synthetic_kernel("6.99.1-cli"));
    write_file(t_ / "os-release", "PRETTY_NAME=\"CLI OS\"\nVERSION_ID=7\n");
    write_bytes(t_ / "initrd", pattern(999, 3));
  }
  CommandResult cfsctl(const std::string& args) { return run(tool("cfsctl") + " " + args); }
  std::string base() {
    return "uki build --linux " + shell_quote(t_ / "vmlinuz") + " --initrd " +
           shell_quote(t_ / "initrd") + " --os-release @" + shell_quote(t_ / "os-release");
  }
  json inspect(const std::string& file) {
    auto r = cfsctl("uki inspect --json " + shell_quote(file));
    EXPECT_EQ(r.status, 0) << r.err;
    return json::parse(r.out);
  }
  TempDir t_;
};

}  // namespace

TEST_F(UkiTool, BuildSealsBothFormsByDefault) {
  auto r = cfsctl(base() + " --cmdline 'rw quiet' --composefs-digest " + kV1 + " --output " +
                  shell_quote(t_ / "uki.efi"));
  ASSERT_EQ(r.status, 0) << r.err;
  json j = inspect(t_ / "uki.efi");
  EXPECT_EQ(j["type"], "uki");
  EXPECT_EQ(j["cmdline"],
            "composefs.digest=v1-sha512-12:" + kV1 + " composefs=" + kV1 + " rw quiet");
  EXPECT_EQ(j["composefs"]["sha512"]["version"], 1);
  EXPECT_EQ(j["composefs"]["sha512"]["digest"], kV1);
  EXPECT_EQ(j["composefs"]["setup_root"].size(), 2u);
  EXPECT_EQ(j["uname"], "6.99.1-cli");  // detected from the kernel's setup header
  EXPECT_EQ(j["label"], "CLI OS 7");
  EXPECT_EQ(j["stub_version"], 252);
  EXPECT_EQ(j["signatures"], 0);
  std::vector<std::string> names;
  for (const auto& s : j["sections"]) names.push_back(s["name"]);
  EXPECT_EQ(names.back(), ".sbat");
  EXPECT_EQ(names[names.size() - 2], ".linux");
  // The human-readable form says the same.
  auto h = cfsctl("uki inspect " + shell_quote(t_ / "uki.efi"));
  EXPECT_NE(h.out.find("composefs (sha512): V1 " + kV1), std::string::npos) << h.out;
}

TEST_F(UkiTool, KargFormsDualAndInsecure) {
  struct Case {
    std::string args, cmdline;
  };
  const Case cases[] = {
      {"--composefs-digest " + kV1 + " --composefs-karg digest",
       "composefs.digest=v1-sha512-12:" + kV1},
      {"--composefs-digest " + kV1 + " --composefs-karg legacy", "composefs=" + kV1},
      {"--composefs-digest " + kV1 + " --composefs-digest-v2 " + kV2,
       "composefs.digest=v1-sha512-12:" + kV1 + " composefs=" + kV2},
      {"--composefs-digest '?" + kV1 + "'",
       "composefs.digest=?v1-sha512-12:" + kV1 + " composefs=?" + kV1},
      {"--composefs-digest v1-sha256-12:" + std::string(64, 'c') + " --composefs-insecure",
       "composefs.digest=?v1-sha256-12:" + std::string(64, 'c') + " composefs=?" +
           std::string(64, 'c')},
  };
  for (const auto& c : cases) {
    auto r = cfsctl(base() + " " + c.args + " --output " + shell_quote(t_ / "k.efi"));
    ASSERT_EQ(r.status, 0) << c.args << ": " << r.err;
    EXPECT_EQ(inspect(t_ / "k.efi")["cmdline"], c.cmdline) << c.args;
  }
}

// --composefs-from seals the digest cfsctl compute-karg gives the same tree.
TEST_F(UkiTool, SealsTheBootableDigestOfADirectory) {
  std::string root = t_ / "root";
  ASSERT_EQ(run("mkdir -p " + shell_quote(root) + "/usr/bin " + shell_quote(root) + "/boot " +
                shell_quote(root) + "/sysroot && echo x > " + shell_quote(root) + "/usr/bin/x")
                .status,
            0);
  for (std::string hash : {"sha512", "sha256"}) {
    auto k = cfsctl("--no-repo --hash " + hash + " compute-karg " + shell_quote(root));
    ASSERT_EQ(k.status, 0) << k.err;
    auto r = cfsctl(base() + " --composefs-from " + shell_quote(root) + " --composefs-hash " +
                    hash + " --composefs-karg digest --output " + shell_quote(t_ / "d.efi"));
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(inspect(t_ / "d.efi")["cmdline"], trim(k.out));
  }
}

TEST_F(UkiTool, Refusals) {
  std::string out = " --output " + shell_quote(t_ / "x.efi");
  struct Case {
    std::string args, expect;
  };
  const Case cases[] = {
      {"--composefs-from " + t_.path(), "\"usr\" does not exist"},
      {"--composefs-from oci:fedora", "needs its repository"},
      {"--composefs-from " + t_.path() + " --composefs-digest " + kV1, "exclude each other"},
      {"--composefs-digest abc", "64 (sha256) or 128 (sha512)"},
      {"--composefs-digest " + std::string(127, 'a') + "g", "not hex"},
      {"--composefs-digest v2-sha512-12:" + kV1, "--composefs-digest-v2"},
      {"--composefs-digest v1-sha512-13:" + kV1, "unsupported"},
      {"--composefs-digest " + kV1 + " --composefs-digest-v2 " + std::string(64, 'b'),
       "different hashes"},
      {"--composefs-digest " + kV1 + " --cmdline 'composefs=" + kV2 + "'",
       "already has a composefs karg"},
      {"--stub " + shell_quote(t_ / "missing"), "missing"},
      {"--stub " + shell_quote(t_ / "initrd"), "e_magic"},
      {"--secureboot-private-key " + shell_quote(t_ / "initrd"), "go together"},
  };
  for (const auto& c : cases) {
    auto r = cfsctl(base() + " " + c.args + out);
    EXPECT_EQ(r.status, 1) << c.args;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.args << ": " << r.err;
    EXPECT_FALSE(have_file(t_ / "x.efi")) << c.args << " left an output";
  }
  auto r = cfsctl("uki build --output " + shell_quote(t_ / "x.efi"));
  EXPECT_EQ(r.status, 2);  // --linux is required
}

TEST_F(UkiTool, SignedBuildAddonAndSystemdBootVerify) {
  if (!have_command("sbverify")) GTEST_SKIP() << "sbverify missing (sbsigntool)";
  ASSERT_TRUE(make_test_key(t_.path(), "cli db"));
  std::string keys = " --secureboot-private-key " + shell_quote(t_ / "key.pem") +
                     " --secureboot-certificate " + shell_quote(t_ / "cert.pem");
  auto r = cfsctl(base() + " --composefs-digest " + kV1 + keys + " --output " +
                  shell_quote(t_ / "s.efi"));
  ASSERT_EQ(r.status, 0) << r.err;
  r = cfsctl("uki addon --cmdline 'debug' --initrd " + shell_quote(t_ / "initrd") + keys +
             " --output " + shell_quote(t_ / "dbg.addon.efi"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err.find("*.addon.efi"), std::string::npos);
  json a = inspect(t_ / "dbg.addon.efi");
  EXPECT_EQ(a["type"], "addon");
  EXPECT_EQ(a["cmdline"], "debug");
  r = cfsctl("uki addon --cmdline x --output " + shell_quote(t_ / "wrong.efi"));
  EXPECT_NE(r.err.find("*.addon.efi"), std::string::npos) << r.err;
  std::vector<std::string> files{t_ / "s.efi", t_ / "dbg.addon.efi"};
  if (have_file(kSystemdBoot)) {
    r = cfsctl("uki sign " + shell_quote(kSystemdBoot) + keys + " --output " +
               shell_quote(t_ / "BOOTX64.EFI"));
    ASSERT_EQ(r.status, 0) << r.err;
    files.push_back(t_ / "BOOTX64.EFI");
  }
  for (const auto& f : files) {
    auto v = run("sbverify --cert " + shell_quote(t_ / "cert.pem") + " " + shell_quote(f));
    EXPECT_EQ(v.status, 0) << f << ": " << v.out << v.err;
    auto ours = cfsctl("uki verify " + shell_quote(f) + " --secureboot-certificate " +
                       shell_quote(t_ / "cert.pem"));
    EXPECT_EQ(ours.status, 0) << ours.err;
    EXPECT_EQ(inspect(f)["signatures"], 1);
  }
  // Signing in place adds a second signature.
  ASSERT_EQ(cfsctl("uki sign " + shell_quote(t_ / "s.efi") + keys).status, 0);
  EXPECT_EQ(inspect(t_ / "s.efi")["signatures"], 2);
  EXPECT_EQ(run("sbverify --cert " + shell_quote(t_ / "cert.pem") + " " + shell_quote(t_ / "s.efi"))
                .status,
            0);
}

TEST_F(UkiTool, PcrSignedPolicyAndPrediction) {
  const char* measure = "/lib/systemd/systemd-measure";
  if (!have_file(measure)) GTEST_SKIP() << measure << " missing";
  ASSERT_EQ(run("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out " +
                shell_quote(t_ / "pcr.key"))
                .status,
            0);
  auto r = cfsctl(base() + " --composefs-digest " + kV1 + " --pcr-private-key " +
                  shell_quote(t_ / "pcr.key") +
                  " --pcr-banks sha256,sha1 --phases enter-initrd --phases "
                  "enter-initrd:leave-initrd --measure --output " +
                  shell_quote(t_ / "p.efi"));
  ASSERT_EQ(r.status, 0) << r.err;
  Bytes uki = read_bytes(t_ / "p.efi");
  auto pe = pe::PeFile::parse(uki);
  ASSERT_TRUE(pe);
  ASSERT_NE(pe->find(".pcrpkey"), nullptr);
  ASSERT_NE(pe->find(".pcrsig"), nullptr);
  EXPECT_EQ(pe->sections().back().name, ".pcrsig");  // added after measuring
  // systemd-measure on the UKI's own section bytes gives the values the
  // policies were signed for.
  std::string args;
  for (const char* n : {".linux", ".osrel", ".cmdline", ".initrd", ".pcrpkey"}) {
    auto d = pe->data(*pe->find(n));
    write_bytes(t_ / (std::string("s") + n), Bytes(d.begin(), d.end()));
    args += std::string(" --") + (n + 1) + "=" + shell_quote(t_ / (std::string("s") + n));
  }
  auto m = run(std::string(measure) +
               " calculate --json=short --bank=sha256 --bank=sha1 --phase=enter-initrd "
               "--phase=enter-initrd:leave-initrd" +
               args);
  ASSERT_EQ(m.status, 0) << m.err;
  json calc = json::parse(m.out);
  json sig = json::parse(*pe::text_section(*pe, ".pcrsig"));
  for (const char* bank : {"sha256", "sha1"}) {
    ASSERT_EQ(sig[bank].size(), 2u) << bank;
    for (size_t i = 0; i < 2; i++) {
      std::string value = calc[bank][i]["hash"];
      auto pol = pe::policy_pcr(pe::Digest256{}, *pe::parse_bank(bank), {11}, *from_hex(value));
      EXPECT_EQ(sig[bank][i]["pol"], to_hex(pol)) << bank << " " << calc[bank][i]["phase"];
      // --measure printed the same values.
      EXPECT_NE(r.out.find(std::string("11:") + bank + "=" + value), std::string::npos) << r.out;
    }
  }
  // cfsctl uki pcr11 reads them back from the built UKI, as systemd-measure
  // --json prints them (the .pcrsig section is not measured).
  auto p = cfsctl(
      "uki pcr11 --json --pcr-banks sha256,sha1 --phases enter-initrd --phases "
      "enter-initrd:leave-initrd " +
      shell_quote(t_ / "p.efi"));
  ASSERT_EQ(p.status, 0) << p.err;
  EXPECT_EQ(json::parse(p.out), calc);
  // For a newer stub (253+), .uname and .sbat count too: the values differ.
  auto newer =
      cfsctl("uki pcr11 --json --pcr-banks sha256 --stub-version 255 " + shell_quote(t_ / "p.efi"));
  ASSERT_EQ(newer.status, 0);
  EXPECT_NE(json::parse(newer.out)["sha256"][0]["hash"], calc["sha256"][0]["hash"]);
}
