// SPDX-License-Identifier: Apache-2.0
// PCR 11 prediction against systemd-measure (Debian 12's, v252) on the
// sections of UKIs we build, the PolicyPCR digest against systemd's
// test-tpm2.c vector, and .pcrsig signatures checked with openssl.
#include "composefs-cpp/pe/pcr.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "composefs-cpp/base/hex.h"
#include "composefs-cpp/pe/builder.h"
#include "composefs-cpp/pe/uki.h"
#include "pe_util.h"

using namespace cfs;
using namespace cfs::pe;
using namespace cfs::test;
using json = nlohmann::json;

namespace {

const char* kMeasure = "/lib/systemd/systemd-measure";

}  // namespace

// systemd src/test/test-tpm2.c: PolicyPCR over SHA-256 PCRs 4, 7, 8.
TEST(PolicyPcr, SystemdTestVector) {
  std::string values =
      "368f85b3013041dfe203faaa364f00b07c5da7b1e5f1dbf2efb06fa6b9bd92de"
      "aa1154c9e0a774854ccbed4c8ce7e9b906b3d700a1a8db1772d0341a62dbe51b"
      "cfde439a2c06af3479ca6bdc60429b90553d65300c5cfcc40004a08c6b5ad81a";
  auto v = *from_hex(values);
  Digest256 first = policy_pcr(Digest256{}, PcrBank::Sha256, {4, 7, 8}, v);
  EXPECT_EQ(to_hex(first), "76532a0e16f7e6bf6b02918c11f75d99d729fab0cc81d0df2c4284a2c4fe6e05");
  Digest256 second = policy_pcr(first, PcrBank::Sha256, {4, 7, 8}, v);
  EXPECT_EQ(to_hex(second), "97e64bcabb64c1fa4b726528644926c8029f5b4458b0575c98c04fe225629a0b");
}

TEST(MeasuredSections, FollowTheStubVersion) {
  using V = std::vector<std::string_view>;
  EXPECT_EQ(measured_sections(252),
            (V{".linux", ".osrel", ".cmdline", ".initrd", ".splash", ".dtb", ".pcrpkey"}));
  EXPECT_EQ(measured_sections(254), (V{".linux", ".osrel", ".cmdline", ".initrd", ".splash", ".dtb",
                                       ".uname", ".sbat", ".pcrpkey"}));
  EXPECT_EQ(measured_sections(257),
            (V{".linux", ".osrel", ".cmdline", ".initrd", ".ucode", ".splash", ".dtb", ".uname",
               ".sbat", ".pcrpkey", ".profile", ".hwids", ".efifw"}));
}

// The prediction equals systemd-measure calculate on the same section
// files, for every bank and phase path, with and without .pcrpkey.
TEST(Pcr11, EqualsSystemdMeasure) {
  if (!have_file(kMeasure)) GTEST_SKIP() << kMeasure << " missing (Debian package systemd)";
  if (!have_file(kStub)) GTEST_SKIP() << kStub << " missing (systemd-boot-efi)";
  TempDir t;
  ASSERT_EQ(run("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out " +
                shell_quote(t / "pcr.key"))
                .status,
            0);
  auto key = PcrKey::load(t / "pcr.key");
  ASSERT_TRUE(key) << key.error().message();
  Bytes stub = read_bytes(kStub);
  for (bool with_pkey : {false, true}) {
    UkiInputs in;
    in.linux = synthetic_kernel();
    in.osrel = "ID=measured\n";
    in.cmdline = "composefs.digest=v1-sha512-12:" + std::string(128, 'b');
    in.uname = "6.99.0-test";
    in.initrds = {pattern(777, 5)};
    in.splash = pattern(64, 6);
    if (with_pkey) in.pcrpkey = key->public_pem();
    auto uki = add_sections(stub, *uki_sections(*PeFile::parse(stub), in));
    ASSERT_TRUE(uki) << uki.error().message();
    auto pe = PeFile::parse(*uki);
    ASSERT_TRUE(pe);
    auto secs = uki_measured_sections(*pe);  // the stub says 252
    std::string args;
    for (const auto& s : secs) {
      std::string file = t / s.name.substr(1);
      write_bytes(file, Bytes(s.data.begin(), s.data.end()));
      args += " --" + s.name.substr(1) + "=" + shell_quote(file);
    }
    EXPECT_EQ(secs.size(), with_pkey ? 6u : 5u);  // no .uname/.sbat for a 252 stub
    std::vector<std::string> phases = kDefaultPhases;
    phases.push_back("enter-initrd:leave-initrd:sysinit:ready:shutdown:final");
    std::string phase_args;
    for (const auto& p : phases) phase_args += " --phase=" + p;
    auto r = run(std::string(kMeasure) + " calculate --json=short" + args + phase_args);
    ASSERT_EQ(r.status, 0) << r.err;
    json j = json::parse(r.out);
    auto ours = predict_pcr11(secs, kAllBanks, phases);
    ASSERT_EQ(ours.size(), 4 * phases.size());
    for (const auto& v : ours) {
      const auto& arr = j[std::string(bank_name(v.bank))];
      bool found = false;
      for (const auto& e : arr)
        if (e["phase"] == v.phase) {
          found = true;
          EXPECT_EQ(e["hash"], to_hex(v.value)) << bank_name(v.bank) << " " << v.phase;
          EXPECT_EQ(e["pcr"], 11);
        }
      EXPECT_TRUE(found) << bank_name(v.bank) << " " << v.phase;
    }
  }
}

TEST(PcrSig, PoliciesAndSignaturesCheckWithOpenssl) {
  TempDir t;
  ASSERT_EQ(run("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out " +
                shell_quote(t / "rsa.key") +
                " && openssl genpkey -algorithm EC -pkeyopt "
                "ec_paramgen_curve:P-256 -out " +
                shell_quote(t / "ec.key"))
                .status,
            0);
  std::vector<MeasuredSection> secs;
  Bytes linux = pattern(100, 1);
  secs.push_back({".linux", linux});
  for (const char* k : {"rsa.key", "ec.key"}) {
    auto key = PcrKey::load(t / k);
    ASSERT_TRUE(key) << key.error().message();
    auto values = predict_pcr11(secs, kAllBanks, {"enter-initrd"});
    auto text = pcrsig_json({{&*key, values}});
    ASSERT_TRUE(text) << text.error().message();
    json j = json::parse(*text);
    ASSERT_EQ(j.size(), 4u);
    write_file(t / "pub.pem", key->public_pem());
    // systemd's pkfp: SHA-256 of the PKCS#1 RSAPublicKey, or of the EC point
    // (the last 65 bytes of a P-256 SubjectPublicKeyInfo).
    auto fp =
        run(std::string(k) == "rsa.key" ? "openssl rsa -pubin -in " + shell_quote(t / "pub.pem") +
                                              " -RSAPublicKey_out -outform DER | sha256sum"
                                        : "openssl pkey -pubin -in " + shell_quote(t / "pub.pem") +
                                              " -outform DER | tail -c 65 | sha256sum");
    for (const auto& v : values) {
      const auto& arr = j[std::string(bank_name(v.bank))];
      ASSERT_EQ(arr.size(), 1u);
      const auto& e = arr[0];
      EXPECT_EQ(e["pcrs"], json::array({11}));
      EXPECT_EQ(e["pkfp"], fp.out.substr(0, 64)) << k << ": " << fp.err;
      EXPECT_EQ(e["pol"], to_hex(policy_pcr(Digest256{}, v.bank, {11}, v.value)));
      write_bytes(t / "pol", *from_hex(e["pol"].get<std::string>()));
      write_file(t / "sig.b64", e["sig"].get<std::string>() + "\n");
      ASSERT_EQ(
          run("base64 -d " + shell_quote(t / "sig.b64") + " > " + shell_quote(t / "sig")).status,
          0);
      auto r = run("openssl dgst -sha256 -verify " + shell_quote(t / "pub.pem") + " -signature " +
                   shell_quote(t / "sig") + " " + shell_quote(t / "pol"));
      EXPECT_EQ(r.status, 0) << k << " " << bank_name(v.bank) << ": " << r.out << r.err;
    }
    // Two groups with the same key and policy merge to one entry per bank.
    auto twice = pcrsig_json({{&*key, values}, {&*key, values}});
    EXPECT_EQ(json::parse(*twice)["sha256"].size(), 1u);
  }
}

// systemd-measure sign (v252) needs a TPM for the PolicyPCR digest: a swtpm
// started here (unix sockets in a temporary directory) serves it.  Its JSON
// must equal ours: pol and pkfp for every bank, and, for sha256, the
// signature byte for byte (RSA PKCS#1 v1.5 is deterministic).  For the
// other banks v252 signs the bank's hash of pol, newer systemd SHA-256 (what
// we do, and what TPM2_VerifySignature checks with a SHA-256 key name):
// there we check that both signatures verify, each with its own hash.
TEST(PcrSig, EqualsSystemdMeasureSignWithSwtpm) {
  if (!have_file(kMeasure)) GTEST_SKIP() << kMeasure << " missing";
  if (!have_command("swtpm")) GTEST_SKIP() << "swtpm missing (Debian package swtpm)";
  if (run("ldconfig -p | grep -q libtss2-tcti-swtpm.so.0 && ldconfig -p | grep -q "
          "libtss2-esys.so.0")
          .status != 0)
    GTEST_SKIP() << "libtss2-esys / libtss2-tcti-swtpm missing (systemd-measure sign needs them)";
  TempDir t;
  std::string sock = t / "tpm.sock";
  ASSERT_EQ(run("mkdir " + shell_quote(t / "state") +
                " && (swtpm socket --tpm2 --server type=unixio,path=" + sock +
                " --ctrl type=unixio,path=" + sock + ".ctrl --tpmstate dir=" + t / "state" +
                " --flags startup-clear,not-need-init >/dev/null 2>&1 & echo $! > " +
                shell_quote(t / "pid") + ")")
                .status,
            0);
  struct Kill {
    std::string pidfile;
    ~Kill() { run("kill $(cat " + shell_quote(pidfile) + ") 2>/dev/null"); }
  } kill_swtpm{t / "pid"};
  for (int i = 0; i < 50 && !have_file(sock); i++) usleep(100000);
  ASSERT_TRUE(have_file(sock)) << "swtpm did not start";
  ASSERT_EQ(run("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out " +
                shell_quote(t / "k.pem") + " && openssl pkey -in " + shell_quote(t / "k.pem") +
                " -pubout -out " + shell_quote(t / "p.pem"))
                .status,
            0);
  Bytes linux = synthetic_kernel(), osrel{'I', 'D', '=', 'x', '\n'};
  write_bytes(t / "linux", linux);
  write_bytes(t / "osrel", osrel);
  std::vector<MeasuredSection> secs{{".linux", linux}, {".osrel", osrel}};
  auto key = PcrKey::load(t / "k.pem");
  ASSERT_TRUE(key);
  for (PcrBank bank : {PcrBank::Sha256, PcrBank::Sha1}) {
    std::string phases;
    for (const auto& p : kDefaultPhases) phases += " --phase=" + p;
    auto r = run(std::string(kMeasure) + " sign --tpm2-device=swtpm:path=" + sock +
                 " --linux=" + shell_quote(t / "linux") + " --osrel=" + shell_quote(t / "osrel") +
                 " --private-key=" + shell_quote(t / "k.pem") + " --public-key=" +
                 shell_quote(t / "p.pem") + " --bank=" + std::string(bank_name(bank)) + phases);
    ASSERT_EQ(r.status, 0) << r.err;
    json theirs = json::parse(r.out)[std::string(bank_name(bank))];
    json ours = json::parse(*pcrsig_json(
        {{&*key, predict_pcr11(secs, {bank}, kDefaultPhases)}}))[std::string(bank_name(bank))];
    ASSERT_EQ(theirs.size(), kDefaultPhases.size());
    ASSERT_EQ(ours.size(), theirs.size());
    for (size_t i = 0; i < ours.size(); i++) {
      EXPECT_EQ(ours[i]["pol"], theirs[i]["pol"]) << bank_name(bank) << " " << i;
      EXPECT_EQ(ours[i]["pkfp"], theirs[i]["pkfp"]);
      EXPECT_EQ(ours[i]["pcrs"], theirs[i]["pcrs"]);
      if (bank == PcrBank::Sha256) {
        EXPECT_EQ(ours[i]["sig"], theirs[i]["sig"]) << i;
        continue;
      }
      write_bytes(t / "pol", *from_hex(ours[i]["pol"].get<std::string>()));
      for (auto [who, md] : {std::pair{&ours, "-sha256"}, std::pair{&theirs, "-sha1"}}) {
        write_file(t / "sig.b64", (*who)[i]["sig"].get<std::string>() + "\n");
        auto v = run("base64 -d " + shell_quote(t / "sig.b64") + " > " + shell_quote(t / "sig") +
                     " && openssl dgst " + md + " -verify " + shell_quote(t / "p.pem") +
                     " -signature " + shell_quote(t / "sig") + " " + shell_quote(t / "pol"));
        EXPECT_EQ(v.status, 0) << md << ": " << v.out << v.err;
      }
    }
  }
}
