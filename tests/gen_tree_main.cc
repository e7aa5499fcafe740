// SPDX-License-Identifier: Apache-2.0
// Writes the deterministic test tree (tests/gen_tree.h) to a directory, so
// a reference tool can be run on exactly what the tests scan.
#include <cstdio>

#include "gen_tree.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  cfs::test::GenOptions o;
  o.privileged = cfs::test::is_root();
  std::string why;
  if (!cfs::test::generate_tree(argv[1], o, &why)) {
    std::fprintf(stderr, "gen_tree: %s\n", why.c_str());
    return 1;
  }
  return 0;
}
