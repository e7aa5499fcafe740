// SPDX-License-Identifier: Apache-2.0
// Hostile layers against the real cfsctl, with its peak memory measured
// (ru_maxrss of the child): a tar followed by a flood of zeros, PAX headers
// repeated past a gigabyte, a layer of 200k tiny files.  The layers are
// generated as streams into a FIFO that stands as the blob of an OCI layout
// (generated twice: once to compute the digests the manifest and config
// need, once to serve), so nothing large is ever stored.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <zstd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <thread>

#include "composefs-cpp/oci/io.h"
#include "composefs-cpp/repository/repository.h"
#include "tar_builder.h"
#include "test_util.h"

namespace cfs::test {
namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAsan = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kAsan = true;
#else
constexpr bool kAsan = false;
#endif
#else
constexpr bool kAsan = false;
#endif

// A layer generator: calls `sink` with consecutive pieces of the tar stream
// until it is done or `sink` returns false.
using Sink = std::function<bool(std::string_view)>;
using Generator = std::function<void(const Sink&)>;

struct Layout {
  std::string dir;   // the OCI layout
  std::string fifo;  // its layer blob
  std::string diff_id;
  uint64_t size = 0;
};

void put_blob(const std::string& dir, const std::string& data, std::string* digest) {
  *digest = oci::sha256_digest(data);
  write_file(dir + "/blobs/sha256/" + digest->substr(7), data);
}

// An image layout with one uncompressed layer, streamed from `gen`.
Layout make_layout(const std::string& dir, const Generator& gen) {
  Layout l;
  l.dir = dir;
  std::filesystem::create_directories(dir + "/blobs/sha256");
  oci::Sha256 sha;
  gen([&](std::string_view s) {
    sha.update(s);
    l.size += s.size();
    return true;
  });
  l.diff_id = sha.finish();
  std::string config = R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers",)"
                       R"("diff_ids":[")" +
                       l.diff_id + R"("]},"config":{}})";
  std::string config_digest, manifest_digest;
  put_blob(dir, config, &config_digest);
  std::string manifest =
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
      R"("config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
      config_digest + R"(","size":)" + std::to_string(config.size()) +
      R"(},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":")" +
      l.diff_id + R"(","size":)" + std::to_string(l.size) + "}]}";
  put_blob(dir, manifest, &manifest_digest);
  write_file(dir + "/index.json",
             R"({"schemaVersion":2,"manifests":[{"mediaType":)"
             R"("application/vnd.oci.image.manifest.v1+json","digest":")" +
                 manifest_digest + R"(","size":)" + std::to_string(manifest.size()) +
                 R"(,"annotations":{"org.opencontainers.image.ref.name":"t"}}]})");
  write_file(dir + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
  l.fifo = dir + "/blobs/sha256/" + l.diff_id.substr(7);
  EXPECT_EQ(::mkfifo(l.fifo.c_str(), 0644), 0) << std::strerror(errno);
  return l;
}

struct Measured {
  int status = -1;  // exit status, or 128 + signal
  std::string out, err;
  long peak_rss_mib = 0;
  double seconds = 0;
};

// tests/peak_rss_main.cc, next to this test binary.
std::string peak_rss_tool() {
  return std::filesystem::read_symlink("/proc/self/exe").parent_path() / "peak_rss";
}

// Runs `argv` as a child while a thread serves the layer into the FIFO; its
// peak RSS as peak_rss measures it (a child forked from this test process
// would count the test's own pages until exec).
// `as_limit`: an address-space limit (RLIMIT_AS) for the child, 0 for none.
Measured run_measured(const std::vector<std::string>& argv, const Layout& l, const Generator& gen,
                      uint64_t as_limit = 0) {
  TempDir tmp;
  std::string out = tmp / "out", err = tmp / "err", rss = tmp / "rss";
  auto start = std::chrono::steady_clock::now();
  pid_t pid = ::fork();
  if (pid == 0) {
    ::signal(SIGPIPE, SIG_DFL);
    if (as_limit) {
      struct rlimit rl {
        as_limit, as_limit
      };
      ::setrlimit(RLIMIT_AS, &rl);
    }
    int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(o, 1);
    ::dup2(e, 2);
    std::vector<std::string> full{peak_rss_tool(), rss};
    full.insert(full.end(), argv.begin(), argv.end());
    std::vector<char*> args;
    for (auto& a : full) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  std::atomic<bool> exited{false};
  std::thread writer([&] {
    int fd = -1;
    // Open once the child reads (never block: it may fail before that).
    while (!exited && (fd = ::open(l.fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC)) < 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (fd < 0) return;
    ::fcntl(fd, F_SETFL, 0);
    gen([&](std::string_view s) {
      while (!s.empty()) {
        ssize_t n = ::write(fd, s.data(), s.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;  // EPIPE: the reader stopped
        s.remove_prefix(static_cast<size_t>(n));
      }
      return true;
    });
    ::close(fd);
  });
  int st = 0;
  pid_t w = ::waitpid(pid, &st, 0);
  exited = true;
  writer.join();
  Measured m;
  m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(w, pid);
  m.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  m.out = read_file(out);
  m.err = read_file(err);
  std::string kib = read_file(rss);
  EXPECT_FALSE(kib.empty()) << "peak_rss did not report";
  m.peak_rss_mib = kib.empty() ? -1 : std::stol(kib) / 1024;
  return m;
}

class HostileLayers : public ::testing::Test {
 protected:
  void SetUp() override {
    ::signal(SIGPIPE, SIG_IGN);
    repo_ = tmp_ / "repo";
    auto r = run(shell_quote(tool("cfsctl")) + " --repo " + shell_quote(repo_) +
                 " init --insecure --algorithm fsverity-sha256-12");
    ASSERT_EQ(r.status, 0) << r.err;
  }
  Measured pull(const Generator& gen, const std::vector<std::string>& extra = {},
                uint64_t as_limit = 0) {
    layout_ = make_layout(tmp_ / "layout", gen);
    std::vector<std::string> argv{tool("cfsctl"), "--repo", repo_, "oci", "pull"};
    for (auto& e : extra) argv.push_back(e);
    argv.push_back("oci:" + layout_.dir + ":t");
    argv.push_back("x");
    auto m = run_measured(argv, layout_, gen, as_limit);
    std::printf("peak RSS %ld MiB, %.1f s, exit %d: %s", m.peak_rss_mib, m.seconds, m.status,
                m.err.c_str());
    return m;
  }
  std::string cfsctl(const std::string& args) const {
    return shell_quote(tool("cfsctl")) + " --repo " + shell_quote(repo_) + " " + args;
  }
  TempDir tmp_;
  std::string repo_;
  Layout layout_;
};

// The small valid archive the floods follow or precede.
std::string small_tar() { return TarBuilder().dir("usr/").file("usr/f", "hello\n").finish(); }

// Bounds: what the import may use whatever the layer's size (the tools'
// own footprint plus the bounded buffers); ASan's allocator adds its own
// (about 65 MiB for a small pull).  Measured before the fix: 2 GiB for
// either flood, 283 MiB for 200k files (Release); after: 16, 22 and 143 MiB
// (ASan: 65, 85, 358).
constexpr long kBoundMiB = kAsan ? 160 : 64;

TEST_F(HostileLayers, ZeroTrailerBombIsRefusedInBoundedMemory) {
  const uint64_t zeros = kAsan ? (uint64_t{256} << 20) : (uint64_t{1} << 30);
  Generator gen = [&](const Sink& sink) {
    if (!sink(small_tar())) return;
    std::string block(1 << 20, '\0');
    for (uint64_t done = 0; done < zeros; done += block.size())
      if (!sink(block)) return;
  };
  auto m = pull(gen);
  EXPECT_EQ(m.status, 1) << m.err;
  EXPECT_LT(m.peak_rss_mib, kBoundMiB) << m.err;
  EXPECT_NE(m.err.find("layer " + layout_.diff_id), std::string::npos) << m.err;
  EXPECT_NE(m.err.find("after the end of the archive"), std::string::npos) << m.err;
  EXPECT_NE(m.err.find("offset 1536"), std::string::npos) << m.err;
}

TEST_F(HostileLayers, PaxHeadersPastAGigabyteAreRefusedInBoundedMemory) {
  const uint64_t total = kAsan ? (uint64_t{256} << 20) : (uint64_t{1} << 30);
  // One PAX header of 1 MiB of records, repeated before a single entry.
  std::string recs;
  while (recs.size() < (1 << 20) - 200)
    recs += TarBuilder::record("comment", std::string(1000, 'c'));
  std::string x = TarBuilder::header("PaxHeaders/x", 'x', recs.size(), "", 0644, 0, 0, 0, 0, 0) +
                  recs + std::string((512 - recs.size() % 512) % 512, '\0');
  Generator gen = [&](const Sink& sink) {
    for (uint64_t done = 0; done < total; done += x.size())
      if (!sink(x)) return;
    sink(small_tar());
  };
  auto m = pull(gen);
  EXPECT_EQ(m.status, 1) << m.err;
  EXPECT_LT(m.peak_rss_mib, kBoundMiB) << m.err;
  EXPECT_NE(m.err.find("layer " + layout_.diff_id), std::string::npos) << m.err;
  EXPECT_NE(m.err.find("extension"), std::string::npos) << m.err;
  EXPECT_NE(m.err.find("offset 0"), std::string::npos) << m.err;
}

TEST_F(HostileLayers, TwoHundredThousandTinyFilesInBoundedMemory) {
  const int files = 200000;
  Generator gen = [&](const Sink& sink) {
    TarBuilder b;
    b.dir("usr/");
    for (int d = 0; d < files / 1000; d++) {
      b.dir("usr/d" + std::to_string(d) + "/");
      for (int f = 0; f < 1000; f++)
        b.file("usr/d" + std::to_string(d) + "/f" + std::to_string(f), std::to_string(f));
      if (!sink(b.bytes())) return;
      b.bytes().clear();
    }
    sink(std::string(1024, '\0'));
  };
  auto m = pull(gen);
  EXPECT_EQ(m.status, 0) << m.err;
  EXPECT_LT(m.peak_rss_mib, kAsan ? 500 : 200) << m.err;
}

TEST_F(HostileLayers, MaxLayerSizeBoundsTheUncompressedBytes) {
  Generator gen = [](const Sink& sink) {
    sink(TarBuilder().dir("usr/").file("usr/big", std::string(3 << 20, 'b')).finish());
  };
  auto m = pull(gen, {"--max-layer-size", "1M"});
  EXPECT_EQ(m.status, 1) << m.err;
  EXPECT_NE(m.err.find("layer " + layout_.diff_id), std::string::npos) << m.err;
  EXPECT_NE(m.err.find("tar entry 'usr/big' at offset 512"), std::string::npos) << m.err;
  EXPECT_NE(m.err.find("--max-layer-size"), std::string::npos) << m.err;
  EXPECT_NE(m.err.find("more than 1048576 bytes"), std::string::npos) << m.err;
  auto bad = run(cfsctl("oci pull --max-layer-size 12X oci:" + layout_.dir + ":t y"));
  EXPECT_EQ(bad.status, 2) << bad.err;
  std::filesystem::remove_all(layout_.dir);
  auto ok = pull(gen);  // the default is far above
  EXPECT_EQ(ok.status, 0) << ok.err;
}

// A split stream whose inline chunk claims a terabyte: refused by the
// reader (which allocates by what it reads, not by what the file says),
// never an abort of the tool.
std::string lying_split_stream() {
  std::string chunks;
  auto u64 = [](std::string& s, uint64_t v) {
    for (int i = 0; i < 8; i++) s.push_back(static_cast<char>(v >> (8 * i)));
  };
  u64(chunks, static_cast<uint64_t>(-(int64_t{1} << 40)));
  chunks += "only a few bytes follow";
  std::string z(ZSTD_compressBound(chunks.size()), '\0');
  z.resize(ZSTD_compress(z.data(), z.size(), chunks.data(), chunks.size(), 3));
  std::string f("SplitStream", 11);
  f += std::string("\0\0\0\x01\x0c", 5);  // version, flags, sha256, 2^12
  u64(f, 32);
  u64(f, 112);
  for (uint64_t v : {112, 112, 112, 112})  // no refs
    u64(f, v);
  u64(f, 112);
  u64(f, 112 + z.size());  // the stream
  u64(f, 112);
  u64(f, 112);  // no named refs
  u64(f, 0x7279616c69636f);
  u64(f, uint64_t{1} << 41);  // stream_size
  return f + z;
}

TEST_F(HostileLayers, LyingSplitStreamIsAnErrorNotAnAbort) {
  std::string file = lying_split_stream();
  {
    auto repo = repository::Repository::open(repo_);
    ASSERT_TRUE(repo) << repo.error().message();
    ASSERT_TRUE(repo->ensure_writable());
    auto d = repo->store_bytes({reinterpret_cast<const uint8_t*>(file.data()), file.size()});
    ASSERT_TRUE(d) << d.error().message();
    ASSERT_TRUE(repo->symlink("streams/evil", repo->object_path(*d)));
  }
  auto r = run(cfsctl("cat evil") + " > /dev/null");
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("streams/evil"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("inline chunk of 1099511627776 bytes"), std::string::npos) << r.err;
  auto f = run(cfsctl("fsck"));
  EXPECT_LT(f.status, 128) << f.err;
}

// Tag names are file names, any bytes but '/' and NUL: JSON output must
// not fail on them (nlohmann throws on invalid UTF-8).
TEST_F(HostileLayers, TagsThatAreNotUtf8PrintAsJson) {
  auto m = pull([](const Sink& sink) { sink(small_tar()); });
  ASSERT_EQ(m.status, 0) << m.err;
  auto p = run(cfsctl("oci images"));
  ASSERT_EQ(p.status, 0) << p.err;
  std::string digest = m.out.substr(m.out.find("manifest ") + 9, 71);
  auto t = run(cfsctl("oci tag " + digest + " \"$(printf 'bad\\377\\376')\""));
  ASSERT_EQ(t.status, 0) << t.err;
  auto j = run(cfsctl("oci images --json"));
  EXPECT_EQ(j.status, 0) << j.err;
  EXPECT_NE(j.out.find("bad\xef\xbf\xbd\xef\xbf\xbd"), std::string::npos) << j.out;
  auto f = run(cfsctl("oci fsck --json"));
  EXPECT_EQ(f.status, 0) << f.err;
  EXPECT_NE(f.out.find("\"ok\": true"), std::string::npos) << f.out;
}

// Allocation failures (here: a small address space) are errors naming the
// command, never an abort.
TEST_F(HostileLayers, OutOfMemoryIsAnErrorNotAnAbort) {
  if (kAsan) GTEST_SKIP() << "ASan reserves its shadow memory: RLIMIT_AS cannot be tested";
  Generator gen = [](const Sink& sink) {
    TarBuilder b;
    b.dir("usr/");
    for (int d = 0; d < 100; d++) {
      b.dir("usr/d" + std::to_string(d) + "/");
      for (int f = 0; f < 1000; f++)
        b.file("usr/d" + std::to_string(d) + "/f" + std::to_string(f), "x");
      if (!sink(b.bytes())) return;
      b.bytes().clear();
    }
    sink(std::string(1024, '\0'));
  };
  auto m = pull(gen, {}, uint64_t{100} << 20);
  EXPECT_EQ(m.status, 1) << m.err;
  // Caught at the tool's boundary (a C library may fail first with ENOMEM).
  EXPECT_TRUE(m.err.find("out of memory (running: cfsctl") != std::string::npos ||
              m.err.find("Cannot allocate memory") != std::string::npos)
      << m.err;
}

}  // namespace
}  // namespace cfs::test
