#!/usr/bin/env bash
# The restore drills' canary writer (components/data/drills.py), hourly in the scylla namespace: one row with the
# current time in CANARY_KEYSPACE.CANARY_TABLE, as a role that may only modify that table (scylladb/bootstrap.py
# canary_cql). Rows expire with the table's default TTL. The password reaches cqlsh in a 0600 file, never argv.
#
# Environment: CQL_HOST, CQL_PORT, CANARY_KEYSPACE, CANARY_TABLE, CANARY_USERNAME, CANARY_PASSWORD.
set -euo pipefail
umask 077

: "${CQL_HOST:?}" "${CQL_PORT:?}" "${CANARY_KEYSPACE:?}" "${CANARY_TABLE:?}" "${CANARY_USERNAME:?}" \
  "${CANARY_PASSWORD:?}"

for name in "$CANARY_KEYSPACE" "$CANARY_TABLE"; do
  if [[ ! "$name" =~ ^[a-z_][a-z0-9_]*$ ]]; then
    echo "CANARY_KEYSPACE and CANARY_TABLE must be CQL identifiers, got '${name}'" >&2
    exit 2
  fi
done

workdir="$(mktemp -d)"
readonly workdir
trap 'rm -rf "${workdir}"' EXIT
# cqlsh reads credentials from a file it owns with mode 0600 ([plain_text_auth] section).
printf '[plain_text_auth]\nusername = %s\npassword = %s\n' "$CANARY_USERNAME" "$CANARY_PASSWORD" \
  >"${workdir}/credentials"

cqlsh --credentials "${workdir}/credentials" --request-timeout 60 \
  -e "INSERT INTO ${CANARY_KEYSPACE}.${CANARY_TABLE} (written_at) VALUES (toTimestamp(now()))" \
  "$CQL_HOST" "$CQL_PORT"
echo "canary written to ${CANARY_KEYSPACE}.${CANARY_TABLE}"
