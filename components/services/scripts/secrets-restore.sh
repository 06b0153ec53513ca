#!/bin/sh
# The secret store's restore Job (components/services/secrets_restore.py), second container: log in as the restore
# role (secrets-login.sh: its ServiceAccount's projected token, Kubernetes auth; update on the one restore path) and
# install the snapshot secrets-download.sh left in WORK. Without FORCE, OpenBao first checks that the snapshot's
# hashes were sealed by the running seal and refuses it otherwise, leaving the store as it was; with FORCE (the
# snapshot-force path) it installs it unchecked, and a store whose seal cannot open it stays sealed.
# OpenBao answers before it has applied the snapshot (it installs it in the background): the Job waits until its
# own token is unknown (HTTP 403), which it is once the snapshot's state is in, as the snapshot predates the token.
# Environment: secrets-login.sh's, WORK, FORCE (true or false).
set -eu
# shellcheck source=SCRIPTDIR/secrets-login.sh
. "$(dirname "$0")/secrets-login.sh"
: "${WORK:?}" "${FORCE:?}"

name="$(cat "${WORK}/name")"
if [ "${FORCE}" = true ]; then
  "${CLI}" operator raft snapshot restore -force "${WORK}/snapshot.snap"
else
  "${CLI}" operator raft snapshot restore "${WORK}/snapshot.snap"
fi
echo "snapshot ${name}.snap sent; waiting until it is installed"

deadline=$(( $(date +%s) + WAIT_SECONDS ))
until "${CLI}" token lookup 2>&1 >/dev/null | grep -q 'Code: 403'; do
  if [ "$(date +%s)" -ge "${deadline}" ]; then
    echo "the store still knows this Job's token ${WAIT_SECONDS}s after the restore: not installed (server log)" >&2
    exit 1
  fi
  sleep 5
done
echo "restored snapshot ${name}.snap"
