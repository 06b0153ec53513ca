#!/usr/bin/env bash
# The etcd restore drill's download (components/data/drills.py): the newest K3s etcd snapshot under S3_PREFIX (the
# servers' etcd-s3-folder), read with the drills' read-only key, into WORK/snapshot.db for `etcdutl snapshot
# restore`. K3s names scheduled snapshots etcd-snapshot-<node>-<Unix time>, with .zip when compressed (one zip
# entry, the snapshot's own name); its .metadata/ folder is not listed. The name goes to the termination message,
# where the drill reads it from the pod's status (the etcd image has no shell to print it).
#
# Environment: WORK, and redpanda-s3.sh's.
set -euo pipefail
# shellcheck source=SCRIPTDIR/redpanda-s3.sh
source "$(dirname "$0")/redpanda-s3.sh"
: "${WORK:?}"
TERMINATION_LOG="${TERMINATION_LOG:-/dev/termination-log}"

# newest: the snapshot with the highest Unix time, every server's together (node names may hold dashes).
newest() {
  s3_objects | sed -nE 's/^(etcd-snapshot-.+-([0-9]+)(\.zip)?)$/\2 \1/p' | sort -n | tail -n 1 | cut -d' ' -f2
}

name="$(newest)"
if [[ -z "$name" ]]; then
  echo "no etcd snapshot under ${S3_PREFIX}/" >&2
  exit 1
fi
echo "downloading ${name}" >&2
if [[ "$name" == *.zip ]]; then
  s3_get "$name" "${WORK}/snapshot.zip"
  unzip -p "${WORK}/snapshot.zip" "${name%.zip}" >"${WORK}/snapshot.db"
  rm -f "${WORK}/snapshot.zip"
else
  s3_get "$name" "${WORK}/snapshot.db"
fi
printf '%s' "$name" >"$TERMINATION_LOG"
