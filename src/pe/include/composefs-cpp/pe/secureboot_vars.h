// SPDX-License-Identifier: Apache-2.0
// UEFI Secure Boot key enrolment files: the signed variable updates that
// systemd-boot enrols from loader/keys/<name>/{PK,KEK,db}.auth when the
// firmware is in setup mode.  Each is an EFI_VARIABLE_AUTHENTICATION_2
// (EFI_TIME, then a WIN_CERTIFICATE_UEFI_GUID holding a detached PKCS#7
// SignedData) followed by an EFI_SIGNATURE_LIST with one X.509 certificate;
// the layout efitools' cert-to-efi-sig-list and sign-efi-sig-list write.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "composefs-cpp/base/error.h"
#include "composefs-cpp/pe/authenticode.h"

namespace cfs::pe {

using EfiGuid = std::array<uint8_t, 16>;  // in memory order (first three fields little-endian)
// "a5c059a1-94e4-4aa7-87b5-ab155c2bf072" -> bytes; error unless 8-4-4-4-12 hex.
Result<EfiGuid> parse_guid(std::string_view text);
std::string format_guid(const EfiGuid& g);

// The EFI_TIME of a timed variable update (UTC; pad, nanosecond, zone zero).
struct EfiTime {
  uint16_t year = 0;
  uint8_t month = 0, day = 0, hour = 0, minute = 0, second = 0;
};
EfiTime efi_time_from_unix(int64_t seconds);

// An EFI_SIGNATURE_LIST of type EFI_CERT_X509_GUID holding `cert_der`.
std::vector<uint8_t> x509_signature_list(std::span<const uint8_t> cert_der, const EfiGuid& owner);

// The bytes a time-based authenticated write of `var` ("PK", "KEK", "db",
// "dbx") signs: name (UTF-16LE, no NUL), vendor GUID, attributes, time,
// data.  The vendor is the global variable GUID, or the image security
// database GUID for db/dbx.
Result<std::vector<uint8_t>> authenticated_payload(std::string_view var, const EfiTime& t,
                                                   std::span<const uint8_t> data);
// The complete .auth file for setting `var` to `data`, signed by `key`.
Result<std::vector<uint8_t>> authenticated_variable(std::string_view var, const EfiTime& t,
                                                    std::span<const uint8_t> data,
                                                    const SigningKey& key);
// The DER encoding of `key`'s certificate.
Result<std::vector<uint8_t>> certificate_der(const SigningKey& key);

}  // namespace cfs::pe
