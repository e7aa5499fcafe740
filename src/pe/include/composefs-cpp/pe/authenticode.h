// SPDX-License-Identifier: Apache-2.0
// Authenticode for EFI images (Secure Boot): the image hash over sbsign's
// regions, PKCS#7 SignedData carrying an SpcIndirectDataContent, and the
// certificate table it is appended in.  Signatures are deterministic (no
// signing time), so a signed UKI is reproducible from the same inputs.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "composefs-cpp/base/error.h"

namespace cfs::pe {

using Digest256 = std::array<uint8_t, 32>;

// The Authenticode SHA-256 of a PE image as sbsign computes it: the headers
// without CheckSum and DataDirectory[4], every section with raw data in
// file order, the bytes after them (excluding the certificate table), the
// whole padded with zeros to 8 bytes.  What `sbsign --hash-only` prints and
// firmware compares with the signed digest.
Result<Digest256> authenticode_sha256(std::span<const uint8_t> image);

// A signing key and its certificate, loaded from PEM files (ukify's
// --secureboot-private-key / --secureboot-certificate).
class SigningKey {
 public:
  static Result<SigningKey> load(const std::string& key_pem_path, const std::string& cert_pem_path);
  static Result<SigningKey> from_pem(std::string_view key_pem, std::string_view cert_pem);
  // The OpenSSL key and certificate, opaque here: OpenSSL stays out of the
  // public headers (authenticode.cc casts them back).
  void* key_handle() const { return key_.get(); }
  void* cert_handle() const { return cert_.get(); }

 private:
  std::shared_ptr<void> key_;
  std::shared_ptr<void> cert_;
};

// DER PKCS#7 SignedData over SpcIndirectDataContent{SpcPeImageData, SHA-256
// `digest`}, signed attributes contentType and messageDigest, the signer's
// certificate included.
Result<std::vector<uint8_t>> authenticode_signature(const Digest256& digest, const SigningKey& key);

// `image` with one more signature: padded to 8 bytes, a WIN_CERTIFICATE
// (revision 0x0200, PKCS_SIGNED_DATA, 8-byte aligned) appended after any
// existing ones, DataDirectory[4] and the PE CheckSum updated.
Result<std::vector<uint8_t>> sign_image(std::span<const uint8_t> image, const SigningKey& key);

// `image` without its certificate table (DataDirectory[4] zeroed, the
// table cut off, CheckSum updated).
Result<std::vector<uint8_t>> strip_signatures(std::span<const uint8_t> image);

// Checks the signatures of `image` as firmware does: one whose
// SpcIndirectDataContent digest equals the image's Authenticode hash and
// whose PKCS#7 verifies against `trusted` (a PEM certificate; no time check,
// as sbverify and firmware) is enough.  Returns how many verify; none (or
// an unsigned image) is an error saying why the first one failed.
Result<size_t> verify_image(std::span<const uint8_t> image, std::string_view trusted_cert_pem);

}  // namespace cfs::pe
