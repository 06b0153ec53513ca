#!/usr/bin/env bash
# shellcheck disable=SC2329  # lib.sh's boot and file helpers are inlined but not needed here
# Take the nodes a cluster over the public internet loses out of it before a firewall stops admitting them
# (components/k3s/depart.py: the before_update hook of a peer rule that names several nodes). It runs on the
# cluster's first K3s server as the node-lifecycle service account against that server's own API; the token is
# written to a 0600 file only for the run and never logged. Two phases, with the leaving node's K3s stopped and
# disabled between them (scripts/stop-k3s.sh, run on that node itself):
# PHASE=out: find the leaving nodes, and take each out as drain.sh does, one at a time: cordon, drain (pod
#   disruption budgets honoured, bounded), for an etcd member the removal of its member. It prints one line per
#   leaving node on stdout (`departed`, its name, its adplatform.io/provider label, which login reaches it, and
#   whether its kubelet was Ready after the drain: a node that is not runs no K3s the hook could stop, or cannot be
#   reached); everything else it and kubectl print goes to stderr.
# PHASE=forget: delete the Node objects NODES, once their K3s no longer runs: a running kubelet registers its
#   Node again when K3s restarts.
# A node leaves when one of its addresses is among ADDRESSES, the addresses the rule's update drops (its public
# address, K3s' node-ip over the internet), and its name is not among KEEP, the nodes the program keeps (a node
# replaced under its own name was drained by its own drain command already): kube-lib.sh find_leaving_nodes.
# Its drain command, deleted at the end of the update, then finds it gone.
# A drain that does not finish in time fails the hook, so the rule keeps admitting the node: fix, re-run.
set -euo pipefail
shopt -s inherit_errexit  # a failure inside $(...) stops the script too
# @params
source lib.sh

open_kubeconfig  # kube-lib.sh

if [ "$PHASE" = forget ]; then
  read -ra forget <<<"$NODES"
  for name in "${forget[@]}"; do
    kube delete node "$name" --ignore-not-found
    log "$name drained, its K3s stopped, and removed from the cluster; its firewall rules may go"
  done
  exit 0
fi

find_leaving_nodes  # kube-lib.sh: sets `leaving`
# shellcheck disable=SC2154  # leaving: set by find_leaving_nodes
if [ "${#leaving[@]}" -eq 0 ]; then
  log "no node of the cluster has a dropped address (${ADDRESSES}): nothing leaves"
  exit 0
fi

for name in "${leaving[@]}"; do
  log "$name leaves the cluster: cordoning and draining it while the firewalls still admit it (at most ${DRAIN_TIMEOUT}s)"
  if ! drain_node "$name"; then  # kube-lib.sh
    log "draining $name did not finish within ${DRAIN_TIMEOUT}s: a PodDisruptionBudget (kubectl get pdb -A)"
    log "or a pod without a controller holds it. The firewall update is aborted, so every rule still admits it"
    log "and its machine is kept; fix the cause, then run pulumi up again."
    exit 1
  fi
  # Read before the etcd member goes: a removed server's kubelet soon stops reporting (its API server lost etcd).
  facts=$(kube get node "$name" -o 'jsonpath={.metadata.labels.adplatform\.io/provider}{"\t"}{.status.conditions[?(@.type=="Ready")].status}{"\t"}{.metadata.labels.node-role\.kubernetes\.io/etcd}')
  # Split at each tab, not with `IFS=$'\t' read`: a tab is IFS whitespace, so read merges the two tabs around an
  # empty field (a node without the provider label) and shifts the next ones: etcd would read empty, its member stay.
  provider=${facts%%$'\t'*}
  rest=${facts#*$'\t'}
  ready=${rest%%$'\t'*}
  etcd=${rest#*$'\t'}
  members=$(kube get nodes -l node-role.kubernetes.io/etcd=true -o name | wc -l)
  # While it still runs: stopping a member first would leave a two-member etcd (a control plane of one moving to
  # another provider) without its quorum, and no member could be removed any more.
  if [ "$etcd" = true ] && [ "$members" -gt 1 ]; then
    log "removing the etcd member of $name while its peers still reach it"
    remove_etcd_member "$name" "the firewall update is aborted" >&2
  fi
  printf 'departed\t%s\t%s\t%s\n' "$name" "$provider" "${ready:-Unknown}"
done
