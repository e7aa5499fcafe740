#!/usr/bin/env bash
# The module layout of issue 10, applied to a checkout (idempotent; run it on
# a branch made before the layout to bring its files along):
#   1. every header src/<module>/X.h moves to
#      src/<module>/include/composefs-cpp/<module>/X.h (git mv);
#   2. every `#include "<module>/X.h"` in the tracked C++ files becomes
#      `#include "composefs-cpp/<module>/X.h"`.
# A new module under src/ also needs its cfs_module() line in src/CMakeLists.txt.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
modules=()
for d in src/*/; do
  m=$(basename "$d")
  modules+=("$m")
  shopt -s nullglob
  headers=(src/"$m"/*.h)
  shopt -u nullglob
  if ((${#headers[@]})); then
    mkdir -p "src/$m/include/composefs-cpp/$m"
    git mv "${headers[@]}" "src/$m/include/composefs-cpp/$m/"
  fi
done
alt=$(IFS='|'; echo "${modules[*]}")
git ls-files -z '*.cc' '*.h' '*.cpp' '*.hpp' |
  xargs -0 sed -i -E "s,^([[:space:]]*#[[:space:]]*include[[:space:]]+\")($alt)/,\1composefs-cpp/\2/,"
