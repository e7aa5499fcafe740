// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/repository/splitstream.h"

#include <sys/stat.h>
#include <zstd.h>

#include <cstring>

namespace cfs::repository {
namespace {

constexpr char kMagic[11] = {'S', 'p', 'l', 'i', 't', 'S', 't', 'r', 'e', 'a', 'm'};
constexpr uint8_t kLgBlockSize = 12;
constexpr size_t kHeaderSize = 32;
constexpr size_t kInfoSize = 80;
// composefs-rs compresses with the zstd crate's level 0: libzstd's default.
constexpr int kZstdLevel = 3;

void put_u64(std::string& s, uint64_t v) {
  for (int i = 0; i < 8; i++) s.push_back(static_cast<char>(v >> (8 * i)));
}
uint64_t get_u64(const std::string& s, size_t off) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | static_cast<uint8_t>(s[off + i]);
  return v;
}

Result<std::string> zstd_compress(std::string_view in) {
  std::string out(ZSTD_compressBound(in.size()), '\0');
  size_t n = ZSTD_compress(out.data(), out.size(), in.data(), in.size(), kZstdLevel);
  if (ZSTD_isError(n)) return errorf(Errc::Io, "zstd: {}", ZSTD_getErrorName(n));
  out.resize(n);
  return out;
}

}  // namespace

struct SplitStreamWriter::Z {
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ~Z() { ZSTD_freeCCtx(cctx); }
};

SplitStreamWriter::SplitStreamWriter(fsverity::HashAlg alg, uint64_t ct, int spill_dirfd)
    : alg_(alg), content_type_(ct), spill_dirfd_(spill_dirfd), z_(std::make_unique<Z>()) {
  ZSTD_CCtx_setParameter(z_->cctx, ZSTD_c_compressionLevel, kZstdLevel);
}
SplitStreamWriter::~SplitStreamWriter() = default;

Status SplitStreamWriter::spill() {
  if (!spill_) {
    CFS_TRY_ASSIGN(spill_, unnamed_tmpfile(spill_dirfd_));
  }
  auto st = write_full(spill_.get(), stream_);
  if (!st) return tl::unexpected(std::move(st.error()).context("writing a split stream"));
  spilled_bytes_ += stream_.size();
  stream_.clear();
  return {};
}

Status SplitStreamWriter::compress(std::span<const uint8_t> data) {
  if (!z_->cctx) return make_error(Errc::Io, "zstd: cannot create a compression context");
  ZSTD_inBuffer in{data.data(), data.size(), 0};
  while (in.pos < in.size) {
    size_t old = stream_.size();
    stream_.resize(old + ZSTD_CStreamOutSize());
    ZSTD_outBuffer out{stream_.data() + old, ZSTD_CStreamOutSize(), 0};
    size_t rc = ZSTD_compressStream2(z_->cctx, &out, &in, ZSTD_e_continue);
    stream_.resize(old + out.pos);
    if (ZSTD_isError(rc)) return errorf(Errc::Io, "zstd: {}", ZSTD_getErrorName(rc));
    if (spill_dirfd_ >= 0 && stream_.size() >= kSpillThreshold) CFS_TRY(spill());
  }
  return {};
}

Status SplitStreamWriter::flush_inline() {
  if (inline_.empty()) return {};
  std::string hdr;
  put_u64(hdr, static_cast<uint64_t>(-static_cast<int64_t>(inline_.size())));
  CFS_TRY(compress({reinterpret_cast<const uint8_t*>(hdr.data()), 8}));
  CFS_TRY(compress({reinterpret_cast<const uint8_t*>(inline_.data()), inline_.size()}));
  inline_.clear();
  if (inline_.capacity() > 2 * kInlineFlush) inline_.shrink_to_fit();
  return {};
}

Status SplitStreamWriter::write_inline(std::span<const uint8_t> data) {
  inline_.append(reinterpret_cast<const char*>(data.data()), data.size());
  total_ += data.size();
  return {};
}

Status SplitStreamWriter::chunk_boundary() {
  if (inline_.size() >= kInlineFlush) return flush_inline();
  return {};
}

Status SplitStreamWriter::write_external(const fsverity::Digest& d, uint64_t size) {
  CFS_TRY(flush_inline());
  auto [it, fresh] = object_index_.emplace(d, object_refs_.size());
  if (fresh) object_refs_.push_back(d);
  std::string hdr;
  put_u64(hdr, it->second);
  CFS_TRY(compress({reinterpret_cast<const uint8_t*>(hdr.data()), 8}));
  total_ += size;
  return {};
}

void SplitStreamWriter::add_named_ref(const std::string& name, const fsverity::Digest& stream) {
  auto [it, fresh] = stream_index_.emplace(stream, stream_refs_.size());
  if (fresh) stream_refs_.push_back(stream);
  named_[name] = it->second;
}

Status SplitStreamWriter::end_stream() {
  CFS_TRY(flush_inline());
  for (;;) {
    size_t old = stream_.size();
    stream_.resize(old + ZSTD_CStreamOutSize());
    ZSTD_inBuffer in{nullptr, 0, 0};
    ZSTD_outBuffer out{stream_.data() + old, ZSTD_CStreamOutSize(), 0};
    size_t rc = ZSTD_compressStream2(z_->cctx, &out, &in, ZSTD_e_end);
    stream_.resize(old + out.pos);
    if (ZSTD_isError(rc)) return errorf(Errc::Io, "zstd: {}", ZSTD_getErrorName(rc));
    if (rc == 0) break;
  }
  return {};
}

// Everything before the compressed stream: header, info, arrays, named refs.
std::string SplitStreamWriter::header(uint64_t stream_bytes, const std::string& named) const {
  size_t dsize = fsverity::hash_digest_size(alg_);
  uint64_t info_start = kHeaderSize, info_end = info_start + kInfoSize;
  uint64_t sr_start = info_end, sr_end = sr_start + stream_refs_.size() * dsize;
  uint64_t or_start = sr_end, or_end = or_start + object_refs_.size() * dsize;
  uint64_t nr_start = or_end, nr_end = nr_start + named.size();
  uint64_t st_start = nr_end, st_end = st_start + stream_bytes;

  std::string f;
  f.reserve(nr_end);
  f.append(kMagic, 11);
  f.push_back(0);                        // version
  f.append(2, '\0');                     // flags
  f.push_back(static_cast<char>(alg_));  // 1 sha256, 2 sha512 (the kernel's ids)
  f.push_back(static_cast<char>(kLgBlockSize));
  put_u64(f, info_start);
  put_u64(f, info_end);
  for (uint64_t v : {sr_start, sr_end, or_start, or_end, st_start, st_end, nr_start, nr_end,
                     content_type_, total_})
    put_u64(f, v);
  for (auto& d : stream_refs_) f.append(reinterpret_cast<const char*>(d.bytes().data()), dsize);
  for (auto& d : object_refs_) f.append(reinterpret_cast<const char*>(d.bytes().data()), dsize);
  f += named;
  return f;
}

namespace {
Result<std::string> named_section(const std::map<std::string, size_t>& named) {
  std::string names;
  for (auto& [name, idx] : named) names += fmt::format("{}:{}", idx, name) + '\0';
  return zstd_compress(names);
}
}  // namespace

Result<std::string> SplitStreamWriter::finish() {
  if (spilled()) return make_error(Errc::TooBig, "split stream too large to assemble in memory");
  spill_dirfd_ = -1;  // what is left stays in memory: the caller asked for it there
  CFS_TRY(end_stream());
  CFS_TRY_ASSIGN(std::string named, named_section(named_));
  std::string f = header(stream_.size(), named);
  f += stream_;
  return f;
}

Result<SplitStreamWriter::File> SplitStreamWriter::finish_file() {
  if (spill_dirfd_ < 0) return make_error(Errc::InvalidArgument, "split stream has no spill file");
  CFS_TRY(end_stream());
  CFS_TRY_ASSIGN(std::string named, named_section(named_));
  File out;
  CFS_TRY_ASSIGN(out.fd, unnamed_tmpfile(spill_dirfd_));
  fsverity::Params p;
  p.alg = alg_;
  fsverity::Hasher h(p);
  auto put = [&](std::string_view bytes) -> Status {
    h.update(bytes);
    out.size += bytes.size();
    return write_full(out.fd.get(), bytes);
  };
  CFS_TRY(put(header(spilled_bytes_ + stream_.size(), named)));
  // The spilled part, then what is still in memory.
  std::string buf(1 << 20, '\0');
  for (uint64_t off = 0; off < spilled_bytes_;) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), spilled_bytes_ - off));
    CFS_TRY_ASSIGN(size_t n, pread_full(spill_.get(),
                                        std::as_writable_bytes(std::span(buf.data(), want)), off));
    if (n != want) return make_error(Errc::Io, "split stream spill file shrank");
    CFS_TRY(put({buf.data(), n}));
    off += n;
  }
  CFS_TRY(put(stream_));
  stream_.clear();
  spill_.reset();
  if (::lseek(out.fd.get(), 0, SEEK_SET) < 0) return sys_error("lseek");
  out.digest = h.finish();
  return out;
}

// Where the file's bytes come from: memory, or a file read piece by piece.
struct SplitStreamReader::D {
  ZSTD_DStream* ds = ZSTD_createDStream();
  std::string mem;
  UniqueFd fd;
  uint64_t file_size = 0;
  std::vector<uint8_t> buf;  // a file's compressed input, a piece at a time
  ZSTD_inBuffer in{nullptr, 0, 0};
  uint64_t next = 0, end = 0;  // compressed bytes [next, end) not yet in `in`
  bool frame_open = false;
  ~D() { ZSTD_freeDStream(ds); }

  Status read_at(uint64_t off, std::span<uint8_t> out) {
    if (off > file_size || out.size() > file_size - off)
      return errorf(Errc::Corrupt, "split stream: {} bytes at offset {} beyond the {}-byte file",
                    out.size(), off, file_size);
    if (!fd) {
      std::memcpy(out.data(), mem.data() + off, out.size());
      return {};
    }
    CFS_TRY_ASSIGN(size_t n, pread_full(fd.get(), std::as_writable_bytes(out), off));
    if (n != out.size()) return make_error(Errc::Corrupt, "split stream: the file shrank");
    return {};
  }
  Result<std::string> read_string(uint64_t off, uint64_t len) {
    std::string s(static_cast<size_t>(len), '\0');
    CFS_TRY(read_at(off, {reinterpret_cast<uint8_t*>(s.data()), s.size()}));
    return s;
  }
  void start_stream(uint64_t begin, uint64_t stop) {
    if (!fd) {
      in = {mem.data() + begin, static_cast<size_t>(stop - begin), 0};
      next = end = stop;
    } else {
      next = begin;
      end = stop;
    }
  }
  // More compressed input once `in` is used up; false at the end.
  Result<bool> refill() {
    if (next == end) return false;
    buf.resize(static_cast<size_t>(std::min<uint64_t>(end - next, 128 << 10)));
    CFS_TRY(read_at(next, buf));
    next += buf.size();
    in = {buf.data(), buf.size(), 0};
    return true;
  }
  uint64_t compressed_left() const { return (end - next) + (in.size - in.pos); }
};

SplitStreamReader::SplitStreamReader(SplitStreamReader&&) noexcept = default;
SplitStreamReader& SplitStreamReader::operator=(SplitStreamReader&&) noexcept = default;
SplitStreamReader::~SplitStreamReader() = default;

Result<SplitStreamReader> SplitStreamReader::open(std::string file, fsverity::HashAlg alg,
                                                  std::optional<uint64_t> expected_type) {
  auto d = std::make_unique<D>();
  d->file_size = file.size();
  d->mem = std::move(file);
  return open_source(std::move(d), alg, expected_type);
}

Result<SplitStreamReader> SplitStreamReader::open(UniqueFd fd, fsverity::HashAlg alg,
                                                  std::optional<uint64_t> expected_type) {
  struct stat st;
  if (::fstat(fd.get(), &st) < 0) return sys_error("fstat on a split stream");
  if (!S_ISREG(st.st_mode)) return make_error(Errc::Corrupt, "split stream is not a regular file");
  auto d = std::make_unique<D>();
  d->file_size = static_cast<uint64_t>(st.st_size);
  d->fd = std::move(fd);
  return open_source(std::move(d), alg, expected_type);
}

Result<SplitStreamReader> SplitStreamReader::open_source(std::unique_ptr<D> d,
                                                         fsverity::HashAlg alg,
                                                         std::optional<uint64_t> expected_type) {
  const uint64_t size = d->file_size;
  if (size < kHeaderSize)
    return errorf(Errc::Corrupt, "split stream of {} bytes has no header", size);
  CFS_TRY_ASSIGN(std::string head, d->read_string(0, kHeaderSize));
  // New layout: magic at 0; old (bootc <= 1.15): info at 0, flags 16, magic 18.
  size_t version_at, alg_at, lg_at, info_at;
  if (std::memcmp(head.data(), kMagic, 11) == 0) {
    version_at = 11, alg_at = 14, lg_at = 15, info_at = 16;
  } else if (std::memcmp(head.data() + 18, kMagic, 11) == 0) {
    version_at = 29, alg_at = 30, lg_at = 31, info_at = 0;
  } else {
    return make_error(Errc::Corrupt, "not a split stream (bad magic)");
  }
  if (head[version_at] != 0)
    return errorf(Errc::Unsupported, "split stream version {}", static_cast<int>(head[version_at]));
  if (static_cast<uint8_t>(head[alg_at]) != static_cast<uint8_t>(alg))
    return errorf(Errc::Corrupt, "split stream uses fs-verity algorithm {} (repository: {})",
                  static_cast<int>(head[alg_at]), static_cast<int>(alg));
  if (head[lg_at] != kLgBlockSize)
    return errorf(Errc::Unsupported, "split stream block size 2^{}", static_cast<int>(head[lg_at]));
  auto range = [&](const std::string& s, size_t at,
                   const char* what) -> Result<std::pair<uint64_t, uint64_t>> {
    uint64_t b = get_u64(s, at), e = get_u64(s, at + 8);
    if (b > e || e > size)
      return errorf(Errc::Corrupt, "split stream {} range {}..{} outside the {}-byte file", what, b,
                    e, size);
    return std::pair{b, e};
  };
  CFS_TRY_ASSIGN(auto info, range(head, info_at, "info"));
  if (info.second - info.first < kInfoSize)
    return errorf(Errc::Corrupt, "split stream info of {} bytes", info.second - info.first);
  CFS_TRY_ASSIGN(std::string i, d->read_string(info.first, kInfoSize));
  CFS_TRY_ASSIGN(auto sr, range(i, 0, "stream refs"));
  CFS_TRY_ASSIGN(auto orr, range(i, 16, "object refs"));
  CFS_TRY_ASSIGN(auto st, range(i, 32, "stream"));
  CFS_TRY_ASSIGN(auto nr, range(i, 48, "named refs"));
  SplitStreamReader r;
  r.content_type_ = get_u64(i, 64);
  r.stream_size_ = get_u64(i, 72);
  if (expected_type && r.content_type_ != *expected_type)
    return errorf(Errc::Corrupt, "split stream has content type {:#x}, expected {:#x}",
                  r.content_type_, *expected_type);
  size_t dsize = fsverity::hash_digest_size(alg);
  auto digests = [&](std::pair<uint64_t, uint64_t> rg, std::vector<fsverity::Digest>& out,
                     const char* what) -> Status {
    if ((rg.second - rg.first) % dsize)
      return errorf(Errc::Corrupt, "split stream {} are not whole digests", what);
    std::vector<uint8_t> buf(std::min<uint64_t>(rg.second - rg.first, 4096 * dsize));
    for (uint64_t p = rg.first; p < rg.second;) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), rg.second - p));
      CFS_TRY(d->read_at(p, {buf.data(), n}));
      for (size_t k = 0; k < n; k += dsize) out.emplace_back(alg, std::span(buf.data() + k, dsize));
      p += n;
    }
    return {};
  };
  CFS_TRY(digests(sr, r.stream_refs_, "stream refs"));
  CFS_TRY(digests(orr, r.object_refs_, "object refs"));
  // Named refs: zstd("idx:name\0" ...), at most kMaxNamedRefs decompressed.
  constexpr size_t kMaxNamedRefs = 64 << 20;
  if (nr.second - nr.first > kMaxNamedRefs + (1 << 20))
    return errorf(Errc::TooBig, "split stream named refs of {} compressed bytes",
                  nr.second - nr.first);
  CFS_TRY_ASSIGN(std::string nz, d->read_string(nr.first, nr.second - nr.first));
  std::string names;
  if (!nz.empty()) {
    std::unique_ptr<ZSTD_DStream, size_t (*)(ZSTD_DStream*)> ds(ZSTD_createDStream(),
                                                                ZSTD_freeDStream);
    if (!ds) return make_error(Errc::Io, "zstd: cannot create a context");
    ZSTD_inBuffer in{nz.data(), nz.size(), 0};
    size_t rc = 1;
    while (in.pos < in.size || rc != 0) {
      char buf[4096];
      ZSTD_outBuffer out{buf, sizeof buf, 0};
      size_t before = in.pos;
      rc = ZSTD_decompressStream(ds.get(), &out, &in);
      if (ZSTD_isError(rc) || (out.pos == 0 && in.pos == before && rc != 0))
        return make_error(Errc::Corrupt, "split stream named refs: bad zstd data");
      names.append(buf, out.pos);
      if (names.size() > kMaxNamedRefs)
        return make_error(Errc::TooBig, "split stream named refs too large");
    }
  }
  size_t p = 0;
  while (p < names.size()) {
    size_t nul = names.find('\0', p);
    if (nul == std::string::npos) return make_error(Errc::Corrupt, "named refs: trailing junk");
    std::string_view rec(names.data() + p, nul - p);
    size_t colon = rec.find(':');
    if (colon == std::string_view::npos || colon == 0)
      return make_error(Errc::Corrupt, "named ref without an index");
    uint64_t idx = 0;
    for (char c : rec.substr(0, colon)) {
      if (c < '0' || c > '9' || idx > (1u << 30))
        return make_error(Errc::Corrupt, "named ref index");
      idx = idx * 10 + static_cast<uint64_t>(c - '0');
    }
    if (idx >= r.stream_refs_.size())
      return errorf(Errc::Corrupt, "named ref '{}' out of range", rec.substr(colon + 1));
    r.named_[std::string(rec.substr(colon + 1))] = r.stream_refs_[idx];
    p = nul + 1;
  }
  if (!d->ds) return make_error(Errc::Io, "zstd: cannot create a context");
  d->start_stream(st.first, st.second);
  r.d_ = std::move(d);
  return r;
}

std::optional<fsverity::Digest> SplitStreamReader::named_ref(const std::string& name) const {
  auto it = named_.find(name);
  if (it == named_.end()) return std::nullopt;
  return it->second;
}

Result<size_t> SplitStreamReader::decompress(std::span<uint8_t> out) {
  ZSTD_outBuffer ob{out.data(), out.size(), 0};
  while (ob.pos == 0) {
    if (d_->in.pos == d_->in.size) {
      CFS_TRY_ASSIGN(bool more, d_->refill());
      if (!more) {
        if (d_->frame_open) return make_error(Errc::Corrupt, "split stream: truncated zstd data");
        return 0;
      }
    }
    size_t rc = ZSTD_decompressStream(d_->ds, &ob, &d_->in);
    if (ZSTD_isError(rc)) return errorf(Errc::Corrupt, "split stream: {}", ZSTD_getErrorName(rc));
    d_->frame_open = rc != 0;
  }
  return ob.pos;
}

Status SplitStreamReader::read_exact(std::span<uint8_t> out) {
  size_t got = 0;
  while (got < out.size()) {
    CFS_TRY_ASSIGN(size_t n, decompress(out.subspan(got)));
    if (n == 0) return make_error(Errc::Corrupt, "split stream: unexpected end of data");
    got += n;
  }
  return {};
}

// Reads the next chunk header; false at the end of the stream.
Result<bool> SplitStreamReader::read_chunk_header() {
  uint8_t h[8];
  CFS_TRY_ASSIGN(size_t n, decompress({h, 8}));
  if (n == 0) {
    eof_ = true;
    return false;
  }
  if (n < 8) CFS_TRY(read_exact({h + n, 8 - n}));
  uint64_t u = 0;
  for (int i = 7; i >= 0; i--) u = u << 8 | h[i];
  int64_t v = static_cast<int64_t>(u);
  if (v < 0) {
    if (v == INT64_MIN) return make_error(Errc::Corrupt, "split stream: bad inline length");
    inline_left_ = static_cast<uint64_t>(-v);
    if (inline_left_ > stream_size_ - std::min(stream_size_, produced_))
      return make_error(Errc::Corrupt, "split stream: inline chunk beyond the stream size");
    // zstd expands a byte to at most 32 KiB (an RLE block: 4 bytes for
    // 128 KiB); the slack covers what the decoder holds already.
    uint64_t left = d_->compressed_left();
    if (left < (UINT64_MAX >> 17) && inline_left_ > (left << 16) + (8u << 20))
      return errorf(Errc::Corrupt,
                    "split stream: an inline chunk of {} bytes cannot come from the {} compressed "
                    "bytes left",
                    inline_left_, left);
  } else {
    if (static_cast<uint64_t>(v) >= object_refs_.size())
      return errorf(Errc::Corrupt, "split stream: object index {} out of range", v);
    pending_external_ = object_refs_[static_cast<size_t>(v)];
  }
  return true;
}

Result<std::optional<SplitStreamChunk>> SplitStreamReader::next_chunk() {
  if (inline_left_ == 0 && !pending_external_) {
    if (eof_) return std::optional<SplitStreamChunk>();
    CFS_TRY_ASSIGN(bool more, read_chunk_header());
    if (!more) return std::optional<SplitStreamChunk>();
  }
  SplitStreamChunk c;
  if (pending_external_) {
    c.external = true;
    c.object = *pending_external_;
    pending_external_.reset();
    return std::optional<SplitStreamChunk>(std::move(c));
  }
  size_t n = static_cast<size_t>(std::min<uint64_t>(inline_left_, kMaxInlinePiece));
  c.data.resize(n);
  CFS_TRY(read_exact({reinterpret_cast<uint8_t*>(c.data.data()), n}));
  produced_ += n;
  inline_left_ -= n;
  return std::optional<SplitStreamChunk>(std::move(c));
}

Result<size_t> SplitStreamReader::read_inline(std::span<uint8_t> buf) {
  if (buf.empty()) return 0;
  if (inline_left_ == 0) {
    if (pending_external_)
      return make_error(Errc::Corrupt, "split stream: an object where inline data belongs");
    if (eof_) return 0;
    CFS_TRY_ASSIGN(bool more, read_chunk_header());
    if (!more) return 0;
    if (pending_external_)
      return make_error(Errc::Corrupt, "split stream: an object where inline data belongs");
  }
  size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), inline_left_));
  CFS_TRY(read_exact(buf.first(n)));
  inline_left_ -= n;
  produced_ += n;
  return n;
}

Result<std::optional<fsverity::Digest>> SplitStreamReader::take_external() {
  if (inline_left_ == 0 && !pending_external_ && !eof_) {
    CFS_TRY_ASSIGN(bool more, read_chunk_header());
    if (!more) return std::optional<fsverity::Digest>();
  }
  if (!pending_external_) return std::optional<fsverity::Digest>();
  auto d = *pending_external_;
  pending_external_.reset();
  return std::optional<fsverity::Digest>(d);
}

}  // namespace cfs::repository
