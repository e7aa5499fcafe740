// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/boot/directory.h"

#include <fcntl.h>

#include "composefs-cpp/base/fd.h"
#include "composefs-cpp/erofs/writer.h"
#include "composefs-cpp/repository/container_root.h"

namespace cfs::boot {

Result<Tree> read_directory(const std::string& path, const DirectoryOptions& opts) {
  repository::RootOptions ro;
  ro.alg = opts.alg;
  ro.transform = opts.transform;
  ro.keep_user_xattrs = opts.xattrs == XattrMode::KeepUserXattrs;
  ro.repo = opts.repo;
  CFS_TRY_ASSIGN(Tree tree, repository::read_container_root(path, ro));
  if (!opts.bootable) return tree;
  if (opts.inspect) opts.inspect(tree);
  if (auto* repo = opts.repo) {
    auto reader = [repo](const Node& n, const std::string& p) -> Result<std::string> {
      if (!n.digest) return errorf(Errc::NotFound, "{} names no object", p);
      CFS_TRY_ASSIGN(UniqueFd fd, repo->open_object(*n.digest));
      return read_fd(fd.get(), 64 << 20);
    };
    auto entries = transform_for_boot(tree, reader, opts.boot);
    if (!entries) return tl::unexpected(std::move(entries.error()).context(path));
    return tree;
  }
  CFS_TRY_ASSIGN(UniqueFd rootfd, open_at(AT_FDCWD, path, O_RDONLY | O_DIRECTORY));
  auto st = transform_for_boot_from_dir(tree, rootfd.get(), opts.boot);
  if (!st) return tl::unexpected(std::move(st.error()).context(path));
  return tree;
}

Result<fsverity::Digest> image_digest(const Tree& tree, uint32_t format_version,
                                      fsverity::HashAlg alg) {
  CFS_TRY_ASSIGN(auto image, erofs::build_image(tree, format_version));
  fsverity::Params p;
  p.alg = alg;
  return fsverity::digest_of(image, p);
}

}  // namespace cfs::boot
