// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/repository/images.h"

#include "composefs-cpp/erofs/writer.h"

namespace cfs::repository {

Result<std::vector<CommittedImage>> commit_images(const Tree& tree,
                                                  const std::vector<uint32_t>& versions,
                                                  const ImageWriter& write) {
  std::vector<CommittedImage> out;
  for (size_t i = 0; i < versions.size(); i++) {
    auto image = erofs::build_image(tree, versions[i]);
    if (!image)
      return tl::unexpected(
          std::move(image.error()).context(fmt::format("EROFS format {}", versions[i])));
    CFS_TRY_ASSIGN(fsverity::Digest id, write(*image, i == 0));
    out.push_back({versions[i], id});
  }
  return out;
}

Result<std::vector<CommittedImage>> commit_images(Repository& repo, const Tree& tree,
                                                  const std::optional<std::string>& name) {
  return commit_images(tree, repo.format_config().versions(),
                       [&](std::span<const uint8_t> image, bool is_default) {
                         return repo.write_image(image, is_default ? name : std::nullopt);
                       });
}

}  // namespace cfs::repository
