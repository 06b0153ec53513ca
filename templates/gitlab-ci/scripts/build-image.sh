#!/usr/bin/env bash
# Builds an image with Buildah and pushes it to the project's GitLab registry: no Docker daemon, no privileges.
#
#   build-image.sh IMAGE [CONTAINERFILE [CONTEXT]]
#
# Environment: CI_REGISTRY, CI_REGISTRY_USER, CI_JOB_TOKEN (set by GitLab for every job),
#   IMAGE_BUILD_ARGS  space-separated KEY=VALUE build arguments (optional)
#   BUILD_TARGET      the Containerfile stage to build (optional)
#
# Buildah runs with --isolation chroot (RUN steps in a chroot, not a nested container runtime) and the vfs
# storage driver (plain directories, no overlay or fuse mounts), so the job needs neither a privileged pod nor a
# host mount: it runs in the runner's baseline-level namespace. It still creates a user namespace and mounts in
# it, which the pod's AppArmor and seccomp profiles must allow (the platform's runner gives build containers the
# AppArmor profile adplatform-ci-build and no seccomp profile: README). The job token reaches `buildah login` on
# stdin, never on a command line or in the log; the login is removed when the script ends.
set -euo pipefail

fail() {
    printf 'build-image: %s\n' "$*" >&2
    exit 2
}

[[ $# -ge 1 && $# -le 3 ]] || fail "usage: build-image.sh IMAGE [CONTAINERFILE [CONTEXT]]"
image=$1
containerfile=${2:-Containerfile}
context=${3:-.}

[[ $image =~ ^[a-z0-9][a-z0-9._/-]*:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] \
    || fail "image '$image' must be a registry path with a tag"
[[ ${image##*:} != latest ]] || fail "image '$image' uses the moving tag 'latest': tag it with the commit SHA"
[[ -f $containerfile ]] || fail "no $containerfile in the repository: start from the examples in containerfiles/"
[[ -d $context ]] || fail "build context $context is not a directory"
for variable in CI_REGISTRY CI_REGISTRY_USER CI_JOB_TOKEN; do
    [[ -n ${!variable:-} ]] || fail "$variable is not set: this script runs in a GitLab CI job"
done

buildah=(buildah --storage-driver vfs)

"${buildah[@]}" login --username "$CI_REGISTRY_USER" --password-stdin "$CI_REGISTRY" <<<"$CI_JOB_TOKEN"
trap '"${buildah[@]}" logout "$CI_REGISTRY" >/dev/null 2>&1 || true' EXIT

options=(--isolation chroot --file "$containerfile" --tag "$image"
    --label "org.opencontainers.image.revision=${CI_COMMIT_SHA:-unknown}"
    --label "org.opencontainers.image.source=${CI_PROJECT_URL:-unknown}")
if [[ -n ${IMAGE_BUILD_ARGS:-} ]]; then
    read -r -a build_args <<<"$IMAGE_BUILD_ARGS"
    for pair in "${build_args[@]}"; do
        [[ $pair == ?*=* ]] || fail "IMAGE_BUILD_ARGS entry '$pair' is not KEY=VALUE"
        options+=(--build-arg "$pair")
    done
fi
if [[ -n ${BUILD_TARGET:-} ]]; then
    options+=(--target "$BUILD_TARGET")
fi

"${buildah[@]}" build "${options[@]}" "$context"
"${buildah[@]}" push --retry 3 --digestfile image.digest "$image"
printf 'build-image: pushed %s as %s\n' "$image" "$(cat image.digest)"
