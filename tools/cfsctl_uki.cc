// SPDX-License-Identifier: Apache-2.0
#include "cfsctl_uki.h"

#include <sys/utsname.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "common.h"
#include "composefs-cpp/base/fd.h"
#include "composefs-cpp/base/hex.h"
#include "composefs-cpp/boot/cmdline.h"
#include "composefs-cpp/boot/directory.h"
#include "composefs-cpp/pe/authenticode.h"
#include "composefs-cpp/pe/builder.h"
#include "composefs-cpp/pe/pcr.h"
#include "composefs-cpp/pe/reader.h"
#include "composefs-cpp/pe/uki.h"

namespace cfs::tools::uki_cli {
namespace {

constexpr const char* kTool = "cfsctl";
constexpr size_t kMaxInput = size_t(2) << 30;  // a PE section holds at most 4 GiB; be sane
using json = nlohmann::json;
using Bytes = std::vector<uint8_t>;

void print(std::string_view s) { std::fwrite(s.data(), 1, s.size(), stdout); }
int done() {
  if (std::fflush(stdout) != 0) return fail(kTool, Error(Errc::Io, "cannot write stdout"));
  return 0;
}

Result<Bytes> read_bytes(const std::string& path) {
  auto s = read_file(AT_FDCWD, path, kMaxInput);
  if (!s) return tl::unexpected(std::move(s.error()).context(path));
  return Bytes(s->begin(), s->end());
}

// ukify's TEXT|@PATH arguments.
Result<std::string> text_or_file(const std::string& v) {
  if (!v.empty() && v[0] == '@') {
    auto s = read_file(AT_FDCWD, v.substr(1), kMaxInput);
    if (!s) return tl::unexpected(std::move(s.error()).context(v.substr(1)));
    return *s;
  }
  return v;
}

Status write_output(const std::string& path, const Bytes& data) {
  auto f = AtomicFile::create(path, 0644);
  if (!f) return tl::unexpected(std::move(f.error()).context(path));
  CFS_TRY(write_full(f->fd(), std::as_bytes(std::span(data.data(), data.size()))));
  auto st = f->commit(true);
  if (!st) return tl::unexpected(std::move(st.error()).context(path));
  return {};
}

std::string default_stub(bool addon) {
  struct utsname u {};
  ::uname(&u);
  std::string_view m = u.machine;
  std::string arch = m == "aarch64" ? "aa64" : m == "x86_64" ? "x64" : std::string(m);
  std::string dir = "/usr/lib/systemd/boot/efi/";
  if (addon && ::access((dir + "addon" + arch + ".efi.stub").c_str(), R_OK) == 0)
    return dir + "addon" + arch + ".efi.stub";
  return dir + "linux" + arch + ".efi.stub";
}

}  // namespace

struct Options {
  CLI::App* uki = nullptr;
  CLI::App *build = nullptr, *addon = nullptr, *inspect = nullptr, *sign = nullptr,
           *verify = nullptr, *pcr = nullptr;
  // build / addon
  std::string linux, os_release, uname, cmdline, stub, output, devicetree, splash, microcode;
  std::vector<std::string> initrds, sections, sbat;
  std::string composefs_digest, composefs_digest_v2, composefs_from, karg_form = "both";
  std::string composefs_hash = "sha512";
  bool composefs_insecure = false, measure = false;
  std::string sb_key, sb_cert;
  std::vector<std::string> pcr_keys, phases;
  std::string pcr_public_key, pcr_banks;
  // inspect / sign / verify / pcr11
  std::string file;
  bool json = false;
  unsigned stub_version = 0;
};

namespace {

void add_signing(CLI::App* c, Options& o) {
  c->add_option("--secureboot-private-key", o.sb_key,
                "Sign the result for Secure Boot with this PEM key (Authenticode SHA-256)");
  c->add_option("--secureboot-certificate", o.sb_cert, "The PEM certificate of that key");
}

void add_build_options(CLI::App* c, Options& o, bool addon) {
  if (!addon) {
    c->add_option("--linux", o.linux, "The kernel (an EFI-stub PE image)")->required();
    c->add_option("--os-release", o.os_release, "os-release contents, TEXT or @PATH (.osrel)");
    c->add_option("--uname", o.uname, "The kernel release (.uname; default: read from the kernel)");
    c->add_option("--splash", o.splash, "A BMP splash image (.splash)");
  }
  c->add_option("--initrd", o.initrds, "An initrd (repeatable; joined, each padded to 4 bytes)");
  c->add_option("--microcode", o.microcode, "A microcode cpio (.ucode)");
  c->add_option("--cmdline", o.cmdline, "The kernel command line, TEXT or @PATH (.cmdline)");
  c->add_option("--devicetree", o.devicetree, "A devicetree blob (.dtb)");
  c->add_option("--section", o.sections, "An extra section NAME:TEXT or NAME:@PATH (repeatable)");
  c->add_option("--sbat", o.sbat, "SBAT lines, TEXT or @PATH (repeatable; default: ukify's)");
  c->add_option("--stub", o.stub, "The unsigned systemd-stub (default: systemd-boot-efi's)");
  c->add_option("--output", o.output, "Where to write the image")->required();
  add_signing(c, o);
  if (addon) return;
  c->add_option("--composefs-digest", o.composefs_digest,
                "Seal this image: [?]HEX of its V1 (format 0/1) EROFS image, or a full "
                "[?]v1-<sha256|sha512>-12:HEX; '?' makes fs-verity optional at boot");
  c->add_option("--composefs-digest-v2", o.composefs_digest_v2,
                "The V2 image's [?]HEX of a dual-format repository (goes into composefs=)");
  c->add_option("--composefs-karg", o.karg_form,
                "Which karg forms to seal: both (default), digest (composefs.digest= only) or "
                "legacy (composefs= only)")
      ->check(CLI::IsMember({"both", "digest", "legacy"}));
  c->add_flag("--composefs-insecure", o.composefs_insecure, "Mark the karg insecure ('?')");
  c->add_option("--composefs-from", o.composefs_from,
                "Seal the bootable image of this root directory (its V1 digest, as cfsctl "
                "compute-karg computes it)");
  c->add_option("--composefs-hash", o.composefs_hash,
                "The digest's hash for --composefs-from: sha512 (default) or sha256")
      ->check(CLI::IsMember({"sha256", "sha512"}));
  c->add_option("--pcr-private-key", o.pcr_keys,
                "Sign PCR 11 policies with this PEM key into .pcrsig (repeatable)");
  c->add_option("--pcr-public-key", o.pcr_public_key,
                "The PEM public key for .pcrpkey (default: the first --pcr-private-key's)");
  c->add_option("--phases", o.phases,
                "Boot phase paths to sign for, e.g. enter-initrd:leave-initrd (repeatable; "
                "default: systemd-measure's four)");
  c->add_option("--pcr-banks", o.pcr_banks, "PCR banks, comma-separated (default: sha256)");
  c->add_flag("--measure", o.measure, "Print the expected PCR 11 values");
}

void add_pcr_print_options(CLI::App* c, Options& o) {
  c->add_option("--pcr-banks", o.pcr_banks, "PCR banks, comma-separated (default: all four)");
  c->add_option("--phases", o.phases, "Phase paths (repeatable; default: systemd-measure's)");
  c->add_option("--stub-version", o.stub_version,
                "Predict for this systemd-stub version (default: the one .sdmagic names)");
  c->add_flag("--json", o.json, "JSON output, as systemd-measure --json");
}

}  // namespace

std::shared_ptr<Options> add_commands(CLI::App& app) {
  auto o = std::make_shared<Options>();
  o->uki = app.add_subcommand("uki", "Build, sign, inspect and measure Unified Kernel Images");
  o->uki->require_subcommand(1);
  o->build = o->uki->add_subcommand("build", "Build a UKI from a systemd-stub and a kernel");
  add_build_options(o->build, *o, false);
  o->addon = o->uki->add_subcommand("addon", "Build a UKI addon (NAME.addon.efi)");
  add_build_options(o->addon, *o, true);
  o->inspect = o->uki->add_subcommand("inspect", "Show a UKI's sections, command line and karg");
  o->inspect->add_option("FILE", o->file, "A UKI, addon or any PE image")->required();
  o->inspect->add_flag("--json", o->json, "JSON output");
  o->sign = o->uki->add_subcommand("sign", "Sign a PE image (UKI, addon, systemd-boot)");
  o->sign->add_option("FILE", o->file, "The image")->required();
  o->sign->add_option("--output", o->output, "Where to write it (default: in place)");
  add_signing(o->sign, *o);
  o->sign->get_option("--secureboot-private-key")->required();
  o->sign->get_option("--secureboot-certificate")->required();
  o->verify = o->uki->add_subcommand("verify", "Check a PE image's Authenticode signatures");
  o->verify->add_option("FILE", o->file, "The image")->required();
  o->verify->add_option("--secureboot-certificate", o->sb_cert, "The trusted PEM certificate")
      ->required();
  o->pcr = o->uki->add_subcommand("pcr11", "Print the PCR 11 values a UKI will measure to");
  o->pcr->add_option("FILE", o->file, "The UKI")->required();
  add_pcr_print_options(o->pcr, *o);
  return o;
}

bool parsed(const Options* o) { return o && o->uki->parsed(); }

namespace {

Result<std::vector<pe::PcrBank>> banks_of(const std::string& list,
                                          const std::vector<pe::PcrBank>& dflt) {
  if (list.empty()) return dflt;
  std::vector<pe::PcrBank> out;
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t c = list.find(',', pos);
    std::string_view item(list.data() + pos, (c == std::string::npos ? list.size() : c) - pos);
    CFS_TRY_ASSIGN(pe::PcrBank b, pe::parse_bank(item));
    out.push_back(b);
    if (c == std::string::npos) break;
    pos = c + 1;
  }
  return out;
}

// "[?]HEX" or "[?]v1-sha512-12:HEX" (the latter as in composefs.digest=).
struct DigestArg {
  std::vector<uint8_t> digest;
  fsverity::HashAlg alg;
  bool insecure = false;
  std::optional<uint32_t> version;
};
Result<DigestArg> parse_digest_arg(std::string v, const char* option) {
  DigestArg d;
  if (!v.empty() && v[0] == '?') {
    d.insecure = true;
    v.erase(0, 1);
  }
  std::string hex = v;
  if (v.find(':') != std::string::npos) {
    auto p = boot::parse_digest_value(v);
    if (!p) return tl::unexpected(std::move(p.error()).context(option));
    d.version = p->first.version;
    hex = std::string(p->second);
    if (hex.size() != 2 * fsverity::hash_digest_size(p->first.alg))
      return errorf(Errc::InvalidArgument, "{}: '{}' is not a {} digest", option, hex,
                    p->first.alg == fsverity::HashAlg::Sha256 ? "sha256" : "sha512");
  }
  if (hex.size() == 64)
    d.alg = fsverity::HashAlg::Sha256;
  else if (hex.size() == 128)
    d.alg = fsverity::HashAlg::Sha512;
  else
    return errorf(Errc::InvalidArgument,
                  "{}: '{}' has {} characters, not the 64 (sha256) or 128 (sha512) hex digits of "
                  "an fs-verity digest",
                  option, hex, hex.size());
  auto b = from_hex(hex);
  if (!b) return errorf(Errc::InvalidArgument, "{}: '{}' is not hex", option, hex);
  d.digest = std::move(*b);
  return d;
}

// The composefs karg to seal, or "" when no digest was given.
Result<std::string> composefs_karg(const Options& o) {
  if (!o.composefs_from.empty()) {
    if (!o.composefs_digest.empty() || !o.composefs_digest_v2.empty())
      return make_error(Errc::InvalidArgument,
                        "--composefs-from and --composefs-digest[-v2] exclude each other");
    if (o.composefs_from.starts_with("oci:"))
      return errorf(Errc::Unsupported,
                    "--composefs-from {}: an OCI image's boot digest needs its repository: "
                    "pass --composefs-digest $(cfsctl --repo R oci compute-id --bootable REF)",
                    o.composefs_from);
    boot::DirectoryOptions d;
    d.alg = o.composefs_hash == "sha256" ? fsverity::HashAlg::Sha256 : fsverity::HashAlg::Sha512;
    CFS_TRY_ASSIGN(Tree tree, boot::read_directory(o.composefs_from, d));
    CFS_TRY_ASSIGN(fsverity::Digest id, boot::image_digest(tree, 1, d.alg));
    CFS_TRY_ASSIGN(boot::KargForms forms, boot::parse_karg_forms(o.karg_form));
    boot::SealedDigests s;
    s.alg = d.alg;
    s.v1.emplace(id.bytes().begin(), id.bytes().end());
    s.insecure = o.composefs_insecure;
    return boot::render_sealed_kargs(s, forms);
  }
  if (o.composefs_digest.empty() && o.composefs_digest_v2.empty()) return std::string();
  CFS_TRY_ASSIGN(boot::KargForms forms, boot::parse_karg_forms(o.karg_form));
  boot::SealedDigests s;
  bool insecure = o.composefs_insecure;
  std::optional<fsverity::HashAlg> alg;
  if (!o.composefs_digest.empty()) {
    CFS_TRY_ASSIGN(DigestArg d, parse_digest_arg(o.composefs_digest, "--composefs-digest"));
    if (d.version == 2)
      return make_error(Errc::InvalidArgument,
                        "--composefs-digest names the V1 image; give a V2 image's digest with "
                        "--composefs-digest-v2");
    insecure = insecure || d.insecure;
    alg = d.alg;
    s.v1 = std::move(d.digest);
  }
  if (!o.composefs_digest_v2.empty()) {
    CFS_TRY_ASSIGN(DigestArg d, parse_digest_arg(o.composefs_digest_v2, "--composefs-digest-v2"));
    if (d.version == 1)
      return make_error(Errc::InvalidArgument, "--composefs-digest-v2 names a V1 descriptor");
    if (alg && *alg != d.alg)
      return make_error(Errc::InvalidArgument,
                        "--composefs-digest and --composefs-digest-v2 use different hashes");
    insecure = insecure || d.insecure;
    alg = d.alg;
    s.v2 = std::move(d.digest);
  }
  s.alg = *alg;
  s.insecure = insecure;
  return boot::render_sealed_kargs(s, forms);
}

Status print_pcr(const std::vector<pe::PcrValue>& values, bool as_json) {
  if (as_json) {
    json j = json::object();
    for (const auto& v : values)
      j[std::string(pe::bank_name(v.bank))].push_back(
          {{"phase", v.phase}, {"pcr", 11}, {"hash", to_hex(v.value)}});
    print(j.dump() + "\n");
    return {};
  }
  std::string last;
  for (const auto& v : values) {
    if (v.phase != last) print(fmt::format("# PCR[11] Phase <{}>\n", v.phase));
    last = v.phase;
    print(fmt::format("11:{}={}\n", pe::bank_name(v.bank), to_hex(v.value)));
  }
  return {};
}

Status cmd_build(Options& o, bool addon) {
  std::string karg;
  if (!addon) {
    CFS_TRY_ASSIGN(karg, composefs_karg(o));
  }
  std::string stub_path = o.stub.empty() ? default_stub(addon) : o.stub;
  CFS_TRY_ASSIGN(Bytes stub_bytes, read_bytes(stub_path));
  auto stub = pe::PeFile::parse(stub_bytes);
  if (!stub) return tl::unexpected(std::move(stub.error()).context(stub_path));
  pe::UkiInputs in;
  if (!addon) {
    CFS_TRY_ASSIGN(in.linux, read_bytes(o.linux));
    if (!o.os_release.empty()) {
      CFS_TRY_ASSIGN(in.osrel, text_or_file(o.os_release));
    }
    if (!o.uname.empty())
      in.uname = o.uname;
    else
      in.uname = pe::kernel_release(*in.linux);
    if (!o.splash.empty()) {
      CFS_TRY_ASSIGN(in.splash, read_bytes(o.splash));
    }
  }
  for (const auto& i : o.initrds) {
    CFS_TRY_ASSIGN(Bytes b, read_bytes(i));
    in.initrds.push_back(std::move(b));
  }
  if (!o.microcode.empty()) {
    CFS_TRY_ASSIGN(in.ucode, read_bytes(o.microcode));
  }
  if (!o.devicetree.empty()) {
    CFS_TRY_ASSIGN(in.dtb, read_bytes(o.devicetree));
  }
  std::string cmdline;
  if (!o.cmdline.empty()) {
    CFS_TRY_ASSIGN(cmdline, text_or_file(o.cmdline));
  }
  if (!karg.empty()) {
    if (boot::split_cmdline(boot::strip_composefs_kargs(cmdline)).size() !=
        boot::split_cmdline(cmdline).size())
      return make_error(Errc::InvalidArgument,
                        "--cmdline already has a composefs karg; drop it or --composefs-digest");
    // First, so that a NUL or newline some tool adds at the end never
    // sticks to it.
    cmdline = cmdline.empty() ? karg : karg + " " + cmdline;
    // It must read back as sealed, with both of composefs-rs's parsers.
    auto kargs = boot::parse_setup_root_kargs(cmdline);
    if (!kargs || kargs->empty())
      return make_error(Errc::Corrupt, "the sealed command line does not parse back");
  }
  if (!cmdline.empty()) in.cmdline = cmdline;
  for (const auto& s : o.sbat) {
    CFS_TRY_ASSIGN(std::string t, text_or_file(s));
    while (!t.empty() && (t.back() == '\n' || t.back() == '\0')) t.pop_back();
    in.sbat.push_back(t);
  }
  for (const auto& s : o.sections) {
    size_t c = s.find(':');
    if (c == std::string::npos || c == 0)
      return errorf(Errc::InvalidArgument, "--section '{}': expected NAME:TEXT or NAME:@PATH", s);
    std::string name = s.substr(0, c);
    if (name[0] != '.') name = "." + name;
    CFS_TRY_ASSIGN(std::string t, text_or_file(s.substr(c + 1)));
    in.extra.push_back({name, Bytes(t.begin(), t.end())});
  }

  // PCR signing: keys, the public key in .pcrpkey (measured), then after
  // measuring everything else, .pcrsig.
  std::vector<pe::PcrKey> keys;
  for (const auto& k : o.pcr_keys) {
    CFS_TRY_ASSIGN(pe::PcrKey key, pe::PcrKey::load(k));
    keys.push_back(std::move(key));
  }
  if (!o.pcr_public_key.empty()) {
    CFS_TRY_ASSIGN(in.pcrpkey, text_or_file("@" + o.pcr_public_key));
  } else if (!keys.empty()) {
    in.pcrpkey = keys[0].public_pem();
  }
  if (addon && (!o.pcr_keys.empty() || o.measure))
    return make_error(Errc::InvalidArgument,
                      "addons are measured into PCR 12, not signed for PCR 11");

  CFS_TRY_ASSIGN(std::vector<pe::NewSection> sections, pe::uki_sections(*stub, in));
  pe::BuildNotes notes;
  CFS_TRY_ASSIGN(Bytes image, pe::add_sections(stub_bytes, sections, &notes));
  if (!addon && (!keys.empty() || o.measure)) {
    auto built = pe::PeFile::parse(image);
    if (!built) return tl::unexpected(std::move(built.error()));
    unsigned version = pe::stub_version_or_newest(*built);
    auto measured = pe::uki_measured_sections(*built, version);
    CFS_TRY_ASSIGN(auto banks, banks_of(o.pcr_banks, {pe::PcrBank::Sha256}));
    auto values =
        pe::predict_pcr11(measured, banks, o.phases.empty() ? pe::kDefaultPhases : o.phases);
    if (o.measure) CFS_TRY(print_pcr(values, false));
    if (!keys.empty()) {
      std::vector<pe::PcrSignGroup> groups;
      for (const auto& k : keys) groups.push_back({&k, values});
      CFS_TRY_ASSIGN(std::string sig, pe::pcrsig_json(groups));
      CFS_TRY_ASSIGN(image, pe::add_sections(image, {{".pcrsig", Bytes(sig.begin(), sig.end())}}));
      if (version <= 252)
        std::fprintf(stderr,
                     "%s: note: systemd-stub %u does not measure .uname and .sbat; the policy "
                     "covers what it measures\n",
                     kTool, version);
    }
  }
  if (!o.sb_key.empty() || !o.sb_cert.empty()) {
    if (o.sb_key.empty() || o.sb_cert.empty())
      return make_error(Errc::InvalidArgument,
                        "--secureboot-private-key and --secureboot-certificate go together");
    CFS_TRY_ASSIGN(pe::SigningKey key, pe::SigningKey::load(o.sb_key, o.sb_cert));
    CFS_TRY_ASSIGN(image, pe::sign_image(image, key));
  }
  if (notes.sbat_moved)
    std::fprintf(stderr,
                 "%s: note: the merged .sbat does not fit where the stub has its own; it was moved "
                 "to the end of the image\n",
                 kTool);
  constexpr std::string_view kAddonSuffix = ".addon.efi";
  if (addon && (o.output.size() < kAddonSuffix.size() ||
                o.output.compare(o.output.size() - kAddonSuffix.size(), kAddonSuffix.size(),
                                 kAddonSuffix) != 0))
    std::fprintf(stderr, "%s: note: systemd-stub loads addons only from files named *.addon.efi\n",
                 kTool);
  return write_output(o.output, image);
}

Status cmd_inspect(const Options& o) {
  CFS_TRY_ASSIGN(Bytes bytes, read_bytes(o.file));
  auto pe = pe::PeFile::parse(bytes);
  if (!pe) return tl::unexpected(std::move(pe.error()).context(o.file));
  json j;
  j["sections"] = json::array();
  for (const auto& s : pe->sections())
    j["sections"].push_back({{"name", s.name},
                             {"virtual_address", s.virtual_address},
                             {"virtual_size", s.virtual_size},
                             {"pointer_to_raw_data", s.pointer_to_raw_data},
                             {"size_of_raw_data", s.size_of_raw_data},
                             {"characteristics", s.characteristics}});
  auto text = [&](const char* n) -> json {
    auto t = pe::text_section(*pe, n);
    return t ? json(*t) : json(nullptr);
  };
  j["cmdline"] = text(".cmdline");
  j["osrel"] = text(".osrel");
  j["uname"] = text(".uname");
  auto label = pe::boot_label(*pe);
  j["label"] = label ? json(*label) : json(nullptr);
  auto v = pe::stub_version(*pe);
  j["stub_version"] = v ? json(*v) : json(nullptr);
  j["type"] = pe->find(".linux") ? "uki" : pe::check_addon(*pe) ? "addon" : "pe";
  json karg = nullptr;
  if (j["cmdline"].is_string()) {
    std::string c = j["cmdline"];
    karg = json::object();
    for (auto alg : {fsverity::HashAlg::Sha512, fsverity::HashAlg::Sha256}) {
      auto k = boot::parse_composefs_cmdline(c, alg);
      std::string key = alg == fsverity::HashAlg::Sha512 ? "sha512" : "sha256";
      if (!k)
        karg[key] = {{"error", k.error().message()}};
      else if (*k)
        karg[key] = {{"version", (*k)->version},
                     {"digest", (*k)->hex()},
                     {"insecure", (*k)->insecure},
                     {"karg", boot::render_karg(**k)}};
    }
    auto all = boot::parse_setup_root_kargs(c);
    if (!all) {
      karg["setup_root"] = {{"error", all.error().message()}};
    } else {
      karg["setup_root"] = json::array();
      for (const auto& s : *all)
        karg["setup_root"].push_back({{"digest", s.hex}, {"insecure", s.insecure}});
    }
  }
  j["composefs"] = karg;
  auto bd = pe::boot_digest(*pe);
  j["boot_digest"] = bd ? json(*bd) : json(nullptr);
  auto h = pe::authenticode_sha256(bytes);
  j["authenticode_sha256"] = h ? json(to_hex(*h)) : json(nullptr);
  auto certs = pe->certificates();
  j["signatures"] = certs ? json(certs->size()) : json(nullptr);
  if (o.json) {
    print(j.dump(2) + "\n");
    return {};
  }
  print(fmt::format("{}: {}\n", o.file, j["type"].get<std::string>()));
  print("  #  name      vaddr     vsize     fileoff   rawsize   flags\n");
  size_t i = 0;
  for (const auto& s : pe->sections())
    print(fmt::format("  {:<2} {:<9} {:08x}  {:08x}  {:08x}  {:08x}  {:08x}\n", i++, s.name,
                      s.virtual_address, s.virtual_size, s.pointer_to_raw_data, s.size_of_raw_data,
                      s.characteristics));
  if (v) print(fmt::format("stub: systemd-stub {}\n", *v));
  for (const char* k : {"label", "uname", "cmdline"})
    if (j[k].is_string()) print(fmt::format("{}: {}\n", k, j[k].get<std::string>()));
  if (karg.is_object()) {
    // composefs-boot reads with the repository's hash: show the algorithms
    // that find a karg, or the errors when none does.
    bool any = false;
    for (const char* a : {"sha512", "sha256"})
      any = any || (karg.contains(a) && !karg[a].contains("error"));
    for (const char* a : {"sha512", "sha256"})
      if (karg.contains(a) && (!any || !karg[a].contains("error"))) {
        if (karg[a].contains("error"))
          print(fmt::format("composefs ({}): error: {}\n", a, karg[a]["error"].get<std::string>()));
        else
          print(fmt::format("composefs ({}): V{} {}{}\n", a, karg[a]["version"].get<int>(),
                            karg[a]["digest"].get<std::string>(),
                            karg[a]["insecure"].get<bool>() ? " (insecure)" : ""));
      }
    if (karg["setup_root"].is_array()) {
      std::string order;
      for (const auto& s : karg["setup_root"])
        order += (order.empty() ? "" : ", ") + s["digest"].get<std::string>().substr(0, 16) + "…";
      if (!order.empty()) print(fmt::format("composefs (setup-root order): {}\n", order));
    }
  }
  if (bd) print(fmt::format("boot digest: {}\n", *bd));
  if (h) print(fmt::format("authenticode sha256: {}\n", to_hex(*h)));
  if (certs) print(fmt::format("signatures: {}\n", certs->size()));
  return {};
}

Status cmd_sign(const Options& o) {
  CFS_TRY_ASSIGN(Bytes bytes, read_bytes(o.file));
  CFS_TRY_ASSIGN(pe::SigningKey key, pe::SigningKey::load(o.sb_key, o.sb_cert));
  auto out = pe::sign_image(bytes, key);
  if (!out) return tl::unexpected(std::move(out.error()).context(o.file));
  return write_output(o.output.empty() ? o.file : o.output, *out);
}

Status cmd_verify(const Options& o) {
  CFS_TRY_ASSIGN(Bytes bytes, read_bytes(o.file));
  auto cert = read_file(AT_FDCWD, o.sb_cert, 1 << 20);
  if (!cert) return tl::unexpected(std::move(cert.error()).context(o.sb_cert));
  auto n = pe::verify_image(bytes, *cert);
  if (!n) return tl::unexpected(std::move(n.error()).context(o.file));
  print(fmt::format("{}: {} signature(s) verified\n", o.file, *n));
  return {};
}

Status cmd_pcr11(const Options& o) {
  CFS_TRY_ASSIGN(Bytes bytes, read_bytes(o.file));
  auto pe = pe::PeFile::parse(bytes);
  if (!pe) return tl::unexpected(std::move(pe.error()).context(o.file));
  if (!pe->find(".linux"))
    return errorf(Errc::InvalidArgument, "{}: not a UKI (no .linux section)", o.file);
  auto measured = pe::uki_measured_sections(
      *pe, o.stub_version ? std::optional<unsigned>(o.stub_version) : std::nullopt);
  CFS_TRY_ASSIGN(auto banks, banks_of(o.pcr_banks, pe::kAllBanks));
  return print_pcr(
      pe::predict_pcr11(measured, banks, o.phases.empty() ? pe::kDefaultPhases : o.phases), o.json);
}

}  // namespace

int run(Options* o) {
  Status st;
  if (o->build->parsed())
    st = cmd_build(*o, false);
  else if (o->addon->parsed())
    st = cmd_build(*o, true);
  else if (o->inspect->parsed())
    st = cmd_inspect(*o);
  else if (o->sign->parsed())
    st = cmd_sign(*o);
  else if (o->verify->parsed())
    st = cmd_verify(*o);
  else if (o->pcr->parsed())
    st = cmd_pcr11(*o);
  if (!st) return fail(kTool, st.error());
  return done();
}

}  // namespace cfs::tools::uki_cli
