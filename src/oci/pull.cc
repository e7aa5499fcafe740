// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/oci/pull.h"

#include <algorithm>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "composefs-cpp/oci/decompress.h"
#include "composefs-cpp/repository/images.h"

namespace cfs::oci {
namespace {

// After a layer fails to parse, the rest of its blob is read (for a digest
// mismatch, the likelier cause) only up to this much.
constexpr uint64_t kMaxDrainAfterError = 16 << 20;

std::string human_bytes(uint64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    u++;
  }
  return u == 0 ? fmt::format("{} B", b) : fmt::format("{:.2f} {}", v, units[u]);
}

// Counts the compressed bytes of a blob for progress reports.
class CountingReader : public Reader {
 public:
  CountingReader(Reader& in, std::function<void(uint64_t)> cb) : in_(in), cb_(std::move(cb)) {}
  Result<size_t> read(std::span<uint8_t> buf) override {
    CFS_TRY_ASSIGN(size_t n, in_.read(buf));
    count_ += n;
    if (cb_ && (count_ - reported_ >= (1 << 20) || n == 0)) {
      reported_ = count_;
      cb_(count_);
    }
    return n;
  }

 private:
  Reader& in_;
  std::function<void(uint64_t)> cb_;
  uint64_t count_ = 0, reported_ = 0;
};

Result<SplitStreamReader> open_stream(const Store& s, const fsverity::Digest& d,
                                      std::optional<uint64_t> type) {
  CFS_TRY_ASSIGN(UniqueFd fd, s.open_object(d));
  auto r = SplitStreamReader::open(std::move(fd), s.alg(), type);
  if (!r) return tl::unexpected(std::move(r.error()).context("split stream " + d.hex()));
  return r;
}

// The single external object of a manifest or config stream.
Result<std::string> stream_payload(const Store& s, SplitStreamReader& r, size_t max) {
  std::string out;
  for (;;) {
    CFS_TRY_ASSIGN(auto c, r.next_chunk());
    if (!c) break;
    if (!c->external) {
      out += c->data;
    } else {
      CFS_TRY_ASSIGN(std::string obj, read_object(s, c->object, max));
      out += obj;
    }
    if (out.size() > max) return errorf(Errc::TooBig, "stream payload over {} bytes", max);
  }
  return out;
}

Result<fsverity::Digest> write_json_stream(
    Store& store, uint64_t type, const std::string& json,
    const std::vector<std::pair<std::string, fsverity::Digest>>& refs, const std::string& id) {
  SplitStreamWriter w(store.alg(), type);
  for (auto& [name, d] : refs) w.add_named_ref(name, d);
  CFS_TRY_ASSIGN(fsverity::Digest obj,
                 store.store_bytes({reinterpret_cast<const uint8_t*>(json.data()), json.size()}));
  CFS_TRY(w.write_external(obj, json.size()));
  CFS_TRY_ASSIGN(std::string file, w.finish());
  CFS_TRY_ASSIGN(fsverity::Digest sid,
                 store.store_bytes({reinterpret_cast<const uint8_t*>(file.data()), file.size()}));
  CFS_TRY(store.register_stream(id, sid));
  return sid;
}

// Fetches one layer and stores it as oci-layer-<diff_id>.
Result<fsverity::Digest> fetch_layer(Store& store, Source& src, const Descriptor& d,
                                     const std::string& diff_id, ImportStats& stats,
                                     const PullOptions& opts) {
  CFS_TRY_ASSIGN(auto blob, src.open_blob(d));
  CountingReader counted(*blob, [&](uint64_t n) {
    if (opts.progress) opts.progress({d.digest, n, d.size, false, false});
  });
  VerifyingReader compressed(counted, "layer " + d.digest, d.digest, static_cast<int64_t>(d.size));
  CFS_TRY_ASSIGN(Compression comp, layer_compression(d.media_type));
  auto dec = decompressor(compressed, comp);
  LimitReader limited(*dec, opts.max_layer_bytes, "uncompressed layer (--max-layer-size)");
  VerifyingReader plain(limited, "layer " + d.digest + " uncompressed (diff_id)", diff_id);
  auto sid = split_tar(plain, store, stats);
  // The tar reader read to the end of the uncompressed stream (verifying
  // the diff_id); read the compressed one to its end too (its digest).  When
  // the layer failed to parse, a wrong blob is the likelier cause: report
  // the digest mismatch if there is one within a few more MiB.
  uint8_t rest[65536];
  for (uint64_t drained = 0; sid || drained <= kMaxDrainAfterError;) {
    auto n = compressed.read(rest);
    if (!n) {
      if (!sid && n.error().code() != Errc::VerityMismatch) break;
      return tl::unexpected(n.error());
    }
    if (*n == 0) break;
    drained += *n;
  }
  if (!sid) return tl::unexpected(std::move(sid.error()).context("layer " + d.digest));
  CFS_TRY(store.register_stream(layer_stream_id(diff_id), *sid));
  if (opts.progress) opts.progress({d.digest, d.size, d.size, true, false});
  return *sid;
}

// The layers (streams by diff_id) merged and transformed.
Result<Tree> merge_layers(const Store& store, const std::vector<std::string>& diff_ids,
                          const std::map<std::string, fsverity::Digest>& streams,
                          bool keep_user_xattrs = false) {
  LayerMerger merger;
  for (auto& diff_id : diff_ids) {
    CFS_TRY_ASSIGN(auto r, open_stream(store, streams.at(diff_id), kLayerContentType));
    CFS_TRY(merge_layer_stream(store, r, merger, diff_id));
  }
  CFS_TRY(merger.transform_for_oci(keep_user_xattrs));
  return merger.to_tree();
}

// Writes an image's config stream (its layers in diff_id order, `set`, and
// every other named ref the stored stream had: refs other tools, such as
// composefs-rs's boot images, put there stay, so gc keeps what they name),
// then its manifest stream.  Returns the two streams' verities.
Result<std::pair<fsverity::Digest, fsverity::Digest>> write_config_and_manifest(
    Store& store, const std::string& manifest_json, const std::string& manifest_digest,
    const std::string& config_json, const std::string& config_digest,
    const std::vector<std::string>& diff_ids,
    const std::map<std::string, fsverity::Digest>& layer_ids,
    const std::map<std::string, fsverity::Digest>& set) {
  std::vector<std::pair<std::string, fsverity::Digest>> refs;
  for (auto& diff_id : diff_ids) refs.emplace_back(diff_id, layer_ids.at(diff_id));
  for (auto& [name, d] : set) refs.emplace_back(name, d);
  CFS_TRY_ASSIGN(auto old_config, store.stream(config_stream_id(config_digest)));
  // A damaged old stream is simply replaced: pulling again is the repair.
  if (old_config)
    if (auto old = open_stream(store, *old_config, kConfigContentType))
      for (auto& [name, d] : old->named_refs())
        if (!set.count(name) && !layer_ids.count(name)) refs.emplace_back(name, d);
  CFS_TRY_ASSIGN(fsverity::Digest config_verity,
                 write_json_stream(store, kConfigContentType, config_json, refs,
                                   config_stream_id(config_digest)));
  // The manifest stream: the config, the layers, the JSON.  Tags name the
  // stream, so they follow.
  refs.clear();
  refs.emplace_back("config:" + config_digest, config_verity);
  for (auto& diff_id : diff_ids) refs.emplace_back(diff_id, layer_ids.at(diff_id));
  CFS_TRY_ASSIGN(fsverity::Digest manifest_verity,
                 write_json_stream(store, kManifestContentType, manifest_json, refs,
                                   manifest_stream_id(manifest_digest)));
  return std::pair{config_verity, manifest_verity};
}

}  // namespace

std::string image_ref_key(uint32_t format_version) {
  return std::string(format_version >= 2 ? kImageRefV2 : kImageRefV1);
}

std::string boot_image_ref_key(uint32_t format_version, std::string_view xattr_mode) {
  std::string key(format_version >= 2 ? kBootImageRefV2 : kBootImageRefV1);
  if (xattr_mode != kDefaultXattrMode) key += fmt::format(".xattrs={}", xattr_mode);
  return key;
}

Result<StoredImage> set_config_refs(Store& store, const StoredImage& img,
                                    const std::map<std::string, fsverity::Digest>& refs) {
  for (auto& [name, d] : refs)
    if (!name.starts_with(kImageRefV2))
      return errorf(Errc::InvalidArgument, "'{}' is not a composefs image ref", name);
  CFS_TRY(write_config_and_manifest(store, img.manifest_json, img.manifest_digest, img.config_json,
                                    img.config_digest, img.config.diff_ids, img.layers, refs));
  return open_image(store, "@" + img.manifest_digest);
}

std::string manifest_stream_id(std::string_view d) { return fmt::format("oci-manifest-{}", d); }
std::string config_stream_id(std::string_view d) { return fmt::format("oci-config-{}", d); }
std::string layer_stream_id(std::string_view d) { return fmt::format("oci-layer-{}", d); }

std::string encode_tag(std::string_view tag) {
  std::string out;
  for (char c : tag) {
    if (c == '%')
      out += "%25";
    else if (c == '/')
      out += "%2F";
    else
      out += c;
  }
  return out;
}

std::string decode_tag(std::string_view e) {
  std::string out;
  for (size_t i = 0; i < e.size(); i++) {
    if (e[i] == '%' && e.substr(i + 1, 2) == "2F") {
      out += '/';
      i += 2;
    } else if (e[i] == '%' && e.substr(i + 1, 2) == "25") {
      out += '%';
      i += 2;
    } else {
      out += e[i];
    }
  }
  return out;
}

Status validate_tag(std::string_view tag) {
  if (tag.empty()) return make_error(Errc::InvalidArgument, "empty image name");
  if (tag.starts_with('@'))
    return errorf(Errc::InvalidArgument,
                  "invalid name '{}': a leading '@' is reserved for digest references", tag);
  if (tag.find('\0') != std::string_view::npos || tag == "." || tag == "..")
    return errorf(Errc::InvalidArgument, "invalid image name '{}'", tag);
  if (encode_tag(tag).size() > kMaxNameLength)
    return errorf(Errc::InvalidArgument, "image name '{}' is too long", tag);
  return {};
}

std::string PullResult::stats_line() const {
  return fmt::format("{} new + {} already present objects; {} stored, {} inlined", new_objects,
                     present_objects, human_bytes(new_bytes), human_bytes(inline_bytes));
}

Result<PullResult> pull(Store& store, const std::string& source, const std::string& tag,
                        const PullOptions& opts) {
  CFS_TRY(validate_tag(tag));
  CFS_TRY_ASSIGN(auto src, open_source(source, opts.source));
  CFS_TRY_ASSIGN(ResolvedImage img, resolve(*src, opts.source.platform));
  PullResult res;
  res.manifest_digest = img.manifest_digest;
  res.config_digest = img.manifest.config.digest;

  // Layers: the ones not stored yet, largest first, several at a time.
  std::map<std::string, fsverity::Digest> layer_ids;
  std::vector<size_t> todo;
  std::set<std::string> queued;
  for (size_t i = 0; i < img.manifest.layers.size(); i++) {
    const std::string& diff_id = img.config.diff_ids[i];
    CFS_TRY_ASSIGN(auto have, store.stream(layer_stream_id(diff_id)));
    if (have) {
      layer_ids[diff_id] = *have;
      res.layers_present++;
      if (opts.progress)
        opts.progress({img.manifest.layers[i].digest, 0, img.manifest.layers[i].size, true, true});
    } else if (queued.insert(diff_id).second) {
      todo.push_back(i);
    }
  }
  std::sort(todo.begin(), todo.end(), [&](size_t a, size_t b) {
    return img.manifest.layers[a].size > img.manifest.layers[b].size;
  });
  ImportStats stats;
  std::mutex mu;
  std::optional<Error> first_error;
  size_t next = 0;
  auto worker = [&] {
    for (;;) {
      size_t i;
      {
        std::lock_guard lock(mu);
        if (next >= todo.size() || first_error) return;
        i = todo[next++];
      }
      const Descriptor& d = img.manifest.layers[i];
      const std::string& diff_id = img.config.diff_ids[i];
      auto r = catch_exceptions([&] { return fetch_layer(store, *src, d, diff_id, stats, opts); });
      std::lock_guard lock(mu);
      if (!r) {
        if (!first_error) first_error = std::move(r.error());
        return;
      }
      layer_ids[diff_id] = *r;
      res.layers_fetched++;
    }
  };
  unsigned jobs = opts.jobs ? opts.jobs : 4;
  if (!src->concurrent_blobs()) jobs = 1;
  jobs = static_cast<unsigned>(std::min<size_t>(jobs, todo.size()));
  std::vector<std::jthread> threads;
  for (unsigned t = 1; t < jobs; t++) {
    try {
      threads.emplace_back(worker);
    } catch (const std::exception&) {
      break;  // no more threads to be had: fewer fetch
    }
  }
  if (jobs > 0) worker();
  for (auto& t : threads) t.join();
  if (first_error) return tl::unexpected(std::move(*first_error));

  // The merged filesystem and its image, built from the stored layers.
  CFS_TRY_ASSIGN(Tree tree, merge_layers(store, img.config.diff_ids, layer_ids));
  // One image per format the repository writes, each under its key (the
  // default's wins a key two formats share, formats 0 and 1).
  std::map<std::string, fsverity::Digest> image_refs;
  CFS_TRY_ASSIGN(res.images, repository::commit_images(tree, store.erofs_versions(),
                                                       [&](std::span<const uint8_t> image, bool) {
                                                         return store.write_image(image);
                                                       }));
  tree = Tree();
  for (const auto& c : res.images) image_refs.emplace(image_ref_key(c.version), c.id);
  res.image_id = res.images.front().id;

  CFS_TRY_ASSIGN(auto verities, write_config_and_manifest(
                                    store, img.manifest_json, res.manifest_digest, img.config_json,
                                    res.config_digest, img.config.diff_ids, layer_ids, image_refs));
  res.config_verity = verities.first;
  res.manifest_verity = verities.second;
  CFS_TRY(store.set_stream_ref("oci/" + encode_tag(tag), manifest_stream_id(res.manifest_digest)));
  res.new_objects = stats.new_objects;
  res.present_objects = stats.objects - stats.new_objects;
  res.new_bytes = stats.new_bytes;
  res.inline_bytes = stats.inline_bytes;
  return res;
}

// A stored JSON document, checked against the digest it is named by.
static Result<std::string> checked_payload(const Store& store, SplitStreamReader& r, size_t max,
                                           std::string_view what, const std::string& digest) {
  CFS_TRY_ASSIGN(std::string json, stream_payload(store, r, max));
  if (std::string got = sha256_digest(json); got != digest)
    return errorf(Errc::VerityMismatch, "stored {} {} has digest {}", what, digest, got);
  return json;
}

Result<StoredImage> open_image(const Store& store, const std::string& name) {
  StoredImage img;
  std::string_view n = name;
  if (n.starts_with('@')) n.remove_prefix(1);
  if (n.starts_with("sha256:") && check_digest(n)) {
    img.manifest_digest = std::string(n);
  } else {
    CFS_TRY(validate_tag(name));
    CFS_TRY_ASSIGN(auto target, store.stream_ref("oci/" + encode_tag(name)));
    if (!target) return errorf(Errc::NotFound, "no image named '{}'", name);
    if (!target->starts_with("oci-manifest-"))
      return errorf(Errc::Corrupt, "tag '{}' leads to '{}', not a manifest", name, *target);
    img.manifest_digest = target->substr(13);
    CFS_TRY(check_digest(img.manifest_digest));
  }
  CFS_TRY_ASSIGN(auto mv, store.stream(manifest_stream_id(img.manifest_digest)));
  if (!mv) return errorf(Errc::NotFound, "manifest {} is not stored", img.manifest_digest);
  img.manifest_verity = *mv;
  CFS_TRY_ASSIGN(auto ms, open_stream(store, *mv, kManifestContentType));
  CFS_TRY_ASSIGN(img.manifest_json,
                 checked_payload(store, ms, kMaxManifestSize, "manifest", img.manifest_digest));
  CFS_TRY_ASSIGN(img.manifest, parse_manifest(img.manifest_json));
  img.config_digest = img.manifest.config.digest;
  auto cv = ms.named_ref("config:" + img.config_digest);
  if (!cv)
    return errorf(Errc::Corrupt, "manifest stream {} has no config ref", img.manifest_digest);
  img.config_verity = *cv;
  CFS_TRY_ASSIGN(auto cs, open_stream(store, *cv, kConfigContentType));
  CFS_TRY_ASSIGN(img.config_json,
                 checked_payload(store, cs, kMaxConfigSize, "config", img.config_digest));
  CFS_TRY_ASSIGN(img.config, parse_config(img.config_json));
  for (auto& diff_id : img.config.diff_ids) {
    auto l = cs.named_ref(diff_id);
    if (!l) return errorf(Errc::Corrupt, "config stream has no ref to layer {}", diff_id);
    img.layers[diff_id] = *l;
  }
  for (auto& [key, d] : cs.named_refs())
    if (key == kImageRefV2 || key.starts_with(std::string(kImageRefV2) + "."))
      img.image_refs.emplace(key, d);
  if (auto it = img.image_refs.find(image_ref_key(store.erofs_versions().front()));
      it != img.image_refs.end())
    img.image = it->second;
  return img;
}

Result<std::vector<TagInfo>> list_tags(const Store& store) {
  CFS_TRY_ASSIGN(auto names, store.list_stream_refs("oci"));
  std::vector<TagInfo> out;
  for (auto& n : names) {
    CFS_TRY_ASSIGN(auto t, store.stream_ref("oci/" + n));
    if (!t || !t->starts_with("oci-manifest-")) continue;
    out.push_back({decode_tag(n), t->substr(13)});
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.name < b.name; });
  return out;
}

Status tag_image(Store& store, const std::string& manifest_digest, const std::string& tag) {
  CFS_TRY(validate_tag(tag));
  std::string d = manifest_digest.starts_with('@') ? manifest_digest.substr(1) : manifest_digest;
  CFS_TRY(check_digest(d));
  CFS_TRY_ASSIGN(auto have, store.stream(manifest_stream_id(d)));
  if (!have) return errorf(Errc::NotFound, "manifest {} is not stored", d);
  return store.set_stream_ref("oci/" + encode_tag(tag), manifest_stream_id(d));
}

Status untag_image(Store& store, const std::string& tag) {
  CFS_TRY(validate_tag(tag));
  CFS_TRY_ASSIGN(auto t, store.stream_ref("oci/" + encode_tag(tag)));
  if (!t) return errorf(Errc::NotFound, "no image named '{}'", tag);
  return store.set_stream_ref("oci/" + encode_tag(tag), "");
}

Result<Tree> image_tree(const Store& store, const StoredImage& img, bool keep_user_xattrs) {
  return merge_layers(store, img.config.diff_ids, img.layers, keep_user_xattrs);
}

Status write_layer_tar(const Store& store, const std::string& diff_id, int fd) {
  CFS_TRY(check_digest(diff_id));
  CFS_TRY_ASSIGN(auto id, store.stream(layer_stream_id(diff_id)));
  if (!id) return errorf(Errc::NotFound, "layer {} is not stored", diff_id);
  CFS_TRY_ASSIGN(auto r, open_stream(store, *id, kLayerContentType));
  return cat_stream(store, r, fd);
}

Result<std::vector<std::string>> fsck_images(const Store& store, const std::string& only) {
  std::vector<std::string> problems;
  CFS_TRY_ASSIGN(auto tags, list_tags(store));
  if (!only.empty()) {
    std::erase_if(tags, [&](const TagInfo& t) { return t.name != only; });
    if (tags.empty()) return errorf(Errc::NotFound, "no image named '{}'", only);
  }
  std::set<std::string> layers_checked;
  for (auto& t : tags) {
    auto img = open_image(store, t.name);
    if (!img) {
      problems.push_back(fmt::format("image '{}': {}", t.name, img.error().message()));
      continue;
    }
    for (auto& [diff_id, sid] : img->layers) {
      if (!layers_checked.insert(diff_id).second) continue;
      auto r = open_stream(store, sid, kLayerContentType);
      Sha256 sha;
      Status st = r ? cat_stream(store, *r, -1, &sha) : Status(tl::unexpected(r.error()));
      if (!st)
        problems.push_back(fmt::format("layer {}: {}", diff_id, st.error().message()));
      else if (std::string got = sha.finish(); got != diff_id)
        problems.push_back(fmt::format("layer {}: content has digest {}", diff_id, got));
    }
    // An image without a linked composefs image (older composefs-rs pulls)
    // is complete; only a link to a missing one is damage, in any format.
    for (auto& [key, d] : img->image_refs)
      if (!store.has_object(d))
        problems.push_back(
            fmt::format("image '{}': composefs image {} ({}) missing", t.name, d.hex(), key));
  }
  return problems;
}

}  // namespace cfs::oci
