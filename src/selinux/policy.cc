// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/selinux/policy.h"

#include <sys/stat.h>

namespace cfs::selinux {

namespace {

// Decodes one UTF-8 sequence at s[i] as Rust's str validation does (no
// overlong forms, no surrogates, at most U+10FFFF); 0 on invalid input.
size_t utf8_len(std::string_view s, size_t i, uint32_t* cp) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  size_t len;
  uint32_t v, min;
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2, v = c & 0x1f, min = 0x80;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3, v = c & 0x0f, min = 0x800;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4, v = c & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; k++) {
    if ((b(i + k) & 0xc0) != 0x80) return 0;
    v = v << 6 | (b(i + k) & 0x3f);
  }
  if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
  *cp = v;
  return len;
}

bool valid_utf8(std::string_view s) {
  uint32_t cp = 0;
  for (size_t i = 0; i < s.size();) {
    size_t n = utf8_len(s, i, &cp);
    if (!n) return false;
    i += n;
  }
  return true;
}

// Unicode White_Space, what Rust's split_whitespace and trim use.
bool is_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f ||
         c == 0x3000;
}

// Fields of a valid UTF-8 line.
std::vector<std::string_view> split_whitespace(std::string_view s) {
  std::vector<std::string_view> out;
  size_t start = std::string_view::npos;
  uint32_t cp = 0;
  for (size_t i = 0; i < s.size();) {
    size_t n = utf8_len(s, i, &cp);
    if (is_space(cp)) {
      if (start != std::string_view::npos) out.push_back(s.substr(start, i - start));
      start = std::string_view::npos;
    } else if (start == std::string_view::npos) {
      start = i;
    }
    i += n;
  }
  if (start != std::string_view::npos) out.push_back(s.substr(start));
  return out;
}

std::string_view trim(std::string_view s) {
  uint32_t cp = 0;
  size_t b = 0;
  while (b < s.size()) {
    size_t n = utf8_len(s, b, &cp);
    if (!is_space(cp)) break;
    b += n;
  }
  size_t e = s.size();
  while (e > b) {
    // Step back to the start of the last character.
    size_t k = e - 1;
    while (k > b && (static_cast<unsigned char>(s[k]) & 0xc0) == 0x80) k--;
    utf8_len(s, k, &cp);
    if (!is_space(cp)) break;
    e = k;
  }
  return s.substr(b, e - b);
}

bool iequals_ascii(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++) {
    auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// Calls fn(line, line_number) for each line, as Rust's BufRead::lines()
// splits them; a line that is not UTF-8 is an error.
template <class Fn>
Status for_each_line(std::string_view text, const std::string& file, Fn&& fn) {
  size_t line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line =
        nl == std::string_view::npos ? text.substr(pos) : text.substr(pos, nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    line_no++;
    if (nl != std::string_view::npos && !line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!valid_utf8(line)) return errorf(Errc::Corrupt, "{}:{}: not valid UTF-8", file, line_no);
    CFS_TRY(fn(line, line_no));
  }
  return {};
}

}  // namespace

char type_char(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return '-';
    case S_IFDIR: return 'd';
    case S_IFLNK: return 'l';
    case S_IFIFO: return 'p';
    case S_IFSOCK: return 's';
    case S_IFBLK: return 'b';
    case S_IFCHR: return 'c';
    default: return 0;
  }
}

Status parse_spec_file(std::string_view text, const std::string& file, std::vector<Spec>& out) {
  return for_each_line(text, file, [&](std::string_view line, size_t no) -> Status {
    auto f = split_whitespace(line);
    if (f.empty() || f[0][0] == '#') return {};
    if (f.size() < 2)
      return errorf(Errc::Corrupt, "{}:{}: missing separator after regex", file, no);
    Spec s;
    s.regex = f[0];
    s.file = file;
    s.line = no;
    size_t ctx = 1;
    if (f[1][0] == '-') {
      std::string_view t = f[1].substr(1);
      if (t.size() != 1 || std::string_view("bcdpls-").find(t[0]) == std::string_view::npos)
        return errorf(Errc::Corrupt, "{}:{}: invalid type code '{}'", file, no, f[1]);
      if (f.size() < 3) return errorf(Errc::Corrupt, "{}:{}: missing context field", file, no);
      s.type = t[0];
      ctx = 2;
    }
    if (f.size() > ctx + 1)
      return errorf(Errc::Corrupt, "{}:{}: trailing data '{}'", file, no, f[ctx + 1]);
    s.context = f[ctx];
    out.push_back(std::move(s));
    return {};
  });
}

Status parse_subs_file(std::string_view text, const std::string& file, AliasMap& out) {
  return for_each_line(text, file, [&](std::string_view line, size_t no) -> Status {
    auto f = split_whitespace(line);
    if (f.empty() || f[0][0] == '#') return {};
    if (f.size() < 2) return errorf(Errc::Corrupt, "{}:{}: missing original path", file, no);
    if (f.size() > 2) return errorf(Errc::Corrupt, "{}:{}: trailing data '{}'", file, no, f[2]);
    out.insert_or_assign(std::string(f[0]), std::string(f[1]));
    return {};
  });
}

Result<std::optional<std::string>> parse_config(std::string_view text, const std::string& file) {
  std::optional<std::string> type;
  // Stops at the first SELINUXTYPE line: later lines are not read (so not
  // checked for UTF-8), as in composefs-rs.
  size_t pos = 0, no = 0;
  while (pos < text.size() && !type) {
    size_t nl = text.find('\n', pos);
    std::string_view line =
        nl == std::string_view::npos ? text.substr(pos) : text.substr(pos, nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    no++;
    if (nl != std::string_view::npos && !line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!valid_utf8(line)) return errorf(Errc::Corrupt, "{}:{}: not valid UTF-8", file, no);
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    if (iequals_ascii(trim(line.substr(0, eq)), "SELINUXTYPE"))
      type = std::string(trim(line.substr(eq + 1)));
  }
  return type;
}

Result<Policy> Policy::build(std::vector<Spec> specs, AliasMap aliases) {
  Policy p;
  CFS_TRY_ASSIGN(p.matcher_, Matcher::build(specs));
  p.specs_ = std::move(specs);
  p.aliases_ = std::move(aliases);
  return p;
}

Result<Policy> Policy::load(const Opener& open, const std::string& dir) {
  std::vector<Spec> specs;
  AliasMap aliases;
  for (const char* suffix : {"", ".local", ".homedirs"}) {
    std::string name = std::string("file_contexts") + suffix;
    CFS_TRY_ASSIGN(auto text, open(name));
    if (text)
      CFS_TRY(parse_spec_file(*text, dir + "/" + name, specs));
    else if (!*suffix)
      return errorf(Errc::NotFound, "the SELinux policy has no file_contexts in {}", dir);
  }
  for (const char* suffix : {".subs", ".subs_dist"}) {
    std::string name = std::string("file_contexts") + suffix;
    CFS_TRY_ASSIGN(auto text, open(name));
    if (text) CFS_TRY(parse_subs_file(*text, dir + "/" + name, aliases));
  }
  return build(std::move(specs), std::move(aliases));
}

std::optional<size_t> Policy::match(std::string_view path, char type) {
  key_.assign(path);
  key_.push_back(type);
  return matcher_.lookup(key_);
}

const std::string* Policy::lookup(std::string_view path, char type) {
  auto idx = match(path, type);
  if (!idx || specs_[*idx].context == kNoneContext) return nullptr;
  return &specs_[*idx].context;
}

const std::string* Policy::alias(std::string_view path) const {
  if (aliases_.empty()) return nullptr;
  auto it = aliases_.find(std::string(path));
  return it == aliases_.end() ? nullptr : &it->second;
}

}  // namespace cfs::selinux
