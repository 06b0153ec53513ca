"""What every cluster-services module is handed: the validated settings and how to create children."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import pulumi
import pulumi_kubernetes as k8s

from config import StackSecrets
from config.model import Cluster
from config.services import ClusterServices as Settings
from components.services.secrets_sso import SecretsOidc
from providers.base import Seal


@dataclass(frozen=True)
class ServicesContext:
    parent: pulumi.Resource  # the ClusterServices component: every child hangs below it
    k8s: k8s.Provider
    settings: Settings  # clusterServices.* of the stack, validated
    cluster: Cluster  # cluster.* (K3s version, CIDRs, pools)
    secrets: StackSecrets
    domain: str
    stack: str
    ha: bool  # production-grade profile: replicas >= 2 (3 for quorum), anti-affinity, PDBs
    protect: bool  # production: stateful resources protected
    storage_class: str  # the provider's default StorageClass
    load_balancer_annotations: dict[str, str]  # what a LoadBalancer Service needs on this provider
    schedulable_nodes: int  # nodes that run general workloads (caps replica spreading)
    secrets_oidc: SecretsOidc | None = None  # the secret store's UI behind GitLab (platform.sso on, OpenBao)
    seal: Seal | None = None  # OpenBao unseals with the provider's KMS (clusterServices.secrets.seal): key, credential

    def opts(self, depends_on: Sequence[pulumi.Resource] = (), **kwargs) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self.parent, provider=self.k8s, depends_on=list(depends_on), **kwargs)

    def replicas(self, ha_count: int = 2) -> int:
        """`ha_count` in HA profiles (never more than the nodes that can spread them), else 1."""
        return max(1, min(ha_count, self.schedulable_nodes)) if self.ha else 1

    def labels(self, app: str) -> dict[str, str]:
        return {"app.kubernetes.io/name": app, "app.kubernetes.io/part-of": "adplatform",
                "app.kubernetes.io/managed-by": "pulumi"}
