#!/usr/bin/env bash
# Download of one Redpanda export (dataPlane.redpanda.restore) into WORK/<BACKUP> for redpanda-import.sh: the
# files its files.txt lists (an export without files.txt never finished uploading, and is refused). BACKUP=latest
# (the restore drill, components/data/drills.py) takes the newest export that finished uploading. The name
# downloaded is left in WORK/name.
#
# Environment: WORK, BACKUP (the export's name, or latest), and redpanda-s3.sh's.
set -euo pipefail
# shellcheck source=SCRIPTDIR/redpanda-s3.sh
source "$(dirname "$0")/redpanda-s3.sh"
: "${WORK:?}" "${BACKUP:?}"

# latest_finished: the newest export whose files.txt (uploaded last) is there, its files.txt left in WORK/files.txt.
latest_finished() {
  local exports i
  mapfile -t exports < <(s3_exports)
  for ((i = ${#exports[@]} - 1; i >= 0; i--)); do
    if s3_get "${exports[$i]}/files.txt" "${WORK}/files.txt" 2>/dev/null; then
      printf '%s\n' "${exports[$i]}"
      return 0
    fi
  done
  echo "no finished export under ${S3_PREFIX}/" >&2
  return 1
}

if [[ "$BACKUP" == latest ]]; then
  BACKUP="$(latest_finished)"
fi
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
printf '%s\n' "$BACKUP" >"${WORK}/name"
echo "downloaded export ${BACKUP}: $(wc -l <"${in}/files.txt") files"
