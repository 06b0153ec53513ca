#!/usr/bin/env bash
# The DragonflyDB restore drill's canary (components/data/drills.py): every hour, the current Unix time under
# CANARY_KEY in the ad services' instance, as the ACL user CANARY_USER (SET on that one key, nothing else:
# components/data/dragonfly.py canary_acl_line). No expiry: the newest snapshot holds the newest time.
# redis-cli reads the password from REDISCLI_AUTH (never on the command line).
set -euo pipefail
: "${HOST:?}" "${CANARY_KEY:?}" "${CANARY_USER:?}" "${REDISCLI_AUTH:?}"
reply="$(redis-cli -h "$HOST" -p 6379 --user "$CANARY_USER" --no-auth-warning SET "$CANARY_KEY" "$(date +%s)")"
if [[ "$reply" != "OK" ]]; then
  printf 'canary: SET %s answered %s\n' "$CANARY_KEY" "$reply" >&2
  exit 1
fi
