// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/pe/authenticode.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "composefs-cpp/base/fd.h"
#include "composefs-cpp/pe/reader.h"

namespace cfs::pe {

namespace {

constexpr const char* kSpcIndirectDataOid = "1.3.6.1.4.1.311.2.1.4";

std::string openssl_error() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    out += out.empty() ? "" : "; ";
    out += buf;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

// DER: tag, definite length, content.
std::vector<uint8_t> der(uint8_t tag, std::span<const uint8_t> content) {
  std::vector<uint8_t> out{tag};
  size_t n = content.size();
  if (n < 0x80) {
    out.push_back(uint8_t(n));
  } else {
    uint8_t len[8];
    int k = 0;
    for (size_t v = n; v; v >>= 8) len[k++] = uint8_t(v);
    out.push_back(uint8_t(0x80 | k));
    while (k) out.push_back(len[--k]);
  }
  out.insert(out.end(), content.begin(), content.end());
  return out;
}
std::vector<uint8_t> cat(std::initializer_list<std::vector<uint8_t>> parts) {
  std::vector<uint8_t> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// SpcIndirectDataContent for a PE image with this SHA-256 (Authenticode).
std::vector<uint8_t> spc_indirect_data(const Digest256& digest) {
  // OIDs as DER content bytes.
  static const uint8_t kPeImageDataOid[] = {0x2b, 0x06, 0x01, 0x04, 0x01, 0x82,
                                            0x37, 0x02, 0x01, 0x0f};  // 1.3.6.1.4.1.311.2.1.15
  static const uint8_t kSha256Oid[] = {0x60, 0x86, 0x48, 0x01, 0x65,
                                       0x03, 0x04, 0x02, 0x01};  // 2.16.840.1.101.3.4.2.1
  // SpcString.unicode [0] IMPLICIT BMPString "<<<Obsolete>>>"
  std::vector<uint8_t> obsolete;
  for (char c : std::string_view("<<<Obsolete>>>")) {
    obsolete.push_back(0);
    obsolete.push_back(uint8_t(c));
  }
  auto spc_string = der(0x80, obsolete);
  auto spc_link = der(0xa2, spc_string);  // SpcLink.file [2] EXPLICIT SpcString
  auto pe_image_data =
      der(0x30, cat({der(0x03, std::vector<uint8_t>{0x00}),  // flags: empty BIT STRING
                     der(0xa0, spc_link)}));                 // file [0] EXPLICIT SpcLink
  auto data = der(0x30, cat({der(0x06, kPeImageDataOid), pe_image_data}));
  auto alg = der(0x30, cat({der(0x06, kSha256Oid), der(0x05, {})}));
  auto digest_info = der(0x30, cat({alg, der(0x04, digest)}));
  return der(0x30, cat({data, digest_info}));
}

// The content octets of a DER TLV at the start of `d` (bounds-checked).
std::optional<std::span<const uint8_t>> der_contents(std::span<const uint8_t> d, uint8_t* tag) {
  if (d.size() < 2) return std::nullopt;
  *tag = d[0];
  size_t len = d[1], hl = 2;
  if (len & 0x80) {
    size_t k = len & 0x7f;
    if (k == 0 || k > 4 || d.size() < 2 + k) return std::nullopt;
    len = 0;
    for (size_t i = 0; i < k; i++) len = len << 8 | d[2 + i];
    hl += k;
  }
  if (len > d.size() - hl) return std::nullopt;
  return d.subspan(hl, len);
}

uint64_t align8(uint64_t v) { return (v + 7) & ~uint64_t(7); }

void store32(std::vector<uint8_t>& b, size_t off, uint32_t v) {
  for (int i = 0; i < 4; i++) b[off + i] = uint8_t(v >> (8 * i));
}

}  // namespace

Result<Digest256> authenticode_sha256(std::span<const uint8_t> image) {
  CFS_TRY_ASSIGN(PeFile pe, PeFile::parse(image));
  auto dd = pe.data_directory_offset(kDirSecurity);
  if (!dd)
    return errorf(Errc::Corrupt, "NumberOfRvaAndSizes is {}: no certificate table entry to sign",
                  pe.number_of_rva_and_sizes());
  struct Region {
    uint64_t start, size;
  };
  std::vector<Region> regions;
  uint64_t cs = pe.checksum_offset();
  regions.push_back({0, cs});
  regions.push_back({cs + 4, *dd - (cs + 4)});
  regions.push_back({*dd + 8, pe.size_of_headers() - (*dd + 8)});
  uint64_t bytes = pe.size_of_headers();
  std::vector<Region> secs;
  for (const auto& s : pe.sections())
    if (s.size_of_raw_data) secs.push_back({s.pointer_to_raw_data, s.size_of_raw_data});
  std::stable_sort(secs.begin(), secs.end(),
                   [](const Region& a, const Region& b) { return a.start < b.start; });
  for (const auto& r : secs) {
    regions.push_back(r);
    bytes += r.size;
  }
  const uint64_t cert_size = pe.data_directory(kDirSecurity).Size;
  // sbsign: whatever the regions do not account for, up to the certificate
  // table, is "end junk" taken from where the counted bytes end; the data
  // is then padded with zeros to 8 bytes and hashed with the padding.
  const size_t fixed = regions.size();
  auto add_end_junk = [&](uint64_t size) {
    regions.resize(fixed);
    if (bytes + cert_size < size) regions.push_back({bytes, size - bytes - cert_size});
  };
  add_end_junk(image.size());
  std::vector<uint8_t> padded;
  std::span<const uint8_t> buf = image;
  uint64_t data_size = align8(regions.back().start + regions.back().size);
  if (data_size > image.size()) {
    padded.assign(image.begin(), image.end());
    padded.resize(data_size, 0);
    buf = padded;
    add_end_junk(data_size);
  }
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || !EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr))
    return make_error(Errc::Io, "cannot start SHA-256");
  for (const auto& r : regions) {
    if (r.start + r.size > buf.size())
      return errorf(Errc::Corrupt,
                    "Authenticode region [0x{:x}, 0x{:x}) is past the end of the file", r.start,
                    r.start + r.size);
    EVP_DigestUpdate(ctx.get(), buf.data() + r.start, r.size);
  }
  Digest256 out;
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx.get(), out.data(), &len);
  return out;
}

Result<SigningKey> SigningKey::from_pem(std::string_view key_pem, std::string_view cert_pem) {
  SigningKey k;
  std::unique_ptr<BIO, decltype(&BIO_free)> kb(BIO_new_mem_buf(key_pem.data(), int(key_pem.size())),
                                               BIO_free);
  // No passphrase callback: an encrypted key fails here instead of prompting.
  EVP_PKEY* key = PEM_read_bio_PrivateKey(
      kb.get(), nullptr, [](char*, int, int, void*) { return -1; }, nullptr);
  if (!key) {
    bool encrypted = key_pem.find("ENCRYPTED") != std::string_view::npos;
    ERR_clear_error();
    return make_error(Errc::InvalidArgument,
                      encrypted
                          ? "the private key is encrypted: decrypt it first (openssl pkey -in "
                            "KEY -out PLAIN.key)"
                          : "not a PEM private key");
  }
  k.key_.reset(key, EVP_PKEY_free);
  std::unique_ptr<BIO, decltype(&BIO_free)> cb(
      BIO_new_mem_buf(cert_pem.data(), int(cert_pem.size())), BIO_free);
  X509* cert = PEM_read_bio_X509(cb.get(), nullptr, nullptr, nullptr);
  if (!cert) {
    ERR_clear_error();
    return make_error(Errc::InvalidArgument, "not a PEM X.509 certificate");
  }
  k.cert_.reset(cert, X509_free);
  if (X509_check_private_key(cert, key) != 1) {
    ERR_clear_error();
    return make_error(Errc::InvalidArgument, "the private key does not belong to the certificate");
  }
  return k;
}

Result<SigningKey> SigningKey::load(const std::string& key_path, const std::string& cert_path) {
  auto key = read_file(AT_FDCWD, key_path, 1 << 20);
  if (!key) return tl::unexpected(std::move(key.error()).context(key_path));
  auto cert = read_file(AT_FDCWD, cert_path, 1 << 20);
  if (!cert) return tl::unexpected(std::move(cert.error()).context(cert_path));
  auto k = from_pem(*key, *cert);
  if (!k) return tl::unexpected(std::move(k.error()).context(key_path + ", " + cert_path));
  return k;
}

Result<std::vector<uint8_t>> authenticode_signature(const Digest256& digest,
                                                    const SigningKey& key) {
  std::vector<uint8_t> idc = spc_indirect_data(digest);
  std::unique_ptr<PKCS7, decltype(&PKCS7_free)> p7(PKCS7_new(), PKCS7_free);
  auto fail = [](const char* what) {
    return errorf(Errc::Io, "PKCS#7 signing failed ({}): {}", what, openssl_error());
  };
  if (!p7 || !PKCS7_set_type(p7.get(), NID_pkcs7_signed)) return fail("SignedData");
  PKCS7_SIGNER_INFO* si =
      PKCS7_add_signature(p7.get(), static_cast<X509*>(key.cert_handle()),
                          static_cast<EVP_PKEY*>(key.key_handle()), EVP_sha256());
  if (!si) return fail("signer");
  if (!PKCS7_add_certificate(p7.get(), static_cast<X509*>(key.cert_handle())))
    return fail("certificate");

  // contentInfo: SPC_INDIRECT_DATA_OBJID, [0] EXPLICIT SpcIndirectDataContent
  // (the SEQUENCE itself, not an OCTET STRING as plain PKCS#7 data would be).
  ASN1_OBJECT* spc = OBJ_txt2obj(kSpcIndirectDataOid, 1);
  PKCS7* inner = PKCS7_new();
  ASN1_TYPE* value = ASN1_TYPE_new();
  ASN1_STRING* seq = ASN1_STRING_new();
  if (!spc || !inner || !value || !seq || !ASN1_STRING_set(seq, idc.data(), int(idc.size()))) {
    ASN1_OBJECT_free(spc);
    PKCS7_free(inner);
    ASN1_TYPE_free(value);
    ASN1_STRING_free(seq);
    return fail("content");
  }
  ASN1_TYPE_set(value, V_ASN1_SEQUENCE, seq);
  inner->type = spc;
  inner->d.other = value;
  if (!PKCS7_set_content(p7.get(), inner)) {
    PKCS7_free(inner);
    return fail("content");
  }

  // Signed attributes: contentType, and messageDigest over the content's
  // value octets (Authenticode: without the SEQUENCE's tag and length).
  uint8_t tag;
  auto body = der_contents(idc, &tag);
  uint8_t md[32];
  unsigned mdlen = 0;
  EVP_Digest(body->data(), body->size(), md, &mdlen, EVP_sha256(), nullptr);
  ASN1_OCTET_STRING* os = ASN1_OCTET_STRING_new();
  if (!os || !ASN1_OCTET_STRING_set(os, md, int(mdlen))) {
    ASN1_OCTET_STRING_free(os);
    return fail("messageDigest");
  }
  if (!PKCS7_add_signed_attribute(si, NID_pkcs9_contentType, V_ASN1_OBJECT,
                                  OBJ_txt2obj(kSpcIndirectDataOid, 1)) ||
      !PKCS7_add_signed_attribute(si, NID_pkcs9_messageDigest, V_ASN1_OCTET_STRING, os))
    return fail("attributes");
  if (PKCS7_SIGNER_INFO_sign(si) <= 0) return fail("signature");

  int n = i2d_PKCS7(p7.get(), nullptr);
  if (n <= 0) return fail("encoding");
  std::vector<uint8_t> out(static_cast<size_t>(n));
  unsigned char* p = out.data();
  i2d_PKCS7(p7.get(), &p);
  return out;
}

Result<std::vector<uint8_t>> sign_image(std::span<const uint8_t> image, const SigningKey& key) {
  CFS_TRY_ASSIGN(PeFile pe, PeFile::parse(image));
  CFS_TRY_ASSIGN(Digest256 digest, authenticode_sha256(image));
  CFS_TRY_ASSIGN(std::vector<uint8_t> sig, authenticode_signature(digest, key));
  auto dd = *pe.data_directory_offset(kDirSecurity);  // authenticode_sha256 checked it
  DataDirectory sec = pe.data_directory(kDirSecurity);

  // The image proper, zero-padded to 8 bytes (hashed so), then the
  // existing certificate table, then the new entry.
  std::vector<uint8_t> out(image.begin(), image.begin() + pe.image_end());
  size_t table = align8(out.size());
  out.resize(table, 0);
  if (sec.Size) {
    if (pe.image_end() != table)
      return make_error(Errc::Corrupt, "the certificate table does not start 8-byte aligned");
    auto old = image.subspan(sec.VirtualAddress, sec.Size);
    out.insert(out.end(), old.begin(), old.end());
    out.resize(align8(out.size()), 0);
  }
  size_t entry = out.size();
  uint32_t len = uint32_t(sizeof(WinCertificate) + sig.size());
  out.resize(entry + sizeof(WinCertificate), 0);
  store32(out, entry, len);
  out[entry + 4] = uint8_t(kWinCertRevision2);
  out[entry + 5] = uint8_t(kWinCertRevision2 >> 8);
  out[entry + 6] = uint8_t(kWinCertTypePkcsSignedData);
  out[entry + 7] = 0;
  out.insert(out.end(), sig.begin(), sig.end());
  out.resize(align8(out.size()), 0);
  if (out.size() > 0xffffffffull) return make_error(Errc::TooBig, "the signed image is over 4 GiB");
  store32(out, dd, uint32_t(table));
  store32(out, dd + 4, uint32_t(out.size() - table));
  store32(out, pe.checksum_offset(), pe_checksum(out, pe.checksum_offset()));
  return out;
}

Result<std::vector<uint8_t>> strip_signatures(std::span<const uint8_t> image) {
  CFS_TRY_ASSIGN(PeFile pe, PeFile::parse(image));
  std::vector<uint8_t> out(image.begin(), image.begin() + pe.image_end());
  if (auto dd = pe.data_directory_offset(kDirSecurity)) {
    store32(out, *dd, 0);
    store32(out, *dd + 4, 0);
  }
  store32(out, pe.checksum_offset(), pe_checksum(out, pe.checksum_offset()));
  return out;
}

Result<size_t> verify_image(std::span<const uint8_t> image, std::string_view trusted_cert_pem) {
  CFS_TRY_ASSIGN(PeFile pe, PeFile::parse(image));
  CFS_TRY_ASSIGN(auto certs, pe.certificates());
  if (certs.empty()) return make_error(Errc::NotFound, "the image is not signed");
  CFS_TRY_ASSIGN(Digest256 digest, authenticode_sha256(image));

  std::unique_ptr<BIO, decltype(&BIO_free)> cb(
      BIO_new_mem_buf(trusted_cert_pem.data(), int(trusted_cert_pem.size())), BIO_free);
  std::unique_ptr<X509, decltype(&X509_free)> trusted(
      PEM_read_bio_X509(cb.get(), nullptr, nullptr, nullptr), X509_free);
  if (!trusted) {
    ERR_clear_error();
    return make_error(Errc::InvalidArgument, "the trusted certificate is not PEM X.509");
  }
  auto check_one = [&](const Certificate& c) -> Status {
    std::string where = fmt::format("signature at 0x{:x}", c.offset);
    if (c.revision != kWinCertRevision2 || c.type != kWinCertTypePkcsSignedData)
      return errorf(Errc::Corrupt, "{}: revision 0x{:x} type {} is not a PKCS#7 Authenticode entry",
                    where, c.revision, c.type);
    const unsigned char* p = c.data.data();
    std::unique_ptr<PKCS7, decltype(&PKCS7_free)> p7(d2i_PKCS7(nullptr, &p, long(c.data.size())),
                                                     PKCS7_free);
    if (!p7 || !PKCS7_type_is_signed(p7.get()) || !p7->d.sign || !p7->d.sign->contents ||
        OBJ_obj2nid(p7->d.sign->contents->type) != NID_undef || !p7->d.sign->contents->d.other ||
        p7->d.sign->contents->d.other->type != V_ASN1_SEQUENCE) {
      ERR_clear_error();
      return errorf(Errc::Corrupt, "{}: not PKCS#7 SignedData with SpcIndirectDataContent", where);
    }
    char oid[64];
    OBJ_obj2txt(oid, sizeof(oid), p7->d.sign->contents->type, 1);
    if (std::string_view(oid) != kSpcIndirectDataOid)
      return errorf(Errc::Corrupt, "{}: content type {} is not SPC_INDIRECT_DATA", where, oid);
    ASN1_STRING* s = p7->d.sign->contents->d.other->value.sequence;
    std::span<const uint8_t> idc(ASN1_STRING_get0_data(s), size_t(ASN1_STRING_length(s)));
    // SpcIndirectDataContent ::= SEQUENCE { data, messageDigest DigestInfo }:
    // the digest is the OCTET STRING ending the DigestInfo.
    uint8_t tag;
    auto body = der_contents(idc, &tag);
    if (!body || tag != 0x30)
      return errorf(Errc::Corrupt, "{}: malformed SpcIndirectDataContent", where);
    auto first = der_contents(*body, &tag);
    if (!first) return errorf(Errc::Corrupt, "{}: malformed SpcIndirectDataContent", where);
    size_t skip = size_t(first->data() + first->size() - body->data());
    auto info = der_contents(body->subspan(skip), &tag);
    if (!info || tag != 0x30) return errorf(Errc::Corrupt, "{}: malformed DigestInfo", where);
    auto alg = der_contents(*info, &tag);
    if (!alg) return errorf(Errc::Corrupt, "{}: malformed DigestInfo", where);
    size_t askip = size_t(alg->data() + alg->size() - info->data());
    auto md = der_contents(info->subspan(askip), &tag);
    if (!md || tag != 0x04 || md->size() != digest.size() ||
        !std::equal(md->begin(), md->end(), digest.begin()))
      return errorf(Errc::VerityMismatch,
                    "{}: the signed digest is not the image's SHA-256 Authenticode hash", where);

    std::unique_ptr<X509_STORE, decltype(&X509_STORE_free)> store(X509_STORE_new(),
                                                                  X509_STORE_free);
    X509_STORE_add_cert(store.get(), trusted.get());
    X509_STORE_set_flags(store.get(), X509_V_FLAG_PARTIAL_CHAIN | X509_V_FLAG_NO_CHECK_TIME);
    X509_STORE_set_purpose(store.get(), X509_PURPOSE_ANY);
    std::unique_ptr<BIO, decltype(&BIO_free)> content(
        BIO_new_mem_buf(body->data(), int(body->size())), BIO_free);
    if (PKCS7_verify(p7.get(), nullptr, store.get(), content.get(), nullptr, PKCS7_BINARY) != 1) {
      std::string why = openssl_error();
      return errorf(Errc::Permission, "{}: not signed by the trusted certificate: {}", where, why);
    }
    return {};
  };
  // As firmware: the image is accepted when one signature verifies.
  size_t n = 0;
  std::optional<Error> first;
  for (const auto& c : certs) {
    auto st = check_one(c);
    if (st)
      n++;
    else if (!first)
      first = st.error();
  }
  if (!n) return tl::unexpected(std::move(*first));
  return n;
}

}  // namespace cfs::pe
