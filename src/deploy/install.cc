// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/deploy/install.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ctime>
#include <filesystem>

#include "composefs-cpp/base/fd.h"
#include "composefs-cpp/deploy/lifecycle.h"
#include "composefs-cpp/fsverity/sha.h"
#include "composefs-cpp/oci/repo_store.h"
#include "composefs-cpp/pe/authenticode.h"
#include "composefs-cpp/pe/secureboot_vars.h"
#include "composefs-cpp/repository/repository.h"

namespace cfs::deploy {
namespace fs = std::filesystem;
namespace {

constexpr std::string_view kImageKeys = "/usr/lib/bootc/install/secureboot-keys";
constexpr long kMsdosMagic = 0x4d44;

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

Status put_text(const std::string& path, std::string_view t) {
  return put(path, std::span(reinterpret_cast<const uint8_t*>(t.data()), t.size()));
}

Result<std::vector<uint8_t>> slurp(const std::string& path) {
  CFS_TRY_ASSIGN(UniqueFd fd, open_at(AT_FDCWD, path, O_RDONLY | O_CLOEXEC));
  CFS_TRY_ASSIGN(std::string s, read_fd(fd.get(), size_t{64} << 20));
  return std::vector<uint8_t>(s.begin(), s.end());
}

// Runs argv (PATH searched) with `env` added; its stdout goes to our stderr
// so that the tool's own output stays what it prints.
Status run_command(const std::vector<std::string>& argv,
                   const std::vector<std::pair<std::string, std::string>>& env) {
  pid_t pid = ::fork();
  if (pid < 0) return sys_error("fork");
  if (pid == 0) {
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    ::dup2(2, 1);
    std::vector<char*> a;
    for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    ::execvp(a[0], a.data());
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return sys_error("waitpid");
  std::string cmd;
  for (const auto& s : argv) cmd += (cmd.empty() ? "" : " ") + s;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
    return errorf(Errc::NotFound, "'{}': could not run {}", cmd, argv[0]);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return errorf(Errc::Io, "'{}' failed (status {})", cmd, status);
  return {};
}

// bootctl insists on the root of a FAT file system.  A directory standing
// in for the ESP (no vfat in the kernel: to-disk copies it in with mtools)
// is made a mount root by a bind mount, and the FAT check relaxed.
Status bootctl_install(const InstallOptions& o, const std::string& esp) {
  struct stat a, b;
  if (::stat(esp.c_str(), &a) != 0) return sys_error("stat " + esp);
  if (::stat((esp + "/..").c_str(), &b) != 0) return sys_error("stat " + esp + "/..");
  bool bound = false;
  if (a.st_dev == b.st_dev && a.st_ino != b.st_ino) {
    if (::mount(esp.c_str(), esp.c_str(), nullptr, MS_BIND, nullptr) != 0)
      return sys_error("bind-mounting " + esp + " for bootctl");
    bound = true;
  }
  struct statfs sf;
  std::vector<std::pair<std::string, std::string>> env;
  if (::statfs(esp.c_str(), &sf) == 0 && sf.f_type != kMsdosMagic)
    env.emplace_back("SYSTEMD_RELAX_ESP_CHECKS", "1");
  Status st = run_command({o.bootctl, "--esp-path=" + esp, "--no-variables", "install"}, env);
  if (bound) ::umount2(esp.c_str(), MNT_DETACH);
  CFS_TRY(std::move(st));
  // systemd 252's bootctl always writes a random seed (no --random-seed=no
  // yet); a generic image must not carry one seed to every machine.
  std::error_code ec;
  fs::remove(esp + "/loader/random-seed", ec);
  return {};
}

Status install_systemd_boot(const InstallOptions& o, const std::string& esp) {
  std::optional<pe::SigningKey> key;
  if (!o.sb_key.empty()) {
    CFS_TRY_ASSIGN(auto k, pe::SigningKey::load(o.sb_key, o.sb_cert));
    key = std::move(k);
  }
  std::vector<std::string> installed = {esp + "/EFI/BOOT/BOOTX64.EFI",
                                        esp + "/EFI/systemd/systemd-bootx64.efi"};
  if (o.bootloader == "bootctl") {
    CFS_TRY(bootctl_install(o, esp));
    if (key)
      for (const auto& p : installed) {
        CFS_TRY_ASSIGN(auto bin, slurp(p));
        CFS_TRY_ASSIGN(bin, pe::sign_image(bin, *key));
        CFS_TRY(put(p, bin));
      }
  } else if (o.bootloader == "copy") {
    CFS_TRY_ASSIGN(auto bin, slurp(o.systemd_boot));
    if (key) {
      CFS_TRY_ASSIGN(bin, pe::sign_image(bin, *key));
    }
    for (const auto& p : installed) CFS_TRY(put(p, bin));
  } else {
    return errorf(Errc::InvalidArgument, "bootloader '{}': not copy or bootctl", o.bootloader);
  }
  std::error_code ec;
  if (!fs::exists(esp + "/loader/loader.conf", ec))
    CFS_TRY(put_text(esp + "/loader/loader.conf", "timeout 5\n"));
  return {};
}

// loader/keys/<name>/{PK,KEK,db}.auth: the one certificate as platform key,
// key exchange key and signature database, each update signed by its key
// (PK is self-signed; the PK signs KEK and the KEK db, all the same key).
Status write_enrolment(const InstallOptions& o, const std::string& esp) {
  if (o.sb_key.empty())
    return make_error(Errc::InvalidArgument,
                      "Secure Boot enrolment files need the signing key and certificate");
  if (o.secureboot_enroll.find('/') != std::string::npos || o.secureboot_enroll == "." ||
      o.secureboot_enroll == "..")
    return errorf(Errc::InvalidArgument, "'{}' is not a directory name", o.secureboot_enroll);
  CFS_TRY_ASSIGN(auto key, pe::SigningKey::load(o.sb_key, o.sb_cert));
  CFS_TRY_ASSIGN(auto der, pe::certificate_der(key));
  // The owner GUID: from the certificate, so that reinstalls write the same.
  uint8_t h[32];
  fsverity::hash_once(fsverity::HashAlg::Sha256, der, h);
  pe::EfiGuid owner;
  std::copy(h, h + 16, owner.begin());
  owner[7] = uint8_t((owner[7] & 0x0f) | 0x40);  // version 4 (Data3's high byte)
  owner[8] = uint8_t((owner[8] & 0x3f) | 0x80);  // RFC 4122 variant
  auto esl = pe::x509_signature_list(der, owner);
  pe::EfiTime t = pe::efi_time_from_unix(o.enroll_time >= 0 ? o.enroll_time : ::time(nullptr));
  for (std::string_view var : {"PK", "KEK", "db"}) {
    CFS_TRY_ASSIGN(auto auth, pe::authenticated_variable(var, t, esl, key));
    CFS_TRY(put(fmt::format("{}/loader/keys/{}/{}.auth", esp, o.secureboot_enroll, var), auth));
  }
  return {};
}

// bootc's auto-enrolment source: the image's secureboot-keys/<dir>/*.auth.
Status copy_image_keys(const oci::Store& store, const oci::StoredImage& img,
                       const std::string& esp) {
  CFS_TRY_ASSIGN(EtcTree keys, load_image_dir(store, img, std::string(kImageKeys)));
  for (const auto& [rel, e] : keys) {
    auto slash = rel.find('/');
    if (slash == std::string::npos) {
      if ((e.mode & S_IFMT) != S_IFDIR)
        return errorf(Errc::InvalidArgument, "{}/{} is not a directory", kImageKeys, rel);
      continue;
    }
    if (!rel.ends_with(".auth") || rel.find('/', slash + 1) != std::string::npos) continue;
    if ((e.mode & S_IFMT) != S_IFREG)
      return errorf(Errc::InvalidArgument, "{}/{} is not a file", kImageKeys, rel);
    CFS_TRY(put_text(esp + "/loader/keys/" + rel, e.data));
  }
  return {};
}

}  // namespace

Result<InstallResult> install_to_filesystem(const InstallOptions& o) {
  Layout l;
  l.sysroot = o.root;
  l.boot = o.esp;
  l.run_dir = o.root + "/run/composefs";  // nothing runs there yet: a private marker
  if (!o.secureboot_enroll.empty() && o.sb_key.empty())
    return make_error(Errc::InvalidArgument,
                      "Secure Boot enrolment files need the signing key and certificate");
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

  // The boot loader first, as bootc: the entries then take systemd-boot's
  // layout (kernel directories in the ESP's EFI/Linux).
  std::string esp = l.boot_dir();
  std::error_code ec;
  fs::create_directories(esp, ec);
  CFS_TRY(install_systemd_boot(o, esp));
  CFS_TRY_ASSIGN(st, read_status(l, {}));

  StageOptions so;
  so.source = o.source;
  so.extra_kargs = o.kargs;
  so.steps = o.steps;
  CFS_TRY_ASSIGN(StageResult sr, stage(repo, l, st, so));
  CFS_TRY_ASSIGN(st, read_status(l, {}));
  CFS_TRY(finalize(repo, l, st, o.steps));
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

  CFS_TRY(copy_image_keys(store, img, esp));
  if (!o.secureboot_enroll.empty()) CFS_TRY(write_enrolment(o, esp));
  // bootc's compatibility link (no ostree repository behind it).
  fs::create_directories(o.root + "/ostree", ec);
  fs::create_directories(o.root + "/composefs/bootc", ec);
  fs::create_directory_symlink("../composefs/bootc", o.root + "/ostree/bootc", ec);
  return InstallResult{sr.digest};
}

}  // namespace cfs::deploy
