#!/usr/bin/env bash
# Download of one Redpanda export (dataPlane.redpanda.restore) into WORK/<BACKUP> for redpanda-import.sh: the
# files its files.txt lists (an export without files.txt never finished uploading, and is refused).
#
# Environment: WORK, BACKUP (the export's name), and redpanda-s3.sh's.
set -euo pipefail
# shellcheck source=SCRIPTDIR/redpanda-s3.sh
source "$(dirname "$0")/redpanda-s3.sh"
: "${WORK:?}" "${BACKUP:?}"
if [[ ! "$BACKUP" =~ ^[0-9]{8}T[0-9]{6}Z$ ]]; then
  echo "BACKUP must be an export name <yyyymmddThhmmss>Z, got '${BACKUP}'" >&2
  exit 2
fi

in="${WORK}/${BACKUP}"
mkdir -p "$in"
s3_get "${BACKUP}/files.txt" "${in}/files.txt"
while read -r file; do
  mkdir -p "$(dirname "${in}/${file}")"
  s3_get "${BACKUP}/${file}" "${in}/${file}"
done <"${in}/files.txt"
echo "downloaded export ${BACKUP}: $(wc -l <"${in}/files.txt") files"
