// SPDX-License-Identifier: Apache-2.0
#include "cfsctl_deploy.h"

#include <cstdio>
#include <cstdlib>

#include "common.h"
#include "composefs-cpp/base/fd.h"
#include "composefs-cpp/deploy/deployments.h"
#include "composefs-cpp/deploy/lifecycle.h"
#include "composefs-cpp/repository/repository.h"

namespace cfs::tools::deploy_cli {
namespace {
constexpr const char* kTool = "cfsctl";
// Tests only: _exit(99) at the Nth durable step (crash-safety tests).
constexpr const char* kFailAtEnv = "CFS_DEPLOY_FAIL_AT";

void print(std::string_view s) { std::fwrite(s.data(), 1, s.size(), stdout); }
}  // namespace

struct Options {
  std::string sysroot = "/sysroot", boot, run_dir, cmdline_file = "/proc/cmdline",
              mountinfo_file = "/proc/self/mountinfo", image;
  std::vector<std::string> kargs;
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
  return o;
}

bool parsed(const Options* o) {
  return o && (o->status->parsed() || o->sw->parsed() || o->upgrade->parsed() ||
               o->rollback->parsed() || o->finalize->parsed() || o->gc->parsed());
}

int run(Options* o, bool insecure) {
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
