#!/usr/bin/env bash
# First boot of a node the cluster autoscaler created (components/k3s/userdata.py): write the K3s settings
# only the machine knows, as a config drop-in the agent reads with /etc/rancher/k3s/config.yaml. Its name is
# its hostname (the server name the autoscaler gave it); its private address is the one it reaches the API's
# private endpoint from. Idempotent: the same machine writes the same file.
set -euo pipefail
shopt -s inherit_errexit  # a failure inside $(...) stops the script too
# @params
source lib.sh

node_name=$(hostname)
if ! [[ $node_name =~ ^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$ ]]; then
  log "hostname '$node_name' is not a Kubernetes node name (lower-case DNS name)"
  exit 1
fi

# The private endpoint answers only over the private network, which a cloud may attach after boot: wait until
# it does, so the route to it leaves from the private address (not the public one of the default route).
address=""
for _ in $(seq 1 60); do
  address=$(getent ahosts "$API_ENDPOINT" | awk 'NR == 1 { print $1 }' || true)
  if [ -n "$address" ] && curl -sk --max-time 5 -o /dev/null "https://$API_ENDPOINT:$API_PORT/cacerts"; then
    break
  fi
  address=""
  sleep 5
done
if [ -z "$address" ]; then
  log "the API's private endpoint $API_ENDPOINT:$API_PORT did not answer within 300s"
  exit 1
fi
node_ip=$(ip -o route get "$address" | sed -n 's/.* src \([^ ]*\).*/\1/p')
if [ -z "$node_ip" ]; then
  log "no source address on the route to $address"
  exit 1
fi

changed=$(write_file "$DROP_IN" 0600 "node-name: $node_name
node-ip: $node_ip")
if [ -n "$changed" ]; then
  log "$DROP_IN: node $node_name at $node_ip"
fi
