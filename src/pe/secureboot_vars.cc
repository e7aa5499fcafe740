// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/pe/secureboot_vars.h"

#include <fmt/format.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>

#include <ctime>
#include <memory>

namespace cfs::pe {
namespace {

constexpr std::string_view kX509Guid = "a5c059a1-94e4-4aa7-87b5-ab155c2bf072";
constexpr std::string_view kGlobalGuid = "8be4df61-93ca-11d2-aa0d-00e098032b8c";
constexpr std::string_view kSecurityDbGuid = "d719b2cb-3d3a-4596-a3bc-dad00e67656f";
constexpr std::string_view kPkcs7Guid = "4aafd29d-68df-49ee-8aa9-347d375665a7";
// NON_VOLATILE | BOOTSERVICE_ACCESS | RUNTIME_ACCESS | TIME_BASED_AUTHENTICATED_WRITE_ACCESS
constexpr uint32_t kAttributes = 0x01 | 0x02 | 0x04 | 0x20;
constexpr uint16_t kWinCertRevision = 0x0200, kWinCertTypeGuid = 0x0EF1;

void le16(std::vector<uint8_t>& o, uint16_t v) {
  o.push_back(uint8_t(v));
  o.push_back(uint8_t(v >> 8));
}
void le32(std::vector<uint8_t>& o, uint32_t v) {
  for (int i = 0; i < 4; ++i) o.push_back(uint8_t(v >> (8 * i)));
}
void append(std::vector<uint8_t>& o, std::span<const uint8_t> d) {
  o.insert(o.end(), d.begin(), d.end());
}

EfiGuid known(std::string_view s) { return *parse_guid(s); }

std::string openssl_err() {
  unsigned long e = ERR_get_error();
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return e ? buf : "unknown error";
}

void time_bytes(std::vector<uint8_t>& o, const EfiTime& t) {
  le16(o, t.year);
  for (uint8_t b : {t.month, t.day, t.hour, t.minute, t.second, uint8_t(0)}) o.push_back(b);
  le32(o, 0);      // Nanosecond
  le16(o, 0);      // TimeZone
  o.push_back(0);  // Daylight
  o.push_back(0);  // Pad2
}

}  // namespace

Result<EfiGuid> parse_guid(std::string_view s) {
  auto bad = [&] { return errorf(Errc::InvalidArgument, "'{}' is not a GUID", s); };
  if (s.size() != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-') return bad();
  std::vector<uint8_t> b;
  for (size_t i = 0; i < s.size();) {
    if (s[i] == '-') {
      ++i;
      continue;
    }
    auto nib = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    int h = nib(s[i]), l = nib(s[i + 1]);
    if (h < 0 || l < 0) return bad();
    b.push_back(uint8_t(h * 16 + l));
    i += 2;
  }
  // The text is big-endian; memory keeps Data1..Data3 little-endian.
  EfiGuid g{b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6]};
  std::copy(b.begin() + 8, b.end(), g.begin() + 8);
  return g;
}

std::string format_guid(const EfiGuid& g) {
  return fmt::format(
      "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:"
      "02x}"
      "{:02x}",
      g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6], g[8], g[9], g[10], g[11], g[12], g[13], g[14],
      g[15]);
}

EfiTime efi_time_from_unix(int64_t seconds) {
  std::time_t t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  return EfiTime{uint16_t(tm.tm_year + 1900), uint8_t(tm.tm_mon + 1), uint8_t(tm.tm_mday),
                 uint8_t(tm.tm_hour),         uint8_t(tm.tm_min),     uint8_t(tm.tm_sec)};
}

std::vector<uint8_t> x509_signature_list(std::span<const uint8_t> cert, const EfiGuid& owner) {
  std::vector<uint8_t> o;
  append(o, known(kX509Guid));
  uint32_t sig_size = 16 + uint32_t(cert.size());
  le32(o, 28 + sig_size);  // SignatureListSize: the 28-byte header and one signature
  le32(o, 0);              // SignatureHeaderSize
  le32(o, sig_size);
  append(o, owner);
  append(o, cert);
  return o;
}

Result<std::vector<uint8_t>> authenticated_payload(std::string_view var, const EfiTime& t,
                                                   std::span<const uint8_t> data) {
  std::string_view vendor;
  if (var == "PK" || var == "KEK")
    vendor = kGlobalGuid;
  else if (var == "db" || var == "dbx")
    vendor = kSecurityDbGuid;
  else
    return errorf(Errc::InvalidArgument, "'{}' is not PK, KEK, db or dbx", var);
  std::vector<uint8_t> o;
  for (char c : var) le16(o, uint16_t(uint8_t(c)));
  append(o, known(vendor));
  le32(o, kAttributes);
  time_bytes(o, t);
  append(o, data);
  return o;
}

Result<std::vector<uint8_t>> authenticated_variable(std::string_view var, const EfiTime& t,
                                                    std::span<const uint8_t> data,
                                                    const SigningKey& key) {
  CFS_TRY_ASSIGN(auto payload, authenticated_payload(var, t, data));
  std::unique_ptr<BIO, decltype(&BIO_free)> in(BIO_new_mem_buf(payload.data(), int(payload.size())),
                                               BIO_free);
  if (!in) return errorf(Errc::Io, "BIO: {}", openssl_err());
  // Detached, binary, no signed attributes: what the UEFI spec's
  // authenticated variables carry (and sign-efi-sig-list makes).
  std::unique_ptr<PKCS7, decltype(&PKCS7_free)> p7(
      PKCS7_sign(static_cast<X509*>(key.cert_handle()), static_cast<EVP_PKEY*>(key.key_handle()),
                 nullptr, in.get(), PKCS7_BINARY | PKCS7_DETACHED | PKCS7_NOATTR),
      PKCS7_free);
  if (!p7) return errorf(Errc::Io, "PKCS#7 signing of {}: {}", var, openssl_err());
  // CertData is the SignedData itself, without the ContentInfo around it.
  unsigned char* der = nullptr;
  int n = i2d_PKCS7_SIGNED(p7->d.sign, &der);
  if (n <= 0) return errorf(Errc::Io, "encoding the PKCS#7 of {}: {}", var, openssl_err());
  std::unique_ptr<unsigned char, void (*)(unsigned char*)> owned(
      der, [](unsigned char* p) { OPENSSL_free(p); });
  std::vector<uint8_t> o;
  time_bytes(o, t);
  le32(o, uint32_t(4 + 2 + 2 + 16 + n));  // dwLength: the whole WIN_CERTIFICATE_UEFI_GUID
  le16(o, kWinCertRevision);
  le16(o, kWinCertTypeGuid);
  append(o, known(kPkcs7Guid));
  append(o, std::span<const uint8_t>(der, size_t(n)));
  append(o, data);
  return o;
}

Result<std::vector<uint8_t>> certificate_der(const SigningKey& key) {
  unsigned char* der = nullptr;
  int n = i2d_X509(static_cast<X509*>(key.cert_handle()), &der);
  if (n <= 0) return errorf(Errc::Io, "encoding the certificate: {}", openssl_err());
  std::vector<uint8_t> o(der, der + n);
  OPENSSL_free(der);
  return o;
}

}  // namespace cfs::pe
