// SPDX-License-Identifier: Apache-2.0
// A repository's named split streams: streams/<id> (a symlink to the object
// holding the stream), streams/refs/<ref> (a symlink to streams/<id>), and
// their reassembly.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>

#include "composefs-cpp/base/error.h"
#include "composefs-cpp/base/fd.h"
#include "composefs-cpp/fsverity/fsverity.h"
#include "composefs-cpp/repository/repository.h"
#include "composefs-cpp/repository/splitstream.h"

namespace cfs::repository {

// The object streams/<id> leads to; nothing when there is no such link or
// the object is missing.
Result<std::optional<fsverity::Digest>> stream_object(const Repository& repo,
                                                      const std::string& id);
// The stream id streams/refs/<ref> names, if that link exists.
Result<std::optional<std::string>> stream_ref_target(const Repository& repo,
                                                     const std::string& ref);

using ObjectOpener = std::function<Result<UniqueFd>(const fsverity::Digest&)>;
using ByteObserver = std::function<void(std::span<const uint8_t>)>;

// Writes the whole reassembled stream to `out_fd` (none when negative),
// showing every byte to `observe` when given; the total must match the
// stream's header.
Status cat_stream(SplitStreamReader& r, const ObjectOpener& open_object, int out_fd,
                  const ByteObserver& observe = {});

// `cfsctl cat NAME`: streams/NAME, or the stream a "refs/REF" name leads to,
// reassembled to `out_fd`.
Status cat_named_stream(const Repository& repo, const std::string& name, int out_fd);

}  // namespace cfs::repository
