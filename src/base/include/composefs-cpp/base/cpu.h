// SPDX-License-Identifier: Apache-2.0
// How many CPUs this process may run on.
#pragma once

namespace cfs {

// The CPUs in this process's affinity mask (at least 1): the default number
// of worker threads.
unsigned default_threads();

}  // namespace cfs
