// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/fsverity/fsverity.h"

#include <fcntl.h>
#include <linux/fsverity.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <thread>

#include "composefs-cpp/base/cpu.h"
#include "composefs-cpp/base/endian.h"
#include "composefs-cpp/base/hex.h"

namespace cfs::fsverity {

Digest::Digest(HashAlg alg, std::span<const uint8_t> bytes) : alg_(alg) {
  std::memcpy(bytes_.data(), bytes.data(), std::min(bytes.size(), bytes_.size()));
}

std::string Digest::hex() const { return to_hex(bytes()); }

std::string Digest::object_path() const {
  std::string h = hex();
  return h.substr(0, 2) + "/" + h.substr(2);
}

std::optional<Digest> Digest::from_hex(std::string_view hex) {
  if (hex.size() == 64) return from_hex(HashAlg::Sha256, hex);
  if (hex.size() == 128) return from_hex(HashAlg::Sha512, hex);
  return std::nullopt;
}

std::optional<Digest> Digest::from_hex(HashAlg alg, std::string_view hex) {
  if (hex.size() != 2 * hash_digest_size(alg)) return std::nullopt;
  Digest d;
  d.alg_ = alg;
  for (size_t i = 0; i < hex.size() / 2; i++) {
    int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    d.bytes_[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return d;
}

Status validate(const Params& p) {
  if (p.alg != HashAlg::Sha256 && p.alg != HashAlg::Sha512)
    return errorf(Errc::InvalidArgument, "unknown fs-verity hash algorithm {}",
                  static_cast<int>(p.alg));
  if (p.block_size < 1024 || p.block_size > 65536 || (p.block_size & (p.block_size - 1)))
    return errorf(Errc::InvalidArgument,
                  "fs-verity block size {} is not a power of two between 1024 and 65536",
                  p.block_size);
  if (p.salt.size() > 32)
    return errorf(Errc::InvalidArgument, "fs-verity salt of {} bytes is longer than 32",
                  p.salt.size());
  return {};
}

namespace {

// struct fsverity_descriptor from the kernel's UAPI documentation.
struct Descriptor {
  uint8_t version;
  uint8_t hash_algorithm;
  uint8_t log_blocksize;
  uint8_t salt_size;
  le32 reserved1;
  le64 data_size;
  uint8_t root_hash[64];
  uint8_t salt[32];
  uint8_t reserved2[144];
};
static_assert(sizeof(Descriptor) == 256);

constexpr size_t kBatch = 32;  // data blocks hashed per call on the direct path

}  // namespace

struct Hasher::Impl {
  Params params;
  size_t bs;
  size_t ds;
  std::unique_ptr<FixedHasher> hasher;
  std::vector<uint8_t> pending;  // partial data block
  size_t pending_len = 0;
  // levels[i]: hashes of level i not yet packed into a block of level i+1.
  std::vector<std::vector<uint8_t>> levels;
  std::vector<uint64_t> level_counts;
  std::vector<uint8_t> zero_block_hash;
  std::vector<uint8_t> scratch;
  uint64_t total = 0;

  explicit Impl(Params p) : params(std::move(p)) {
    bs = params.block_size;
    hasher = FixedHasher::create(params.alg, bs, params.salt, params.impl);
    ds = hasher->digest_size();
    pending.resize(bs);
    scratch.resize(kBatch * ds);
  }

  void push_hash(size_t level, const uint8_t* h) {
    if (levels.size() <= level) {
      levels.emplace_back();
      levels.back().reserve(bs);
      level_counts.push_back(0);
    }
    auto& buf = levels[level];
    buf.insert(buf.end(), h, h + ds);
    level_counts[level]++;
    if (buf.size() + ds > bs) {  // block full (no room for another hash)
      buf.resize(bs, 0);
      uint8_t out[64];
      hasher->hash_many(buf.data(), 1, out);
      buf.clear();
      push_hash(level + 1, out);
    }
  }

  void hash_data_blocks(const uint8_t* data, size_t n) {
    while (n) {
      size_t k = std::min(n, kBatch);
      hasher->hash_many(data, k, scratch.data());
      for (size_t i = 0; i < k; i++) push_hash(0, scratch.data() + i * ds);
      data += k * bs;
      n -= k;
    }
  }

  void update(const uint8_t* p, size_t n) {
    total += n;
    if (pending_len) {
      size_t take = std::min(n, bs - pending_len);
      std::memcpy(pending.data() + pending_len, p, take);
      pending_len += take;
      p += take;
      n -= take;
      if (pending_len < bs) return;
      hash_data_blocks(pending.data(), 1);
      pending_len = 0;
    }
    size_t full = n / bs;
    hash_data_blocks(p, full);
    p += full * bs;
    n -= full * bs;
    if (n) {
      std::memcpy(pending.data(), p, n);
      pending_len = n;
    }
  }

  void update_zeros(uint64_t n) {
    if (pending_len) {
      size_t take = static_cast<size_t>(std::min<uint64_t>(n, bs - pending_len));
      std::memset(pending.data() + pending_len, 0, take);
      pending_len += take;
      total += take;
      n -= take;
      if (pending_len < bs) return;
      hash_data_blocks(pending.data(), 1);
      pending_len = 0;
    }
    uint64_t full = n / bs;
    if (full) {
      if (zero_block_hash.empty()) {
        std::vector<uint8_t> zeros(bs, 0);
        zero_block_hash.resize(ds);
        hasher->hash_many(zeros.data(), 1, zero_block_hash.data());
      }
      for (uint64_t i = 0; i < full; i++) push_hash(0, zero_block_hash.data());
      total += full * bs;
      n -= full * bs;
    }
    if (n) {
      std::memset(pending.data(), 0, static_cast<size_t>(n));
      pending_len = static_cast<size_t>(n);
      total += n;
    }
  }

  void update_block_hashes(const uint8_t* hashes, size_t n, uint64_t data_bytes) {
    for (size_t i = 0; i < n; i++) push_hash(0, hashes + i * ds);
    total += data_bytes;
  }

  Digest finish() {
    uint8_t root[64] = {};
    if (total > 0) {
      if (pending_len) {
        std::memset(pending.data() + pending_len, 0, bs - pending_len);
        hash_data_blocks(pending.data(), 1);
        pending_len = 0;
      }
      for (size_t level = 0;; level++) {
        if (level_counts[level] == 1 && levels.size() == level + 1) {
          std::memcpy(root, levels[level].data(), ds);
          break;
        }
        auto& buf = levels[level];
        if (!buf.empty()) {
          buf.resize(bs, 0);
          uint8_t out[64];
          hasher->hash_many(buf.data(), 1, out);
          buf.clear();
          push_hash(level + 1, out);
        }
      }
    }
    Descriptor d{};
    d.version = 1;
    d.hash_algorithm = static_cast<uint8_t>(params.alg);
    d.log_blocksize = static_cast<uint8_t>(__builtin_ctz(static_cast<unsigned>(bs)));
    d.salt_size = static_cast<uint8_t>(params.salt.size());
    d.data_size = total;
    std::memcpy(d.root_hash, root, ds);
    if (!params.salt.empty()) std::memcpy(d.salt, params.salt.data(), params.salt.size());
    uint8_t out[64];
    hash_once(params.alg, {reinterpret_cast<const uint8_t*>(&d), sizeof d}, out);
    return Digest(params.alg, {out, ds});
  }
};

Hasher::Hasher(Params params) : impl_(std::make_unique<Impl>(std::move(params))) {}
Hasher::Hasher(Hasher&&) noexcept = default;
Hasher& Hasher::operator=(Hasher&&) noexcept = default;
Hasher::~Hasher() = default;

void Hasher::update(std::span<const uint8_t> data) { impl_->update(data.data(), data.size()); }
void Hasher::update_zeros(uint64_t n) { impl_->update_zeros(n); }
void Hasher::update_block_hashes(std::span<const uint8_t> hashes, uint64_t data_bytes) {
  impl_->update_block_hashes(hashes.data(), hashes.size() / impl_->ds, data_bytes);
}
uint64_t Hasher::size() const { return impl_->total; }
Digest Hasher::finish() { return impl_->finish(); }

Digest digest_of(std::span<const uint8_t> data, const Params& p) {
  Hasher h(p);
  h.update(data);
  return h.finish();
}

Result<Digest> digest_of_fd(int fd, const Params& p, bool probe_holes) {
  std::vector<uint8_t> buf(kReadChunk);
  return digest_of_fd(fd, p, probe_holes, buf);
}

Result<Digest> digest_of_fd(int fd, const Params& p, bool probe_holes, std::span<uint8_t> buffer) {
  CFS_TRY(validate(p));
  if (buffer.empty()) return make_error(Errc::InvalidArgument, "empty read buffer");
  Hasher h(p);
  const size_t kBuf = buffer.size();
  uint8_t* const buf = buffer.data();
  auto read_range = [&](off_t pos, off_t end, bool until_eof) -> Result<off_t> {
    while (until_eof || pos < end) {
      size_t want = until_eof ? kBuf : static_cast<size_t>(std::min<off_t>(end - pos, kBuf));
      ssize_t r = ::pread(fd, buf, want, pos);
      if (r < 0) {
        if (errno == EINTR) continue;
        return sys_error("read");
      }
      if (r == 0) break;
      h.update({buf, static_cast<size_t>(r)});
      pos += r;
    }
    return pos;
  };
  off_t pos = ::lseek(fd, 0, SEEK_CUR);
  if (pos >= 0 && !probe_holes) {
    CFS_TRY_ASSIGN(pos, read_range(pos, 0, true));
    ::lseek(fd, pos, SEEK_SET);
    return h.finish();
  }
  if (pos < 0) {  // a pipe: plain reads
    for (;;) {
      ssize_t r = ::read(fd, buf, kBuf);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return sys_error("read");
      if (r == 0) break;
      h.update({buf, static_cast<size_t>(r)});
    }
    return h.finish();
  }
  // Data extents are read; holes between them hash to a known constant.
  for (;;) {
    off_t data = ::lseek(fd, pos, SEEK_DATA);
    if (data < 0 && errno == ENXIO) {  // only a hole (or nothing) remains
      off_t end = ::lseek(fd, 0, SEEK_END);
      if (end > pos) h.update_zeros(static_cast<uint64_t>(end - pos));
      pos = std::max(pos, end);
      break;
    }
    if (data < 0) {  // SEEK_DATA unsupported: read to the end
      CFS_TRY_ASSIGN(pos, read_range(pos, 0, true));
      break;
    }
    if (data > pos) h.update_zeros(static_cast<uint64_t>(data - pos));
    off_t hole = ::lseek(fd, data, SEEK_HOLE);
    if (hole < 0) return sys_error("lseek");
    CFS_TRY_ASSIGN(off_t end, read_range(data, hole, false));
    pos = end;
    if (end < hole) break;  // the file shrank under us
  }
  ::lseek(fd, pos, SEEK_SET);
  return h.finish();
}

namespace {

// Data per thread per window: large enough that starting threads costs
// nothing measurable, small enough to keep the hashes of a window in cache.
constexpr uint64_t kSlice = 8 << 20;

// Reads [off, off + len) of the file and hashes it in blocks into `out`; the
// final block of the file, if partial, is hashed zero-padded.
Status hash_slice(int fd, uint64_t off, uint64_t len, const Params& p, FixedHasher& h,
                  std::vector<uint8_t>& buf, uint8_t* out) {
  const size_t bs = p.block_size;
  const size_t ds = h.digest_size();
  while (len) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(len, buf.size() - bs));
    size_t got = 0;
    while (got < want) {
      ssize_t r = ::pread(fd, buf.data() + got, want - got, static_cast<off_t>(off + got));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return sys_error(errno, fmt::format("read at offset {}", off + got));
      if (r == 0)
        return errorf(Errc::Corrupt, "the file ended at offset {}, before its size", off + got);
      got += static_cast<size_t>(r);
    }
    size_t blocks = want / bs;
    if (want % bs) {  // the file's last, partial block
      std::memset(buf.data() + want, 0, bs - want % bs);
      blocks++;
    }
    h.hash_many(buf.data(), blocks, out);
    out += blocks * ds;
    off += want;
    len -= want;
  }
  return {};
}

}  // namespace

Result<Digest> digest_of_file_parallel(int fd, uint64_t size, const Params& p, unsigned threads) {
  CFS_TRY(validate(p));
  if (threads == 0) threads = default_threads();
  const uint64_t bs = p.block_size;
  const uint64_t slice = kSlice / bs * bs;
  threads = static_cast<unsigned>(std::clamp<uint64_t>((size + slice - 1) / slice, 1, threads));
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  Hasher tree(p);
  struct Worker {
    std::unique_ptr<FixedHasher> h;
    std::vector<uint8_t> buf;
    std::vector<uint8_t> hashes;
    Status status;
  };
  std::vector<Worker> workers(threads);
  for (auto& w : workers) {
    w.h = FixedHasher::create(p.alg, p.block_size, p.salt, p.impl);
    w.buf.resize(std::min<uint64_t>(kReadChunk, slice) + bs);
    w.hashes.resize(slice / bs * w.h->digest_size());
  }
  const size_t ds = workers[0].h->digest_size();
  for (uint64_t window = 0; window < size; window += slice * threads) {
    auto run = [&](unsigned t) {
      uint64_t off = window + t * slice;
      uint64_t len = off < size ? std::min(slice, size - off) : 0;
      auto& w = workers[t];
      try {
        w.status = hash_slice(fd, off, len, p, *w.h, w.buf, w.hashes.data());
      } catch (const std::bad_alloc&) {
        w.status = make_error(Errc::NoMemory, "out of memory");
      }
    };
    {
      std::vector<std::jthread> pool;
      for (unsigned t = 1; t < threads; t++) {
        if (window + t * slice >= size) break;
        try {
          pool.emplace_back(run, t);
        } catch (const std::system_error&) {
          run(t);  // no thread to be had: do it here
        }
      }
      run(0);
    }
    for (unsigned t = 0; t < threads; t++) {
      uint64_t off = window + t * slice;
      if (off >= size) break;
      CFS_TRY(std::move(workers[t].status));
      uint64_t len = std::min(slice, size - off);
      tree.update_block_hashes({workers[t].hashes.data(), (len + bs - 1) / bs * ds}, len);
    }
  }
  return tree.finish();
}

Status enable(int fd, HashAlg alg, uint32_t block_size) {
  struct fsverity_enable_arg arg {};
  arg.version = 1;
  arg.hash_algorithm = static_cast<uint32_t>(alg);
  arg.block_size = block_size;
  if (::ioctl(fd, FS_IOC_ENABLE_VERITY, &arg) == 0) return {};
  int e = errno;
  switch (e) {
    case EEXIST: return {};
    // ENOSYS: the ioctl did not reach a filesystem (qemu-user passes no
    // fs-verity ioctls through; seccomp filters may refuse them so).
    case ENOSYS:
    case ENOTTY:
    case EOPNOTSUPP:
      return tl::unexpected(
          Error(Errc::Unsupported, "fs-verity is not supported by this filesystem", e));
    case ETXTBSY:
      return tl::unexpected(
          Error(Errc::Io, "cannot enable fs-verity: the file is open for writing", e));
    default: return sys_error(e, "cannot enable fs-verity");
  }
}

Result<Digest> measure(int fd) {
  alignas(8) uint8_t buf[sizeof(struct fsverity_digest) + 64] = {};
  auto* d = reinterpret_cast<struct fsverity_digest*>(buf);
  d->digest_size = 64;
  if (::ioctl(fd, FS_IOC_MEASURE_VERITY, d) < 0) {
    int e = errno;
    if (e == ENODATA)
      return tl::unexpected(Error(Errc::VerityMissing, "fs-verity is not enabled on the file", e));
    if (e == ENOTTY || e == EOPNOTSUPP || e == ENOSYS)
      return tl::unexpected(
          Error(Errc::Unsupported, "fs-verity is not supported by this filesystem", e));
    return sys_error(e, "cannot measure fs-verity");
  }
  HashAlg alg;
  if (d->digest_algorithm == FS_VERITY_HASH_ALG_SHA256 && d->digest_size == 32)
    alg = HashAlg::Sha256;
  else if (d->digest_algorithm == FS_VERITY_HASH_ALG_SHA512 && d->digest_size == 64)
    alg = HashAlg::Sha512;
  else
    return errorf(Errc::Unsupported, "unknown fs-verity algorithm {} ({} bytes)",
                  d->digest_algorithm, d->digest_size);
  return Digest(alg, {d->digest, d->digest_size});
}

}  // namespace cfs::fsverity
