#!/usr/bin/env bash
# Downloads one table of the newest complete Scylla Manager snapshot, with a key that may only list and read the
# backups (the ScyllaDB restore drill's first half, not yet run by any Job: docs/restore-drills.md, "ScyllaDB: the
# read-only drill"). Nothing here talks to Scylla Manager or to the production cluster.
#
# The layout is Scylla Manager's at the pinned v3.10.1 (backupspec/paths.go, docs/source/backup/specification.rst):
#   backup/meta/cluster/<cluster>/dc/<dc>/node/<node>/task_<task>_tag_<tag>_manifest.json.gz[.tmp]
#   backup/schema/cluster/<cluster>/task_<task>_tag_<tag>_schema_with_internals.json.gz
#   backup/sst/cluster/<cluster>/dc/<dc>/node/<node>/keyspace/<ks>/table/<table>/<version>/<file>[.sm_<tag>]
# A node's manifest keeps the `.tmp` suffix until every file of that node is uploaded, so a snapshot is complete
# when each node that started it has the final manifest and none a `.tmp` one. Tags (sm_<yyyymmddhhmmss>UTC)
# sort by time.
#
# Writes under WORK: `snapshot` (the tag), `schema.json.gz` (DESCRIBE SCHEMA WITH INTERNALS of that snapshot) and
# `nodes/<node>/<file>`: every node's SSTables of KEYSPACE.TABLE as that snapshot saw them (each node holds only
# its token ranges: the drill loads them all, node by node). File names are the manifest's: an SSTable that a later
# snapshot replaced is stored as `<file>.sm_<that snapshot's tag>` (the specification's versioned SSTables): the
# copy for snapshot T is the one with the smallest such tag after T, else the plain name.
#
# Environment: WORK, KEYSPACE, TABLE, S3_ENDPOINT, S3_REGION, S3_BUCKET, S3_ACCESS_KEY, S3_SECRET_KEY.
set -euo pipefail

: "${WORK:?}" "${KEYSPACE:?}" "${TABLE:?}" "${S3_ENDPOINT:?}" "${S3_REGION:?}" "${S3_BUCKET:?}" \
  "${S3_ACCESS_KEY:?}" "${S3_SECRET_KEY:?}"

readonly IDENTIFIER='^[a-z_][a-z0-9_]*$'
readonly FILE_NAME='^[A-Za-z0-9._-]+$'
readonly UUID='[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'
readonly TAG='sm_[0-9]{14}UTC'

log() {
  printf '%s scylladb download: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2
}

for name in "$KEYSPACE" "$TABLE"; do
  if [[ ! "$name" =~ $IDENTIFIER ]]; then
    log "KEYSPACE and TABLE must be CQL identifiers, got '${name}'"
    exit 2
  fi
done

# request URL [curl arguments...]: one signed request (SigV4, path-style); the keys reach curl on stdin.
request() {
  local url="$1"
  shift
  printf 'user = "%s:%s"\n' "$S3_ACCESS_KEY" "$S3_SECRET_KEY" |
    curl --config - --silent --show-error --fail --retry 3 --max-time 600 \
      --aws-sigv4 "aws:amz:${S3_REGION}:s3" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@" "$url"
}

# keys PREFIX: every object key under PREFIX (ListObjectsV2, page by page). Manager's keys are UUIDs, DC names,
# identifiers and SSTable names: nothing in them needs URL or XML escaping beyond '/'.
keys() {
  local prefix="${1//\//%2F}" token="" page
  while true; do
    page="$(request "${S3_ENDPOINT}/${S3_BUCKET}?list-type=2&prefix=${prefix}${token:+&continuation-token=${token}}")"
    grep -o '<Key>[^<]*</Key>' <<<"$page" | sed -e 's|<Key>||' -e 's|</Key>||' || true
    if ! grep -q '<IsTruncated>true</IsTruncated>' <<<"$page"; then
      return 0
    fi
    token="$(grep -o '<NextContinuationToken>[^<]*</NextContinuationToken>' <<<"$page" |
      sed -e 's|<NextContinuationToken>||' -e 's|</NextContinuationToken>||' | query_escape)"
  done
}

# A continuation token is opaque base64-like text: %, +, / and = escaped for the query string.
query_escape() {
  sed -e 's|%|%25|g' -e 's|+|%2B|g' -e 's|/|%2F|g' -e 's|=|%3D|g'
}

get() {
  request "${S3_ENDPOINT}/${S3_BUCKET}/$1" --output "$2"
}

# latest_snapshot MANIFEST_KEYS: "<cluster> <tag>" of the newest snapshot every node finished, or nothing.
latest_snapshot() {
  local pattern="^backup/meta/cluster/(${UUID})/dc/[^/]+/node/[^/]+/task_${UUID}_tag_(${TAG})_manifest\.json\.gz(\.tmp)?$"
  local key started=() finished=()
  while IFS= read -r key; do
    if [[ "$key" =~ $pattern ]]; then
      started+=("${BASH_REMATCH[1]} ${BASH_REMATCH[2]}")
      if [[ -z "${BASH_REMATCH[3]}" ]]; then
        finished+=("${BASH_REMATCH[1]} ${BASH_REMATCH[2]}")
      fi
    fi
  done
  if ((${#started[@]} == 0)); then
    return 0
  fi
  # complete: as many nodes finished the snapshot as started it; the newest tag of those
  { printf 'started %s\n' "${started[@]}"; printf 'finished %s\n' "${finished[@]}"; } |
    awk 'NF == 3 { key = $2 " " $3; if ($1 == "started") s[key]++; else f[key]++ }
         END { for (key in s) if (s[key] == f[key]) print key }' | sort -k2,2 | tail -n 1
}

# table_entry MANIFEST: the manifest's index entry of KEYSPACE.TABLE as "<version> <file>...". Manager writes the
# manifest with Go's encoding/json: compact, FilesMeta's fields in declaration order (keyspace, table,
# replication_type, version, files, ...), no nested object inside an entry (backupspec/manifest.go).
table_entry() {
  local entry version files
  entry="$(gzip -dc "$1" | grep -o "{\"keyspace\":\"${KEYSPACE}\",\"table\":\"${TABLE}\",[^}]*}" || true)"
  if [[ -z "$entry" ]]; then
    return 0
  fi
  version="$(grep -oE '"version":"[0-9a-f]+"' <<<"$entry" | cut -d'"' -f4)"
  files="$(grep -oE '"files":\[[^]]*\]' <<<"$entry" | sed -e 's|^"files":\[||' -e 's|\]$||' | tr ',' '\n' | tr -d '"')"
  printf '%s %s\n' "$version" "$(tr '\n' ' ' <<<"$files")"
}

# stored_name FILE TAG LISTING: the object holding FILE as snapshot TAG saw it (see the header).
stored_name() {
  local file="$1" tag="$2" listing="$3" newer
  newer="$(grep -oE "/${file//./\\.}\.${TAG}$" <<<"$listing" | sed -e 's|^/||' -e "s|^${file//./\\.}\.||" |
    awk -v t="$tag" '$0 > t' | sort | head -n 1)"
  if [[ -n "$newer" ]]; then
    printf '%s.%s\n' "$file" "$newer"
  else
    printf '%s\n' "$file"
  fi
}

main() {
  local snapshot cluster tag manifest node entry version files_line file listing dir manifests files=() count=0
  manifests="$(keys backup/meta/)"
  snapshot="$(latest_snapshot <<<"$manifests")"
  if [[ -z "$snapshot" ]]; then
    log "no complete snapshot under s3://${S3_BUCKET}/backup/meta/"
    exit 1
  fi
  read -r cluster tag <<<"$snapshot"
  log "newest complete snapshot: ${tag} of cluster ${cluster}"
  mkdir -p "${WORK}/nodes"
  printf '%s\n' "$tag" >"${WORK}/snapshot"

  while IFS= read -r manifest; do
    [[ "$manifest" == backup/meta/cluster/${cluster}/*_tag_${tag}_manifest.json.gz ]] || continue
    node="$(cut -d/ -f8 <<<"$manifest")"
    get "$manifest" "${WORK}/manifest.json.gz"
    if ((count == 0)); then  # one schema file per snapshot, named like its manifests
      get "backup/schema/cluster/${cluster}/$(basename "${manifest%_manifest.json.gz}")_schema_with_internals.json.gz" \
        "${WORK}/schema.json.gz"
    fi
    count=$((count + 1))
    entry="$(table_entry "${WORK}/manifest.json.gz")"
    if [[ -z "$entry" ]]; then
      log "node ${node}: ${KEYSPACE}.${TABLE} is not in its manifest"
      continue
    fi
    read -r version files_line <<<"$entry"
    read -ra files <<<"$files_line"
    dir="backup/sst/cluster/${cluster}/dc/$(cut -d/ -f6 <<<"$manifest")/node/${node}/keyspace/${KEYSPACE}/table/${TABLE}/${version}"
    listing="$(keys "${dir}/")"
    mkdir -p "${WORK}/nodes/${node}"
    for file in "${files[@]}"; do
      if [[ ! "$file" =~ $FILE_NAME ]]; then
        log "node ${node}: refusing the file name '${file}' from the manifest"
        exit 1
      fi
      get "${dir}/$(stored_name "$file" "$tag" "$listing")" "${WORK}/nodes/${node}/${file}"
    done
    log "node ${node}: ${#files[@]} files of ${KEYSPACE}.${TABLE}"
  done <<<"$manifests"
  rm -f "${WORK}/manifest.json.gz"
  if [[ -z "$(ls -A "${WORK}/nodes")" ]]; then
    log "no node's manifest of ${tag} lists ${KEYSPACE}.${TABLE}"
    exit 1
  fi
}

main
