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

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <thread>

#include "oci/io.h"
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

// Runs `argv` as a child while a thread serves the layer into the FIFO.
Measured run_measured(const std::vector<std::string>& argv, const Layout& l, const Generator& gen) {
  TempDir tmp;
  std::string out = tmp / "out", err = tmp / "err";
  auto start = std::chrono::steady_clock::now();
  pid_t pid = ::fork();
  if (pid == 0) {
    ::signal(SIGPIPE, SIG_DFL);
    int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(o, 1);
    ::dup2(e, 2);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
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
  struct rusage ru {};
  pid_t w = ::wait4(pid, &st, 0, &ru);
  exited = true;
  writer.join();
  Measured m;
  m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(w, pid);
  m.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  m.out = read_file(out);
  m.err = read_file(err);
  m.peak_rss_mib = ru.ru_maxrss / 1024;
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
  Measured pull(const Generator& gen, const std::vector<std::string>& extra = {}) {
    layout_ = make_layout(tmp_ / "layout", gen);
    std::vector<std::string> argv{tool("cfsctl"), "--repo", repo_, "oci", "pull"};
    for (auto& e : extra) argv.push_back(e);
    argv.push_back("oci:" + layout_.dir + ":t");
    argv.push_back("x");
    auto m = run_measured(argv, layout_, gen);
    std::printf("peak RSS %ld MiB, %.1f s, exit %d: %s", m.peak_rss_mib, m.seconds, m.status,
                m.err.c_str());
    return m;
  }
  TempDir tmp_;
  std::string repo_;
  Layout layout_;
};

// The small valid archive the floods follow or precede.
std::string small_tar() { return TarBuilder().dir("usr/").file("usr/f", "hello\n").finish(); }

// Bounds: what the import may use whatever the layer's size (the tools'
// own footprint plus the bounded buffers); ASan's allocator adds its own.
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
  const int files = kAsan ? 50000 : 200000;
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
  EXPECT_LT(m.peak_rss_mib, kAsan ? 400 : 200) << m.err;
}

}  // namespace
}  // namespace cfs::test
