#!/usr/bin/env bash
# shellcheck disable=SC2329  # lib.sh's boot and file helpers are inlined but not needed here
# Empty one SeaweedFS volume server that a release update is about to remove (components/data/objectstore_shrink.py:
# the before_update hook of the seaweedfs release), so its StatefulSet can shrink without losing a file's copies.
# It runs on the cluster's first K3s server as the node-lifecycle service account (the token is written to a 0600
# file only for the run and never logged) and drives `weed shell` in a Ready master pod (SeaweedFS 4.44):
#   volumeServer.evacuate -apply  moves each of SERVER's volumes to a server without a copy of it yet
#   volume.list -dataNode         shows what SERVER still holds (a volume may grow on it meanwhile: evacuate again)
#   volumeServer.leave -apply     stops its heartbeats, so nothing new grows on it before it goes
#   volume.fix.replication        (a report: no -apply) for a server the master no longer knows: no copy may be lost
# `weed shell` exits 0 whatever a command does and reports a failed one as "error: ..." or "unknown command: ..."
# (weed/shell/shell_liner.go processEachCmd): those lines fail this script, and the update with it.
set -euo pipefail
shopt -s inherit_errexit  # a failure inside $(...) stops the script too
# @params
source lib.sh

open_kubeconfig  # kube-lib.sh

read -ra master_pods <<<"$MASTERS"
master=""
for candidate in "${master_pods[@]}"; do
  ready=$(kube get pod -n "$NAMESPACE" "$candidate" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' \
    2>/dev/null || true)
  if [ "$ready" = True ]; then
    master=$candidate
    break
  fi
done
if [ -z "$master" ]; then
  log "no SeaweedFS master is Ready (${MASTERS}): $SERVER cannot be emptied; the update is aborted, every volume"
  log "server is kept. Bring the masters back (kubectl -n $NAMESPACE get pods), then run pulumi up again."
  exit 1
fi

# The commands on stdin, in the master's `weed shell` (it reaches its master at localhost:9333); prints the output,
# fails on any command's error. Not `kube`: its request timeout would cut the exec's stream; `timeout` bounds it.
weed_shell() {
  local out
  # shellcheck disable=SC2154  # kubeconfig: the file open_kubeconfig (kube-lib.sh) wrote
  if ! out=$(timeout "$EVACUATE_TIMEOUT" k3s kubectl --kubeconfig "$kubeconfig" exec -i -n "$NAMESPACE" "$master" \
    -c seaweedfs -- weed shell 2>&1); then
    printf '%s\n' "$out" >&2
    return 1
  fi
  if grep -qE '^(error: |unknown command: )' <<<"$out"; then
    printf '%s\n' "$out" >&2
    return 1
  fi
  printf '%s\n' "$out"
}

# Fails the script (and the update) when a volume of the cluster lacks a copy: the server $1 describes, which serves
# nothing now, may hold the other one on its disk, and its StatefulSet must not delete it. volume.fix.replication
# without -apply only reports, one line per such volume (command_volume_fix_replication.go at 4.44).
no_copy_missing() {
  local report missing
  report=$(weed_shell <<<"volume.fix.replication")
  missing=$(grep -cE '^volume [0-9]+ replication [0-9]+, but under replicated' <<<"$report" || true)
  if [ "$missing" -gt 0 ]; then
    printf '%s\n' "$report" >&2
    log "$1, and $missing volumes lack a copy (above): it may hold their other copy."
    log "The update is aborted, every volume server is kept. Bring $SERVER back (kubectl -n $NAMESPACE get pod"
    log "$SERVER), or restore the copies (weed shell: volume.fix.replication -apply), then run pulumi up again."
    exit 1
  fi
}

# A server without a pod serves nothing now; its claim stays when the StatefulSet shrinks (the chart keeps claims),
# and nothing is lost when every volume still has its copies elsewhere.
if [ -z "$(kube get pod -n "$NAMESPACE" "$SERVER" --ignore-not-found -o name)" ]; then
  no_copy_missing "volume server $SERVER has no pod"
  log "volume server $SERVER has no pod and no volume lacks a copy: nothing to empty"
  exit 0
fi

emptied=false
waited=false
for attempt in 1 2 3; do
  log "emptying volume server $SERVER ($ADDRESS) into the others, through $master (attempt $attempt)"
  if ! out=$(weed_shell <<<"lock; volumeServer.evacuate -node $ADDRESS -apply; unlock" 2>&1); then
    printf '%s\n' "$out" >&2
    # The master does not know a server that sends no heartbeat (evacuate's error, command_volume_server_evacuate.go):
    # one emptied and made leave earlier (by a run the update then stopped at a later server, or before its node left a
    # cluster over the internet: its pod may be Pending since), so the next step must not fail on it; or one whose pod
    # is only starting: wait for its heartbeat. Whatever its pod's phase, it is emptied when no volume of the cluster
    # lacks a copy (volume.fix.replication without -apply only reports, command_volume_fix_replication.go): a server
    # that went down with copies on its disk leaves their volumes under-replicated, and those copies must not go.
    if grep -qxF "error: $ADDRESS is not found in this cluster" <<<"$out"; then
      if [ "$waited" = true ]; then
        no_copy_missing "the master does not know $ADDRESS"
        log "the master does not know $ADDRESS (emptied and left earlier) and no volume lacks a copy: nothing to empty"
        exit 0
      fi
      waited=true
      sleep 15  # three heartbeats (weed volume -pulseSeconds 5)
      continue
    fi
    log "weed shell volumeServer.evacuate failed for $ADDRESS (above): the update is aborted, every volume server"
    log "is kept. A volume with no other place for its copy (too few servers, or too little room on them: see"
    log "docs/data-plane.md) holds it; fix that, then run pulumi up again."
    exit 1
  fi
  printf '%s\n' "$out" >&2
  listing=$(weed_shell <<<"volume.list -dataNode $ADDRESS")
  # One line per volume and per erasure-coded volume the server holds, indented 10 spaces (weed/shell/
  # command_volume_list.go, -v 5); not the cluster-wide duplicate-id warning after them ("  volume <id> in ...").
  held=$(grep -cE '^ {10}(ec )?volume ' <<<"$listing" || true)
  if [ "$held" -eq 0 ]; then
    emptied=true
    break
  fi
  log "$SERVER still holds $held volumes"
done
if [ "$emptied" != true ]; then
  log "$SERVER still holds volumes after 3 evacuations: the update is aborted, every volume server is kept"
  exit 1
fi
if ! weed_shell <<<"lock; volumeServer.leave -node $ADDRESS -apply; unlock" >&2; then
  log "$SERVER holds no volume, but volumeServer.leave failed (above): the update is aborted; run pulumi up again"
  exit 1
fi
log "volume server $SERVER holds no volume and left the cluster: its pod may go"
