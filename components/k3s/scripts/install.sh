#!/usr/bin/env bash
# Install, or reconfigure, K3s on one node. Settings live in /etc/rancher/k3s/config.yaml (a re-run
# of the installer keeps it); the join token and S3 keys are only in that file (mode 0600), never on
# a command line or in the environment of a logged process.
# A new node starts the pinned version, staged beforehand by stage.sh (in parallel on every node, so this serial
# join downloads nothing) or, where nothing staged it (autoscaled nodes, a node staged at another version), staged
# here first; a node that already runs K3s keeps its version: the system-upgrade-controller's Plans upgrade running
# nodes (servers one at a time, agents drained). A node joining a running cluster whose servers run an older version
# starts theirs instead (k3s-lib.sh join_version): a kubelet is never newer than an API server.
# Idempotent: with the same configuration a second run changes nothing.
set -euo pipefail
shopt -s inherit_errexit  # a failure inside $(...) stops the script too
# @params
source lib.sh

wait_for_boot

service=k3s
if [ "$K3S_ROLE" = agent ]; then
  service=k3s-agent
fi

# A server that initialises the cluster but has no etcd data while the API endpoint already answers was rebuilt
# empty (its machine replaced; its drain removed its old etcd member): cluster-init would start a second cluster, so
# it joins the running one at that endpoint instead, as the other servers do (K3S_JOIN_CONFIG: the same settings with
# `server:` in place of `cluster-init`). Holding etcd data from then on, its own config applies on its next run.
# Etcd data is its write-ahead log, K3s' own test (pkg/etcd/etcd.go IsInitialized), not db/etcd: K3s creates that
# directory (the member's name file) before it joins, so a join that failed would otherwise start a second cluster
# on the next run.

# Whether the cluster answers at the probe: three tries 2 s apart, so that one lost request to a running cluster does
# not read as "no cluster" (a second one would follow). On a first deploy the balancer has no target to send it to.
cluster_answers() {
  local try
  for try in 1 2 3; do
    if curl -skf --max-time 5 -o /dev/null "$EXISTING_CLUSTER_PROBE"; then
      return 0
    fi
    if [ "$try" -lt 3 ]; then
      sleep 2
    fi
  done
  return 1
}
# K3s that exits at start fails its unit, and so the start: a server joining while an etcd member of its node name
# remains (a machine rebuilt outside Pulumi's drain) exits with "duplicate node name found". Say how to clear it.
start_failed() {
  log "$service on $NODE_NAME did not come up: journalctl -u $service says why"
  if [ "$K3S_ROLE" = server ]; then
    log "if it names a duplicate node name, its old etcd member remains: from a machine with the"
    log "kubeconfig, kubectl delete node $NODE_NAME (K3s then removes the member), and run pulumi up again"
  fi
  exit 1
}

config=$K3S_CONFIG
rejoins=
if [ -n "$EXISTING_CLUSTER_PROBE" ] && [ ! -d /var/lib/rancher/k3s/server/db/etcd/member/wal ]; then
  if cluster_answers; then
    log "the cluster already runs behind $EXISTING_CLUSTER_PROBE and $NODE_NAME has no etcd data: joining it"
    rejoins=true
  elif grep -qs '^server:' /etc/rancher/k3s/config.yaml; then
    # An earlier run found the cluster and this server has not joined yet: never initialise beside it.
    log "$EXISTING_CLUSTER_PROBE does not answer, but $NODE_NAME was joining the running cluster: joining it again"
    rejoins=true
  fi
fi
if [ -n "$rejoins" ]; then
  config=$K3S_JOIN_CONFIG
fi

# A changed file applies when K3s restarts: the marker keeps that restart pending until it succeeded, so a run that
# stops in between (an SSH drop, a failed restart) restarts on its retry, which finds the files unchanged.
restart_pending=/var/lib/adplatform/k3s/restart-pending
config_changed=$(write_pending "$restart_pending" /etc/rancher/k3s/config.yaml 0600 "$config")
# Servers: the audit policy and admission configuration the API server flags name. They must exist before
# K3s starts (the API server refuses to start without them) and a change needs a restart to apply.
if [ -n "$AUDIT_POLICY" ]; then
  install -d -m 0700 "$AUDIT_LOG_DIR"  # the audit log names users and objects: root only
  config_changed+=$(write_pending "$restart_pending" "$AUDIT_POLICY_PATH" 0600 "$AUDIT_POLICY")
  config_changed+=$(write_pending "$restart_pending" "$ADMISSION_CONFIG_PATH" 0600 "$ADMISSION_CONFIG")
fi

installed=$(k3s_installed "$service")  # empty on a staged node: its unit is not enabled yet

# A kubelet whose CPU manager checkpoint names another policy refuses to start; the checkpoint is
# removed with the service stopped so the running kubelet cannot write it back.
state=/var/lib/kubelet/cpu_manager_state
if [ -f "$state" ] && ! grep -q "\"policyName\":\"$CPU_MANAGER_POLICY\"" "$state"; then
  systemctl stop "$service" 2>/dev/null || true
  rm -f "$state"
  config_changed=changed
  log "CPU manager policy changed to $CPU_MANAGER_POLICY (drain the node first on a live cluster)"
fi

if [ -z "$installed" ]; then
  version=$K3S_VERSION
  # Every node but the one initialising a new cluster joins a running one: JOIN_URL, or the endpoint it probed.
  servers_at=$JOIN_URL
  if [ -n "$rejoins" ]; then
    servers_at=${EXISTING_CLUSTER_PROBE%/cacerts}
  fi
  if [ -n "$servers_at" ]; then
    version=$(join_version "$servers_at")
  fi
  if ! k3s_staged "$version"; then
    stage_k3s "$version"
  fi
  # The staged installer again, without downloading: it rewrites the unit for this role, enables and starts it. The
  # unit and binary are those staging wrote, so the installer would see "no change" and skip the start:
  # INSTALL_K3S_FORCE_RESTART starts it regardless (k3s install.sh, service_enable_and_start).
  if ! INSTALL_K3S_SKIP_DOWNLOAD=true INSTALL_K3S_EXEC="$K3S_ROLE" INSTALL_K3S_FORCE_RESTART=true \
    sh "$STAGED_INSTALLER" >&2; then
    start_failed
  fi
  log "k3s $version installed as $K3S_ROLE"
elif [ -n "$config_changed" ]; then
  systemctl restart "$service" || start_failed
  log "k3s configuration changed; $service restarted"
elif ! systemctl is-active --quiet "$service"; then
  systemctl start "$service" || start_failed
  log "$service started"
else
  log "k3s $installed already installed and configured"
fi
rm -f "$restart_pending"  # K3s (re)started with the files as written
if [ -n "$installed" ] && [ "$installed" != "$K3S_VERSION" ]; then
  log "k3s $installed runs here, $K3S_VERSION is configured: the system-upgrade-controller upgrades it"
fi

# Servers: wait until this API server answers /readyz, so the next server joins a healthy etcd.
# A wall-clock deadline (bash's SECONDS): each request may itself take its timeout.
if [ "$K3S_ROLE" = server ]; then
  deadline=$((SECONDS + 600))
  while [ "$SECONDS" -lt "$deadline" ]; do
    if k3s kubectl get --raw=/readyz --request-timeout=5s >/dev/null 2>&1; then
      log "API server on $NODE_NAME is ready"
      # CIS 1.1.20: K3s writes its PKI certificates world-readable; only K3s (root) reads them. Certificates
      # K3s renews later are narrowed again on the next run.
      find "$PKI_DIR" -name '*.crt' -perm /0077 -exec chmod 0600 {} +
      exit 0
    fi
    sleep 5
  done
  log "API server on $NODE_NAME not ready after 600s"
  start_failed
fi
systemctl is-active --quiet "$service"
