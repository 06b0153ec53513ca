#!/usr/bin/env bash
# The node-lifecycle account's kubectl, shared by drain.sh and resize.sh (inlined by components/shell after lib.sh).
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
