// SPDX-License-Identifier: Apache-2.0
// Kernel arguments and os-release: composefs-rs's own test vectors
// (crates/composefs-boot/src/cmdline.rs, os_release.rs and
// composefs-setup-root's parse tests), plus splitting and rendering.
#include <gtest/gtest.h>

#include "composefs-cpp/base/hex.h"
#include "composefs-cpp/boot/cmdline.h"
#include "composefs-cpp/boot/os_release.h"

using namespace cfs;
using namespace cfs::boot;
using fsverity::HashAlg;

namespace {

const std::string kSha256Hex = "8b7df143d91c716ecfa5fc1730022f6b421b05cedee8fd52b1fc65a96030ad52";
const std::string kSha512Hex =
    "6f06b5e82420abec546d6e6d3ddd612c50cfa9b707c129345b7ec16f456b92fe"
    "35df68999b042e1a6a70dfe75f2fed8cf9f67afd0bf08d2374678d75e2f65a02";
const std::string kA64(64, 'a');
const std::string kB64(64, 'b');

std::vector<uint8_t> bytes(const std::string& hex) { return *from_hex(hex); }

ComposefsKarg parse_ok(const std::string& cmdline, HashAlg alg) {
  auto r = parse_composefs_cmdline(cmdline, alg);
  EXPECT_TRUE(r) << cmdline << ": " << r.error().message();
  if (!r || !*r) {
    ADD_FAILURE() << "no karg found in " << cmdline;
    return {};
  }
  return **r;
}

std::string parse_err(const std::string& cmdline, HashAlg alg) {
  auto r = parse_composefs_cmdline(cmdline, alg);
  EXPECT_FALSE(r) << cmdline << " parsed";
  return r ? std::string() : r.error().message();
}

}  // namespace

TEST(Split, WhitespaceQuotesNoEscapes) {
  using V = std::vector<std::string_view>;
  EXPECT_EQ(split_cmdline(""), V{});
  EXPECT_EQ(split_cmdline("  a \t b\n\rc\fd  "), (V{"a", "b", "c", "d"}));
  // Quotes protect whitespace and stay in the token; there is no escaping.
  EXPECT_EQ(split_cmdline(R"(a="b c" "d e" f)"), (V{R"(a="b c")", R"("d e")", "f"}));
  EXPECT_EQ(split_cmdline(R"(a="b\" c" d)"), (V{R"(a="b\")", R"(c" d)"}));
  // An unclosed quote runs to the end.
  EXPECT_EQ(split_cmdline(R"(a "b c)"), (V{"a", R"("b c)"}));
  // Vertical tab is not whitespace to Rust's is_ascii_whitespace.
  EXPECT_EQ(split_cmdline("a\vb"), (V{"a\vb"}));
}

// cmdline.rs: test_composefs_cmdline_*_round_trip
TEST(ComposefsBootParser, RoundTrips) {
  struct Case {
    uint32_t version;
    HashAlg alg;
    std::string hex;
    bool insecure;
    std::string rendered;
  };
  const Case cases[] = {
      {2, HashAlg::Sha256, kSha256Hex, false, "composefs=" + kSha256Hex},
      {2, HashAlg::Sha256, kSha256Hex, true, "composefs=?" + kSha256Hex},
      {1, HashAlg::Sha256, kSha256Hex, false, "composefs.digest=v1-sha256-12:" + kSha256Hex},
      {1, HashAlg::Sha512, kSha512Hex, false, "composefs.digest=v1-sha512-12:" + kSha512Hex},
      {1, HashAlg::Sha256, kSha256Hex, true, "composefs.digest=?v1-sha256-12:" + kSha256Hex},
  };
  for (const auto& c : cases) {
    ComposefsKarg k{c.version, c.alg, bytes(c.hex), c.insecure};
    EXPECT_EQ(render_karg(k), c.rendered);
    EXPECT_EQ(parse_ok(c.rendered, c.alg), k) << c.rendered;
  }
}

// test_composefs_cmdline_v1_takes_priority_over_v2
TEST(ComposefsBootParser, DigestKeyWinsWhereverItIs) {
  auto k =
      parse_ok("composefs=" + kB64 + " composefs.digest=v1-sha256-12:" + kA64, HashAlg::Sha256);
  EXPECT_EQ(k.version, 1u);
  EXPECT_EQ(k.hex(), kA64);
}

// test_composefs_cmdline_v1_cross_type_rejection
TEST(ComposefsBootParser, OtherAlgorithmIsSkipped) {
  auto r = parse_composefs_cmdline("composefs.digest=v1-sha512-12:" + kSha512Hex, HashAlg::Sha256);
  ASSERT_TRUE(r);
  EXPECT_FALSE(*r);
  r = parse_composefs_cmdline("composefs.digest=v1-sha256-12:" + kSha256Hex, HashAlg::Sha512);
  ASSERT_TRUE(r);
  EXPECT_FALSE(*r);
  // A skipped token of the other algorithm is not even decoded, and the
  // scan goes on to the next one.
  auto k = parse_ok("composefs.digest=v1-sha512-12:zz composefs.digest=v2-sha256-12:" + kA64,
                    HashAlg::Sha256);
  EXPECT_EQ(k.version, 2u);
  EXPECT_EQ(k.hex(), kA64);
}

// test_composefs_cmdline_absent_returns_none, test_from_cmdline_missing_returns_none
TEST(ComposefsBootParser, Absent) {
  for (const char* c :
       {"quiet splash rw", "", "root=UUID=abc rw", "composefs", "composefs.digest"}) {
    auto r = parse_composefs_cmdline(c, HashAlg::Sha256);
    ASSERT_TRUE(r) << c;
    EXPECT_FALSE(*r) << c;
  }
}

// test_composefs_cmdline_invalid_hex_errors
TEST(ComposefsBootParser, BadHexErrors) {
  EXPECT_NE(
      parse_err("composefs.digest=v1-sha256-12:notahex", HashAlg::Sha256).find("composefs.digest="),
      std::string::npos);
  EXPECT_NE(parse_err("composefs=notahex", HashAlg::Sha256).find("composefs="), std::string::npos);
  // A sha512 digest under the sha256 parser's composefs= key is an error.
  EXPECT_NE(parse_err("composefs=" + kSha512Hex, HashAlg::Sha256).find("expected 64"),
            std::string::npos);
}

// test_composefs_cmdline_unsupported_blocksize_errors
TEST(ComposefsBootParser, UnsupportedDescriptorErrors) {
  EXPECT_NE(
      parse_err("composefs.digest=v1-sha256-8:" + kSha256Hex, HashAlg::Sha256).find("unsupported"),
      std::string::npos);
  EXPECT_NE(
      parse_err("composefs.digest=v1-sha512-99:" + kSha512Hex, HashAlg::Sha512).find("unsupported"),
      std::string::npos);
  EXPECT_NE(parse_err("composefs.digest=v3-sha256-12:" + kSha256Hex, HashAlg::Sha256)
                .find("unsupported format version"),
            std::string::npos);
  // Malformed descriptors are errors, not skipped, whatever the algorithm.
  EXPECT_FALSE(parse_err("composefs.digest=v1-md5-12:00", HashAlg::Sha256).empty());
  EXPECT_FALSE(parse_err("composefs.digest=" + kSha256Hex, HashAlg::Sha256).empty());
  EXPECT_FALSE(parse_err("composefs.digest=v1:" + kSha256Hex, HashAlg::Sha256).empty());
  // '?' is allowed only right after '='.
  EXPECT_FALSE(parse_err("composefs.digest=v1-sha256-12:?" + kSha256Hex, HashAlg::Sha256).empty());
  EXPECT_FALSE(parse_err("composefs=??" + kSha256Hex, HashAlg::Sha256).empty());
}

// test_composefs_digest_v2_parsed_as_v2
TEST(ComposefsBootParser, DigestKeyV2Descriptor) {
  auto k = parse_ok("composefs.digest=v2-sha256-12:" + kSha256Hex, HashAlg::Sha256);
  EXPECT_EQ(k.version, 2u);
  EXPECT_EQ(k.hex(), kSha256Hex);
  EXPECT_FALSE(k.insecure);
  k = parse_ok("composefs.digest=?v2-sha512-12:" + kSha512Hex, HashAlg::Sha512);
  EXPECT_EQ(k.version, 2u);
  EXPECT_TRUE(k.insecure);
  // Rendering never produces the v2 descriptor: it is the legacy key.
  EXPECT_EQ(render_karg(k), "composefs=?" + kSha512Hex);
}

// test_from_cmdline_v1, test_from_cmdline_v2_fallback, test_from_cmdline_insecure_prefix
TEST(ComposefsBootParser, AmongOtherArguments) {
  auto k = parse_ok("root=UUID=abc composefs.digest=v1-sha256-12:" + kSha256Hex + " rw",
                    HashAlg::Sha256);
  EXPECT_EQ(k.version, 1u);
  EXPECT_EQ(k.hex(), kSha256Hex);
  k = parse_ok("root=UUID=abc composefs=" + kSha256Hex + " rw", HashAlg::Sha256);
  EXPECT_EQ(k.version, 2u);
  k = parse_ok("composefs=?" + kSha256Hex, HashAlg::Sha256);
  EXPECT_TRUE(k.insecure);
  // The first composefs= wins; later ones are not looked at.
  k = parse_ok("composefs=" + kA64 + " composefs=nothex", HashAlg::Sha256);
  EXPECT_EQ(k.hex(), kA64);
  // Uppercase hex decodes (and renders lowercase).
  std::string upper = kSha256Hex;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_EQ(parse_ok("composefs=" + upper, HashAlg::Sha256).hex(), kSha256Hex);
}

// systemd-boot puts "initrd=\path " in front of a Type 1 entry's options.
TEST(ComposefsBootParser, SystemdBootInitrdPrefix) {
  std::string c = "initrd=\\bootc\\initrd.img composefs.digest=v1-sha512-12:" + kSha512Hex +
                  " composefs=" + kSha512Hex + " rw";
  EXPECT_EQ(parse_ok(c, HashAlg::Sha512).version, 1u);
  auto all = parse_setup_root_kargs(c);
  ASSERT_TRUE(all);
  EXPECT_EQ(all->size(), 2u);
}

// Quoted tokens are not dequoted (composefs-rs): a quoted karg does not parse.
TEST(ComposefsBootParser, QuotedValuesAreVerbatim) {
  EXPECT_FALSE(parse_err("composefs=\"" + kSha256Hex + "\"", HashAlg::Sha256).empty());
  auto k = parse_ok("foo=\"composefs=" + kB64 + " x\" composefs=" + kA64, HashAlg::Sha256);
  EXPECT_EQ(k.hex(), kA64);
}

TEST(ComposefsBootParser, MakeCmdlineComposefs) {
  EXPECT_EQ(render_karg({1, HashAlg::Sha256, bytes(kSha256Hex), false}),
            "composefs.digest=v1-sha256-12:" + kSha256Hex);
  EXPECT_EQ(render_karg({1, HashAlg::Sha512, bytes(kSha512Hex), false}),
            "composefs.digest=v1-sha512-12:" + kSha512Hex);
  EXPECT_EQ(render_karg({2, HashAlg::Sha256, bytes(kSha256Hex), true}), "composefs=?" + kSha256Hex);
}

// test_validate_digest
TEST(ComposefsBootParser, ValidateDigest) {
  ComposefsKarg k{2, HashAlg::Sha256, bytes(kSha256Hex), false};
  EXPECT_TRUE(validate_digest(k, {bytes(kA64), bytes(kSha256Hex)}));
  auto st = validate_digest(k, {bytes(kA64)});
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message().find("should be one of"), std::string::npos);
  EXPECT_NE(st.error().message().find(kA64), std::string::npos);
}

// composefs-setup-root: test_parse_no_kargs
TEST(SetupRootParser, NoKargs) {
  for (const char* c : {"", "foo", "composefs", "root=UUID=abc quiet"}) {
    auto r = parse_setup_root_kargs(c);
    ASSERT_TRUE(r) << c;
    EXPECT_TRUE(r->empty()) << c;
  }
}

// test_parse_invalid_digest_errors
TEST(SetupRootParser, InvalidDigestErrors) {
  EXPECT_FALSE(parse_setup_root_kargs("composefs=foo"));
  EXPECT_FALSE(parse_setup_root_kargs("composefs.digest=v1-sha256-12:notahex"));
  auto r = parse_setup_root_kargs("composefs=" + std::string(100, 'a'));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("invalid composefs= digest length: 100"), std::string::npos);
  // One bad token fails the whole command line, even after a good one.
  EXPECT_FALSE(
      parse_setup_root_kargs("composefs=" + kA64 + " composefs.digest=v9-sha256-12:" + kA64));
  EXPECT_FALSE(parse_setup_root_kargs("composefs=" + std::string(63, 'a') + "g"));
}

// test_parse_single_kargs
TEST(SetupRootParser, SingleKargs) {
  using V = std::vector<SetupRootKarg>;
  EXPECT_EQ(*parse_setup_root_kargs("composefs=" + kSha256Hex),
            (V{{kSha256Hex, false, HashAlg::Sha256}}));
  EXPECT_EQ(*parse_setup_root_kargs("composefs=" + kSha512Hex),
            (V{{kSha512Hex, false, HashAlg::Sha512}}));
  EXPECT_EQ(*parse_setup_root_kargs("composefs.digest=v1-sha256-12:" + kSha256Hex),
            (V{{kSha256Hex, false, HashAlg::Sha256}}));
  EXPECT_EQ(*parse_setup_root_kargs("composefs.digest=v1-sha512-12:" + kSha512Hex),
            (V{{kSha512Hex, false, HashAlg::Sha512}}));
}

// test_parse_multiple_kargs_preserves_order
TEST(SetupRootParser, PreservesOrder) {
  auto r =
      parse_setup_root_kargs("composefs.digest=v1-sha256-12:" + kSha256Hex +
                             " composefs.digest=v1-sha512-12:" + kSha512Hex + " composefs=" + kA64);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].hex, kSha256Hex);
  EXPECT_EQ((*r)[1].hex, kSha512Hex);
  EXPECT_EQ((*r)[2].hex, kA64);
  r = parse_setup_root_kargs("composefs=" + kA64 + " composefs.digest=v1-sha512-12:" + kSha512Hex +
                             " composefs.digest=v1-sha256-12:" + kSha256Hex);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].hex, kA64);
  EXPECT_EQ((*r)[1].hex, kSha512Hex);
  EXPECT_EQ((*r)[2].hex, kSha256Hex);
}

// test_parse_insecure, test_parse_mixed_insecure_and_secure
TEST(SetupRootParser, Insecure) {
  using V = std::vector<SetupRootKarg>;
  EXPECT_EQ(*parse_setup_root_kargs("composefs.digest=?v1-sha512-12:" + kSha512Hex),
            (V{{kSha512Hex, true, HashAlg::Sha512}}));
  EXPECT_EQ(*parse_setup_root_kargs("composefs.digest=?v1-sha256-12:" + kSha256Hex +
                                    " composefs.digest=v1-sha512-12:" + kSha512Hex),
            (V{{kSha256Hex, true, HashAlg::Sha256}, {kSha512Hex, false, HashAlg::Sha512}}));
}

// test_parse_ignores_unrelated_tokens
TEST(SetupRootParser, IgnoresUnrelatedTokens) {
  auto r = parse_setup_root_kargs(
      "root=UUID=abc quiet splash composefs.digest=v1-sha256-12:" + kSha256Hex + " rw");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].hex, kSha256Hex);
}

TEST(SealedKargs, BothFormsByDefault) {
  SealedDigests d{HashAlg::Sha512, bytes(kSha512Hex), std::nullopt, false};
  auto s = render_sealed_kargs(d);
  ASSERT_TRUE(s);
  EXPECT_EQ(*s, "composefs.digest=v1-sha512-12:" + kSha512Hex + " composefs=" + kSha512Hex);
  // composefs-boot takes the V1 form, setup-root tries both (the same image),
  // and an old initramfs unit matching only "composefs" finds its key.
  EXPECT_EQ(parse_ok(*s, HashAlg::Sha512).version, 1u);
  EXPECT_EQ(parse_setup_root_kargs(*s)->size(), 2u);
  EXPECT_EQ(*render_sealed_kargs(d, KargForms::Digest),
            "composefs.digest=v1-sha512-12:" + kSha512Hex);
  EXPECT_EQ(*render_sealed_kargs(d, KargForms::Legacy), "composefs=" + kSha512Hex);
}

TEST(SealedKargs, DualRepositoryAndInsecure) {
  std::string v2hex(128, 'c');
  SealedDigests d{HashAlg::Sha512, bytes(kSha512Hex), bytes(v2hex), true};
  EXPECT_EQ(*render_sealed_kargs(d),
            "composefs.digest=?v1-sha512-12:" + kSha512Hex + " composefs=?" + v2hex);
  EXPECT_EQ(*render_sealed_kargs(d, KargForms::Legacy), "composefs=?" + v2hex);
  SealedDigests only_v2{HashAlg::Sha512, std::nullopt, bytes(v2hex), false};
  EXPECT_FALSE(render_sealed_kargs(only_v2));
  EXPECT_EQ(*render_sealed_kargs(only_v2, KargForms::Legacy), "composefs=" + v2hex);
  SealedDigests wrong{HashAlg::Sha256, bytes(kSha512Hex), std::nullopt, false};
  EXPECT_FALSE(render_sealed_kargs(wrong));
}

TEST(SealedKargs, StripComposefsKargs) {
  EXPECT_EQ(strip_composefs_kargs("  quiet composefs=abc  composefs.digest=x rw composefsx=1 "),
            "quiet rw composefsx=1");
}

// os_release.rs: test_dequote (|quoted| |result| lines; |quoted| alone fails).
TEST(OsRelease, Dequote) {
  struct Ok {
    const char* in;
    const char* out;
  };
  const Ok ok[] = {
      {"", ""},
      {R"("")", ""},
      {"''", ""},
      {R"(""''"")", ""},
      {"hello", "hello"},
      {"1234", "1234"},
      {R"(\\\\)", R"(\\\\)"},
      {R"(\$\`\\)", R"(\$\`\\)"},
      {R"("closed")", "closed"},
      {R"("closed\\")", R"(closed\)"},
      {R"("a")", "a"},
      {R"(" ")", " "},
      {R"("\"")", R"(")"},
      {R"("\\")", R"(\)"},
      {R"("\$5")", "$5"},
      {R"("$5")", "$5"},
      {R"("\`tick\`")", "`tick`"},
      {R"("`tick`")", "`tick`"},
      {R"("\'")", "'"},
      {"'a'", "a"},
      {"' '", " "},
      {R"('\')", R"(\)"},
      {R"('\$')", R"(\$)"},
      {R"('closed\')", R"(closed\)"},
      {R"(  "x"'y'z  )", "xyz"},
  };
  for (const auto& c : ok) EXPECT_EQ(dequote_os_release_value(c.in), std::string(c.out)) << c.in;
  for (const char* bad : {R"("not closed)", R"("not closed\")", R"(")", R"("\\)", R"("\")", "'",
                          "'not closed", R"('\'')"})
    EXPECT_EQ(dequote_os_release_value(bad), std::nullopt) << bad;
}

// os_release.rs: test_fallbacks; uki.rs: test_simple
TEST(OsRelease, BootLabelFallbacks) {
  const std::pair<const char*, const char*> cases[] = {
      {"\nPRETTY_NAME='prettyOS'\nVERSION_ID=\"Rocky Racoon\"\nVERSION=42\nID=pretty-os\n",
       "prettyOS Rocky Racoon"},
      {"\nPRETTY_NAME='prettyOS\nVERSION_ID=\"Rocky Racoon\"\nVERSION=42\nID=pretty-os\n",
       "pretty-os Rocky Racoon"},
      {"\nPRETTY_NAME='prettyOS\nVERSION=42\nID=pretty-os\n", "pretty-os 42"},
      {"\nPRETTY_NAME='prettyOS'\nID=pretty-os\n", "prettyOS"},
      {"\nID=pretty-os\n", "pretty-os"},
      {"PRETTY_NAME='TestOS'\nVERSION_ID=1.0\n", "TestOS 1.0"},
  };
  for (auto [text, label] : cases)
    EXPECT_EQ(OsRelease::parse(text).boot_label(), std::string(label)) << text;
  EXPECT_EQ(OsRelease::parse("VERSION_ID=1\n").boot_label(), std::nullopt);
}

TEST(OsRelease, ParseRules) {
  auto r = OsRelease::parse(
      "# comment\n   # indented comment=1\nNAME=a\r\nNAME=b\nnoequals\n KEY=spaced key\nX=a=b");
  EXPECT_EQ(r.value({"NAME"}), "b");  // last wins; \r dropped
  EXPECT_EQ(r.value({"X"}), "a=b");   // split at the first '='
  EXPECT_EQ(r.value({"KEY"}), std::nullopt);
  EXPECT_EQ(r.value({" KEY"}), "spaced key");  // keys are not trimmed
  EXPECT_EQ(r.raw().count("   # indented comment"), 0u);
}
