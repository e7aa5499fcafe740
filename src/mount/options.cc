// SPDX-License-Identifier: Apache-2.0
// mount.composefs option parsing; pure (no I/O) so it is tested directly.
#include "composefs-cpp/mount/options.h"

#include "composefs-cpp/fsverity/fsverity.h"
#include "composefs-cpp/mount/fs_context.h"

namespace cfs::mount {

std::vector<OptionItem> split_options(std::string_view s) {
  std::vector<OptionItem> out;
  size_t i = 0;
  while (i <= s.size()) {
    std::string key, value;
    bool has_value = false;
    for (; i < s.size() && s[i] != ','; i++) {
      char c = s[i];
      if (c == '\\' && i + 1 == s.size() && has_value) break;  // a trailing escape: dropped
      if (c == '\\' && i + 1 < s.size()) {
        // The reference keeps escapes in keys and removes them from values.
        if (has_value) {
          value += s[++i];
        } else {
          key += c;
          key += s[++i];
        }
        continue;
      }
      if (c == '=' && !has_value) {
        has_value = true;
        continue;
      }
      (has_value ? value : key) += c;
    }
    if (!key.empty() || has_value)
      out.push_back({std::move(key), has_value ? std::optional(std::move(value)) : std::nullopt});
    i++;  // past the comma (or the end)
  }
  return out;
}

namespace {

struct AttrOption {
  std::string_view name;
  uint64_t set;
  uint64_t clear;
};

// Generic VFS options mount(8) passes to helpers, applied to the mount.
constexpr AttrOption kAttrOptions[] = {
    {"nosuid", kAttrNosuid, 0},
    {"suid", 0, kAttrNosuid},
    {"nodev", kAttrNodev, 0},
    {"dev", 0, kAttrNodev},
    {"noexec", kAttrNoexec, 0},
    {"exec", 0, kAttrNoexec},
    {"noatime", kAttrNoatime, kAttrAtimeMask},
    {"relatime", 0, kAttrAtimeMask},
    {"strictatime", kAttrStrictatime, kAttrAtimeMask},
    {"nodiratime", kAttrNodiratime, 0},
    {"diratime", 0, kAttrNodiratime},
    {"nosymfollow", kAttrNosymfollow, 0},
    {"symfollow", 0, kAttrNosymfollow},
};

// fstab and mount(8) bookkeeping: meaningless to the filesystem.
constexpr std::string_view kIgnored[] = {"defaults", "auto",  "noauto", "nofail",
                                         "_netdev",  "user",  "nouser", "users",
                                         "owner",    "group", "async",  "loud"};

const AttrOption* find_attr(std::string_view k) {
  for (const AttrOption& a : kAttrOptions)
    if (a.name == k) return &a;
  return nullptr;
}

bool is_bookkeeping(std::string_view k) {
  for (std::string_view name : kIgnored)
    if (k == name) return true;
  return false;
}

Result<std::string> need_value(const OptionItem& it) {
  if (!it.value || it.value->empty())
    return errorf(Errc::InvalidArgument, "no value specified for the {} option", it.key);
  return *it.value;
}

}  // namespace

Result<ParsedOptions> parse_options(std::string_view s, bool sloppy) {
  ParsedOptions p;
  Options& o = p.options;
  std::optional<Verity> explicit_verity;
  bool have_basedir = false;
  for (const OptionItem& it : split_options(s)) {
    const std::string& k = it.key;
    if (k == "basedir") {
      CFS_TRY_ASSIGN(std::string v, need_value(it));
      o.basedirs.clear();
      size_t start = 0;
      for (;;) {
        size_t colon = v.find(':', start);
        std::string dir = v.substr(start, colon == std::string::npos ? colon : colon - start);
        if (dir.empty())
          return errorf(Errc::InvalidArgument,
                        "basedir '{}' has an empty directory in its ':'-separated list", v);
        o.basedirs.push_back(std::move(dir));
        if (colon == std::string::npos) break;
        start = colon + 1;
      }
      have_basedir = true;
    } else if (k == "digest") {
      CFS_TRY_ASSIGN(std::string v, need_value(it));
      auto d = fsverity::Digest::from_hex(v);
      if (!d)
        return errorf(Errc::InvalidArgument,
                      "digest '{}' is not a fs-verity digest (64 or 128 hex digits)", v);
      o.expected_digest = *d;
    } else if (k == "verity" && !it.value) {
      explicit_verity = Verity::Require;
    } else if (k == "tryverity" && !it.value) {
      explicit_verity = Verity::Try;
    } else if (k == "noverity" && !it.value) {
      explicit_verity = Verity::Off;
    } else if (k == "insecure" && !it.value) {
      o.allow_insecure = true;
    } else if (k == "upperdir") {
      CFS_TRY_ASSIGN(o.upperdir, need_value(it));
    } else if (k == "workdir") {
      CFS_TRY_ASSIGN(o.workdir, need_value(it));
    } else if (k == "idmap") {
      CFS_TRY_ASSIGN(p.idmap, need_value(it));
    } else if (k == "ro" && !it.value) {
      o.read_only = true;
    } else if (k == "rw" && !it.value) {
      o.read_only = false;
    } else if (const AttrOption* a = find_attr(k); a && !it.value) {
      o.mount_attr = (o.mount_attr & ~a->clear) | a->set;
    } else if ((is_bookkeeping(k) && !it.value) || k.starts_with("x-") || k == "comment" ||
               sloppy) {
      p.ignored.push_back(k);
    } else {
      return errorf(Errc::InvalidArgument, "unsupported option '{}'",
                    it.value ? k + "=" + *it.value : k);
    }
  }
  if (!have_basedir) return errorf(Errc::InvalidArgument, "no object dirs specified (basedir=)");
  if (o.upperdir.empty() != o.workdir.empty())
    return errorf(Errc::InvalidArgument, "both workdir and upperdir must be specified if used");
  o.verity =
      explicit_verity ? *explicit_verity : (o.expected_digest ? Verity::Require : Verity::Off);
  return p;
}

}  // namespace cfs::mount
