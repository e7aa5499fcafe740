// SPDX-License-Identifier: Apache-2.0
// Garbage collection, with composefs-rs's roots: images/refs/** and
// streams/refs/**, plus extra roots named by their entry in images/ or
// streams/; everything reachable from them lives, the rest goes.
#include <dirent.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <set>

#include "composefs-cpp/repository/names.h"
#include "composefs-cpp/repository/repository.h"
#include "composefs-cpp/repository/splitstream.h"
#include "composefs-cpp/repository/walk.h"

namespace cfs::repository {

using fsverity::Digest;

namespace {

// The first-level entries of images/ or streams/ (name -> object digest).
Result<std::map<std::string, Digest>> category_entries(int dirfd, const std::string& category,
                                                       fsverity::HashAlg alg) {
  std::map<std::string, Digest> out;
  auto entries = list_dir(dirfd, category);
  if (!entries) {
    if (entries.error().sys_errno() == ENOENT) return out;
    return tl::unexpected(std::move(entries.error()));
  }
  for (const auto& e : *entries) {
    if (e.name == "refs") continue;
    std::string rel = category + "/" + e.name;
    if (e.type != DT_LNK)
      return errorf(Errc::Corrupt, "{} is not a symlink (category directory contains non-symlink)",
                    rel);
    CFS_TRY_ASSIGN(std::string target, read_link(dirfd, rel));
    auto d = digest_from_object_path(target, alg);
    if (!d) return errorf(Errc::Corrupt, "{} -> {}: not an object path", rel, target);
    out.emplace(e.name, *d);
  }
  return out;
}

// The basenames of the targets of every symlink below <category>/refs.
Status ref_targets(int dirfd, const std::string& dir, std::set<std::string>& out) {
  auto entries = list_dir(dirfd, dir);
  if (!entries) {
    if (entries.error().sys_errno() == ENOENT) return {};
    return tl::unexpected(std::move(entries.error()));
  }
  for (const auto& e : *entries) {
    std::string rel = dir + "/" + e.name;
    if (e.type == DT_DIR) {
      CFS_TRY(ref_targets(dirfd, rel, out));
    } else if (e.type == DT_LNK) {
      CFS_TRY_ASSIGN(std::string target, read_link(dirfd, rel));
      auto slash = target.rfind('/');
      std::string base = slash == std::string::npos ? target : target.substr(slash + 1);
      if (!base.empty() && base != "." && base != "..") out.insert(base);
    } else {
      return errorf(Errc::Corrupt, "{}: unexpected file type in a refs directory", rel);
    }
  }
  return {};
}

// Removes the dangling symlinks of a directory (recursively for refs/).
Result<uint64_t> prune_broken(int dirfd, const std::string& dir, bool recursive, bool dry_run) {
  uint64_t count = 0;
  auto entries = list_dir(dirfd, dir);
  if (!entries) {
    if (entries.error().sys_errno() == ENOENT) return count;
    return tl::unexpected(std::move(entries.error()));
  }
  for (const auto& e : *entries) {
    std::string rel = dir + "/" + e.name;
    if (e.type == DT_DIR) {
      if (!recursive) continue;
      CFS_TRY_ASSIGN(uint64_t n, prune_broken(dirfd, rel, true, dry_run));
      count += n;
    } else if (e.type == DT_LNK) {
      // Resolved beneath the repository: a link that leads out of it names
      // nothing of ours and goes like a dangling one.
      auto target = open_beneath(dirfd, rel, O_PATH, true);
      if (target) continue;
      int err = target.error().sys_errno();
      if (err != ENOENT && err != ENOTDIR && err != EXDEV && err != ELOOP)
        return tl::unexpected(std::move(target.error()));
      count++;
      if (dry_run) continue;
      CFS_TRY_ASSIGN(Parent p, open_parent(dirfd, rel));
      if (::unlinkat(p.fd.get(), p.name.c_str(), 0) < 0 && errno != ENOENT)
        return sys_error(fmt::format("cannot remove {}", rel));
    }
  }
  return count;
}

Result<uint64_t> prune_category(int dirfd, const std::string& category, bool dry_run) {
  CFS_TRY_ASSIGN(uint64_t n, prune_broken(dirfd, category, false, dry_run));
  CFS_TRY_ASSIGN(uint64_t m, prune_broken(dirfd, category + "/refs", true, dry_run));
  return n + m;
}

}  // namespace

Result<GcResult> Repository::gc(const std::vector<std::string>& extra_roots, bool dry_run) {
  if (!dry_run) {
    CFS_TRY(ensure_writable());
    // Waits until no other process has the repository open: nothing is being
    // written while objects are deleted.
    CFS_TRY(flock_retry(dirfd_.get(), LOCK_EX, "the repository"));
  }
  auto result = [&]() -> Result<GcResult> {
    GcResult res;
    std::set<Digest> live;
    std::set<std::string> extra(extra_roots.begin(), extra_roots.end());
    int fd = dirfd_.get();

    // Images: their own object and every object they reference.
    CFS_TRY_ASSIGN(auto images, category_entries(fd, "images", alg()));
    std::set<std::string> root_images;
    CFS_TRY(ref_targets(fd, "images/refs", root_images));
    for (const auto& [name, d] : images)
      if (extra.count(name)) root_images.insert(name);
    for (const auto& name : root_images) {
      auto it = images.find(name);
      if (it == images.end()) continue;  // a dangling ref: pruned below
      live.insert(it->second);
      if (!parse_hex_digest(name, alg()))
        return errorf(Errc::Corrupt, "images/{}: an image entry must be named by its digest", name);
      auto img = open_image(name);
      if (!img) return tl::unexpected(std::move(img.error()).context("images/" + name));
      auto objs = image_object_digests(img->fd.get());
      if (!objs) return tl::unexpected(std::move(objs.error()).context("images/" + name));
      for (const auto& o : *objs) {
        if (o.alg() != alg())
          return errorf(Errc::Corrupt, "images/{} references a {} object in a {} repository", name,
                        hash_name(o.alg()), hash_name(alg()));
        live.insert(o);
      }
    }

    // Streams (composefs-rs's walk_streams): a rooted stream keeps its own
    // object, every object it references, and every named ref; a named ref
    // that is itself a stream (a config's layers, a manifest's config) is
    // walked in turn.
    CFS_TRY_ASSIGN(auto streams, category_entries(fd, "streams", alg()));
    std::set<std::string> root_streams;
    CFS_TRY(ref_targets(fd, "streams/refs", root_streams));
    for (const auto& [name, d] : streams)
      if (extra.count(name)) root_streams.insert(name);
    std::set<Digest> stream_ids;
    for (const auto& [name, d] : streams) stream_ids.insert(d);
    std::vector<Digest> todo;
    for (const auto& name : root_streams)
      if (auto it = streams.find(name); it != streams.end()) todo.push_back(it->second);
    std::set<Digest> walked;
    while (!todo.empty()) {
      Digest d = todo.back();
      todo.pop_back();
      if (!walked.insert(d).second) continue;
      live.insert(d);
      if (!has_object(d)) continue;  // a dangling stream: pruned below
      auto file = open_file(fd, object_path(d), false);
      if (!file) return tl::unexpected(std::move(file.error()).context("split stream " + d.hex()));
      auto ss = SplitStreamReader::open(std::move(*file), alg(), std::nullopt);
      // An unreadable rooted stream: its objects cannot be known, so refuse
      // rather than delete what it may need.
      if (!ss) return tl::unexpected(std::move(ss.error()).context("split stream " + d.hex()));
      for (const auto& o : ss->object_refs()) live.insert(o);
      for (const auto& [name, o] : ss->named_refs()) {
        live.insert(o);
        if (stream_ids.count(o)) todo.push_back(o);
      }
    }

    // Objects nothing reaches.
    for (int b = 0; b < 256; b++) {
      std::string sub = fmt::format("objects/{:02x}", b);
      // Listed and unlinked through its own fd: never a directory elsewhere.
      auto subfd = ::cfs::open_beneath(fd, sub, O_RDONLY | O_DIRECTORY, false);
      if (!subfd) {
        if (subfd.error().sys_errno() == ENOENT) continue;
        return tl::unexpected(std::move(subfd.error()));
      }
      auto entries = ::cfs::list_dir(subfd->get(), ".");
      if (!entries) return tl::unexpected(std::move(entries.error()).context(sub));
      for (const auto& e : *entries) {
        auto d = parse_hex_digest(sub.substr(8) + e.name, alg());
        if (!d || e.name.size() != 2 * hash_digest_size(alg()) - 2)
          return errorf(Errc::Corrupt, "{}/{}: not an object name", sub, e.name);
        if (live.count(*d)) continue;
        std::string rel = sub + "/" + e.name;
        struct stat st;
        if (::fstatat(subfd->get(), e.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0)
          res.objects_bytes += static_cast<uint64_t>(st.st_size);
        res.objects_removed++;
        if (!dry_run && ::unlinkat(subfd->get(), e.name.c_str(), 0) < 0 && errno != ENOENT)
          return sys_error(fmt::format("cannot remove {}", rel));
      }
    }

    // Temporaries of killed writers: with the exclusive lock held, no writer
    // is alive, so every one of them is a leftover.
    if (!dry_run) {
      for (const char* dir : {"objects", ""}) {
        auto dfd = ::cfs::open_beneath(fd, dir, O_RDONLY | O_DIRECTORY, false);
        if (!dfd) continue;
        auto entries = ::cfs::list_dir(dfd->get(), ".");
        if (!entries) continue;
        for (const auto& e : *entries) {
          std::string_view prefix = *dir ? kTmpObjectPrefix : kTmpSymlinkPrefix;
          if (e.name.compare(0, prefix.size(), prefix) != 0) continue;
          if (::unlinkat(dfd->get(), e.name.c_str(), 0) == 0) res.temporaries_removed++;
        }
      }
    }

    CFS_TRY_ASSIGN(res.images_pruned, prune_category(fd, "images", dry_run));
    CFS_TRY_ASSIGN(res.streams_pruned, prune_category(fd, "streams", dry_run));
    return res;
  }();
  if (!dry_run) {
    auto st = flock_retry(dirfd_.get(), LOCK_SH, "the repository");
    if (!st && result) return tl::unexpected(std::move(st.error()));
  }
  return result;
}

}  // namespace cfs::repository
