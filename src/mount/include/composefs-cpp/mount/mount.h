// SPDX-License-Identifier: Apache-2.0
// Mounting composefs images: the image as a read-only EROFS layer under an
// overlayfs whose data-only layers are the object stores.  The library behind
// mount.composefs and cfsctl mount; every step undoes the earlier ones when a
// later one fails, and nothing but the final overlay mount is left behind.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "composefs-cpp/base/error.h"
#include "composefs-cpp/base/fd.h"
#include "composefs-cpp/fsverity/fsverity.h"

namespace cfs::mount {

// What the overlay checks of file contents (its verity= option).
enum class Verity {
  Off,      // nothing: a tampered object is served as it is (mount.composefs noverity, default)
  Try,      // Require where the kernel and the object store have fs-verity, else Off,
            // saying why in Mounted::notes (tryverity)
  On,       // verity=on: files whose metadata records a digest must match it
  Require,  // verity=require: every file must record a digest and match it (verity, digest=)
};

// How the image's EROFS layer is mounted.  Auto tries them in this order,
// moving on only when the kernel says it cannot (not by version numbers).
enum class ErofsMethod {
  Auto,
  File,    // new mount API, EROFS reading the file itself (Linux >= 6.12)
  Loop,    // new mount API on a loop device (ENOTBLK from File)
  Legacy,  // mount(2) (no fsopen: ENOSYS); the file, else a loop device
};

// How the overlay gets its layers.  Auto goes down this list, moving on only
// when the kernel's refusal means it lacks the method (refusal_is_unsupported).
enum class OverlayMethod {
  Auto,
  FdLayers,     // fsconfig_set_fd lowerdir+/datadir+: the EROFS mount never appears
                // anywhere (Linux >= 6.15 for detached layers)
  PathLayers,   // fsconfig lowerdir+/datadir+ strings; EROFS briefly on a temporary
                // directory (Linux >= 6.7)
  Legacy,       // mount(2) with "lowerdir=IMAGE::OBJECTS1::OBJECTS2" (Linux >= 6.5)
  LegacyLower,  // mount(2) with "lowerdir=IMAGE:OBJECTS1:OBJECTS2": the object
                // directories as ordinary lower layers, for kernels without
                // data-only layers (as the C reference does there; the image's
                // whiteouts hide the stores' 00..ff directories).  No verity=.
};

// The steps of the overlay ladder at which a kernel refuses what it lacks.
enum class OverlayStep {
  LayerFd,         // fsconfig_set_fd lowerdir+ / datadir+ / upperdir / workdir
  LayerString,     // fsconfig lowerdir+ / datadir+ / upperdir / workdir as strings
  CreateFd,        // FSCONFIG_CMD_CREATE with layers given by fd
  CreateString,    // FSCONFIG_CMD_CREATE with layers given as paths
  LegacyDataOnly,  // mount(2) with "::" data-only layers
  LegacyLower,     // mount(2) with ":" lower layers
};

// Whether the kernel refusing `step` with errno `e` means only that it lacks
// that method, so that Auto tries the next one; otherwise the error is real.
//   LayerFd: EINVAL (no lowerdir+ key before 6.7) or EBADF (6.7 to 6.12 take
//            layer keys as strings only; their fsconfig rejects a mount fd);
//   LayerString: EINVAL (no lowerdir+ before 6.7, or a legacy parser);
//   CreateFd: EINVAL (a detached mount as a layer, before 6.15);
//   LegacyDataOnly: EINVAL ("::" unknown before 6.5).
bool refusal_is_unsupported(OverlayStep step, int e);

struct Options {
  // Object directories ("basedirs"), searched in order for each file's data.
  std::vector<std::string> basedirs;

  // When set, the image's fs-verity digest must equal this, or nothing is
  // mounted.  It is measured by the kernel where the image has fs-verity;
  // otherwise the mount is refused unless allow_insecure, in which case the
  // digest is computed from the file's contents (which a writer of the file
  // could change after the check: insecure).
  std::optional<fsverity::Digest> expected_digest;
  bool allow_insecure = false;

  // The usual choice: Require when a digest is expected or the repository
  // requires verity, else Off.
  Verity verity = Verity::Off;

  // A writable overlay: both or neither.
  std::string upperdir;
  std::string workdir;

  bool read_only = false;
  // More MOUNT_ATTR_* flags for the final mount (kAttrNosuid, kAttrNodev, ...).
  uint64_t mount_attr = 0;

  // A user namespace fd (e.g. of /proc/PID/ns/user), borrowed: the image's
  // owners are shown mapped through it (an idmapped EROFS layer).  -1: none.
  int idmap_userns_fd = -1;

  // The mount's source in /proc/self/mountinfo.
  std::string source = "composefs";

  // Where a temporary mountpoint is made, when a kernel needs one.
  std::string tmpdir = "/tmp";

  // Auto chooses by what the kernel accepts; tests and diagnostics may force
  // one (which then fails if the kernel lacks it).
  ErofsMethod erofs_method = ErofsMethod::Auto;
  OverlayMethod overlay_method = OverlayMethod::Auto;
};

// A successful mount.  Nothing else needs cleaning up: the EROFS layer and any
// loop device live exactly as long as the overlay at `mountpoint`.
struct Mounted {
  std::string mountpoint;
  ErofsMethod erofs_method = ErofsMethod::Auto;  // what was used
  OverlayMethod overlay_method = OverlayMethod::Auto;
  Verity verity = Verity::Off;  // what the overlay enforces (Try resolved)
  // Things the user should be told (tryverity fell back, insecure digest...).
  std::vector<std::string> notes;
};

// Mounts the composefs image at `image_path` (or the open `image_fd`, which
// stays the caller's; O_PATH is fine) on the existing directory `mountpoint`.
// Errors: InvalidArgument (options), NotFound (a path), Corrupt (not a
// composefs image), VerityMissing / VerityMismatch (digest or fs-verity
// requirements), Unsupported (the kernel lacks a needed feature), Permission.
Result<Mounted> mount_image(const std::string& image_path, const std::string& mountpoint,
                            const Options& opts);
Result<Mounted> mount_image_fd(int image_fd, const std::string& mountpoint, const Options& opts);

// The same, but the overlay is left detached (an fsmount() or open_tree()
// fd, not attached anywhere) for the caller to build a tree on and attach
// with move_mount(); `info.mountpoint` is empty.  Closing `mnt` unmounts it.
struct DetachedMount {
  UniqueFd mnt;
  Mounted info;
};
Result<DetachedMount> mount_image_fd_detached(int image_fd, const Options& opts);

// Unmounts `mountpoint` (not following a symlink there).  lazy: MNT_DETACH,
// for a mount still in use.  Any loop device goes with the last mount of it.
Status unmount(const std::string& mountpoint, bool lazy = false);

// Unmounts (lazily) on destruction unless released: for short-lived mounts.
class ScopedMount {
 public:
  ScopedMount() = default;
  explicit ScopedMount(Mounted m) : m_(std::move(m)) {}
  ScopedMount(ScopedMount&& o) noexcept : m_(std::move(o.m_)) { o.m_.reset(); }
  ScopedMount& operator=(ScopedMount&& o) noexcept;
  ScopedMount(const ScopedMount&) = delete;
  ScopedMount& operator=(const ScopedMount&) = delete;
  ~ScopedMount() { (void)reset(); }

  const Mounted* operator->() const { return &*m_; }
  bool active() const { return m_.has_value(); }
  // Unmounts now, reporting failure.
  Status reset();
  // Keeps the mount; returns what it was.
  Mounted release();

 private:
  std::optional<Mounted> m_;
};

std::string_view to_string(Verity v);
std::string_view to_string(ErofsMethod m);
std::string_view to_string(OverlayMethod m);

}  // namespace cfs::mount
