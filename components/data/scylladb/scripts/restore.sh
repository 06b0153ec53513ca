#!/usr/bin/env bash
# Restores the ScyllaDB cluster from a Scylla Manager snapshot (dataPlane.scylladb.restore): the schema first,
# then the tables' data, each a Manager restore task this script starts and waits for. The agents read the
# snapshot from LOCATION with their own S3 keys (the agent config); sctool only talks to Manager's API.
#
# Environment: SCYLLA_MANAGER_API_URL, CLUSTER (Manager's name of the cluster), LOCATION (s3:<bucket>),
# SNAPSHOT_TAG (sm_<yyyymmddhhmmss>UTC); optional POLL_SECONDS.
set -euo pipefail

: "${SCYLLA_MANAGER_API_URL:?}" "${CLUSTER:?}" "${LOCATION:?}" "${SNAPSHOT_TAG:?}"
poll_seconds="${POLL_SECONDS:-30}"
if [[ ! "${SNAPSHOT_TAG}" =~ ^sm_[0-9]{14}UTC$ ]]; then
  echo "SNAPSHOT_TAG must be a Scylla Manager snapshot tag sm_<yyyymmddhhmmss>UTC, got '${SNAPSHOT_TAG}'" >&2
  exit 2
fi

# restore WHAT: one restore task (--restore-schema or --restore-tables), waited for until it ends.
restore() {
  local what="$1" task status
  task="$(sctool restore --cluster "${CLUSTER}" --location "${LOCATION}" --snapshot-tag "${SNAPSHOT_TAG}" "${what}")"
  echo "${what} of ${SNAPSHOT_TAG}: task ${task}"
  while true; do
    status="$(sctool progress --cluster "${CLUSTER}" "${task}" | sed -n 's/^Status:[[:space:]]*//p' | head -n 1)"
    case "${status}" in
      DONE) echo "${what}: done"; return 0 ;;
      ERROR* | ABORTED* | STOPPED*) echo "${what}: ${status}" >&2; return 1 ;;
      *) sleep "${poll_seconds}" ;;
    esac
  done
}

restore --restore-schema
restore --restore-tables
