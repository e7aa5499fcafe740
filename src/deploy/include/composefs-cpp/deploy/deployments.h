// SPDX-License-Identifier: Apache-2.0
// Deployments on bootc's composefs layout (boot-spec 2.1-2.10): a physical
// root ("sysroot") holding the repository at composefs/, one
// state/deploy/<D>/{etc,var,<D>.origin} per deployment, the shared
// state/os/default/var, and boot entries in <boot>/loader/entries (plus
// loader/entries.staged for a staged deployment).  The boot entries are the
// source of truth, as in bootc: a state directory no entry names is an
// orphan.  This reads that layout (status), stages deployments (switch,
// upgrade), finalizes and rolls them back, and collects garbage, so that a
// system made by either tool is read and changed by the other.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "composefs-cpp/base/error.h"
#include "composefs-cpp/boot/bls.h"

namespace cfs::deploy {

// Where things are.  `boot` holds loader/entries and the boot binaries:
// <sysroot>/boot by default (bootc's GRUB layout), or the ESP.
struct Layout {
  std::string sysroot = "/sysroot";
  std::string boot;     // default: <sysroot>/boot
  std::string run_dir;  // staged marker dir; default /run/composefs
  std::string boot_dir() const { return boot.empty() ? sysroot + "/boot" : boot; }
  std::string run() const { return run_dir.empty() ? "/run/composefs" : run_dir; }
  std::string repo() const { return sysroot + "/composefs"; }
  std::string state(const std::string& d) const { return sysroot + "/state/deploy/" + d; }
  std::string entries() const { return boot_dir() + "/loader/entries"; }
  std::string staged_entries() const { return boot_dir() + "/loader/entries.staged"; }
};

// <D>.origin (bootc's composefs_consts.rs keys; INI, "key=value" with
// spaces around '=' accepted).
struct Origin {
  std::string image_reference;  // [origin] container-image-reference
  std::string boot_type;        // [boot] boot_type: bls | uki
  std::string boot_digest;      // [boot] digest: sha256 of the boot binaries
  std::string manifest_digest;  // [image] manifest_digest
};
Result<Origin> parse_origin(std::string_view text);
std::string write_origin(const Origin& o);

// The container-image-reference for a pull source ("oci:/d:t",
// "docker://q/i:t") and back.  bootc writes ostree-unverified-image:<src>;
// ostree-unverified-registry:<name> means docker://<name>.
std::string origin_reference(std::string_view source);
Result<std::string> pull_source(std::string_view reference);

// /run/composefs/staged-deployment: {"depl_id":"<D>","finalization_locked":b}.
struct StagedMarker {
  std::string depl_id;
  bool finalization_locked = false;
};
std::optional<StagedMarker> parse_staged_marker(std::string_view json);
std::string write_staged_marker(const StagedMarker& m);

// The digest of the image mounted at "/" from /proc/self/mountinfo text: the
// last mount of "/" whose source is composefs:<hex> or
// transient:composefs=<hex>.
std::optional<std::string> root_mount_digest(std::string_view mountinfo);
// The booted digest: the cmdline's composefs karg (composefs.digest= wins,
// else composefs=, sha512), overridden by the mount source of "/" when that
// names one (a soft reboot changes "/" but not the command line).
std::optional<std::string> booted_digest(std::string_view cmdline, std::string_view mountinfo);

// One boot entry file and what bootc's status derives from it.
struct EntryInfo {
  std::string file;  // its name in loader/entries (or entries.staged)
  boot::bls::Entry bls;
  std::string digest;     // the deployment's D
  std::string artifact;   // the boot binary's name minus bootc_composefs-
  std::string boot_type;  // "uki" for efi/uki entries, else "bls"
};
Result<EntryInfo> entry_info(const std::string& file, std::string_view text);
// The entries of a directory, sorted as systemd-boot shows them (sort-key,
// then version descending, then file name); a missing directory is empty.
Result<std::vector<EntryInfo>> read_entries(const std::string& dir);

struct Deployment {
  EntryInfo entry;
  std::optional<Origin> origin;  // nullopt: no <D>.origin (bootc skips it)
  bool staged = false;
};

struct SystemStatus {
  std::optional<std::string> booted_digest;
  std::optional<Deployment> booted, staged, rollback;
  std::vector<Deployment> others;
  std::vector<Deployment> all;   // entries order, then the staged one
  bool rollback_queued = false;  // the first entry is not the booted one
  bool download_only = false;
  std::string bootloader;  // systemd | grub | none
  std::vector<std::string> warnings;
};

struct StatusInput {
  std::string cmdline;    // /proc/cmdline text
  std::string mountinfo;  // /proc/self/mountinfo text
};
Result<SystemStatus> read_status(const Layout& l, const StatusInput& in);
// bootc status --json's shape (spec.rs, camelCase) for what is read here.
std::string status_json(const SystemStatus& s);
std::string status_text(const SystemStatus& s);

// The deployment the next operation starts from: the booted one, else
// (an installed disk not booted now) the first entry.
std::optional<Deployment> current_deployment(const SystemStatus& s);

// Fault injection for crash tests: when the counter reaches `fail_at`,
// `_exit(99)`.  Steps are counted from 1 at each durable change.
struct Steps {
  int fail_at = 0;
  int n = 0;
  void step(std::string_view what);
};

}  // namespace cfs::deploy
