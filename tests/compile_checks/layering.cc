// SPDX-License-Identifier: Apache-2.0
// Compiled by tests/CMakeLists.txt's compile checks as part of one module's
// target (see cfs_compile_check): with CFS_WRONG_WAY defined it includes a
// header of a module above that one, which must not be found.  Without it
// (the control) the same file compiles, so a failure means the include.
#include CFS_OWN_HEADER
#ifdef CFS_WRONG_WAY
#include CFS_WRONG_WAY
#endif

int cfs_compile_check_probe() { return 0; }
