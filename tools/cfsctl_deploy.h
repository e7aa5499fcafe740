// SPDX-License-Identifier: Apache-2.0
// cfsctl status, switch, upgrade, rollback, finalize and deploy-gc:
// deployments on bootc's composefs layout (src/deploy).
#pragma once

#include <CLI/CLI.hpp>
#include <memory>

namespace cfs::tools::deploy_cli {

struct Options;
std::shared_ptr<Options> add_commands(CLI::App& app);
bool parsed(const Options* o);
// `insecure`: the global --insecure (a repository without fs-verity).
int run(Options* o, bool insecure);

}  // namespace cfs::tools::deploy_cli
