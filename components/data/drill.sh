#!/usr/bin/env bash
# A restore drill, run by the drill-<store> CronJob in the scratch namespace (components/data/drills.py).
#
# 1. Removes what a previous, interrupted drill left behind (the scratch objects of MANIFEST).
# 2. Creates the scratch instance of MANIFEST: it restores the store's latest backup by itself (the operator's
#    own restore path, reading the backup with the drills' read-only key pair).
# 3. Waits until RESOURCE reports READY (kubectl wait --for), at most TIMEOUT_SECONDS.
# 4. Runs check_<STORE>: prints the newest canary's write time (Unix seconds) found in the restored copy, after
#    the store's own consistency checks; fails when there is none.
# 5. Fails when that canary is older than MAX_AGE_SECONDS (the backup missed recent writes), and always tears
#    the scratch instance down (trap), so the namespace's quota is free for the next drill.
# The Job's success or failure, start and completion time are what monitoring reads (kube-state-metrics).
#
# Environment: STORE, NAMESPACE, MANIFEST, RESOURCE, READY, TIMEOUT_SECONDS, MAX_AGE_SECONDS, and the
# store's own (check_<store> says which).
set -euo pipefail

: "${STORE:?}" "${NAMESPACE:?}" "${MANIFEST:?}" "${RESOURCE:?}" "${READY:?}" "${TIMEOUT_SECONDS:?}" \
  "${MAX_AGE_SECONDS:?}"

log() {
  printf '%s drill %s: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$STORE" "$*" >&2
}

# teardown WAIT: the scratch objects of MANIFEST, and what teardown_<STORE> (if any) says the restore left behind.
teardown() {
  if declare -F "teardown_${STORE}" >/dev/null; then
    "teardown_${STORE}"
  fi
  kubectl delete --namespace "$NAMESPACE" --filename "$MANIFEST" --ignore-not-found --wait="$1" >/dev/null
}

# in_scratch POD CONTAINER COMMAND...: a command inside the restored instance (the Role allows pods/exec here only).
in_scratch() {
  local pod="$1" container="$2"
  shift 2
  kubectl exec --namespace "$NAMESPACE" "$pod" --container "$container" -- "$@"
}

# PostgreSQL (CloudNativePG): SCRATCH_POD, CANARY_DATABASE. Reads every row of the canary table (the data
# checksums initdb enabled are verified on each page read), then asks PostgreSQL for checksum failures.
check_postgres() {
  : "${SCRATCH_POD:?}" "${CANARY_DATABASE:?}"
  local failures newest
  newest="$(in_scratch "$SCRATCH_POD" postgres psql --no-psqlrc --tuples-only --no-align \
    --dbname "$CANARY_DATABASE" \
    --command 'SELECT coalesce(extract(epoch FROM max(written_at))::bigint, 0) FROM canary')"
  failures="$(in_scratch "$SCRATCH_POD" postgres psql --no-psqlrc --tuples-only --no-align --dbname postgres \
    --command 'SELECT coalesce(sum(checksum_failures), 0) FROM pg_stat_database')"
  if [[ "$failures" != "0" ]]; then
    log "the restored copy has ${failures} data checksum failures"
    return 1
  fi
  printf '%s\n' "$newest"
}

# Redpanda: SCRATCH_POD. The scratch broker's init container downloaded the newest finished export; the replay
# into it, the topics-and-partitions check against the export's manifest and the canary read run inside it
# (redpanda-drill-check.sh, mounted from the drill-redpanda-scripts ConfigMap).
check_redpanda() {
  : "${SCRATCH_POD:?}"
  in_scratch "$SCRATCH_POD" redpanda /bin/bash /scripts/redpanda-drill-check.sh
}

# ClickHouse: SCRATCH_POD, SHARDS (shard numbers), BACKUP_PATH (the backups' S3 path with {shard}),
# CANARY_DATABASE. Per shard, in turn: the newest complete backup (names full-<UTC time>: they sort by time; a
# backup still uploading has no metadata.json yet and lists as broken) is downloaded and restored over the previous
# shard's tables (`restore_remote --rm`), every MergeTree table's parts are checked against their checksums
# (CHECK TABLE), the shard's newest canary is read, and the local copy is deleted. Prints the oldest shard's newest
# canary: every shard must hold a recent one.
ch_sql() {
  in_scratch "$SCRATCH_POD" clickhouse clickhouse-client --host 127.0.0.1 --query "$1"
}

ch_backup() {
  local path="$1"
  shift
  in_scratch "$SCRATCH_POD" clickhouse-backup env "S3_PATH=${path}" clickhouse-backup "$@"
}

check_clickhouse() {
  : "${SCRATCH_POD:?}" "${SHARDS:?}" "${BACKUP_PATH:?}" "${CANARY_DATABASE:?}"
  if [[ ! "$CANARY_DATABASE" =~ ^[a-z_][a-z0-9_]*$ ]]; then
    log "CANARY_DATABASE must be an identifier, got '${CANARY_DATABASE}'"
    return 2
  fi
  local shard path name statements statement bad newest oldest=""
  for shard in $SHARDS; do
    if [[ ! "$shard" =~ ^[0-9]+$ ]]; then
      log "SHARDS must be shard numbers, got '${shard}'"
      return 2
    fi
    path="${BACKUP_PATH//\{shard\}/$shard}"
    name="$(ch_backup "$path" list remote | grep -v broken | grep -oE '^full-[0-9]{8}T[0-9]{6}Z' | sort | tail -n 1)" ||
      true
    if [[ -z "$name" ]]; then
      log "shard ${shard}: no complete backup under ${path}"
      return 1
    fi
    log "shard ${shard}: restoring ${name}"
    ch_backup "$path" restore_remote --rm "$name" >&2
    statements="$(ch_sql "SELECT concat('CHECK TABLE ', backQuote(database), '.', backQuote(name),
      ' SETTINGS check_query_single_value_result = 1') FROM system.tables
      WHERE engine LIKE '%MergeTree' AND database NOT IN ('system', 'INFORMATION_SCHEMA', 'information_schema')")"
    bad=0
    while IFS= read -r statement; do
      if [[ -n "$statement" ]] && [[ "$(ch_sql "$statement")" != "1" ]]; then
        log "shard ${shard}: ${statement} found damaged parts"
        bad=1
      fi
    done <<<"$statements"
    if ((bad)); then
      return 1
    fi
    newest="$(ch_sql "SELECT toUnixTimestamp(max(written_at)) FROM ${CANARY_DATABASE}.canary")"
    if [[ ! "$newest" =~ ^[0-9]+$ ]] || ((newest == 0)); then
      log "shard ${shard}: no canary in the restored copy"
      return 1
    fi
    log "shard ${shard}: newest canary ${newest}"
    if [[ -z "$oldest" ]] || ((newest < oldest)); then
      oldest="$newest"
    fi
    ch_backup "$path" delete local "$name" >&2
  done
  printf '%s\n' "$oldest"
}

# etcd (K3s' snapshots): SCRATCH_POD, CANARY_KEY (the canary ConfigMap's etcd key), CANARY_MARKER. The scratch pod's
# init containers downloaded the newest snapshot (its name is the download container's termination message) and
# restored it with etcdutl, which verifies the snapshot's integrity hash; etcd serves it on loopback. Checks that it
# is this cluster's datastore (the kube-system Namespace), logs the snapshot's age, prints the canary's time (values
# are protobuf: the time follows CANARY_MARKER in the raw value).
check_etcd() {
  : "${SCRATCH_POD:?}" "${CANARY_KEY:?}" "${CANARY_MARKER:?}"
  local name newest
  name="$(kubectl get pod --namespace "$NAMESPACE" "$SCRATCH_POD" --output \
    'jsonpath={.status.initContainerStatuses[?(@.name=="download")].state.terminated.message}')"
  if [[ ! "$name" =~ -([0-9]+)(\.zip)?$ ]]; then
    log "the download named no snapshot (got '${name}')"
    return 1
  fi
  log "restored ${name}: taken $(($(date +%s) - BASH_REMATCH[1]))s ago"
  if [[ -z "$(in_scratch "$SCRATCH_POD" etcd etcdctl get /registry/namespaces/kube-system --keys-only)" ]]; then
    log "the restored etcd has no kube-system Namespace: not a Kubernetes datastore"
    return 1
  fi
  newest="$(in_scratch "$SCRATCH_POD" etcd etcdctl get "$CANARY_KEY" --print-value-only |
    grep -aoE "${CANARY_MARKER}[0-9]+" | tail -n 1)" || true
  printf '%s\n' "${newest#"$CANARY_MARKER"}"
}

# ScyllaDB: SCRATCH_POD, WORK, CANARY_KEYSPACE, CANARY_TABLE, CANARY_SCHEMA. The scratch node's init container
# downloaded every node's SSTables of the canary table from the newest complete Scylla Manager snapshot into
# WORK/nodes/<node> (scylladb-drill-download.sh). The keyspace (one replica) and the table are created from our own
# definition (CANARY_SCHEMA); each node's files are copied into the table's upload directory and loaded with
# `nodetool refresh --load-and-stream`, node by node (their file names repeat across nodes; the refresh empties the
# directory); then every canary's time is read (toUnixTimestamp of a column: no function over an aggregate; in
# milliseconds; a few thousand rows at most, the table's TTL) and the newest printed.
sc_cql() {
  in_scratch "$SCRATCH_POD" scylladb cqlsh 127.0.0.1 --no-color -e "$1"
}

sc_node() {
  in_scratch "$SCRATCH_POD" scylladb "$@"
}

check_scylladb() {
  : "${SCRATCH_POD:?}" "${WORK:?}" "${CANARY_KEYSPACE:?}" "${CANARY_TABLE:?}" "${CANARY_SCHEMA:?}"
  local name table_dir nodes node loaded=0 newest
  for name in "$CANARY_KEYSPACE" "$CANARY_TABLE"; do
    if [[ ! "$name" =~ ^[a-z_][a-z0-9_]*$ ]]; then
      log "CANARY_KEYSPACE and CANARY_TABLE must be CQL identifiers, got '${name}'"
      return 2
    fi
  done
  sc_cql "$CANARY_SCHEMA" >&2
  table_dir="$(sc_node find "/var/lib/scylla/data/${CANARY_KEYSPACE}" -mindepth 1 -maxdepth 1 -type d \
    -name "${CANARY_TABLE}-*")"
  if [[ ! "$table_dir" =~ ^/var/lib/scylla/data/${CANARY_KEYSPACE}/${CANARY_TABLE}-[0-9a-f]{32}$ ]]; then
    log "no single data directory of ${CANARY_KEYSPACE}.${CANARY_TABLE} in the scratch node: '${table_dir}'"
    return 1
  fi
  nodes="$(sc_node ls "${WORK}/nodes")"
  for node in $nodes; do
    if [[ ! "$node" =~ ^[0-9a-f-]{36}$ ]]; then
      log "refusing the node directory '${node}'"
      return 1
    fi
    sc_node cp -r "${WORK}/nodes/${node}/." "${table_dir}/upload/"
    sc_node nodetool refresh "$CANARY_KEYSPACE" "$CANARY_TABLE" --load-and-stream >&2
    loaded=$((loaded + 1))
    log "loaded node ${node}'s SSTables"
  done
  if ((loaded == 0)); then
    log "the download holds no node's SSTables"
    return 1
  fi
  newest="$(sc_cql "PAGING OFF; SELECT toUnixTimestamp(written_at) FROM ${CANARY_KEYSPACE}.${CANARY_TABLE}" |
    grep -oE '^ *[0-9]+ *$' | tr -d ' ' | sort -n | tail -n 1 || true)"
  if [[ ! "$newest" =~ ^[0-9]+$ ]]; then
    log "no canary in the restored copy"
    return 1
  fi
  printf '%s\n' "$((newest / 1000))"
}

# Velero's drills: follow RESTORE's phase until Completed. A Restore that ended otherwise (PartiallyFailed, Failed,
# FailedValidation: e.g. no backup of the schedule yet) fails the drill at once, not at TIMEOUT_SECONDS.
wait_restore() {
  : "${RESTORE:?}"
  local deadline phase
  deadline=$(($(date +%s) + TIMEOUT_SECONDS))
  while :; do
    phase="$(kubectl get restore --namespace "$NAMESPACE" "$RESTORE" --output 'jsonpath={.status.phase}')"
    case "$phase" in
      Completed) return 0 ;;
      PartiallyFailed | Failed | FailedValidation)
        log "the Restore ended ${phase}: kubectl -n ${NAMESPACE} describe restore ${RESTORE}"
        return 1
        ;;
    esac
    if (($(date +%s) >= deadline)); then
      log "the Restore is still '${phase}' after ${TIMEOUT_SECONDS}s"
      return 1
    fi
    sleep "${POLL_SECONDS:-10}"
  done
}

wait_velero() {
  wait_restore
}

# Velero: NAMESPACE is Velero's (MANIFEST is the drill's Restore, of the newest successful scheduled backup),
# TARGET, RESTORE, CANARY_CONFIGMAP, CANARY_KEY, CANARY_MARKER. The Restore (Completed: wait_restore) put the
# canary ConfigMap of dr-drills into TARGET, an empty namespace (the admission policy admits no other mapping);
# prints its time. teardown_velero deletes what the Restore restored (Velero labels it with the Restore's name).
check_velero() {
  : "${TARGET:?}" "${RESTORE:?}" "${CANARY_CONFIGMAP:?}" "${CANARY_KEY:?}" "${CANARY_MARKER:?}"
  local backup restored_by value
  if [[ ! "$CANARY_KEY" =~ ^[a-z][a-z-]*$ ]]; then
    log "CANARY_KEY must be a lower-case key, got '${CANARY_KEY}'"
    return 2
  fi
  backup="$(kubectl get restore --namespace "$NAMESPACE" "$RESTORE" --output 'jsonpath={.spec.backupName}')"
  log "restored from backup ${backup}"
  restored_by="$(kubectl get configmap --namespace "$TARGET" "$CANARY_CONFIGMAP" --output \
    'jsonpath={.metadata.labels.velero\.io/restore-name}')" || true
  if [[ "$restored_by" != "$RESTORE" ]]; then
    log "no canary ConfigMap restored by ${RESTORE} in ${TARGET} (labelled '${restored_by}')"
    return 1
  fi
  value="$(kubectl get configmap --namespace "$TARGET" "$CANARY_CONFIGMAP" --output \
    "go-template={{index .data \"${CANARY_KEY}\"}}")"
  if [[ ! "$value" =~ ^${CANARY_MARKER}([0-9]+)$ ]]; then
    log "the restored canary holds no time: '${value}'"
    return 1
  fi
  printf '%s\n' "${BASH_REMATCH[1]}"
}

teardown_velero() {
  kubectl delete configmap --namespace "$TARGET" --selector "velero.io/restore-name=${RESTORE}" \
    --ignore-not-found >/dev/null
}

# DragonflyDB (Velero's file-system restore): NAMESPACE is Velero's (MANIFEST is the drill's Restore of the first
# instance's pod and snapshot volume, rewritten by the resource modifier into a DragonflyDB on loopback), TARGET,
# RESTORE, SCRATCH_POD, LOAD_TIMEOUT_SECONDS, CANARY_KEY. wait_dragonfly follows the Restore's phase (wait_restore),
# then waits until the restored pod has loaded the snapshot;
# check_dragonfly reads the canary. teardown_dragonfly deletes what the Restore created in TARGET.
wait_dragonfly() {
  : "${SCRATCH_POD:?}" "${LOAD_TIMEOUT_SECONDS:?}"
  wait_restore
  kubectl wait --namespace "$TARGET" --for=condition=Ready --timeout="${LOAD_TIMEOUT_SECONDS}s" \
    "pod/${SCRATCH_POD}" >/dev/null
}

check_dragonfly() {
  : "${TARGET:?}" "${RESTORE:?}" "${SCRATCH_POD:?}" "${CANARY_KEY:?}"
  local backup keys value
  backup="$(kubectl get restore --namespace "$NAMESPACE" "$RESTORE" --output 'jsonpath={.spec.backupName}')"
  keys="$(kubectl exec --namespace "$TARGET" "$SCRATCH_POD" --container dragonfly -- \
    redis-cli -h 127.0.0.1 DBSIZE)"
  log "restored from backup ${backup}: ${keys} keys loaded"
  value="$(kubectl exec --namespace "$TARGET" "$SCRATCH_POD" --container dragonfly -- \
    redis-cli -h 127.0.0.1 --raw GET "$CANARY_KEY")"
  if [[ ! "$value" =~ ^[0-9]+$ ]]; then
    log "the restored snapshot holds no canary time under ${CANARY_KEY}: '${value}'"
    return 1
  fi
  printf '%s\n' "$value"
}

teardown_dragonfly() {
  kubectl delete pods,persistentvolumeclaims --namespace "$TARGET" --selector "velero.io/restore-name=${RESTORE}" \
    --ignore-not-found --wait=false >/dev/null
}

main() {
  local started restored newest age
  if ! declare -F "check_${STORE}" >/dev/null; then
    log "no check for this store"
    exit 2
  fi
  started="$(date +%s)"
  teardown true
  trap 'teardown false' EXIT
  kubectl apply --namespace "$NAMESPACE" --filename "$MANIFEST" >/dev/null
  log "restoring the latest backup into ${RESOURCE}"
  if declare -F "wait_${STORE}" >/dev/null; then
    "wait_${STORE}"
  else
    kubectl wait --namespace "$NAMESPACE" --for="$READY" --timeout="${TIMEOUT_SECONDS}s" "$RESOURCE" >/dev/null
  fi
  restored="$(date +%s)"
  log "restored in $((restored - started))s"

  newest="$("check_${STORE}")"
  if ! [[ "$newest" =~ ^[0-9]+$ ]] || ((newest == 0)); then
    log "no canary in the restored copy"
    exit 1
  fi
  age=$((restored - newest))
  if ((age > MAX_AGE_SECONDS)); then
    log "the newest canary is ${age}s old, more than ${MAX_AGE_SECONDS}s: the backup misses recent writes"
    exit 1
  fi
  log "passed: newest canary ${age}s old, drill took $(($(date +%s) - started))s"
}

main
