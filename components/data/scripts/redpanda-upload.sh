#!/usr/bin/env bash
# Upload of the export redpanda-export.sh left in WORK, then the retention: exports beyond KEEP are deleted,
# oldest first (each by its files.txt, never by a listing of its prefix).
#
# Environment: WORK, KEEP, and redpanda-s3.sh's.
set -euo pipefail
# shellcheck source=SCRIPTDIR/redpanda-s3.sh
source "$(dirname "$0")/redpanda-s3.sh"
: "${WORK:?}" "${KEEP:?}"

name="$(cat "${WORK}/name")"
out="${WORK}/${name}"
while read -r file; do
  if [[ "$file" != files.txt ]]; then
    s3_put "${out}/${file}" "${name}/${file}"
  fi
done <"${out}/files.txt"
s3_put "${out}/files.txt" "${name}/files.txt"  # last: an export without it never finished
echo "uploaded export ${name}"

mapfile -t exports < <(s3_exports)
for ((i = 0; i + KEEP < ${#exports[@]}; i++)); do
  old="${exports[$i]}"
  if s3_get "${old}/files.txt" "${WORK}/old-files.txt"; then
    while read -r file; do
      s3 DELETE "${old}/${file}" >/dev/null
    done <"${WORK}/old-files.txt"
    s3 DELETE "${old}/files.txt" >/dev/null
    echo "deleted export ${old} (keeping ${KEEP})"
  fi
done
