// SPDX-License-Identifier: Apache-2.0
#include "oci/repo_store.h"

#include <dirent.h>
#include <fcntl.h>

#include "base/dir.h"
#include "repository/names.h"
#include "repository/walk.h"
#include "tree/tree.h"

namespace cfs::oci {
namespace {

// A symlink's target, or nothing when there is no such link.
Result<std::optional<std::string>> read_link(int dirfd, const std::string& rel) {
  auto t = repository::read_link(dirfd, rel);
  if (!t && t.error().sys_errno() == ENOENT) return std::optional<std::string>();
  if (!t) return tl::unexpected(std::move(t.error()));
  return std::optional<std::string>(std::move(*t));
}

}  // namespace

Result<bool> RepoStore::store_object(int fd, uint64_t size, const fsverity::Digest& d) {
  CFS_TRY_ASSIGN(auto r, repo_.store_object(fd, size, d));
  return r == repository::StoreResult::Written;
}

Result<fsverity::Digest> RepoStore::store_bytes(std::span<const uint8_t> data) {
  return repo_.store_bytes(data);
}

Result<UniqueFd> RepoStore::open_object(const fsverity::Digest& d) const {
  return repo_.open_object(d);
}

Result<std::optional<fsverity::Digest>> RepoStore::stream(const std::string& id) const {
  CFS_TRY_ASSIGN(auto t, read_link(repo_.dirfd(), "streams/" + id));
  if (!t) return std::optional<fsverity::Digest>();
  // "../objects/xx/rest": the digest is the last two components.
  size_t s2 = t->rfind('/');
  size_t s1 = s2 == std::string::npos || s2 == 0 ? std::string::npos : t->rfind('/', s2 - 1);
  if (s1 == std::string::npos || !t->starts_with("../"))
    return errorf(Errc::Corrupt, "streams/{} -> '{}' is not an object", id, *t);
  auto d = fsverity::Digest::from_hex(alg(), t->substr(s1 + 1, s2 - s1 - 1) + t->substr(s2 + 1));
  if (!d) return errorf(Errc::Corrupt, "streams/{} -> '{}' is not an object", id, *t);
  if (!repo_.has_object(*d)) return std::optional<fsverity::Digest>();
  return std::optional<fsverity::Digest>(*d);
}

Status RepoStore::register_stream(const std::string& id, const fsverity::Digest& d) {
  CFS_TRY(repository::validate_stream_name(id));
  // A visible stream implies its objects are on disk (composefs-rs syncs too).
  CFS_TRY(repo_.sync());
  return repo_.symlink("streams/" + id, repo_.object_path(d));
}

Status RepoStore::set_stream_ref(const std::string& ref, const std::string& id) {
  std::string link = "streams/refs/" + ref;
  if (id.empty()) {
    CFS_TRY_ASSIGN(auto parent, repository::open_parent(repo_.dirfd(), link));
    if (::unlinkat(parent.fd.get(), parent.name.c_str(), 0) < 0)
      return sys_error("cannot remove " + link);
    return {};
  }
  return repo_.symlink(link, "streams/" + id);
}

Result<std::optional<std::string>> RepoStore::stream_ref(const std::string& ref) const {
  CFS_TRY_ASSIGN(auto t, read_link(repo_.dirfd(), "streams/refs/" + ref));
  if (!t) return std::optional<std::string>();
  return std::optional<std::string>(t->substr(t->rfind('/') + 1));
}

Result<std::vector<std::string>> RepoStore::list_stream_refs(const std::string& sub) const {
  std::vector<std::string> out;
  auto entries = repository::list_dir(repo_.dirfd(), "streams/refs/" + sub);
  if (!entries && entries.error().sys_errno() == ENOENT) return out;
  if (!entries) return tl::unexpected(std::move(entries.error()));
  for (auto& e : *entries)
    if (e.type == DT_LNK) out.push_back(std::move(e.name));
  return out;
}

Result<fsverity::Digest> RepoStore::write_image(std::span<const uint8_t> image) {
  return repo_.write_image(image, std::nullopt);
}

}  // namespace cfs::oci
