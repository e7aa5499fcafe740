// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/boot/cmdline.h"

#include <fmt/format.h>

#include "composefs-cpp/base/hex.h"
#include "composefs-cpp/repository/metadata.h"

namespace cfs::boot {

using fsverity::HashAlg;

namespace {

// Rust's char::is_ascii_whitespace, which composefs-rs splits on (no \v).
bool is_cmdline_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
}

std::string_view strip_prefix(std::string_view s, std::string_view prefix, bool* matched) {
  *matched = s.substr(0, prefix.size()) == prefix;
  return *matched ? s.substr(prefix.size()) : s;
}

std::pair<std::string_view, bool> strip_insecure(std::string_view v) {
  if (!v.empty() && v[0] == '?') return {v.substr(1), true};
  return {v, false};
}

std::string_view alg_suffix(HashAlg alg) { return repository::hash_name(alg); }

// The hex of one digest of `alg`: exactly 2 * digest-size hex digits.
Result<std::vector<uint8_t>> decode_digest(std::string_view hex, HashAlg alg,
                                           std::string_view key) {
  size_t want = 2 * fsverity::hash_digest_size(alg);
  auto bytes = hex.size() == want ? from_hex(hex) : std::nullopt;
  if (!bytes)
    return errorf(Errc::InvalidArgument,
                  "{}= digest '{}': got {} characters, expected {} hex digits for fsverity-{}-12",
                  key, hex, hex.size(), want, alg_suffix(alg));
  return std::move(*bytes);
}

const std::string kDigestKeyEq = std::string(kKargDigest) + "=";
const std::string kLegacyKeyEq = std::string(kKargLegacy) + "=";

}  // namespace

std::string ComposefsKarg::hex() const { return to_hex(digest); }

std::vector<std::string_view> split_cmdline(std::string_view cmdline) {
  std::vector<std::string_view> out;
  bool quoted = false;
  size_t start = 0;
  for (size_t i = 0; i <= cmdline.size(); i++) {
    bool end = i == cmdline.size();
    if (!end && cmdline[i] == '"') quoted = !quoted;
    if (end || (!quoted && is_cmdline_space(cmdline[i]))) {
      if (i > start) out.push_back(cmdline.substr(start, i - start));
      start = i + 1;
    }
  }
  return out;
}

Result<std::pair<DigestDescriptor, std::string_view>> parse_digest_value(std::string_view value) {
  size_t colon = value.find(':');
  if (colon == std::string_view::npos)
    return errorf(Errc::InvalidArgument, "expected '<version>-<hash>-<blocksize>:<hex>', got '{}'",
                  value);
  std::string_view desc = value.substr(0, colon), hex = value.substr(colon + 1);
  size_t dash = desc.find('-');
  if (dash == std::string_view::npos)
    return errorf(Errc::InvalidArgument, "expected 'v<N>-<hash>-<blocksize>', got '{}'", desc);
  std::string_view version = desc.substr(0, dash);
  DigestDescriptor d;
  if (version == "v1")
    d.version = 1;
  else if (version == "v2")
    d.version = 2;
  else
    return errorf(Errc::InvalidArgument, "unsupported format version '{}'", version);
  auto alg = repository::parse_algorithm(fmt::format("fsverity-{}", desc.substr(dash + 1)));
  if (!alg) return tl::unexpected(std::move(alg.error()));
  d.alg = *alg;
  return std::pair{d, hex};
}

Result<std::optional<ComposefsKarg>> parse_composefs_cmdline(std::string_view cmdline,
                                                             HashAlg alg) {
  auto tokens = split_cmdline(cmdline);
  for (std::string_view tok : tokens) {
    bool m;
    std::string_view val = strip_prefix(tok, kDigestKeyEq, &m);
    if (!m) continue;
    auto [rest, insecure] = strip_insecure(val);
    auto parsed = parse_digest_value(rest);
    if (!parsed) return tl::unexpected(std::move(parsed.error()).context(std::string(tok)));
    auto [desc, hex] = *parsed;
    if (desc.alg != alg) continue;  // another algorithm's image: not ours to judge
    auto digest = decode_digest(hex, alg, kKargDigest);
    if (!digest) return tl::unexpected(std::move(digest.error()));
    return ComposefsKarg{desc.version, alg, std::move(*digest), insecure};
  }
  for (std::string_view tok : tokens) {
    bool m;
    std::string_view val = strip_prefix(tok, kLegacyKeyEq, &m);
    if (!m) continue;
    auto [hex, insecure] = strip_insecure(val);
    auto digest = decode_digest(hex, alg, kKargLegacy);
    if (!digest) return tl::unexpected(std::move(digest.error()));
    return ComposefsKarg{2, alg, std::move(*digest), insecure};
  }
  return std::optional<ComposefsKarg>{};
}

Result<std::vector<SetupRootKarg>> parse_setup_root_kargs(std::string_view cmdline) {
  std::vector<SetupRootKarg> out;
  for (std::string_view tok : split_cmdline(cmdline)) {
    bool m;
    std::string_view val = strip_prefix(tok, kDigestKeyEq, &m);
    if (m) {
      auto [rest, insecure] = strip_insecure(val);
      auto parsed = parse_digest_value(rest);
      if (!parsed) return tl::unexpected(std::move(parsed.error()).context(std::string(tok)));
      auto [desc, hex] = *parsed;
      CFS_TRY(decode_digest(hex, desc.alg, kKargDigest));
      out.push_back({std::string(hex), insecure, desc.alg});
      continue;
    }
    val = strip_prefix(tok, kLegacyKeyEq, &m);
    if (!m) continue;
    auto [hex, insecure] = strip_insecure(val);
    HashAlg a;
    if (hex.size() == 128)
      a = HashAlg::Sha512;
    else if (hex.size() == 64)
      a = HashAlg::Sha256;
    else
      return errorf(Errc::InvalidArgument,
                    "invalid composefs= digest length: {} (expected 64 or 128 hex digits) in '{}'",
                    hex.size(), tok);
    CFS_TRY(decode_digest(hex, a, kKargLegacy));
    out.push_back({std::string(hex), insecure, a});
  }
  return out;
}

std::string render_karg(const ComposefsKarg& k) {
  const char* q = k.insecure ? "?" : "";
  if (k.version == 2) return fmt::format("{}={}{}", kKargLegacy, q, k.hex());
  return fmt::format("{}={}v1-{}-12:{}", kKargDigest, q, alg_suffix(k.alg), k.hex());
}

Result<KargForms> parse_karg_forms(std::string_view s) {
  if (s == "both") return KargForms::Both;
  if (s == "digest" || s == "composefs.digest") return KargForms::Digest;
  if (s == "legacy" || s == "composefs") return KargForms::Legacy;
  return errorf(Errc::InvalidArgument, "unknown karg form '{}' (both, digest or legacy)", s);
}

Result<std::string> render_sealed_kargs(const SealedDigests& d, KargForms forms) {
  size_t want = fsverity::hash_digest_size(d.alg);
  for (const auto* p : {&d.v1, &d.v2})
    if (*p && (*p)->size() != want)
      return errorf(Errc::InvalidArgument, "a {} digest has {} bytes, not {}", alg_suffix(d.alg),
                    (*p)->size(), want);
  if (!d.v1 && (forms != KargForms::Legacy || !d.v2))
    return make_error(Errc::InvalidArgument,
                      forms == KargForms::Legacy
                          ? "no digest to seal"
                          : "sealing composefs.digest= needs the image's V1 (format 0/1) digest");
  std::string digest_form = d.v1 ? render_karg({1, d.alg, *d.v1, d.insecure}) : std::string();
  std::string legacy_form = render_karg({2, d.alg, d.v2 ? *d.v2 : *d.v1, d.insecure});
  switch (forms) {
    case KargForms::Both: return digest_form + " " + legacy_form;
    case KargForms::Digest: return digest_form;
    case KargForms::Legacy: return legacy_form;
  }
  return digest_form;
}

std::string strip_composefs_kargs(std::string_view cmdline) {
  std::string out;
  for (std::string_view tok : split_cmdline(cmdline)) {
    bool a, b;
    (void)strip_prefix(tok, kDigestKeyEq, &a);
    (void)strip_prefix(tok, kLegacyKeyEq, &b);
    if (a || b) continue;
    if (!out.empty()) out += ' ';
    out += tok;
  }
  return out;
}

Status validate_digest(const ComposefsKarg& karg,
                       const std::vector<std::vector<uint8_t>>& acceptable) {
  for (const auto& a : acceptable)
    if (a == karg.digest) return {};
  std::string list;
  for (const auto& a : acceptable) list += (list.empty() ? "" : ", ") + to_hex(a);
  return errorf(Errc::VerityMismatch,
                "The UKI has the wrong composefs digest (is '{}', should be one of [{}])",
                karg.hex(), list);
}

}  // namespace cfs::boot
