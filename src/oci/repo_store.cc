// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/oci/repo_store.h"

#include <dirent.h>
#include <fcntl.h>

#include "composefs-cpp/base/dir.h"
#include "composefs-cpp/repository/names.h"
#include "composefs-cpp/repository/streams.h"
#include "composefs-cpp/repository/walk.h"

namespace cfs::oci {
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
  return repository::stream_object(repo_, id);
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
  return repository::stream_ref_target(repo_, ref);
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
