#!/usr/bin/env bash
# The node-lifecycle account's kubectl, shared by drain.sh, resize.sh, depart.sh and the object store's scripts
# (inlined by components/shell after lib.sh).
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

# Cordon node $1 and drain it (evictions only, never --disable-eviction: a PodDisruptionBudget that allows no
# disruption holds the drain), at most DRAIN_TIMEOUT seconds; fails when the drain does not finish. kubectl's lines go
# to stderr (depart.sh's stdout is its report). A node whose kubelet does not report (its machine down, or cut off)
# never confirms a pod's deletion: its evicted pods are skipped once their deletion time is SKIP_WAIT seconds past, or
# the drain would wait out DRAIN_TIMEOUT on every run. A Ready node's drain waits for every pod's graceful end.
# Explicit returns: callers test it (`if ! drain_node`), which turns errexit off inside.
drain_node() {
  local name=$1 ready
  local -a skip=()
  kube cordon "$name" >&2 || return 1
  ready=$(kube get node "$name" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}') || return 1
  if [ "$ready" != True ]; then
    log "$name is not Ready: pods it does not confirm gone are skipped ${SKIP_WAIT}s after their deletion time"
    skip=(--skip-wait-for-delete-timeout="$SKIP_WAIT")
  fi
  kube drain "$name" --ignore-daemonsets --delete-emptydir-data --timeout="${DRAIN_TIMEOUT}s" "${skip[@]}" >&2
}

# Remove the etcd member of node $1 and wait up to ETCD_TIMEOUT seconds for it to go; on timeout log "$2" (what
# stays as it was) and fail. K3s' etcd member controller removes the member of a node annotated so, and records it
# in etcd.k3s.cattle.io/removed-node-name (k3s pkg/etcd/member_controller.go).
# The deadline is wall-clock time (bash's SECONDS): each read may itself take its request timeout, which a count of
# the pauses alone would not see (the wait could last five times as long and outlive the command's own timeout).
remove_etcd_member() {
  local name=$1 kept=$2 deadline=$((SECONDS + ETCD_TIMEOUT))
  kube annotate node "$name" --overwrite etcd.k3s.cattle.io/remove=true
  until [ -n "$(kube get node "$name" -o 'jsonpath={.metadata.annotations.etcd\.k3s\.cattle\.io/removed-node-name}' 2>/dev/null || true)" ]; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "the etcd member of $name was not removed within ${ETCD_TIMEOUT}s; $kept"
      return 1
    fi
    sleep 5
  done
}

# Set the array `leaving` to the nodes that leave the cluster: one of their addresses is among ADDRESSES (the
# addresses a peer rule's update drops: the public address, K3s' node-ip over the internet) and their name is not
# among KEEP (the nodes the program keeps: a node replaced under its own name is drained by its own drain command).
# Any of its addresses, not its InternalIP alone: where the stack provider's CCM initialises a node, the public
# node-ip is among the cloud's ExternalIPs, so the CCM keeps it as the ExternalIP and its private address as the
# InternalIP (k8s.io/cloud-provider node/helpers GetNodeAddressesFromNodeIP: the node IP replaces the cloud's
# addresses of its own type only).
# With the argument `absence`, every node not among KEEP leaves, whatever its addresses (a shrink within one provider:
# components/data/objectstore_shrink.py).
find_leaving_nodes() {
  local by=${1:-addresses} listing name node_addresses address
  local -a dropped kept own
  read -ra dropped <<<"$ADDRESSES"
  read -ra kept <<<"$KEEP"
  # An assignment, so an API error stops the script instead of reading as "no nodes".
  listing=$(kube get nodes -o 'jsonpath={range .items[*]}{.metadata.name}{"\t"}{.status.addresses[*].address}{"\n"}{end}')
  leaving=()
  while IFS=$'\t' read -r name node_addresses; do
    [ -n "$name" ] || continue
    case " ${kept[*]} " in *" $name "*) continue ;; esac
    if [ "$by" = absence ]; then
      leaving+=("$name")
      continue
    fi
    read -ra own <<<"$node_addresses"
    for address in "${own[@]}"; do
      case " ${dropped[*]} " in *" $address "*) leaving+=("$name"); break ;; esac
    done
  done <<<"$listing"
}
