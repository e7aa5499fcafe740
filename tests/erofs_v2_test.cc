// SPDX-License-Identifier: Apache-2.0
// composefs-rs's format 2 layout ("V2") and the C layouts against
// composefs-rs's own vectors: the digests its tests pin for its "empty" and
// "simple" trees in formats 0, 1 and 2, and its annotated dumps of the
// format 2 images (tests/data/composefs-rs), decoded back into bytes here and
// compared byte for byte; fsck.erofs on every format 2 image; the same
// digest whatever the scan's thread count or the order the tree is given in.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <libfsverity.h>
#include <linux/fsverity.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <sstream>

#include "composefs-cpp/base/hex.h"
#include "composefs-cpp/dump/dump.h"
#include "composefs-cpp/erofs/format.h"
#include "composefs-cpp/erofs/reader.h"
#include "composefs-cpp/erofs/writer.h"
#include "composefs-cpp/scan/scan.h"
#include "gen_tree.h"
#include "test_util.h"

namespace cfs::test {
namespace {

using Bytes = std::vector<uint8_t>;
namespace fs = std::filesystem;

std::string rs_dir() { return data_dir() + "/composefs-rs"; }

// The sha256 fs-verity digest, as libfsverity (the kernel project's
// userspace library) computes it.
std::string libfsverity_sha256(const Bytes& data) {
  struct Reader {
    const uint8_t* p;
    size_t left;
  } r{data.data(), data.size()};
  auto read = [](void* fd, void* buf, size_t count) -> int {
    auto* rd = static_cast<Reader*>(fd);
    if (count > rd->left) return -1;
    std::memcpy(buf, rd->p, count);
    rd->p += count;
    rd->left -= count;
    return 0;
  };
  libfsverity_merkle_tree_params p{};
  p.version = 1;
  p.hash_algorithm = FS_VERITY_HASH_ALG_SHA256;
  p.file_size = data.size();
  p.block_size = 4096;
  libfsverity_digest* d = nullptr;
  EXPECT_EQ(libfsverity_compute_digest(&r, read, &p, &d), 0);
  if (!d) return "";
  std::string hex = to_hex({d->digest, d->digest_size});
  free(d);
  return hex;
}

// composefs-rs's pinned digests: (tree, format) -> hex.
std::map<std::pair<std::string, uint32_t>, std::string> pinned_digests() {
  std::map<std::pair<std::string, uint32_t>, std::string> out;
  std::istringstream in(read_file(rs_dir() + "/pinned-digests"));
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream f(line);
    std::string name, hex;
    uint32_t version;
    f >> name >> version >> hex;
    out[{name, version}] = hex;
  }
  EXPECT_EQ(out.size(), 6u);
  return out;
}

Tree load_tree(const std::string& dump_name) {
  auto t = dump::parse(read_file(rs_dir() + "/" + dump_name));
  EXPECT_TRUE(t) << t.error().message();
  return t ? std::move(*t) : Tree();
}

Bytes image_of(const Tree& t, uint32_t version) {
  auto img = erofs::build_image(t, version);
  EXPECT_TRUE(img) << img.error().message();
  return img ? std::move(*img) : Bytes();
}

void expect_fsck_clean(const Bytes& image, const std::string& what) {
  if (!have_command("fsck.erofs")) return;
  TempDir dir;
  write_file(dir / "image", std::string(image.begin(), image.end()));
  auto r = run("fsck.erofs " + shell_quote(dir / "image"));
  EXPECT_EQ(r.status, 0) << what << ": " << r.out << r.err;
}

// First differing offset of two images, for messages.
std::string first_difference(const Bytes& a, const Bytes& b) {
  size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; i++)
    if (a[i] != b[i])
      return fmt::format("first difference at offset {:#x}: {:#04x} vs {:#04x}", i, a[i], b[i]);
  return fmt::format("sizes {} and {}", a.size(), b.size());
}

// ------------------------------------------------ composefs-rs's dumps

// Decodes what composefs-rs's debug_img prints back into image bytes.  It
// prints every field that is not zero (at its offset in its structure),
// xattr entries, inline data, directory entries and hexdumps, and lists the
// all-zero gaps; a field it does not print is zero.  Anything not
// understood fails the test, so nothing is skipped silently.
class SnapshotDecoder {
 public:
  Bytes decode(const std::string& text) {
    std::istringstream in(text);
    std::string line;
    int fences = 0;
    while (fences < 2 && std::getline(in, line))  // the insta header
      if (line == "---") fences++;
    size_t size = 0;
    while (std::getline(in, line)) {
      line_no_++;
      if (line.empty() || line.starts_with("# ")) continue;
      constexpr std::string_view kStats = "Space statistics (total size ";
      if (line.starts_with(kStats)) {
        size = std::stoul(line.substr(kStats.size()));
        break;  // the statistics follow
      }
      if (line.size() > 9 && all_of(line.substr(0, 8), kHex) && line[8] == ' ') {
        section(std::stoul(line.substr(0, 8), nullptr, 16), line.substr(9));
        continue;
      }
      field_line(line);
    }
    EXPECT_GT(size, 0u) << "no total size in the dump";
    Bytes out(size, 0);
    for (auto& [off, b] : bytes_) {
      if (off >= size) {
        ADD_FAILURE() << "byte at offset " << off << " past the image's " << size;
        break;
      }
      out[off] = b;
    }
    return out;
  }

 private:
  void fail(const std::string& what) {
    ADD_FAILURE() << "snapshot line " << line_no_ << ": " << what;
  }

  void set(uint64_t off, uint8_t b) {
    auto [it, fresh] = bytes_.emplace(off, b);
    if (!fresh && it->second != b) fail(fmt::format("conflicting values at offset {:#x}", off));
  }
  void set_le(uint64_t off, uint64_t v, unsigned width) {
    for (unsigned i = 0; i < width; i++) set(off + i, static_cast<uint8_t>(v >> (8 * i)));
  }
  void set_bytes(uint64_t off, std::string_view s) {
    for (size_t i = 0; i < s.size(); i++) set(off + i, static_cast<uint8_t>(s[i]));
  }

  void section(uint64_t offset, const std::string& name) {
    base_ = offset;
    in_dir_ = false;
    kind_ = name;
    if (name == "Directory block") {
      in_dir_ = true;
      dir_base_ = offset;
    } else if (name != "ComposefsHeader" && name != "Superblock" && name != "ExtendedInodeHeader" &&
               name != "CompactInodeHeader" && name != "Padding" && name != "Data block") {
      fail("unknown section '" + name + "'");
    }
  }

  // A Rust `{:?}` string ("...", with \0 \t \r \n \\ \" \' \u{..} escapes)
  // or, for bytes that are not UTF-8, plain hex (utf8_or_hex).
  std::string rust_value(std::string_view s, size_t* used) {
    std::string out;
    if (s.empty() || s[0] != '"') {
      size_t n = 0;
      while (n + 1 < s.size() && std::isxdigit(static_cast<unsigned char>(s[n])) &&
             std::isxdigit(static_cast<unsigned char>(s[n + 1]))) {
        out += static_cast<char>(std::stoi(std::string(s.substr(n, 2)), nullptr, 16));
        n += 2;
      }
      *used = n;
      return out;
    }
    size_t i = 1;
    while (i < s.size() && s[i] != '"') {
      if (s[i] != '\\') {
        out += s[i++];
        continue;
      }
      char c = s[i + 1];
      i += 2;
      switch (c) {
        case '0': out += '\0'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'n': out += '\n'; break;
        case '\\':
        case '"':
        case '\'': out += c; break;
        case 'u': {
          size_t close = s.find('}', i);
          uint32_t cp = static_cast<uint32_t>(
              std::stoul(std::string(s.substr(i + 1, close - i - 1)), nullptr, 16));
          i = close + 1;
          if (cp < 0x80) {
            out += static_cast<char>(cp);
          } else if (cp < 0x800) {
            out += static_cast<char>(0xC0 | cp >> 6);
            out += static_cast<char>(0x80 | (cp & 0x3F));
          } else {
            out += static_cast<char>(0xE0 | cp >> 12);
            out += static_cast<char>(0x80 | (cp >> 6 & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
          }
          break;
        }
        default: fail(std::string("unknown escape \\") + c);
      }
    }
    *used = i + 1;
    return out;
  }

  static constexpr std::string_view kHex = "0123456789abcdef";
  static bool all_of(std::string_view s, std::string_view chars) {
    return !s.empty() && s.find_first_not_of(chars) == std::string_view::npos;
  }
  // " +hex" (debug_img's "{:+8x}" offsets): the number, or nullopt.
  static std::optional<uint64_t> rel_offset(std::string_view s) {
    size_t i = s.find_first_not_of(' ');
    if (i == std::string_view::npos || s[i] != '+' || !all_of(s.substr(i + 1), kHex))
      return std::nullopt;
    return std::stoull(std::string(s.substr(i + 1)), nullptr, 16);
  }
  // "TYPE(n)" for U8/U16/U32/U64: {width, n}.
  static std::optional<std::pair<unsigned, uint64_t>> typed(std::string_view v) {
    size_t open = v.find('(');
    if (open == std::string_view::npos || v.back() != ')') return std::nullopt;
    std::string_view type = v.substr(0, open), num = v.substr(open + 1, v.size() - open - 2);
    unsigned width = type == "U8"    ? 1
                     : type == "U16" ? 2
                     : type == "U32" ? 4
                     : type == "U64" ? 8
                                     : 0;
    if (!width || !all_of(num, "0123456789")) return std::nullopt;
    return std::pair{width, std::stoull(std::string(num))};
  }

  void field_line(const std::string& line) {
    // A hexdump row: the row's offset in 8 columns, two spaces, 16 byte
    // slots of 3 columns (one more space after the eighth), then |ascii|.
    if (line.size() >= 61 && line[60] == '|' && line.back() == '|') {
      if (auto row = rel_offset(line.substr(0, 8))) {
        for (unsigned i = 0; i < 16; i++) {
          std::string slot = line.substr(10 + i * 3 + (i >= 8 ? 1 : 0), 2);
          if (slot == "  ") continue;
          set(base_ + *row + i, static_cast<uint8_t>(std::stoi(slot, nullptr, 16)));
        }
        return;
      }
    }
    size_t start = line.find_first_not_of(' ');
    size_t gap = start == std::string::npos ? start : line.find(' ', start);
    auto rel_opt = gap == std::string::npos ? std::nullopt : rel_offset(line.substr(0, gap));
    if (!rel_opt) return fail("cannot read '" + line + "'");
    uint64_t rel = *rel_opt;
    std::string rest = line.substr(line.find_first_not_of(' ', gap));
    if (rest == "--- inline directory entries ---") {
      in_dir_ = true;
      dir_base_ = base_ + rel;
      return;
    }
    uint64_t at = (in_dir_ ? dir_base_ : base_) + rel;
    if (rest.starts_with("# ") && rest.ends_with(" nul bytes")) return;  // zeros
    if (rest.starts_with("# name: ")) {
      size_t used;
      set_bytes(at, rust_value(std::string_view(rest).substr(8), &used));
      return;
    }
    size_t colon = rest.find(": ");
    if (colon == std::string::npos ||
        !all_of(rest.substr(0, colon), "abcdefghijklmnopqrstuvwxyz_ "))
      return fail("cannot read '" + line + "'");
    std::string name = rest.substr(0, colon), value = rest.substr(colon + 2);
    if (auto t = typed(value)) {
      set_le(at, t->second, t->first);
    } else if (name == "format" && value.find(" = ") != std::string::npos) {
      set_le(at, std::stoull(value), 2);
    } else if (name == "mode" && value.find(" (") != std::string::npos) {
      set_le(at, std::stoull(value, nullptr, 8), 2);
    } else if (name == "file_type") {
      static const std::map<std::string, uint8_t> types = {
          {"Unknown", 0},     {"RegularFile", 1}, {"Directory", 2}, {"CharacterDevice", 3},
          {"BlockDevice", 4}, {"Fifo", 5},        {"Socket", 6},    {"Symlink", 7}};
      auto it = types.find(value);
      if (it == types.end()) return fail("unknown file type " + value);
      set(at, it->second);
    } else if (all_of(value, "0123456789") &&
               (name == "blkszbits" || name == "extslots" || name == "dirblkbits" ||
                name == "xattr_prefix_count" || name == "xattr_filter_reserved" ||
                name == "shared_count")) {
      set(at, static_cast<uint8_t>(std::stoul(value)));
    } else if (name == "shared xattrs" && value.starts_with("[") && value.ends_with("]")) {
      // "[U32(a), U32(b)]"
      uint64_t off = at;
      std::string_view list(value);
      list = list.substr(1, list.size() - 2);
      while (!list.empty()) {
        size_t comma = list.find(", ");
        auto id = typed(list.substr(0, comma));
        if (!id || id->first != 4) return fail("bad shared xattr list");
        set_le(off, id->second, 4);
        off += 4;
        list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 2);
      }
    } else if (name == "inline") {
      size_t used;
      set_bytes(at, rust_value(value, &used));
    } else if (name == "xattr" && value.starts_with("(") && value.find(") ") != std::string::npos) {
      // "(index name_len value_len) prefix<suffix> = <value>"
      static const std::string_view prefixes[] = {
          "",        "user.",    "system.posix_acl_access", "system.posix_acl_default", "trusted.",
          "lustre.", "security."};
      std::istringstream nums(value.substr(1, value.find(") ") - 1));
      unsigned index = 0, name_len = 0, value_len = 0;
      if (!(nums >> index >> name_len >> value_len)) return fail("bad xattr header");
      std::string_view body(value);
      body.remove_prefix(value.find(") ") + 2);
      if (index >= 7 || !body.starts_with(prefixes[index])) return fail("bad xattr prefix");
      body.remove_prefix(prefixes[index].size());
      size_t used;
      std::string suffix = rust_value(body, &used);
      body.remove_prefix(used);
      if (!body.starts_with(" = ")) return fail("bad xattr line");
      body.remove_prefix(3);
      std::string val = rust_value(body, &used);
      if (suffix.size() != name_len || val.size() != value_len)
        return fail("xattr lengths do not match its header");
      set(at, static_cast<uint8_t>(name_len));
      set(at + 1, static_cast<uint8_t>(index));
      set_le(at + 2, value_len, 2);
      set_bytes(at + 4, suffix);
      set_bytes(at + 4 + name_len, val);
    } else {
      fail("unknown field '" + name + ": " + value + "'");
    }
  }

  std::map<uint64_t, uint8_t> bytes_;
  uint64_t base_ = 0, dir_base_ = 0;
  bool in_dir_ = false;
  std::string kind_;
  size_t line_no_ = 0;
};

class RsTree : public ::testing::TestWithParam<std::string> {};

// The decoding is checked on its own first: the bytes it gives have the
// digest composefs-rs pins for that very image.
TEST_P(RsTree, SnapshotDecodesToThePinnedFormat2Image) {
  const std::string name = GetParam();
  Bytes snap = SnapshotDecoder().decode(read_file(rs_dir() + "/mkfs__" + name + ".snap"));
  EXPECT_EQ(libfsverity_sha256(snap), (pinned_digests()[{name, 2}]));
}

TEST_P(RsTree, Format2ImageIsTheSnapshotByteForByte) {
  const std::string name = GetParam();
  Bytes snap = SnapshotDecoder().decode(read_file(rs_dir() + "/mkfs__" + name + ".snap"));
  Bytes ours = image_of(load_tree(name + ".dump"), 2);
  EXPECT_TRUE(ours == snap) << first_difference(ours, snap);
  expect_fsck_clean(ours, name);
  auto img = erofs::Image::open(ours);
  ASSERT_TRUE(img) << img.error().message();
  EXPECT_EQ(img->composefs_version(), 2u);
}

TEST_P(RsTree, EveryFormatHasThePinnedDigest) {
  const std::string name = GetParam();
  Tree t = load_tree(name + ".dump");
  auto pins = pinned_digests();
  for (uint32_t v : {0u, 1u, 2u}) {
    Bytes img = image_of(t, v);
    EXPECT_EQ(libfsverity_sha256(img), (pins[{name, v}])) << name << " format " << v;
    expect_fsck_clean(img, fmt::format("{} format {}", name, v));
  }
}

// The mkcomposefs extension: --min-version=2 --max-version=2 from a dump.
TEST_P(RsTree, MkcomposefsWritesFormat2FromADump) {
  const std::string name = GetParam();
  TempDir dir;
  std::string dump = rs_dir() + "/" + name + ".dump";
  auto r = run(shell_quote(tool("mkcomposefs")) +
               " --min-version=2 --max-version=2 --print-digest --from-file " + shell_quote(dump) +
               " " + shell_quote(dir / "img"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(trim(r.out), (pinned_digests()[{name, 2}]));
  std::string bytes = read_file(dir / "img");
  Bytes snap = SnapshotDecoder().decode(read_file(rs_dir() + "/mkfs__" + name + ".snap"));
  EXPECT_TRUE(Bytes(bytes.begin(), bytes.end()) == snap);
  // --min-version=2 alone raises the maximum too, as for the other versions.
  auto only_min = run(shell_quote(tool("mkcomposefs")) + " --min-version=2 --print-digest-only " +
                      "--from-file " + shell_quote(dump));
  ASSERT_EQ(only_min.status, 0) << only_min.err;
  EXPECT_EQ(trim(only_min.out), (pinned_digests()[{name, 2}]));
}

INSTANTIATE_TEST_SUITE_P(ComposefsRs, RsTree, ::testing::Values("empty", "simple"));

TEST(Format2, MkcomposefsVersionOptions) {
  std::string dump = rs_dir() + "/simple.dump";
  auto mk = [&](const std::string& opts) {
    return run(shell_quote(tool("mkcomposefs")) + " " + opts + " --print-digest-only --from-file " +
               shell_quote(dump));
  };
  auto pins = pinned_digests();
  // A maximum of 2 never selects format 2: it is a layout, not a feature.
  auto max2 = mk("--max-version=2");
  ASSERT_EQ(max2.status, 0) << max2.err;
  EXPECT_EQ(trim(max2.out), (pins[{"simple", 0}]));
  auto v1 = mk("--min-version=1 --max-version=2");
  ASSERT_EQ(v1.status, 0) << v1.err;
  EXPECT_EQ(trim(v1.out), (pins[{"simple", 1}]));
  auto v3 = mk("--min-version=3");
  EXPECT_EQ(v3.status, 1);
  EXPECT_NE(v3.err.find("unsupported format version (at most 2)"), std::string::npos) << v3.err;
}

// ------------------------------------------------ layout rules

// Builds a tree from dump text.
Tree parse(const std::string& text) {
  auto t = dump::parse(text);
  EXPECT_TRUE(t) << t.error().message();
  return t ? std::move(*t) : Tree();
}

const std::string kRoot = "/ 0 40755 2 0 0 0 0.0 - - -\n";

TEST(Format2, WhatComposefsRsCannotReadIsRefused) {
  std::string big(513, 'x');
  auto inline_big =
      erofs::build_image(parse(kRoot + "/f 513 100644 1 0 0 0 0.0 - " + big + " -\n"), 2);
  ASSERT_FALSE(inline_big);
  EXPECT_NE(inline_big.error().message().find("'/f': 513 bytes of inline content"),
            std::string::npos)
      << inline_big.error().message();
  EXPECT_TRUE(erofs::build_image(
      parse(kRoot + "/f 512 100644 1 0 0 0 0.0 - " + std::string(512, 'x') + " -\n"), 2));
  auto link = erofs::build_image(
      parse(kRoot + "/l 1025 120777 1 0 0 0 0.0 " + std::string(1025, 't') + " - -\n"), 2);
  ASSERT_FALSE(link);
  EXPECT_NE(link.error().message().find("a target of 1025 bytes"), std::string::npos);
  auto wh = erofs::build_image(parse(kRoot + "/a 0 20000 2 0 0 0 0.0 - - -\n"
                                             "/b 0 @20000 0 0 0 0 0.0 /a - -\n"),
                               2);
  ASSERT_FALSE(wh);
  EXPECT_NE(wh.error().message().find("whiteout '/a' has 2 names"), std::string::npos)
      << wh.error().message();
  auto huge = erofs::build_image(parse(kRoot + "/h 8796093022209 100644 1 0 0 0 0.0 - - -\n"), 2);
  ASSERT_FALSE(huge);
  EXPECT_NE(huge.error().message().find("at most 8796093022208 bytes (one chunk)"),
            std::string::npos)
      << huge.error().message();
  EXPECT_TRUE(erofs::build_image(parse(kRoot + "/h 8796093022208 100644 1 0 0 0 0.0 - - -\n"), 2));
  // Formats 0 and 1 take all of these, as the C reference does.
  EXPECT_TRUE(erofs::build_image(parse(kRoot + "/f 513 100644 1 0 0 0 0.0 - " + big + " -\n"), 1));
}

TEST(Format2, InlineTailsNeverCrossABlock) {
  // Inline data of every length at every position of a block: the tails
  // move to the next block as composefs-rs moves them, the kernel's rule
  // (inline data within one block) holds, and fsck.erofs agrees.
  std::string dump = kRoot;
  for (int i = 0; i < 300; i++) {
    size_t len = 1 + (i * 37) % 512;
    std::string content(len, static_cast<char>('a' + i % 26));
    dump += fmt::format("/f{:03} {} 100644 1 0 0 0 0.0 - {} - user.n={}\n", i, len, content,
                        std::string(i % 50, 'v'));
  }
  Bytes img = image_of(parse(dump), 2);
  auto image = erofs::Image::open(img);
  ASSERT_TRUE(image) << image.error().message();
  auto tree = image->to_tree();
  ASSERT_TRUE(tree) << tree.error().message();
  for (int i = 0; i < 300; i++) {
    const Node* n = tree->lookup(fmt::format("/f{:03}", i));
    ASSERT_TRUE(n && n->content);
    EXPECT_EQ(n->content->size(), 1 + (i * 37) % 512u);
  }
  expect_fsck_clean(img, "inline tails");
}

TEST(Format2, XattrsAreSharedInComposefsRsOrder) {
  // Three inodes with the same user.a and security.s; one inode has 300
  // shareable xattrs (C caps sharing at 128 per inode, composefs-rs does not
  // and has room for 255).
  std::string common = " user.a=1 security.s=2 trusted.overlay.x=3 lustre.l=4";
  std::string many;
  for (int i = 0; i < 200; i++) many += fmt::format(" user.k{:03}=v", i);
  Tree t = parse(kRoot + "/a 0 100644 1 0 0 0 0.0 - - -" + common + many +
                 "\n/b 0 100644 1 0 0 0 0.0 - - -" + common + many +
                 "\n/c 0 100644 1 0 0 0 0.0 - - -" + common + "\n");
  Bytes img = image_of(t, 2);
  auto image = erofs::Image::open(img);
  ASSERT_TRUE(image) << image.error().message();
  auto nid = image->lookup("/a");
  ASSERT_TRUE(nid && *nid);
  auto in = image->inode(**nid);
  ASSERT_TRUE(in);
  std::vector<std::pair<std::string, bool>> seen;
  std::vector<uint64_t> shared_offsets;
  ASSERT_TRUE(image->for_each_xattr(*in, [&](const erofs::XattrRef& x) -> Status {
    seen.emplace_back(x.name(), x.shared);
    if (x.shared) shared_offsets.push_back(x.offset);
    return {};
  }));
  ASSERT_EQ(seen.size(), 204u);
  for (auto& [n, shared] : seen) EXPECT_TRUE(shared) << n;
  // The inode lists its shared ids in its own xattr order: its names in
  // order with trusted.overlay.x escaped in place ("lustre." < "security."
  // < "trusted." < "user.").
  EXPECT_EQ(seen[0].first, "lustre.l");
  EXPECT_EQ(seen[1].first, "security.s");
  EXPECT_EQ(seen[2].first, "trusted.overlay.overlay.x");
  EXPECT_EQ(seen[3].first, "user.a");
  // The table ascends by (name index, suffix, value): user (1) first, then
  // trusted (4), lustre (5), security (6); ids count from byte 0.
  EXPECT_LT(shared_offsets[3], shared_offsets[2]);  // user.a before trusted.
  EXPECT_LT(shared_offsets[2], shared_offsets[0]);  // trusted. before lustre.
  EXPECT_LT(shared_offsets[0], shared_offsets[1]);  // lustre. before security.
  {
    erofs::SuperBlock sb;
    std::memcpy(&sb, img.data() + erofs::kSuperOffset, sizeof sb);
    EXPECT_EQ(uint32_t{sb.xattr_blkaddr}, 0u);
    EXPECT_EQ(uint64_t{sb.build_time}, 0u);
  }
  expect_fsck_clean(img, "shared xattrs");
  // 256 shareable xattrs on one inode do not fit the 8-bit count.
  std::string too_many;
  for (int i = 0; i < 256; i++) too_many += fmt::format(" user.k{:03}=v", i);
  auto refused = erofs::build_image(parse(kRoot + "/a 0 100644 1 0 0 0 0.0 - - -" + too_many +
                                          "\n/b 0 100644 1 0 0 0 0.0 - - -" + too_many + "\n"),
                                    2);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("'/a' has 256 shared xattrs"), std::string::npos)
      << refused.error().message();
}

TEST(Format2, InodesAreDepthFirstAndHardlinksWhereFirstMet) {
  // /a/x is a hardlink to /z (the primary, later in the tree): the inode is
  // written where /a/x is met, right after /a; nlink counts both names.
  Tree t = parse(kRoot +
                 "/a 0 40755 2 0 0 0 0.0 - - -\n"
                 "/a/x 0 @100644 0 0 0 0 0.0 /z - -\n"
                 "/b 0 40755 2 0 0 0 0.0 - - -\n"
                 "/b/y 3 100644 1 0 0 0 5.7 - abc -\n"
                 "/z 5 100644 9 7 8 0 1.2 - hello -\n");
  Bytes img = image_of(t, 2);
  auto image = erofs::Image::open(img);
  ASSERT_TRUE(image);
  auto nid_of = [&](const char* p) { return **image->lookup(p); };
  EXPECT_EQ(nid_of("/"), 36u);
  EXPECT_LT(nid_of("/"), nid_of("/a"));
  EXPECT_LT(nid_of("/a"), nid_of("/a/x"));
  EXPECT_LT(nid_of("/a/x"), nid_of("/b"));
  EXPECT_LT(nid_of("/b"), nid_of("/b/y"));
  EXPECT_EQ(nid_of("/a/x"), nid_of("/z"));
  auto z = image->inode(nid_of("/z"));
  ASSERT_TRUE(z);
  EXPECT_FALSE(z->compact);
  EXPECT_EQ(z->nlink, 2u);  // counted, not the dump's 9
  EXPECT_EQ(z->ino, nid_of("/z"));
  EXPECT_EQ(z->mtime_sec, 1);
  EXPECT_EQ(z->mtime_nsec, 0u);  // whole seconds
  EXPECT_EQ(z->uid, 7u);
  auto root = image->inode(36);
  ASSERT_TRUE(root);
  EXPECT_EQ(root->nlink, 4u);
  expect_fsck_clean(img, "hardlinks");
}

TEST(Format2, WhiteoutsStayCharacterDevicesAndReadBack) {
  Tree t = parse(kRoot +
                 "/d 0 40755 2 0 0 0 0.0 - - -\n"
                 "/d/gone 0 20000 1 0 0 0 0.0 - - -\n"
                 "/d/kept 1 100644 1 0 0 0 0.0 - k -\n");
  Bytes img = image_of(t, 2);
  auto image = erofs::Image::open(img);
  ASSERT_TRUE(image);
  auto gone = image->inode(**image->lookup("/d/gone"));
  ASSERT_TRUE(gone);
  EXPECT_EQ(gone->mode, S_IFCHR | 0u);
  EXPECT_EQ(gone->rdev, 0u);
  auto d = image->inode(**image->lookup("/d"));
  size_t dir_xattrs = 0;
  ASSERT_TRUE(image->for_each_xattr(*d, [&](const erofs::XattrRef&) -> Status {
    dir_xattrs++;
    return {};
  }));
  EXPECT_EQ(dir_xattrs, 0u);                   // no whiteout markers, no opaque
  EXPECT_FALSE(image->lookup("/00").value());  // no root stubs
  // Read back, it is a whiteout of the tree (in formats 0 and 1 a chr 0/0
  // is one of the writer's stubs and left out).
  auto back = image->to_tree();
  ASSERT_TRUE(back) << back.error().message();
  const Node* g = back->lookup("/d/gone");
  ASSERT_TRUE(g);
  EXPECT_EQ(g->mode, S_IFCHR | 0u);
  EXPECT_EQ(g->rdev, 0u);
  ASSERT_TRUE(back->lookup("/d/kept"));
  expect_fsck_clean(img, "whiteouts");
}

// ------------------------------------------------ determinism

// The scan tests' tree (every file type, hardlinks, xattrs, a directory of
// several blocks) less what format 2 cannot hold (a 3000-byte symlink).
class Determinism : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    GenOptions o;
    o.privileged = is_root();
    if (!generate_tree(src(), o, &why)) GTEST_SKIP() << "cannot build the tree here: " << why;
    fs::remove(src() + "/etc/longlink");
  }
  std::string src() const { return dir_ / "src"; }
  Tree scan(unsigned threads) {
    scan::Options so;
    so.hardlinks = true;
    so.threads = threads;
    auto t = scan::scan_directory(src(), so);
    EXPECT_TRUE(t) << t.error().message();
    return t ? std::move(*t) : Tree();
  }
  TempDir dir_;
};

TEST_F(Determinism, SameDigestWhateverTheThreadCount) {
  Bytes first = image_of(scan(1), 2);
  ASSERT_FALSE(first.empty());
  expect_fsck_clean(first, "generated tree");
  for (unsigned threads : {2u, 3u, 8u, 0u}) {
    Bytes again = image_of(scan(threads), 2);
    EXPECT_TRUE(again == first) << threads << " threads: " << first_difference(again, first);
  }
}

TEST_F(Determinism, SameImageWhateverTheInputOrder) {
  Tree t = scan(0);
  Bytes want = image_of(t, 2);
  Bytes want_v1 = image_of(t, 1);
  std::string text = dump::to_string(t);
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) lines.push_back(l + "\n");
  std::mt19937 rng(12345);
  for (int round = 0; round < 5; round++) {
    // Parents before children, otherwise any order: by depth, shuffled
    // within a depth; xattrs shuffled within their line.
    std::vector<std::pair<size_t, std::string>> keyed;
    for (auto& l : lines) {
      std::string path = l.substr(0, l.find(' '));
      size_t depth = path == "/" ? 0 : std::count(path.begin(), path.end(), '/');
      std::istringstream f(l.substr(0, l.size() - 1));
      std::vector<std::string> fields;
      for (std::string w; std::getline(f, w, ' ');) fields.push_back(w);
      std::shuffle(fields.begin() + 11, fields.end(), rng);
      std::string joined;
      for (auto& w : fields) joined += (joined.empty() ? "" : " ") + w;
      keyed.emplace_back(depth, joined + "\n");
    }
    std::shuffle(keyed.begin(), keyed.end(), rng);
    std::stable_sort(keyed.begin(), keyed.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::string shuffled;
    for (auto& [d, l] : keyed) shuffled += l;
    ASSERT_NE(shuffled, text);
    Tree u = parse(shuffled);
    // And every node's xattrs in another order in memory.
    std::vector<Node*> stack{u.root()};
    while (!stack.empty()) {
      Node* n = stack.back();
      stack.pop_back();
      std::shuffle(n->xattrs.begin(), n->xattrs.end(), rng);
      for (Node* c : n->children) stack.push_back(c);
    }
    Bytes got = image_of(u, 2);
    EXPECT_TRUE(got == want) << "round " << round << ": " << first_difference(got, want);
    EXPECT_TRUE(image_of(u, 1) == want_v1) << "round " << round << " (format 1)";
  }
}

TEST_F(Determinism, ReadBackWritesTheSameImage) {
  Bytes img = image_of(scan(0), 2);
  auto image = erofs::Image::open(img);
  ASSERT_TRUE(image);
  auto back = image->to_tree();
  ASSERT_TRUE(back) << back.error().message();
  Bytes again = image_of(*back, 2);
  EXPECT_TRUE(again == img) << first_difference(again, img);
}

}  // namespace
}  // namespace cfs::test
