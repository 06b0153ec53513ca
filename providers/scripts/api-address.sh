#!/usr/bin/env bash
# The internal API load balancer's address on `lo` of a K3s server (provider azure).
#
# An Azure internal load balancer cannot send a backend's own flow back to that backend: a server
# reaching the API through the balancer would fail whenever it is picked. With floating IP (direct
# server return) on the balancer rule and the frontend address on each server's loopback, a server
# reaches the address locally (its own API server, which listens on every address) and the balancer
# delivers everyone else's packets with the frontend address as destination, which the server accepts.
#
# The address is there only while this server's K3s runs: the unit starts once k3s.service is ready
# (Type=notify) and stops with it. A server that joins, or restarts, reaches the API of the others
# through the balancer meanwhile, never its own port that nothing answers yet.
# Idempotent: the unit is rewritten only when it changes; `ip address replace` never duplicates.
set -euo pipefail
shopt -s inherit_errexit  # a failure inside $(...) stops the script too
# @params
source lib.sh

readonly UNIT_NAME=adplatform-api-address.service

unit=$(cat <<UNIT
[Unit]
Description=adplatform: the internal API load balancer's address on lo while K3s runs (floating IP)
After=k3s.service
BindsTo=k3s.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=$(command -v ip) address replace $API_ADDRESS/32 dev lo
ExecStop=-$(command -v ip) address del $API_ADDRESS/32 dev lo

[Install]
WantedBy=k3s.service
UNIT
)
# Enabled before K3s is installed: k3s.service pulls the unit in whenever it starts.
if [ -n "$(write_file "/etc/systemd/system/$UNIT_NAME" 0644 "$unit")" ]; then
  systemctl daemon-reload
  systemctl enable "$UNIT_NAME" >/dev/null 2>&1
  log "API address $API_ADDRESS goes on lo while K3s runs"
fi
# A re-run on a running server (a changed address) applies it now.
if systemctl is-active --quiet k3s.service; then
  systemctl restart "$UNIT_NAME"
fi
