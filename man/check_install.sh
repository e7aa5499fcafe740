#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The man pages install (cmake --install --component man) where man(1) finds
# them: man -w PAGE resolves each to the installed file.
#   check_install.sh BUILD_DIR MANDIR PAGE...
set -euo pipefail
build=$1 mandir=$2
shift 2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --component man --prefix "$tmp" >/dev/null
for p in "$@"; do
  sec=${p##*.} name=${p%.*}
  f=$tmp/$mandir/man$sec/$p
  [[ -f $f ]] || { echo "FAIL: $p not installed at $f" >&2; exit 1; }
  got=$(MANPATH=$tmp/$mandir man -w "$sec" "$name")
  [[ $got == "$f" ]] || { echo "FAIL: man -w $sec $name gave '$got', not $f" >&2; exit 1; }
  echo "ok: $sec $name -> $f"
done
