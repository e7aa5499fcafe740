// SPDX-License-Identifier: Apache-2.0
// fsck: every object's digest recomputed (or measured by fs-verity), every
// symlink and ref followed, every image's objects looked for; each problem
// reported with its path, in composefs-rs's words.
#include <sys/stat.h>

#include <atomic>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "composefs-cpp/base/cpu.h"
#include "composefs-cpp/repository/names.h"
#include "composefs-cpp/repository/repository.h"
#include "composefs-cpp/repository/splitstream.h"
#include "composefs-cpp/repository/walk.h"

namespace cfs::repository {

using fsverity::Digest;

namespace {

void add(FsckResult& r, std::string type, std::string rest) {
  std::string text = fmt::format("fsck: {}: {}", type, rest);
  r.errors.push_back({std::move(type), std::move(text)});
}

std::string strerr(int e) { return std::strerror(e); }

const char* file_type_name(unsigned char t) {
  switch (t) {
    case DT_REG: return "RegularFile";
    case DT_DIR: return "Directory";
    case DT_LNK: return "Symlink";
    case DT_FIFO: return "Fifo";
    case DT_SOCK: return "Socket";
    case DT_CHR: return "CharacterDevice";
    case DT_BLK: return "BlockDevice";
    default: return "Unknown";
  }
}

// One objects/xx directory.
FsckResult check_object_dir(int dirfd, int b, fsverity::HashAlg alg, bool insecure) {
  FsckResult r;
  std::string sub = fmt::format("objects/{:02x}", b);
  auto subfd = open_beneath(dirfd, sub, O_RDONLY | O_DIRECTORY, false);
  auto entries = subfd ? ::cfs::list_dir(subfd->get(), ".")
                       : Result<std::vector<DirEntryInfo>>(tl::unexpected(subfd.error()));
  if (!entries) {
    if (entries.error().sys_errno() != ENOENT)
      add(r, "object-open-failed", fmt::format("{}: {}", sub, entries.error().message()));
    return r;
  }
  size_t rest_len = 2 * hash_digest_size(alg) - 2;
  for (const auto& e : *entries) {
    std::string rel = sub + "/" + e.name;
    r.objects_checked++;
    std::optional<Digest> expected;
    if (e.name.size() == rest_len) expected = parse_hex_digest(sub.substr(8) + e.name, alg);
    if (!expected) {
      r.objects_corrupted++;
      add(r, "object-invalid-name",
          fmt::format("{}: {}", rel,
                      e.name.size() != rest_len ? "Invalid string length"
                                                : "Invalid character in hex string"));
      continue;
    }
    // Never blocks on a FIFO, never follows a symlink.
    int fd = ::openat(subfd->get(), e.name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd >= 0 && (::fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
      ::close(fd);
      fd = -1;
      errno = EINVAL;
    }
    if (fd < 0) {
      r.objects_corrupted++;
      add(r, "object-open-failed",
          fmt::format("{}: {}", rel,
                      errno == EINVAL || errno == ELOOP ? "not a regular file" : strerr(errno)));
      continue;
    }
    UniqueFd guard(fd);
    std::string path = "objects/" + expected->object_path();
    auto m = fsverity::measure(fd);
    Digest got;
    if (m) {
      got = *m;
    } else if (insecure) {
      fsverity::Params p;
      p.alg = alg;
      auto d = fsverity::digest_of_fd(fd, p);
      if (!d) {
        r.objects_corrupted++;
        add(r, "object-verity-failed", fmt::format("{}: {}", path, d.error().message()));
        continue;
      }
      got = *d;
    } else {
      r.objects_corrupted++;
      add(r, "object-verity-missing", path);
      continue;
    }
    if (got != *expected) {
      r.objects_corrupted++;
      add(r, "object-digest-mismatch", fmt::format("{}: measured {}", path, got.hex()));
    }
  }
  return r;
}

// A link must lead to something inside the repository; true when it does.
bool check_link(int dirfd, const std::string& rel, FsckResult& r) {
  auto target = open_beneath(dirfd, rel, O_PATH, true);
  if (target) return true;
  int err = target.error().sys_errno();
  if (err == ENOENT || err == ENOTDIR) {
    r.broken_links++;
    add(r, "broken-symlink", rel);
  } else if (err == EXDEV) {
    add(r, "symlink-outside-repository", rel);
  } else {
    add(r, "stat-failed", fmt::format("{}: {}", rel, strerr(err)));
  }
  return false;
}

void check_refs(int dirfd, const std::string& dir, FsckResult& r) {
  auto entries = list_dir(dirfd, dir);
  if (!entries) {
    if (entries.error().sys_errno() != ENOENT)
      add(r, "stat-failed", fmt::format("{}: {}", dir, entries.error().message()));
    return;
  }
  for (const auto& e : *entries) {
    std::string rel = dir + "/" + e.name;
    if (e.type == DT_DIR) {
      check_refs(dirfd, rel, r);
    } else if (e.type == DT_LNK) {
      check_link(dirfd, rel, r);
    } else {
      add(r, "unexpected-file-type", fmt::format("{}: {}", rel, file_type_name(e.type)));
    }
  }
}

}  // namespace

Result<FsckResult> Repository::fsck() const {
  FsckResult r;
  int fd = dirfd_.get();

  // meta.json, read again from disk.
  auto text = open_file(fd, std::string(kMetadataFile), true).and_then([](UniqueFd f) {
    return read_fd(f.get(), 1 << 20);
  });
  if (!text) {
    r.metadata_error = true;
    if (text.error().sys_errno() == ENOENT)
      add(r, "metadata-parse-failed",
          "meta.json: meta.json not found; expected because repository was opened successfully");
    else
      add(r, "metadata-parse-failed", "meta.json: " + text.error().message());
  } else if (auto meta = Metadata::parse(*text); !meta) {
    r.metadata_error = true;
    add(r, "metadata-parse-failed", "meta.json: " + meta.error().message());
  } else {
    r.has_metadata = true;
    if (meta->alg != alg() || !meta->check()) {
      r.metadata_error = true;
      add(r, "metadata-algorithm-mismatch",
          fmt::format("meta.json: expected {}, repository opened as {}", algorithm_name(meta->alg),
                      hash_name(alg())));
    }
  }

  // Objects, in parallel over the 256 subdirectories.
  {
    std::vector<FsckResult> parts(256);
    std::atomic<int> next{0};
    auto work = [&] {
      for (int b; (b = next++) < 256;) {
        auto part = catch_exceptions(
            [&]() -> Result<FsckResult> { return check_object_dir(fd, b, alg(), insecure_); });
        if (part)
          parts[b] = std::move(*part);
        else
          add(parts[b], "object-check-failed",
              fmt::format("objects/{:02x}: {}", b, part.error().message()));
      }
    };
    unsigned n = std::min(16u, default_threads());
    std::vector<std::jthread> threads;
    for (unsigned i = 1; i < n; i++) {
      try {
        threads.emplace_back(work);
      } catch (const std::exception&) {
        break;  // no more threads to be had: fewer do the work
      }
    }
    work();
    for (auto& t : threads) t.join();
    for (auto& p : parts) {
      r.objects_checked += p.objects_checked;
      r.objects_corrupted += p.objects_corrupted;
      for (auto& e : p.errors) r.errors.push_back(std::move(e));
    }
  }

  for (std::string category : {"streams", "images"}) {
    bool streams = category == "streams";
    auto entries = list_dir(fd, category);
    if (!entries) {
      if (entries.error().sys_errno() != ENOENT) return tl::unexpected(std::move(entries.error()));
      continue;
    }
    for (const auto& e : *entries) {
      if (e.name == "refs") continue;
      std::string rel = category + "/" + e.name;
      (streams ? r.streams_checked : r.images_checked)++;
      uint64_t& corrupted = streams ? r.streams_corrupted : r.images_corrupted;
      if (e.type != DT_LNK) {
        corrupted++;
        add(r, "entry-not-symlink", rel);
        continue;
      }
      if (!check_link(fd, rel, r)) {
        corrupted++;
        continue;
      }
      // Beyond composefs-rs: an image's name is the digest of the object it
      // points to.
      auto target = read_link(fd, rel);
      auto pointed = target ? digest_from_object_path(*target, alg()) : std::nullopt;
      if (!streams) {
        auto named = parse_hex_digest(e.name, alg());
        if (!pointed || !named || *pointed != *named) {
          corrupted++;
          add(r, "image-name-mismatch",
              fmt::format("{}: points to {}", rel, target ? *target : std::string("?")));
          continue;
        }
      } else if (!pointed) {
        corrupted++;
        add(r, "stream-open-failed", fmt::format("{}: not a link to an object", rel));
        continue;
      }
      if (streams) {
        // The split stream parses, and every object and stream it names exists.
        auto file = open_file(fd, rel, true);
        auto ss = file ? SplitStreamReader::open(std::move(*file), alg(), std::nullopt)
                       : Result<SplitStreamReader>(tl::unexpected(file.error()));
        if (!ss) {
          corrupted++;
          add(r, "stream-open-failed", fmt::format("{}: {}", rel, ss.error().message()));
          continue;
        }
        for (const auto& o : ss->object_refs())
          if (!has_object(o)) {
            r.missing_objects++;
            add(r, "missing-object-ref", fmt::format("{}: {}", rel, o.hex()));
          }
        for (const auto& [name, o] : ss->named_refs())
          if (!has_object(o)) {
            r.missing_objects++;
            add(r, "missing-named-ref", fmt::format("{}: {} ({})", rel, o.hex(), name));
          }
        continue;
      }

      auto image = open_file(fd, rel, true);
      if (!image) {
        corrupted++;
        add(r, "image-open-failed", fmt::format("{}: {}", rel, image.error().message()));
        continue;
      }
      auto objs = image_object_digests(image->get());
      if (!objs) {
        if (objs.error().code() == Errc::Unsupported) continue;  // no reader yet
        corrupted++;
        add(r, "image-invalid", fmt::format("{}: {}", rel, objs.error().message()));
        continue;
      }
      for (const auto& o : *objs) {
        if (o.alg() != alg() || !has_object(o)) {
          r.missing_objects++;
          add(r, "image-missing-object", fmt::format("{}: {}", rel, o.hex()));
        }
      }
    }
    check_refs(fd, category + "/refs", r);
  }
  return r;
}

std::string FsckResult::to_text() const {
  std::string s;
  if (metadata_error)
    s += "meta.json: error\n";
  else
    s += has_metadata ? "meta.json: ok\n" : "meta.json: absent\n";
  auto ok = [](uint64_t checked, uint64_t bad) { return checked > bad ? checked - bad : 0; };
  s += fmt::format("objects: {}/{} ok\n", ok(objects_checked, objects_corrupted), objects_checked);
  s += fmt::format("streams: {}/{} ok\n", ok(streams_checked, streams_corrupted), streams_checked);
  s += fmt::format("images: {}/{} ok\n", ok(images_checked, images_corrupted), images_checked);
  if (broken_links) s += fmt::format("broken symlinks: {}\n", broken_links);
  if (missing_objects) s += fmt::format("missing objects: {}\n", missing_objects);
  if (errors.empty()) {
    s += "status: ok\n";
  } else {
    s += fmt::format("status: {} error(s)\n", errors.size());
    for (const auto& e : errors) s += "  - " + e.text + "\n";
  }
  return s;
}

std::string FsckResult::to_json() const {
  nlohmann::ordered_json j;
  j["ok"] = ok();
  j["has_metadata"] = has_metadata;
  j["objects_checked"] = objects_checked;
  j["objects_corrupted"] = objects_corrupted;
  j["streams_checked"] = streams_checked;
  j["streams_corrupted"] = streams_corrupted;
  j["images_checked"] = images_checked;
  j["images_corrupted"] = images_corrupted;
  j["broken_links"] = broken_links;
  j["missing_objects"] = missing_objects;
  nlohmann::ordered_json errs = nlohmann::ordered_json::array();
  for (const auto& e : errors) errs.push_back(e.text);
  j["errors"] = errs;
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace cfs::repository
