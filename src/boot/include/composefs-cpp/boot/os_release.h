// SPDX-License-Identifier: Apache-2.0
// os-release(5) files as composefs-rs reads them (a UKI's .osrel, an image's
// /usr/lib/os-release), and the boot label it derives from them.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace cfs::boot {

// Shell-style dequoting of one value, after trimming whitespace: "..." with
// backslash escaping the next character, '...' literal, unquoted text as it
// is, and concatenation ("a"'b'c).  nullopt for an unclosed quote.
std::optional<std::string> dequote_os_release_value(std::string_view raw);

class OsRelease {
 public:
  // Lines split at '\n' (a trailing '\r' dropped); lines whose trimmed text
  // starts with '#' and lines without '=' are skipped; the key is the text
  // before the first '=', not trimmed; a repeated key's last value wins.
  static OsRelease parse(std::string_view text);

  // The dequoted value of the first of `keys` that is present and dequotes.
  std::optional<std::string> value(std::initializer_list<std::string_view> keys) const;
  // PRETTY_NAME, NAME or ID.
  std::optional<std::string> pretty_name() const;
  // VERSION_ID or VERSION.
  std::optional<std::string> version() const;
  // The Boot Loader Specification label composefs-rs builds: the pretty name,
  // plus " <version>" when there is one; nullopt without a name.
  std::optional<std::string> boot_label() const;

  const std::map<std::string, std::string, std::less<>>& raw() const { return raw_; }

 private:
  std::map<std::string, std::string, std::less<>> raw_;
};

}  // namespace cfs::boot
