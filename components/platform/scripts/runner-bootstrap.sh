#!/bin/bash
# The runner bootstrap Job (components/platform/runner_bootstrap.py): runs create-runner.rb in GitLab's toolbox pod
# and stores the runner's authentication token in the Secret the runner chart reads (runners.secret, key
# runner-token). Idempotent: the Ruby script finds the existing runner and prints its token again, and the Secret
# is only patched when it holds another value. The token never reaches a command line or the log: it travels
# from the exec's stdout through a variable into kubectl's stdin.
set -euo pipefail

: "${GITLAB_NAMESPACE:?}" "${TOOLBOX_SELECTOR:?}" "${TOOLBOX_CONTAINER:?}" "${RUNNER_NAMESPACE:?}"
: "${RUNNER_SECRET:?}" "${RUBY_SCRIPT:?}" "${WAIT_SECONDS:?}"

toolbox_pod() {
  kubectl get pods --namespace "$GITLAB_NAMESPACE" --selector "$TOOLBOX_SELECTOR" \
    --field-selector status.phase=Running --output 'jsonpath={.items[0].metadata.name}'
}

# The GitLab release is deployed before this Job starts; its toolbox may still be starting after an upgrade.
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

echo "creating or finding the runner through pod $pod"
output="$(kubectl exec --stdin --namespace "$GITLAB_NAMESPACE" "$pod" --container "$TOOLBOX_CONTAINER" \
  -- gitlab-rails runner - < "$RUBY_SCRIPT")"
token="$(printf '%s\n' "$output" | sed -n 's/^RUNNER_TOKEN=//p' | tail -n 1)"
if ! [[ "$token" =~ ^glrt-[A-Za-z0-9._-]+$ ]]; then
  echo "create-runner.rb printed no runner authentication token (glrt-...)" >&2
  exit 1
fi

current="$(kubectl get secret --namespace "$RUNNER_NAMESPACE" "$RUNNER_SECRET" \
  --output 'jsonpath={.data.runner-token}')"
wanted="$(printf '%s' "$token" | base64 -w 0)"
if [ "$current" = "$wanted" ]; then
  echo "secret $RUNNER_SECRET already holds the runner's token"
  exit 0
fi
printf '{"data":{"runner-token":"%s"}}' "$wanted" |
  kubectl patch secret --namespace "$RUNNER_NAMESPACE" "$RUNNER_SECRET" --type merge --patch-file /dev/stdin
echo "secret $RUNNER_SECRET now holds the runner's token"
