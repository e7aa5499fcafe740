// SPDX-License-Identifier: Apache-2.0
// cfsctl oci ...: container images in a composefs repository (composefs-rs's
// `cfsctl oci` commands and output).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <string>

#include "composefs-cpp/repository/repository.h"

namespace cfs::tools::oci_cli {

struct Options;

// Registers the `oci` command tree under `app` (keep the result while `app`
// is in use: it holds the parsed values).
std::shared_ptr<Options> add_commands(CLI::App& app);
bool parsed(const Options* o);

using OpenRepo = std::function<Result<repository::Repository>()>;
int run(Options* o, const OpenRepo& open_repo);

}  // namespace cfs::tools::oci_cli
