// SPDX-License-Identifier: Apache-2.0
// The boot resources an image carries, found as composefs-rs's
// get_boot_resources finds them (composefs-boot bootloader.rs), in its
// order; callers take the first entry as "the" boot entry:
//
//  1. Type 1: every *.conf in /boot/loader/entries (a directory or a
//     non-regular file of that name is an error), in byte order; each
//     `linux`, `initrd` and `efi` value is a path in the image (from its
//     root, not from /boot) naming a regular file, else an error.
//  2. Type 2: every *.efi regular file below /boot/EFI/Linux, then below
//     /boot/loader/addons, then below each /usr/lib/modules/<kver>/, depth
//     first in byte order at any depth; *.addon.efi is an addon (a global one
//     under /boot/loader/addons), anything else a UKI.  An *.efi that is not
//     a regular file is an error.
//  3. Each /usr/lib/modules/<kver>/vmlinuz (a regular file), with its
//     initramfs.img when that is a regular file.
//
// A searched directory that is missing is skipped; one that is not a
// directory is an error.  Nothing here changes the tree: this runs on the
// tree before the boot transformation empties /boot.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "composefs-cpp/base/error.h"
#include "composefs-cpp/fsverity/fsverity.h"
#include "composefs-cpp/selinux/selabel.h"
#include "composefs-cpp/tree/tree.h"

namespace cfs::boot {

// A regular file of the image: its data inline, or the object it names.
struct FileRef {
  std::string path;  // in the image, "/usr/lib/modules/6.1/vmlinuz"
  uint64_t size = 0;
  std::optional<std::string> content;      // inline data
  std::optional<fsverity::Digest> digest;  // the object holding it
  std::optional<std::string> payload;      // the object path, as the image names it
};

// A Boot Loader Specification entry file: its lines (split at '\n', a final
// '\n' ending the last) and the files its linux/initrd/efi lines name, by
// the value as written.
struct Type1Entry {
  std::string filename;  // "fedora.conf"
  std::vector<std::string> lines;
  std::map<std::string, FileRef> files;

  // The value of the first line `key` followed by whitespace.
  std::optional<std::string> value(std::string_view key) const;
  // composefs-rs's add_cmdline: on the first `options` line the first token
  // starting with the argument's key (up to and including '=', or the whole
  // argument) is replaced, else the argument is appended; without an
  // `options` line one is added.
  void add_cmdline(std::string_view arg);
  // composefs-rs's relocate: the entry becomes `<id>.conf` and every
  // linux/initrd/efi value "/dir/base" becomes "/<id>/base" (after
  // "/<boot_subdir>" when one is given), `files` re-keyed to match.
  void relocate(std::optional<std::string_view> boot_subdir, std::string_view id);
  std::string text() const;  // the lines, each ended by '\n'
};

enum class PeType { Uki, UkiAddon, GlobalUkiAddon };
std::string_view pe_type_name(PeType t);

struct Type2Entry {
  std::optional<std::string> kver;  // set below /usr/lib/modules/<kver>/
  std::string file_path;            // relative to the directory searched
  FileRef file;
  PeType pe_type = PeType::Uki;
};

struct VmlinuzEntry {
  std::string kver;
  FileRef vmlinuz;
  std::optional<FileRef> initramfs;
  // /usr/lib/os-release when it is a regular file.  composefs-rs looks it
  // up as one directory entry named "/usr/lib/os-release" and so never
  // finds it; nothing it writes depends on it.
  std::optional<FileRef> os_release;
};

using BootEntry = std::variant<Type1Entry, Type2Entry, VmlinuzEntry>;

// Every boot entry of `tree`.  `read` gives the data of the Type 1 entry
// files that are not inline (a repository object, a file on disk).
Result<std::vector<BootEntry>> get_boot_resources(const Tree& tree,
                                                  const selinux::FileReader& read);

}  // namespace cfs::boot
