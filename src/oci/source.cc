// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/oci/source.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <map>
#include <nlohmann/json.hpp>

#include "composefs-cpp/base/fd.h"
#include "composefs-cpp/oci/decompress.h"
#include "composefs-cpp/oci/registry.h"
#include "composefs-cpp/oci/tar.h"

namespace cfs::oci {
namespace {

using json = nlohmann::json;

// Read access to files of a layout: a directory or members of a tar file.
class Files {
 public:
  virtual ~Files() = default;
  virtual Result<std::unique_ptr<Reader>> open(const std::string& path) = 0;
  virtual bool exists(const std::string& path) = 0;
  Result<std::string> read(const std::string& path, size_t max) {
    CFS_TRY_ASSIGN(auto r, open(path));
    auto s = read_all(*r, max, path);
    if (!s) return tl::unexpected(std::move(s.error()));
    return s;
  }
};

class DirFiles : public Files {
 public:
  static Result<std::unique_ptr<DirFiles>> open_dir(const std::string& dir) {
    CFS_TRY_ASSIGN(UniqueFd fd, open_at(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    auto f = std::make_unique<DirFiles>();
    f->dir_ = std::move(fd);
    f->name_ = dir;
    return f;
  }
  Result<std::unique_ptr<Reader>> open(const std::string& path) override {
    // O_NOFOLLOW on the last component and no ".." in our own paths.
    int fd = ::openat(dir_.get(), path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return sys_error(fmt::format("cannot open '{}/{}'", name_, path));
    struct Owning : FdReader {
      explicit Owning(int f) : FdReader(f), fd(f) {}
      UniqueFd fd;
    };
    return std::unique_ptr<Reader>(std::make_unique<Owning>(fd));
  }
  bool exists(const std::string& path) override {
    struct stat st;
    return ::fstatat(dir_.get(), path.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
  }

 private:
  UniqueFd dir_;
  std::string name_;
};

// The regular-file members of a tar archive, indexed once, read by offset.
class ArchiveFiles : public Files {
 public:
  static Result<std::unique_ptr<ArchiveFiles>> open_archive(const std::string& file) {
    auto a = std::make_unique<ArchiveFiles>();
    CFS_TRY_ASSIGN(a->fd_, open_at(AT_FDCWD, file, O_RDONLY | O_CLOEXEC));
    FdReader in(a->fd_.get());
    TarReader tar(in);
    for (;;) {
      auto e = tar.next();
      if (!e)
        return tl::unexpected(std::move(e.error()).context(fmt::format("archive '{}'", file)));
      if (!*e) break;
      if ((*e)->type == TarType::Regular) a->members_[(*e)->path] = {tar.offset(), (*e)->size};
      if ((*e)->type == TarType::Symlink) a->links_[(*e)->path] = (*e)->link;
    }
    // docker save links layer files to each other: resolve links to members.
    for (auto& [path, target] : a->links_) {
      std::string dir = path.find('/') == std::string::npos ? "" : path.substr(0, path.rfind('/'));
      std::string joined = target.starts_with("/") ? target : dir + "/" + target;
      std::vector<std::string> parts;
      size_t i = 0;
      while (i <= joined.size()) {
        size_t j = std::min(joined.find('/', i), joined.size());
        std::string c = joined.substr(i, j - i);
        if (c == "..") {
          if (!parts.empty()) parts.pop_back();
        } else if (!c.empty() && c != ".") {
          parts.push_back(c);
        }
        i = j + 1;
      }
      std::string t;
      for (auto& c : parts) t += (t.empty() ? "" : "/") + c;
      if (auto it = a->members_.find(t); it != a->members_.end()) a->members_[path] = it->second;
    }
    return a;
  }
  Result<std::unique_ptr<Reader>> open(const std::string& path) override {
    auto it = members_.find(path);
    if (it == members_.end()) return errorf(Errc::NotFound, "archive has no member '{}'", path);
    return std::unique_ptr<Reader>(
        std::make_unique<RangeReader>(fd_.get(), it->second.first, it->second.second));
  }
  bool exists(const std::string& path) override { return members_.count(path) != 0; }

 private:
  UniqueFd fd_;
  std::map<std::string, std::pair<uint64_t, uint64_t>> members_;
  std::map<std::string, std::string> links_;
};

std::string blob_path(const std::string& digest) {
  return "blobs/sha256/" + digest.substr(7);  // digest validated by the parser
}

// An OCI image layout (directory or archive).
class LayoutSource : public Source {
 public:
  LayoutSource(std::unique_ptr<Files> files, std::string tag)
      : files_(std::move(files)), tag_(std::move(tag)) {}

  Result<std::string> root_manifest(std::string& pinned) override {
    CFS_TRY_ASSIGN(std::string layout, files_->read("oci-layout", 4096));
    json lj = json::parse(layout, nullptr, false);
    if (lj.is_discarded() || !lj.is_object() || !lj.contains("imageLayoutVersion"))
      return make_error(Errc::Corrupt, "oci-layout: not an OCI image layout marker");
    CFS_TRY_ASSIGN(std::string idx_json, files_->read("index.json", kMaxManifestSize));
    auto idx = parse_index(idx_json);
    if (!idx) return tl::unexpected(std::move(idx.error()).context("index.json"));
    const Descriptor* pick = nullptr;
    std::string tags;
    for (auto& d : idx->manifests) {
      auto it = d.annotations.find("org.opencontainers.image.ref.name");
      std::string name = it == d.annotations.end() ? "" : it->second;
      tags += " '" + name + "'";
      if (tag_.empty() ? idx->manifests.size() == 1 : name == tag_) pick = &d;
    }
    if (!pick) {
      if (tag_.empty())
        return errorf(Errc::InvalidArgument,
                      "the layout holds {} images; name one with :TAG (tags:{})",
                      idx->manifests.size(), tags);
      return errorf(Errc::NotFound, "no image tagged '{}' in the layout (tags:{})", tag_, tags);
    }
    pinned = pick->digest;
    return fetch_verified(*this, *pick, kMaxManifestSize, "manifest");
  }
  Result<std::string> manifest(const Descriptor& d) override {
    return fetch_verified(*this, d, kMaxManifestSize, "manifest");
  }
  Result<std::unique_ptr<Reader>> open_blob(const Descriptor& d) override {
    return files_->open(blob_path(d.digest));
  }

 private:
  std::unique_ptr<Files> files_;
  std::string tag_;
};

// Docker's short names: "img:t" is "docker.io/library/img:t", "a/b:t" is
// "docker.io/a/b:t".
std::string normalize_repo_tag(const std::string& t) {
  size_t slash = t.find('/');
  std::string first = t.substr(0, slash);
  bool has_host =
      slash != std::string::npos && (first.find('.') != std::string::npos ||
                                     first.find(':') != std::string::npos || first == "localhost");
  if (has_host) return t;
  return slash == std::string::npos ? "docker.io/library/" + t : "docker.io/" + t;
}

// `docker save` output: manifest.json names the config and layer files; we
// present it as an OCI manifest of our own making.
class DockerArchiveSource : public Source {
 public:
  DockerArchiveSource(std::unique_ptr<ArchiveFiles> files, std::string tag)
      : files_(std::move(files)), tag_(std::move(tag)) {}

  Result<std::string> root_manifest(std::string& pinned) override {
    pinned.clear();
    CFS_TRY_ASSIGN(std::string mj, files_->read("manifest.json", kMaxManifestSize));
    json m = json::parse(mj, nullptr, false);
    if (m.is_discarded() || !m.is_array() || m.empty())
      return make_error(Errc::Corrupt, "docker-archive manifest.json: not a non-empty array");
    const json* pick = nullptr;
    for (auto& img : m) {
      if (!img.is_object()) return make_error(Errc::Corrupt, "manifest.json: bad entry");
      if (tag_.empty()) {
        if (m.size() == 1) pick = &img;
        continue;
      }
      if (auto t = img.find("RepoTags"); t != img.end() && t->is_array())
        for (auto& s : *t)
          if (s.is_string() && normalize_repo_tag(s.get<std::string>()) == normalize_repo_tag(tag_))
            pick = &img;
    }
    if (!pick)
      return tag_.empty() ? errorf(Errc::InvalidArgument,
                                   "the archive holds {} images; name one with :REPO:TAG", m.size())
                          : errorf(Errc::NotFound, "no image tagged '{}' in the archive", tag_);
    auto cfg = pick->find("Config");
    auto layers = pick->find("Layers");
    if (cfg == pick->end() || !cfg->is_string() || layers == pick->end() || !layers->is_array())
      return make_error(Errc::Corrupt, "manifest.json: entry without Config or Layers");
    std::string cfg_path = cfg->get<std::string>();
    CFS_TRY_ASSIGN(std::string config, files_->read(cfg_path, kMaxConfigSize));
    std::string cfg_digest = sha256_digest(config);
    paths_[cfg_digest] = cfg_path;
    json out;
    out["schemaVersion"] = 2;
    out["mediaType"] = kOciManifest;
    out["config"] = {{"mediaType", kOciConfig}, {"digest", cfg_digest}, {"size", config.size()}};
    out["layers"] = json::array();
    for (auto& l : *layers) {
      if (!l.is_string()) return make_error(Errc::Corrupt, "manifest.json: bad layer path");
      std::string path = l.get<std::string>();
      CFS_TRY_ASSIGN(auto r, files_->open(path));
      // One pass over each layer: its digest and its compression.
      VerifyingReader v(*r, path);
      uint8_t head[4] = {};
      uint8_t buf[65536];
      uint64_t size = 0;
      for (;;) {
        CFS_TRY_ASSIGN(size_t n, v.read(buf));
        if (n == 0) break;
        if (size == 0) std::memcpy(head, buf, std::min<size_t>(n, 4));
        size += n;
      }
      const char* mt = "application/vnd.oci.image.layer.v1.tar";
      switch (sniff_compression(head)) {
        case Compression::Gzip: mt = "application/vnd.oci.image.layer.v1.tar+gzip"; break;
        case Compression::Zstd: mt = "application/vnd.oci.image.layer.v1.tar+zstd"; break;
        case Compression::None: break;
      }
      paths_[v.digest()] = path;
      out["layers"].push_back({{"mediaType", mt}, {"digest", v.digest()}, {"size", size}});
    }
    return out.dump();
  }
  Result<std::string> manifest(const Descriptor&) override {
    return make_error(Errc::Corrupt, "docker-archive has no image index");
  }
  Result<std::unique_ptr<Reader>> open_blob(const Descriptor& d) override {
    auto it = paths_.find(d.digest);
    if (it == paths_.end()) return errorf(Errc::NotFound, "no blob {} in the archive", d.digest);
    return files_->open(it->second);
  }

 private:
  std::unique_ptr<ArchiveFiles> files_;
  std::string tag_;
  std::map<std::string, std::string> paths_;
};

// "PATH[:TAG]": the tag is what follows the last ':' unless it holds a '/'.
std::pair<std::string, std::string> split_tag(std::string_view s) {
  size_t c = s.rfind(':');
  if (c == std::string_view::npos || s.substr(c + 1).find('/') != std::string_view::npos)
    return {std::string(s), ""};
  return {std::string(s.substr(0, c)), std::string(s.substr(c + 1))};
}

}  // namespace

Result<std::string> fetch_verified(Source& src, const Descriptor& d, size_t max_size,
                                   std::string_view what) {
  if (d.size > max_size)
    return errorf(Errc::TooBig, "{} {} of {} bytes (limit {})", what, d.digest, d.size, max_size);
  CFS_TRY_ASSIGN(auto r, src.open_blob(d));
  VerifyingReader v(*r, fmt::format("{} {}", what, d.digest), d.digest,
                    static_cast<int64_t>(d.size));
  return read_all(v, max_size, what);
}

Result<std::unique_ptr<Source>> open_source(const std::string& ref, const SourceOptions& opts) {
  std::string_view r = ref;
  if (r.starts_with("oci:")) {
    auto [dir, tag] = split_tag(r.substr(4));
    CFS_TRY_ASSIGN(auto files, DirFiles::open_dir(dir));
    return std::unique_ptr<Source>(std::make_unique<LayoutSource>(std::move(files), tag));
  }
  if (r.starts_with("oci-archive:")) {
    auto [file, tag] = split_tag(r.substr(12));
    CFS_TRY_ASSIGN(auto files, ArchiveFiles::open_archive(file));
    return std::unique_ptr<Source>(std::make_unique<LayoutSource>(std::move(files), tag));
  }
  if (r.starts_with("docker-archive:")) {
    // FILE[:REPO:TAG]: the file name ends at the first ':'.
    std::string_view rest = r.substr(15);
    size_t c = rest.find(':');
    std::string file(rest.substr(0, c));
    std::string tag = c == std::string_view::npos ? "" : std::string(rest.substr(c + 1));
    CFS_TRY_ASSIGN(auto files, ArchiveFiles::open_archive(file));
    return std::unique_ptr<Source>(std::make_unique<DockerArchiveSource>(std::move(files), tag));
  }
  if (r.starts_with("docker://")) return open_registry(std::string(r.substr(9)), opts);
  return errorf(Errc::InvalidArgument,
                "unknown image source '{}' (use oci:DIR[:TAG], oci-archive:FILE[:TAG], "
                "docker-archive:FILE[:REPO:TAG] or docker://HOST/REPO[:TAG])",
                ref);
}

Result<ResolvedImage> resolve(Source& src, const Platform& platform) {
  ResolvedImage img;
  std::string pinned;
  CFS_TRY_ASSIGN(std::string doc, src.root_manifest(pinned));
  std::string digest = sha256_digest(doc);
  if (!pinned.empty() && digest != pinned)
    return errorf(Errc::VerityMismatch, "manifest digest mismatch: expected {}, got {}", pinned,
                  digest);
  CFS_TRY_ASSIGN(std::string mt, document_media_type(doc));
  if (is_index_type(mt)) {
    CFS_TRY_ASSIGN(Index idx, parse_index(doc));
    CFS_TRY_ASSIGN(Descriptor d, select_platform(idx, platform));
    if (d.size > kMaxManifestSize) return errorf(Errc::TooBig, "manifest of {} bytes", d.size);
    CFS_TRY_ASSIGN(doc, src.manifest(d));
    digest = sha256_digest(doc);
    if (digest != d.digest || doc.size() != d.size)
      return errorf(Errc::VerityMismatch, "manifest digest mismatch: expected {}, got {}", d.digest,
                    digest);
  }
  img.manifest_digest = digest;
  img.manifest_json = doc;
  CFS_TRY_ASSIGN(img.manifest, parse_manifest(doc));
  CFS_TRY_ASSIGN(img.config_json,
                 fetch_verified(src, img.manifest.config, kMaxConfigSize, "config"));
  CFS_TRY_ASSIGN(img.config, parse_config(img.config_json));
  if (img.config.diff_ids.size() != img.manifest.layers.size())
    return errorf(Errc::Corrupt, "the manifest lists {} layers but the config {} diff_ids",
                  img.manifest.layers.size(), img.config.diff_ids.size());
  return img;
}

}  // namespace cfs::oci
