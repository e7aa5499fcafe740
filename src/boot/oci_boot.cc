// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/boot/oci_boot.h"

#include <fmt/format.h>

#include <algorithm>

#include "composefs-cpp/base/fd.h"
#include "composefs-cpp/erofs/writer.h"
#include "composefs-cpp/repository/images.h"

namespace cfs::boot {
namespace {

// Boot entry files and policy files are small; this bounds what a hostile
// image can make us read into memory.
constexpr size_t kMaxReadFile = 64 << 20;

std::string mode_key(uint32_t version, XattrMode mode) {
  return oci::boot_image_ref_key(version, xattr_mode_name(mode));
}

}  // namespace

selinux::FileReader store_reader(const oci::Store& store) {
  return [&store](const Node& f, const std::string& path) -> Result<std::string> {
    if (!f.digest) return errorf(Errc::NotFound, "{} names no object", path);
    CFS_TRY_ASSIGN(UniqueFd fd, store.open_object(*f.digest));
    return read_fd(fd.get(), kMaxReadFile);
  };
}

Result<BootTree> oci_boot_tree(const oci::Store& store, const oci::StoredImage& img, XattrMode mode,
                               const BootOptions& opts) {
  BootTree bt;
  CFS_TRY_ASSIGN(bt.tree, oci::image_tree(store, img, mode == XattrMode::KeepUserXattrs));
  auto entries = transform_for_boot(bt.tree, store_reader(store), opts);
  if (!entries)
    return tl::unexpected(
        std::move(entries.error()).context("boot image of " + img.manifest_digest));
  bt.entries = std::move(*entries);
  return bt;
}

std::optional<fsverity::Digest> linked_boot_image(const oci::Store& store,
                                                  const oci::StoredImage& img, XattrMode mode) {
  auto it = img.image_refs.find(mode_key(store.erofs_versions().front(), mode));
  if (it == img.image_refs.end()) return std::nullopt;
  return it->second;
}

Result<GeneratedBootImage> generate_boot_image(oci::Store& store, const oci::StoredImage& img,
                                               XattrMode mode, const BootOptions& opts) {
  GeneratedBootImage out;
  if (auto linked = linked_boot_image(store, img, mode)) {
    out.id = *linked;
    out.cached = true;
    return out;
  }
  CFS_TRY_ASSIGN(BootTree bt, oci_boot_tree(store, img, mode, opts));
  CFS_TRY_ASSIGN(out.images, repository::commit_images(bt.tree, store.erofs_versions(),
                                                       [&](std::span<const uint8_t> image, bool) {
                                                         return store.write_image(image);
                                                       }));
  // Formats 0 and 1 share a key: the first (the default when it is one of
  // them) names it.
  std::map<std::string, fsverity::Digest> refs;
  for (const auto& c : out.images) refs.emplace(mode_key(c.version, mode), c.id);
  CFS_TRY(oci::set_config_refs(store, img, refs));
  out.id = out.images.front().id;
  return out;
}

Result<BootImageMatch> find_matching_boot_image(oci::Store& store, const oci::StoredImage& img,
                                                const fsverity::Digest& expected,
                                                const BootOptions& opts) {
  BootImageMatch m;
  fsverity::Params p;
  p.alg = store.alg();
  for (XattrMode mode : kXattrModes) {
    std::vector<uint32_t> uncached;
    for (uint32_t v : kBootVersions) {
      auto it = img.image_refs.find(mode_key(v, mode));
      if (it == img.image_refs.end()) {
        uncached.push_back(v);
        continue;
      }
      if (it->second == expected) {
        m.found = true;
        m.mode = mode;
        m.version = v;
        m.digest = it->second;
        return m;
      }
      m.tried++;
    }
    if (uncached.empty()) continue;
    CFS_TRY_ASSIGN(BootTree bt, oci_boot_tree(store, img, mode, opts));
    for (uint32_t v : uncached) {
      CFS_TRY_ASSIGN(auto image, erofs::build_image(bt.tree, v));
      fsverity::Digest d = fsverity::digest_of(image, p);
      if (d != expected) {
        m.tried++;
        continue;
      }
      CFS_TRY_ASSIGN(fsverity::Digest stored, store.write_image(image));
      CFS_TRY(oci::set_config_refs(store, img, {{mode_key(v, mode), stored}}));
      m.found = true;
      m.computed = true;
      m.mode = mode;
      m.version = v;
      m.digest = d;
      return m;
    }
  }
  return m;
}

}  // namespace cfs::boot
