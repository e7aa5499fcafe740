// SPDX-License-Identifier: Apache-2.0
// mount.composefs option strings: the reference's syntax (comma-separated,
// backslash escapes in values, basedir lists split at ':') and what we add.
#include <gtest/gtest.h>

#include <cerrno>

#include "composefs-cpp/mount/fs_context.h"
#include "composefs-cpp/mount/options.h"

namespace cfs::mount {
namespace {

const std::string kHex(64, 'a');

// The ladder's classification of kernel refusals, errno by errno, as the
// kernels in use give them (measured in the VM rows, tests/vm/).
TEST(OverlayLadder, RefusalsThatMeanTheNextMethod) {
  // 6.12: fsconfig_set_fd(lowerdir+) is EBADF; before 6.7: EINVAL.
  EXPECT_TRUE(refusal_is_unsupported(OverlayStep::LayerFd, EBADF));
  EXPECT_TRUE(refusal_is_unsupported(OverlayStep::LayerFd, EINVAL));
  // 6.7 to 6.14: a detached mount as a layer is refused at create.
  EXPECT_TRUE(refusal_is_unsupported(OverlayStep::CreateFd, EINVAL));
  EXPECT_TRUE(refusal_is_unsupported(OverlayStep::LayerString, EINVAL));
  // 6.1: no "::" data-only layers; the reference then uses ":".
  EXPECT_TRUE(refusal_is_unsupported(OverlayStep::LegacyDataOnly, EINVAL));
  // Real failures stay failures.
  for (int e : {ENOENT, EACCES, EPERM, ENOMEM, ELOOP}) {
    EXPECT_FALSE(refusal_is_unsupported(OverlayStep::LayerFd, e)) << e;
    EXPECT_FALSE(refusal_is_unsupported(OverlayStep::LayerString, e)) << e;
    EXPECT_FALSE(refusal_is_unsupported(OverlayStep::CreateFd, e)) << e;
    EXPECT_FALSE(refusal_is_unsupported(OverlayStep::LegacyDataOnly, e)) << e;
  }
  EXPECT_FALSE(refusal_is_unsupported(OverlayStep::LayerString, EBADF));
  // Path layers exist from 6.7, which has data-only layers: EINVAL at create
  // is the kernel refusing this mount (e.g. workdir inside upperdir).
  EXPECT_FALSE(refusal_is_unsupported(OverlayStep::CreateString, EINVAL));
  // The last rung: nothing after it.
  EXPECT_FALSE(refusal_is_unsupported(OverlayStep::LegacyLower, EINVAL));
}

TEST(SplitOptions, CommasEqualsAndEscapes) {
  auto v = split_options("basedir=/a\\,b:c,ro,,digest=x=y,k\\,ey=v,last\\");
  ASSERT_EQ(v.size(), 5u);
  EXPECT_EQ(v[0].key, "basedir");
  EXPECT_EQ(v[0].value, "/a,b:c");
  EXPECT_EQ(v[1].key, "ro");
  EXPECT_FALSE(v[1].value);
  EXPECT_EQ(v[2].key, "digest");
  EXPECT_EQ(v[2].value, "x=y");   // the first '=' separates
  EXPECT_EQ(v[3].key, "k\\,ey");  // keys keep their escapes, as the reference's
  EXPECT_EQ(v[3].value, "v");
  EXPECT_EQ(v[4].key, "last\\");
  EXPECT_TRUE(split_options("").empty());
  auto t = split_options("upperdir=/u\\\\x,workdir=/w\\");
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].value, "/u\\x");
  EXPECT_EQ(t[1].value, "/w");  // a trailing escape in a value is dropped
}

TEST(ParseOptions, ReferenceOptions) {
  auto p =
      parse_options("basedir=/objs:/more\\,objs,upperdir=/u,workdir=/w,ro,idmap=/proc/1/ns/user");
  ASSERT_TRUE(p) << p.error().message();
  const Options& o = p->options;
  EXPECT_EQ(o.basedirs, (std::vector<std::string>{"/objs", "/more,objs"}));
  EXPECT_EQ(o.upperdir, "/u");
  EXPECT_EQ(o.workdir, "/w");
  EXPECT_TRUE(o.read_only);
  EXPECT_EQ(p->idmap, "/proc/1/ns/user");
  EXPECT_EQ(o.verity, Verity::Off);  // no verity unless asked, as the reference
  EXPECT_FALSE(o.expected_digest);
  EXPECT_FALSE(o.allow_insecure);
  ASSERT_TRUE(parse_options("basedir=/o,ro,rw"));
  EXPECT_FALSE(parse_options("basedir=/o,ro,rw")->options.read_only);  // the last wins
}

TEST(ParseOptions, VerityChoices) {
  EXPECT_EQ(parse_options("basedir=/o,verity")->options.verity, Verity::Require);
  EXPECT_EQ(parse_options("basedir=/o,tryverity")->options.verity, Verity::Try);
  EXPECT_EQ(parse_options("basedir=/o,noverity")->options.verity, Verity::Off);
  auto d = parse_options("basedir=/o,digest=" + kHex);
  ASSERT_TRUE(d) << d.error().message();
  ASSERT_TRUE(d->options.expected_digest);
  EXPECT_EQ(d->options.expected_digest->hex(), kHex);
  EXPECT_EQ(d->options.verity, Verity::Require);  // digest= implies verity
  // ... unless said otherwise (the reference would still require verity).
  EXPECT_EQ(parse_options("basedir=/o,digest=" + kHex + ",tryverity")->options.verity, Verity::Try);
  EXPECT_EQ(parse_options("noverity,basedir=/o,digest=" + kHex)->options.verity, Verity::Off);
  EXPECT_TRUE(parse_options("basedir=/o,insecure")->options.allow_insecure);
  auto sha512 = parse_options("basedir=/o,digest=" + std::string(128, 'b'));
  ASSERT_TRUE(sha512);
  EXPECT_EQ(sha512->options.expected_digest->alg(), fsverity::HashAlg::Sha512);
}

TEST(ParseOptions, MountFlagsAndBookkeeping) {
  auto p = parse_options(
      "rw,nosuid,nodev,noexec,noatime,nodiratime,basedir=/o,defaults,nofail,_netdev,"
      "x-systemd.requires=/x,comment=hello");
  ASSERT_TRUE(p) << p.error().message();
  EXPECT_EQ(p->options.mount_attr,
            kAttrNosuid | kAttrNodev | kAttrNoexec | kAttrNoatime | kAttrNodiratime);
  EXPECT_EQ(p->ignored, (std::vector<std::string>{"defaults", "nofail", "_netdev",
                                                  "x-systemd.requires", "comment"}));
  EXPECT_EQ(parse_options("basedir=/o,noexec,exec,strictatime")->options.mount_attr,
            kAttrStrictatime);
}

TEST(ParseOptions, ErrorsNameTheProblem) {
  struct Case {
    std::string opts;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {"", "no object dirs specified"},
           {"ro", "no object dirs specified"},
           {"basedir", "no value specified for the basedir option"},
           {"basedir=", "no value specified for the basedir option"},
           {"basedir=/a::/b", "empty directory"},
           {"basedir=:/a", "empty directory"},
           {"basedir=/a:", "empty directory"},
           {"basedir=/a,upperdir=/u", "both workdir and upperdir"},
           {"basedir=/a,workdir=/w", "both workdir and upperdir"},
           {"basedir=/a,digest=xyz", "digest 'xyz' is not a fs-verity digest"},
           {"basedir=/a,digest", "no value specified for the digest option"},
           {"basedir=/a,bogus", "unsupported option 'bogus'"},
           {"basedir=/a,ro=1", "unsupported option 'ro=1'"},
           {"basedir=/a,nosuid=yes", "unsupported option 'nosuid=yes'"},
           {"basedir=/a,idmap", "no value specified for the idmap option"},
       }) {
    auto p = parse_options(c.opts);
    ASSERT_FALSE(p) << c.opts;
    EXPECT_EQ(p.error().code(), Errc::InvalidArgument) << c.opts;
    EXPECT_NE(p.error().message().find(c.message), std::string::npos)
        << c.opts << ": " << p.error().message();
  }
}

TEST(ParseOptions, SloppyIgnoresUnknownOptions) {
  auto p = parse_options("basedir=/a,bogus,other=1", true);
  ASSERT_TRUE(p) << p.error().message();
  EXPECT_EQ(p->ignored, (std::vector<std::string>{"bogus", "other"}));
}

}  // namespace
}  // namespace cfs::mount
