#!/bin/sh
# The configure Job (components/services/secrets.py) and the snapshot CronJob (secrets_backup.py): log in as its
# ServiceAccount's role (LOGIN_ROLE) through Kubernetes auth. The CLI reads the projected token from its file (jwt=@file); the
# store's token is kept in the environment: neither is on a command line or in the log. The API is verified
# against the CA (BAO_CACERT/VAULT_CACERT). Waits for the first server to initialise itself and answer.
# Environment: CLI, AUTH_MOUNT, LOGIN_ROLE, TOKEN_FILE, WAIT_SECONDS, BAO_ADDR/VAULT_ADDR.
set -eu

deadline=$(( $(date +%s) + WAIT_SECONDS ))
until token=$("${CLI}" write -field=token "auth/${AUTH_MOUNT}/login" role="${LOGIN_ROLE}" jwt=@"${TOKEN_FILE}"); do
  if [ "$(date +%s)" -ge "${deadline}" ]; then
    echo "no login as ${LOGIN_ROLE} within ${WAIT_SECONDS}s: is the secret store initialised and unsealed?" >&2
    exit 1
  fi
  sleep 5
done
BAO_TOKEN="${token}"
VAULT_TOKEN="${token}"
export BAO_TOKEN VAULT_TOKEN
unset token
