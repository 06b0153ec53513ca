#!/usr/bin/env bash
# K3s helpers shared by stage.sh and install.sh (inlined by components/shell after lib.sh). They read the scripts'
# parameters K3S_VERSION, K3S_ROLE, INSTALL_SCRIPT_URL, INSTALLER_SHA256 and STAGED_INSTALLER (install.sh's join
# version: AGENT_TOKEN too).
#
# A node goes through three states: bare; staged (stage.sh: the pinned installer kept in STAGED_INSTALLER, the binary
# and the unit written by it, the unit neither enabled nor started); installed (install.sh: the unit enabled and
# started). The upstream installer enables the unit whenever it does not skip that, so "enabled" tells an installed
# node from a staged one; a binary and a unit file alone do not.
set -euo pipefail

k3s_version() {
  k3s --version | awk 'NR == 1 { print $3 }'
}

# k3s_installed SERVICE: the version of K3s that was started on this node, empty on a bare or staged node.
k3s_installed() {
  if command -v k3s >/dev/null 2>&1 && [ -f "/etc/systemd/system/$1.service" ] &&
    systemctl is-enabled --quiet "$1" 2>/dev/null; then
    k3s_version
  fi
}

# k3s_staged [VERSION]: VERSION's binary (default the configured one) is in place and the installer that wrote it is
# kept.
k3s_staged() {
  [ -f "$STAGED_INSTALLER" ] && command -v k3s >/dev/null 2>&1 && [ "$(k3s_version)" = "${1:-$K3S_VERSION}" ]
}

# stage_k3s [VERSION]: download the pinned installer and let it fetch and verify (sha256) VERSION's binary (default
# the configured one; the installer of one tag installs any release) and write the unit for K3S_ROLE, without enabling
# or starting it (INSTALL_K3S_SKIP_ENABLE/INSTALL_K3S_SKIP_START). No secret is involved: the join token is only
# written later, by install.sh, into /etc/rancher/k3s/config.yaml.
stage_k3s() {
  local installer version=${1:-$K3S_VERSION}
  install -d -m 0700 "$(dirname "$STAGED_INSTALLER")"
  installer=$(mktemp "$STAGED_INSTALLER.XXXXXX")
  # A failed download or install removes its copy: retries would otherwise pile up partial installers.
  if ! curl -sSfL --retry 5 --retry-delay 5 -o "$installer" "$INSTALL_SCRIPT_URL"; then
    rm -f "$installer"
    log "downloading the k3s $version installer from $INSTALL_SCRIPT_URL failed"
    return 1
  fi
  # cluster.k3sInstallerSha256: a moved tag or a replaced file is refused before it runs as root.
  if [ -n "$INSTALLER_SHA256" ] && ! printf '%s  %s\n' "$INSTALLER_SHA256" "$installer" | sha256sum -c --status; then
    rm -f "$installer"
    log "$INSTALL_SCRIPT_URL does not have the sha256 of adplatform:cluster.k3sInstallerSha256 ($INSTALLER_SHA256):"
    log "refusing to run it. Pin the sha256 of install.sh at the tag of cluster.k3sVersion ($K3S_VERSION)."
    return 1
  fi
  if ! INSTALL_K3S_VERSION="$version" INSTALL_K3S_EXEC="$K3S_ROLE" INSTALL_K3S_SKIP_ENABLE=true \
    INSTALL_K3S_SKIP_START=true sh "$installer" >&2; then
    rm -f "$installer"
    log "staging k3s $version from $INSTALL_SCRIPT_URL failed"
    return 1
  fi
  mv -f "$installer" "$STAGED_INSTALLER"  # last: a kept installer means its binary is in place
  log "k3s $version staged as $K3S_ROLE (not started)"
}

K3S_VERSION_GRAMMAR='^v[0-9]+\.[0-9]+\.[0-9]+\+k3s[0-9]+$'

# servers_version URL: the oldest K3s version of the servers at URL, read with the agent token alone (docs/lifecycle.md
# "Version skew": the API refuses anonymous requests, so a kube-proxy client certificate lists the control-plane Nodes).
servers_version() (
  local url=$1 dir versions version
  dir=$(mktemp -d)
  trap 'rm -rf "$dir"' EXIT
  if ! curl -sSfk --max-time 10 -o "$dir/ca.crt" "$url/cacerts"; then
    log "the K3s servers at $url do not answer /cacerts"
    return 1
  fi
  if ! openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=adplatform-join \
    -keyout "$dir/client.key" -outform DER -out "$dir/client.csr" 2>/dev/null; then
    log "openssl could not make a key and signing request"
    return 1
  fi
  if ! printf 'user = "node:%s"\n' "$AGENT_TOKEN" | curl -sf --max-time 10 --cacert "$dir/ca.crt" -K - \
    --data-binary "@$dir/client.csr" -o "$dir/client.crt" "$url/v1-k3s/client-kube-proxy.crt"; then
    log "the K3s servers at $url gave no client certificate for the agent token"
    return 1
  fi
  if ! curl -sf --max-time 10 --cacert "$dir/ca.crt" --cert "$dir/client.crt" --key "$dir/client.key" \
    -o "$dir/nodes.json" "$url/api/v1/nodes?labelSelector=node-role.kubernetes.io%2Fcontrol-plane%3Dtrue"; then
    log "the Kubernetes API at $url did not list the control-plane Nodes"
    return 1
  fi
  versions=$(grep -o '"kubeletVersion": *"[^"]*"' "$dir/nodes.json" | sed 's/.*"\([^"]*\)"$/\1/' || true)
  if [ -z "$versions" ]; then
    log "the Kubernetes API at $url lists no control-plane Node with a kubeletVersion"
    return 1
  fi
  while IFS= read -r version; do
    if ! [[ "$version" =~ $K3S_VERSION_GRAMMAR ]]; then
      log "a K3s server reports the version '$version', not a K3s release (vX.Y.Z+k3sN)"
      return 2  # an answer, not a failure to ask: asking again would not change it
    fi
  done <<<"$versions"
  printf '%s\n' "$versions" | sort -V | head -n 1
)

# join_version URL: the configured version, or the servers' when older: a kubelet is never newer than an API server.
# A version it cannot read fails the join rather than risk a newer kubelet. It reads until a wall-clock deadline
# (bash's SECONDS, as the /readyz wait; each pass may take its requests' timeouts): on a first deploy a node asks right
# after the first server answers /readyz, while the API balancer's health check may not route to it yet and K3s labels
# the server's Node only once its kubelet has registered it (k3s pkg/server/server.go setNodeLabelsAndAnnotations).
join_version() {
  local url=$1 servers status wait=600 pause=10 deadline
  deadline=$((SECONDS + wait))
  while :; do
    servers=$(servers_version "$url") && status=0 || status=$?
    if [ "$status" -eq 2 ]; then
      log "not installing k3s $K3S_VERSION beside a server whose version cannot be compared with it"
      return 1
    fi
    if [ "$status" -eq 0 ]; then
      if [ "$(printf '%s\n%s\n' "$servers" "$K3S_VERSION" | sort -V | head -n 1)" != "$K3S_VERSION" ]; then
        log "the servers run k3s $servers, older than the configured $K3S_VERSION: joining at $servers (the Plans upgrade it)"
        printf '%s\n' "$servers"
      else
        printf '%s\n' "$K3S_VERSION"
      fi
      return 0
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      break
    fi
    sleep "$pause"
  done
  log "cannot read the K3s version of the servers at $url for ${wait}s: not installing k3s $K3S_VERSION, which may be newer"
  log "than their API servers. Check the API endpoint and agent token, then run pulumi up again"
  return 1
}
