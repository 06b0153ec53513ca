#!/usr/bin/env bash
# Host firewall of an existing server (provider baremetal): one nftables table, `inet adplatform`,
# rendered from the port specification every provider enforces (providers/base.py PORTS).
#
# Idempotent: the table is replaced in one nft transaction (delete + create), so a re-run changes
# nothing and no packet ever meets a half-built rule set; other tables (the iptables-nft rules of
# K3s and Cilium) are never touched. A systemd unit loads the same file at boot, before the network
# comes up. The SSH session running this survives the switch (established connections are
# accepted), and the rules are refused unless they let the deployer's address reach SSH again.
set -euo pipefail
shopt -s inherit_errexit  # a failure inside $(...) stops the script too
# @params
source lib.sh

readonly RULES_FILE=/etc/adplatform/firewall.nft
readonly UNIT_NAME=adplatform-firewall.service

# The address this SSH session comes from, as sshd sees it ("addr port port"): the command passes it
# in ADP_SSH_CLIENT because sudo does not keep SSH_CLIENT.
deployer=${ADP_SSH_CLIENT:-}
deployer=${deployer%% *}
if [ -z "$deployer" ]; then
  log "refusing to change the firewall: the deployer's address is unknown (no SSH_CLIENT in the session)"
  exit 1
fi
# ::ffff:a.b.c.d is an IPv4 client on a dual-stack socket: nftables matches it as IPv4.
if ! python3 - "$deployer" "$SSH_SOURCES" <<'PY'
import ipaddress
import sys

address = ipaddress.ip_address(sys.argv[1])
if address.version == 6 and address.ipv4_mapped:
    address = address.ipv4_mapped
allowed = [ipaddress.ip_network(cidr, strict=False) for cidr in sys.argv[2].split()]
sys.exit(0 if any(address.version == net.version and address in net for net in allowed) else 1)
PY
then
  log "refusing to change the firewall: the deployer's address $deployer is not in adminCidrs or the private"
  log "network ($SSH_SOURCES), so SSH would be closed to the next run; add it to adminCidrs"
  exit 1
fi

wait_for_boot
if ! command -v nft >/dev/null 2>&1; then
  log "installing nftables"
  DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q nftables >/dev/null
fi
if command -v ufw >/dev/null 2>&1 && ufw status 2>/dev/null | grep -q '^Status: active'; then
  log "warning: ufw is active; its rules apply in addition to the adplatform table (a packet must pass both)"
fi

# Validate the candidate before anything changes (nft -c parses and checks without applying).
candidate=$(mktemp /run/adplatform-firewall.XXXXXX)
trap 'rm -f "$candidate"' EXIT
printf '%s\n' "$RULESET" >"$candidate"
nft -c -f "$candidate"

changed=$(write_file "$RULES_FILE" 0600 "$RULESET")
# Always loaded, not only on change: the live table may have drifted (a manual `nft flush ruleset`).
nft -f "$RULES_FILE"
if [ -n "$changed" ]; then
  log "firewall rules changed and applied"
fi

unit=$(cat <<UNIT
[Unit]
Description=adplatform host firewall (nftables table inet adplatform)
DefaultDependencies=no
Wants=network-pre.target
Before=network-pre.target shutdown.target k3s.service k3s-agent.service
Conflicts=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=$(command -v nft) -f $RULES_FILE

[Install]
WantedBy=sysinit.target
UNIT
)
if [ -n "$(write_file "/etc/systemd/system/$UNIT_NAME" 0644 "$unit")" ]; then
  systemctl daemon-reload
fi
systemctl enable "$UNIT_NAME" >/dev/null 2>&1
