#!/usr/bin/env bash
# bundle-tool.sh BINARY DIR: BINARY made to run on a root filesystem that has
# none of its shared libraries (a container build, a guest's Debian tree):
# DIR/NAME.bin, the libraries ldd names in DIR/lib, and DIR/NAME, a wrapper
# that starts NAME.bin with the dynamic loader it was linked for and those
# libraries.  The wrapper finds DIR through symlinks (readlink -f), so
# /usr/bin/NAME may be a link to it.
set -euo pipefail
bin=${1:?usage: $0 BINARY DIR}
dir=${2:?usage: $0 BINARY DIR}
name=$(basename "$bin")
mkdir -p "$dir/lib"
cp "$bin" "$dir/$name.bin"
loader=
while read -r lib; do
  cp -L "$lib" "$dir/lib/"
  [[ $lib == */ld-linux* ]] && loader=$(basename "$lib")
done < <(ldd "$bin" | awk '/=> \//{print $3} /ld-linux/ && !/=>/{print $1}')
[[ -n $loader ]] || { echo "bundle-tool: no dynamic loader in ldd $bin" >&2; exit 1; }
cat >"$dir/$name" <<WRAP
#!/bin/sh
d=\$(dirname "\$(readlink -f "\$0")")
exec "\$d/lib/$loader" --library-path "\$d/lib" "\$d/$name.bin" "\$@"
WRAP
chmod 0755 "$dir/$name"
