// SPDX-License-Identifier: Apache-2.0
// TPM PCR 11 of a UKI, predicted as systemd-stub measures it and
// systemd-measure calculates it, and signed PCR policies (.pcrsig) in
// systemd's JSON format.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "composefs-cpp/base/error.h"
#include "composefs-cpp/pe/authenticode.h"
#include "composefs-cpp/pe/reader.h"

namespace cfs::pe {

enum class PcrBank { Sha1, Sha256, Sha384, Sha512 };
std::string_view bank_name(PcrBank b);           // "sha1", ... (systemd's JSON keys)
Result<PcrBank> parse_bank(std::string_view s);  // either case
// TPM_ALG_ID
uint16_t bank_tpm_alg(PcrBank b);
size_t bank_digest_size(PcrBank b);

inline const std::vector<PcrBank> kAllBanks = {PcrBank::Sha1, PcrBank::Sha256, PcrBank::Sha384,
                                               PcrBank::Sha512};
// systemd-measure's default phase paths.
inline const std::vector<std::string> kDefaultPhases = {"enter-initrd", "enter-initrd:leave-initrd",
                                                        "enter-initrd:leave-initrd:sysinit",
                                                        "enter-initrd:leave-initrd:sysinit:ready"};

// The UKI sections a systemd-stub of this version measures into PCR 11, in
// measurement order (systemd's UnifiedSection enum; .pcrsig never):
//   <= 252: .linux .osrel .cmdline .initrd .splash .dtb .pcrpkey
//   253+ adds .uname and .sbat (after .dtb); 257+ adds .ucode (after
//   .initrd), .profile, .dtbauto, .hwids and .efifw (after .pcrpkey).
std::vector<std::string_view> measured_sections(unsigned stub_version);

struct MeasuredSection {
  std::string name;
  std::span<const uint8_t> data;
};

// The sections of `uki` its stub measures (in order, non-empty ones only),
// for `stub_version` or else the one its .sdmagic names (else the newest).
std::vector<MeasuredSection> uki_measured_sections(const PeFile& uki,
                                                   std::optional<unsigned> stub_version = {});

struct PcrValue {
  PcrBank bank;
  std::string phase;  // "" before any phase
  std::vector<uint8_t> value;
};

// PCR 11 from zero: for each section, extend H(name NUL) then H(data);
// then, per phase path, H(word) for each ':'-separated word (no NUL).  One
// value per bank and phase path, as `systemd-measure calculate` prints.
std::vector<PcrValue> predict_pcr11(const std::vector<MeasuredSection>& sections,
                                    const std::vector<PcrBank>& banks,
                                    const std::vector<std::string>& phases);

// TPM2_PolicyPCR's policy digest (SHA-256 session): H(old || TPM_CC_PolicyPCR
// || TPML_PCR_SELECTION{1 x {bank, 3, bitmap of `pcrs`}} || H(concatenated
// PCR values, in PCR order)).
Digest256 policy_pcr(const Digest256& old, PcrBank bank, const std::vector<uint32_t>& pcrs,
                     std::span<const uint8_t> pcr_values);

// A key to sign PCR policies with (systemd-measure --private-key): PEM.
class PcrKey {
 public:
  static Result<PcrKey> load(const std::string& private_pem_path);
  static Result<PcrKey> from_pem(std::string_view private_pem);
  // The public key as PEM (what .pcrpkey holds).
  std::string public_pem() const;
  // systemd's "pkfp": SHA-256 of the key in PKCS#1 RSAPublicKey (RSA) or
  // point (EC) encoding, as systemd-measure computes it.
  Digest256 fingerprint() const;
  // The OpenSSL key, opaque here (pcr.cc casts it back).
  void* key_handle() const { return key_.get(); }

 private:
  std::shared_ptr<void> key_;
};

// systemd's .pcrsig JSON for these predicted values:
//   {"sha256":[{"pcrs":[11],"pkfp":"<hex>","pol":"<hex>","sig":"<base64>"},...],...}
// `pol` is PolicyPCR over PCR 11 with the value; `sig` the key's signature
// (RSA PKCS#1 v1.5 or ECDSA) over SHA-256(pol), for every bank (newest
// systemd; TPM2_VerifySignature checks it with the key's SHA-256 name
// algorithm).  Several keys (e.g. one per phase group) are merged per bank.
struct PcrSignGroup {
  const PcrKey* key;
  std::vector<PcrValue> values;
};
Result<std::string> pcrsig_json(const std::vector<PcrSignGroup>& groups);

}  // namespace cfs::pe
