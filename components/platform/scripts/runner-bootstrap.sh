#!/bin/bash
# The runner bootstrap Job (components/platform/runner_bootstrap.py): for each `<ruby script>=<secret>` pair in
# RUNNERS (this stack's runner, then one per downstream environment) runs the Ruby script in GitLab's toolbox pod
# and stores the runner's authentication token in that Secret (key runner-token; the runner chart's
# runners.secret for this stack's own runner). Idempotent: the Ruby script finds the existing runner and prints its token again, and the Secret
# is only patched when it holds another value. The token never reaches a command line or the log: it travels
# from the exec's stdout through a variable into kubectl's stdin.
set -euo pipefail

: "${GITLAB_NAMESPACE:?}" "${TOOLBOX_SELECTOR:?}" "${TOOLBOX_CONTAINER:?}" "${RUNNER_NAMESPACE:?}"
: "${RUNNERS:?}" "${WAIT_SECONDS:?}"

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

# $1: the Ruby script creating (or finding) one runner, $2: the Secret its token goes to.
store_token() {
  local script="$1" secret="$2" output token current wanted
  echo "creating or finding the runner of secret $secret through pod $pod"
  output="$(kubectl exec --stdin --namespace "$GITLAB_NAMESPACE" "$pod" --container "$TOOLBOX_CONTAINER" \
    -- gitlab-rails runner - < "$script")"
  token="$(printf '%s\n' "$output" | sed -n 's/^RUNNER_TOKEN=//p' | tail -n 1)"
  if ! [[ "$token" =~ ^glrt-[A-Za-z0-9._-]+$ ]]; then
    echo "$script printed no runner authentication token (glrt-...)" >&2
    exit 1
  fi
  current="$(kubectl get secret --namespace "$RUNNER_NAMESPACE" "$secret" \
    --output 'jsonpath={.data.runner-token}')"
  wanted="$(printf '%s' "$token" | base64 -w 0)"
  if [ "$current" = "$wanted" ]; then
    echo "secret $secret already holds the runner's token"
    return 0
  fi
  printf '{"data":{"runner-token":"%s"}}' "$wanted" |
    kubectl patch secret --namespace "$RUNNER_NAMESPACE" "$secret" --type merge --patch-file /dev/stdin
  echo "secret $secret now holds the runner's token"
}

# Fixed names from runner_bootstrap.py (no spaces): word splitting is what separates the pairs.
for pair in $RUNNERS; do
  store_token "${pair%%=*}" "${pair#*=}"
done
