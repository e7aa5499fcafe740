// SPDX-License-Identifier: Apache-2.0
// cfsctl uki ...: build, sign, inspect and measure Unified Kernel Images and
// addons (ukify's option names where it has them).
#pragma once

#include <CLI/CLI.hpp>
#include <memory>

namespace cfs::tools::uki_cli {

struct Options;

// Registers the `uki` command tree under `app` (keep the result while `app`
// is in use: it holds the parsed values).
std::shared_ptr<Options> add_commands(CLI::App& app);
bool parsed(const Options* o);
int run(Options* o);

}  // namespace cfs::tools::uki_cli
