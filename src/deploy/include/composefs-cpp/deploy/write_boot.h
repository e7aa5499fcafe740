// SPDX-License-Identifier: Apache-2.0
// cfsctl oci prepare-boot, as composefs-rs's (composefs-ctl PrepareBoot and
// composefs-boot write_boot.rs, boot-spec 1.8): commit the bootable image
// in every format the repository writes, write the first boot entry to a
// boot directory with the composefs karg, and create the deployment's state
// directories.  Unlike composefs-rs, the images are kept by name refs (see
// PrepareBootOptions::ref_name), so gc does not delete a deployed image or
// the objects of the boot files it came with (composefs-rs #373).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "composefs-cpp/base/error.h"
#include "composefs-cpp/boot/resources.h"
#include "composefs-cpp/oci/pull.h"
#include "composefs-cpp/repository/images.h"
#include "composefs-cpp/repository/repository.h"

namespace cfs::boot {

struct PrepareBootOptions {
  std::string bootdir = "/boot";
  std::optional<std::string> entry_id;
  std::vector<std::string> cmdline;  // extra arguments (Type 1 only)
  // API only (composefs-rs's boot_subdir): files and loader/entries go
  // below <bootdir>/<subdir>, and entry paths start with /<subdir>.
  std::optional<std::string> boot_subdir;
  // images/refs/<ref_prefix>/<id hex>[.v<N>|.source]; empty: no refs (as
  // composefs-rs).
  std::string ref_prefix = "deploy";
  // Where <S>/var, <S>/etc/upper and <S>/etc/work go, S = state_root/<id>.
  std::string state_root;  // default: <parent of the repository>/state/deploy
};

struct PreparedBoot {
  fsverity::Digest id;  // the V1 image's if one was made, else V2's
  std::string karg;
  std::vector<repository::CommittedImage> images;
  std::string entry_path;  // what was written for the entry, in bootdir
  std::vector<std::string> refs;
};

// The karg prepare-boot writes: composefs.digest=[?]v1-<alg>-12:<id> in a
// repository writing only formats 0/1, composefs=[?]<id> otherwise.
std::string prepare_boot_karg(const repository::FormatConfig& formats, fsverity::HashAlg alg,
                              const fsverity::Digest& id, bool insecure);

// composefs-rs's into_type1 for a vmlinuz entry: "# File created by
// composefs", title todoOS, version 0-todo, linux /<id>/vmlinuz, initrd
// /<id>/initramfs.img with id = entry_id or the kernel version; an entry
// without initramfs.img is an error.
Result<Type1Entry> into_type1(const VmlinuzEntry& e, const std::optional<std::string>& entry_id);

Result<PreparedBoot> prepare_boot(repository::Repository& repo, const oci::StoredImage& img,
                                  const PrepareBootOptions& opts);

}  // namespace cfs::boot
