#!/usr/bin/env bash
# make lint: every tracked C++ file must be clang-formatted (.clang-format),
# and clang-tidy's checks (.clang-tidy: bugprone-*) must find nothing in the
# library, tools, fuzz targets and benchmarks of BUILD's compile_commands.json
# (their headers included).  The GoogleTest suites are left out: their TUs
# take most of the time, and what they test is checked by running them.
#   scripts/lint.sh BUILD_DIR [JOBS]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
jobs=${2:-$(nproc)}
git ls-files -z '*.cc' '*.h' | xargs -0 clang-format --dry-run --Werror
echo "clang-format: clean"
tidy=$(command -v run-clang-tidy-14 || command -v run-clang-tidy)
"$tidy" -p "$build" -j "$jobs" -quiet "^$PWD/(src|tools|fuzz|bench)/" \
  >"$build/clang-tidy.log" 2>&1 || {
  grep -E "(warning|error):" "$build/clang-tidy.log" | sort -u
  echo "clang-tidy: findings above (full log: $build/clang-tidy.log)"
  exit 1
}
echo "clang-tidy: clean"
