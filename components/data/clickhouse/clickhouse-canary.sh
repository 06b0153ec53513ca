#!/usr/bin/env bash
# The restore drills' canary (components/data/drills.py), run hourly by the drill-canary CronJob in the clickhouse
# namespace as the user drill_canary (CREATE DATABASE, CREATE TABLE and INSERT on its own database, nothing else).
#
# Every replica gets the database and the Replicated table (created on each, without ON CLUSTER: the user has no
# CLUSTER privilege; the explicit Keeper path makes the replicas of a shard one table). The first replica of each
# shard that answers gets a row with the current time; replication copies it, and the next backup of the shard
# holds it. Rows older than RETENTION_DAYS go by TTL.
#
# Environment: SHARDS (shards separated by spaces, each its replicas' host Services separated by commas), DOMAIN,
# PORT, CANARY_DATABASE, RETENTION_DAYS, CLICKHOUSE_USER and CLICKHOUSE_PASSWORD (read by clickhouse-client).
# Exits non-zero when a shard got no canary.
set -euo pipefail

: "${SHARDS:?}" "${DOMAIN:?}" "${PORT:?}" "${CANARY_DATABASE:?}" "${RETENTION_DAYS:?}" "${CLICKHOUSE_USER:?}" \
  "${CLICKHOUSE_PASSWORD:?}"
# Both reach SQL text: a plain identifier and a number only.
if [[ ! "$CANARY_DATABASE" =~ ^[a-z_][a-z0-9_]*$ ]] || [[ ! "$RETENTION_DAYS" =~ ^[1-9][0-9]*$ ]]; then
  echo "CANARY_DATABASE must be an identifier and RETENTION_DAYS a number of days" >&2
  exit 2
fi

# sql HOST QUERY: one statement on one replica; the login comes from the environment.
sql() {
  clickhouse-client --host "$1.${DOMAIN}" --port "$PORT" --query "$2"
}

create_database="CREATE DATABASE IF NOT EXISTS ${CANARY_DATABASE}"
create_table="CREATE TABLE IF NOT EXISTS ${CANARY_DATABASE}.canary (written_at DateTime)
  ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/${CANARY_DATABASE}/canary', '{replica}')
  ORDER BY written_at TTL written_at + INTERVAL ${RETENTION_DAYS} DAY"
insert="INSERT INTO ${CANARY_DATABASE}.canary VALUES (now())"

failed=0
for shard in $SHARDS; do
  IFS=, read -r -a replicas <<<"$shard"
  written=""
  for host in "${replicas[@]}"; do
    if ! sql "$host" "$create_database" || ! sql "$host" "$create_table"; then
      echo "$host: does not answer, its canary table waits for the next run" >&2
      continue
    fi
    if [[ -z "$written" ]] && sql "$host" "$insert"; then
      written="$host"
    fi
  done
  if [[ -z "$written" ]]; then
    echo "shard of ${replicas[0]}: no canary written" >&2
    failed=1
  fi
done
exit "$failed"
