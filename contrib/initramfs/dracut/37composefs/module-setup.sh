#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# dracut module: composefs-setup-root and its unit.  Install under
# /usr/lib/dracut/modules.d/37composefs/; the tool is taken from
# $COMPOSEFS_SETUP_ROOT, else from the PATH (/usr/bin).

check() {
    return 0
}

depends() {
    echo systemd
    return 0
}

installkernel() {
    hostonly='' instmods -o erofs overlay loop
}

install() {
    local bin="${COMPOSEFS_SETUP_ROOT:-$(command -v composefs-setup-root)}"
    [ -n "$bin" ] || { derror "composefs: composefs-setup-root not found"; return 1; }
    # inst_binary also pulls in the shared libraries it needs.
    inst_binary "$bin" /usr/bin/composefs-setup-root
    inst_simple "${moddir}/composefs-setup-root.service" \
        "${systemdsystemunitdir}/composefs-setup-root.service"
    if [ -e /usr/lib/composefs/setup-root-conf.toml ]; then
        inst_simple /usr/lib/composefs/setup-root-conf.toml
    fi
    $SYSTEMCTL -q --root "$initdir" add-wants initrd-root-fs.target composefs-setup-root.service
}
