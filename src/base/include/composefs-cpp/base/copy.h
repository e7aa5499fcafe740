// SPDX-License-Identifier: Apache-2.0
// Copying file contents between fds the cheapest way the kernel allows.
#pragma once

#include <cstdint>

#include "composefs-cpp/base/error.h"

namespace cfs {

// Copies `src` into the open (empty) `dst`: FICLONE, else copy_file_range,
// else read/write; the holes of a sparse source stay holes.
Status copy_file_data(int src, int dst, uint64_t size);

}  // namespace cfs
