// SPDX-License-Identifier: Apache-2.0
// The file_contexts pattern matcher with composefs-rs's priority: of all the
// specs whose anchored pattern `^(REGEX)T$` (T the spec's type character, or
// `.` when it has none) matches `path + type character`, the one read last
// wins.  There is no libselinux specificity ordering (exact paths first,
// stems): the image digest depends on composefs-rs's answer.
//
// Every pattern is compiled once with PCRE2 (JIT-compiled on first use).  A
// lookup does not try them all: each pattern's mandatory literal prefix (the
// literal text its REGEX starts with) goes into a trie, and only the patterns
// whose prefix the key starts with are tried, newest first, until one
// matches.  A pattern can only match keys that start with its prefix, so this
// gives the same answer as trying every pattern (lookup_linear(), which the
// tests compare against).
//
// Flags follow composefs-rs: patterns its regex engine accepts behave as
// there (`.` also matches a newline, `$` only at the very end); patterns it
// hands to PCRE2 (lookarounds, backreferences and other PCRE-only syntax) get
// PCRE2's defaults, as its fallback does.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "composefs-cpp/base/error.h"

namespace cfs::selinux {

// One file_contexts line.
struct Spec {
  std::string regex;    // as written
  char type = 0;        // 0 (any type) or one of "bcdpls-"
  std::string context;  // "<<none>>" means no label
  std::string file;     // where it came from, for messages ("file_contexts.local")
  size_t line = 0;      // 1-based
};

// What the analysis of one pattern found (exposed for tests).
struct PatternInfo {
  // Every key the pattern matches starts with this.
  std::string prefix;
  // The whole REGEX is this literal text: the pattern matches exactly
  // prefix + one type character.
  bool exact = false;
  // The pattern can only match keys ending in the spec's type character
  // (false when its structure leaves that open, e.g. `(*ACCEPT)`).
  bool type_checked = false;
  // composefs-rs's regex engine rejects this syntax, so it runs the pattern
  // on PCRE2 with default flags.
  bool pcre_only = false;
};
PatternInfo analyze_pattern(std::string_view regex, char type);

class Matcher {
 public:
  Matcher();
  Matcher(Matcher&&) noexcept;
  Matcher& operator=(Matcher&&) noexcept;
  ~Matcher();

  // Compiles every spec's pattern; a pattern PCRE2 refuses is an error
  // naming its file and line.
  static Result<Matcher> build(std::span<const Spec> specs);

  // The index (into the specs given to build) of the last spec matching
  // `key` (a path followed by one type character), or nullopt.
  std::optional<size_t> lookup(std::string_view key);
  // The same answer by trying every pattern from the last one down, with no
  // prefilter (the definition lookup() is tested against).
  std::optional<size_t> lookup_linear(std::string_view key);
  // Whether spec `index`'s pattern matches `key`.
  bool matches(size_t index, std::string_view key);

  size_t size() const;
  const PatternInfo& info(size_t index) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cfs::selinux
