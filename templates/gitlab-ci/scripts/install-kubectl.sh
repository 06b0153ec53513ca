#!/usr/bin/env bash
# Puts the pinned kubectl release into KUBECTL_DIR (default .kubectl) after checking its SHA-256.
#
# Why a download and not the kubectl image: registry.k8s.io/kubectl is built on a distroless base (no shell),
# and a GitLab Kubernetes-executor job needs a shell in its image. The binary comes from the same official
# release (dl.k8s.io), pinned by version and checksum, and is cached between jobs by the templates.
#
# Environment: KUBECTL_VERSION (e.g. v1.36.4), KUBECTL_SHA256_AMD64, KUBECTL_SHA256_ARM64 (the release's
# published checksums), KUBECTL_DIR, KUBECTL_URL (override the download location, e.g. a mirror).
set -euo pipefail

fail() {
    printf 'install-kubectl: %s\n' "$*" >&2
    exit 2
}

version=${KUBECTL_VERSION:-}
[[ $version =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "KUBECTL_VERSION '$version' is not a release such as v1.36.4"
case "$(uname -m)" in
    x86_64 | amd64) arch=amd64 sum=${KUBECTL_SHA256_AMD64:-} ;;
    aarch64 | arm64) arch=arm64 sum=${KUBECTL_SHA256_ARM64:-} ;;
    *) fail "no pinned kubectl checksum for architecture $(uname -m)" ;;
esac
[[ $sum =~ ^[a-f0-9]{64}$ ]] || fail "no SHA-256 pinned for kubectl $version on $arch"
dir=${KUBECTL_DIR:-.kubectl}
url=${KUBECTL_URL:-https://dl.k8s.io/release/$version/bin/linux/$arch/kubectl}

if [[ -x $dir/kubectl ]] && sha256sum --check --status <<<"$sum  $dir/kubectl"; then
    printf 'install-kubectl: %s already in %s\n' "$version" "$dir"
    exit 0
fi

mkdir -p "$dir"
partial=$(mktemp "$dir/kubectl.XXXXXX")
trap 'rm -f "$partial"' EXIT

# Job images have curl or Python (the templates use the official Python image), not always both.
if command -v curl >/dev/null; then
    curl --fail --silent --show-error --location --retry 3 --output "$partial" "$url"
elif command -v python3 >/dev/null; then
    python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' "$url" "$partial"
else
    fail "neither curl nor python3 is in the job image"
fi

sha256sum --check --status <<<"$sum  $partial" || fail "$url does not match the pinned SHA-256 $sum"
chmod 0755 "$partial"
mv "$partial" "$dir/kubectl"
printf 'install-kubectl: %s (%s) verified into %s\n' "$version" "$arch" "$dir"
