// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/oci/decompress.h"

#include <zlib.h>
#include <zstd.h>

#include <vector>

namespace cfs::oci {
namespace {

constexpr size_t kInBuf = size_t{128} * 1024;

class GzipReader : public Reader {
 public:
  explicit GzipReader(Reader& in) : in_(in), buf_(kInBuf) {
    // 16 + MAX_WBITS: gzip wrapper only.
    ok_ = inflateInit2(&z_, 16 + MAX_WBITS) == Z_OK;
  }
  ~GzipReader() override {
    if (ok_) inflateEnd(&z_);
  }
  Result<size_t> read(std::span<uint8_t> out) override {
    if (!ok_) return make_error(Errc::Io, "gzip: cannot initialize zlib");
    if (out.empty()) return 0;
    for (;;) {
      if (z_.avail_in == 0 && !eof_) {
        CFS_TRY_ASSIGN(size_t n, in_.read(buf_));
        if (n == 0) eof_ = true;
        z_.next_in = buf_.data();
        z_.avail_in = static_cast<uInt>(n);
        offset_ += n;
      }
      if (member_done_) {
        if (z_.avail_in == 0 && eof_) return 0;
        // Another gzip member follows (concatenated gzip, as pigz writes).
        if (inflateReset(&z_) != Z_OK) return make_error(Errc::Io, "gzip: inflateReset failed");
        member_done_ = false;
      }
      if (z_.avail_in == 0 && eof_)
        return errorf(Errc::Corrupt, "gzip: stream truncated after {} compressed bytes", offset_);
      z_.next_out = out.data();
      z_.avail_out = static_cast<uInt>(std::min<size_t>(out.size(), 1u << 30));
      int rc = inflate(&z_, Z_NO_FLUSH);
      size_t produced = out.size() - z_.avail_out;
      if (rc == Z_STREAM_END)
        member_done_ = true;
      else if (rc != Z_OK && rc != Z_BUF_ERROR)
        return errorf(Errc::Corrupt, "gzip: {} (near compressed offset {})",
                      z_.msg ? z_.msg : "corrupt data", offset_ - z_.avail_in);
      if (produced > 0) return produced;
    }
  }

 private:
  Reader& in_;
  std::vector<uint8_t> buf_;
  z_stream z_{};
  bool ok_ = false;
  bool eof_ = false;
  bool member_done_ = false;
  uint64_t offset_ = 0;
};

class ZstdReader : public Reader {
 public:
  explicit ZstdReader(Reader& in) : in_(in), buf_(ZSTD_DStreamInSize()) {
    ds_ = ZSTD_createDStream();
    if (ds_) ZSTD_initDStream(ds_);
  }
  ~ZstdReader() override { ZSTD_freeDStream(ds_); }
  Result<size_t> read(std::span<uint8_t> out) override {
    if (!ds_) return make_error(Errc::Io, "zstd: cannot create a decompression context");
    if (out.empty()) return 0;
    for (;;) {
      if (in_pos_ == in_size_ && !eof_) {
        CFS_TRY_ASSIGN(size_t n, in_.read(buf_));
        if (n == 0) eof_ = true;
        in_pos_ = 0;
        in_size_ = n;
        offset_ += n;
      }
      if (in_pos_ == in_size_ && eof_) {
        if (frame_open_)
          return errorf(Errc::Corrupt, "zstd: stream truncated after {} compressed bytes", offset_);
        return 0;
      }
      ZSTD_inBuffer ib{buf_.data(), in_size_, in_pos_};
      ZSTD_outBuffer ob{out.data(), out.size(), 0};
      size_t rc = ZSTD_decompressStream(ds_, &ob, &ib);
      in_pos_ = ib.pos;
      if (ZSTD_isError(rc))
        return errorf(Errc::Corrupt, "zstd: {} (near compressed offset {})", ZSTD_getErrorName(rc),
                      offset_ - (in_size_ - in_pos_));
      frame_open_ = rc != 0;
      if (ob.pos > 0) return ob.pos;
    }
  }

 private:
  Reader& in_;
  std::vector<uint8_t> buf_;
  ZSTD_DStream* ds_ = nullptr;
  size_t in_pos_ = 0, in_size_ = 0;
  bool eof_ = false;
  bool frame_open_ = false;
  uint64_t offset_ = 0;
};

class PassReader : public Reader {
 public:
  explicit PassReader(Reader& in) : in_(in) {}
  Result<size_t> read(std::span<uint8_t> out) override { return in_.read(out); }

 private:
  Reader& in_;
};

}  // namespace

std::unique_ptr<Reader> decompressor(Reader& in, Compression c) {
  switch (c) {
    case Compression::Gzip: return std::make_unique<GzipReader>(in);
    case Compression::Zstd: return std::make_unique<ZstdReader>(in);
    case Compression::None: break;
  }
  return std::make_unique<PassReader>(in);
}

Result<Compression> layer_compression(std::string_view mt) {
  if (mt == "application/vnd.oci.image.layer.v1.tar" ||
      mt == "application/vnd.oci.image.layer.nondistributable.v1.tar" ||
      mt == "application/vnd.docker.image.rootfs.diff.tar")
    return Compression::None;
  if (mt == "application/vnd.oci.image.layer.v1.tar+gzip" ||
      mt == "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip" ||
      mt == "application/vnd.docker.image.rootfs.diff.tar.gzip" ||
      mt == "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip")
    return Compression::Gzip;
  if (mt == "application/vnd.oci.image.layer.v1.tar+zstd" ||
      mt == "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd")
    return Compression::Zstd;
  return errorf(Errc::Unsupported, "layer media type '{}' is not a tar layer we can read", mt);
}

Compression sniff_compression(std::span<const uint8_t> h) {
  if (h.size() >= 2 && h[0] == 0x1f && h[1] == 0x8b) return Compression::Gzip;
  if (h.size() >= 4 && h[0] == 0x28 && h[1] == 0xb5 && h[2] == 0x2f && h[3] == 0xfd)
    return Compression::Zstd;
  return Compression::None;
}

}  // namespace cfs::oci
