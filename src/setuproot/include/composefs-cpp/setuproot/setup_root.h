// SPDX-License-Identifier: Apache-2.0
// The initramfs step that replaces the physical root at --sysroot by the
// composefs image the kernel command line names (composefs-rs's
// composefs-setup-root): the image verified and mounted as an overlay, the
// physical root kept at /sysroot inside it, /etc and /var from the
// deployment's state directory.  A failure at any step undoes the mounts
// made so far, so the sysroot is left as it was.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "composefs-cpp/base/error.h"
#include "composefs-cpp/setuproot/config.h"

namespace cfs::setuproot {

struct Options {
  std::string sysroot = "/sysroot";
  Config config;
  // The kernel command line; nullopt reads /proc/cmdline.
  std::optional<std::string> cmdline;
  // Testing: bind-mount this tree as the new root instead of the image
  // (the image must still exist and verify).
  std::optional<std::string> root_fs;
};

struct Outcome {
  std::string hex;                 // the karg whose image was mounted
  std::vector<std::string> notes;  // skipped kargs, insecure digests...
};

// Every error message starts with the step that failed and names the
// object (karg, file, digest).
Result<Outcome> setup_root(const Options& opts);

}  // namespace cfs::setuproot
