// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/repository/streams.h"

#include <vector>

#include "composefs-cpp/repository/names.h"
#include "composefs-cpp/repository/walk.h"

namespace cfs::repository {
namespace {

// A symlink's target, or nothing when there is no such link.
Result<std::optional<std::string>> link_target(int dirfd, const std::string& rel) {
  auto t = read_link(dirfd, rel);
  if (!t && t.error().sys_errno() == ENOENT) return std::optional<std::string>();
  if (!t) return tl::unexpected(std::move(t.error()));
  return std::optional<std::string>(std::move(*t));
}

}  // namespace

Result<std::optional<fsverity::Digest>> stream_object(const Repository& repo,
                                                      const std::string& id) {
  CFS_TRY_ASSIGN(auto t, link_target(repo.dirfd(), "streams/" + id));
  if (!t) return std::optional<fsverity::Digest>();
  // "../objects/xx/rest": the digest is the last two components.
  size_t s2 = t->rfind('/');
  size_t s1 = s2 == std::string::npos || s2 == 0 ? std::string::npos : t->rfind('/', s2 - 1);
  if (s1 == std::string::npos || !t->starts_with("../"))
    return errorf(Errc::Corrupt, "streams/{} -> '{}' is not an object", id, *t);
  auto d =
      fsverity::Digest::from_hex(repo.alg(), t->substr(s1 + 1, s2 - s1 - 1) + t->substr(s2 + 1));
  if (!d) return errorf(Errc::Corrupt, "streams/{} -> '{}' is not an object", id, *t);
  if (!repo.has_object(*d)) return std::optional<fsverity::Digest>();
  return std::optional<fsverity::Digest>(*d);
}

Result<std::optional<std::string>> stream_ref_target(const Repository& repo,
                                                     const std::string& ref) {
  CFS_TRY_ASSIGN(auto t, link_target(repo.dirfd(), "streams/refs/" + ref));
  if (!t) return std::optional<std::string>();
  return std::optional<std::string>(t->substr(t->rfind('/') + 1));
}

Status cat_stream(SplitStreamReader& r, const ObjectOpener& open_object, int out_fd,
                  const ByteObserver& observe) {
  uint64_t total = 0;
  std::vector<uint8_t> buf(1 << 20);
  for (;;) {
    CFS_TRY_ASSIGN(auto c, r.next_chunk());
    if (!c) break;
    if (!c->external) {
      std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(c->data.data()),
                                     c->data.size());
      if (observe) observe(bytes);
      if (out_fd >= 0) CFS_TRY(write_full(out_fd, c->data));
      total += c->data.size();
      continue;
    }
    CFS_TRY_ASSIGN(UniqueFd fd, open_object(c->object));
    for (;;) {
      CFS_TRY_ASSIGN(size_t n, read_full(fd.get(), std::as_writable_bytes(std::span(buf))));
      if (n == 0) break;
      if (observe) observe({buf.data(), n});
      if (out_fd >= 0) CFS_TRY(write_full(out_fd, std::as_bytes(std::span(buf.data(), n))));
      total += n;
    }
  }
  if (total != r.stream_size())
    return errorf(Errc::Corrupt, "split stream reassembles to {} bytes, its header says {}", total,
                  r.stream_size());
  return {};
}

Status cat_named_stream(const Repository& repo, const std::string& name, int out_fd) {
  std::string sid = name;
  if (name.starts_with("refs/")) {
    CFS_TRY(validate_ref_name(name.substr(5)));
    CFS_TRY_ASSIGN(auto target, stream_ref_target(repo, name.substr(5)));
    if (!target) return errorf(Errc::NotFound, "no such ref: {}", name);
    sid = *target;
  }
  CFS_TRY(validate_stream_name(sid));
  CFS_TRY_ASSIGN(auto id, stream_object(repo, sid));
  if (!id) return errorf(Errc::NotFound, "no such stream: {}", name);
  CFS_TRY_ASSIGN(UniqueFd fd, repo.open_object(*id));
  auto r = SplitStreamReader::open(std::move(fd), repo.alg(), std::nullopt);
  if (!r) return tl::unexpected(std::move(r.error()).context("streams/" + name));
  auto opener = [&](const fsverity::Digest& d) { return repo.open_object(d); };
  if (auto st = cat_stream(*r, opener, out_fd); !st)
    return tl::unexpected(std::move(st.error()).context("streams/" + name));
  return {};
}

}  // namespace cfs::repository
