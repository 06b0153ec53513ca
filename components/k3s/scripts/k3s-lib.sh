#!/usr/bin/env bash
# K3s helpers shared by stage.sh and install.sh (inlined by components/shell after lib.sh). They read the scripts'
# parameters K3S_VERSION, K3S_ROLE, INSTALL_SCRIPT_URL, INSTALLER_SHA256 and STAGED_INSTALLER.
#
# A node goes through three states: bare; staged (stage.sh: the pinned installer kept in STAGED_INSTALLER, the binary
# and the unit written by it, the unit neither enabled nor started); installed (install.sh: the unit enabled and
# started). The upstream installer enables the unit whenever it does not skip that, so "enabled" tells an installed
# node from a staged one; a binary and a unit file alone do not.
set -euo pipefail

k3s_version() {
  k3s --version | awk 'NR == 1 { print $3 }'
}

# k3s_installed SERVICE: the version of K3s that was started on this node, empty on a bare or staged node.
k3s_installed() {
  if command -v k3s >/dev/null 2>&1 && [ -f "/etc/systemd/system/$1.service" ] &&
    systemctl is-enabled --quiet "$1" 2>/dev/null; then
    k3s_version
  fi
}

# k3s_staged: the configured version's binary is in place and the installer that wrote it is kept.
k3s_staged() {
  [ -f "$STAGED_INSTALLER" ] && command -v k3s >/dev/null 2>&1 && [ "$(k3s_version)" = "$K3S_VERSION" ]
}

# stage_k3s: download the pinned installer and let it fetch and verify (sha256) the configured binary and write the
# unit for K3S_ROLE, without enabling or starting it (INSTALL_K3S_SKIP_ENABLE/INSTALL_K3S_SKIP_START). No secret is
# involved: the join token is only written later, by install.sh, into /etc/rancher/k3s/config.yaml.
stage_k3s() {
  local installer
  install -d -m 0700 "$(dirname "$STAGED_INSTALLER")"
  installer=$(mktemp "$STAGED_INSTALLER.XXXXXX")
  # A failed download or install removes its copy: retries would otherwise pile up partial installers.
  if ! curl -sSfL --retry 5 --retry-delay 5 -o "$installer" "$INSTALL_SCRIPT_URL"; then
    rm -f "$installer"
    log "downloading the k3s $K3S_VERSION installer from $INSTALL_SCRIPT_URL failed"
    return 1
  fi
  # cluster.k3sInstallerSha256: a moved tag or a replaced file is refused before it runs as root.
  if [ -n "$INSTALLER_SHA256" ] && ! printf '%s  %s\n' "$INSTALLER_SHA256" "$installer" | sha256sum -c --status; then
    rm -f "$installer"
    log "$INSTALL_SCRIPT_URL does not have the sha256 of adplatform:cluster.k3sInstallerSha256 ($INSTALLER_SHA256):"
    log "refusing to run it. Pin the sha256 of install.sh at the tag of cluster.k3sVersion ($K3S_VERSION)."
    return 1
  fi
  if ! INSTALL_K3S_VERSION="$K3S_VERSION" INSTALL_K3S_EXEC="$K3S_ROLE" INSTALL_K3S_SKIP_ENABLE=true \
    INSTALL_K3S_SKIP_START=true sh "$installer" >&2; then
    rm -f "$installer"
    log "staging k3s $K3S_VERSION from $INSTALL_SCRIPT_URL failed"
    return 1
  fi
  mv -f "$installer" "$STAGED_INSTALLER"  # last: a kept installer means its binary is in place
  log "k3s $K3S_VERSION staged as $K3S_ROLE (not started)"
}
