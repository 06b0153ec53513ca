#!/usr/bin/env bash
# shellcheck disable=SC2329  # lib.sh's boot and file helpers are inlined but not needed here
# Take one node out of the cluster before its machine is deleted or replaced: cordon, drain (pod
# disruption budgets honoured, bounded), for a server remove its etcd member, delete the Node, stop and disable K3s.
# This is the `delete` of the node's drain-<node> command (components/k3s/lifecycle.py); it runs on the
# node itself (ON_NODE=true), or, for a node listed in cluster.unreachableNodes (its machine is dead), on the first
# K3s server not listed (ON_NODE=false: nothing on the node is touched), and reaches the API at the private endpoint
# with the node-lifecycle service account's token, which is written to a 0600 file only for the run and never logged.
# It changes nothing and succeeds when there is nothing to do: the Node is already gone, the API does
# not answer three tries (a dead cluster has nothing to drain to), or the stack's lifecycle guard ConfigMap is gone
# (`pulumi destroy` deletes it first: the whole cluster goes, draining it would only wait).
# A drain that does not finish in time fails, so Pulumi keeps the machine: fix what blocks and re-run. So does an API
# that answers with an error (a revoked token, missing RBAC, another CA): that is no dead cluster.
set -euo pipefail
shopt -s inherit_errexit  # a failure inside $(...) stops the script too
# @params
source lib.sh

# Stopped so the kubelet cannot register the Node again before the machine is gone, and disabled so a reboot does
# not start it: an existing host (bare metal) stays, and a removed server's K3s would join again (depart.py). Only on
# the node itself: run from another server, this would stop that server's K3s.
stop_k3s() {
  if [ "$ON_NODE" = true ]; then
    systemctl disable --now "$K3S_SERVICE" 2>/dev/null || true
  else
    log "$NODE_NAME is listed unreachable: its K3s is not stopped on it. A cloud machine is deleted next; an existing"
    log "host that comes back must have it disabled by hand first (systemctl disable --now $K3S_SERVICE)"
  fi
}

# A request through the API balancer may fail once without the API being gone: a server restarting, or, once a
# departing server's etcd member is removed, that server, whose API port still takes the balancer's TCP checks.
# So the guard read and the Node's deletion are tried API_TRIES times, API_RETRY_SECONDS apart: one failed request
# must neither skip a drain (the machine deleted undrained) nor fail it after its etcd member is gone.
# Returns 1 when no try got an answer (nothing listens, or the API fails on its own side), 2 when one refused this
# account (a revoked token, missing RBAC, another cluster's CA): only the first may read as "no cluster", or a machine
# is deleted undrained.
readonly API_TRIES=3 API_RETRY_SECONDS=10
kube_retry() {
  local try=1 err answered=
  # kubectl's stdout stays the caller's (fd 3); a failed try's stderr is logged and tells a refusal from silence.
  until { err=$(kube "$@" 2>&1 1>&3 3>&-); } 3>&1; do
    printf '%s\n' "$err" >&2
    if api_answered "$err"; then
      answered=true
    fi
    if [ "$try" -ge "$API_TRIES" ]; then
      [ -z "$answered" ] || return 2
      return 1
    fi
    log "the request to the API at $API_SERVER failed (try $try of $API_TRIES); trying again in ${API_RETRY_SECONDS}s"
    try=$((try + 1))
    sleep "$API_RETRY_SECONDS"
  done
}

# Whether kubectl's error $1 is an API server refusing this account: Unauthorized, Forbidden, or a certificate the
# kubeconfig's CA does not trust. Connection refused, timeouts, DNS errors and the server's own errors (InternalError,
# ServiceUnavailable, Timeout: etcd without a quorum while a destroy takes the servers away) count as silence.
api_answered() {
  grep -Eq '\(Unauthorized\)|\(Forbidden\)|x509|certificate' <<<"$1"
}

open_kubeconfig  # kube-lib.sh

guard_read=0
guard=$(kube_retry -n "$GUARD_NAMESPACE" get configmap "$GUARD_NAME" --ignore-not-found -o name) || guard_read=$?
if [ "$guard_read" = 1 ]; then
  log "the Kubernetes API at $API_SERVER does not answer: nothing to drain $NODE_NAME to; not draining it"
  exit 0
elif [ "$guard_read" != 0 ]; then
  log "the Kubernetes API at $API_SERVER answered but refused the node-lifecycle account (kubectl's error above):"
  log "$NODE_NAME is not drained and its machine is kept. Unauthorized: its token"
  log "(Secret $GUARD_NAMESPACE/$TOKEN_SECRET) is gone or revoked; Forbidden: its RBAC (ClusterRole $ACCOUNT);"
  log "x509/certificate: the API's certificate is not the cluster CA's this stack recorded."
  log "Fix it, then run pulumi up again."
  exit 1
fi
if [ -z "$guard" ]; then
  log "ConfigMap $GUARD_NAMESPACE/$GUARD_NAME is gone (the whole stack is being destroyed): not draining $NODE_NAME"
  exit 0
fi
# An assignment, so an API error here stops the script instead of reading as "no such node".
node=$(kube get node "$NODE_NAME" --ignore-not-found -o name)
if [ -z "$node" ]; then
  log "node $NODE_NAME is not in the cluster (already removed)"
  # Over the internet its departure stopped and disabled K3s already (depart.py): nothing to do then.
  stop_k3s
  exit 0
fi

log "cordoning and draining $NODE_NAME (at most ${DRAIN_TIMEOUT}s)"
if ! drain_node "$NODE_NAME"; then  # kube-lib.sh
  log "draining $NODE_NAME did not finish within ${DRAIN_TIMEOUT}s: a PodDisruptionBudget (kubectl get pdb -A)"
  log "or a pod without a controller holds it. The node stays cordoned and its machine is kept;"
  log "fix the cause, then run pulumi up again (or kubectl uncordon $NODE_NAME to keep it)."
  exit 1
fi

members=0
if [ "$ETCD_MEMBER" = true ]; then
  members=$(kube get nodes -l node-role.kubernetes.io/etcd=true -o name | wc -l)
  if [ "$members" -le 1 ]; then
    # The only member: removing it would end etcd, and the cluster goes with this server anyway.
    log "$NODE_NAME holds the only etcd member; it is not removed"
  fi
fi
if [ "$members" -gt 1 ]; then
  log "removing the etcd member of $NODE_NAME"
  remove_etcd_member "$NODE_NAME" "its machine is kept"
fi

kube_retry delete node "$NODE_NAME" --ignore-not-found
stop_k3s
log "$NODE_NAME drained and removed from the cluster"
