// SPDX-License-Identifier: Apache-2.0
#include "oci/dir_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <vector>

namespace cfs::oci {
namespace {

Status mkdirs(int dirfd, const std::string& rel) {
  size_t i = 0;
  while (i <= rel.size()) {
    size_t j = rel.find('/', i);
    if (j == std::string::npos) j = rel.size();
    std::string part = rel.substr(0, j);
    if (!part.empty() && ::mkdirat(dirfd, part.c_str(), 0755) < 0 && errno != EEXIST)
      return sys_error(fmt::format("mkdir '{}'", part));
    i = j + 1;
  }
  return {};
}

// composefs-rs's relative symlink target from `link` to `target` (both
// relative to the repository root).
std::string relative_target(const std::string& link, const std::string& target) {
  std::vector<std::string> a, b;
  auto split = [](const std::string& s, std::vector<std::string>& out) {
    size_t i = 0;
    while (i <= s.size()) {
      size_t j = s.find('/', i);
      if (j == std::string::npos) j = s.size();
      out.push_back(s.substr(i, j - i));
      i = j + 1;
    }
  };
  split(link, a);
  split(target, b);
  size_t common = 0;
  while (common + 1 < a.size() && common < b.size() && a[common] == b[common]) common++;
  std::string out;
  for (size_t i = common; i + 1 < a.size(); i++) out += "../";
  for (size_t i = common; i < b.size(); i++) out += b[i] + (i + 1 < b.size() ? "/" : "");
  return out;
}

}  // namespace

Result<std::unique_ptr<DirStore>> DirStore::open(const std::string& path, fsverity::HashAlg alg,
                                                 uint32_t erofs_version) {
  if (::mkdir(path.c_str(), 0700) < 0 && errno != EEXIST)
    return sys_error(fmt::format("mkdir '{}'", path));
  auto s = std::make_unique<DirStore>();
  s->root_ = path;
  s->alg_ = alg;
  s->erofs_version_ = erofs_version;
  CFS_TRY_ASSIGN(s->dir_, open_at(AT_FDCWD, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  for (const char* d : {"objects", "streams", "images"}) CFS_TRY(mkdirs(s->dir_.get(), d));
  CFS_TRY_ASSIGN(s->objects_,
                 open_at(s->dir_.get(), "objects", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  return s;
}

Status DirStore::link_object(int fd, const fsverity::Digest& d, bool* fresh) {
  std::string p = d.object_path();
  CFS_TRY(mkdirs(objects_.get(), p.substr(0, 2)));
  std::string proc = fmt::format("/proc/self/fd/{}", fd);
  if (::linkat(AT_FDCWD, proc.c_str(), objects_.get(), p.c_str(), AT_SYMLINK_FOLLOW) == 0) {
    *fresh = true;
    return {};
  }
  if (errno == EEXIST) {
    *fresh = false;
    return {};
  }
  return sys_error("link object " + p);
}

bool DirStore::has_object(const fsverity::Digest& d) const {
  struct stat st;
  return ::fstatat(objects_.get(), d.object_path().c_str(), &st, 0) == 0;
}

Result<bool> DirStore::store_object(int fd, uint64_t size, const fsverity::Digest& d) {
  if (has_object(d)) return false;
  int t = ::openat(objects_.get(), ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0644);
  if (t < 0) return sys_error("O_TMPFILE in objects/");
  UniqueFd tmp(t);
  std::vector<uint8_t> buf(1 << 20);
  uint64_t off = 0;
  fsverity::Params params;
  params.alg = alg_;
  fsverity::Hasher h(params);
  while (off < size) {
    CFS_TRY_ASSIGN(
        size_t n, pread_full(fd,
                             std::as_writable_bytes(
                                 std::span(buf.data(), std::min<uint64_t>(buf.size(), size - off))),
                             off));
    if (n == 0) return make_error(Errc::Io, "object source shrank");
    h.update({buf.data(), n});
    CFS_TRY(write_full(tmp.get(), std::as_bytes(std::span(buf.data(), n))));
    off += n;
  }
  if (!(h.finish() == d)) return make_error(Errc::VerityMismatch, "object content changed");
  ::fchmod(tmp.get(), 0644);
  bool fresh = false;
  CFS_TRY(link_object(tmp.get(), d, &fresh));
  return fresh;
}

Result<fsverity::Digest> DirStore::store_bytes(std::span<const uint8_t> data) {
  fsverity::Params params;
  params.alg = alg_;
  fsverity::Digest d = fsverity::digest_of(data, params);
  if (has_object(d)) return d;
  int t = ::openat(objects_.get(), ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0644);
  if (t < 0) return sys_error("O_TMPFILE in objects/");
  UniqueFd tmp(t);
  CFS_TRY(write_full(tmp.get(), std::as_bytes(data)));
  ::fchmod(tmp.get(), 0644);
  bool fresh = false;
  CFS_TRY(link_object(tmp.get(), d, &fresh));
  return d;
}

Result<UniqueFd> DirStore::open_object(const fsverity::Digest& d) const {
  return open_at(objects_.get(), d.object_path(), O_RDONLY | O_CLOEXEC);
}

Result<std::optional<fsverity::Digest>> DirStore::stream(const std::string& id) const {
  char buf[4096];
  ssize_t n = ::readlinkat(dir_.get(), ("streams/" + id).c_str(), buf, sizeof buf - 1);
  if (n < 0) {
    if (errno == ENOENT) return std::optional<fsverity::Digest>();
    return sys_error("readlink streams/" + id);
  }
  std::string t(buf, static_cast<size_t>(n));
  size_t s2 = t.rfind('/');
  size_t s1 = s2 == std::string::npos ? std::string::npos : t.rfind('/', s2 - 1);
  if (s1 == std::string::npos) return errorf(Errc::Corrupt, "streams/{} -> '{}'", id, t);
  auto d = fsverity::Digest::from_hex(alg_, t.substr(s1 + 1, 2) + t.substr(s2 + 1));
  if (!d) return errorf(Errc::Corrupt, "streams/{} -> '{}'", id, t);
  if (!has_object(*d)) return std::optional<fsverity::Digest>();
  return std::optional<fsverity::Digest>(*d);
}

Status DirStore::symlink(const std::string& link, const std::string& target) {
  CFS_TRY(mkdirs(dir_.get(), link.substr(0, link.rfind('/'))));
  std::string tmp = link + ".tmp";
  ::unlinkat(dir_.get(), tmp.c_str(), 0);
  if (::symlinkat(relative_target(link, target).c_str(), dir_.get(), tmp.c_str()) < 0)
    return sys_error("symlink " + link);
  if (::renameat(dir_.get(), tmp.c_str(), dir_.get(), link.c_str()) < 0)
    return sys_error("rename " + link);
  return {};
}

Status DirStore::register_stream(const std::string& id, const fsverity::Digest& d) {
  if (::syncfs(dir_.get()) < 0) return sys_error("syncfs");
  return symlink("streams/" + id, "objects/" + d.object_path());
}

Status DirStore::set_stream_ref(const std::string& ref, const std::string& id) {
  if (id.empty()) {
    if (::unlinkat(dir_.get(), ("streams/refs/" + ref).c_str(), 0) < 0)
      return sys_error("remove streams/refs/" + ref);
    return {};
  }
  return symlink("streams/refs/" + ref, "streams/" + id);
}

Result<std::optional<std::string>> DirStore::stream_ref(const std::string& ref) const {
  char buf[4096];
  ssize_t n = ::readlinkat(dir_.get(), ("streams/refs/" + ref).c_str(), buf, sizeof buf - 1);
  if (n < 0) {
    if (errno == ENOENT) return std::optional<std::string>();
    return sys_error("readlink streams/refs/" + ref);
  }
  std::string t(buf, static_cast<size_t>(n));
  return std::optional<std::string>(t.substr(t.rfind('/') + 1));
}

Result<std::vector<std::string>> DirStore::list_stream_refs(const std::string& sub) const {
  std::vector<std::string> out;
  int fd =
      ::openat(dir_.get(), ("streams/refs/" + sub).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return out;
    return sys_error("open streams/refs/" + sub);
  }
  DIR* d = ::fdopendir(fd);
  if (!d) {
    ::close(fd);
    return sys_error("fdopendir");
  }
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != ".." && e->d_type == DT_LNK) out.push_back(n);
  }
  ::closedir(d);
  return out;
}

Result<fsverity::Digest> DirStore::write_image(std::span<const uint8_t> image) {
  CFS_TRY_ASSIGN(fsverity::Digest d, store_bytes(image));
  if (::syncfs(dir_.get()) < 0) return sys_error("syncfs");
  CFS_TRY(symlink("images/" + d.hex(), "objects/" + d.object_path()));
  return d;
}

}  // namespace cfs::oci
