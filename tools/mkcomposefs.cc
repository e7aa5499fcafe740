// SPDX-License-Identifier: Apache-2.0
// mkcomposefs: build a composefs image from a directory or a dump file.
// Option-compatible with the C reference; the same input and options give
// the same image bytes.  --min-version=2 (our extension; the reference stops
// at 1) writes composefs-rs's format 2 instead.
#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <optional>

#include "common.h"
#include "composefs-cpp/base/cpu.h"
#include "composefs-cpp/base/fd.h"
#include "composefs-cpp/dump/dump.h"
#include "composefs-cpp/erofs/format.h"
#include "composefs-cpp/erofs/writer.h"
#include "composefs-cpp/fsverity/fsverity.h"
#include "composefs-cpp/scan/scan.h"

using namespace cfs;

namespace {

constexpr const char* kTool = "mkcomposefs";

struct Args {
  std::string source;
  std::string image;
  bool from_file = false;
  std::string digest_store;
  bool print_digest = false;
  bool print_digest_only = false;
  bool use_epoch = false;
  bool skip_devices = false;
  bool skip_xattrs = false;
  bool user_xattrs = false;
  bool hardlinks = false;
  std::optional<std::string> min_version, max_version;
  std::optional<std::string> threads;
};

Result<uint32_t> parse_number(const std::string& s, const char* what) {
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(s.c_str(), &end, 10);
  if (s.empty() || *end || errno || v < 0 || v > INT32_MAX)
    return errorf(Errc::InvalidArgument, "invalid {} '{}'", what, s);
  return static_cast<uint32_t>(v);
}

Result<Tree> load_tree(const Args& a, std::optional<scan::DigestStore>& store) {
  if (a.from_file) {
    dump::ParseOptions po;
    po.strict = std::getenv("CFS_PARSE_STRICT") != nullptr;
    if (a.source == "-") {
      auto t = dump::parse_fd(STDIN_FILENO, po);
      if (!t) return tl::unexpected(std::move(t.error()).context("<stdin>"));
      return t;
    }
    CFS_TRY_ASSIGN(UniqueFd fd, open_at(AT_FDCWD, a.source, O_RDONLY));
    auto t = dump::parse_fd(fd.get(), po);
    if (!t) return tl::unexpected(std::move(t.error()).context(a.source));
    return t;
  }
  scan::Options so;
  so.use_epoch = a.use_epoch;
  so.skip_devices = a.skip_devices;
  so.skip_xattrs = a.skip_xattrs;
  so.user_xattrs = a.user_xattrs;
  so.hardlinks = a.hardlinks;
  if (a.threads) {
    CFS_TRY_ASSIGN(uint32_t n, parse_number(*a.threads, "threads count"));
    if (n == 0) return errorf(Errc::InvalidArgument, "invalid threads count {}", n);
    so.threads = n;
  }
  if (!a.digest_store.empty()) {
    CFS_TRY_ASSIGN(scan::DigestStore s, scan::DigestStore::open(a.digest_store));
    store.emplace(std::move(s));
    const scan::DigestStore* sp = &*store;
    so.store = [sp](const scan::ObjectSource& src, const fsverity::Digest& d) {
      return sp->store(src, d);
    };
  }
  CFS_TRY_ASSIGN(Tree tree, scan::scan_directory(a.source, so));
  // Objects reach the disk before an image that names them exists.
  if (store) CFS_TRY(store->sync());
  return tree;
}

int run(const Args& a) {
  erofs::WriteOptions wo;
  if (a.min_version || a.max_version) {
    wo.min_version = 0;
    wo.max_version = 0;
    if (a.min_version) {
      auto v = parse_number(*a.min_version, "min version");
      if (!v) return tools::fail(kTool, v.error());
      wo.min_version = *v;
    }
    if (a.max_version) {
      auto v = parse_number(*a.max_version, "max version");
      if (!v) return tools::fail(kTool, v.error());
      wo.max_version = *v;
    }
  }
  if (wo.min_version > erofs::kMaxFormatVersion || wo.max_version > erofs::kMaxFormatVersion)
    return tools::fail(
        kTool, Error(Errc::InvalidArgument, fmt::format("unsupported format version (at most {})",
                                                        erofs::kMaxFormatVersion)));
  if (!a.print_digest_only && a.image == "-" && ::isatty(STDOUT_FILENO))
    return tools::fail(kTool, Error(Errc::InvalidArgument, "stdout is a tty, refusing to use it"));

  std::optional<scan::DigestStore> store;
  auto tree = load_tree(a, store);
  if (!tree) return tools::fail(kTool, tree.error());

  std::optional<AtomicFile> file;
  int out_fd = -1;
  if (!a.print_digest_only) {
    if (a.image == "-") {
      out_fd = STDOUT_FILENO;
    } else {
      auto f = AtomicFile::create(a.image);
      if (!f) return tools::fail(kTool, f.error());
      file.emplace(std::move(*f));
      out_fd = file->fd();
    }
  }
  std::optional<fsverity::Hasher> hasher;
  if (a.print_digest) hasher.emplace();
  auto written = erofs::write_image(*tree, wo, [&](std::span<const uint8_t> b) -> Status {
    if (hasher) hasher->update(b);
    if (out_fd >= 0) {
      auto st = write_full(out_fd, std::as_bytes(b));
      if (!st)
        return tl::unexpected(
            std::move(st.error())
                .context(fmt::format("writing '{}'", a.image == "-" ? "<stdout>" : a.image)));
    }
    return {};
  });
  if (!written) return tools::fail(kTool, written.error());
  if (file) {
    auto st = file->commit();
    if (!st) return tools::fail(kTool, st.error());
  }
  if (hasher) std::printf("%s\n", hasher->finish().hex().c_str());
  if (std::fflush(stdout) != 0) return tools::fail(kTool, Error(Errc::Io, "cannot write stdout"));
  return 0;
}

}  // namespace

static int tool_main(int argc, char** argv) {
  Args a;
  CLI::App app{"Build a composefs image from a directory or a dump file", kTool};
  app.set_help_flag("-h,--help", "Show this help");
  app.add_option("SOURCE", a.source, "Source directory, or dump file with --from-file ('-': stdin)")
      ->required();
  app.add_option("IMAGE", a.image, "Image to write ('-': stdout)");
  app.add_flag("--from-file", a.from_file, "The source is a dump file, not a directory");
  app.add_option("--digest-store", a.digest_store, "Store content files in this directory");
  app.add_flag("--print-digest", a.print_digest, "Print the fs-verity digest of the image");
  app.add_flag("--print-digest-only", a.print_digest_only,
               "Print the digest of the image, don't write the image");
  app.add_flag("--use-epoch", a.use_epoch, "Make all mtimes zero");
  app.add_flag("--skip-devices", a.skip_devices, "Don't store device nodes");
  app.add_flag("--skip-xattrs", a.skip_xattrs, "Don't store file xattrs");
  app.add_flag("--user-xattrs", a.user_xattrs, "Only store user.* xattrs");
  app.add_flag("--hardlinks", a.hardlinks,
               "Keep hardlinked files as one inode (changes the image digest; "
               "the C reference stores each link as its own inode)");
  app.add_option("--min-version", a.min_version,
                 "Minimal format version (default 0; 2: composefs-rs's own layout)");
  app.add_option("--max-version", a.max_version, "Maximal format version (default 1)");
  app.add_option("--threads", a.threads,
                 fmt::format("Threads for digests and copies (default {})", default_threads()));
  if (auto code = tools::parse_command_line(app, argc, argv, kTool)) return *code;
  if (a.print_digest_only) {
    a.print_digest = true;
    if (!a.image.empty())
      return tools::usage_error(kTool, "cannot specify an image path with --print-digest-only");
  } else if (a.image.empty()) {
    return tools::usage_error(kTool, "no image path specified");
  }
  if (a.source.empty()) return tools::usage_error(kTool, "empty source path specified");
  return run(a);
}

int main(int argc, char** argv) { return cfs::tools::guarded_main(kTool, argc, argv, tool_main); }
