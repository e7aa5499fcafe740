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
#include <string_view>
#include <vector>

#include "composefs-cpp/base/error.h"
#include "composefs-cpp/setuproot/config.h"

namespace cfs::setuproot {

// The order the new root is put together in (composefs-rs's two builds).
enum class MountSequence {
  Auto,      // Floating where the kernel can mount inside a detached tree, else Pre615
  Pre615,    // the image attached on the sysroot first, everything else mounted inside it
  Floating,  // Linux >= 6.15: the whole tree built detached, then swapped for the sysroot
};
std::string_view to_string(MountSequence s);  // "auto", "pre-6.15", "6.15"
Result<MountSequence> parse_mount_sequence(std::string_view s);

struct Options {
  std::string sysroot = "/sysroot";
  Config config;
  // The kernel command line; nullopt reads /proc/cmdline.
  std::optional<std::string> cmdline;
  // Testing: a clone of this tree is the new root instead of the image; the
  // repository is not opened (composefs-rs's --root-fs).  The first karg
  // still names the state directory.
  std::optional<std::string> root_fs;
  MountSequence sequence = MountSequence::Auto;
  // The running kernel's release for the Linux 7.0 hint; nullopt: uname(2).
  std::optional<std::string> kernel_release;
  // Where the GPT workaround looks for gpt-auto-root and puts
  // systemd/volatile-root (testing).
  std::string dev_dir = "/dev";
  std::string run_dir = "/run";
};

struct Outcome {
  std::string hex;                               // the karg whose image was mounted
  MountSequence sequence = MountSequence::Auto;  // the one used (never Auto)
  std::vector<std::string> notes;                // skipped kargs, insecure digests...
};

// Every error message starts with the step that failed and names the
// object (karg, file, digest).
Result<Outcome> setup_root(const Options& opts);

// Whether this kernel can attach a mount inside a detached mount tree
// (Linux >= 6.15), tried with two throw-away tmpfs mounts.
bool kernel_mounts_in_detached_trees();

// What an image mount failure adds when it may be Linux 7.0's regression
// (bootc #2174: verity=require overlays of correct images fail): the errno
// is EIO or the message says "has no fs-verity digest", and `release` is a
// 7.0 kernel.  Empty otherwise.
std::string linux_7_0_hint(int err, std::string_view message, std::string_view release);

// Whether the command line's systemd.volatile= (the last one, as systemd
// reads it) is "state" or "overlay": systemd then puts a tmpfs on /var.
bool volatile_var(std::string_view cmdline);

}  // namespace cfs::setuproot
