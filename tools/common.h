// SPDX-License-Identifier: Apache-2.0
// Shared by the tools: "tool: error: message" diagnostics and exit codes.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdio>
#include <optional>
#include <string>

#include "composefs-cpp/base/error.h"
#include "composefs-cpp/dump/dump.h"

namespace cfs::tools {

// Exit status 1 for any failure, 2 for bad usage (as getopt tools do).
inline int fail(const char* tool, const Error& e) {
  std::fprintf(stderr, "%s: error: %s\n", tool, e.message().c_str());
  return 1;
}

// Runs a tool's main: whatever escapes it (out of memory, a library's
// exception) is reported as an error naming the command line, with exit
// status 1, instead of aborting the process.
inline int guarded_main(const char* tool, int argc, char** argv, int (*body)(int, char**)) {
  try {
    return body(argc, argv);
  } catch (...) {
    Error e = exception_error(std::current_exception());
    std::string cmd;
    for (int i = 1; i < argc; i++) {
      if (i > 1) cmd += ' ';
      cmd += argv[i];
    }
    std::fprintf(stderr, "%s: error: %s (running: %s %s)\n", tool, e.message().c_str(), tool,
                 cmd.c_str());
    return 1;
  }
}

inline int usage_error(const char* tool, const std::string& msg) {
  std::fprintf(stderr, "%s: %s\nTry '%s --help' for more information.\n", tool, msg.c_str(), tool);
  return 2;
}

// Parses the command line; an exit status when the tool should stop there
// (help printed: 0; bad usage: 2).
inline std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv,
                                             const char* tool) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return usage_error(tool, e.what());
  }
  return std::nullopt;
}

// Writes `tree` as a dump file to stdout, in 64 KiB pieces.
inline void print_dump(const Tree& tree) {
  std::string out;
  auto flush = [&] {
    std::fwrite(out.data(), 1, out.size(), stdout);
    out.clear();
  };
  dump::write(tree, [&](std::string_view s) {
    out += s;
    if (out.size() > (1 << 16)) flush();
  });
  flush();
}

}  // namespace cfs::tools
