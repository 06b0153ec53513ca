"""The single catalog of pinned software: Helm charts, manifest releases and the K3s release.

Versions are exact; bump them deliberately (see ../shared/reference/charts-2026.md for where each
was read). Nothing else in the program names a chart repository, a release URL or a version.
"""

from __future__ import annotations

from dataclasses import dataclass

# K3s stable channel at research time (2026-08-27). Stacks may pin another v1.X.Y+k3sN.
K3S_VERSION = "v1.36.4+k3s1"


@dataclass(frozen=True)
class Chart:
    repo: str
    chart: str
    version: str
    namespace: str


@dataclass(frozen=True)
class Manifests:
    """A project's release manifests (no upstream Helm chart), pinned to a release tag."""

    name: str
    version: str
    urls: tuple[str, ...]  # applied in order (CRDs first)


# --- k3s layer --------------------------------------------------------------------------------------
CILIUM = Chart("https://helm.cilium.io", "cilium", "1.20.0", "kube-system")
HCLOUD_CCM = Chart("https://charts.hetzner.cloud", "hcloud-cloud-controller-manager", "1.35.0", "kube-system")

# --- cluster services -------------------------------------------------------------------------------
HCLOUD_CSI = Chart("https://charts.hetzner.cloud", "hcloud-csi", "2.22.1", "kube-system")
CERT_MANAGER = Chart("https://charts.jetstack.io", "cert-manager", "v1.21.1", "cert-manager")
# Server images pinned to each chart's appVersion (openbao-helm tag openbao-0.29.2: v2.6.2; vault-helm
# v0.34.1: 2.0.4); External Secrets runs its chart's appVersion v2.9.0.
OPENBAO = Chart("https://openbao.github.io/openbao-helm", "openbao", "0.29.2", "openbao")
OPENBAO_VERSION = "2.6.2"
VAULT = Chart("https://helm.releases.hashicorp.com", "vault", "0.34.1", "vault")
VAULT_VERSION = "2.0.4"
EXTERNAL_SECRETS = Chart("https://charts.external-secrets.io", "external-secrets", "2.9.0", "external-secrets")
VELERO = Chart("https://vmware-tanzu.github.io/helm-charts", "velero", "12.1.0", "velero")  # Velero v1.18.1
# Linkerd edge-26.8.3 (2026-08-21): edge charts are versioned YYYY.M.N from the edge-YY.M.N tag
# (linkerd2 bin/compute-edge-version). Stable releases are Buoyant Enterprise only since 2024.
LINKERD_CRDS = Chart("https://helm.linkerd.io/edge", "linkerd-crds", "2026.8.3", "linkerd")
LINKERD_CONTROL_PLANE = Chart("https://helm.linkerd.io/edge", "linkerd-control-plane", "2026.8.3", "linkerd")
LINKERD_CNI = Chart("https://helm.linkerd.io/edge", "linkerd2-cni", "2026.8.3", "linkerd-cni")
# Writes Linkerd's trust-anchor ConfigMap from cert-manager's Secret (tag v0.24.0, 2026-06-27).
TRUST_MANAGER = Chart("https://charts.jetstack.io", "trust-manager", "v0.24.0", "trust-manager")

# The Gateway API release Cilium 1.20 is built against (v1.20.0 release notes: "Gateway API v1.6.1").
# Its standard channel holds every CRD Cilium's operator requires (TLSRoute and ListenerSet graduated
# to it in v1.5), so the experimental channel is not installed.
GATEWAY_API_VERSION = "v1.6.1"
GATEWAY_API = Manifests("gateway-api", GATEWAY_API_VERSION, (
    f"https://github.com/kubernetes-sigs/gateway-api/releases/download/{GATEWAY_API_VERSION}/standard-install.yaml",
))
SYSTEM_UPGRADE_CONTROLLER_VERSION = "v0.20.1"
SYSTEM_UPGRADE_CONTROLLER = Manifests("system-upgrade-controller", SYSTEM_UPGRADE_CONTROLLER_VERSION, tuple(
    f"https://github.com/rancher/system-upgrade-controller/releases/download/{SYSTEM_UPGRADE_CONTROLLER_VERSION}/{f}"
    for f in ("crd.yaml", "system-upgrade-controller.yaml")))

CHARTS: dict[str, Chart] = {c.chart: c for c in (
    CILIUM, HCLOUD_CCM, HCLOUD_CSI, CERT_MANAGER, OPENBAO, VAULT, EXTERNAL_SECRETS, VELERO, LINKERD_CRDS,
    LINKERD_CONTROL_PLANE, LINKERD_CNI, TRUST_MANAGER,
)}
MANIFESTS: dict[str, Manifests] = {m.name: m for m in (GATEWAY_API, SYSTEM_UPGRADE_CONTROLLER)}
