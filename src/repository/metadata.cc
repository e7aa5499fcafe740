// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/repository/metadata.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <nlohmann/json.hpp>

namespace cfs::repository {

using fsverity::HashAlg;

std::string algorithm_name(HashAlg alg) { return fmt::format("fsverity-{}-12", hash_name(alg)); }

std::string_view hash_name(HashAlg alg) { return alg == HashAlg::Sha256 ? "sha256" : "sha512"; }

Result<HashAlg> parse_algorithm(std::string_view s) {
  constexpr std::string_view kPrefix = "fsverity-";
  if (s.substr(0, kPrefix.size()) != kPrefix)
    return errorf(Errc::InvalidArgument, "algorithm '{}' must start with 'fsverity-'", s);
  std::string_view rest = s.substr(kPrefix.size());
  auto dash = rest.rfind('-');
  if (dash == std::string_view::npos)
    return errorf(Errc::InvalidArgument, "algorithm '{}' must be 'fsverity-<hash>-<lg_blocksize>'",
                  s);
  std::string_view hash = rest.substr(0, dash), lg = rest.substr(dash + 1);
  if (lg != "12")
    return errorf(Errc::InvalidArgument,
                  "algorithm '{}': unsupported lg_blocksize '{}' (only 12 is supported)", s, lg);
  if (hash == "sha256") return HashAlg::Sha256;
  if (hash == "sha512") return HashAlg::Sha512;
  return errorf(Errc::InvalidArgument,
                "algorithm '{}': unsupported hash '{}' (expected sha256 or sha512)", s, hash);
}

std::vector<uint32_t> FormatConfig::versions() const {
  std::vector<uint32_t> out{default_version};
  for (uint32_t v : extra)
    if (v != default_version) out.push_back(v);
  return out;
}

std::string FormatConfig::to_string() const {
  return fmt::format("{}", fmt::join(versions(), "+"));
}

Metadata Metadata::create(HashAlg alg, const FormatConfig& formats) {
  Metadata m;
  m.alg = alg;
  m.erofs_formats = formats;
  if (formats.default_version == 1) m.features.read_only_compatible.emplace_back(kFeatureV1Erofs);
  return m;
}

FormatConfig Metadata::format_config() const {
  const FormatConfig legacy{2, {}};
  if (erofs_formats != legacy) return erofs_formats;
  const auto& ro = features.read_only_compatible;
  if (std::find(ro.begin(), ro.end(), kFeatureV1Erofs) != ro.end()) return {1, {}};
  return legacy;
}

std::string Metadata::to_json() const {
  using nlohmann::ordered_json;
  // Field order and names as composefs-rs's RepoMetadata serialises them.
  ordered_json j;
  j["version"] = version;
  j["algorithm"] = algorithm_name(alg);
  ordered_json f = ordered_json::object();
  f["compatible"] = features.compatible;
  f["read-only-compatible"] = features.read_only_compatible;
  f["incompatible"] = features.incompatible;
  j["features"] = f;
  ordered_json e = ordered_json::object();
  e["default"] = erofs_formats.default_version;
  if (!erofs_formats.extra.empty()) {
    ordered_json extra = ordered_json::array();
    for (uint32_t v : erofs_formats.extra) extra.push_back(v);
    e["extra"] = extra;
  }
  j["erofs_formats"] = e;
  return j.dump(2) + "\n";
}

namespace {

using json = nlohmann::json;

Result<uint32_t> get_u32(const json& v, std::string_view what) {
  if (!v.is_number_unsigned() || v.get<uint64_t>() > UINT32_MAX)
    return errorf(Errc::Corrupt, "'{}' must be an unsigned 32-bit integer", what);
  return static_cast<uint32_t>(v.get<uint64_t>());
}

Result<uint32_t> get_format_version(const json& v, std::string_view what) {
  CFS_TRY_ASSIGN(uint32_t n, get_u32(v, what));
  if (n > 2) return errorf(Errc::Corrupt, "'{}': unknown EROFS format version {}", what, n);
  return n;
}

Result<std::vector<std::string>> get_strings(const json& obj, const char* key,
                                             std::string_view what) {
  std::vector<std::string> out;
  auto it = obj.find(key);
  if (it == obj.end()) return out;
  if (!it->is_array()) return errorf(Errc::Corrupt, "'{}.{}' must be an array", what, key);
  for (const auto& s : *it) {
    if (!s.is_string())
      return errorf(Errc::Corrupt, "'{}.{}' must contain only strings", what, key);
    out.push_back(s.get<std::string>());
  }
  return out;
}

}  // namespace

Result<Metadata> Metadata::parse(std::string_view text) {
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return make_error(Errc::Corrupt, "meta.json is not valid JSON");
  if (!j.is_object()) return make_error(Errc::Corrupt, "meta.json is not a JSON object");
  Metadata m;
  auto v = j.find("version");
  if (v == j.end()) return make_error(Errc::Corrupt, "meta.json: missing field 'version'");
  CFS_TRY_ASSIGN(m.version, get_u32(*v, "version"));
  auto a = j.find("algorithm");
  if (a == j.end()) return make_error(Errc::Corrupt, "meta.json: missing field 'algorithm'");
  if (!a->is_string()) return make_error(Errc::Corrupt, "meta.json: 'algorithm' must be a string");
  auto alg = parse_algorithm(a->get<std::string>());
  if (!alg) return tl::unexpected(Error(Errc::Corrupt, "meta.json: " + alg.error().message()));
  m.alg = *alg;
  if (auto f = j.find("features"); f != j.end()) {
    if (!f->is_object())
      return make_error(Errc::Corrupt, "meta.json: 'features' must be an object");
    CFS_TRY_ASSIGN(m.features.compatible, get_strings(*f, "compatible", "features"));
    CFS_TRY_ASSIGN(m.features.read_only_compatible,
                   get_strings(*f, "read-only-compatible", "features"));
    CFS_TRY_ASSIGN(m.features.incompatible, get_strings(*f, "incompatible", "features"));
  }
  if (auto e = j.find("erofs_formats"); e != j.end()) {
    if (!e->is_object())
      return make_error(Errc::Corrupt, "meta.json: 'erofs_formats' must be an object");
    auto d = e->find("default");
    if (d == e->end())
      return make_error(Errc::Corrupt, "meta.json: missing field 'erofs_formats.default'");
    CFS_TRY_ASSIGN(m.erofs_formats.default_version,
                   get_format_version(*d, "erofs_formats.default"));
    m.erofs_formats.extra.clear();
    if (auto x = e->find("extra"); x != e->end()) {
      if (!x->is_array())
        return make_error(Errc::Corrupt, "meta.json: 'erofs_formats.extra' must be an array");
      for (const auto& n : *x) {
        CFS_TRY_ASSIGN(uint32_t ver, get_format_version(n, "erofs_formats.extra"));
        m.erofs_formats.extra.insert(ver);
      }
    }
  }
  return m;
}

Result<std::vector<std::string>> Metadata::check() const {
  if (version > kRepoFormatVersion)
    return errorf(Errc::Unsupported,
                  "unsupported repository format version {} (this tool supports up to {})", version,
                  kRepoFormatVersion);
  // None are defined yet: every incompatible feature is unknown.
  if (!features.incompatible.empty())
    return errorf(Errc::Unsupported, "repository requires unknown incompatible features: {}",
                  fmt::join(features.incompatible, ", "));
  std::vector<std::string> unknown_ro;
  for (const auto& f : features.read_only_compatible)
    if (f != kFeatureV1Erofs) unknown_ro.push_back(f);
  return unknown_ro;
}

}  // namespace cfs::repository
