// SPDX-License-Identifier: Apache-2.0
// What OCI import needs from a composefs repository: objects, split streams
// registered under content ids (streams/<id>), refs and images.  Kept as an
// interface so the import code does not depend on the repository's
// internals (and tests can count what is written).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "composefs-cpp/base/error.h"
#include "composefs-cpp/base/fd.h"
#include "composefs-cpp/fsverity/fsverity.h"

namespace cfs::oci {

class Store {
 public:
  virtual ~Store() = default;
  virtual fsverity::HashAlg alg() const = 0;
  // The EROFS formats images are written in, the default first
  // (repository::FormatConfig::versions()).
  virtual std::vector<uint32_t> erofs_versions() const = 0;
  // A directory on the repository's filesystem for temporary files.
  virtual int tmp_dirfd() const = 0;

  // Stores `size` bytes of `fd` (from offset 0) as object `d`; true when it
  // was new.  Thread-safe.
  virtual Result<bool> store_object(int fd, uint64_t size, const fsverity::Digest& d) = 0;
  // Stores bytes as an object; returns its digest.  Thread-safe.
  virtual Result<fsverity::Digest> store_bytes(std::span<const uint8_t> data) = 0;
  virtual Result<UniqueFd> open_object(const fsverity::Digest& d) const = 0;
  virtual bool has_object(const fsverity::Digest& d) const = 0;

  // The object streams/<id> leads to, if any.
  virtual Result<std::optional<fsverity::Digest>> stream(const std::string& id) const = 0;
  // Makes everything written durable, then points streams/<id> at object `d`.
  virtual Status register_stream(const std::string& id, const fsverity::Digest& d) = 0;
  // streams/refs/<ref> -> streams/<id>; an empty id removes the ref.
  virtual Status set_stream_ref(const std::string& ref, const std::string& id) = 0;
  // Target content id of streams/refs/<ref>, if it exists.
  virtual Result<std::optional<std::string>> stream_ref(const std::string& ref) const = 0;
  // Ref names below streams/refs/<dir>/.
  virtual Result<std::vector<std::string>> list_stream_refs(const std::string& dir) const = 0;
  // Stores an EROFS image (images/<hex>, no name).
  virtual Result<fsverity::Digest> write_image(std::span<const uint8_t> image) = 0;
};

// Reads a whole object into memory (split streams, manifests, configs).
Result<std::string> read_object(const Store& s, const fsverity::Digest& d, size_t max_size);

}  // namespace cfs::oci
