// SPDX-License-Identifier: Apache-2.0
// A deterministic source tree with every file type, xattrs, hardlinks,
// nanosecond mtimes and edge-case names, for directory-scan tests.  Built
// the same way every time, so an image digest of it is a fixed value.
#pragma once

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "test_util.h"

namespace cfs::test {

struct GenOptions {
  bool privileged = false;  // devices, whiteouts, trusted.* xattrs, owners (needs root)
  bool hardlinks = true;
};

inline void set_time(const std::string& path, int64_t sec, long nsec) {
  struct timespec ts[2] = {{sec, nsec}, {sec, nsec}};
  ::utimensat(AT_FDCWD, path.c_str(), ts, AT_SYMLINK_NOFOLLOW);
}

inline bool set_xattr(const std::string& path, const std::string& key, const std::string& value) {
  return ::lsetxattr(path.c_str(), key.c_str(), value.data(), value.size(), 0) == 0;
}

// Generates the tree under `root` (which must not exist).  Returns false and
// a reason when the filesystem refuses something (e.g. no user xattrs).
inline bool generate_tree(const std::string& root, const GenOptions& o, std::string* why) {
  auto fail = [&](const std::string& what) {
    *why = what + ": " + std::strerror(errno);
    return false;
  };
  std::vector<std::string> paths;  // everything, for owners and times
  auto mkdir_p = [&](const std::string& rel, mode_t mode) {
    std::string p = root + (rel.empty() ? "" : "/" + rel);
    if (::mkdir(p.c_str(), mode) < 0) return false;
    ::chmod(p.c_str(), mode);
    paths.push_back(p);
    return true;
  };
  auto file = [&](const std::string& rel, const std::string& data, mode_t mode) {
    std::string p = root + "/" + rel;
    int fd = ::open(p.c_str(), O_CREAT | O_EXCL | O_WRONLY, mode);
    if (fd < 0) return false;
    bool ok = ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
    ::close(fd);
    ::chmod(p.c_str(), mode);
    paths.push_back(p);
    return ok;
  };
  auto pattern = [](size_t n, unsigned seed) {
    std::string s(n, '\0');
    uint32_t x = 2463534242u ^ seed;
    for (auto& c : s) {
      x ^= x << 13;
      x ^= x >> 17;
      x ^= x << 5;
      c = static_cast<char>(x);
    }
    return s;
  };
  if (!mkdir_p("", 0755)) return fail("mkdir root");
  for (const char* d :
       {"usr", "usr/bin", "usr/share", "usr/share/deep", "usr/share/deep/er",
        "usr/share/deep/er/still", "etc", "empty", "opaque", "wh", "-dash", "a b", "big"})
    if (!mkdir_p(d, 0755)) return fail(std::string("mkdir ") + d);
  // Regular files around the inline threshold (64) and block sizes.
  const size_t sizes[] = {0, 1, 63, 64, 65, 100, 2048, 2049, 4095, 4096, 4097, 12345, 70000};
  for (size_t i = 0; i < std::size(sizes); i++)
    if (!file("usr/share/f" + std::to_string(sizes[i]), pattern(sizes[i], static_cast<unsigned>(i)),
              0644))
      return fail("file");
  if (!file("usr/bin/tool", "#!/bin/sh\necho a shell script longer than sixty-four bytes of text\n",
            0755))
    return fail("tool");
  if (!file("usr/share/deep/er/still/leaf", pattern(5000, 7), 0600)) return fail("leaf");
  if (!file("usr/share/dup1", pattern(3000, 42), 0644)) return fail("dup1");
  if (!file("usr/share/dup2", pattern(3000, 42), 0644)) return fail("dup2");  // same content
  if (!file("etc/setuid", "#!/bin/sh\nexit 0 # this file has the setuid and sticky bits set\n",
            04755 | 01000))
    return fail("setuid");
  if (!file("a b/sp ace\\back\nnl=eq", "odd name, inline", 0644)) return fail("odd name");
  std::string long_name(255, 'n');
  if (!file("usr/share/" + long_name, "max-length name", 0644)) return fail("long name");
  for (int i = 0; i < 400; i++)  // a directory spanning several blocks
    if (!file("big/entry-" + std::to_string(i * 7919 % 100000), std::to_string(i), 0644))
      return fail("big dir");
  for (const char* n : {"00", "0a", "ff", "b0"})  // names of the root stubs
    if (!file(n, n, 0644)) return fail("stub name");
  // Symlinks, including a long target and one that dangles.
  auto symlink = [&](const std::string& target, const std::string& rel) {
    std::string p = root + "/" + rel;
    if (::symlink(target.c_str(), p.c_str()) < 0) return false;
    paths.push_back(p);
    return true;
  };
  if (!symlink("../usr/share/f100", "etc/link") || !symlink("/nonexistent", "etc/dangling") ||
      !symlink(std::string(3000, 'x'), "etc/longlink") || !symlink("usr/bin", "bin"))
    return fail("symlink");
  // A fifo and a socket.
  std::string fifo = root + "/etc/fifo";
  if (::mkfifo(fifo.c_str(), 0640) < 0) return fail("mkfifo");
  paths.push_back(fifo);
  {
    std::string sp = root + "/etc/sock";
    int s = ::socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr {};
    addr.sun_family = AF_UNIX;
    if (sp.size() >= sizeof addr.sun_path) return fail("socket path too long");
    std::memcpy(addr.sun_path, sp.c_str(), sp.size() + 1);
    if (s < 0 || ::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0)
      return fail("bind");
    ::close(s);
    ::chmod(sp.c_str(), 0755);
    paths.push_back(sp);
  }
  if (o.hardlinks) {
    std::string a = root + "/usr/share/f12345";
    for (const char* l : {"usr/bin/hard1", "etc/hard2"}) {
      if (::link(a.c_str(), (root + "/" + l).c_str()) < 0) return fail("link");
    }
    if (::link((root + "/usr/share/f1").c_str(), (root + "/etc/hard-inline").c_str()) < 0)
      return fail("link inline");
  }
  // xattrs: user.* everywhere it is allowed (not on symlinks or specials).
  if (!set_xattr(root + "/usr/share/f100", "user.mime", "text/plain") ||
      !set_xattr(root + "/usr/share/f4096", "user.mime", "text/plain") ||  // shared
      !set_xattr(root + "/usr/share/f65", "user.bin", std::string("a\0b=c \n", 7)) ||
      !set_xattr(root + "/usr", "user.dir", "on a directory") ||
      !set_xattr(root, "user.root", "root xattr"))
    return fail("user xattrs");
  if (o.privileged) {
    if (!set_xattr(root + "/usr/bin/tool", "security.capability",
                   std::string("\x01\x00\x00\x02\x00\x30\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
                               "\x00\x00\x00\x00",
                               20)) ||
        !set_xattr(root + "/etc/setuid", "trusted.overlay.redirect", "/escaped") ||
        !set_xattr(root + "/opaque", "trusted.overlay.opaque", "y") ||
        !set_xattr(root + "/etc/link", "trusted.symlink", "on a symlink") ||
        !set_xattr(root + "/usr/share/f2048", "trusted.overlay.metacopy", "") ||
        !set_xattr(root + "/usr/share/f2049", "security.selinux", "system_u:object_r:usr_t:s0"))
      return fail("privileged xattrs");
    auto mknod_at = [&](const std::string& rel, mode_t mode, dev_t dev) {
      std::string p = root + "/" + rel;
      if (::mknod(p.c_str(), mode, dev) < 0) return false;
      paths.push_back(p);
      return true;
    };
    if (!mknod_at("etc/null", S_IFCHR | 0666, makedev(1, 3)) ||
        !mknod_at("etc/sda", S_IFBLK | 0660, makedev(8, 0)) ||
        !mknod_at("etc/bigdev", S_IFCHR | 0600, makedev(4095, 1048575)) ||
        !mknod_at("wh/gone", S_IFCHR | 0000, makedev(0, 0)))  // an overlay whiteout
      return fail("mknod");
    unsigned i = 0;
    for (auto& p : paths) {
      uid_t uid = i % 5 == 0 ? 0 : 1000 + i % 3;
      gid_t gid = i % 7 == 0 ? 0 : (i % 11 == 0 ? 70000 : 100);  // one gid needs 32 bits
      ::lchown(p.c_str(), uid, gid);
      i++;
    }
    ::chmod((root + "/etc/setuid").c_str(), 04755 | 01000);  // chown cleared set-id bits
  }
  // Times last, children before parents (creating entries changes dir mtimes).
  unsigned i = 0;
  for (auto it = paths.rbegin(); it != paths.rend(); ++it, ++i)
    set_time(*it, 1700000000 + (i % 4 == 0 ? 0 : i * 1000), (i % 3) * 123456789L);
  return true;
}

}  // namespace cfs::test
