#!/usr/bin/env bash
# Stage K3s on one node: the pinned installer downloads and verifies the binary and writes the unit, which is neither
# enabled nor started (k3s-lib.sh). It runs on every node in parallel right after host tuning, so the serial etcd
# joins (install.sh) only write the configuration and start the service. It carries no secret.
# A node that already runs K3s is left alone: it keeps its version (the system-upgrade-controller upgrades it), and
# re-running the installer would disable its unit. Idempotent: a staged node is not staged again.
set -euo pipefail
shopt -s inherit_errexit
# @params
source lib.sh

wait_for_boot

service=k3s
if [ "$K3S_ROLE" = agent ]; then
  service=k3s-agent
fi

installed=$(k3s_installed "$service")
if [ -n "$installed" ]; then
  log "k3s $installed already runs on $NODE_NAME; nothing to stage"
elif k3s_staged; then
  log "k3s $K3S_VERSION already staged on $NODE_NAME"
else
  stage_k3s
fi
