// SPDX-License-Identifier: Apache-2.0
// Test helpers for real directory trees: building them (every file type,
// xattrs, owners, nanosecond mtimes) and comparing what the kernel shows of
// two trees entry by entry: names, stat fields, xattrs, link targets, bytes.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace cfs::test {

inline void check_sys(bool ok, const std::string& what) {
  if (!ok) throw std::runtime_error(what + ": " + std::strerror(errno));
}

// Builds a tree with path-based calls (the paths stay under PATH_MAX).
class TreeBuilder {
 public:
  explicit TreeBuilder(std::string root) : root_(std::move(root)) { ::mkdir(root_.c_str(), 0755); }
  std::string at(const std::string& rel) const { return rel.empty() ? root_ : root_ + "/" + rel; }

  void dir(const std::string& rel, mode_t mode = 0755) {
    check_sys(::mkdir(at(rel).c_str(), mode) == 0, "mkdir " + rel);
    check_sys(::chmod(at(rel).c_str(), mode) == 0, "chmod " + rel);
  }
  void file(const std::string& rel, const std::string& data, mode_t mode = 0644) {
    int fd = ::open(at(rel).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    check_sys(fd >= 0, "create " + rel);
    for (size_t off = 0; off < data.size();) {
      ssize_t n = ::write(fd, data.data() + off, data.size() - off);
      check_sys(n > 0, "write " + rel);
      off += static_cast<size_t>(n);
    }
    ::close(fd);
    check_sys(::chmod(at(rel).c_str(), mode) == 0, "chmod " + rel);
  }
  void symlink(const std::string& rel, const std::string& target) {
    check_sys(::symlink(target.c_str(), at(rel).c_str()) == 0, "symlink " + rel);
  }
  void node(const std::string& rel, mode_t mode, dev_t rdev = 0) {
    check_sys(::mknod(at(rel).c_str(), mode, rdev) == 0, "mknod " + rel);
  }
  void hardlink(const std::string& rel, const std::string& existing) {
    check_sys(::link(at(existing).c_str(), at(rel).c_str()) == 0, "link " + rel);
  }
  void xattr(const std::string& rel, const std::string& key, const std::string& value) {
    check_sys(::lsetxattr(at(rel).c_str(), key.c_str(), value.data(), value.size(), 0) == 0,
              "setxattr " + key + " on " + rel);
  }
  void owner(const std::string& rel, uid_t uid, gid_t gid) {
    check_sys(::lchown(at(rel).c_str(), uid, gid) == 0, "chown " + rel);
  }

  // Gives every entry a distinct mtime with nanoseconds, children before
  // their directory (creating entries changes a directory's mtime).
  void stamp_mtimes() {
    int fd = ::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    check_sys(fd >= 0, "open " + root_);
    uint64_t counter = 0;
    stamp_dir(fd, counter);
    struct timespec ts[2] = {{0, UTIME_OMIT}, next_time(counter)};
    check_sys(::futimens(fd, ts) == 0, "futimens root");
    ::close(fd);
  }

 private:
  static struct timespec next_time(uint64_t& counter) {
    counter++;
    return {static_cast<time_t>(1700000000 + counter * 37),
            static_cast<long>((counter * 123456789ULL) % 1000000000ULL)};
  }
  void stamp_dir(int dfd, uint64_t& counter) {
    DIR* d = ::fdopendir(::dup(dfd));
    check_sys(d != nullptr, "fdopendir");
    std::vector<std::pair<std::string, bool>> names;
    while (struct dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.emplace_back(n, e->d_type == DT_DIR);
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    for (auto& [n, is_dir] : names) {
      if (is_dir) {
        int cfd = ::openat(dfd, n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        check_sys(cfd >= 0, "open " + n);
        stamp_dir(cfd, counter);
        ::close(cfd);
      }
      struct timespec ts[2] = {{0, UTIME_OMIT}, next_time(counter)};
      check_sys(::utimensat(dfd, n.c_str(), ts, AT_SYMLINK_NOFOLLOW) == 0, "utimensat " + n);
    }
  }
  std::string root_;
};

using Xattrs = std::map<std::string, std::string>;

inline Xattrs read_xattrs(const std::string& path) {
  Xattrs out;
  ssize_t size = ::llistxattr(path.c_str(), nullptr, 0);
  if (size <= 0) return out;
  std::string names(static_cast<size_t>(size), '\0');
  ssize_t n = ::llistxattr(path.c_str(), names.data(), names.size());
  for (ssize_t i = 0; i < n;) {
    std::string key(&names[static_cast<size_t>(i)]);
    i += static_cast<ssize_t>(key.size()) + 1;
    ssize_t vsize = ::lgetxattr(path.c_str(), key.c_str(), nullptr, 0);
    std::string v(vsize > 0 ? static_cast<size_t>(vsize) : 0, '\0');
    ssize_t vn = vsize > 0 ? ::lgetxattr(path.c_str(), key.c_str(), v.data(), v.size()) : vsize;
    out[key] = vn >= 0 ? v.substr(0, static_cast<size_t>(vn)) : "<error>";
  }
  return out;
}

inline std::vector<std::string> list_dir(int fd) {
  std::vector<std::string> out;
  DIR* d = ::fdopendir(::dup(fd));
  if (!d) return out;
  ::rewinddir(d);  // the dup shares its offset with every earlier reader of `fd`
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back(n);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

struct CompareOptions {
  bool check_file_nlink = false;  // images made with --hardlinks keep link counts
  bool check_contents = true;
  bool whole_second_mtimes = false;  // format 2 images store no nanoseconds
  // The root merges the image with object directories mounted as ordinary
  // lower layers (OverlayMethod::LegacyLower): overlayfs counts a merged
  // directory's links as 1.
  bool merged_root = false;
};

// Compares a source tree with its mounted image.  The expected view of the
// source follows composefs's documented image semantics: a whiteout (char
// device 0/0) is stored escaped, so the mount shows an empty regular file
// carrying trusted.overlay.whiteout and user.overlay.whiteout, and its
// directory carries trusted/user.overlay.whiteouts and opaque=x (format 1).
class TreeComparer {
 public:
  explicit TreeComparer(CompareOptions o = {}) : opts_(o) {}

  void compare(const std::string& src, const std::string& mnt) {
    int s = ::open(src.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int m = ::open(mnt.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(s, 0) << src;
    ASSERT_GE(m, 0) << mnt;
    struct stat ss, ms;
    ::fstat(s, &ss);
    ::fstat(m, &ms);
    compare_entry("/", ss, ms, proc(s, ""), proc(m, ""), s, m, "");
    ::close(s);
    ::close(m);
  }
  size_t entries() const { return entries_; }
  uint64_t bytes() const { return bytes_; }
  size_t failures() const { return failures_; }

 private:
  static std::string proc(int fd, const std::string& name) {
    return "/proc/self/fd/" + std::to_string(fd) + (name.empty() ? "" : "/" + name);
  }
  static bool is_whiteout(const struct stat& st) {
    return S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
  }

  void fail(const std::string& rel, const std::string& msg) {
    if (++failures_ <= 30) ADD_FAILURE() << rel << ": " << msg;
  }

  void compare_dir(int sfd, int mfd, const std::string& rel) {
    std::vector<std::string> sn = list_dir(sfd), mn = list_dir(mfd);
    if (sn != mn) {
      std::vector<std::string> missing, extra;
      std::set_difference(sn.begin(), sn.end(), mn.begin(), mn.end(), std::back_inserter(missing));
      std::set_difference(mn.begin(), mn.end(), sn.begin(), sn.end(), std::back_inserter(extra));
      std::string m = "directory listings differ; missing:";
      for (size_t i = 0; i < missing.size() && i < 5; i++) m += " '" + missing[i] + "'";
      m += " extra:";
      for (size_t i = 0; i < extra.size() && i < 5; i++) m += " '" + extra[i] + "'";
      fail(rel, m);
    }
    for (const std::string& name : sn) {
      if (!std::binary_search(mn.begin(), mn.end(), name)) continue;
      std::string child = rel + "/" + name;
      struct stat ss, ms;
      if (::fstatat(sfd, name.c_str(), &ss, AT_SYMLINK_NOFOLLOW) < 0 ||
          ::fstatat(mfd, name.c_str(), &ms, AT_SYMLINK_NOFOLLOW) < 0) {
        fail(child, std::string("stat: ") + std::strerror(errno));
        continue;
      }
      int cs = -1, cm = -1;
      if (S_ISDIR(ss.st_mode) && S_ISDIR(ms.st_mode)) {
        cs = ::openat(sfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        cm = ::openat(mfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      }
      compare_entry(child, ss, ms, proc(sfd, name), proc(mfd, name), cs, cm, name, sfd, mfd);
      if (cs >= 0) ::close(cs);
      if (cm >= 0) ::close(cm);
    }
  }

  void compare_entry(const std::string& rel, const struct stat& s, const struct stat& m,
                     const std::string& spath, const std::string& mpath, int sdir, int mdir,
                     const std::string& name, int sparent = -1, int mparent = -1) {
    entries_++;
    bool wh = is_whiteout(s);
    mode_t want_mode = wh ? (S_IFREG | (s.st_mode & 07777)) : s.st_mode;
    if (m.st_mode != want_mode)
      fail(rel, ::fmt::format("mode {:o}, expected {:o}", m.st_mode, want_mode));
    if (m.st_uid != s.st_uid || m.st_gid != s.st_gid)
      fail(rel,
           ::fmt::format("owner {}:{}, expected {}:{}", m.st_uid, m.st_gid, s.st_uid, s.st_gid));
    long want_nsec = opts_.whole_second_mtimes ? 0 : s.st_mtim.tv_nsec;
    if (m.st_mtim.tv_sec != s.st_mtim.tv_sec || m.st_mtim.tv_nsec != want_nsec)
      fail(rel, ::fmt::format("mtime {}.{:09}, expected {}.{:09}", m.st_mtim.tv_sec,
                              m.st_mtim.tv_nsec, s.st_mtim.tv_sec, want_nsec));
    if (!S_ISDIR(s.st_mode)) {
      off_t want_size = wh ? 0 : s.st_size;
      if (m.st_size != want_size)
        fail(rel, ::fmt::format("size {}, expected {}", m.st_size, want_size));
    }
    if ((S_ISCHR(s.st_mode) || S_ISBLK(s.st_mode)) && !wh && m.st_rdev != s.st_rdev)
      fail(rel, ::fmt::format("rdev {}:{}, expected {}:{}", major(m.st_rdev), minor(m.st_rdev),
                              major(s.st_rdev), minor(s.st_rdev)));
    bool check_nlink =
        (S_ISDIR(s.st_mode) && !(opts_.merged_root && rel == "/")) || opts_.check_file_nlink;
    nlink_t want_nlink = wh ? 1 : s.st_nlink;
    if (check_nlink && m.st_nlink != want_nlink)
      fail(rel, ::fmt::format("nlink {}, expected {}", m.st_nlink, want_nlink));

    Xattrs sx = read_xattrs(spath), mx = read_xattrs(mpath);
    if (wh) {
      sx["trusted.overlay.whiteout"] = "";
      sx["user.overlay.whiteout"] = "";
    }
    if (S_ISDIR(s.st_mode) && sdir >= 0 && has_whiteout_child(sdir)) {
      sx["trusted.overlay.whiteouts"] = "";
      sx["user.overlay.whiteouts"] = "";
      sx["trusted.overlay.opaque"] = "x";
      sx["user.overlay.opaque"] = "x";
    }
    if (sx != mx) fail(rel, "xattrs differ: " + describe(mx) + " expected " + describe(sx));

    if (S_ISLNK(s.st_mode) && S_ISLNK(m.st_mode)) {
      char a[8192], b[8192];
      ssize_t an = ::readlinkat(sparent, name.c_str(), a, sizeof a);
      ssize_t bn = ::readlinkat(mparent, name.c_str(), b, sizeof b);
      if (an < 0 || bn < 0 || std::string(a, an) != std::string(b, bn))
        fail(rel, "symlink targets differ");
    }
    if (S_ISREG(s.st_mode) && S_ISREG(m.st_mode) && opts_.check_contents &&
        (s.st_size != 0 || m.st_size != 0))
      compare_contents(rel, sparent, mparent, name);
    if (S_ISDIR(s.st_mode) && S_ISDIR(m.st_mode) && sdir >= 0 && mdir >= 0)
      compare_dir(sdir, mdir, rel == "/" ? "" : rel);
  }

  void compare_contents(const std::string& rel, int sparent, int mparent, const std::string& name) {
    int a = ::openat(sparent, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    int b = ::openat(mparent, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (a < 0 || b < 0) {
      fail(rel, std::string("open: ") + std::strerror(errno));
      if (a >= 0) ::close(a);
      if (b >= 0) ::close(b);
      return;
    }
    struct stat st;
    ::fstat(a, &st);
    // A big sparse file: only the union of both sides' data extents can hold
    // anything but zeros, so those ranges are read; the rest is a hole on
    // both sides.  (Reading gigabytes of holes would fill the page cache.)
    if (st.st_size > (64 << 20) && st.st_blocks * 512 < st.st_size / 2) {
      auto ranges = data_ranges(a, st.st_size);
      auto more = data_ranges(b, st.st_size);
      ranges.insert(ranges.end(), more.begin(), more.end());
      for (auto [from, to] : ranges)
        if (!compare_range(rel, a, b, from, to)) break;
      // And a hole, read through both.
      compare_range(rel, a, b, st.st_size / 2, st.st_size / 2 + (1 << 20));
    } else {
      compare_range(rel, a, b, 0, -1);
    }
    ::close(a);
    ::close(b);
  }

  // [from, to) of both files (to == -1: until EOF) must be equal.
  bool compare_range(const std::string& rel, int a, int b, off_t from, off_t to) {
    if (x_.empty()) {
      x_.resize(kChunk);
      y_.resize(kChunk);
    }
    for (off_t off = from; to < 0 || off < to;) {
      size_t want = to < 0 ? kChunk : std::min<size_t>(kChunk, static_cast<size_t>(to - off));
      ssize_t n = pread_all(a, x_.data(), want, off);
      ssize_t k = pread_all(b, y_.data(), want, off);
      if (n < 0 || k < 0) {
        fail(rel, std::string("read: ") + std::strerror(errno));
        return false;
      }
      if (n != k || std::memcmp(x_.data(), y_.data(), static_cast<size_t>(n)) != 0) {
        fail(rel, "contents differ at offset " + std::to_string(off));
        return false;
      }
      bytes_ += static_cast<uint64_t>(n);
      if (static_cast<size_t>(n) < want) break;
      off += n;
    }
    return true;
  }

  static std::vector<std::pair<off_t, off_t>> data_ranges(int fd, off_t size) {
    std::vector<std::pair<off_t, off_t>> out;
    for (off_t off = 0; off < size;) {
      off_t data = ::lseek(fd, off, SEEK_DATA);
      if (data < 0) break;
      off_t hole = ::lseek(fd, data, SEEK_HOLE);
      if (hole < 0) hole = size;
      out.emplace_back(data, hole);
      off = hole;
    }
    return out;
  }

  static ssize_t pread_all(int fd, char* buf, size_t len, off_t off) {
    size_t got = 0;
    while (got < len) {
      ssize_t n = ::pread(fd, buf + got, len - got, off + static_cast<off_t>(got));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return -1;
      if (n == 0) break;
      got += static_cast<size_t>(n);
    }
    return static_cast<ssize_t>(got);
  }

  static bool has_whiteout_child(int dfd) {
    for (const std::string& n : list_dir(dfd)) {
      struct stat st;
      if (::fstatat(dfd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && is_whiteout(st)) return true;
    }
    return false;
  }

  static std::string describe(const Xattrs& x) {
    std::string out = "{";
    for (auto& [k, v] : x) {
      bool printable = v.size() <= 40 && std::all_of(v.begin(), v.end(),
                                                     [](char c) { return c >= 0x20 && c < 0x7f; });
      out += k + "=" + (printable ? "'" + v + "'" : std::to_string(v.size()) + "B") + " ";
    }
    return out + "}";
  }

  static constexpr size_t kChunk = 1 << 20;
  CompareOptions opts_;
  std::vector<char> x_, y_;  // read buffers, allocated once
  size_t entries_ = 0;
  uint64_t bytes_ = 0;
  size_t failures_ = 0;
};

}  // namespace cfs::test
