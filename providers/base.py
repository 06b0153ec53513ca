"""The provider interface: what every server provider gives the layers above it.

A provider turns the validated config into servers and returns `Node` values plus the few
facts the cluster layer needs (API endpoints, K3s flags, provider add-ons). Nothing above
`providers/` knows which provider it runs on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal, Protocol, Sequence

import pulumi
import pulumi_command as command
import pulumi_kubernetes as k8s

from config import LoadedConfig, Problem
from config.catalog import SIZES
from config.model import CONTROL_PLANE

K3sRole = Literal["server", "agent"]


@dataclass(frozen=True)
class NodeSpec:
    """One server to create, derived from the config alone (no provider calls)."""

    name: str  # stable: <pool>-<index>, so re-ordering pools in config replaces nothing
    pool: str
    index: int
    k3s_role: K3sRole
    workload_role: str  # a config.catalog.ROLES key: decides host tuning and kubelet flags
    size: str | None
    server_type: str | None
    location: str | None
    labels: dict[str, str]
    taints: tuple[str, ...]


@dataclass(frozen=True)
class Node:
    spec: NodeSpec
    hostname: str
    public_ip: pulumi.Output[str]
    private_ip: pulumi.Output[str]
    connection: command.remote.ConnectionArgs
    server: pulumi.Resource  # what remote commands on this node depend on

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class ClusterProfile:
    """Provider facts the K3s/Cilium layer needs."""

    k3s_disable: tuple[str, ...]  # bundled K3s components the provider replaces
    external_cloud_provider: bool  # a cloud controller manager initialises the nodes
    cilium_values: dict  # merged over the provider-neutral Cilium values (e.g. routing mode)
    # Annotations a `LoadBalancer` Service needs on this provider (the gateway's public entry).
    load_balancer_annotations: dict[str, str] = field(default_factory=dict)
    # The servers' own disks are local NVMe (not network block storage): stores that want local
    # storage (ScyllaDB) carve an XFS volume from them instead of using the CSI storage class.
    local_nvme: bool = False
    # The add-ons are Cilium resources (LB IPAM pools, ...): install them once Cilium runs (its
    # operator registers the CRDs), not only once the API answers.
    addons_need_cni: bool = False


# Installs provider add-ons (cloud controller manager, ...) once the cluster API answers.
AddonInstaller = Callable[[k8s.Provider, Sequence[pulumi.Resource], pulumi.Resource], list[pulumi.Resource]]


@dataclass(frozen=True)
class Storage:
    """The provider's block storage as the cluster sees it."""

    default_class: str  # the default StorageClass (volume expansion on, volumes kept on PVC delete)
    resources: list[pulumi.Resource]  # what a workload with a PVC must wait for
    # The same block storage formatted XFS (csi.storage.k8s.io/fstype: xfs), for stores whose vendors
    # require it (ScyllaDB refuses ext4 outside developer mode); None where the provider has none.
    xfs_class: str | None = None


# Installs the provider's CSI driver and default StorageClass (cluster-services layer).
StorageInstaller = Callable[[k8s.Provider, Sequence[pulumi.Resource], pulumi.Resource], Storage]


@dataclass(frozen=True)
class Infrastructure:
    nodes: list[Node]
    api_private_endpoint: pulumi.Output[str]  # nodes and Cilium reach the API here (LB or first server)
    api_public_endpoint: pulumi.Output[str]  # the deployer (pulumi, kubectl) reaches the API here
    tls_sans: pulumi.Output[list[str]]
    cluster: ClusterProfile
    install_addons: AddonInstaller | None = None
    install_storage: StorageInstaller | None = None

    @property
    def servers(self) -> list[Node]:
        return [n for n in self.nodes if n.spec.k3s_role == "server"]

    @property
    def agents(self) -> list[Node]:
        return [n for n in self.nodes if n.spec.k3s_role == "agent"]


class Provider(Protocol):
    name: str
    server_types: dict[str, str]  # size class -> provider server type, one entry per SIZES key

    def validate(self, loaded: LoadedConfig) -> list[Problem]:
        """Provider-specific config checks (locations, zones), run before any resource exists."""

    def create(self, loaded: LoadedConfig) -> Infrastructure:
        """Create networks, firewall and servers; return the nodes."""


def node_specs(loaded: LoadedConfig) -> list[NodeSpec]:
    """Every server the config asks for: control plane first, then pools in config order."""
    cluster = loaded.config.cluster
    cp = cluster.control_plane
    specs = [NodeSpec(f"{CONTROL_PLANE}-{i + 1}", CONTROL_PLANE, i, "server", cp.role, cp.size, cp.server_type,
                      cp.location or cluster.location, cp.node_labels, cp.taints) for i in range(cp.count)]
    for pool in cluster.active_pools:
        specs += [NodeSpec(f"{pool.name}-{i + 1}", pool.name, i, "agent", pool.role, pool.size, pool.server_type,
                           pool.location or cluster.location, pool.node_labels, pool.node_taints)
                  for i in range(pool.count)]
    return specs


def resolve_server_type(spec: NodeSpec, server_types: dict[str, str]) -> str:
    if spec.server_type:
        return spec.server_type
    return server_types[spec.size or "medium"]


def check_size_mapping(provider_name: str, server_types: dict[str, str]) -> None:
    missing = set(SIZES) - set(server_types)
    if missing:
        raise AssertionError(f"provider {provider_name} maps no server type for sizes {sorted(missing)}")


@dataclass(frozen=True)
class PortRule:
    """One inbound rule of the firewall every provider enforces (see PORTS)."""

    protocol: Literal["tcp", "udp", "icmp"]
    port: str | None  # "443" or a range "2379-2380"; None for icmp
    source: Literal["world", "admin"]
    description: str


# Public interfaces only: traffic between nodes stays on the private network, where every
# provider allows it between cluster members (see each provider for how).
PORTS: tuple[PortRule, ...] = (
    PortRule("tcp", "80", "world", "HTTP to the gateway (redirects to HTTPS)"),
    PortRule("tcp", "443", "world", "HTTPS to the gateway"),
    PortRule("tcp", "22", "admin", "SSH for remote commands"),
    PortRule("tcp", "6443", "admin", "Kubernetes API"),
    PortRule("icmp", None, "admin", "ping and path-MTU diagnostics"),
)
WORLD_CIDRS = ("0.0.0.0/0", "::/0")


def rule_sources(rule: PortRule, admin_cidrs: Sequence[str]) -> list[str]:
    return list(WORLD_CIDRS) if rule.source == "world" else list(admin_cidrs)


def ssh_connection(host: pulumi.Input[str], user: str, private_key: pulumi.Input[str]) -> command.remote.ConnectionArgs:
    # dial_error_limit: fresh servers take a minute before sshd answers.
    return command.remote.ConnectionArgs(host=host, user=user, private_key=private_key,
                                         dial_error_limit=60, per_dial_timeout=10)


__all__ = ["AddonInstaller", "ClusterProfile", "Storage", "StorageInstaller", "Infrastructure", "Node", "NodeSpec", "PORTS", "PortRule",
           "Provider", "node_specs", "resolve_server_type", "rule_sources", "ssh_connection"]
