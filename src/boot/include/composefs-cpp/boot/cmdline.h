// SPDX-License-Identifier: Apache-2.0
// Kernel command lines and the composefs kernel arguments in them, with both
// of composefs-rs's semantics (composefs-boot's and composefs-setup-root's)
// and its rendering.
//
// Two keys name the image to mount at boot:
//   composefs=[?]<hex>                                  the legacy V2 shorthand
//   composefs.digest=[?]<v1|v2>-<sha256|sha512>-12:<hex>  self-describing
// A '?' right after '=' makes fs-verity optional at boot (insecure).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "composefs-cpp/base/error.h"
#include "composefs-cpp/fsverity/sha.h"

namespace cfs::boot {

inline constexpr std::string_view kKargLegacy = "composefs";
inline constexpr std::string_view kKargDigest = "composefs.digest";

// Splits a command line as the kernel (and composefs-rs) do: on ASCII
// whitespace (space, \t, \n, \f, \r) outside double quotes; a '"' toggles
// quoting, nothing escapes, and tokens keep their quotes.  Empty tokens are
// dropped.  A systemd-boot "initrd=\path " prefix is just another token.
std::vector<std::string_view> split_cmdline(std::string_view cmdline);

// A parsed composefs karg.  `version` is the EROFS layout family the digest
// is of: 1 (formats 0 and 1, the C reference's) or 2 (composefs-rs's own).
struct ComposefsKarg {
  uint32_t version = 1;
  fsverity::HashAlg alg = fsverity::HashAlg::Sha512;
  std::vector<uint8_t> digest;  // the image's fs-verity digest
  bool insecure = false;
  friend bool operator==(const ComposefsKarg&, const ComposefsKarg&) = default;

  std::string hex() const;
};

// The parts of a composefs.digest= value ("v1-sha256-12:<hex>", '?' already
// stripped): split at the first ':' and then at the first '-'.  Errors:
// missing separators, a version other than v1/v2 ("unsupported format
// version"), an unknown hash or a block size other than 12 ("unsupported").
struct DigestDescriptor {
  uint32_t version = 1;
  fsverity::HashAlg alg = fsverity::HashAlg::Sha512;
};
Result<std::pair<DigestDescriptor, std::string_view>> parse_digest_value(std::string_view value);

// composefs-boot's parser (ComposefsCmdline::from_cmdline; bootc and UKI
// validation use it), for one digest algorithm:
//  1. the first composefs.digest= token whose algorithm is `alg` (tokens of
//     the other algorithm are skipped; a malformed descriptor or digest is an
//     error) gives V1 or V2 after its descriptor;
//  2. only then the first composefs= token, whose hex must be a digest of
//     `alg`, gives V2.
// So composefs.digest= wins wherever it is.  nullopt when neither matches.
Result<std::optional<ComposefsKarg>> parse_composefs_cmdline(std::string_view cmdline,
                                                             fsverity::HashAlg alg);

// composefs-setup-root's parser (parse_composefs_kargs): every composefs
// karg in command-line order, no priority; the initramfs tries each and
// falls back to the next only when the image does not exist.  composefs=
// takes sha512 or sha256 by length.  Any malformed token is an error; the
// hex is kept as written and the version is not kept (the initramfs does
// not use it).  An empty list means no composefs karg (setup-root then
// fails with "no composefs karg found in kernel cmdline").
struct SetupRootKarg {
  std::string hex;
  bool insecure = false;
  fsverity::HashAlg alg = fsverity::HashAlg::Sha512;
  friend bool operator==(const SetupRootKarg&, const SetupRootKarg&) = default;
};
Result<std::vector<SetupRootKarg>> parse_setup_root_kargs(std::string_view cmdline);

// composefs-rs's rendering (to_cmdline_arg / make_cmdline_composefs):
//   version 1: composefs.digest=[?]v1-<hash>-12:<hex>
//   version 2: composefs=[?]<hex>
// (composefs.digest=v2-... is parsed but never rendered.)
std::string render_karg(const ComposefsKarg& karg);

// What a sealed command line carries.
enum class KargForms {
  Both,    // composefs.digest=v1-... then composefs=...: every parser finds it
  Digest,  // only composefs.digest=v1-... (composefs-rs 0.9's V1 repositories)
  Legacy,  // only composefs=... (bootc <= 1.16.13 and its initramfs unit)
};
Result<KargForms> parse_karg_forms(std::string_view s);

// The composefs kargs to seal for an image.  `v1` is the digest of its V1
// (formats 0/1) image, `v2` of its V2 image when the repository writes both.
// Both forms (the default) give "composefs.digest=[?]v1-<h>-12:<v1>
// composefs=[?]<v2 or v1>": composefs-boot and setup-root pick the V1 image,
// and older bootc initramfs units, which only match "composefs", find the
// image they know.  Legacy alone carries v2 if given, else v1.
struct SealedDigests {
  fsverity::HashAlg alg = fsverity::HashAlg::Sha512;
  std::optional<std::vector<uint8_t>> v1;
  std::optional<std::vector<uint8_t>> v2;
  bool insecure = false;
};
Result<std::string> render_sealed_kargs(const SealedDigests& d, KargForms forms = KargForms::Both);

// `cmdline` with every composefs= and composefs.digest= token removed (so a
// freshly computed karg replaces, never duplicates, an old one); other
// tokens keep their order, separated by single spaces.
std::string strip_composefs_kargs(std::string_view cmdline);

// composefs-rs's validate_digest: the karg's digest must be one of
// `acceptable` (the V1/V2 variant is not compared with the image format).
Status validate_digest(const ComposefsKarg& karg,
                       const std::vector<std::vector<uint8_t>>& acceptable);

}  // namespace cfs::boot
