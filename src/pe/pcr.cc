// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/pe/pcr.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <map>
#include <nlohmann/json.hpp>

#include "composefs-cpp/base/base64.h"
#include "composefs-cpp/base/fd.h"
#include "composefs-cpp/base/hex.h"
#include "composefs-cpp/pe/uki.h"

namespace cfs::pe {

namespace {

const EVP_MD* bank_md(PcrBank b) {
  switch (b) {
    case PcrBank::Sha1: return EVP_sha1();
    case PcrBank::Sha256: return EVP_sha256();
    case PcrBank::Sha384: return EVP_sha384();
    case PcrBank::Sha512: return EVP_sha512();
  }
  return EVP_sha256();
}

std::vector<uint8_t> digest(const EVP_MD* md, std::span<const uint8_t> a,
                            std::span<const uint8_t> b = {}) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), md, nullptr);
  EVP_DigestUpdate(ctx.get(), a.data(), a.size());
  EVP_DigestUpdate(ctx.get(), b.data(), b.size());
  std::vector<uint8_t> out(size_t(EVP_MD_get_size(md)));
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx.get(), out.data(), &len);
  return out;
}

// PCR extend: new = H(old || H(data)).
void extend(const EVP_MD* md, std::vector<uint8_t>& pcr, std::span<const uint8_t> data) {
  pcr = digest(md, pcr, digest(md, data));
}

std::span<const uint8_t> bytes_of(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace

std::string_view bank_name(PcrBank b) {
  switch (b) {
    case PcrBank::Sha1: return "sha1";
    case PcrBank::Sha256: return "sha256";
    case PcrBank::Sha384: return "sha384";
    case PcrBank::Sha512: return "sha512";
  }
  return "sha256";
}

Result<PcrBank> parse_bank(std::string_view s) {
  std::string l;
  for (char c : s) l += char(std::tolower(static_cast<unsigned char>(c)));
  for (PcrBank b : kAllBanks)
    if (l == bank_name(b)) return b;
  return errorf(Errc::InvalidArgument, "unknown PCR bank '{}' (sha1, sha256, sha384 or sha512)", s);
}

uint16_t bank_tpm_alg(PcrBank b) {
  switch (b) {
    case PcrBank::Sha1: return 0x0004;
    case PcrBank::Sha256: return 0x000b;
    case PcrBank::Sha384: return 0x000c;
    case PcrBank::Sha512: return 0x000d;
  }
  return 0x000b;
}

size_t bank_digest_size(PcrBank b) { return size_t(EVP_MD_get_size(bank_md(b))); }

std::vector<std::string_view> measured_sections(unsigned v) {
  std::vector<std::string_view> s{".linux", ".osrel", ".cmdline", ".initrd"};
  if (v >= 257) s.push_back(".ucode");
  s.insert(s.end(), {".splash", ".dtb"});
  if (v >= 253) s.insert(s.end(), {".uname", ".sbat"});
  s.push_back(".pcrpkey");
  // .dtbauto is measured only when it matches the hardware: not predictable
  // here, so not listed.
  if (v >= 257) s.insert(s.end(), {".profile", ".hwids", ".efifw"});
  return s;
}

std::vector<MeasuredSection> uki_measured_sections(const PeFile& uki,
                                                   std::optional<unsigned> stub_version) {
  unsigned v = stub_version ? *stub_version : stub_version_or_newest(uki);
  std::vector<MeasuredSection> out;
  for (std::string_view name : measured_sections(v)) {
    const Section* s = uki.find(name);
    if (!s || !s->data_size()) continue;
    out.push_back({std::string(name), uki.data(*s)});
  }
  return out;
}

std::vector<PcrValue> predict_pcr11(const std::vector<MeasuredSection>& sections,
                                    const std::vector<PcrBank>& banks,
                                    const std::vector<std::string>& phases) {
  std::vector<PcrValue> out;
  for (PcrBank b : banks) {
    const EVP_MD* md = bank_md(b);
    std::vector<uint8_t> pcr(bank_digest_size(b), 0);
    for (const auto& s : sections) {
      if (s.data.empty()) continue;  // the stub skips empty sections
      std::string name = s.name;
      name.push_back('\0');
      extend(md, pcr, bytes_of(name));
      extend(md, pcr, s.data);
    }
    for (const auto& phase : phases) {
      std::vector<uint8_t> p = pcr;
      std::string_view rest = phase;
      while (!rest.empty()) {
        size_t c = rest.find(':');
        std::string_view word = rest.substr(0, c);
        rest = c == std::string_view::npos ? std::string_view() : rest.substr(c + 1);
        if (!word.empty()) extend(md, p, bytes_of(word));
      }
      out.push_back({b, phase, std::move(p)});
    }
  }
  return out;
}

Digest256 policy_pcr(const Digest256& old, PcrBank bank, const std::vector<uint32_t>& pcrs,
                     std::span<const uint8_t> pcr_values) {
  std::vector<uint8_t> m(old.begin(), old.end());
  auto be32 = [&](uint32_t v) {
    for (int i = 3; i >= 0; i--) m.push_back(uint8_t(v >> (8 * i)));
  };
  be32(0x0000017f);  // TPM_CC_PolicyPCR
  be32(1);           // TPML_PCR_SELECTION.count
  uint16_t alg = bank_tpm_alg(bank);
  m.push_back(uint8_t(alg >> 8));
  m.push_back(uint8_t(alg));
  m.push_back(3);  // sizeofSelect: PCRs 0-23
  uint8_t select[3] = {0, 0, 0};
  for (uint32_t p : pcrs)
    if (p < 24) select[p / 8] |= uint8_t(1u << (p % 8));
  m.insert(m.end(), select, select + 3);
  auto pcr_digest = digest(EVP_sha256(), pcr_values);
  m.insert(m.end(), pcr_digest.begin(), pcr_digest.end());
  auto d = digest(EVP_sha256(), m);
  Digest256 out;
  std::copy(d.begin(), d.end(), out.begin());
  return out;
}

Result<PcrKey> PcrKey::from_pem(std::string_view pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> b(BIO_new_mem_buf(pem.data(), int(pem.size())),
                                              BIO_free);
  EVP_PKEY* k = PEM_read_bio_PrivateKey(
      b.get(), nullptr, [](char*, int, int, void*) { return -1; }, nullptr);
  if (!k) {
    ERR_clear_error();
    return make_error(Errc::InvalidArgument,
                      pem.find("ENCRYPTED") != std::string_view::npos
                          ? "the PCR signing key is encrypted: decrypt it first"
                          : "not a PEM private key");
  }
  int id = EVP_PKEY_get_base_id(k);
  if (id != EVP_PKEY_RSA && id != EVP_PKEY_EC) {
    EVP_PKEY_free(k);
    return make_error(Errc::Unsupported, "PCR policies are signed with RSA or EC keys only");
  }
  PcrKey out;
  out.key_.reset(k, EVP_PKEY_free);
  return out;
}

Result<PcrKey> PcrKey::load(const std::string& path) {
  auto pem = read_file(AT_FDCWD, path, 1 << 20);
  if (!pem) return tl::unexpected(std::move(pem.error()).context(path));
  auto k = from_pem(*pem);
  if (!k) return tl::unexpected(std::move(k.error()).context(path));
  return k;
}

std::string PcrKey::public_pem() const {
  std::unique_ptr<BIO, decltype(&BIO_free)> b(BIO_new(BIO_s_mem()), BIO_free);
  PEM_write_bio_PUBKEY(b.get(), static_cast<EVP_PKEY*>(key_.get()));
  char* p = nullptr;
  long n = BIO_get_mem_data(b.get(), &p);
  return std::string(p, size_t(n));
}

Digest256 PcrKey::fingerprint() const {
  // systemd's pubkey_fingerprint: SHA-256 of i2d_PublicKey, i.e. the PKCS#1
  // RSAPublicKey for RSA, the encoded point for EC (not the SPKI).
  unsigned char* der = nullptr;
  int n = i2d_PublicKey(static_cast<EVP_PKEY*>(key_.get()), &der);
  auto d = digest(EVP_sha256(), std::span<const uint8_t>(der, size_t(std::max(n, 0))));
  OPENSSL_free(der);
  Digest256 out;
  std::copy(d.begin(), d.end(), out.begin());
  return out;
}

Result<std::string> pcrsig_json(const std::vector<PcrSignGroup>& groups) {
  std::map<PcrBank, nlohmann::json> banks;
  for (const auto& g : groups) {
    std::string pkfp = to_hex(g.key->fingerprint());
    for (const auto& v : g.values) {
      if (v.value.size() != bank_digest_size(v.bank))
        return errorf(Errc::InvalidArgument, "a {} PCR value has {} bytes", bank_name(v.bank),
                      v.value.size());
      Digest256 pol = policy_pcr(Digest256{}, v.bank, {11}, v.value);
      std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(),
                                                                  EVP_MD_CTX_free);
      size_t len = 0;
      if (EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr,
                             static_cast<EVP_PKEY*>(g.key->key_handle())) != 1 ||
          EVP_DigestSign(ctx.get(), nullptr, &len, pol.data(), pol.size()) != 1) {
        ERR_clear_error();
        return make_error(Errc::Io, "signing a PCR policy failed");
      }
      std::vector<uint8_t> sig(len);
      if (EVP_DigestSign(ctx.get(), sig.data(), &len, pol.data(), pol.size()) != 1) {
        ERR_clear_error();
        return make_error(Errc::Io, "signing a PCR policy failed");
      }
      sig.resize(len);
      nlohmann::json e = {
          {"pcrs", {11}}, {"pkfp", pkfp}, {"pol", to_hex(pol)}, {"sig", base64_encode(sig)}};
      auto& arr = banks[v.bank];
      if (arr.is_null()) arr = nlohmann::json::array();
      bool dup = false;
      for (const auto& x : arr) dup = dup || (x["pol"] == e["pol"] && x["pkfp"] == e["pkfp"]);
      if (!dup) arr.push_back(std::move(e));
    }
  }
  nlohmann::json out = nlohmann::json::object();
  for (auto& [b, arr] : banks) out[std::string(bank_name(b))] = std::move(arr);
  return out.dump();
}

}  // namespace cfs::pe
