#!/bin/bash
# The start of every toolbox Job's script (components/platform/toolbox_job.py prepends this file to the Job's own
# part): waits for GitLab's migrations, then for GitLab's toolbox pod, and offers `rails_runner`, which runs the Ruby
# program arriving on its stdin with `gitlab-rails runner -` in that pod. Whatever the program needs travels on stdin
# too: never on a command line, in the environment of the exec'd command or in the log.
set -euo pipefail

: "${GITLAB_NAMESPACE:?}" "${MIGRATIONS_JOB:?}" "${MIGRATIONS_WAIT_SECONDS:?}"
: "${TOOLBOX_SELECTOR:?}" "${TOOLBOX_CONTAINER:?}" "${WAIT_SECONDS:?}"

# The Job starts while GitLab's release installs (issue 22), so it waits for the release's migrations Job itself:
# MIGRATIONS_JOB is the current revision's (components/platform/gitlab.py fixes the chart's Job name suffix to a hash
# of the chart version and values, so a previous revision's Job has another name; a Job that failed under the same
# values keeps its name, as with the chart's own suffix, and Helm leaves it as it is). Its true conditions, e.g.
# "SuccessCriteriaMet Complete"; nothing while it does not exist yet or still runs.
migrations_state() {
  kubectl get job --namespace "$GITLAB_NAMESPACE" "$MIGRATIONS_JOB" --ignore-not-found \
    --output 'jsonpath={.status.conditions[?(@.status=="True")].type}'
}

waited=0
while true; do
  state=" $(migrations_state || true) "
  case "$state" in
    *" Complete "*) break ;;
    *" Failed "*)
      echo "GitLab's migrations Job $MIGRATIONS_JOB in namespace $GITLAB_NAMESPACE failed: read its log" >&2
      echo "(kubectl -n $GITLAB_NAMESPACE logs job/$MIGRATIONS_JOB), fix the cause, delete the Job" >&2
      echo "(kubectl -n $GITLAB_NAMESPACE delete job $MIGRATIONS_JOB) and run pulumi up again" >&2
      exit 1 ;;
  esac
  if [ "$waited" -ge "$MIGRATIONS_WAIT_SECONDS" ]; then
    echo "GitLab's migrations Job $MIGRATIONS_JOB in namespace $GITLAB_NAMESPACE not complete after ${waited}s" >&2
    exit 1
  fi
  sleep 10
  waited=$((waited + 10))
done
echo "GitLab's migrations Job $MIGRATIONS_JOB completed"

# The newest running toolbox pod that is not being deleted: on an upgrade the Deployment may still be rolling, and
# an exec into a terminating pod would die with it.
toolbox_pod() {
  kubectl get pods --namespace "$GITLAB_NAMESPACE" --selector "$TOOLBOX_SELECTOR" \
    --field-selector status.phase=Running --sort-by .metadata.creationTimestamp \
    --output 'go-template={{range .items}}{{if not .metadata.deletionTimestamp}}{{.metadata.name}}{{"\n"}}{{end}}{{end}}' |
    tail -n 1
}

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

