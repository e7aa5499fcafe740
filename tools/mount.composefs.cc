// SPDX-License-Identifier: Apache-2.0
// mount.composefs: mount a composefs image, directly or as the mount(8)
// helper for "mount -t composefs".  Option-compatible with the C reference.
#include "composefs-cpp/mount/mount.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "common.h"
#include "composefs-cpp/base/fd.h"
#include "composefs-cpp/mount/options.h"

using namespace cfs;

namespace {

constexpr const char* kTool = "mount.composefs";

// mount(8)'s exit statuses: 1 bad usage, 32 the mount failed.
constexpr int kExitUsage = 1;
constexpr int kExitMountFailure = 32;

constexpr const char* kOptionsHelp =
    R"(Options (-o, comma-separated; '\,' is a comma inside a value):
  basedir=DIR[:DIR...]  object directories, searched in order (required)
  digest=DIGEST         the image's fs-verity digest must be this; implies verity
  verity                every file's fs-verity digest is enforced; fails at mount
                        time where the kernel or the object store lacks fs-verity
  tryverity             verity where the kernel and store support it, else
                        mount without it (said on stderr)
  noverity              no file content checks (the default without digest=)
  insecure              with digest=: if the image has no fs-verity, compute its
                        digest from its contents instead of refusing
  upperdir=DIR,workdir=DIR  a writable overlay on top
  idmap=PATH            show owners mapped through this user namespace
                        (e.g. /proc/PID/ns/user)
  ro, rw                read-only (default without upperdir) or read-write
  nosuid, nodev, noexec, noatime, ...  applied to the mount
Exit status: 0 mounted, 1 bad usage, 32 the mount failed.)";

int usage(const std::string& msg) {
  std::fprintf(stderr, "%s: %s\nTry '%s --help' for more information.\n", kTool, msg.c_str(),
               kTool);
  return kExitUsage;
}

int mount_failed(const std::string& image, const Error& e) {
  std::fprintf(stderr, "%s: failed to mount composefs %s: %s\n", kTool, image.c_str(),
               e.message().c_str());
  return kExitMountFailure;
}

// -N: a mount namespace as a path or a PID.
Status enter_namespace(const std::string& ns) {
  bool pid = !ns.empty() && ns.find_first_not_of("0123456789") == std::string::npos;
  std::string path = pid ? "/proc/" + ns + "/ns/mnt" : ns;
  CFS_TRY_ASSIGN(UniqueFd fd, open_at(AT_FDCWD, path, O_RDONLY));
  if (::setns(fd.get(), CLONE_NEWNS) < 0)
    return sys_error(fmt::format("cannot enter mount namespace '{}'", path));
  return {};
}

}  // namespace

static int tool_main(int argc, char** argv) {
  std::string image, mountpoint, fstype, ns;
  std::vector<std::string> option_strings;
  bool sloppy = false, fake = false, nomtab = false, verbose = false;

  CLI::App app{"Mount a composefs image", kTool};
  app.set_help_flag("-h,--help", "Show this help");
  app.footer(kOptionsHelp);
  app.add_option("IMAGE", image, "The composefs image")->required();
  app.add_option("MOUNTPOINT", mountpoint, "Where to mount it")->required();
  app.add_option("-o", option_strings, "Mount options (see below)")->allow_extra_args(false);
  app.add_option("-t", fstype, "Filesystem type: composefs");
  app.add_flag("-s", sloppy, "Ignore unknown options (mount -s)");
  app.add_flag("-f", fake, "Check the options and open the image, but do not mount (mount -f)");
  app.add_flag("-n", nomtab, "Accepted for mount(8); there is no mtab to write");
  app.add_flag("-v", verbose, "Say how the image was mounted");
  app.add_option("-N", ns, "Mount in this mount namespace (a path or a PID)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return usage(e.what());
  }
  (void)nomtab;
  if (!fstype.empty() && fstype != "composefs")
    return usage(fmt::format("unsupported filesystem type '{}'", fstype));

  std::string joined;
  for (const std::string& s : option_strings) joined += (joined.empty() ? "" : ",") + s;
  auto parsed = mount::parse_options(joined, sloppy);
  if (!parsed) return usage(parsed.error().message());
  if (verbose)
    for (const std::string& k : parsed->ignored)
      std::fprintf(stderr, "%s: ignoring option '%s'\n", kTool, k.c_str());

  if (!ns.empty()) {
    if (auto st = enter_namespace(ns); !st) return mount_failed(image, st.error());
  }
  mount::Options& opts = parsed->options;
  UniqueFd userns;
  if (parsed->idmap) {
    auto fd = open_at(AT_FDCWD, *parsed->idmap, O_RDONLY | O_NOCTTY);
    if (!fd) return mount_failed(image, std::move(fd.error()).context("idmap"));
    userns = std::move(*fd);
    opts.idmap_userns_fd = userns.get();
  }
  auto image_fd = open_at(AT_FDCWD, image, O_RDONLY);
  if (!image_fd) return mount_failed(image, image_fd.error());
  if (fake) {
    if (verbose) std::fprintf(stderr, "%s: -f: not mounting %s\n", kTool, image.c_str());
    return 0;
  }
  auto m = mount::mount_image_fd(image_fd->get(), mountpoint, opts);
  if (!m) return mount_failed(image, m.error());
  for (const std::string& note : m->notes)
    std::fprintf(stderr, "%s: note: %s\n", kTool, note.c_str());
  if (verbose)
    std::fprintf(stderr, "%s: mounted %s on %s (erofs: %s, overlay: %s, verity: %s)\n", kTool,
                 image.c_str(), mountpoint.c_str(), mount::to_string(m->erofs_method).data(),
                 mount::to_string(m->overlay_method).data(), mount::to_string(m->verity).data());
  return 0;
}

int main(int argc, char** argv) { return cfs::tools::guarded_main(kTool, argc, argv, tool_main); }
