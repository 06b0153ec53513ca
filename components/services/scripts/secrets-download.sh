#!/usr/bin/env bash
# The secret store's restore Job (components/services/secrets_restore.py), first container: download the raft
# snapshot SNAPSHOT (a name of the snapshot CronJob's, or `latest`: the newest under S3_PREFIX) into
# WORK/snapshot.snap for the restore container; its name goes to WORK/name. Only names of our own form are read.
#
# Environment: WORK, SNAPSHOT, and redpanda-s3.sh's (the platform's S3 helpers, shipped beside this script).
set -euo pipefail
# shellcheck source=SCRIPTDIR/redpanda-s3.sh
source "$(dirname "$0")/redpanda-s3.sh"
: "${WORK:?}" "${SNAPSHOT:?}"

if [[ "${SNAPSHOT}" == latest ]]; then
  # Names sort by time; one listing page holds them all (secretsRetention is below 1000).
  name="$(s3_objects | grep -E '^[0-9]{8}T[0-9]{6}Z\.snap$' | sort | tail -n 1 | sed 's/\.snap$//' || true)"
  if [[ -z "${name}" ]]; then
    echo "no snapshot under ${S3_PREFIX}/" >&2
    exit 1
  fi
else
  name="${SNAPSHOT}"
fi
s3_get "${name}.snap" "${WORK}/snapshot.snap"
test -s "${WORK}/snapshot.snap"  # an empty file is no snapshot: fail before anything is restored
printf '%s\n' "${name}" >"${WORK}/name"
echo "downloaded snapshot ${name}.snap"
