// SPDX-License-Identifier: Apache-2.0
// meta.json, the repository's description, in composefs-rs's format: a
// format version, the fs-verity algorithm, three tiers of feature flags and
// the EROFS format(s) images are written in.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "composefs-cpp/base/error.h"
#include "composefs-cpp/fsverity/sha.h"

namespace cfs::repository {

inline constexpr uint32_t kRepoFormatVersion = 1;
inline constexpr std::string_view kMetadataFile = "meta.json";
// The read-only-compatible flag composefs-rs sets when images are format 1.
inline constexpr std::string_view kFeatureV1Erofs = "v1_erofs";

// "fsverity-sha256-12" / "fsverity-sha512-12" (the only block size is 4096).
std::string algorithm_name(fsverity::HashAlg alg);
Result<fsverity::HashAlg> parse_algorithm(std::string_view s);
// "sha256:<hex>" style prefix: "sha256" / "sha512".
std::string_view hash_name(fsverity::HashAlg alg);

// Which EROFS layouts a repository's images are written in (composefs-rs's
// FormatConfig): 0 and 1 are the C reference's, 2 is composefs-rs's own.
struct FormatConfig {
  uint32_t default_version = 1;
  std::set<uint32_t> extra;
  friend bool operator==(const FormatConfig&, const FormatConfig&) = default;

  // The formats images are committed in: the default first, then the extra
  // ones ascending (a repeat of the default left out).
  std::vector<uint32_t> versions() const;
  // "1", or with extra formats "1+2".
  std::string to_string() const;
};

struct Features {
  std::vector<std::string> compatible;
  std::vector<std::string> read_only_compatible;
  std::vector<std::string> incompatible;
  friend bool operator==(const Features&, const Features&) = default;
};

struct Metadata {
  uint32_t version = kRepoFormatVersion;
  fsverity::HashAlg alg = fsverity::HashAlg::Sha256;
  Features features;
  // As stored; absent in repositories older than the field, which then mean
  // format 2 unless "v1_erofs" is among the read-only-compatible features.
  FormatConfig erofs_formats{2, {}};
  friend bool operator==(const Metadata&, const Metadata&) = default;

  // What a new repository gets: the given formats, with "v1_erofs" set when
  // the default is 1 (so older tools open it read-only).
  static Metadata create(fsverity::HashAlg alg, const FormatConfig& formats);

  // The effective formats, resolving old repositories as composefs-rs does.
  FormatConfig format_config() const;

  // Pretty-printed JSON (two-space indent) and a final newline, byte for byte
  // what composefs-rs writes.
  std::string to_json() const;
  // Unknown fields are ignored; wrong types, unknown algorithms and format
  // versions are errors.
  static Result<Metadata> parse(std::string_view json);

  // Refuses a newer format version and unknown incompatible features; the
  // unknown read-only-compatible features (which forbid writing) are returned.
  Result<std::vector<std::string>> check() const;
};

}  // namespace cfs::repository
