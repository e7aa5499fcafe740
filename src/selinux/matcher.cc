// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/selinux/matcher.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace cfs::selinux {

namespace {

bool is_alnum(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
// strchr that does not find the terminating NUL (patterns may hold NULs).
bool in_set(const char* set, unsigned char c) { return c && std::strchr(set, c); }

// Escapes composefs-rs's regex engine (regex-syntax, Unicode off) accepts;
// every other letter or digit after a backslash is PCRE-only syntax there
// (backreferences, \Q, \K, \G, \Z, \R, \X, \h, \p, octal, ...).
bool rs_escape(unsigned char c) { return in_set("dDsSwWbBAzntrfvax", c); }

// Whether `s` at `i` (just after '{') is a repetition {n}, {n,} or {n,m}
// and, if so, where it ends (the index after '}').
size_t repetition_end(std::string_view s, size_t i) {
  size_t j = i;
  while (j < s.size() && is_digit(s[j])) j++;
  if (j == i) return 0;
  if (j < s.size() && s[j] == ',') {
    j++;
    while (j < s.size() && is_digit(s[j])) j++;
  }
  return j < s.size() && s[j] == '}' ? j + 1 : 0;
}

}  // namespace

PatternInfo analyze_pattern(std::string_view re, char type) {
  PatternInfo info;
  bool structure_ok = true;  // the wrapper ^( ... )T$ stays intact
  bool top_alt = false;      // '|' outside every group of REGEX
  bool verb = false;         // (*VERB): (*ACCEPT) can end a match anywhere
  bool quoting = false;      // \Q...\E, (?x): text we do not parse
  int depth = 0;
  const size_t n = re.size();
  for (size_t i = 0; i < n; i++) {
    unsigned char c = re[i];
    if (c >= 0x80) info.pcre_only = true;  // non-ASCII literals: PCRE2 only there
    switch (c) {
      case '\\': {
        if (i + 1 >= n) {
          structure_ok = false;  // escapes the wrapper's ')'
          break;
        }
        unsigned char e = re[++i];
        if (e == 'Q' || e == 'E') quoting = true;
        if (is_alnum(e) && !rs_escape(e)) info.pcre_only = true;
        break;
      }
      case '[': {
        size_t j = i + 1;
        if (j < n && re[j] == '^') j++;
        if (j < n && re[j] == ']') j++;
        bool closed = false;
        while (j < n) {
          unsigned char d = re[j];
          if (d == '\\') {
            if (j + 1 < n) {
              unsigned char e = re[j + 1];
              if (e == 'Q' || e == 'E') quoting = true;
              if (is_alnum(e) && !rs_escape(e)) info.pcre_only = true;
            }
            j += 2;
          } else if (d == '[' && j + 1 < n &&
                     (re[j + 1] == ':' || re[j + 1] == '.' || re[j + 1] == '=')) {
            char kind = re[j + 1];
            size_t k = j + 2;
            while (k + 1 < n && !(re[k] == kind && re[k + 1] == ']')) k++;
            if (k + 1 < n) {
              if (kind != ':') info.pcre_only = true;
              j = k + 2;
            } else {
              info.pcre_only = true;
              j++;
            }
          } else if (d == '[') {
            info.pcre_only = true;  // a literal '[' in PCRE, a nested class there
            j++;
          } else if (d == ']') {
            closed = true;
            j++;
            break;
          } else {
            if (d >= 0x80) info.pcre_only = true;
            j++;
          }
        }
        if (!closed) structure_ok = false;
        i = j - 1;
        break;
      }
      case '(':
        if (i + 1 < n && re[i + 1] == '*') {
          verb = true;
          info.pcre_only = true;
        } else if (i + 1 < n && re[i + 1] == '?') {
          unsigned char k = i + 2 < n ? re[i + 2] : 0;
          if (k == '#') {
            // A comment runs to the next ')' whatever it holds.
            info.pcre_only = true;
            size_t j = re.find(')', i + 3);
            if (j == std::string_view::npos) {
              structure_ok = false;
              i = n;
            } else {
              i = j;
            }
            break;
          }
          if (k == '<') {
            unsigned char k2 = i + 3 < n ? re[i + 3] : 0;
            if (k2 == '=' || k2 == '!') info.pcre_only = true;  // lookbehind
          } else if (k == 'P') {
            unsigned char k2 = i + 3 < n ? re[i + 3] : 0;
            if (k2 != '<') info.pcre_only = true;  // (?P=name), (?P>name)
          } else if (k == ':') {
            // non-capturing group
          } else if (in_set("imsxUnJ^-", k)) {
            size_t j = i + 2;
            while (j < n && in_set("imsxUnJ^-", re[j])) {
              if (re[j] == 'x') quoting = true;
              if (re[j] == 'n' || re[j] == 'J' || re[j] == '^') info.pcre_only = true;
              j++;
            }
          } else {
            // lookahead, atomic, branch reset, recursion, conditionals,
            // callouts, (?'name'...)
            info.pcre_only = true;
          }
        }
        depth++;
        break;
      case ')':
        if (--depth < 0) structure_ok = false;
        break;
      case '|':
        if (depth == 0) top_alt = true;
        break;
      case '{': {
        size_t end = repetition_end(re, i + 1);
        if (!end) {
          info.pcre_only = true;  // a literal '{' in PCRE, an error there
        } else {
          i = end - 1;
          if (end < n && re[end] == '+') info.pcre_only = true;  // possessive
        }
        break;
      }
      case '*':
      case '+':
      case '?':
        if (i + 1 < n && re[i + 1] == '+') {
          info.pcre_only = true;  // possessive
          i++;
        }
        break;
      default: break;
    }
  }
  if (depth != 0) structure_ok = false;
  if (!structure_ok || quoting) return info;
  info.type_checked = !verb;
  if (top_alt) return info;

  // The literal text REGEX starts with, up to the first metacharacter; a
  // literal made optional by the quantifier after it is left out.
  size_t i = 0;
  while (true) {
    if (i >= n) {
      info.exact = true;
      break;
    }
    unsigned char c = re[i];
    unsigned char lit;
    size_t len;
    if (c == '\\') {
      unsigned char e = re[i + 1];  // present: checked above
      if (is_alnum(e)) break;
      lit = e;
      len = 2;
    } else if (c == 0 || in_set("^$.[|()?*+{", c)) {
      break;
    } else {
      lit = c;
      len = 1;
    }
    unsigned char next = i + len < n ? re[i + len] : 0;
    if (next == '?' || next == '*' || next == '{') break;
    info.prefix.push_back(static_cast<char>(lit));
    if (next == '+') break;
    i += len;
  }
  (void)type;
  return info;
}

namespace {

struct CodeFree {
  void operator()(pcre2_code* c) const { pcre2_code_free(c); }
};
struct MatchDataFree {
  void operator()(pcre2_match_data* m) const { pcre2_match_data_free(m); }
};
struct MatchContextFree {
  void operator()(pcre2_match_context* m) const { pcre2_match_context_free(m); }
};

// Backtracking steps a pattern of composefs-rs's automaton gets before the
// answer is left to PCRE2's DFA-style matcher: real patterns need a few
// hundred; a pathological one (nested quantifiers) costs a millisecond,
// not the default limit's 10 million steps, per key.
constexpr uint32_t kBacktrackLimit = 100000;

enum class Jit : uint8_t { NotTried, Yes, No };

struct Pattern {
  std::unique_ptr<pcre2_code, CodeFree> code;
  PatternInfo info;
  char type = 0;             // the required last byte when type_filter
  bool type_filter = false;  // skip keys whose last byte is not `type`
  bool exact_fast = false;   // match = the key's length (prefix already matched)
  Jit jit = Jit::NotTried;
};

struct TrieNode {
  std::vector<std::pair<unsigned char, uint32_t>> next;  // sorted by byte
  std::vector<uint32_t> patterns;
};

}  // namespace

struct Matcher::Impl {
  std::vector<Pattern> patterns;
  std::vector<TrieNode> trie;
  std::unique_ptr<pcre2_match_data, MatchDataFree> md;
  std::unique_ptr<pcre2_match_context, MatchContextFree> limited;
  std::vector<uint32_t> candidates;
  std::vector<int> dfa_workspace;

  uint32_t child(uint32_t node, unsigned char c) const {
    for (auto& [b, idx] : trie[node].next) {
      if (b == c) return idx;
      if (b > c) break;
    }
    return 0;
  }

  void insert(const std::string& prefix, uint32_t pattern) {
    uint32_t node = 0;
    for (unsigned char c : prefix) {
      uint32_t nx = child(node, c);
      if (!nx) {
        nx = static_cast<uint32_t>(trie.size());
        auto& v = trie[node].next;
        auto it = std::lower_bound(v.begin(), v.end(), c,
                                   [](const auto& e, unsigned char b) { return e.first < b; });
        v.insert(it, {c, nx});
        trie.emplace_back();  // after the insert: `v` may refer into trie
      }
      node = nx;
    }
    trie[node].patterns.push_back(pattern);
  }

  bool run(Pattern& p, std::string_view key) {
    auto subject = reinterpret_cast<PCRE2_SPTR>(key.data());
    if (p.info.pcre_only) {
      // composefs-rs's fallback: the interpreter, default limits, and an
      // error (a limit reached) counts as no match.
      return pcre2_match(p.code.get(), subject, key.size(), 0, 0, md.get(), nullptr) >= 0;
    }
    if (p.jit == Jit::NotTried)
      p.jit = pcre2_jit_compile(p.code.get(), PCRE2_JIT_COMPLETE) == 0 ? Jit::Yes : Jit::No;
    int rc = p.jit == Jit::Yes
                 ? pcre2_jit_match(p.code.get(), subject, key.size(), 0, 0, md.get(), limited.get())
                 : pcre2_match(p.code.get(), subject, key.size(), 0, 0, md.get(), limited.get());
    if (rc >= 0) return true;
    if (rc == PCRE2_ERROR_NOMATCH) return false;
    // A backtracking limit: composefs-rs's automaton has none, and PCRE2's
    // DFA-style matcher (which does not backtrack) gives the true answer for
    // these patterns (no backreferences or lookarounds).
    if (dfa_workspace.empty()) dfa_workspace.resize(4096);
    while (true) {
      rc = pcre2_dfa_match(p.code.get(), subject, key.size(), 0, 0, md.get(), nullptr,
                           dfa_workspace.data(), dfa_workspace.size());
      if (rc != PCRE2_ERROR_DFA_WSSIZE || dfa_workspace.size() >= (1u << 22)) break;
      dfa_workspace.resize(dfa_workspace.size() * 4);
    }
    return rc >= 0;
  }
};

Matcher::Matcher() = default;
Matcher::Matcher(Matcher&&) noexcept = default;
Matcher& Matcher::operator=(Matcher&&) noexcept = default;
Matcher::~Matcher() = default;

Result<Matcher> Matcher::build(std::span<const Spec> specs) {
  Matcher m;
  m.impl_ = std::make_unique<Impl>();
  Impl& im = *m.impl_;
  im.patterns.reserve(specs.size());
  im.trie.emplace_back();
  std::string pattern;
  for (size_t i = 0; i < specs.size(); i++) {
    const Spec& s = specs[i];
    Pattern p;
    p.info = analyze_pattern(s.regex, s.type);
    p.type = s.type;
    p.type_filter = p.info.type_checked && !p.info.pcre_only && s.type != 0;
    p.exact_fast = p.info.exact && p.info.type_checked && !p.info.pcre_only;
    pattern.clear();
    pattern += "^(";
    pattern += s.regex;
    pattern += ')';
    pattern += s.type ? s.type : '.';
    pattern += '$';
    uint32_t options = p.info.pcre_only ? 0 : PCRE2_DOTALL | PCRE2_DOLLAR_ENDONLY;
    int err = 0;
    PCRE2_SIZE offset = 0;
    p.code.reset(pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                               options, &err, &offset, nullptr));
    if (!p.code) {
      PCRE2_UCHAR msg[256];
      if (pcre2_get_error_message(err, msg, sizeof msg) < 0) msg[0] = 0;
      // The offset counts the "^(" the regex was wrapped in.
      size_t at = offset >= 2 ? offset - 2 : 0;
      return errorf(Errc::Corrupt, "{}:{}: invalid regex '{}': {} (at offset {})", s.file, s.line,
                    s.regex, reinterpret_cast<const char*>(msg), std::min(at, s.regex.size()));
    }
    im.insert(p.info.prefix, static_cast<uint32_t>(i));
    im.patterns.push_back(std::move(p));
  }
  // Newest first within each trie node (they were appended oldest first).
  for (auto& node : im.trie) std::reverse(node.patterns.begin(), node.patterns.end());
  im.md.reset(pcre2_match_data_create(1, nullptr));
  im.limited.reset(pcre2_match_context_create(nullptr));
  if (!im.md || !im.limited) return make_error(Errc::NoSpace, "out of memory for PCRE2 match data");
  pcre2_set_match_limit(im.limited.get(), kBacktrackLimit);
  return m;
}

std::optional<size_t> Matcher::lookup(std::string_view key) {
  Impl& im = *impl_;
  auto& cand = im.candidates;
  cand.clear();
  uint32_t node = 0;
  cand.insert(cand.end(), im.trie[0].patterns.begin(), im.trie[0].patterns.end());
  for (unsigned char c : key) {
    node = im.child(node, c);
    if (!node) break;
    auto& v = im.trie[node].patterns;
    cand.insert(cand.end(), v.begin(), v.end());
  }
  std::sort(cand.begin(), cand.end(), std::greater<>());
  const char last = key.empty() ? 0 : key.back();
  for (uint32_t idx : cand) {
    Pattern& p = im.patterns[idx];
    if (p.type_filter && last != p.type) continue;
    if (p.exact_fast) {
      if (key.size() == p.info.prefix.size() + 1) return idx;
      continue;
    }
    if (im.run(p, key)) return idx;
  }
  return std::nullopt;
}

std::optional<size_t> Matcher::lookup_linear(std::string_view key) {
  Impl& im = *impl_;
  for (size_t i = im.patterns.size(); i-- > 0;)
    if (im.run(im.patterns[i], key)) return i;
  return std::nullopt;
}

bool Matcher::matches(size_t index, std::string_view key) {
  return impl_->run(impl_->patterns.at(index), key);
}

size_t Matcher::size() const { return impl_ ? impl_->patterns.size() : 0; }
const PatternInfo& Matcher::info(size_t index) const { return impl_->patterns.at(index).info; }

}  // namespace cfs::selinux
