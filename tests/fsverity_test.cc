// SPDX-License-Identifier: Apache-2.0
// fs-verity digests checked against libfsverity (the kernel project's own
// userspace library) over every size class, algorithm, block size and salt.
#include "composefs-cpp/fsverity/fsverity.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <libfsverity.h>
#include <linux/fsverity.h>
#include <sys/mman.h>

#include <cstring>
#include <random>

#include "composefs-cpp/base/fd.h"
#include "composefs-cpp/base/hex.h"
#include "test_util.h"

namespace cfs::fsverity {
namespace {

struct MemReader {
  const uint8_t* p;
  size_t left;
};

int mem_read(void* fd, void* buf, size_t count) {
  auto* r = static_cast<MemReader*>(fd);
  if (count > r->left) return -EIO;
  std::memcpy(buf, r->p, count);
  r->p += count;
  r->left -= count;
  return 0;
}

std::string reference_digest(const std::vector<uint8_t>& data, HashAlg alg, uint32_t block_size,
                             const std::vector<uint8_t>& salt) {
  libfsverity_merkle_tree_params p{};
  p.version = 1;
  p.hash_algorithm = alg == HashAlg::Sha256 ? FS_VERITY_HASH_ALG_SHA256 : FS_VERITY_HASH_ALG_SHA512;
  p.file_size = data.size();
  p.block_size = block_size;
  p.salt_size = static_cast<uint32_t>(salt.size());
  p.salt = salt.empty() ? nullptr : salt.data();
  MemReader r{data.data(), data.size()};
  libfsverity_digest* d = nullptr;
  EXPECT_EQ(libfsverity_compute_digest(&r, mem_read, &p, &d), 0);
  if (!d) return {};
  std::string hex = to_hex({d->digest, d->digest_size});
  free(d);
  return hex;
}

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  // xorshift: fast enough for the multi-level sizes, never constant blocks.
  std::vector<uint8_t> v(n);
  uint64_t x = 0x9E3779B97F4A7C15ULL ^ seed;
  for (size_t i = 0; i < n; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(v.data() + i, &x, std::min<size_t>(8, n - i));
  }
  return v;
}

// Sizes around every boundary where the tree shape changes.  The ones that
// add a tree level are large for big blocks, so `deep` selects them.
std::vector<size_t> size_classes(uint32_t bs, HashAlg alg, bool deep) {
  size_t per_block = bs / hash_digest_size(alg);
  std::vector<size_t> s = {0, 1, 2, 63, 64, 65, bs - 1u, bs, bs + 1u, 2u * bs, 3u * bs + 7};
  if (deep) {
    for (size_t blocks : {per_block, per_block + 1, per_block * 2 + 1}) {
      s.push_back(blocks * bs - 1);
      s.push_back(blocks * bs);
      s.push_back(blocks * bs + 1);
    }
  }
  return s;
}

struct Case {
  HashAlg alg;
  uint32_t block_size;
  size_t salt_size;
  HashImpl impl;
};

class DigestVsLibfsverity : public ::testing::TestWithParam<Case> {};

TEST_P(DigestVsLibfsverity, AllSizeClasses) {
  Case c = GetParam();
  std::vector<uint8_t> salt = random_bytes(c.salt_size, 99);
  Params p;
  p.alg = c.alg;
  p.block_size = c.block_size;
  p.salt = salt;
  p.impl = c.impl;
  // Tree levels are exercised once per algorithm and block size (unsalted,
  // and salted with the largest salt for blocks up to 8 KiB).
  bool deep =
      c.impl == HashImpl::Auto && (c.salt_size == 0 || (c.salt_size == 32 && c.block_size <= 8192));
  for (size_t size : size_classes(c.block_size, c.alg, deep)) {
    auto data = random_bytes(size, static_cast<uint32_t>(size));
    std::string want = reference_digest(data, c.alg, c.block_size, salt);
    EXPECT_EQ(digest_of(std::span<const uint8_t>(data), p).hex(), want) << "size " << size;
    // Streaming in odd chunk sizes gives the same digest.
    Hasher h(p);
    for (size_t off = 0; off < data.size();) {
      size_t n = std::min<size_t>(data.size() - off, 1 + (off * 7919) % 5003);
      h.update(std::span<const uint8_t>(data.data() + off, n));
      off += n;
    }
    EXPECT_EQ(h.finish().hex(), want) << "streamed, size " << size;
  }
}

std::vector<Case> all_cases() {
  std::vector<Case> v;
  for (auto alg : {HashAlg::Sha256, HashAlg::Sha512})
    for (uint32_t bs : {1024u, 2048u, 4096u, 8192u, 16384u, 32768u, 65536u})
      for (size_t salt : {0u, 1u, 16u, 32u})
        for (auto impl : {HashImpl::Auto, HashImpl::OpenSsl}) {
          v.push_back({alg, bs, salt, impl});
        }
  return v;
}

INSTANTIATE_TEST_SUITE_P(All, DigestVsLibfsverity, ::testing::ValuesIn(all_cases()),
                         [](const auto& param_info) {
                           const Case& c = param_info.param;
                           return std::string(c.alg == HashAlg::Sha256 ? "sha256" : "sha512") +
                                  "_bs" + std::to_string(c.block_size) + "_salt" +
                                  std::to_string(c.salt_size) +
                                  (c.impl == HashImpl::OpenSsl ? "_openssl" : "_auto");
                         });

// One file hashed by several threads, each taking 8 MiB slices: sizes at
// and around the slice and window boundaries, against libfsverity.
TEST(Fsverity, ParallelFileDigestMatchesLibfsverity) {
  constexpr size_t kSlice = 8 << 20;
  struct P {
    HashAlg alg;
    uint32_t bs;
    size_t salt;
  };
  const std::vector<size_t> sizes = {
      0, 1, 4096, kSlice - 1, kSlice, kSlice + 1, 2 * kSlice + 4097, 5 * kSlice + 123};
  for (P c : {P{HashAlg::Sha256, 4096, 0}, P{HashAlg::Sha512, 4096, 16},
              P{HashAlg::Sha256, 1024, 32}, P{HashAlg::Sha256, 65536, 0}}) {
    std::vector<uint8_t> salt = random_bytes(c.salt, 7);
    Params p;
    p.alg = c.alg;
    p.block_size = c.bs;
    p.salt = salt;
    for (size_t size : sizes) {
      if (c.bs != 4096 && size > 2 * kSlice + 4097) continue;  // the shape is covered above
      auto data = random_bytes(size, static_cast<uint32_t>(size + c.bs));
      std::string want = reference_digest(data, c.alg, c.bs, salt);
      UniqueFd fd(::memfd_create("parallel", MFD_CLOEXEC));
      ASSERT_TRUE(fd);
      ASSERT_EQ(::pwrite(fd.get(), data.data(), data.size(), 0), static_cast<ssize_t>(size));
      for (unsigned threads : {1u, 2u, 3u, 5u}) {
        auto d = digest_of_file_parallel(fd.get(), size, p, threads);
        ASSERT_TRUE(d) << d.error().message();
        EXPECT_EQ(d->hex(), want) << "size " << size << ", " << threads << " threads, block "
                                  << c.bs;
      }
    }
  }
}

TEST(Fsverity, ParallelFileDigestRefusesAShortFile) {
  UniqueFd fd(::memfd_create("short", MFD_CLOEXEC));
  ASSERT_TRUE(fd);
  auto data = random_bytes((8 << 20) + 100, 3);
  ASSERT_EQ(::pwrite(fd.get(), data.data(), data.size(), 0), static_cast<ssize_t>(data.size()));
  auto d = digest_of_file_parallel(fd.get(), data.size() + 5000, {}, 2);
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().message().find("ended at offset 8388708"), std::string::npos)
      << d.error().message();
}

TEST(Fsverity, PublishedVectors) {
  // From composefs-rs (digest.rs) and composefs#442: independent of libfsverity.
  EXPECT_EQ(digest_of(std::string_view("hello world")).hex(),
            "1e2eaa4202d750a41174ee454970b92c1bc2f925b1e35076d8c7d5f56362ba64");
  EXPECT_EQ(digest_of(std::string_view("")).hex(),
            "3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95");
}

TEST(Fsverity, RejectsBadParams) {
  Params p;
  p.block_size = 3000;
  EXPECT_FALSE(validate(p));
  p.block_size = 512;
  EXPECT_FALSE(validate(p));
  p.block_size = 4096;
  p.salt.resize(33);
  EXPECT_FALSE(validate(p));
}

TEST(Fsverity, DigestParsing) {
  auto d = Digest::from_hex("1e2eaa4202d750a41174ee454970b92c1bc2f925b1e35076d8c7d5f56362ba64");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->alg(), HashAlg::Sha256);
  EXPECT_EQ(d->object_path(), "1e/2eaa4202d750a41174ee454970b92c1bc2f925b1e35076d8c7d5f56362ba64");
  EXPECT_FALSE(Digest::from_hex("1e2e"));
  EXPECT_FALSE(Digest::from_hex(std::string(64, 'g')));
  EXPECT_TRUE(Digest::from_hex(std::string(128, 'A')));
}

// A multi-GiB sparse file: holes are hashed without being read, and the
// result equals the fsverity tool's over the same file.
TEST(Fsverity, SparseFileMatchesFsverityTool) {
  if (!test::have_command("fsverity")) GTEST_SKIP() << "fsverity tool not installed";
  test::TempDir dir;
  std::string path = dir / "sparse";
  {
    int fd = ::open(path.c_str(), O_CREAT | O_WRONLY, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, (2ll << 30) + 12345), 0);
    ASSERT_EQ(::pwrite(fd, "data in the middle", 18, 1ll << 30), 18);
    ASSERT_EQ(::pwrite(fd, "tail", 4, (2ll << 30) + 12000), 4);
    ::close(fd);
  }
  for (auto [alg, name] :
       {std::pair{HashAlg::Sha256, "sha256"}, std::pair{HashAlg::Sha512, "sha512"}}) {
    auto r = test::run("fsverity digest --hash-alg=" + std::string(name) + " " + path);
    ASSERT_EQ(r.status, 0) << r.err;
    std::string want = r.out.substr(std::string(name).size() + 1, 2 * hash_digest_size(alg));
    auto fd = open_at(AT_FDCWD, path, O_RDONLY);
    ASSERT_TRUE(fd);
    Params p;
    p.alg = alg;
    auto got = digest_of_fd(fd->get(), p);
    ASSERT_TRUE(got) << got.error().message();
    EXPECT_EQ(got->hex(), want);
  }
}

TEST(Fsverity, FdDigestOfPipe) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ASSERT_EQ(::write(fds[1], "hello world", 11), 11);
  ::close(fds[1]);
  auto d = digest_of_fd(fds[0]);
  ::close(fds[0]);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->hex(), "1e2eaa4202d750a41174ee454970b92c1bc2f925b1e35076d8c7d5f56362ba64");
}

// This machine's filesystems lack fs-verity; the ioctls must say so clearly.
TEST(Fsverity, KernelIoctlsReportUnsupported) {
  test::TempDir dir;
  test::write_file(dir / "f", "hello world");
  auto fd = open_at(AT_FDCWD, dir / "f", O_RDONLY);
  ASSERT_TRUE(fd);
  auto m = measure(fd->get());
  if (m) GTEST_SKIP() << "this filesystem has fs-verity enabled on the file";
  EXPECT_TRUE(m.error().code() == Errc::Unsupported || m.error().code() == Errc::VerityMissing)
      << m.error().message();
  auto e = enable(fd->get());
  if (e) {
    auto m2 = measure(fd->get());
    ASSERT_TRUE(m2);
    EXPECT_EQ(m2->hex(), "1e2eaa4202d750a41174ee454970b92c1bc2f925b1e35076d8c7d5f56362ba64");
  } else {
    EXPECT_EQ(e.error().code(), Errc::Unsupported);
    EXPECT_NE(e.error().message().find("not supported by this filesystem"), std::string::npos);
  }
}

}  // namespace
}  // namespace cfs::fsverity
