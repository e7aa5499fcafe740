// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/repository/container_root.h"

#include <unistd.h>

#include "composefs-cpp/scan/scan.h"

namespace cfs::repository {

Result<Tree> read_container_root(const std::string& path, const RootOptions& opts) {
  scan::Options so;
  so.hardlinks = true;
  so.alg = opts.alg;
  so.threads = opts.threads;
  if (opts.transform) {
    bool user = opts.keep_user_xattrs;
    so.xattr_filter = [user](std::string_view key) {
      return key == "security.capability" || (user && key.starts_with("user."));
    };
    // /run's contents are dropped anyway: not reading them also keeps them
    // out of the repository and out of the hardlink counts.
    so.skip_contents = [](const std::string& rel) { return rel == "run"; };
  }
  if (opts.repo) {
    Repository* repo = opts.repo;
    so.store = [repo](const scan::ObjectSource& src, const fsverity::Digest& d) -> Status {
      if (src.content.size() == src.size) {
        CFS_TRY(repo->store_hashed(src.content, d, src.fd));
      } else {
        CFS_TRY(repo->store_object(src.fd, src.size, d));
      }
      return {};
    };
  }
  CFS_TRY_ASSIGN(Tree tree, scan::scan_directory(path, so));
  if (!opts.transform) return tree;

  Node* root = tree.root();
  const Node* usr = root->find_child("usr");
  if (!usr) return errorf(Errc::NotFound, "{}: directory entry \"usr\" does not exist", path);
  if (!usr->is_dir())
    return errorf(Errc::InvalidArgument, "{}: directory entry \"usr\" is not a subdirectory", path);
  root->mode = S_IFDIR | (usr->mode & 07777);
  root->uid = usr->uid;
  root->gid = usr->gid;
  root->mtime_sec = usr->mtime_sec;
  root->mtime_nsec = usr->mtime_nsec;
  root->xattrs = usr->xattrs;
  root->xattr_cost = usr->xattr_cost;
  if (Node* run = root->find_child("run")) {
    if (!run->is_dir())
      return errorf(Errc::InvalidArgument, "{}: directory entry \"run\" is not a subdirectory",
                    path);
    run->mtime_sec = usr->mtime_sec;
    run->mtime_nsec = usr->mtime_nsec;
  }
  return tree;
}

}  // namespace cfs::repository
