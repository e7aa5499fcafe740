// SPDX-License-Identifier: Apache-2.0
// Installing to a filesystem as bootc's install does (boot-spec 2.5): a
// sha512 repository at <root>/composefs (V1 and V2 images, as bootc now
// creates), the image pulled and deployed (boot entries with bootc's names,
// state/deploy/<D>), the shared /var populated from the image's /var, and
// systemd-boot copied to the ESP (signed when a key is given).
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
  std::string systemd_boot = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi";
  std::string sb_key, sb_cert;  // sign systemd-boot with these (PEM)
  Steps* steps = nullptr;
};
struct InstallResult {
  std::string digest;
};
Result<InstallResult> install_to_filesystem(const InstallOptions& o);

}  // namespace cfs::deploy
