// SPDX-License-Identifier: Apache-2.0
// The composefs dump format (composefs-dump(5)): one inode per line,
//   PATH SIZE MODE NLINK UID GID RDEV MTIME PAYLOAD CONTENT DIGEST [XATTR...]
// Parsing follows the C reference's mkcomposefs (its accepted inputs give the
// same tree; its strict mode is an option), while refusing the malformed
// inputs it silently mangles (bad digests, unparseable numbers, NUL bytes).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "composefs-cpp/base/error.h"
#include "composefs-cpp/tree/tree.h"

namespace cfs::dump {

struct ParseOptions {
  // The reference's CFS_PARSE_STRICT: also refuse a missing final newline,
  // rdev on non-devices, and symlinks with a wrong size or with content.
  bool strict = false;
};

// Incremental parser: feed bytes in any chunking, then finish().
class Parser {
 public:
  explicit Parser(ParseOptions opts = {});
  Parser(Parser&&) noexcept;
  ~Parser();
  Status feed(std::string_view data);
  // Resolves hardlinks and returns the tree.
  Result<Tree> finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

Result<Tree> parse(std::string_view data, const ParseOptions& opts = {});
// Reads a dump from a file descriptor.
Result<Tree> parse_fd(int fd, const ParseOptions& opts = {});

// Escaping as the reference's composefs-info writes it.
enum EscapeFlags : unsigned {
  kEscapeStandard = 0,
  kEscapeEqual = 1,     // '=' as \x3d (xattr keys and values)
  kEscapeLoneDash = 2,  // a value that is exactly "-" as \x2d
  kNoEscapeSpace = 4,   // keep spaces (used by `composefs-info ls`)
};
void escape_to(std::string& out, std::string_view s, unsigned flags);
std::string escape(std::string_view s, unsigned flags);
// Inverse of escape: \\ \n \r \t \xHH.
Result<std::string> unescape(std::string_view s);

// Writes the tree as a dump: depth-first, children in name order, the root
// first; hardlink entries as '@' lines naming their target's path.
void write(const Tree& tree, const std::function<void(std::string_view)>& out);
std::string to_string(const Tree& tree);

}  // namespace cfs::dump
