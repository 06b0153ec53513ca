#!/usr/bin/env bash
# The secret store's snapshot CronJob (components/services/secrets_backup.py), second container: upload the snapshot
# secrets-snapshot.sh left in WORK to S3_PREFIX/<name>.snap (server-side encrypted when S3_SSE asks), then delete
# snapshots beyond the newest KEEP, oldest first. Only names of our own form are ever deleted.
#
# Environment: WORK, KEEP, and redpanda-s3.sh's (the platform's S3 helpers, shipped beside this script).
set -euo pipefail
# shellcheck source=SCRIPTDIR/redpanda-s3.sh
source "$(dirname "$0")/redpanda-s3.sh"
: "${WORK:?}" "${KEEP:?}"

name="$(cat "${WORK}/name")"
s3_put "${WORK}/${name}.snap" "${name}.snap"
echo "uploaded snapshot ${name}.snap"

# Names sort by time. A failed listing deletes nothing (the process substitution's status is not checked): the
# next run prunes.
mapfile -t snapshots < <(s3_objects | grep -E '^[0-9]{8}T[0-9]{6}Z\.snap$' | sort)
for ((i = 0; i + KEEP < ${#snapshots[@]}; i++)); do
  s3 DELETE "${snapshots[$i]}" >/dev/null
  echo "deleted snapshot ${snapshots[$i]} (keeping ${KEEP})"
done
