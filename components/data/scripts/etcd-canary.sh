#!/usr/bin/env bash
# The etcd restore drill's canary (components/data/drills.py): hourly, the current Unix time into the ConfigMap
# CANARY_CONFIGMAP in NAMESPACE (its ServiceAccount may get and patch that one ConfigMap only). The next etcd
# snapshot holds it under /registry/configmaps/<NAMESPACE>/<CANARY_CONFIGMAP>; values there are protobuf, so the
# time is written after CANARY_MARKER, which the drill looks for in the raw value.
#
# Environment: NAMESPACE, CANARY_CONFIGMAP, CANARY_KEY (the data key), CANARY_MARKER.
set -euo pipefail
: "${NAMESPACE:?}" "${CANARY_CONFIGMAP:?}" "${CANARY_KEY:?}" "${CANARY_MARKER:?}"

patch="$(printf '{"data":{"%s":"%s%s"}}' "$CANARY_KEY" "$CANARY_MARKER" "$(date +%s)")"
kubectl patch configmap "$CANARY_CONFIGMAP" --namespace "$NAMESPACE" --type merge --patch "$patch" >/dev/null
