// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/oci/io.h"

#include <openssl/evp.h>

#include <cerrno>
#include <cstring>

#include "composefs-cpp/base/hex.h"

namespace cfs::oci {

struct Sha256::Ctx {
  EVP_MD_CTX* p = EVP_MD_CTX_new();
  ~Ctx() { EVP_MD_CTX_free(p); }
};

Sha256::Sha256() : ctx_(std::make_unique<Ctx>()) {
  if (!ctx_->p) throw std::bad_alloc();
  EVP_DigestInit_ex(ctx_->p, EVP_sha256(), nullptr);
}
Sha256::~Sha256() = default;
void Sha256::update(std::span<const uint8_t> data) {
  EVP_DigestUpdate(ctx_->p, data.data(), data.size());
}
std::string Sha256::finish() {
  uint8_t out[32];
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx_->p, out, &len);
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
