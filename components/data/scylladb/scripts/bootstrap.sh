#!/usr/bin/env bash
# Creates one role per consumer (roles.txt: a role name per line, its password in ROLE_PASSWORD_<line index>),
# Scylla Manager's role, and the keyspaces of the ScyllaDB cluster with each role's grants (keyspaces.cql).
# Idempotent: CREATE ... IF NOT EXISTS, then ALTER to today's passwords and replication.
# Credentials come from the environment (Secrets); they are written only to a 0600 file for cqlsh.
set -euo pipefail
umask 077

readonly KEYSPACES_CQL=/etc/scylla-bootstrap/keyspaces.cql
readonly ROLES=/etc/scylla-bootstrap/roles.txt
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

# A role as a quoted CQL identifier ("" inside doubled) and a password as a CQL string ('' inside doubled):
# service names carry '-', which an unquoted identifier cannot.
quoted_role() { local r="${1//\"/\"\"}"; printf '"%s"' "${r}"; }
quoted_password() { local p="${1//\'/\'\'}"; printf "'%s'" "${p}"; }
role_statements() {
  printf 'CREATE ROLE IF NOT EXISTS %s WITH PASSWORD = %s AND LOGIN = true;\n' "$(quoted_role "$1")" "$(quoted_password "$2")"
  printf 'ALTER ROLE %s WITH PASSWORD = %s AND LOGIN = true;\n' "$(quoted_role "$1")" "$(quoted_password "$2")"
}

{
  index=0
  while IFS= read -r role; do
    [[ -n "${role}" ]] || continue
    password_var="ROLE_PASSWORD_${index}"
    role_statements "${role}" "${!password_var}"
    index=$((index + 1))
  done < "${ROLES}"
  role_statements "${MANAGER_USERNAME}" "${MANAGER_PASSWORD}"
} > "${workdir}/roles.cql"

cql -f "${workdir}/roles.cql"
cql -f "${KEYSPACES_CQL}"
echo "the consumers' roles, ${MANAGER_USERNAME} and the keyspaces are in place"
