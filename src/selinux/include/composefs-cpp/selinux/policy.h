// SPDX-License-Identifier: Apache-2.0
// An SELinux file-labelling policy as composefs-rs reads it
// (crates/composefs-boot/src/selabel.rs): the specs of file_contexts,
// file_contexts.local and file_contexts.homedirs in that order, and the
// aliases of file_contexts.subs and file_contexts.subs_dist (a later alias
// of the same path wins).  Compiled .bin files are not read.
//
// Text is split as composefs-rs splits it: lines end at '\n' (a '\r' before
// it is dropped), fields are separated by Unicode whitespace, a line must be
// valid UTF-8, and a first field starting with '#' makes a comment.
//   spec line:  REGEX [-T] CONTEXT     T one of b c d p l s -
//   subs line:  ALIAS ORIGINAL         (aliases are exact paths)
// Anything else (extra fields, a missing context, another -T) is an error
// naming the file and the line.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "composefs-cpp/base/error.h"
#include "composefs-cpp/selinux/matcher.h"

namespace cfs::selinux {

inline constexpr std::string_view kXattr = "security.selinux";
// The context that means "no label".
inline constexpr std::string_view kNoneContext = "<<none>>";
// Policy files larger than this are refused (Fedora's file_contexts is
// about 400 KiB).
inline constexpr size_t kMaxPolicyFile = 64 << 20;

// The type character of a file mode ('-' regular, 'd', 'l', 'p', 's', 'b',
// 'c'), or 0 for an invalid mode.
char type_char(uint32_t mode);

// Appends the specs of one file_contexts file; `file` names it in errors.
Status parse_spec_file(std::string_view text, const std::string& file, std::vector<Spec>& out);
using AliasMap = std::unordered_map<std::string, std::string>;
// Adds the aliases of one .subs file (a repeated alias replaces the older).
Status parse_subs_file(std::string_view text, const std::string& file, AliasMap& out);
// SELINUXTYPE from /etc/selinux/config: the first line whose key (before the
// first '=', trimmed) is SELINUXTYPE in any case; its value, trimmed.
Result<std::optional<std::string>> parse_config(std::string_view text, const std::string& file);

// Lookups reuse scratch state (and JIT-compile patterns on first use), so a
// Policy is not for concurrent use: one per thread.
class Policy {
 public:
  // Reads one policy file by name ("file_contexts", "file_contexts.subs",
  // ...): its contents, or nullopt when it does not exist.
  using Opener = std::function<Result<std::optional<std::string>>(const std::string& name)>;

  // Reads and compiles a policy; `dir` (e.g.
  // "/etc/selinux/default/contexts/files") names the files in errors.
  static Result<Policy> load(const Opener& open, const std::string& dir);
  // From specs and aliases already parsed.
  static Result<Policy> build(std::vector<Spec> specs, AliasMap aliases);

  // The index of the spec that decides `path` of type `type` (the last one
  // that matches), or nullopt.
  std::optional<size_t> match(std::string_view path, char type);
  // The label of `path`: nullptr when no spec matches or the deciding one
  // says <<none>>.  Valid until the policy is destroyed.
  const std::string* lookup(std::string_view path, char type);
  // What a path is an alias of (file_contexts.subs), or nullptr.
  const std::string* alias(std::string_view path) const;

  const std::vector<Spec>& specs() const { return specs_; }
  const AliasMap& aliases() const { return aliases_; }
  Matcher& matcher() { return matcher_; }

 private:
  std::vector<Spec> specs_;
  AliasMap aliases_;
  Matcher matcher_;
  std::string key_;  // path + type character, reused across lookups
};

}  // namespace cfs::selinux
