// read_floor [--metadata-only] DIR [THREADS]: the syscalls of a directory
// digest, without the hashing: a walk of DIR (lstat and the xattr list of
// every entry, the values of each listed xattr), then every regular file
// opened, read to its end with read(2) into one buffer per thread, and
// closed, on THREADS threads (default: the CPUs this process may run on).
// Prints "entries files bytes".  bench/digest_bench.sh adds the walk alone
// (--metadata-only) to the hashing floor, and the whole as a second floor:
// what a reader that copies from the page cache spends.
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Walk {
  std::vector<std::string> files;
  unsigned long entries = 0;
  std::vector<char> names = std::vector<char>(1 << 16);
  std::vector<char> value = std::vector<char>(1 << 16);

  void xattrs(const std::string& path) {
    ssize_t n = ::llistxattr(path.c_str(), names.data(), names.size());
    for (ssize_t i = 0; i < n; i += static_cast<ssize_t>(std::strlen(&names[i])) + 1)
      (void)::lgetxattr(path.c_str(), &names[i], value.data(), value.size());
  }

  void dir(const std::string& path, dev_t dev) {
    DIR* d = ::opendir(path.c_str());
    if (!d) return;
    std::vector<std::string> subdirs;
    while (dirent* e = ::readdir(d)) {
      if (!std::strcmp(e->d_name, ".") || !std::strcmp(e->d_name, "..")) continue;
      std::string p = path + "/" + e->d_name;
      struct stat st;
      if (::lstat(p.c_str(), &st) < 0) continue;
      entries++;
      xattrs(p);
      if (S_ISDIR(st.st_mode) && st.st_dev == dev)
        subdirs.push_back(std::move(p));
      else if (S_ISREG(st.st_mode) && st.st_size > 0)
        files.push_back(std::move(p));
    }
    ::closedir(d);
    for (auto& s : subdirs) dir(s, dev);
  }
};

unsigned cpus() {
  cpu_set_t set;
  if (::sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace

int main(int argc, char** argv) {
  bool metadata_only = argc > 1 && !std::strcmp(argv[1], "--metadata-only");
  if (metadata_only) {
    argv++;
    argc--;
  }
  if (argc < 2) {
    std::fprintf(stderr, "usage: read_floor [--metadata-only] DIR [THREADS]\n");
    return 2;
  }
  unsigned threads = argc > 2 ? static_cast<unsigned>(std::atoi(argv[2])) : cpus();
  if (threads == 0) threads = 1;
  Walk w;
  struct stat root;
  if (::lstat(argv[1], &root) < 0) {
    std::fprintf(stderr, "read_floor: %s: %s\n", argv[1], std::strerror(errno));
    return 1;
  }
  w.dir(argv[1], root.st_dev);
  if (metadata_only) {
    std::printf("%lu %zu 0\n", w.entries, w.files.size());
    return 0;
  }
  std::atomic<size_t> next{0};
  std::atomic<unsigned long long> bytes{0};
  auto reader = [&] {
    std::vector<char> buf(256 << 10);  // our digests' read size
    unsigned long long mine = 0;
    for (size_t i; (i = next++) < w.files.size();) {
      int fd = ::open(w.files[i].c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
      if (fd < 0) continue;
      struct stat st;
      (void)::fstat(fd, &st);
      for (ssize_t r; (r = ::read(fd, buf.data(), buf.size())) > 0;) mine += static_cast<size_t>(r);
      ::close(fd);
    }
    bytes += mine;
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; t++) pool.emplace_back(reader);
  reader();
  for (auto& t : pool) t.join();
  std::printf("%lu %zu %llu\n", w.entries, w.files.size(), bytes.load());
  return 0;
}
