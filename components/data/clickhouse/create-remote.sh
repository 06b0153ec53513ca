#!/usr/bin/env bash
# Remote backup of every ClickHouse shard, run by the clickhouse-backup CronJob; with RESTORE set, the
# restore of that remote backup into every shard (the one-shot Job of dataPlane.clickhouse.restore).
#
# Every ClickHouse pod runs the clickhouse-backup sidecar in server mode (REST API on API_PORT). One
# replica per shard is enough (replicated tables hold the same data on every replica): the first
# replica whose API answers runs `create_remote`, which freezes the tables, uploads the backup under
# the shard's S3 path, then removes remote backups beyond BACKUPS_TO_KEEP_REMOTE and the local copy.
# `restore_remote` downloads the shard's backup and restores schema and data; the sidecars' RESTORE_SCHEMA_ON_CLUSTER
# runs the schema ON CLUSTER, so every replica gets the Replicated tables and fetches the data from the one restored.
#
# Environment: SHARDS (shards separated by spaces, each its replicas' host Services separated by
# commas), DOMAIN (their DNS domain: <namespace>.svc), API_PORT, API_USERNAME, API_PASSWORD;
# optional RESTORE (a backup name, full-<UTC time>: restore it instead of backing up), POLL_SECONDS and
# MAX_MISSES (failed status polls in a row before a shard counts as failed).
# Exits non-zero when any shard was not backed up, so the Job fails where monitoring sees it.
set -euo pipefail

: "${SHARDS:?}" "${DOMAIN:?}" "${API_PORT:?}" "${API_USERNAME:?}" "${API_PASSWORD:?}"
poll_seconds="${POLL_SECONDS:-30}"
max_misses="${MAX_MISSES:-10}"
if [[ -n "${RESTORE:-}" ]]; then
  # The name reaches a URL path: only the names this script gives its backups.
  if [[ ! "$RESTORE" =~ ^full-[0-9]{8}T[0-9]{6}Z$ ]]; then
    echo "RESTORE must be a backup name full-<yyyymmddThhmmss>Z, got '${RESTORE}'" >&2
    exit 2
  fi
  backup_name="$RESTORE"
  action="restore_remote"
  request="/backup/restore_remote/${backup_name}"
else
  backup_name="full-$(date -u +%Y%m%dT%H%M%SZ)"
  action="create_remote"
  request="/backup/create_remote?name=${backup_name}"
fi

# api METHOD HOST PATH: one call to a sidecar. The login reaches curl on stdin, never in its arguments.
api() {
  printf 'user = "%s:%s"\n' "$API_USERNAME" "$API_PASSWORD" |
    curl --config - --silent --show-error --fail --max-time 30 -X "$1" \
      "http://$2.${DOMAIN}:${API_PORT}$3"
}

# field NAME: the string value of NAME in the API's answer on stdin (one JSON object a line).
field() {
  sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\"\([^\"]*\)\".*/\1/p" | head -n 1
}

failed=0
declare -A operations=()

for shard in $SHARDS; do
  IFS=, read -r -a replicas <<<"$shard"
  chosen=""
  for host in "${replicas[@]}"; do
    if api GET "$host" /backup/status >/dev/null; then
      chosen="$host"
      break
    fi
    echo "$host: the backup API does not answer, trying the next replica" >&2
  done
  if [[ -z "$chosen" ]]; then
    echo "shard of ${replicas[0]}: no replica answers, not backed up" >&2
    failed=1
    continue
  fi
  if ! reply="$(api POST "$chosen" "$request")"; then
    echo "$chosen: $action refused (another backup operation still running?)" >&2
    failed=1
    continue
  fi
  operation="$(field operation_id <<<"$reply")"
  if [[ -z "$operation" ]]; then
    echo "$chosen: $action answered without an operation id: $reply" >&2
    failed=1
    continue
  fi
  echo "$chosen: $action $backup_name started (operation $operation)"
  operations["$chosen"]="$operation"
done

for host in "${!operations[@]}"; do
  misses=0
  while true; do
    if ! status="$(api GET "$host" "/backup/status?operationid=${operations[$host]}" | field status)"; then
      misses=$((misses + 1))
      if ((misses >= max_misses)); then
        echo "$host: lost the backup API while $backup_name ran" >&2
        failed=1
        break
      fi
      sleep "$poll_seconds"
      continue
    fi
    misses=0
    case "$status" in
      "in progress") sleep "$poll_seconds" ;;
      success)
        echo "$host: $action $backup_name done"
        break
        ;;
      *)
        echo "$host: $backup_name failed (status '${status}')" >&2
        failed=1
        break
        ;;
    esac
  done
done

exit "$failed"
