#!/bin/sh
# The secret store's snapshot CronJob (components/services/secrets_backup.py), first container: log in as the
# snapshot role (secrets-login.sh: its ServiceAccount's projected token, Kubernetes auth) and save a raft snapshot
# through the API (GET sys/storage/raft/snapshot: the leader's own consistent snapshot, not a copy of files being
# written) into WORK, named by its UTC time; the name goes to WORK/name for the upload container.
# Environment: secrets-login.sh's, WORK.
set -eu
# shellcheck source=SCRIPTDIR/secrets-login.sh
. "$(dirname "$0")/secrets-login.sh"
: "${WORK:?}"

name="$(date -u +%Y%m%dT%H%M%SZ)"
"${CLI}" operator raft snapshot save "${WORK}/${name}.snap"
test -s "${WORK}/${name}.snap"  # an empty file is no snapshot: fail before anything is uploaded or pruned
printf '%s\n' "${name}" >"${WORK}/name"
echo "saved snapshot ${name}.snap"
