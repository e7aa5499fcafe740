// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/boot/os_release.h"

namespace cfs::boot {

namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace

std::optional<std::string> dequote_os_release_value(std::string_view raw) {
  std::string_view v = trim(raw);
  std::string out;
  for (size_t i = 0; i < v.size();) {
    char c = v[i++];
    if (c == '"') {
      for (;;) {
        if (i >= v.size()) return std::nullopt;
        char d = v[i++];
        if (d == '"') break;
        if (d == '\\') {
          if (i >= v.size()) return std::nullopt;
          d = v[i++];
        }
        out += d;
      }
    } else if (c == '\'') {
      for (;;) {
        if (i >= v.size()) return std::nullopt;
        char d = v[i++];
        if (d == '\'') break;
        out += d;
      }
    } else {
      out += c;
    }
  }
  return out;
}

OsRelease OsRelease::parse(std::string_view text) {
  OsRelease r;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    std::string_view t = trim(line);
    if (!t.empty() && t[0] == '#') continue;
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    r.raw_[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
  }
  return r;
}

std::optional<std::string> OsRelease::value(std::initializer_list<std::string_view> keys) const {
  for (std::string_view k : keys) {
    auto it = raw_.find(k);
    if (it == raw_.end()) continue;
    if (auto v = dequote_os_release_value(it->second)) return v;
  }
  return std::nullopt;
}

std::optional<std::string> OsRelease::pretty_name() const {
  return value({"PRETTY_NAME", "NAME", "ID"});
}

std::optional<std::string> OsRelease::version() const { return value({"VERSION_ID", "VERSION"}); }

std::optional<std::string> OsRelease::boot_label() const {
  auto name = pretty_name();
  if (!name) return std::nullopt;
  if (auto v = version()) *name += " " + *v;
  return name;
}

}  // namespace cfs::boot
