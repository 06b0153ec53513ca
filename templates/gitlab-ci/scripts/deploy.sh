#!/usr/bin/env bash
# Rolls a service's Deployment to an image, waits for the rollout, and records what ran before.
#
#   deploy.sh IMAGE
#
# Environment (set by the templates; SERVICE_NAME and K8S_NAMESPACE by the service's .gitlab-ci.yml):
#   SERVICE_NAME            the Deployment (and service) name, e.g. bidding            (required)
#   K8S_NAMESPACE           the team namespace the Deployment lives in                 (default: ads)
#   SERVICE_CONTAINER       the container whose image the platform lets CI change      (default: app)
#   ROLLOUT_TIMEOUT         how long to wait for the new pods, as kubectl reads it     (default: 5m)
#   EXPECTED_CURRENT_IMAGE  refuse unless this image is what runs now (the rollback job sets it, so it
#                           never undoes a deployment made after the one it rolls back)
#   DEPLOY_ENV_FILE         where to write the dotenv record                           (default: deploy.env)
#
# The job pod runs as the platform's deployer ServiceAccount, which may get/list/watch/patch Deployments in the
# team namespaces and nothing else: every call below stays inside that.
#
# Idempotent: when the Deployment already runs IMAGE, nothing is patched (and `kubectl set image` with the same
# image would be a no-op anyway: the pod template does not change, so there is no new ReplicaSet or rollout);
# the job then only confirms the rollout and re-writes the record with the previous image kept on the Deployment.
#
# A failed rollout puts the image that ran before back (rather than `kubectl rollout undo`, which needs
# ReplicaSet access and would also revert any other template change Pulumi made since the last revision).
set -euo pipefail

PREVIOUS_ANNOTATION="adplatform.io/previous-image"

fail() {
    printf 'deploy: %s\n' "$*" >&2
    exit 2
}

log() {
    printf 'deploy: %s\n' "$*"
}

# A registry path with a tag or digest, never :latest: the same rule as the platform's image config.
check_image() {
    local image=$1 last
    [[ $image =~ ^[a-z0-9][a-z0-9._:/@-]*$ ]] || fail "image '$image' is not a lower-case registry path"
    if [[ $image == *@sha256:* ]]; then
        [[ ${image##*@sha256:} =~ ^[a-f0-9]{64}$ ]] || fail "image '$image' has a malformed digest"
        return
    fi
    last=${image##*/}
    [[ $last == *:* ]] || fail "image '$image' has no tag: deploy a pinned tag such as the commit SHA"
    [[ ${last##*:} != latest ]] || fail "image '$image' uses the moving tag 'latest': deploy a pinned tag"
}

check_name() {
    local what=$1 value=$2
    [[ $value =~ ^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$ ]] \
        || fail "$what '$value' is not a Kubernetes name (lower-case letters, digits and '-')"
}

[[ $# -eq 1 ]] || fail "usage: deploy.sh IMAGE"
image=$1
[[ -n $image ]] || fail "no image given"
check_image "$image"

service=${SERVICE_NAME:-}
[[ -n $service ]] || fail "SERVICE_NAME is not set: set it in .gitlab-ci.yml to the name of the service's Deployment"
check_name SERVICE_NAME "$service"
namespace=${K8S_NAMESPACE:-ads}
check_name K8S_NAMESPACE "$namespace"
container=${SERVICE_CONTAINER:-app}
check_name SERVICE_CONTAINER "$container"
timeout=${ROLLOUT_TIMEOUT:-5m}
[[ $timeout =~ ^[1-9][0-9]*[smh]$ ]] || fail "ROLLOUT_TIMEOUT '$timeout' is not a duration such as 300s or 5m"
record=${DEPLOY_ENV_FILE:-deploy.env}
expected=${EXPECTED_CURRENT_IMAGE:-}

k() {
    kubectl --namespace "$namespace" "$@"
}

deployment="deployment/$service"
current=$(k get "$deployment" -o "jsonpath={.spec.template.spec.containers[?(@.name==\"$container\")].image}")
[[ -n $current ]] || fail "$deployment in namespace $namespace has no container named '$container'"
# jsonpath needs the dots of the annotation key escaped.
remembered=$(k get "$deployment" -o "jsonpath={.metadata.annotations.${PREVIOUS_ANNOTATION//./\\.}}")

write_record() {
    # A dotenv artifact: GitLab hands these to jobs that need this one (the rollback job reads PREVIOUS_IMAGE).
    # No empty value: with nothing known to go back to, the rollback job says so instead of deploying "".
    printf 'DEPLOYED_IMAGE=%s\n' "$1" >"$record"
    if [[ -n $2 ]]; then
        printf 'PREVIOUS_IMAGE=%s\n' "$2" >>"$record"
    fi
}

wait_for_rollout() {
    k rollout status "$deployment" --timeout "$timeout"
}

if [[ $current == "$image" ]]; then
    log "$deployment already runs $image: nothing to change"
    if ! wait_for_rollout; then
        fail "$deployment runs $image but its rollout is not healthy; nothing was changed"
    fi
    write_record "$image" "$remembered"
    exit 0
fi

if [[ -n $expected && $current != "$expected" ]]; then
    fail "$deployment runs $current, not $expected: something was deployed since, refusing to replace it"
fi

log "$deployment: $current -> $image"
k set image "$deployment" "$container=$image"
if wait_for_rollout; then
    # Kept on the Deployment itself so that a re-run of this job (a no-op) still records what ran before.
    k annotate --overwrite "$deployment" "$PREVIOUS_ANNOTATION=$current"
    write_record "$image" "$current"
    log "$deployment runs $image (previous: $current)"
    exit 0
fi

log "rollout of $image failed: putting $current back"
k set image "$deployment" "$container=$current"
if ! wait_for_rollout; then
    log "$deployment did not become healthy on $current either: look at its pods"
fi
exit 1
