#!/usr/bin/env bash
# shellcheck disable=SC2329  # lib.sh's boot and file helpers are inlined but not needed here
# Stop and disable K3s on a node that leaves a cluster over the public internet, on the node itself, after
# depart.sh (PHASE=out) drained it and removed its etcd member, before its Node object is deleted
# (components/k3s/depart.py). Until its machine goes at the end of the update K3s must not start again: a K3s
# server whose etcd member was removed wrote a tombstone, and on its next start backs its database up and joins
# the cluster again as a new member (k3s pkg/etcd Register: "tombstone file has been detected, removing data dir
# to rejoin the cluster"); a starting agent's kubelet registers the deleted Node again. Disabled too, so a reboot
# does not start it. Idempotent: a unit already stopped and disabled, or absent, is left as it is.
set -euo pipefail
shopt -s inherit_errexit  # a failure inside $(...) stops the script too
# @params
source lib.sh

for unit in k3s.service k3s-agent.service; do
  # An installed unit only: K3s installs one of the two (a server's, an agent's).
  if [ -n "$(systemctl list-unit-files --no-legend "$unit")" ]; then
    log "stopping and disabling $unit on $NODE_NAME (at most ${STOP_TIMEOUT}s)"
    timeout "$STOP_TIMEOUT" systemctl disable --now "$unit"
  fi
done
if systemctl is-active --quiet k3s.service k3s-agent.service; then
  log "K3s still runs on $NODE_NAME"
  exit 1
fi
log "K3s is stopped and disabled on $NODE_NAME"
