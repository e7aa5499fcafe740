// SPDX-License-Identifier: Apache-2.0
#include "oci/io.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "base/hex.h"

namespace cfs::oci {

Result<size_t> read_up_to(Reader& r, std::span<uint8_t> buf) {
  size_t got = 0;
  while (got < buf.size()) {
    CFS_TRY_ASSIGN(size_t n, r.read(buf.subspan(got)));
    if (n == 0) break;
    got += n;
  }
  return got;
}

Result<std::string> read_all(Reader& r, size_t max_size, std::string_view what) {
  std::string out;
  uint8_t buf[65536];
  for (;;) {
    CFS_TRY_ASSIGN(size_t n, r.read(buf));
    if (n == 0) return out;
    if (out.size() + n > max_size)
      return errorf(Errc::TooBig, "{} is larger than {} bytes", what, max_size);
    out.append(reinterpret_cast<const char*>(buf), n);
  }
}

Result<size_t> FdReader::read(std::span<uint8_t> buf) {
  for (;;) {
    ssize_t n = ::read(fd_, buf.data(), buf.size());
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != EINTR) return sys_error("read");
  }
}

Result<bool> FdReader::skip(uint64_t n) {
  struct stat st;
  if (::fstat(fd_, &st) < 0 || !S_ISREG(st.st_mode)) return false;
  off_t pos = ::lseek(fd_, 0, SEEK_CUR);
  if (pos < 0) return false;
  // Never seek past the end: a truncated archive must read as truncated.
  if (static_cast<uint64_t>(st.st_size - pos) < n) return false;
  if (::lseek(fd_, static_cast<off_t>(n), SEEK_CUR) < 0) return sys_error("lseek");
  return true;
}

Result<size_t> RangeReader::read(std::span<uint8_t> buf) {
  if (left_ == 0 || buf.empty()) return 0;
  size_t want = static_cast<size_t>(std::min<uint64_t>(left_, buf.size()));
  for (;;) {
    ssize_t n = ::pread(fd_, buf.data(), want, static_cast<off_t>(pos_));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_error("pread");
    if (n == 0)
      return errorf(Errc::Corrupt, "file ends at offset {} inside a member {} bytes short", pos_,
                    left_);
    pos_ += static_cast<uint64_t>(n);
    left_ -= static_cast<uint64_t>(n);
    return static_cast<size_t>(n);
  }
}

Result<size_t> MemReader::read(std::span<uint8_t> buf) {
  size_t n = std::min(buf.size(), data_.size());
  std::memcpy(buf.data(), data_.data(), n);
  data_.remove_prefix(n);
  return n;
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
Sha256::~Sha256() { EVP_MD_CTX_free(ctx_); }
void Sha256::update(std::span<const uint8_t> data) {
  EVP_DigestUpdate(ctx_, data.data(), data.size());
}
std::string Sha256::finish() {
  uint8_t out[32];
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx_, out, &len);
  return "sha256:" + to_hex({out, 32});
}

std::string sha256_digest(std::string_view data) {
  Sha256 h;
  h.update(data);
  return h.finish();
}

Result<size_t> VerifyingReader::read(std::span<uint8_t> buf) {
  if (done_) return 0;
  if (expected_size_ >= 0) {
    // Ask for one byte beyond the expected end to notice a longer stream.
    uint64_t room = static_cast<uint64_t>(expected_size_) - count_ + 1;
    if (buf.size() > room) buf = buf.first(static_cast<size_t>(room));
  }
  CFS_TRY_ASSIGN(size_t n, in_.read(buf));
  if (n == 0) {
    done_ = true;
    digest_ = sha_.finish();
    if (expected_size_ >= 0 && count_ != static_cast<uint64_t>(expected_size_))
      return errorf(Errc::Corrupt, "{}: got {} bytes, expected {}", what_, count_, expected_size_);
    if (!expected_digest_.empty() && digest_ != expected_digest_)
      return errorf(Errc::VerityMismatch, "{}: digest mismatch: expected {}, got {}", what_,
                    expected_digest_, digest_);
    return 0;
  }
  count_ += n;
  if (expected_size_ >= 0 && count_ > static_cast<uint64_t>(expected_size_))
    return errorf(Errc::Corrupt, "{}: more than the expected {} bytes", what_, expected_size_);
  sha_.update(buf.first(n));
  return n;
}

Result<size_t> LimitReader::read(std::span<uint8_t> buf) {
  // Ask for one byte beyond the limit to tell a longer stream from one that
  // ends there.
  uint64_t room = limit_ - std::min(limit_, count_) + 1;
  if (buf.size() > room) buf = buf.first(static_cast<size_t>(room));
  CFS_TRY_ASSIGN(size_t n, in_.read(buf));
  count_ += n;
  if (count_ > limit_)
    return errorf(Errc::TooBig, "{}: more than {} bytes (the limit)", what_, limit_);
  return n;
}

Status check_digest(std::string_view digest) {
  if (!digest.starts_with("sha256:"))
    return errorf(Errc::Unsupported, "digest '{}': only sha256 digests are supported", digest);
  std::string_view hex = digest.substr(7);
  if (hex.size() != 64) return errorf(Errc::Corrupt, "digest '{}': not 64 hex digits", digest);
  for (char c : hex)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
      return errorf(Errc::Corrupt, "digest '{}': not lowercase hex", digest);
  return {};
}

}  // namespace cfs::oci
