// SPDX-License-Identifier: Apache-2.0
// The OCI Store interface over a composefs repository.
#pragma once

#include "composefs-cpp/oci/store.h"
#include "composefs-cpp/repository/repository.h"

namespace cfs::oci {

class RepoStore : public Store {
 public:
  explicit RepoStore(repository::Repository& repo) : repo_(repo) {}
  fsverity::HashAlg alg() const override { return repo_.alg(); }
  std::vector<uint32_t> erofs_versions() const override { return repo_.format_config().versions(); }
  int tmp_dirfd() const override { return repo_.dirfd(); }
  Result<bool> store_object(int fd, uint64_t size, const fsverity::Digest& d) override;
  Result<fsverity::Digest> store_bytes(std::span<const uint8_t> data) override;
  Result<UniqueFd> open_object(const fsverity::Digest& d) const override;
  bool has_object(const fsverity::Digest& d) const override { return repo_.has_object(d); }
  Result<std::optional<fsverity::Digest>> stream(const std::string& id) const override;
  Status register_stream(const std::string& id, const fsverity::Digest& d) override;
  Status set_stream_ref(const std::string& ref, const std::string& id) override;
  Result<std::optional<std::string>> stream_ref(const std::string& ref) const override;
  Result<std::vector<std::string>> list_stream_refs(const std::string& dir) const override;
  Result<fsverity::Digest> write_image(std::span<const uint8_t> image) override;

 private:
  repository::Repository& repo_;
};

}  // namespace cfs::oci
