#!/usr/bin/env bash
# The Redpanda restore drill's replay and checks, inside the scratch broker (drill.sh check_redpanda execs it; the
# pod's init container downloaded the newest finished export into WORK with redpanda-download.sh, BACKUP=latest).
#
# 1. Replays the export into the scratch broker (redpanda-import.sh, REPLICAS=1: it is a single broker).
# 2. Checks that every topic of the export's manifest (topics.tsv) exists with its partition count.
# 3. Prints the newest canary in CANARY_TOPIC (its values are Unix times; replayed records get new timestamps,
#    so the value is the write time). Everything else goes to stderr: stdout is drill.sh's answer.
#
# Environment: WORK, CANARY_TOPIC, REPLICAS, and rpk's connection to the scratch broker (RPK_*).
set -euo pipefail
: "${WORK:?}" "${CANARY_TOPIC:?}" "${REPLICAS:?}"

name="$(cat "${WORK}/name")"
if [[ ! "$name" =~ ^[0-9]{8}T[0-9]{6}Z$ ]]; then
  echo "WORK/name must be an export name <yyyymmddThhmmss>Z, got '${name}'" >&2
  exit 2
fi
in="${WORK}/${name}"

BACKUP="$name" /bin/bash "$(dirname "$0")/redpanda-import.sh" >&2

# The scratch broker's topics and partition counts against the manifest's (_schemas is the Schema Registry's).
expected="$(awk -F '\t' '$1 != "_schemas" {print $1 "\t" $2}' "${in}/topics.tsv" | sort)"
found="$(rpk topic list | awk 'NR > 1 && $1 !~ /^_/ {print $1 "\t" $2}' | sort)"
if [[ "$expected" != "$found" ]]; then
  echo "export ${name}: the restored topics differ from its manifest (expected, then found):" >&2
  diff <(printf '%s\n' "$expected") <(printf '%s\n' "$found") >&2 || true
  exit 1
fi
echo "export ${name}: $(printf '%s\n' "$expected" | grep -c .) topics restored with their partitions" >&2

# Canary values are digits only; anything else is not ours and is ignored.
rpk topic consume "$CANARY_TOPIC" --offset :end --format '%v\n' | grep -E '^[0-9]+$' | sort -n | tail -n 1 || true
