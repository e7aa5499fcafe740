// SPDX-License-Identifier: Apache-2.0
// composefs-setup-root: run in the initramfs, after the physical root is
// mounted at /sysroot; replaces it by the composefs image the kernel command
// line names.  Option-compatible with composefs-rs's tool.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "common.h"
#include "composefs-cpp/setuproot/config.h"
#include "composefs-cpp/setuproot/setup_root.h"

using namespace cfs;

namespace {

constexpr const char* kTool = "composefs-setup-root";

int run(int argc, char** argv) {
  CLI::App app{
      "Mount the composefs image named on the kernel command line (composefs=[?]HEX or\n"
      "composefs.digest=[?]vN-HASH-12:HEX, tried in order) as the new root at the sysroot,\n"
      "with the physical root at /sysroot inside it and /etc and /var from\n"
      "SYSROOT/state/deploy/HEX.  On failure nothing stays mounted; exit status 1.",
      kTool};
  std::string sysroot = "/sysroot";
  std::string config = "/usr/lib/composefs/setup-root-conf.toml";
  std::string cmdline, root_fs, target;
  std::vector<std::string> cmd;
  app.add_option("--sysroot", sysroot, "Where the physical root is mounted (default /sysroot)");
  app.add_option("--config", config,
                 "TOML configuration; missing means the defaults (default "
                 "/usr/lib/composefs/setup-root-conf.toml)");
  auto* cmdline_opt = app.add_option("--cmdline", cmdline,
                                     "Use this kernel command line instead of /proc/cmdline "
                                     "(testing)");
  auto* root_fs_opt = app.add_option("--root-fs", root_fs,
                                     "Use a clone of this tree as the new root instead of the "
                                     "image; the repository is not opened (testing)");
  std::string sequence = "auto", release, dev_dir = "/dev", run_dir = "/run";
  app.add_option("--mount-sequence", sequence,
                 "auto (default: 6.15 where the kernel can mount inside a detached tree), "
                 "pre-6.15 or 6.15 (testing)");
  auto* release_opt = app.add_option("--kernel-release", release,
                                     "Take this as the running kernel's release instead of "
                                     "uname -r, for the Linux 7.0 hint (testing)");
  app.add_option("--dev-dir", dev_dir,
                 "Where the GPT workaround looks for gpt-auto-root (default /dev; testing)");
  app.add_option("--run-dir", run_dir,
                 "Where the GPT workaround makes systemd/volatile-root (default /run; testing)");
  app.add_option("--target", target, "Accepted for compatibility; unused");
  app.add_option("cmd", cmd, "Accepted for compatibility (composefs-rs's testing command); unused");
  if (auto rc = tools::parse_command_line(app, argc, argv, kTool)) return *rc;

  auto cfg = setuproot::load_config(config);
  if (!cfg) return tools::fail(kTool, std::move(cfg.error()).context("config"));
  setuproot::Options opts;
  opts.sysroot = sysroot;
  opts.config = *cfg;
  if (*cmdline_opt) opts.cmdline = cmdline;
  if (*root_fs_opt) opts.root_fs = root_fs;
  auto seq = setuproot::parse_mount_sequence(sequence);
  if (!seq) return tools::fail(kTool, std::move(seq.error()).context("--mount-sequence"));
  opts.sequence = *seq;
  if (*release_opt) opts.kernel_release = release;
  opts.dev_dir = dev_dir;
  opts.run_dir = run_dir;
  auto r = setuproot::setup_root(opts);
  if (!r) return tools::fail(kTool, r.error());
  for (const std::string& n : r->notes) std::fprintf(stderr, "%s: %s\n", kTool, n.c_str());
  std::fprintf(stderr, "%s: mounted composefs image %s at %s (mount sequence %s)\n", kTool,
               r->hex.c_str(), sysroot.c_str(), std::string(to_string(r->sequence)).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return tools::guarded_main(kTool, argc, argv, run); }
