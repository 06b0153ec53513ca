#!/usr/bin/env bash
# shellcheck disable=SC2329  # lib.sh's boot and file helpers are inlined but not needed here
# Take a node out of service for an in-place resize and bring it back (components/k3s/resize.py):
#   PHASE=drain  (before the server is powered off): cordon, drain with pod disruption budgets honoured
#                and a bounded timeout. Unlike drain.sh the Node object and the etcd member stay: the
#                same machine comes back with the same name, data and etcd identity.
#   PHASE=return (after the provider powered it on again): wait until the Node is Ready, uncordon it.
# It runs on a K3s server (the node itself when it is one, else the cluster's first server), as the
# node-lifecycle service account against that server's own API; the token, read by lifecycle-token.sh,
# is written to a 0600 file only for the run and never logged.
set -euo pipefail
shopt -s inherit_errexit  # a failure inside $(...) stops the script too
# @params
source lib.sh

open_kubeconfig  # kube-lib.sh

if [ "$PHASE" = drain ]; then
  # An assignment, so an API error here stops the script (and the resize) instead of reading as "no such node".
  node=$(kube get node "$NODE_NAME" --ignore-not-found -o name)
  if [ -z "$node" ]; then
    log "node $NODE_NAME is not in the cluster: nothing to drain before its resize"
    exit 0
  fi
  log "cordoning and draining $NODE_NAME before its resize (at most ${DRAIN_TIMEOUT}s)"
  kube cordon "$NODE_NAME"
  # Evictions only (never --disable-eviction): a PodDisruptionBudget that allows no disruption holds the drain.
  if ! kube drain "$NODE_NAME" --ignore-daemonsets --delete-emptydir-data --timeout="${DRAIN_TIMEOUT}s"; then
    # The resize is aborted and the server keeps running as it is: put it back in service.
    kube uncordon "$NODE_NAME" || true
    log "draining $NODE_NAME did not finish within ${DRAIN_TIMEOUT}s: a PodDisruptionBudget (kubectl get pdb -A)"
    log "or a pod without a controller holds it. The resize is aborted and $NODE_NAME uncordoned;"
    log "fix the cause, then run pulumi up again."
    exit 1
  fi
  log "$NODE_NAME drained; it stays cordoned while its server is resized"
  exit 0
fi

log "waiting for $NODE_NAME to be Ready after its resize (at most ${READY_TIMEOUT}s)"
# A wall-clock deadline (bash's SECONDS): each read may itself take its request timeout.
deadline=$((SECONDS + READY_TIMEOUT))
until [ "$(kube get node "$NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)" = True ]; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    log "$NODE_NAME is not Ready ${READY_TIMEOUT}s after its resize; it stays cordoned."
    log "Check the node (journalctl -u k3s or k3s-agent), then kubectl uncordon $NODE_NAME."
    exit 1
  fi
  sleep 5
done
kube uncordon "$NODE_NAME"
log "$NODE_NAME is Ready and uncordoned"
