"""The single catalog of pinned software: Helm charts and the K3s release.

Versions are exact; bump them deliberately (see ../shared/reference/charts-2026.md for where each
was read). Nothing else in the program names a chart repository or a version.
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


CILIUM = Chart("https://helm.cilium.io", "cilium", "1.20.0", "kube-system")

CHARTS: dict[str, Chart] = {
    "cilium": CILIUM,
}
HCLOUD_CCM = Chart("https://charts.hetzner.cloud", "hcloud-cloud-controller-manager", "1.35.0", "kube-system")

CHARTS["hcloud-cloud-controller-manager"] = HCLOUD_CCM
