// SPDX-License-Identifier: Apache-2.0
// Names inside a repository: object paths, ref names and the relative
// symlink targets composefs-rs writes, computed the same way.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "composefs-cpp/base/error.h"
#include "composefs-cpp/fsverity/fsverity.h"

namespace cfs::repository {

// A digest written as exactly the repository's number of hex digits
// (lowercase or uppercase), or nullopt.
std::optional<fsverity::Digest> parse_hex_digest(std::string_view s, fsverity::HashAlg alg);

// A ref name below images/refs or streams/refs ("myimage", "app/v1"): refused
// when empty, absolute, with an empty, "." or ".." component, a NUL, or a
// component or total length over the filesystem limits, so that a ref can
// never name anything outside its refs directory.
Status validate_ref_name(std::string_view name);

// A stream content identifier (one path component).
Status validate_stream_name(std::string_view name);

// The target for a symlink at repository path `link` pointing at repository
// path `target`: the common leading components dropped, ".." for each
// remaining parent of the link, then the rest of the target (composefs-rs's
// symlink_impl), e.g. ("images/refs/a", "images/HEX") gives "../HEX".
std::string relative_target(std::string_view link, std::string_view target);

// The trailing "xx/yyyy" of a symlink target as an object digest, as
// composefs-rs's from_object_pathname reads it.
std::optional<fsverity::Digest> digest_from_object_path(std::string_view path,
                                                        fsverity::HashAlg alg);

}  // namespace cfs::repository
