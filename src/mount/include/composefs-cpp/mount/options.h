// SPDX-License-Identifier: Apache-2.0
// The mount.composefs "-o" option string: comma-separated key[=value] items,
// a backslash escaping the next character (so "\," is a comma in a value),
// as the C reference parses it, plus the generic options mount(8) passes on.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "composefs-cpp/base/error.h"
#include "composefs-cpp/mount/mount.h"

namespace cfs::mount {

struct OptionItem {
  std::string key;
  std::optional<std::string> value;  // unescaped; nullopt without '='
};

// Splits at unescaped commas; values are unescaped, keys kept as written.
// Empty items (",,") are skipped.
std::vector<OptionItem> split_options(std::string_view s);

struct ParsedOptions {
  Options options;                   // everything but idmap_userns_fd
  std::optional<std::string> idmap;  // path of a user namespace (idmap=)
  std::vector<std::string> ignored;  // fstab/mount(8) bookkeeping options, and with
                                     // sloppy unknown ones
};

// Interprets mount.composefs options:
//   basedir=DIR[:DIR...]  digest=HEX  verity  tryverity  noverity  insecure
//   upperdir=DIR  workdir=DIR  idmap=PATH  ro  rw
//   nosuid suid nodev dev noexec exec noatime relatime strictatime nodiratime
//   diratime nosymfollow symfollow    (applied to the mount)
//   defaults auto noauto nofail _netdev user nouser users owner group
//   comment=... x-...                 (fstab bookkeeping, ignored)
// `digest=` makes verity the default (as the reference does); an explicit
// tryverity or noverity overrides that.  Unknown options are an error unless
// `sloppy` (mount -s).
Result<ParsedOptions> parse_options(std::string_view s, bool sloppy = false);

}  // namespace cfs::mount
