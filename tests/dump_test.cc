// SPDX-License-Identifier: Apache-2.0
// The dump format: every field and escape, strict and non-strict parsing,
// hardlink resolution, and hostile inputs (which must fail cleanly).
#include "composefs-cpp/dump/dump.h"

#include <gtest/gtest.h>

#include <random>

#include "composefs-cpp/erofs/writer.h"
#include "test_util.h"

namespace cfs::dump {
namespace {

Tree parse_ok(std::string_view s, bool strict = false) {
  auto t = parse(s, {strict});
  EXPECT_TRUE(t) << (t ? "" : t.error().message());
  return t ? std::move(*t) : Tree();
}

std::string parse_err(std::string_view s, bool strict = false) {
  auto t = parse(s, {strict});
  return t ? std::string("accepted") : t.error().message();
}

constexpr std::string_view kRoot = "/ 0 40755 2 0 0 0 0.0 - - -\n";

TEST(Escape, EveryByteRoundTrips) {
  std::string all;
  for (int c = 0; c < 256; c++) all += static_cast<char>(c);
  for (unsigned flags : {0u, 1u, 2u, 3u}) {
    std::string e = escape(all, flags);
    // Only graphic ASCII stays literal; nothing of a field separator survives.
    EXPECT_EQ(e.find(' '), std::string::npos);
    EXPECT_EQ(e.find('\n'), std::string::npos);
    auto u = unescape(e);
    ASSERT_TRUE(u);
    EXPECT_EQ(*u, all);
  }
}

TEST(Escape, ReferenceForms) {
  EXPECT_EQ(escape("a b", 0), "a\\x20b");
  EXPECT_EQ(escape("\\\n\r\t", 0), "\\\\\\n\\r\\t");
  EXPECT_EQ(escape("\x7f\x80\xff", 0), "\\x7f\\x80\\xff");
  EXPECT_EQ(escape("k=v", 0), "k=v");
  EXPECT_EQ(escape("k=v", kEscapeEqual), "k\\x3dv");
  EXPECT_EQ(escape("-", kEscapeLoneDash), "\\x2d");
  EXPECT_EQ(escape("-", 0), "-");
  EXPECT_EQ(escape("--", kEscapeLoneDash), "--");
  EXPECT_EQ(escape("a b", kNoEscapeSpace), "a b");
}

TEST(Escape, BadEscapes) {
  EXPECT_FALSE(unescape("\\"));
  EXPECT_FALSE(unescape("\\x"));
  EXPECT_FALSE(unescape("\\x4"));
  EXPECT_FALSE(unescape("\\xg0"));
  EXPECT_FALSE(unescape("\\q"));
  EXPECT_EQ(*unescape("\\x41\\x4a\\x4A"), "AJJ");
}

TEST(Parse, AllFields) {
  std::string dump = std::string(kRoot) +
                     "/f 5000 100644 3 1000 2000 0 1700000000.123456789 ab/cdef - "
                     "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef "
                     "user.a=1 trusted.b=x\\x3dy security.selinux=sys\\x00\n"
                     "/inline 3 100600 1 0 0 0 1.1 - a\\x20b -\n"
                     "/link 7 120777 1 0 0 0 0.0 /target - -\n"
                     "/dev 0 20644 1 0 0 2049 0.0 - - -\n"
                     "/fifo 0 10644 1 0 0 0 0.0 - - -\n"
                     "/sock 0 140644 1 0 0 0 0.0 - - -\n"
                     "/neg 0 100644 1 0 0 0 -1.0 - - -\n";
  Tree t = parse_ok(dump, true);
  Node* f = t.lookup("/f");
  ASSERT_TRUE(f);
  EXPECT_EQ(f->size, 5000u);
  EXPECT_EQ(f->mode, 0100644u);
  EXPECT_EQ(f->nlink, 3u);
  EXPECT_EQ(f->uid, 1000u);
  EXPECT_EQ(f->gid, 2000u);
  EXPECT_EQ(f->mtime_sec, 1700000000);
  EXPECT_EQ(f->mtime_nsec, 123456789u);
  EXPECT_EQ(*f->payload, "ab/cdef");
  EXPECT_EQ(f->digest->hex(), "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
  ASSERT_EQ(f->xattrs.size(), 3u);
  EXPECT_EQ(f->find_xattr("trusted.b")->value, "x=y");
  EXPECT_EQ(f->find_xattr("security.selinux")->value, std::string("sys\0", 4));
  EXPECT_EQ(*t.lookup("/inline")->content, "a b");
  EXPECT_EQ(*t.lookup("/link")->payload, "/target");
  EXPECT_EQ(t.lookup("/dev")->rdev, 2049u);
  EXPECT_EQ(t.lookup("/neg")->mtime_sec, -1);
}

TEST(Parse, WriteParseRoundTrip) {
  // Every field through the writer and back.
  std::string dump = std::string(kRoot) +
                     "/a\\x20b 5 100644 1 1 2 0 3.4 - \\x2d\\x2d\\x2d\\x2d\\x2d - "
                     "user.k\\x3d=v\\x3d\n"
                     "/dir 0 40700 2 0 0 0 5.6 - - - trusted.overlay.x=y\n"
                     "/dir/h 0 @100644 0 0 0 0 0.0 /a\\x20b - -\n"
                     "/dash 1 100644 1 0 0 0 0.0 - \\x2d -\n";
  Tree t = parse_ok(dump);
  std::string out = to_string(t);
  Tree t2 = parse_ok(out);
  EXPECT_EQ(to_string(t2), out);
  auto i1 = erofs::build_image(t), i2 = erofs::build_image(t2);
  ASSERT_TRUE(i1 && i2);
  EXPECT_EQ(*i1, *i2);
  // The hardlink line carries the target's fields, as composefs-info prints it.
  EXPECT_NE(out.find("/dir/h 5 @100644 1 1 2 0 3.4 /a\\x20b ----- - user.k\\x3d=v\\x3d\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("/dash 1 100644 1 0 0 0 0.0 - \\x2d -"), std::string::npos) << out;
}

TEST(Parse, OrderAndHardlinks) {
  // Children may come in any order after their parent; hardlinks may point
  // forward; the target keeps the nlink of its own line.
  std::string dump = std::string(kRoot) +
                     "/z 0 100644 1 0 0 0 0.0 - - -\n"
                     "/h 0 @100644 1 0 0 0 0.0 /a - -\n"
                     "/a 3 100644 7 0 0 0 0.0 - abc -\n"
                     "/h2 0 @100644 1 0 0 0 0.0 /h - -\n";
  Tree t = parse_ok(dump);
  std::vector<std::string> names;
  for (Node* c : t.root()->children) names.push_back(c->name);
  EXPECT_EQ(names, (std::vector<std::string>{"a", "h", "h2", "z"}));
  EXPECT_EQ(t.lookup("/h")->target(), t.lookup("/a"));
  EXPECT_EQ(t.lookup("/h2")->target(), t.lookup("/a"));
  EXPECT_EQ(t.lookup("/a")->nlink, 7u);
}

TEST(Parse, PathForms) {
  std::string a_dir = std::string(kRoot) + "a 0 40755 2 0 0 0 0.0 - - -\n";
  Tree t = parse_ok(a_dir + "//a//b 0 100644 1 0 0 0 0.0 - - -\n");
  EXPECT_TRUE(t.lookup("/a/b"));
  EXPECT_EQ(parse_err(a_dir + "/a/ 0 100644 1 0 0 0 0.0 - - -\n"),
            "line 3: path '/a/': empty file name");
}

TEST(Parse, StrictOnlyChecks) {
  std::string rdev = std::string(kRoot) + "/f 0 100644 1 0 0 5 0.0 - - -\n";
  parse_ok(rdev, false);
  EXPECT_EQ(parse_err(rdev, true), "line 2: non-zero rdev on a non-device");
  std::string lsize = std::string(kRoot) + "/l 9 120777 1 0 0 0 0.0 abc - -\n";
  Tree t = parse_ok(lsize, false);
  EXPECT_EQ(t.lookup("/l")->size, 3u);  // a symlink's size is its target's length
  EXPECT_EQ(parse_err(lsize, true), "line 2: invalid symlink size 9, must match target length 3");
  std::string nonl = std::string(kRoot) + "/f 0 100644 1 0 0 0 0.0 - - -";
  parse_ok(nonl, false);
  EXPECT_EQ(parse_err(nonl, true), "line 2: missing trailing newline");
}

TEST(Parse, TrailingSpaces) {
  // One space after the last field is a separator; two make an empty xattr.
  parse_ok("/ 0 40755 2 0 0 0 0.0 - - - \n");
  parse_ok("/ 0 40755 2 0 0 0 0.0 - - - user.a=b \n");
  EXPECT_EQ(parse_err("/ 0 40755 2 0 0 0 0.0 - - - user.a=b  \n"),
            "line 1: missing '=' in xattr ''");
}

TEST(Parse, XattrBudgetAndReplacement) {
  // Same key twice: the last value wins.
  Tree t = parse_ok("/ 0 40755 2 0 0 0 0.0 - - - user.a=1 user.a=2\n");
  ASSERT_EQ(t.root()->xattrs.size(), 1u);
  EXPECT_EQ(t.root()->xattrs[0].value, "2");
  // The per-inode budget (32767) counts 7 + key + value per xattr, +12 once.
  std::string v(32767 - 12 - 7 - 6, 'x');
  parse_ok("/ 0 40755 2 0 0 0 0.0 - - - user.a=" + v + "\n");
  EXPECT_NE(parse_err("/ 0 40755 2 0 0 0 0.0 - - - user.a=" + v + "x\n").find("per-inode limit"),
            std::string::npos);
}

TEST(Parse, Rejections) {
  struct Case {
    std::string line;
    std::string error;
  } cases[] = {
      {"/f 0 100644 1 0 0 0 0 - - -", "line 2: invalid mtime '0' (expected SEC.NSEC)"},
      {"/f x 100644 1 0 0 0 0.0 - - -", "line 2: invalid size 'x'"},
      {"/f 0 100644 1 0 z 0 0.0 - - -", "line 2: invalid gid 'z'"},
      {"/f 0 100644 1 0 0 q 0.0 - - -", "line 2: invalid rdev 'q'"},
      {"/f 0 100648 1 0 0 0 0.0 - - -", "line 2: invalid mode '100648'"},
      {"/f 99999999999999999999999 100644 1 0 0 0 0.0 - - -",
       "line 2: size '99999999999999999999999' is out of range"},
      {"/f 4 100644 1 0 0 0 0.0 - abc -", "line 2: invalid content size 3, must match size 4"},
      {"/f 0 100644 1 0 0 0 0.0 - - abcd",
       "line 2: invalid digest 'abcd' (expected 64 or 128 hex digits)"},
      {"/f\\x00g 0 100644 1 0 0 0 0.0 - - -", "line 2: path contains a NUL byte"},
      {"/f 0 100644 1 0 0 0 0.0 - - - user.\\x00=1", "line 2: xattr name contains a NUL byte"},
      {"/missing/f 0 100644 1 0 0 0 0.0 - - -",
       "line 2: parent directory missing for '/missing/f'"},
      {"/ 0 40755 2 0 0 0 0.0 - - -", "line 2: a second root entry '/'"},
      {"/h 0 @100644 1 0 0 0 0.0 /nope - -", "line 2: no target at '/nope' for hardlink"},
      {"/h 0 @100644 1 0 0 0 0.0 / - -", "line 2: hardlink to directory '/'"},
      {"/f 0 100644 1 0 0 0 0.0 - - - =x",
       "line 2: can't set xattr '': xattr name of 0 bytes (must be 1..255)"},
      {std::string("/f 0 100644 1 0 0 0 0.0 - - -\0", 31),
       "line 2: invalid embedded NUL character at position 29"},
  };
  for (auto& c : cases) EXPECT_EQ(parse_err(std::string(kRoot) + c.line + "\n"), c.error) << c.line;
  EXPECT_EQ(parse_err(""), "no files in dump file");
  EXPECT_EQ(parse_err("\n"), "line 1: invalid empty path");
  EXPECT_EQ(parse_err("/f 0 100644 1 0 0 0 0.0 - - -\n"),
            "line 1: the first entry must be the root '/'");
  EXPECT_EQ(parse_err("/ 0 100644 1 0 0 0 0.0 - - -\n"), "line 1: the root must be a directory");
  EXPECT_EQ(parse_err(std::string(kRoot) + "/a 0 @100644 1 0 0 0 0.0 /b - -\n" +
                      "/b 0 @100644 1 0 0 0 0.0 /a - -\n"),
            "line 2: hardlink cycle");
}

TEST(Parse, DepthIsBounded) {
  std::string dump(kRoot);
  std::string path;
  for (size_t i = 0; i < kMaxDepth + 1; i++) {
    path += "/d";
    dump += path + " 0 40755 2 0 0 0 0.0 - - -\n";
  }
  std::string err = parse_err(dump);
  EXPECT_NE(err.find("nested deeper than 4096"), std::string::npos) << err.substr(0, 200);
}

TEST(Parse, HugeLineIsRefusedNotBuffered) {
  Parser p;
  std::string chunk(1 << 20, 'a');
  Status st;
  for (int i = 0; i < 20 && st; i++) st = p.feed(chunk);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message().find("longer than"), std::string::npos);
}

// Random mutations of a valid dump never crash the parser or the writer.
TEST(Parse, MutationsFailCleanly) {
  std::string base = test::read_file(test::data_dir() + "/composefs/special.dump");
  std::mt19937 rng(1234);
  for (int iter = 0; iter < 3000; iter++) {
    std::string m = base;
    int edits = 1 + rng() % 4;
    for (int e = 0; e < edits; e++) {
      size_t pos = rng() % m.size();
      switch (rng() % 3) {
        case 0: m[pos] = static_cast<char>(rng()); break;
        case 1: m.erase(pos, 1 + rng() % 8); break;
        case 2: m.insert(m.begin() + static_cast<long>(pos), " \n\\@-=/0"[rng() % 8]); break;
      }
      if (m.empty()) m.push_back('x');
    }
    auto t = parse(m);
    if (t) (void)erofs::build_image(*t);
  }
}

}  // namespace
}  // namespace cfs::dump
