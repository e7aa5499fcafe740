// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/dump/dump.h"

#include <unistd.h>

#include <vector>

#include "composefs-cpp/base/hex.h"

namespace cfs::dump {

// ---------------------------------------------------------------- escaping

void escape_to(std::string& out, std::string_view s, unsigned flags) {
  if ((flags & kEscapeLoneDash) && s == "-") {
    out += "\\x2d";
    return;
  }
  static const char digits[] = "0123456789abcdef";
  for (unsigned char c : s) {
    switch (c) {
      case '\\': out += "\\\\"; continue;
      case '\n': out += "\\n"; continue;
      case '\r': out += "\\r"; continue;
      case '\t': out += "\\t"; continue;
      default: break;
    }
    bool hex;
    if (c == '=')
      hex = flags & kEscapeEqual;
    else if (flags & kNoEscapeSpace)
      hex = c < 0x20 || c > 0x7e;  // !isprint in the C locale
    else
      hex = c < 0x21 || c > 0x7e;  // !isgraph in the C locale
    if (hex) {
      out += "\\x";
      out += digits[c >> 4];
      out += digits[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
}

std::string escape(std::string_view s, unsigned flags) {
  std::string out;
  out.reserve(s.size());
  escape_to(out, s, flags);
  return out;
}

Result<std::string> unescape(std::string_view s) {
  size_t first = s.find('\\');
  if (first == std::string_view::npos) return std::string(s);
  std::string out;
  out.reserve(s.size());
  out.append(s.substr(0, first));
  for (size_t i = first; i < s.size(); i++) {
    char c = s[i];
    if (c != '\\') {
      size_t next = s.find('\\', i);
      if (next == std::string_view::npos) next = s.size();
      out.append(s.substr(i, next - i));
      i = next - 1;
      continue;
    }
    if (++i >= s.size()) return make_error(Errc::Corrupt, "no character after escape '\\'");
    switch (s[i]) {
      case '\\': out += '\\'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'x': {
        if (i + 2 >= s.size())
          return make_error(Errc::Corrupt, "no hex characters after hex escape '\\x'");
        int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
        if (hi < 0 || lo < 0)
          return make_error(Errc::Corrupt, "invalid hex characters after hex escape '\\x'");
        out += static_cast<char>(hi << 4 | lo);
        i += 2;
        break;
      }
      default: {
        unsigned char u = static_cast<unsigned char>(s[i]);
        if (u >= 0x21 && u <= 0x7e) return errorf(Errc::Corrupt, "unsupported escape '\\{}'", s[i]);
        return errorf(Errc::Corrupt, "unsupported escape '\\\\x{:02x}'", u);
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------- parsing

namespace {

// Cuts the next `sep`-separated field off the front of `rest`, as the
// reference's split_at does (a missing separator takes all that remains).
std::string_view split_field(std::string_view& rest, char sep) {
  size_t pos = rest.find(sep);
  if (pos == std::string_view::npos) {
    std::string_view f = rest;
    rest = {};
    return f;
  }
  std::string_view f = rest.substr(0, pos);
  rest.remove_prefix(pos + 1);
  return f;
}

// Unsigned integer in `base` with an optional sign ('-' wraps, as strtoull
// does: composefs-info prints negative mtimes that must read back).
Result<uint64_t> parse_uint(std::string_view s, int base, std::string_view what) {
  std::string_view orig = s;
  bool neg = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    neg = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s.empty()) return errorf(Errc::Corrupt, "invalid {} '{}'", what, orig);
  uint64_t v = 0;
  for (char c : s) {
    int d = hex_value(c);
    if (d < 0 || d >= base) return errorf(Errc::Corrupt, "invalid {} '{}'", what, orig);
    if (__builtin_mul_overflow(v, static_cast<uint64_t>(base), &v) ||
        __builtin_add_overflow(v, static_cast<uint64_t>(d), &v))
      return errorf(Errc::Corrupt, "{} '{}' is out of range", what, orig);
  }
  return neg ? 0 - v : v;
}

std::optional<std::string_view> optional_field(std::string_view f) {
  if (f == "-") return std::nullopt;
  return f;
}

Status check_no_nul(std::string_view s, std::string_view what) {
  if (s.find('\0') != std::string_view::npos)
    return errorf(Errc::Corrupt, "{} contains a NUL byte", what);
  return {};
}

// Longest line accepted: far above any valid entry (a 4 KiB path escaped 4x,
// 5000 bytes of content escaped 4x, 64 KiB of xattrs), bounding memory.
constexpr size_t kMaxLine = 16 << 20;

}  // namespace

struct Parser::Impl {
  ParseOptions opts;
  Tree tree;
  std::string partial;  // an incomplete line carried between feed() calls
  uint64_t line_no = 0;
  struct Fixup {
    Node* node;
    std::optional<std::string> target;
    uint64_t line;
  };
  std::vector<Fixup> fixups;

  tl::unexpected<Error> line_error(Error e) const {
    return tl::unexpected(std::move(e).context(fmt::format("line {}", line_no)));
  }

  Status parse_line(std::string_view line) {
    auto r = parse_line_inner(line);
    if (!r) return line_error(std::move(r.error()));
    return {};
  }

  Result<Node*> add_node(const std::string& path, Node* node) {
    if (path == "/") {
      if (!node->is_dir()) return make_error(Errc::Corrupt, "the root must be a directory");
      if (tree.root()) return make_error(Errc::Corrupt, "a second root entry '/'");
      tree.set_root(node);
      return node;
    }
    if (!tree.root()) return make_error(Errc::Corrupt, "the first entry must be the root '/'");
    // Leading and repeated slashes are ignored; the final component is the name.
    size_t start = path.find_first_not_of('/');
    std::string_view rest =
        std::string_view(path).substr(start == std::string::npos ? path.size() : start);
    size_t last = rest.rfind('/');
    std::string_view dir =
        last == std::string_view::npos ? std::string_view() : rest.substr(0, last);
    std::string_view name = last == std::string_view::npos ? rest : rest.substr(last + 1);
    Node* parent = tree.root();
    size_t depth = 1;
    while (!dir.empty()) {
      std::string_view comp = split_field(dir, '/');
      if (comp.empty()) continue;
      if (++depth > kMaxDepth)
        return errorf(Errc::TooBig, "path '{}' is nested deeper than {} levels", path, kMaxDepth);
      parent = parent->find_child(comp);
      if (!parent) return errorf(Errc::Corrupt, "parent directory missing for '{}'", path);
    }
    if (!parent->is_dir()) return errorf(Errc::Corrupt, "parent of '{}' is not a directory", path);
    if (name == "." || name == "..")
      return errorf(Errc::Corrupt, "invalid . or .. in path '{}'", path);
    auto st = tree.add_child(parent, std::string(name), node);
    if (!st) return tl::unexpected(std::move(st.error()).context(fmt::format("path '{}'", path)));
    return node;
  }

  Status parse_line_inner(std::string_view line) {
    if (auto pos = line.find('\0'); pos != std::string_view::npos)
      return errorf(Errc::Corrupt, "invalid embedded NUL character at position {}", pos);
    std::string_view rest = line;
    std::string_view f[11];
    for (auto& field : f) field = split_field(rest, ' ');
    enum { PATH, SIZE, MODE, NLINK, UID, GID, RDEV, MTIME, PAYLOAD, CONTENT, DIGEST };

    CFS_TRY_ASSIGN(std::string path, unescape(f[PATH]));
    if (path.empty()) return make_error(Errc::Corrupt, "invalid empty path");
    CFS_TRY(check_no_nul(path, "path"));

    std::string_view mode_field = f[MODE];
    bool hardlink = !mode_field.empty() && mode_field[0] == '@';
    if (hardlink) mode_field.remove_prefix(1);
    CFS_TRY_ASSIGN(uint64_t mode, parse_uint(mode_field, 8, "mode"));
    if (!valid_file_type(static_cast<uint32_t>(mode)))
      return errorf(Errc::Corrupt, "invalid file type in mode {:o}", mode);

    Node* node = tree.new_node();
    node->mode = static_cast<uint32_t>(mode);
    CFS_TRY(add_node(path, node));

    if (hardlink) {
      // Only the target matters; the other fields are not read (as in C).
      if (node->is_dir()) return make_error(Errc::Corrupt, "directories can't be hardlinked");
      std::optional<std::string> target;
      if (auto t = optional_field(f[PAYLOAD])) {
        CFS_TRY_ASSIGN(target, unescape(*t));
        CFS_TRY(check_no_nul(*target, "hardlink target"));
      }
      fixups.push_back({node, std::move(target), line_no});
      return {};
    }

    CFS_TRY_ASSIGN(uint64_t size, parse_uint(f[SIZE], 10, "size"));
    CFS_TRY_ASSIGN(uint64_t nlink, parse_uint(f[NLINK], 10, "nlink"));
    CFS_TRY_ASSIGN(uint64_t uid, parse_uint(f[UID], 10, "uid"));
    CFS_TRY_ASSIGN(uint64_t gid, parse_uint(f[GID], 10, "gid"));
    CFS_TRY_ASSIGN(uint64_t rdev, parse_uint(f[RDEV], 10, "rdev"));
    std::string_view mt = f[MTIME];
    size_t dot = mt.find('.');
    if (dot == std::string_view::npos)
      return errorf(Errc::Corrupt, "invalid mtime '{}' (expected SEC.NSEC)", mt);
    CFS_TRY_ASSIGN(uint64_t msec, parse_uint(mt.substr(0, dot), 10, "mtime"));
    CFS_TRY_ASSIGN(uint64_t mnsec, parse_uint(mt.substr(dot + 1), 10, "mtime nanoseconds"));

    std::optional<std::string> payload, content;
    if (auto p = optional_field(f[PAYLOAD])) {
      CFS_TRY_ASSIGN(payload, unescape(*p));
      CFS_TRY(check_no_nul(*payload, "payload"));
    }
    if (auto c = optional_field(f[CONTENT])) {
      CFS_TRY_ASSIGN(content, unescape(*c));
      if (content->size() != size)
        return errorf(Errc::Corrupt, "invalid content size {}, must match size {}", content->size(),
                      size);
    }
    std::optional<fsverity::Digest> digest;
    if (auto d = optional_field(f[DIGEST]); d && !d->empty()) {
      CFS_TRY_ASSIGN(std::string hex, unescape(*d));
      digest = fsverity::Digest::from_hex(hex);
      if (!digest)
        return errorf(Errc::Corrupt, "invalid digest '{}' (expected 64 or 128 hex digits)", hex);
    }

    uint32_t type = node->type();
    node->size = size;
    node->nlink = static_cast<uint32_t>(nlink);
    node->uid = static_cast<uint32_t>(uid);
    node->gid = static_cast<uint32_t>(gid);
    if (type == S_IFCHR || type == S_IFBLK)
      node->rdev = rdev;
    else if (opts.strict && rdev != 0)
      return make_error(Errc::Corrupt, "non-zero rdev on a non-device");
    node->mtime_sec = static_cast<int64_t>(msec);
    node->mtime_nsec = static_cast<uint32_t>(mnsec);

    if (type == S_IFLNK) {
      if (!payload || payload->empty())
        return make_error(Errc::Corrupt, "symlink without a target");
      if (payload->size() >= kPathMax)
        return errorf(Errc::TooBig, "symlink target of {} bytes (must be shorter than {})",
                      payload->size(), kPathMax);
      if (opts.strict) {
        if (size != payload->size())
          return errorf(Errc::Corrupt, "invalid symlink size {}, must match target length {}", size,
                        payload->size());
        if (content && !content->empty())
          return make_error(Errc::Corrupt, "symlink cannot have content");
      }
      node->size = payload->size();
      node->payload = std::move(payload);
    } else {
      if (payload && payload->size() >= kPathMax)
        return errorf(Errc::TooBig, "payload of {} bytes (must be shorter than {})",
                      payload->size(), kPathMax);
      node->payload = std::move(payload);
      if (content) {
        if (content->size() > kMaxInlineContent)
          return errorf(Errc::TooBig, "inline content size {} exceeds maximum {}", content->size(),
                        kMaxInlineContent);
        // Content only means something for regular files; empty means none.
        if (type == S_IFREG && !content->empty()) node->content = std::move(content);
      }
    }
    node->digest = digest;

    // Bounds the quadratic cost of replacing duplicate keys (as in C).
    if (rest.size() > 65535)
      return errorf(Errc::TooBig, "too many xattrs ({} bytes, at most 65535)", rest.size());
    while (!rest.empty()) {
      std::string_view field = split_field(rest, ' ');
      size_t eq = field.find('=');
      if (eq == std::string_view::npos)
        return errorf(Errc::Corrupt, "missing '=' in xattr '{}'", escape(field, 0));
      CFS_TRY_ASSIGN(std::string key, unescape(field.substr(0, eq)));
      CFS_TRY_ASSIGN(std::string value, unescape(field.substr(eq + 1)));
      CFS_TRY(check_no_nul(key, "xattr name"));
      auto st = node->set_xattr_checked(key, value);
      if (!st)
        return tl::unexpected(
            std::move(st.error()).context(fmt::format("can't set xattr '{}'", escape(key, 0))));
    }
    return {};
  }

  Status feed(std::string_view data) {
    while (!data.empty()) {
      size_t nl = data.find('\n');
      if (nl == std::string_view::npos) {
        if (partial.size() + data.size() > kMaxLine)
          return errorf(Errc::TooBig, "line {} is longer than {} bytes", line_no + 1, kMaxLine);
        partial.append(data);
        return {};
      }
      line_no++;
      if (partial.empty()) {
        CFS_TRY(parse_line(data.substr(0, nl)));
      } else {
        partial.append(data.substr(0, nl));
        std::string line = std::move(partial);
        partial.clear();
        CFS_TRY(parse_line(line));
      }
      data.remove_prefix(nl + 1);
    }
    return {};
  }

  Result<Tree> finish() {
    if (!partial.empty()) {
      line_no++;
      if (opts.strict) return line_error(Error(Errc::Corrupt, "missing trailing newline"));
      std::string line = std::move(partial);
      partial.clear();
      CFS_TRY(parse_line(line));
    }
    if (!tree.root()) return make_error(Errc::Corrupt, "no files in dump file");
    // Hardlinks resolve after the whole file is read: forward references work.
    for (auto& fx : fixups) {
      line_no = fx.line;
      if (!fx.target) return line_error(Error(Errc::Corrupt, "no target path for the hardlink"));
      Node* target = tree.lookup(*fx.target);
      if (!target)
        return line_error(Error(
            Errc::Corrupt, fmt::format("no target at '{}' for hardlink", escape(*fx.target, 0))));
      if (target == fx.node)
        return line_error(Error(
            Errc::Corrupt, fmt::format("self-referential hardlink '{}'", escape(*fx.target, 0))));
      // The target's nlink stays as its own line gives it.
      fx.node->link_to = target;
    }
    for (auto& fx : fixups) {
      line_no = fx.line;
      const Node* n = fx.node;
      for (size_t steps = 0; n->link_to; steps++) {
        n = n->link_to;
        if (n == fx.node || steps > fixups.size())
          return line_error(Error(Errc::Corrupt, "hardlink cycle"));
      }
      if (n->is_dir())
        return line_error(
            Error(Errc::Corrupt, fmt::format("hardlink to directory '{}'", escape(*fx.target, 0))));
    }
    return std::move(tree);
  }
};

Parser::Parser(ParseOptions opts) : impl_(std::make_unique<Impl>()) { impl_->opts = opts; }
Parser::Parser(Parser&&) noexcept = default;
Parser::~Parser() = default;
Status Parser::feed(std::string_view data) { return impl_->feed(data); }
Result<Tree> Parser::finish() { return impl_->finish(); }

Result<Tree> parse(std::string_view data, const ParseOptions& opts) {
  Parser p(opts);
  CFS_TRY(p.feed(data));
  return p.finish();
}

Result<Tree> parse_fd(int fd, const ParseOptions& opts) {
  Parser p(opts);
  std::vector<char> buf(1 << 20);
  for (;;) {
    ssize_t r = ::read(fd, buf.data(), buf.size());
    if (r < 0) {
      if (errno == EINTR) continue;
      return sys_error("reading dump");
    }
    if (r == 0) break;
    CFS_TRY(p.feed({buf.data(), static_cast<size_t>(r)}));
  }
  return p.finish();
}

// ---------------------------------------------------------------- writing

namespace {

void write_node(const Node* node, std::string& path, std::string& line,
                const std::function<void(std::string_view)>& out) {
  const Node* t = node->target();
  line.clear();
  escape_to(line, path.empty() ? std::string_view("/") : std::string_view(path), 0);
  fmt::format_to(std::back_inserter(line), " {} {}{:o} {} {} {} {} {}.{} ", t->size,
                 node->link_to ? "@" : "", t->mode, t->nlink, t->uid, t->gid, t->rdev, t->mtime_sec,
                 t->mtime_nsec);
  if (node->link_to)
    escape_to(line, t->path(), kEscapeLoneDash);
  else if (t->payload)
    escape_to(line, *t->payload, kEscapeLoneDash);
  else
    line += '-';
  line += ' ';
  if (t->content)
    escape_to(line, *t->content, kEscapeLoneDash);
  else
    line += '-';
  line += ' ';
  line += t->digest ? t->digest->hex() : "-";
  for (auto& x : t->xattrs) {
    line += ' ';
    escape_to(line, x.key, kEscapeEqual);
    line += '=';
    escape_to(line, x.value, kEscapeEqual);
  }
  line += '\n';
  out(line);
  for (const Node* c : node->children) {
    size_t len = path.size();
    path += '/';
    path += c->name;
    write_node(c, path, line, out);
    path.resize(len);
  }
}

}  // namespace

void write(const Tree& tree, const std::function<void(std::string_view)>& out) {
  if (!tree.root()) return;
  std::string path, line;
  write_node(tree.root(), path, line, out);
}

std::string to_string(const Tree& tree) {
  std::string s;
  write(tree, [&](std::string_view chunk) { s.append(chunk); });
  return s;
}

}  // namespace cfs::dump
