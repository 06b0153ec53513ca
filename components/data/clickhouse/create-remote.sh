#!/usr/bin/env bash
# Remote backup of every ClickHouse shard, run by the clickhouse-backup CronJob.
#
# Every ClickHouse pod runs the clickhouse-backup sidecar in server mode (REST API on API_PORT). One
# replica per shard is enough (replicated tables hold the same data on every replica): the first
# replica whose API answers runs `create_remote`, which freezes the tables, uploads the backup under
# the shard's S3 path, then removes remote backups beyond BACKUPS_TO_KEEP_REMOTE and the local copy.
#
# Environment: SHARDS (shards separated by spaces, each its replicas' host Services separated by
# commas), DOMAIN (their DNS domain: <namespace>.svc), API_PORT, API_USERNAME, API_PASSWORD;
# optional POLL_SECONDS and MAX_MISSES (failed status polls in a row before a shard counts as failed).
# Exits non-zero when any shard was not backed up, so the Job fails where monitoring sees it.
set -euo pipefail

: "${SHARDS:?}" "${DOMAIN:?}" "${API_PORT:?}" "${API_USERNAME:?}" "${API_PASSWORD:?}"
poll_seconds="${POLL_SECONDS:-30}"
max_misses="${MAX_MISSES:-10}"
backup_name="full-$(date -u +%Y%m%dT%H%M%SZ)"

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
  if ! reply="$(api POST "$chosen" "/backup/create_remote?name=${backup_name}")"; then
    echo "$chosen: create_remote refused (another backup operation still running?)" >&2
    failed=1
    continue
  fi
  operation="$(field operation_id <<<"$reply")"
  if [[ -z "$operation" ]]; then
    echo "$chosen: create_remote answered without an operation id: $reply" >&2
    failed=1
    continue
  fi
  echo "$chosen: create_remote $backup_name started (operation $operation)"
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
        echo "$host: $backup_name uploaded"
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
