#!/usr/bin/env bash
# shellcheck disable=SC2329  # lib.sh's boot and file helpers are inlined but not needed here
# Print the node-lifecycle service account's token (components/k3s/lifecycle.py), read on a server as
# root through K3s' own kubeconfig. The token controller fills the Secret moments after it is created.
set -euo pipefail
shopt -s inherit_errexit  # a failure inside $(...) stops the script too
# @params
source lib.sh

for _ in $(seq 1 60); do
  token=$(k3s kubectl -n "$NAMESPACE" get secret "$SECRET_NAME" -o 'jsonpath={.data.token}' 2>/dev/null || true)
  if [ -n "$token" ]; then
    printf '%s' "$token" | base64 -d
    exit 0
  fi
  sleep 2
done
log "Secret $NAMESPACE/$SECRET_NAME has no token after 120s"
exit 1
