// SPDX-License-Identifier: Apache-2.0
// Boot Loader Specification Type 1 entries as bootc writes them (its
// BLSConfig, boot-spec 2.3) and bootc's names for them.  The entries an
// image carries are read by resources.h (Type1Entry, composefs-rs's line
// form); this is the structured form a deployment tool writes.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "composefs-cpp/base/error.h"

namespace cfs::boot::bls {

struct Entry {
  std::optional<std::string> title;
  std::optional<std::string> version;
  // A UKI through a Type 1 entry: `efi` or `uki` (bootc uses `uki` only
  // with systemd-boot >= 258); excludes `linux`.
  std::optional<std::string> efi;
  std::string efi_key = "efi";
  std::optional<std::string> linux;
  std::vector<std::string> initrd;  // `initrd` may repeat
  std::optional<std::string> options;
  std::optional<std::string> machine_id;
  std::optional<std::string> sort_key;
  std::vector<std::pair<std::string, std::string>> extra;  // in file order
};

// Any key order; lines whose first non-blank is '#' and blank lines are
// skipped; the key runs up to the first whitespace, the value is the rest
// with surrounding whitespace removed.  A repeated single key keeps the
// last value.  An entry with both `linux` and `efi`/`uki` is an error, as
// is one with neither or a key without a value.
Result<Entry> parse(std::string_view text);

// bootc's BLSConfig order, each line ended by '\n': title, version, then
// either the efi/uki line or linux, one initrd line each and options; then
// machine-id, sort-key and the extra keys.  An entry with both linux and
// efi (or neither) is an error.
Result<std::string> write(const Entry& e);

// A file name without its boot-counting suffix ("+LEFT" or "+LEFT-DONE"
// before the extension): "a+3.conf" and "a+0-3.conf" are "a.conf"; a '+'
// not followed by that form stays.
std::string strip_boot_counting(std::string_view filename);
// Whether two entry file names name the same entry, boot counting aside.
bool same_entry(std::string_view a, std::string_view b);

// bootc's names.  `primary` is the new entry (priority 1, sort-key -0),
// the other the previously booted one (priority 0, sort-key -1).
std::string bootc_entry_filename(std::string_view os_id, std::string_view version, bool primary);
std::string bootc_sort_key(std::string_view os_id, bool primary);
inline constexpr std::string_view kBootcPrefix = "bootc_composefs-";
std::string bootc_kernel_dir(std::string_view digest_hex);  // "bootc_composefs-<D>"

}  // namespace cfs::boot::bls
