// SPDX-License-Identifier: Apache-2.0
// The objects an image references, read with the EROFS reader.
#include "composefs-cpp/erofs/reader.h"
#include "composefs-cpp/repository/repository.h"

namespace cfs::repository {

Result<std::vector<fsverity::Digest>> image_object_digests(int image_fd) {
  CFS_TRY_ASSIGN(erofs::Image img, erofs::Image::open(image_fd));
  return img.object_digests();
}

}  // namespace cfs::repository
