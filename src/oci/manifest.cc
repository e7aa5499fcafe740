// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/oci/manifest.h"

#include <sys/utsname.h>

#include <nlohmann/json.hpp>

#include "composefs-cpp/oci/decompress.h"
#include "composefs-cpp/oci/io.h"

namespace cfs::oci {
namespace {

using json = nlohmann::json;

Result<json> parse_json(std::string_view text, std::string_view what) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return errorf(Errc::Corrupt, "{}: not valid JSON", what);
  if (!j.is_object()) return errorf(Errc::Corrupt, "{}: not a JSON object", what);
  return j;
}

Result<std::string> get_string(const json& j, const char* key, std::string_view what,
                               bool required = true) {
  auto it = j.find(key);
  if (it == j.end()) {
    if (required) return errorf(Errc::Corrupt, "{}: missing '{}'", what, key);
    return std::string();
  }
  if (!it->is_string()) return errorf(Errc::Corrupt, "{}: '{}' is not a string", what, key);
  return it->get<std::string>();
}

Status check_schema_version(const json& j, std::string_view what) {
  auto it = j.find("schemaVersion");
  if (it == j.end() || !it->is_number_integer())
    return errorf(Errc::Corrupt, "{}: missing schemaVersion", what);
  if (it->get<int64_t>() == 1) return make_error(Errc::Unsupported, std::string(kSchema1Message));
  if (it->get<int64_t>() != 2)
    return errorf(Errc::Unsupported, "{}: schemaVersion {}", what, it->dump());
  return {};
}

Result<Descriptor> parse_descriptor(const json& j, std::string_view what) {
  if (!j.is_object()) return errorf(Errc::Corrupt, "{}: descriptor is not an object", what);
  Descriptor d;
  CFS_TRY_ASSIGN(d.media_type, get_string(j, "mediaType", what));
  CFS_TRY_ASSIGN(d.digest, get_string(j, "digest", what));
  auto st = check_digest(d.digest);
  if (!st) return tl::unexpected(std::move(st.error()).context(what));
  auto size = j.find("size");
  if (size == j.end() || !size->is_number_integer() || size->get<int64_t>() < 0)
    return errorf(Errc::Corrupt, "{}: descriptor {} has no valid size", what, d.digest);
  d.size = static_cast<uint64_t>(size->get<int64_t>());
  if (auto p = j.find("platform"); p != j.end()) {
    if (!p->is_object()) return errorf(Errc::Corrupt, "{}: platform is not an object", what);
    Platform pl;
    CFS_TRY_ASSIGN(pl.os, get_string(*p, "os", what));
    CFS_TRY_ASSIGN(pl.architecture, get_string(*p, "architecture", what));
    CFS_TRY_ASSIGN(pl.variant, get_string(*p, "variant", what, false));
    d.platform = std::move(pl);
  }
  if (auto a = j.find("annotations"); a != j.end()) {
    if (!a->is_object()) return errorf(Errc::Corrupt, "{}: annotations is not an object", what);
    for (auto& [k, v] : a->items()) {
      if (!v.is_string())
        return errorf(Errc::Corrupt, "{}: annotation '{}' is not a string", what, k);
      d.annotations[k] = v.get<std::string>();
    }
  }
  return d;
}

}  // namespace

bool is_index_type(std::string_view t) { return t == kOciIndex || t == kDockerList; }
bool is_manifest_type(std::string_view t) { return t == kOciManifest || t == kDockerManifest; }

Result<std::string> document_media_type(std::string_view text) {
  CFS_TRY_ASSIGN(json j, parse_json(text, "manifest"));
  CFS_TRY(check_schema_version(j, "manifest"));
  CFS_TRY_ASSIGN(std::string mt, get_string(j, "mediaType", "manifest", false));
  if (!mt.empty()) return mt;
  if (j.contains("manifests")) return std::string(kOciIndex);
  if (j.contains("config") && j.contains("layers")) return std::string(kOciManifest);
  return make_error(Errc::Corrupt, "manifest: neither an image index nor an image manifest");
}

Result<Index> parse_index(std::string_view text) {
  CFS_TRY_ASSIGN(json j, parse_json(text, "image index"));
  CFS_TRY(check_schema_version(j, "image index"));
  CFS_TRY_ASSIGN(std::string mt, get_string(j, "mediaType", "image index", false));
  if (!mt.empty() && !is_index_type(mt))
    return errorf(Errc::Corrupt, "image index: unexpected mediaType '{}'", mt);
  auto m = j.find("manifests");
  if (m == j.end() || !m->is_array())
    return make_error(Errc::Corrupt, "image index: 'manifests' is not an array");
  Index idx;
  for (auto& d : *m) {
    CFS_TRY_ASSIGN(Descriptor desc, parse_descriptor(d, "image index"));
    idx.manifests.push_back(std::move(desc));
  }
  return idx;
}

Result<Manifest> parse_manifest(std::string_view text) {
  CFS_TRY_ASSIGN(json j, parse_json(text, "image manifest"));
  CFS_TRY(check_schema_version(j, "image manifest"));
  Manifest m;
  CFS_TRY_ASSIGN(m.media_type, get_string(j, "mediaType", "image manifest", false));
  if (m.media_type.empty()) m.media_type = kOciManifest;
  if (!is_manifest_type(m.media_type))
    return errorf(Errc::Unsupported, "image manifest: unsupported mediaType '{}'", m.media_type);
  auto c = j.find("config");
  if (c == j.end()) return make_error(Errc::Corrupt, "image manifest: no config");
  CFS_TRY_ASSIGN(m.config, parse_descriptor(*c, "image manifest config"));
  if (m.config.media_type != kOciConfig && m.config.media_type != kDockerConfig)
    return errorf(Errc::Unsupported,
                  "image manifest: config media type '{}' is not a container image (artifacts "
                  "are not supported)",
                  m.config.media_type);
  if (m.config.size > kMaxConfigSize)
    return errorf(Errc::TooBig, "image manifest: config of {} bytes", m.config.size);
  auto l = j.find("layers");
  if (l == j.end() || !l->is_array())
    return make_error(Errc::Corrupt, "image manifest: 'layers' is not an array");
  for (auto& d : *l) {
    CFS_TRY_ASSIGN(Descriptor desc, parse_descriptor(d, "image manifest layer"));
    auto comp = layer_compression(desc.media_type);
    if (!comp) return tl::unexpected(std::move(comp.error()).context("image manifest"));
    m.layers.push_back(std::move(desc));
  }
  return m;
}

Result<ImageConfig> parse_config(std::string_view text) {
  CFS_TRY_ASSIGN(json j, parse_json(text, "image config"));
  ImageConfig c;
  CFS_TRY_ASSIGN(c.architecture, get_string(j, "architecture", "image config", false));
  CFS_TRY_ASSIGN(c.os, get_string(j, "os", "image config", false));
  auto r = j.find("rootfs");
  if (r == j.end() || !r->is_object()) return make_error(Errc::Corrupt, "image config: no rootfs");
  CFS_TRY_ASSIGN(std::string type, get_string(*r, "type", "image config rootfs"));
  if (type != "layers")
    return errorf(Errc::Corrupt, "image config: rootfs type '{}' (expected 'layers')", type);
  auto d = r->find("diff_ids");
  if (d == r->end() || !d->is_array())
    return make_error(Errc::Corrupt, "image config: rootfs.diff_ids is not an array");
  for (auto& id : *d) {
    if (!id.is_string())
      return make_error(Errc::Corrupt, "image config: a diff_id is not a string");
    std::string s = id.get<std::string>();
    auto st = check_digest(s);
    if (!st) return tl::unexpected(std::move(st.error()).context("image config diff_id"));
    c.diff_ids.push_back(std::move(s));
  }
  return c;
}

Platform host_platform() {
  struct utsname u {};
  ::uname(&u);
  std::string_view m = u.machine;
  Platform p{"linux", std::string(m), ""};
  if (m == "x86_64")
    p.architecture = "amd64";
  else if (m == "aarch64")
    p.architecture = "arm64";
  else if (m == "i386" || m == "i686")
    p.architecture = "386";
  else if (m.starts_with("armv7"))
    p = {"linux", "arm", "v7"};
  else if (m.starts_with("armv6"))
    p = {"linux", "arm", "v6"};
  return p;
}

Result<Descriptor> select_platform(const Index& index, const Platform& want) {
  const Descriptor* best = nullptr;
  std::string offered;
  for (auto& d : index.manifests) {
    if (!is_manifest_type(d.media_type)) continue;
    if (auto a = d.annotations.find("vnd.docker.reference.type"); a != d.annotations.end())
      continue;  // build attestations, not images
    if (!d.platform) {
      if (index.manifests.size() == 1) return d;
      continue;
    }
    auto& p = *d.platform;
    offered +=
        fmt::format(" {}/{}{}{}", p.os, p.architecture, p.variant.empty() ? "" : "/", p.variant);
    if (p.os != want.os || p.architecture != want.architecture) continue;
    if (p.variant == want.variant) return d;
    if (!best) best = &d;
  }
  if (best) return *best;
  return errorf(Errc::NotFound, "no image for {}/{}{}{} in the index (offered:{})", want.os,
                want.architecture, want.variant.empty() ? "" : "/", want.variant,
                offered.empty() ? " none" : offered);
}

}  // namespace cfs::oci
