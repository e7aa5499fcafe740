// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/base/cpu.h"

#include <sched.h>

#include <algorithm>
#include <thread>

namespace cfs {

unsigned default_threads() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace cfs
