#!/usr/bin/env bash
# Creates the application and Scylla Manager roles and the keyspaces of the ScyllaDB cluster.
# Idempotent: CREATE ... IF NOT EXISTS, then ALTER to today's passwords and replication.
# Credentials come from the environment (Secrets); they are written only to a 0600 file for cqlsh.
set -euo pipefail
umask 077

readonly KEYSPACES_CQL=/etc/scylla-bootstrap/keyspaces.cql
workdir="$(mktemp -d)"
readonly workdir
trap 'rm -rf "${workdir}"' EXIT

# cqlsh reads credentials from a file it owns with mode 0600 ([plain_text_auth] section).
printf '[plain_text_auth]\nusername = %s\npassword = %s\n' "${ADMIN_USERNAME}" "${ADMIN_PASSWORD}" \
  > "${workdir}/credentials"

cql() {
  cqlsh --credentials "${workdir}/credentials" --request-timeout 120 "$@" "${CQL_HOST}" "${CQL_PORT}"
}

# The cluster reports Available before every node serves CQL logins; wait for one that does.
for attempt in $(seq 1 60); do
  if cql -e 'SELECT release_version FROM system.local' > /dev/null 2>&1; then
    break
  fi
  if [[ "${attempt}" -eq 60 ]]; then
    echo "CQL at ${CQL_HOST}:${CQL_PORT} did not accept the superuser login" >&2
    exit 1
  fi
  sleep 10
done

# Role names are plain identifiers and generated passwords are alphanumeric: no quoting issues.
{
  printf "CREATE ROLE IF NOT EXISTS %s WITH PASSWORD = '%s' AND LOGIN = true;\n" "${APP_USERNAME}" "${APP_PASSWORD}"
  printf "ALTER ROLE %s WITH PASSWORD = '%s' AND LOGIN = true;\n" "${APP_USERNAME}" "${APP_PASSWORD}"
  printf "CREATE ROLE IF NOT EXISTS %s WITH PASSWORD = '%s' AND LOGIN = true;\n" "${MANAGER_USERNAME}" "${MANAGER_PASSWORD}"
  printf "ALTER ROLE %s WITH PASSWORD = '%s' AND LOGIN = true;\n" "${MANAGER_USERNAME}" "${MANAGER_PASSWORD}"
} > "${workdir}/roles.cql"

cql -f "${workdir}/roles.cql"
cql -f "${KEYSPACES_CQL}"
echo "roles ${APP_USERNAME}, ${MANAGER_USERNAME} and the keyspaces are in place"
