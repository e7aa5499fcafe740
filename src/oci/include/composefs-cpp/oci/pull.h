// SPDX-License-Identifier: Apache-2.0
// Pulling an image into a repository, and the operations on stored images
// (composefs-rs's storage model: oci-manifest-<digest>, oci-config-<digest>
// and oci-layer-<diff_id> split streams, tags under streams/refs/oci/).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "composefs-cpp/oci/import.h"
#include "composefs-cpp/oci/source.h"
#include "composefs-cpp/oci/store.h"
#include "composefs-cpp/repository/images.h"
#include "composefs-cpp/tree/tree.h"

namespace cfs::oci {

// Named refs of an image's config stream that lead to the EROFS images of
// its filesystem (composefs-rs 0.9): format 2 under "composefs.image",
// formats 0 and 1 under "composefs.image.v1"; its boot images (--bootable)
// likewise under "composefs.image.boot" and "composefs.image.boot.v1",
// with ".xattrs=<mode>" appended for xattr modes other than the default.
inline constexpr std::string_view kImageRefV2 = "composefs.image";
inline constexpr std::string_view kImageRefV1 = "composefs.image.v1";
inline constexpr std::string_view kBootImageRefV2 = "composefs.image.boot";
inline constexpr std::string_view kBootImageRefV1 = "composefs.image.boot.v1";
inline constexpr std::string_view kDefaultXattrMode = "allowlist-only";
std::string image_ref_key(uint32_t format_version);
std::string boot_image_ref_key(uint32_t format_version,
                               std::string_view xattr_mode = kDefaultXattrMode);

std::string manifest_stream_id(std::string_view digest);  // oci-manifest-<digest>
std::string config_stream_id(std::string_view digest);    // oci-config-<digest>
std::string layer_stream_id(std::string_view diff_id);    // oci-layer-<diff_id>
// Tags are files below streams/refs/oci/: '%' -> %25 and '/' -> %2F.
std::string encode_tag(std::string_view tag);
std::string decode_tag(std::string_view encoded);
Status validate_tag(std::string_view tag);

struct Progress {
  std::string layer;   // digest
  uint64_t done = 0;   // compressed bytes read
  uint64_t total = 0;  // compressed size
  bool finished = false;
  bool skipped = false;  // already stored
};

// The default bound on a layer's uncompressed size: far beyond real layers
// (the largest are tens of GiB), short of filling a disk from a small bomb.
inline constexpr uint64_t kDefaultMaxLayerBytes = uint64_t{64} << 30;

struct PullOptions {
  SourceOptions source;
  unsigned jobs = 0;  // parallel layer downloads; 0: min(layers, 4)
  // Uncompressed bytes allowed per layer (cfsctl oci pull --max-layer-size).
  uint64_t max_layer_bytes = kDefaultMaxLayerBytes;
  std::function<void(const Progress&)> progress;  // called from worker threads
};

struct PullResult {
  std::string manifest_digest;
  std::string config_digest;
  fsverity::Digest manifest_verity;
  fsverity::Digest config_verity;
  fsverity::Digest image_id;                       // of the default format's image
  std::vector<repository::CommittedImage> images;  // every format's, the default first
  uint64_t layers_fetched = 0, layers_present = 0;
  uint64_t new_objects = 0, present_objects = 0, new_bytes = 0, inline_bytes = 0;
  // composefs-rs's "objects" line.
  std::string stats_line() const;
};

// Pulls `source` and tags it as `tag`.  Layers already stored are not
// fetched; every blob is verified (compressed digest and size, diff_id)
// before its stream is registered; the tag is written last.
Result<PullResult> pull(Store& store, const std::string& source, const std::string& tag,
                        const PullOptions& opts);

// A stored image, found by tag or by "@sha256:…" / "sha256:…" manifest digest.
struct StoredImage {
  std::string manifest_digest;
  fsverity::Digest manifest_verity;
  std::string manifest_json;
  Manifest manifest;
  std::string config_digest;
  fsverity::Digest config_verity;
  std::string config_json;
  ImageConfig config;
  std::map<std::string, fsverity::Digest> layers;  // diff_id -> layer stream
  // The default format's EROFS image, if linked.
  std::optional<fsverity::Digest> image;
  // Every composefs.image* named ref of the config (images, boot images).
  std::map<std::string, fsverity::Digest> image_refs;
};
Result<StoredImage> open_image(const Store& store, const std::string& name);

// Sets composefs.image* named refs (image_ref_key, boot_image_ref_key) of a
// stored image's config stream, keeping its layers and every other named
// ref, and writes the config stream again from the config's original bytes
// (its digest does not change), then the manifest stream; the image's tags
// follow.  Returns the image as now stored.
Result<StoredImage> set_config_refs(Store& store, const StoredImage& img,
                                    const std::map<std::string, fsverity::Digest>& refs);

struct TagInfo {
  std::string name;
  std::string manifest_digest;
};
Result<std::vector<TagInfo>> list_tags(const Store& store);
Status tag_image(Store& store, const std::string& manifest_digest, const std::string& tag);
Status untag_image(Store& store, const std::string& tag);

// The merged, transformed filesystem of a stored image; `keep_user_xattrs`:
// user.* xattrs kept too (the keep-user-xattrs filtering mode).
Result<Tree> image_tree(const Store& store, const StoredImage& img, bool keep_user_xattrs = false);

// Writes a layer's tar (by diff_id) to `fd`.
Status write_layer_tar(const Store& store, const std::string& diff_id, int fd);

// Checks every tagged image: manifest and config bytes against their
// digests, layer streams against their diff_ids, the linked EROFS present
// (when one is linked). `only`: just the image with this tag. Returns the
// problems found (empty: all good).
Result<std::vector<std::string>> fsck_images(const Store& store, const std::string& only = {});

}  // namespace cfs::oci
