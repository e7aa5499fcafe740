// SPDX-License-Identifier: Apache-2.0
#include "oci/splitstream.h"

#include <zstd.h>

#include <cstring>

namespace cfs::oci {
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

SplitStreamWriter::SplitStreamWriter(fsverity::HashAlg alg, uint64_t ct)
    : alg_(alg), content_type_(ct), z_(std::make_unique<Z>()) {
  ZSTD_CCtx_setParameter(z_->cctx, ZSTD_c_compressionLevel, kZstdLevel);
}
SplitStreamWriter::~SplitStreamWriter() = default;

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
  return {};
}

Status SplitStreamWriter::write_inline(std::span<const uint8_t> data) {
  inline_.append(reinterpret_cast<const char*>(data.data()), data.size());
  total_ += data.size();
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

Result<std::string> SplitStreamWriter::finish() {
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
  std::string names;
  for (auto& [name, idx] : named_) names += fmt::format("{}:{}", idx, name) + '\0';
  CFS_TRY_ASSIGN(std::string named, zstd_compress(names));

  size_t dsize = fsverity::hash_digest_size(alg_);
  uint64_t info_start = kHeaderSize, info_end = info_start + kInfoSize;
  uint64_t sr_start = info_end, sr_end = sr_start + stream_refs_.size() * dsize;
  uint64_t or_start = sr_end, or_end = or_start + object_refs_.size() * dsize;
  uint64_t nr_start = or_end, nr_end = nr_start + named.size();
  uint64_t st_start = nr_end, st_end = st_start + stream_.size();

  std::string f;
  f.reserve(st_end);
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
  f += stream_;
  return f;
}

struct SplitStreamReader::D {
  ZSTD_DStream* ds = ZSTD_createDStream();
  ZSTD_inBuffer in{nullptr, 0, 0};
  bool frame_open = false;
  ~D() { ZSTD_freeDStream(ds); }
};

SplitStreamReader::SplitStreamReader(SplitStreamReader&&) noexcept = default;
SplitStreamReader& SplitStreamReader::operator=(SplitStreamReader&&) noexcept = default;
SplitStreamReader::~SplitStreamReader() = default;

Result<SplitStreamReader> SplitStreamReader::open(std::string file, fsverity::HashAlg alg,
                                                  std::optional<uint64_t> expected_type) {
  if (file.size() < kHeaderSize)
    return errorf(Errc::Corrupt, "split stream of {} bytes has no header", file.size());
  // New layout: magic at 0; old (bootc <= 1.15): info at 0, flags 16, magic 18.
  size_t magic_at, version_at, alg_at, lg_at, info_at;
  if (std::memcmp(file.data(), kMagic, 11) == 0) {
    magic_at = 0, version_at = 11, alg_at = 14, lg_at = 15, info_at = 16;
  } else if (std::memcmp(file.data() + 18, kMagic, 11) == 0) {
    magic_at = 18, version_at = 29, alg_at = 30, lg_at = 31, info_at = 0;
  } else {
    return make_error(Errc::Corrupt, "not a split stream (bad magic)");
  }
  (void)magic_at;
  if (file[version_at] != 0)
    return errorf(Errc::Unsupported, "split stream version {}", static_cast<int>(file[version_at]));
  if (static_cast<uint8_t>(file[alg_at]) != static_cast<uint8_t>(alg))
    return errorf(Errc::Corrupt, "split stream uses fs-verity algorithm {} (repository: {})",
                  static_cast<int>(file[alg_at]), static_cast<int>(alg));
  if (file[lg_at] != kLgBlockSize)
    return errorf(Errc::Unsupported, "split stream block size 2^{}", static_cast<int>(file[lg_at]));
  auto range = [&](size_t at, const char* what) -> Result<std::pair<uint64_t, uint64_t>> {
    uint64_t s = get_u64(file, at), e = get_u64(file, at + 8);
    if (s > e || e > file.size())
      return errorf(Errc::Corrupt, "split stream {} range {}..{} outside the {}-byte file", what, s,
                    e, file.size());
    return std::pair{s, e};
  };
  CFS_TRY_ASSIGN(auto info, range(info_at, "info"));
  if (info.second - info.first < kInfoSize)
    return errorf(Errc::Corrupt, "split stream info of {} bytes", info.second - info.first);
  size_t i0 = info.first;
  CFS_TRY_ASSIGN(auto sr, range(i0, "stream refs"));
  CFS_TRY_ASSIGN(auto orr, range(i0 + 16, "object refs"));
  CFS_TRY_ASSIGN(auto st, range(i0 + 32, "stream"));
  CFS_TRY_ASSIGN(auto nr, range(i0 + 48, "named refs"));
  SplitStreamReader r;
  r.content_type_ = get_u64(file, i0 + 64);
  r.stream_size_ = get_u64(file, i0 + 72);
  if (expected_type && r.content_type_ != *expected_type)
    return errorf(Errc::Corrupt, "split stream has content type {:#x}, expected {:#x}",
                  r.content_type_, *expected_type);
  size_t dsize = fsverity::hash_digest_size(alg);
  auto digests = [&](std::pair<uint64_t, uint64_t> rg, std::vector<fsverity::Digest>& out,
                     const char* what) -> Status {
    if ((rg.second - rg.first) % dsize)
      return errorf(Errc::Corrupt, "split stream {} are not whole digests", what);
    for (uint64_t p = rg.first; p < rg.second; p += dsize)
      out.emplace_back(alg, std::span(reinterpret_cast<const uint8_t*>(file.data() + p), dsize));
    return {};
  };
  CFS_TRY(digests(sr, r.stream_refs_, "stream refs"));
  CFS_TRY(digests(orr, r.object_refs_, "object refs"));
  // Named refs: zstd("idx:name\0" ...).
  std::string_view nz(file.data() + nr.first, nr.second - nr.first);
  std::string names;
  if (!nz.empty()) {
    ZSTD_DStream* ds = ZSTD_createDStream();
    ZSTD_inBuffer in{nz.data(), nz.size(), 0};
    size_t rc = 1;
    while (in.pos < in.size || rc != 0) {
      char buf[4096];
      ZSTD_outBuffer out{buf, sizeof buf, 0};
      size_t before = in.pos;
      rc = ZSTD_decompressStream(ds, &out, &in);
      if (ZSTD_isError(rc) || (out.pos == 0 && in.pos == before && rc != 0)) {
        ZSTD_freeDStream(ds);
        return make_error(Errc::Corrupt, "split stream named refs: bad zstd data");
      }
      names.append(buf, out.pos);
      if (names.size() > (64u << 20)) {
        ZSTD_freeDStream(ds);
        return make_error(Errc::TooBig, "split stream named refs too large");
      }
    }
    ZSTD_freeDStream(ds);
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
  r.d_ = std::make_unique<D>();
  if (!r.d_->ds) return make_error(Errc::Io, "zstd: cannot create a context");
  r.file_ = std::move(file);
  r.d_->in = {r.file_.data() + st.first, st.second - st.first, 0};
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
      if (d_->frame_open) return make_error(Errc::Corrupt, "split stream: truncated zstd data");
      return 0;
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
  c.data.resize(inline_left_);
  CFS_TRY(read_exact({reinterpret_cast<uint8_t*>(c.data.data()), c.data.size()}));
  produced_ += inline_left_;
  inline_left_ = 0;
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

}  // namespace cfs::oci
