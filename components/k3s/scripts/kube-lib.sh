#!/usr/bin/env bash
# The node-lifecycle account's kubectl, shared by drain.sh, resize.sh and depart.sh (inlined by components/shell after
# lib.sh).
# open_kubeconfig writes KUBECONFIG_YAML (components/k3s/lifecycle.py lifecycle_kubeconfig, which carries the
# account's token) to a 0600 file removed when the script exits; kube runs k3s' kubectl with it, bounded.
set -euo pipefail

open_kubeconfig() {
  kubeconfig=$(mktemp)
  trap 'rm -f "$kubeconfig"' EXIT
  chmod 0600 "$kubeconfig"
  printf '%s\n' "$KUBECONFIG_YAML" >"$kubeconfig"
}

kube() { k3s kubectl --kubeconfig "$kubeconfig" --request-timeout=20s "$@"; }

# Remove the etcd member of node $1 and wait up to ETCD_TIMEOUT seconds for it to go; on timeout log "$2" (what
# stays as it was) and fail. K3s' etcd member controller removes the member of a node annotated so, and records it
# in etcd.k3s.cattle.io/removed-node-name (k3s pkg/etcd/member_controller.go).
remove_etcd_member() {
  local name=$1 kept=$2 waited=0
  kube annotate node "$name" --overwrite etcd.k3s.cattle.io/remove=true
  until [ -n "$(kube get node "$name" -o 'jsonpath={.metadata.annotations.etcd\.k3s\.cattle\.io/removed-node-name}' 2>/dev/null || true)" ]; do
    if [ "$waited" -ge "$ETCD_TIMEOUT" ]; then
      log "the etcd member of $name was not removed within ${ETCD_TIMEOUT}s; $kept"
      return 1
    fi
    sleep 5
    waited=$((waited + 5))
  done
}
