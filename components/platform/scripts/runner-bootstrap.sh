# shellcheck shell=bash disable=SC2154  # a part run after toolbox.sh (toolbox_job.py), which sets $pod
# The runner bootstrap Job's part (components/platform/runner_bootstrap.py), after toolbox.sh: for each
# `<ruby script>=<secret>` pair in RUNNERS (this stack's runner, then one per downstream environment) runs the Ruby
# script in GitLab's toolbox pod and stores the runner's authentication token in that Secret (key runner-token; the
# runner chart's runners.secret for this stack's own runner). Idempotent: the Ruby script finds the existing runner
# and prints its token again, and the Secret is only patched when it holds another value. The token never reaches a
# command line or the log: it travels from the exec's stdout through a variable into kubectl's stdin.
: "${RUNNER_NAMESPACE:?}" "${RUNNERS:?}"

# $1: the Ruby script creating (or finding) one runner, $2: the Secret its token goes to.
store_token() {
  local script="$1" secret="$2" output token current wanted
  echo "creating or finding the runner of secret $secret through pod $pod"
  output="$(rails_runner < "$script")"
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
