#!/usr/bin/env bash
# The restore drills' canary (components/data/drills.py, hourly in the redpanda namespace): one record whose value is
# the current Unix time, produced to CANARY_TOPIC as the user that may write that topic only. The export copies it
# like any topic; the drill finds the newest one in the restored copy (redpanda-drill-check.sh).
#
# Environment: CANARY_TOPIC, and rpk's connection (RPK_*).
set -euo pipefail
: "${CANARY_TOPIC:?}"

date -u +%s | rpk topic produce "$CANARY_TOPIC" --format '%v\n' --output-format ''
