// SPDX-License-Identifier: Apache-2.0
// Compiled by tests/CMakeLists.txt's compile checks: with CFS_DROP_ERROR a
// Status is dropped, which [[nodiscard]] must turn into a compile error;
// without it (the control) the same call is checked and the file compiles.
#include "composefs-cpp/base/fd.h"

int cfs_compile_check_probe() {
#ifdef CFS_DROP_ERROR
  cfs::write_full(1, std::string_view("x"));
  cfs::open_at(-1, "x", 0);
#else
  if (!cfs::write_full(1, std::string_view("x"))) return 1;
#endif
  return 0;
}
