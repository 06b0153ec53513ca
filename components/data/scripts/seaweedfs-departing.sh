#!/usr/bin/env bash
# shellcheck disable=SC2329  # lib.sh's boot and file helpers are inlined but not needed here
# Which SeaweedFS volume servers must be emptied before nodes leave the cluster (components/data/objectstore_shrink.py:
# over the public internet departure_step, run by the departure hooks of components/k3s/depart.py before any node is
# drained; otherwise the release's before_update hook, before the leaving nodes' drains). It runs on the cluster's first K3s server as the node-lifecycle service account and prints
# on stdout:
#   replicas<TAB>N   the live StatefulSet's replica count (nothing when it does not exist yet)
#   on<TAB>POD       each volume server pod that runs on a leaving node: LEAVING_BY=addresses, one with an address
#                    among ADDRESSES but not in KEEP (kube-lib.sh find_leaving_nodes); LEAVING_BY=absence, any node
#                    not in KEEP (a shrink within one provider: the release's hook, before the node's drain)
set -euo pipefail
shopt -s inherit_errexit  # a failure inside $(...) stops the script too
# @params
source lib.sh

open_kubeconfig  # kube-lib.sh

replicas=$(kube get statefulset -n "$NAMESPACE" "$STATEFULSET" --ignore-not-found -o 'jsonpath={.spec.replicas}')
if [ -n "$replicas" ]; then
  printf 'replicas\t%s\n' "$replicas"
fi
pods=$(kube get pods -n "$NAMESPACE" -l "$SELECTOR" -o 'jsonpath={range .items[*]}{.metadata.name}{"\t"}{.spec.nodeName}{"\n"}{end}')
find_leaving_nodes "$LEAVING_BY"  # kube-lib.sh: sets `leaving`
# shellcheck disable=SC2154  # leaving: set by find_leaving_nodes
while IFS=$'\t' read -r pod node; do
  [ -n "$pod" ] && [ -n "$node" ] || continue
  case " ${leaving[*]} " in *" $node "*) printf 'on\t%s\n' "$pod" ;; esac
done <<<"$pods"
