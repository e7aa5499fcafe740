// SPDX-License-Identifier: Apache-2.0
// composefs-info: list, dump and inspect composefs images, and measure the
// fs-verity digest of files.  Option- and output-compatible with the C
// reference's composefs-info.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "common.h"
#include "composefs-cpp/base/fd.h"
#include "composefs-cpp/dump/dump.h"
#include "composefs-cpp/erofs/reader.h"
#include "composefs-cpp/fsverity/fsverity.h"

using namespace cfs;

namespace {

constexpr const char* kTool = "composefs-info";
constexpr const char* kUsage =
    "usage: composefs-info [--basedir=path] [--filter=name]... "
    "[ls|objects|dump|missing-objects|measure-file] IMAGES...";

// Buffered stdout: images can list millions of lines.
class Output {
 public:
  Output() { buf_.reserve(kCap); }
  void put(std::string_view s) {
    buf_.append(s);
    if (buf_.size() >= kCap) flush();
  }
  bool flush() {
    if (!buf_.empty() && std::fwrite(buf_.data(), 1, buf_.size(), stdout) != buf_.size())
      ok_ = false;
    buf_.clear();
    return ok_ && std::fflush(stdout) == 0;
  }

 private:
  static constexpr size_t kCap = 1 << 20;
  std::string buf_;
  bool ok_ = true;
};

// As the reference: the root is not listed; directories end in "/\t",
// symlinks show "-> target" and external files "@ object"; hardlinks
// (which the reference keeps without a mode) show their path only.
void list_node(const Node* dir, std::string& path, std::string& line, Output& out) {
  for (const Node* c : dir->children) {
    size_t len = path.size();
    path += '/';
    path += c->name;
    line.clear();
    dump::escape_to(line, path, dump::kNoEscapeSpace);
    if (!c->link_to) {
      if (c->is_dir()) {
        line += "/\t";
      } else if (c->type() == S_IFLNK && c->payload) {
        line += "\t-> ";
        dump::escape_to(line, *c->payload, dump::kEscapeStandard);
      } else if (c->is_reg() && c->payload) {
        line += "\t@ ";
        dump::escape_to(line, *c->payload, dump::kEscapeStandard);
      }
    }
    line += '\n';
    out.put(line);
    list_node(c, path, line, out);
    path.resize(len);
  }
}

Result<erofs::Image> open_image(const std::string& path) {
  CFS_TRY_ASSIGN(UniqueFd fd, open_at(AT_FDCWD, path, O_RDONLY | O_CLOEXEC));
  auto img = erofs::Image::open(fd.get());
  if (!img)
    return tl::unexpected(std::move(img.error()).context(fmt::format("failed to load '{}'", path)));
  return img;
}

// Below this, a second thread does not pay for itself.
constexpr off_t kParallelMin = 16 << 20;

int measure_files(const std::vector<std::string>& files) {
  if (files.empty()) {
    std::fprintf(stderr, "No files specified\n%s\n", kUsage);
    return 2;
  }
  Output out;
  for (const auto& f : files) {
    auto fd = open_at(AT_FDCWD, f, O_RDONLY | O_CLOEXEC);
    if (!fd) return tools::fail(kTool, fd.error());
    // A large dense file is hashed on every core; others (small, sparse,
    // not regular) take the one-thread path, which skips holes.
    struct stat st;
    bool parallel = ::fstat(fd->get(), &st) == 0 && S_ISREG(st.st_mode) &&
                    st.st_size >= kParallelMin &&
                    static_cast<uint64_t>(st.st_blocks) * 512 >= static_cast<uint64_t>(st.st_size);
    auto d = parallel
                 ? fsverity::digest_of_file_parallel(fd->get(), static_cast<uint64_t>(st.st_size))
                 : fsverity::digest_of_fd(fd->get());
    if (!d)
      return tools::fail(kTool, Error(d.error()).context(fmt::format("failed to measure '{}'", f)));
    out.put(d->hex());
    out.put("\n");
  }
  if (!out.flush()) return tools::fail(kTool, Error(Errc::Io, "cannot write to stdout"));
  return 0;
}

struct Args {
  std::string basedir;
  std::vector<std::string> filter;
  std::string command;
  std::vector<std::string> images;
};

int run(const Args& a) {
  if (a.command == "measure-file") return measure_files(a.images);
  enum { kLs, kDump, kObjects, kMissing } cmd;
  if (a.command == "ls")
    cmd = kLs;
  else if (a.command == "dump")
    cmd = kDump;
  else if (a.command == "objects")
    cmd = kObjects;
  else if (a.command == "missing-objects")
    cmd = kMissing;
  else
    return tools::fail(
        kTool, Error(Errc::InvalidArgument, fmt::format("unknown command '{}'", a.command)));

  // Without --basedir nothing is present (the reference then looks objects
  // up relative to its stdin, which is not a directory).
  UniqueFd basedir;
  if (!a.basedir.empty()) {
    auto fd = open_at(AT_FDCWD, a.basedir, O_RDONLY | O_CLOEXEC | O_DIRECTORY | O_PATH);
    if (!fd)
      return tools::fail(kTool, Error(fd.error()).context(fmt::format("can't open basedir")));
    basedir = std::move(*fd);
  }
  if (a.images.empty()) {
    std::fprintf(stderr, "No image path specified\n%s\n", kUsage);
    return 2;
  }

  erofs::ReadOptions ro;
  ro.toplevel_filter = a.filter;
  Output out;
  std::vector<std::string> objects;  // sorted by bytes (as strcmp) and deduplicated at the end
  std::string path, line;
  for (const auto& image_path : a.images) {
    auto img = open_image(image_path);
    if (!img) {
      if (cmd == kLs || cmd == kDump) out.flush();
      return tools::fail(kTool, img.error());
    }
    if (cmd == kObjects || cmd == kMissing) {
      auto st = img->for_each_object(
          [&](const erofs::ObjectRef& o) -> Status {
            if (o.payload) objects.emplace_back(*o.payload);
            return {};
          },
          ro);
      if (!st)
        return tools::fail(
            kTool, Error(st.error()).context(fmt::format("failed to load '{}'", image_path)));
      continue;
    }
    auto tree = img->to_tree(ro);
    if (!tree) {
      out.flush();  // earlier images stay listed, as with the reference
      return tools::fail(
          kTool, Error(tree.error()).context(fmt::format("failed to load '{}'", image_path)));
    }
    if (cmd == kDump) {
      dump::write(*tree, [&](std::string_view s) { out.put(s); });
    } else {
      path.clear();
      list_node(tree->root(), path, line, out);
    }
  }
  std::sort(objects.begin(), objects.end());
  objects.erase(std::unique(objects.begin(), objects.end()), objects.end());
  for (const auto& o : objects) {
    if (cmd == kMissing && basedir) {
      std::string_view rel = o;
      while (!rel.empty() && rel.front() == '/') rel.remove_prefix(1);
      struct stat sb;
      if (::fstatat(basedir.get(), std::string(rel).c_str(), &sb, AT_EMPTY_PATH) == 0) continue;
    }
    out.put(o);
    out.put("\n");
  }
  if (!out.flush()) return tools::fail(kTool, Error(Errc::Io, "cannot write to stdout"));
  return 0;
}

}  // namespace

static int tool_main(int argc, char** argv) {
  Args a;
  CLI::App app{"Show the contents of composefs images", kTool};
  app.set_help_flag("-h,--help", "Show this help");
  app.add_option("--basedir", a.basedir, "Directory holding the objects (for missing-objects)");
  app.add_option("--filter", a.filter, "Only show this top-level entry (repeatable)")
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.add_option("COMMAND", a.command, "ls, objects, missing-objects, dump or measure-file");
  app.add_option("IMAGES", a.images, "Images (or files, for measure-file)");
  app.footer(kUsage);
  if (auto code = tools::parse_command_line(app, argc, argv, kTool)) return *code;
  if (a.command.empty()) {
    std::fprintf(stderr, "No command specified\n%s\n", kUsage);
    return 2;
  }
  for (const auto& f : a.filter)
    if (f.find('/') != std::string::npos)
      return tools::fail(
          kTool, Error(Errc::InvalidArgument, fmt::format("filter must be a single name: {}", f)));
  return run(a);
}

int main(int argc, char** argv) { return cfs::tools::guarded_main(kTool, argc, argv, tool_main); }
