#!/usr/bin/env bash
# Import of one Redpanda export (dataPlane.redpanda.restore; the layout is redpanda-export.sh's): the topics with
# their partitions and configs, then _schemas (the Schema Registry's log, so schema ids stay what records
# reference), then every partition's records in order. Offsets and timestamps are new ones; headers are not in
# the export. Users and ACLs come back from Pulumi (the `User` resources), not from here.
# Runs after redpanda-download.sh (the init container) fetched the export into WORK/<BACKUP>.
#
# Environment: WORK, BACKUP (the export's name); optional REPLICAS: every topic's replication factor instead of
# the exported one (the restore drill's single broker).
set -euo pipefail
: "${WORK:?}" "${BACKUP:?}"

in="${WORK}/${BACKUP}"

while IFS=$'\t' read -r topic partitions replicas; do
  if [[ "$topic" == "_schemas" ]]; then
    continue  # the Schema Registry creates its own topic
  fi
  configs=()
  while read -r config; do
    configs+=(--topic-config "$config")
  done <"${in}/configs/${topic}"
  rpk topic create "$topic" --partitions "$partitions" --replicas "${REPLICAS:-$replicas}" "${configs[@]}"
done <"${in}/topics.tsv"

# _schemas first: consumers may look a schema id up as soon as they read a record.
for topic in _schemas $(awk '$1 != "_schemas" {print $1}' "${in}/topics.tsv"); do
  [[ -d "${in}/records/${topic}" ]] || continue
  for file in "${in}/records/${topic}"/*; do
    # --tombstone: the export wrote a null value (a compacted topic's delete marker) as an empty one
    rpk topic produce "$topic" --partition "${file##*/}" --tombstone --format '%K{big32}%k%V{big32}%v' \
      --output-format '' <"$file"
  done
  echo "${topic}: records replayed"
done
