#!/usr/bin/env bash
# Export of the Redpanda cluster to the backup bucket (the redpanda-backup CronJob), as one export named by its
# UTC start time under S3_PREFIX/<name>/:
#   topics.tsv                   topic, partitions, replicas (internal topics but _schemas left out)
#   configs/<topic>              the topic's non-default configs, one key=value a line
#   records/<topic>/<partition>  every record of the partition from its start to the end seen at export time,
#                                as length-prefixed key and value (rpk's %K{big32}%k%V{big32}%v)
#   _schemas is exported like a topic: replaying it restores the Schema Registry with its schema ids
#   acls.txt                     the ACLs, for the record (Pulumi declares users and their ACLs: `User`s)
#   files.txt                    every file of the export: the import and the retention read it, never a listing
# The redpanda image has rpk, not curl: this runs as the pod's init container and leaves the export in WORK (its
# name in WORK/name) for redpanda-upload.sh. rpk reads its connection from the RPK_* environment: Kafka only. The
# user list and the cluster properties are not exported: the Admin API serves them to superusers only, and this
# job's user may only read (components/data/redpanda_backup.py); Pulumi declares both.
#
# Environment: WORK (an emptyDir shared with the upload container).
set -euo pipefail
: "${WORK:?}"

name="$(date -u +%Y%m%dT%H%M%SZ)"
out="${WORK}/${name}"
mkdir -p "${out}/configs" "${out}/records"

rpk topic list --internal | awk 'NR > 1 && ($1 == "_schemas" || $1 !~ /^_/) {print $1 "\t" $2 "\t" $3}' \
  >"${out}/topics.tsv"
while IFS=$'\t' read -r topic partitions _; do
  # Only what was set on the topic: defaults come back from the cluster's own config.
  rpk topic describe "$topic" --print-configs |
    awk '$3 == "DYNAMIC_TOPIC_CONFIG" {print $1 "=" $2}' >"${out}/configs/${topic}"
  mkdir -p "${out}/records/${topic}"
  for ((p = 0; p < partitions; p++)); do
    rpk topic consume "$topic" --partitions "$p" --offset :end --format '%K{big32}%k%V{big32}%v' \
      >"${out}/records/${topic}/${p}"
  done
done <"${out}/topics.tsv"
rpk security acl list >"${out}/acls.txt"

(cd "$out" && find . -type f | sed 's|^\./||' | sort) >"${WORK}/files.txt"
mv "${WORK}/files.txt" "${out}/files.txt"
echo "$name" >"${WORK}/name"
echo "export ${name}: $(wc -l <"${out}/topics.tsv") topics, $(wc -l <"${out}/files.txt") files"
