// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/deploy/install.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>

#include "composefs-cpp/base/fd.h"
#include "composefs-cpp/deploy/lifecycle.h"
#include "composefs-cpp/oci/repo_store.h"
#include "composefs-cpp/pe/authenticode.h"
#include "composefs-cpp/repository/repository.h"

namespace cfs::deploy {
namespace fs = std::filesystem;
namespace {

Status put(const std::string& path, std::span<const uint8_t> data) {
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  if (ec) return errorf(Errc::Io, "creating {}: {}", path, ec.message());
  CFS_TRY_ASSIGN(UniqueFd fd,
                 open_at(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  CFS_TRY(write_full(fd.get(),
                     std::string_view(reinterpret_cast<const char*>(data.data()), data.size())));
  if (::fsync(fd.get()) != 0) return sys_error("fsync " + path);
  return {};
}

}  // namespace

Result<InstallResult> install_to_filesystem(const InstallOptions& o) {
  Layout l;
  l.sysroot = o.root;
  l.boot = o.esp;
  l.run_dir = o.root + "/run/composefs";  // nothing runs there yet: a private marker
  repository::InitOptions io;
  io.alg = fsverity::HashAlg::Sha512;
  io.insecure = o.insecure;
  io.formats = {1, {2}};
  CFS_TRY(repository::init(l.repo(), io));
  repository::OpenOptions oo;
  oo.force_insecure = o.insecure;
  CFS_TRY_ASSIGN(auto repo, repository::Repository::open(l.repo(), oo));
  CFS_TRY_ASSIGN(auto st, read_status(l, {}));
  if (!st.all.empty() || st.staged)
    return errorf(Errc::Exists, "{} has deployments already", o.root);
  StageOptions so;
  so.source = o.source;
  so.extra_kargs = o.kargs;
  so.steps = o.steps;
  CFS_TRY_ASSIGN(StageResult sr, stage(repo, l, st, so));
  CFS_TRY_ASSIGN(st, read_status(l, {}));
  CFS_TRY(finalize(repo, l, st, o.steps));
  std::error_code ec;
  fs::remove_all(l.run_dir, ec);

  // The shared /var, from the image's /var on install only.
  oci::RepoStore store(repo);
  CFS_TRY_ASSIGN(st, read_status(l, {}));
  if (st.all.empty()) return make_error(Errc::NotFound, "the deployment did not appear");
  CFS_TRY_ASSIGN(auto img, oci::open_image(store, "@" + st.all.front().origin->manifest_digest));
  CFS_TRY_ASSIGN(EtcTree var, load_image_dir(store, img, "/var"));
  std::string shared = o.root + "/state/os/default/var";
  fs::remove(shared, ec);  // empty, made by stage
  CFS_TRY(write_etc(var, shared));

  // systemd-boot as the removable-media path and its own.
  CFS_TRY_ASSIGN(UniqueFd fd, open_at(AT_FDCWD, o.systemd_boot, O_RDONLY | O_CLOEXEC));
  CFS_TRY_ASSIGN(std::string sd, read_fd(fd.get(), size_t{64} << 20));
  std::vector<uint8_t> bin(sd.begin(), sd.end());
  if (!o.sb_key.empty()) {
    CFS_TRY_ASSIGN(auto key, pe::SigningKey::load(o.sb_key, o.sb_cert));
    CFS_TRY_ASSIGN(bin, pe::sign_image(bin, key));
  }
  std::string esp = l.boot_dir();
  CFS_TRY(put(esp + "/EFI/BOOT/BOOTX64.EFI", bin));
  CFS_TRY(put(esp + "/EFI/systemd/systemd-bootx64.efi", bin));
  if (!fs::exists(esp + "/loader/loader.conf", ec)) {
    std::string_view t = "timeout 5\n";
    CFS_TRY(put(esp + "/loader/loader.conf",
                std::span(reinterpret_cast<const uint8_t*>(t.data()), t.size())));
  }
  // bootc's compatibility link (no ostree repository behind it).
  fs::create_directories(o.root + "/ostree", ec);
  fs::create_directories(o.root + "/composefs/bootc", ec);
  fs::create_directory_symlink("../composefs/bootc", o.root + "/ostree/bootc", ec);
  return InstallResult{sr.digest};
}

}  // namespace cfs::deploy
