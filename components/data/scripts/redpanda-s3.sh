#!/usr/bin/env bash
# S3 calls for the Redpanda export and import (sourced): plain HTTPS with curl's SigV4 signing, so the jobs need
# no S3 client of their own. The keys reach curl on stdin (--config -), never in its arguments.
#
# Environment: S3_ENDPOINT (https://host[:port] or http://<svc> in the cluster), S3_REGION, S3_BUCKET, S3_PREFIX
# (no leading or trailing slash), S3_ACCESS_KEY, S3_SECRET_KEY; optional S3_SSE (AES256: server-side encryption).
# Objects are addressed path-style (<endpoint>/<bucket>/<key>): every S3-compatible store serves it.
# shellcheck shell=bash

: "${S3_ENDPOINT:?}" "${S3_REGION:?}" "${S3_BUCKET:?}" "${S3_PREFIX:?}" "${S3_ACCESS_KEY:?}" "${S3_SECRET_KEY:?}"

# s3 METHOD KEY [curl arguments...]: one signed request for KEY (relative to S3_PREFIX).
s3() {
  local method="$1" key="$2"
  shift 2
  printf 'user = "%s:%s"\n' "$S3_ACCESS_KEY" "$S3_SECRET_KEY" |
    curl --config - --silent --show-error --fail --retry 3 --max-time 600 \
      --aws-sigv4 "aws:amz:${S3_REGION}:s3" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
      -X "$method" "$@" "${S3_ENDPOINT}/${S3_BUCKET}/${S3_PREFIX}/${key}"
}

# s3_put FILE KEY: upload FILE, encrypted at rest when S3_SSE asks for it.
s3_put() {
  local sse=()
  if [[ -n "${S3_SSE:-}" ]]; then
    sse=(-H "x-amz-server-side-encryption: ${S3_SSE}")
  fi
  s3 PUT "$2" "${sse[@]}" --upload-file "$1" >/dev/null
}

# s3_get KEY FILE: download KEY into FILE.
s3_get() {
  s3 GET "$1" --output "$2"
}

# s3_list: one page (up to 1000 entries) of ListObjectsV2 directly under S3_PREFIX/ (delimiter /: deeper keys are
# listed as common prefixes).
s3_list() {
  printf 'user = "%s:%s"\n' "$S3_ACCESS_KEY" "$S3_SECRET_KEY" |
    curl --config - --silent --show-error --fail --retry 3 --max-time 60 \
      --aws-sigv4 "aws:amz:${S3_REGION}:s3" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
      "${S3_ENDPOINT}/${S3_BUCKET}?list-type=2&delimiter=%2F&prefix=${S3_PREFIX}%2F"
}

# s3_objects: the names of the objects directly under S3_PREFIX/ (not those in deeper folders).
s3_objects() {
  s3_list | grep -o "<Key>${S3_PREFIX}/[^<]*</Key>" | sed -e "s|<Key>${S3_PREFIX}/||" -e 's|</Key>||'
}

# s3_exports: the export names under S3_PREFIX, oldest first (ListObjectsV2 common prefixes; names sort by time).
s3_exports() {
  s3_list |
    grep -o "<Prefix>${S3_PREFIX}/[0-9]\{8\}T[0-9]\{6\}Z/</Prefix>" |
    sed -e "s|<Prefix>${S3_PREFIX}/||" -e 's|/</Prefix>||' | sort
}
