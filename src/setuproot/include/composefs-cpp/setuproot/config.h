// SPDX-License-Identifier: Apache-2.0
// composefs-setup-root's configuration (setup-root-conf.toml), as
// composefs-rs and bootc read it:
//   [root] transient = BOOL
//   [etc]  mount = "none"|"bind"|"overlay"|"transient"   (bootc: "root", "volatile")
//          transient = BOOL   (only when mount is unset)
//   [var]  the same
// Unlike composefs-rs (serde ignores them), unknown tables, keys and values
// are errors naming file:line, since a typo would otherwise boot a system
// configured differently from what its author wrote.
#pragma once

#include <string>
#include <string_view>

#include "composefs-cpp/base/error.h"

namespace cfs::setuproot {

enum class MountMode { None, Bind, Overlay, Transient };

struct Config {
  bool root_transient = false;
  MountMode etc = MountMode::Overlay;  // composefs-rs's defaults
  MountMode var = MountMode::Bind;
  // Whether [var] set mount or transient: without that, bootc leaves /var
  // to systemd when the command line has systemd.volatile=state|overlay.
  bool var_explicit = false;
  friend bool operator==(const Config&, const Config&) = default;
};

// Parses TOML text; `name` is the file name used in messages.
Result<Config> parse_config(std::string_view text, const std::string& name);
// Reads a file; a missing file gives the defaults.
Result<Config> load_config(const std::string& path);

std::string_view to_string(MountMode m);

}  // namespace cfs::setuproot
