// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/boot/bls.h"

#include <fmt/format.h>

namespace cfs::boot::bls {
namespace {

bool space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

}  // namespace

Result<Entry> parse(std::string_view text) {
  Entry e;
  bool efi_seen = false;
  size_t lineno = 0;
  for (size_t i = 0; i <= text.size();) {
    size_t j = text.find('\n', i);
    if (j == std::string_view::npos) j = text.size();
    std::string_view line = trim(text.substr(i, j - i));
    i = j + 1;
    lineno++;
    if (line.empty() || line.front() == '#') continue;
    size_t k = 0;
    while (k < line.size() && !space(line[k])) k++;
    std::string key(line.substr(0, k));
    std::string value(trim(line.substr(k)));
    if (value.empty())
      return errorf(Errc::InvalidArgument, "line {}: '{}' has no value", lineno, key);
    if (key == "title")
      e.title = value;
    else if (key == "version")
      e.version = value;
    else if (key == "linux")
      e.linux = value;
    else if (key == "initrd")
      e.initrd.push_back(value);
    else if (key == "options")
      e.options = value;
    else if (key == "machine-id")
      e.machine_id = value;
    else if (key == "sort-key")
      e.sort_key = value;
    else if (key == "efi" || key == "uki") {
      if (efi_seen && key != e.efi_key)
        return errorf(Errc::InvalidArgument, "line {}: both efi and uki", lineno);
      efi_seen = true;
      e.efi = value;
      e.efi_key = key;
    } else {
      e.extra.emplace_back(std::move(key), std::move(value));
    }
  }
  if (e.linux && e.efi)
    return errorf(Errc::InvalidArgument, "an entry with both linux and {}", e.efi_key);
  if (!e.linux && !e.efi)
    return make_error(Errc::InvalidArgument, "an entry with neither linux nor efi/uki");
  return e;
}

Result<std::string> write(const Entry& e) {
  if (e.linux && e.efi)
    return errorf(Errc::InvalidArgument, "an entry with both linux and {}", e.efi_key);
  if (!e.linux && !e.efi)
    return make_error(Errc::InvalidArgument, "an entry with neither linux nor efi/uki");
  if (e.efi && e.efi_key != "efi" && e.efi_key != "uki")
    return errorf(Errc::InvalidArgument, "'{}' is not efi or uki", e.efi_key);
  std::string s;
  auto line = [&s](std::string_view k, std::string_view v) { s += fmt::format("{} {}\n", k, v); };
  if (e.title) line("title", *e.title);
  if (e.version) line("version", *e.version);
  if (e.efi) {
    line(e.efi_key, *e.efi);
  } else {
    line("linux", *e.linux);
    for (const auto& i : e.initrd) line("initrd", i);
  }
  if (e.options) line("options", *e.options);
  if (e.machine_id) line("machine-id", *e.machine_id);
  if (e.sort_key) line("sort-key", *e.sort_key);
  for (const auto& [k, v] : e.extra) line(k, v);
  return s;
}

std::string strip_boot_counting(std::string_view name) {
  size_t dot = name.rfind('.');
  std::string_view stem = dot == std::string_view::npos ? name : name.substr(0, dot);
  std::string_view ext = dot == std::string_view::npos ? "" : name.substr(dot);
  size_t plus = stem.rfind('+');
  if (plus == std::string_view::npos) return std::string(name);
  std::string_view counts = stem.substr(plus + 1);
  size_t dash = counts.find('-');
  bool ok = dash == std::string_view::npos
                ? all_digits(counts)
                : all_digits(counts.substr(0, dash)) && all_digits(counts.substr(dash + 1));
  if (!ok) return std::string(name);
  return fmt::format("{}{}", stem.substr(0, plus), ext);
}

bool same_entry(std::string_view a, std::string_view b) {
  return strip_boot_counting(a) == strip_boot_counting(b);
}

std::string bootc_entry_filename(std::string_view os_id, std::string_view version, bool primary) {
  std::string id(os_id);
  for (char& c : id)
    if (c == '-') c = '_';
  return fmt::format("bootc_{}-{}-{}.conf", id, version, primary ? 1 : 0);
}

std::string bootc_sort_key(std::string_view os_id, bool primary) {
  return fmt::format("bootc-{}-{}", os_id, primary ? 0 : 1);
}

std::string bootc_kernel_dir(std::string_view digest_hex) {
  return fmt::format("{}{}", kBootcPrefix, digest_hex);
}

}  // namespace cfs::boot::bls
