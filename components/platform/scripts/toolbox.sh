#!/bin/bash
# The start of every toolbox Job's script (components/platform/toolbox_job.py prepends this file to the Job's own
# part): waits for GitLab's toolbox pod and offers `rails_runner`, which runs the Ruby program arriving on its
# stdin with `gitlab-rails runner -` in that pod. Whatever the program needs travels on stdin too: never on a
# command line, in the environment of the exec'd command or in the log.
set -euo pipefail

: "${GITLAB_NAMESPACE:?}" "${TOOLBOX_SELECTOR:?}" "${TOOLBOX_CONTAINER:?}" "${WAIT_SECONDS:?}"

toolbox_pod() {
  kubectl get pods --namespace "$GITLAB_NAMESPACE" --selector "$TOOLBOX_SELECTOR" \
    --field-selector status.phase=Running --output 'jsonpath={.items[0].metadata.name}'
}

# The GitLab release is deployed before the Job starts; its toolbox may still be starting after an upgrade.
pod=""
waited=0
while [ -z "$pod" ]; do
  pod="$(toolbox_pod || true)"
  if [ -z "$pod" ]; then
    if [ "$waited" -ge "$WAIT_SECONDS" ]; then
      echo "no running toolbox pod ($TOOLBOX_SELECTOR) in namespace $GITLAB_NAMESPACE after ${WAIT_SECONDS}s" >&2
      exit 1
    fi
    sleep 10
    waited=$((waited + 10))
  fi
done

# Runs the Ruby program on stdin in the toolbox pod; prints what it prints.
rails_runner() {
  kubectl exec --stdin --namespace "$GITLAB_NAMESPACE" "$pod" --container "$TOOLBOX_CONTAINER" \
    -- gitlab-rails runner -
}

