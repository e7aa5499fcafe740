// SPDX-License-Identifier: Apache-2.0
// A Store over a directory in composefs-rs's repository layout (objects/,
// streams/, images/), without locking or fs-verity enforcement.  Used by the
// tests, and until the OCI commands sit on the repository library.
#pragma once

#include <string>

#include "oci/store.h"

namespace cfs::oci {

class DirStore : public Store {
 public:
  static Result<std::unique_ptr<DirStore>> open(const std::string& path, fsverity::HashAlg alg,
                                                uint32_t erofs_version = 1);
  fsverity::HashAlg alg() const override { return alg_; }
  uint32_t erofs_version() const override { return erofs_version_; }
  int tmp_dirfd() const override { return objects_.get(); }
  Result<bool> store_object(int fd, uint64_t size, const fsverity::Digest& d) override;
  Result<fsverity::Digest> store_bytes(std::span<const uint8_t> data) override;
  Result<UniqueFd> open_object(const fsverity::Digest& d) const override;
  bool has_object(const fsverity::Digest& d) const override;
  Result<std::optional<fsverity::Digest>> stream(const std::string& id) const override;
  Status register_stream(const std::string& id, const fsverity::Digest& d) override;
  Status set_stream_ref(const std::string& ref, const std::string& id) override;
  Result<std::optional<std::string>> stream_ref(const std::string& ref) const override;
  Result<std::vector<std::string>> list_stream_refs(const std::string& dir) const override;
  Result<fsverity::Digest> write_image(std::span<const uint8_t> image) override;

 private:
  Status link_object(int fd, const fsverity::Digest& d, bool* fresh);
  Status symlink(const std::string& link, const std::string& target);
  std::string root_;
  UniqueFd dir_, objects_;
  fsverity::HashAlg alg_;
  uint32_t erofs_version_;
};

}  // namespace cfs::oci
