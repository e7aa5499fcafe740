// SPDX-License-Identifier: Apache-2.0
// The boot transformation (`--bootable`), in composefs-rs's order
// (composefs-boot transform_for_boot), applied to a tree that has already
// had the container transformation (transform_for_oci: / takes /usr's
// metadata, /run emptied, xattrs filtered by XattrMode):
//
//  1. the boot resources are collected from the tree as it is (resources.h);
//  2. /boot and /sysroot are emptied (both must exist: an error names the
//     missing one) and take /usr's mtime, seconds and nanoseconds
//     (composefs-rs #396; MtimeRule::SecondsOnly is 0.9.0's rule, which
//     left their own nanoseconds); their mode, owner and xattrs stay;
//  3. compaction (hardlinks whose inode lived below the emptied
//     directories are re-homed at their first remaining path, depth-first
//     in byte order, and link counts drop by the entries removed);
//  4. SELinux labels from the image's own policy, or every
//     security.selinux removed when it has none (selinux/selabel.h).
//
// The directory-scan form (composefs-rs's transform_for_boot_from_dir, used
// when no repository holds the files) skips step 1 and reads the policy
// from the directory on disk.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "composefs-cpp/base/error.h"
#include "composefs-cpp/boot/resources.h"
#include "composefs-cpp/selinux/selabel.h"
#include "composefs-cpp/tree/tree.h"

namespace cfs::boot {

// composefs-rs's XattrFiltering: which xattrs the container transformation
// keeps.  The names are its CLI values and appear in OCI config refs.
enum class XattrMode {
  AllowlistOnly,   // security.capability only (the default)
  KeepUserXattrs,  // that and user.*
};
inline constexpr XattrMode kXattrModes[] = {XattrMode::AllowlistOnly, XattrMode::KeepUserXattrs};
std::string_view xattr_mode_name(XattrMode m);
Result<XattrMode> parse_xattr_mode(std::string_view s);

enum class MtimeRule {
  WithNanoseconds,  // composefs-rs after #396 (0.9.x main): the default
  SecondsOnly,      // composefs-rs 0.9.0 and earlier
};

struct BootOptions {
  MtimeRule mtime = MtimeRule::WithNanoseconds;
};

// Step 2 and 3.
Status empty_toplevel_dirs(Tree& tree, const BootOptions& opts = {});

// Steps 1 to 4, the files read through `read` (a repository's objects).
// Returns the boot entries found in step 1.
Result<std::vector<BootEntry>> transform_for_boot(Tree& tree, const selinux::FileReader& read,
                                                  const BootOptions& opts = {});
// Steps 2 to 4, the policy read below `rootfd`, the directory the tree was
// scanned from.
Status transform_for_boot_from_dir(Tree& tree, int rootfd, const BootOptions& opts = {});

// Entries whose mtime has a nonzero nanosecond part, in depth-first byte
// order (at most `max`; `total` gets the count).  A tar layer records whole
// seconds (umoci rounds to the nearest), so the OCI image of a directory
// with such mtimes gets another bootable digest than the directory itself
// (bootc #2194: a directory written into carries a live nanosecond mtime):
// seal from the OCI image, or reset the mtimes.  The emptied /boot and
// /sysroot, which take /usr's mtime, are not listed.
std::vector<std::string> subsecond_mtimes(const Tree& tree, size_t max, size_t* total = nullptr);

}  // namespace cfs::boot
