// SPDX-License-Identifier: Apache-2.0
// A third-party program built against an installed composefs-cpp (by
// tests/install/install_test.sh, through find_package and pkg-config):
// prints the fs-verity digest of a file, as `fsverity digest --compact`.
#include <composefs-cpp/base/fd.h>
#include <composefs-cpp/fsverity/fsverity.h>
#include <fcntl.h>

#include <cstdio>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  auto fd = cfs::open_at(AT_FDCWD, argv[1], O_RDONLY);
  if (!fd) {
    std::fprintf(stderr, "%s\n", fd.error().message().c_str());
    return 1;
  }
  auto d = cfs::fsverity::digest_of_fd(fd->get());
  if (!d) {
    std::fprintf(stderr, "%s\n", d.error().message().c_str());
    return 1;
  }
  std::printf("%s\n", d->hex().c_str());
  return 0;
}
