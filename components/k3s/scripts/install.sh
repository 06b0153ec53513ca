#!/usr/bin/env bash
# Install, or reconfigure, K3s on one node at a pinned version. Settings live in
# /etc/rancher/k3s/config.yaml (a re-run of the installer keeps it); the join token is only in that
# file (mode 0600), never on a command line or in the environment of a logged process.
# Idempotent: with the same version and configuration a second run changes nothing.
set -euo pipefail
# @params
source lib.sh

wait_for_boot

service=k3s
if [ "$K3S_ROLE" = agent ]; then
  service=k3s-agent
fi

config_changed=$(write_file /etc/rancher/k3s/config.yaml 0600 "$K3S_CONFIG")

installed=""
if command -v k3s >/dev/null 2>&1; then
  installed=$(k3s --version | awk 'NR == 1 { print $3 }')
fi

# A kubelet whose CPU manager checkpoint names another policy refuses to start.
state=/var/lib/kubelet/cpu_manager_state
if [ -f "$state" ] && ! grep -q "\"policyName\":\"$CPU_MANAGER_POLICY\"" "$state"; then
  rm -f "$state"
  config_changed=changed
fi

if [ "$installed" != "$K3S_VERSION" ]; then
  installer=$(mktemp)
  trap 'rm -f "$installer"' EXIT
  curl -sfL --retry 5 --retry-delay 5 -o "$installer" "$INSTALL_SCRIPT_URL"
  INSTALL_K3S_VERSION="$K3S_VERSION" INSTALL_K3S_EXEC="$K3S_ROLE" sh "$installer" >&2
  log "k3s $K3S_VERSION installed as $K3S_ROLE (was: ${installed:-none})"
elif [ -n "$config_changed" ]; then
  systemctl restart "$service"
  log "k3s configuration changed; $service restarted"
elif ! systemctl is-active --quiet "$service"; then
  systemctl start "$service"
  log "$service started"
else
  log "k3s $K3S_VERSION already installed and configured"
fi

# Servers: wait until this API server answers /readyz, so the next server joins a healthy etcd.
if [ "$K3S_ROLE" = server ]; then
  for _ in $(seq 1 120); do
    if k3s kubectl get --raw=/readyz >/dev/null 2>&1; then
      log "API server on $NODE_NAME is ready"
      exit 0
    fi
    sleep 5
  done
  log "API server on $NODE_NAME not ready after 600s"
  exit 1
fi
systemctl is-active --quiet "$service"
