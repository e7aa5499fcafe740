// SPDX-License-Identifier: Apache-2.0
// Installing to a filesystem as bootc's install does (boot-spec 2.5): a
// sha512 repository at <root>/composefs (V1 and V2 images, as bootc now
// creates), systemd-boot put on the ESP (copied or by bootctl, signed when
// a key is given), the image pulled and deployed (boot entries with bootc's
// names, state/deploy/<D>), the shared /var populated from the image's /var,
// and Secure Boot enrolment files in loader/keys: the image's
// usr/lib/bootc/install/secureboot-keys/<dir>/*.auth (as bootc copies them)
// and, when asked, ones made from the signing certificate.
#pragma once

#include <string>
#include <vector>

#include "composefs-cpp/base/error.h"
#include "composefs-cpp/deploy/deployments.h"

namespace cfs::deploy {

struct InstallOptions {
  std::string source;  // what oci pull accepts
  std::string root;    // the mounted root filesystem
  std::string esp;     // default <root>/boot (the ESP mounted there)
  bool insecure = false;
  std::vector<std::string> kargs;  // root=..., rw, ... before the composefs karg
  // How systemd-boot gets to the ESP: "copy" (this file, as
  // EFI/BOOT/BOOTX64.EFI and EFI/systemd/systemd-bootx64.efi) or "bootctl"
  // (`bootctl --esp-path=ESP --no-variables install`, the host's files).
  std::string bootloader = "copy";
  std::string systemd_boot = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi";
  std::string bootctl = "bootctl";
  std::string sb_key, sb_cert;  // sign systemd-boot with these (PEM)
  // Non-empty: write loader/keys/<name>/{PK,KEK,db}.auth, each enrolling
  // sb_cert and signed by sb_key, for systemd-boot's auto-enrolment.
  std::string secureboot_enroll;
  int64_t enroll_time = -1;  // their timestamp (Unix seconds); -1: now
  Steps* steps = nullptr;
};
struct InstallResult {
  std::string digest;
};
Result<InstallResult> install_to_filesystem(const InstallOptions& o);

}  // namespace cfs::deploy
