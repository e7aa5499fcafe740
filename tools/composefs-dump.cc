// SPDX-License-Identifier: Apache-2.0
// composefs-dump: load an image through the reader and write it back out
// through the writer, in the image's own format version.  For any image the
// reference's mkcomposefs wrote, the output is byte-identical to the input.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "common.h"
#include "composefs-cpp/base/fd.h"
#include "composefs-cpp/erofs/format.h"
#include "composefs-cpp/erofs/reader.h"
#include "composefs-cpp/erofs/writer.h"

using namespace cfs;

namespace {

constexpr const char* kTool = "composefs-dump";

int run(const std::string& src, const std::string& dst) {
  auto fd = open_at(AT_FDCWD, src, O_RDONLY | O_CLOEXEC);
  if (!fd) return tools::fail(kTool, fd.error());
  auto img = erofs::Image::open(fd->get());
  if (!img)
    return tools::fail(kTool, Error(img.error()).context(fmt::format("failed to load '{}'", src)));
  auto tree = img->to_tree();
  if (!tree)
    return tools::fail(kTool, Error(tree.error()).context(fmt::format("failed to load '{}'", src)));
  erofs::WriteOptions wo;
  wo.min_version = wo.max_version = img->composefs_version();
  if (wo.min_version > erofs::kMaxFormatVersion)
    return tools::fail(kTool, Error(Errc::Unsupported,
                                    fmt::format("'{}' has composefs format version {} (at most {})",
                                                src, wo.min_version, erofs::kMaxFormatVersion)));
  auto out = AtomicFile::create(dst, 0644);
  if (!out) return tools::fail(kTool, out.error());
  auto st = erofs::write_image(*tree, wo, [&](std::span<const uint8_t> b) -> Status {
    auto w = write_full(out->fd(), std::as_bytes(b));
    if (!w) return tl::unexpected(std::move(w.error()).context(fmt::format("writing '{}'", dst)));
    return {};
  });
  if (!st) return tools::fail(kTool, st.error());
  auto c = out->commit();
  if (!c) return tools::fail(kTool, c.error());
  return 0;
}

}  // namespace

static int tool_main(int argc, char** argv) {
  std::string src, dst;
  CLI::App app{"Load a composefs image and write it out again", kTool};
  app.set_help_flag("-h,--help", "Show this help");
  app.add_option("SRC", src, "Image to read");
  app.add_option("DEST", dst, "Image to write");
  if (auto code = tools::parse_command_line(app, argc, argv, kTool)) return *code;
  if (src.empty()) return tools::usage_error(kTool, "no source path specified");
  if (dst.empty()) return tools::usage_error(kTool, "no destination path specified");
  return run(src, dst);
}

int main(int argc, char** argv) { return cfs::tools::guarded_main(kTool, argc, argv, tool_main); }
