// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/repository/names.h"

#include <vector>

#include "composefs-cpp/base/hex.h"
#include "composefs-cpp/tree/tree.h"

namespace cfs::repository {

std::optional<fsverity::Digest> parse_hex_digest(std::string_view s, fsverity::HashAlg alg) {
  if (s.size() != 2 * hash_digest_size(alg)) return std::nullopt;
  return fsverity::Digest::from_hex(alg, s);
}

namespace {

std::vector<std::string_view> components(std::string_view p) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i <= p.size()) {
    size_t j = p.find('/', i);
    if (j == std::string_view::npos) j = p.size();
    if (j > i) out.push_back(p.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

}  // namespace

Status validate_ref_name(std::string_view name) {
  if (name.empty()) return make_error(Errc::InvalidArgument, "empty ref name");
  if (name.size() >= kPathMax - 64)
    return errorf(Errc::InvalidArgument, "ref name '{}' is too long", name);
  if (name.find('\0') != std::string_view::npos)
    return make_error(Errc::InvalidArgument, "ref name contains a NUL byte");
  if (name.front() == '/')
    return errorf(Errc::InvalidArgument, "ref name '{}' must not be absolute", name);
  size_t i = 0;
  while (i <= name.size()) {
    size_t j = name.find('/', i);
    if (j == std::string_view::npos) j = name.size();
    std::string_view c = name.substr(i, j - i);
    if (c.empty())
      return errorf(Errc::InvalidArgument, "ref name '{}' has an empty path component", name);
    if (c == "." || c == "..")
      return errorf(Errc::InvalidArgument, "ref name '{}' must not contain '{}' components", name,
                    c);
    if (c.size() > kMaxNameLength)
      return errorf(Errc::InvalidArgument, "ref name '{}' has a component over {} bytes", name,
                    kMaxNameLength);
    i = j + 1;
  }
  return {};
}

Status validate_stream_name(std::string_view name) {
  if (name.empty() || name == "." || name == ".." || name == "refs" ||
      name.find('/') != std::string_view::npos || name.find('\0') != std::string_view::npos ||
      name.size() > kMaxNameLength)
    return errorf(Errc::InvalidArgument, "'{}' is not a valid stream name", name);
  return {};
}

std::string relative_target(std::string_view link, std::string_view target) {
  auto slash = link.rfind('/');
  auto lc =
      components(slash == std::string_view::npos ? std::string_view{} : link.substr(0, slash));
  auto tc = components(target);
  size_t common = 0;
  while (common < lc.size() && common < tc.size() && lc[common] == tc[common]) common++;
  std::string out;
  for (size_t i = common; i < lc.size(); i++) out += "../";
  for (size_t i = common; i < tc.size(); i++) {
    out += tc[i];
    if (i + 1 < tc.size()) out += '/';
  }
  return out;
}

std::optional<fsverity::Digest> digest_from_object_path(std::string_view path,
                                                        fsverity::HashAlg alg) {
  size_t n = 2 * hash_digest_size(alg) + 1;  // "xx/" + the rest
  if (path.size() < n) return std::nullopt;
  std::string_view tail = path.substr(path.size() - n);
  if (tail[2] != '/') return std::nullopt;
  std::string hex(tail.substr(0, 2));
  hex += tail.substr(3);
  return fsverity::Digest::from_hex(alg, hex);
}

}  // namespace cfs::repository
