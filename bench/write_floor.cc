// write_floor [--hash] SIZES OUT [THREADS]: what creating a store's files
// costs the filesystem, without reading anything: SIZES lists the objects'
// sizes in bytes (one per line), and THREADS threads (default: the CPUs this
// process may run on) write files of those sizes from one buffer in memory,
// the way an object store does (an O_TMPFILE in OUT, written, then linked as
// OUT/xx/<name>, spread over 256 subdirectories); the end is one syncfs of
// OUT.  With --hash each thread also hashes what it writes, as fs-verity's
// leaf level does (SHA-256 of every 4 KiB block, OpenSSL's code): the floor
// of a store that must name its objects by their content.  Prints "files
// bytes".  bench/store_bench.sh runs it with the sizes of the store it
// measures, on the filesystem the stores are written to.
#include <fcntl.h>
#include <openssl/evp.h>
#include <sched.h>
#include <sys/stat.h>
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

unsigned cpus() {
  cpu_set_t set;
  if (::sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

// SHA-256 of each 4 KiB block of [p, p + n), the last one zero-padded.
void hash_blocks(EVP_MD_CTX* ctx, const char* p, size_t n) {
  static const char zeros[4096] = {};
  unsigned char md[EVP_MAX_MD_SIZE];
  for (size_t off = 0; off < n; off += 4096) {
    size_t len = std::min<size_t>(4096, n - off);
    EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
    EVP_DigestUpdate(ctx, p + off, len);
    if (len < 4096) EVP_DigestUpdate(ctx, zeros, 4096 - len);
    EVP_DigestFinal_ex(ctx, md, nullptr);
  }
}

bool write_one(int out, const char* buf, size_t chunk, off_t size, unsigned long i,
               EVP_MD_CTX* ctx) {
  int fd = ::openat(out, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  for (off_t done = 0; done < size;) {
    size_t n = static_cast<size_t>(std::min<off_t>(size - done, static_cast<off_t>(chunk)));
    if (ctx) hash_blocks(ctx, buf, n);
    ssize_t w = ::write(fd, buf, n);
    if (w <= 0) {
      ::close(fd);
      return false;
    }
    done += w;
  }
  char name[64], proc[64];
  // Names as spread as digests: a multiplicative hash of the index.
  unsigned long h = (i + 1) * 0x9e3779b97f4a7c15ul;
  std::snprintf(name, sizeof name, "%02lx/%016lx", h >> 56, h);
  std::snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
  bool ok = ::linkat(AT_FDCWD, proc, out, name, AT_SYMLINK_FOLLOW) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  bool hash = argc > 1 && !std::strcmp(argv[1], "--hash");
  if (hash) {
    argv++;
    argc--;
  }
  if (argc < 3) {
    std::fprintf(stderr, "usage: write_floor [--hash] SIZES OUT [THREADS]\n");
    return 2;
  }
  unsigned threads = argc > 3 ? static_cast<unsigned>(std::atoi(argv[3])) : cpus();
  if (threads == 0) threads = 1;
  std::vector<off_t> sizes;
  FILE* list = std::fopen(argv[1], "r");
  if (!list) {
    std::perror(argv[1]);
    return 1;
  }
  for (long long n; std::fscanf(list, "%lld", &n) == 1;)
    if (n > 0) sizes.push_back(static_cast<off_t>(n));
  std::fclose(list);
  if (::mkdir(argv[2], 0755) < 0 && errno != EEXIST) {
    std::perror(argv[2]);
    return 1;
  }
  int out = ::open(argv[2], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (out < 0) {
    std::perror(argv[2]);
    return 1;
  }
  for (unsigned d = 0; d < 256; d++) {
    char sub[4];
    std::snprintf(sub, sizeof sub, "%02x", d);
    if (::mkdirat(out, sub, 0755) < 0 && errno != EEXIST) {
      std::perror(sub);
      return 1;
    }
  }
  // Bytes that do not compress or deduplicate, in case the disk would.
  const size_t chunk = 1 << 20;
  std::vector<char> buf(chunk);
  unsigned long x = 88172645463325252ul;
  for (auto& c : buf) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    c = static_cast<char>(x);
  }
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; t++)
    pool.emplace_back([&] {
      EVP_MD_CTX* ctx = hash ? EVP_MD_CTX_new() : nullptr;
      for (size_t i; (i = next++) < sizes.size() && !failed;)
        if (!write_one(out, buf.data(), chunk, sizes[i], i, ctx)) failed = true;
      EVP_MD_CTX_free(ctx);
    });
  for (auto& t : pool) t.join();
  if (failed || ::syncfs(out) < 0) {
    std::perror("write_floor");
    return 1;
  }
  unsigned long long bytes = 0;
  for (off_t s : sizes) bytes += static_cast<unsigned long long>(s);
  std::printf("%zu %llu\n", sizes.size(), bytes);
  return 0;
}
