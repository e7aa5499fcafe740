// SPDX-License-Identifier: Apache-2.0
#include "cfsctl_deploy.h"

#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "common.h"
#include "composefs-cpp/base/fd.h"
#include "composefs-cpp/deploy/deployments.h"
#include "composefs-cpp/deploy/install.h"
#include "composefs-cpp/deploy/lifecycle.h"
#include "composefs-cpp/repository/repository.h"

namespace cfs::tools::deploy_cli {
namespace {
constexpr const char* kTool = "cfsctl";
// Tests only: _exit(99) at the Nth durable step (crash-safety tests).
constexpr const char* kFailAtEnv = "CFS_DEPLOY_FAIL_AT";

void print(std::string_view s) { std::fwrite(s.data(), 1, s.size(), stdout); }

std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Runs a shell command line; its output is the result (trailing newline cut).
Result<std::string> sh(const std::string& cmd) {
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return sys_error("popen " + cmd);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int rc = ::pclose(p);
  if (rc != 0) return errorf(Errc::Io, "'{}' failed (status {})", cmd, rc);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}
}  // namespace

struct Options {
  std::string sysroot = "/sysroot", boot, run_dir, cmdline_file = "/proc/cmdline",
              mountinfo_file = "/proc/self/mountinfo", image;
  std::vector<std::string> kargs;
  std::string target, esp_size = "512M", disk_size = "4G", sb_key, sb_cert, sb_enroll,
                      bootloader = "copy";
  CLI::App *install = nullptr, *to_disk = nullptr, *to_fs = nullptr;
  bool json = false, download_only = false, dry_run = false;
  CLI::App *status = nullptr, *sw = nullptr, *upgrade = nullptr, *rollback = nullptr,
           *finalize = nullptr, *gc = nullptr;
};

std::shared_ptr<Options> add_commands(CLI::App& app) {
  auto o = std::make_shared<Options>();
  auto common = [&](CLI::App* c) {
    c->add_option("--sysroot", o->sysroot, "The physical root (default /sysroot)");
    c->add_option("--boot-dir", o->boot,
                  "Where loader/entries and the boot binaries are (default SYSROOT/boot; the ESP "
                  "for systemd-boot)");
    c->add_option("--run-dir", o->run_dir,
                  "Where the staged-deployment marker is (default /run/composefs)");
    c->add_option("--cmdline", o->cmdline_file,
                  "Kernel command line file naming the booted image (default /proc/cmdline)");
    c->add_option("--mountinfo", o->mountinfo_file,
                  "mountinfo file whose / mount names the booted image (default "
                  "/proc/self/mountinfo)");
  };
  o->status = app.add_subcommand("status", "Show the deployments (booted, staged, rollback)");
  common(o->status);
  o->status->add_flag("--json", o->json, "JSON in bootc status's shape");
  o->sw = app.add_subcommand("switch", "Stage a deployment of another image");
  common(o->sw);
  o->sw->add_option("IMAGE", o->image, "Image to pull (oci:DIR:TAG, docker://...)")->required();
  o->upgrade = app.add_subcommand(
      "upgrade", "Pull the tracked image and stage it if its bootable image is new");
  common(o->upgrade);
  for (auto* c : {o->sw, o->upgrade}) {
    c->add_option("--karg", o->kargs, "Extra kernel argument for the new entry (repeatable)");
    c->add_flag("--download-only", o->download_only,
                "Stage locked: finalize leaves it until unlocked");
  }
  o->rollback = app.add_subcommand("rollback", "Boot the rollback deployment next");
  common(o->rollback);
  o->finalize = app.add_subcommand(
      "finalize", "Apply the staged deployment (at shutdown): merge /etc, swap the entries");
  common(o->finalize);
  o->gc = app.add_subcommand("deploy-gc",
                             "Remove deployments, boot binaries and objects no boot entry needs");
  common(o->gc);
  o->gc->add_flag("-n,--dry-run", o->dry_run, "Only list what would be removed");
  o->install = app.add_subcommand("install", "Install an image to a disk or a filesystem");
  o->to_disk = o->install->add_subcommand(
      "to-disk", "Partition (GPT: ESP and ext4 root with verity), format and install");
  o->to_fs = o->install->add_subcommand("to-filesystem",
                                        "Install into a mounted root (its ESP at DIR/boot)");
  for (auto* c : {o->to_disk, o->to_fs}) {
    c->add_option("IMAGE", o->image, "Image to pull (oci:DIR:TAG, docker://...)")->required();
    c->add_option(c == o->to_disk ? "DEVICE" : "DIR", o->target,
                  c == o->to_disk ? "Block device or disk image file" : "Mounted root")
        ->required();
    c->add_option("--karg", o->kargs, "Kernel argument for the entry (repeatable)");
    c->add_option("--secureboot-private-key", o->sb_key, "Sign systemd-boot with this PEM key");
    c->add_option("--secureboot-certificate", o->sb_cert, "The key's PEM certificate");
    c->add_option("--secureboot-enroll", o->sb_enroll,
                  "Write loader/keys/NAME/{PK,KEK,db}.auth enrolling the certificate (signed by "
                  "the key) for systemd-boot's auto-enrolment");
    c->add_option("--bootloader", o->bootloader,
                  "How systemd-boot is installed: copy (default) or bootctl")
        ->check(CLI::IsMember({"copy", "bootctl"}));
  }
  o->to_disk->add_option("--esp-size", o->esp_size, "ESP size for sfdisk (default 512M)");
  o->to_disk->add_option(
      "--disk-size", o->disk_size,
      "Size of a disk image file created when DEVICE does not exist (default 4G)");
  o->install->require_subcommand(1);
  return o;
}

namespace {

// umount(2), waiting out a short EBUSY (a reference the kernel drops just
// after the last close), then an error naming the mount point.
Status unmount(const std::string& dir) {
  for (int i = 0;; i++) {
    if (::umount(dir.c_str()) == 0) return {};
    if (errno != EBUSY || i == 50) return sys_error("unmounting " + dir);
    ::usleep(100'000);
  }
}

Result<std::string> install_to_disk(Options* o, bool insecure) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::string dev = o->target, loop;
  struct stat sb;
  if (::stat(dev.c_str(), &sb) != 0) {
    CFS_TRY(sh("truncate -s " + quote(o->disk_size) + " " + quote(dev)));
    if (::stat(dev.c_str(), &sb) != 0) return sys_error("stat " + dev);
  }
  if (S_ISREG(sb.st_mode)) {
    CFS_TRY_ASSIGN(loop, sh("losetup -f -P --show " + quote(dev)));
    dev = loop;
  }
  auto detach = [&] {
    if (!loop.empty()) (void)sh("losetup -d " + quote(loop));
  };
  auto part = [&](int n) {
    char last = dev.empty() ? ' ' : dev.back();
    return dev + (last >= '0' && last <= '9' ? "p" : "") + std::to_string(n);
  };
  std::string layout = fmt::format(
      "label: gpt\nsize={}, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=ESP\n"
      "type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name=root\n",
      o->esp_size);
  auto r = sh("printf %s " + quote(layout) + " | sfdisk -q --wipe always " + quote(dev) +
              " && udevadm settle 2>/dev/null; partx -u " + quote(dev) + " 2>/dev/null; true");
  if (r) r = sh("mkfs.vfat -F 32 -n ESP " + quote(part(1)) + " >/dev/null");
  if (r) r = sh("mkfs.ext4 -q -F -O verity -b 4096 -L root " + quote(part(2)));
  if (!r) {
    detach();
    return tl::unexpected(r.error());
  }
  std::string mnt =
      fs::temp_directory_path().string() + "/cfs-install-" + std::to_string(::getpid());
  fs::create_directories(mnt, ec);
  Result<std::string> out = std::string();
  if (::mount(part(2).c_str(), mnt.c_str(), "ext4", 0, nullptr) != 0) {
    out = sys_error("mount " + part(2));
  } else {
    fs::create_directories(mnt + "/boot", ec);
    // Without vfat in the kernel the ESP is written aside and copied in
    // with mtools.
    bool mounted =
        ::mount(part(1).c_str(), (mnt + "/boot").c_str(), "vfat", 0, "fmask=0177,dmask=0077") == 0;
    if (!mounted && errno != ENODEV) {
      out = sys_error("mount " + part(1));
    } else {
      auto uuid = sh("blkid -s UUID -o value " + quote(part(2)));
      deploy::InstallOptions io;
      io.source = o->image;
      io.root = mnt;
      io.insecure = insecure;
      io.kargs = {"root=UUID=" + uuid.value_or(""), "rw"};
      io.kargs.insert(io.kargs.end(), o->kargs.begin(), o->kargs.end());
      io.sb_key = o->sb_key;
      io.sb_cert = o->sb_cert;
      io.secureboot_enroll = o->sb_enroll;
      io.bootloader = o->bootloader;
      auto res = deploy::install_to_filesystem(io);
      if (!res)
        out = tl::unexpected(res.error());
      else
        out = res->digest;
      if (out && !mounted) {
        auto c =
            sh("cd " + quote(mnt + "/boot") + " && mcopy -s -Q -i " + quote(part(1)) + " * ::/");
        if (!c) out = tl::unexpected(c.error());
        for (const auto& de : fs::directory_iterator(mnt + "/boot", ec))
          fs::remove_all(de.path(), ec);
      }
      ::sync();
      if (mounted) {
        Status u = unmount(mnt + "/boot");
        if (!u && out) out = tl::unexpected(u.error());
      }
    }
    Status u = unmount(mnt);
    if (!u) {
      // Still mounted: the directory is the installed root, never removed.
      if (out) out = tl::unexpected(u.error());
      return out;
    }
  }
  fs::remove(mnt, ec);  // the empty mount point only
  detach();
  return out;
}

}  // namespace

bool parsed(const Options* o) {
  return o &&
         (o->status->parsed() || o->sw->parsed() || o->upgrade->parsed() || o->rollback->parsed() ||
          o->finalize->parsed() || o->gc->parsed() || o->install->parsed());
}

int run(Options* o, bool insecure) {
  if (o->sb_key.empty() != o->sb_cert.empty())
    return usage_error(kTool, "--secureboot-private-key and --secureboot-certificate go together");
  if (!o->sb_enroll.empty() && o->sb_key.empty())
    return usage_error(kTool, "--secureboot-enroll needs --secureboot-private-key");
  if (o->to_fs->parsed()) {
    deploy::InstallOptions io;
    io.source = o->image;
    io.root = o->target;
    io.insecure = insecure;
    io.kargs = o->kargs;
    io.sb_key = o->sb_key;
    io.sb_cert = o->sb_cert;
    io.secureboot_enroll = o->sb_enroll;
    io.bootloader = o->bootloader;
    auto r = deploy::install_to_filesystem(io);
    if (!r) return fail(kTool, r.error());
    print(fmt::format("installed {}\n", r->digest));
    return 0;
  }
  if (o->to_disk->parsed()) {
    auto r = install_to_disk(o, insecure);
    if (!r) return fail(kTool, r.error());
    print(fmt::format("installed {}\n", *r));
    return 0;
  }
  deploy::Layout l{o->sysroot, o->boot, o->run_dir};
  deploy::StatusInput in;
  auto slurp = [](const std::string& p) {
    auto fd = open_at(AT_FDCWD, p, O_RDONLY | O_CLOEXEC);
    if (!fd) return std::string();
    return read_fd(fd->get(), 1 << 20).value_or("");
  };
  in.cmdline = slurp(o->cmdline_file);
  in.mountinfo = slurp(o->mountinfo_file);
  auto st = deploy::read_status(l, in);
  if (!st) return fail(kTool, st.error());
  for (const auto& w : st->warnings) std::fprintf(stderr, "%s: warning: %s\n", kTool, w.c_str());
  if (o->status->parsed()) {
    print(o->json ? deploy::status_json(*st) : deploy::status_text(*st));
    return std::fflush(stdout) == 0 ? 0 : 1;
  }
  deploy::Steps steps;
  if (const char* f = std::getenv(kFailAtEnv)) steps.fail_at = std::atoi(f);
  if (o->rollback->parsed()) {
    if (auto r = deploy::rollback(l, *st, &steps); !r) return fail(kTool, r.error());
    print("Next boot: the rollback deployment\n");
    return 0;
  }
  repository::OpenOptions ro;
  ro.force_insecure = insecure;
  auto repo = repository::Repository::open(l.repo(), ro);
  if (!repo) return fail(kTool, repo.error());
  if (o->sw->parsed() || o->upgrade->parsed()) {
    deploy::StageOptions so;
    so.source = o->sw->parsed() ? o->image : "";
    so.extra_kargs = o->kargs;
    so.download_only = o->download_only;
    so.steps = &steps;
    auto r = deploy::stage(*repo, l, *st, so);
    if (!r) return fail(kTool, r.error());
    print(r->message + "\n");
    return 0;
  }
  if (o->finalize->parsed()) {
    auto r = deploy::finalize(*repo, l, *st, &steps);
    if (!r) return fail(kTool, r.error());
    print(*r ? "Finalized the staged deployment\n" : "No staged deployment\n");
    return 0;
  }
  auto r = deploy::gc(*repo, l, *st, o->dry_run);
  if (!r) return fail(kTool, r.error());
  for (const auto& p : r->removed) print(fmt::format("removed {}\n", p));
  print(fmt::format("objects removed: {}\n", r->objects_removed));
  return 0;
}

}  // namespace cfs::tools::deploy_cli
