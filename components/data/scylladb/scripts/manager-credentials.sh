#!/usr/bin/env bash
# Gives Scylla Manager CQL credentials for the cluster the operator registered with it. Manager needs
# them to back up the schema of ScyllaDB >= 2024.2 with authentication on (scylladb/scylla-operator#2548):
# the operator registers clusters with the agents' auth token only. Updating the cluster keeps its
# other settings; a later update by the operator (no username given) keeps these credentials.
set -euo pipefail

# The operator registers the cluster once it is up: wait for it (15 minutes at most).
for attempt in $(seq 1 90); do
  if clusters="$(sctool cluster list 2> /dev/null)" && [[ "${clusters}" == *" ${CLUSTER} "* ]]; then
    break
  fi
  if [[ "${attempt}" -eq 90 ]]; then
    echo "cluster ${CLUSTER} is not registered with Scylla Manager at ${SCYLLA_MANAGER_API_URL}" >&2
    exit 1
  fi
  sleep 10
done

sctool cluster update --cluster "${CLUSTER}" --username "${CQL_USERNAME}" --password "${CQL_PASSWORD}"
echo "Scylla Manager has CQL credentials (${CQL_USERNAME}) for ${CLUSTER}"
