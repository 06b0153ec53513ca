"""What every data-plane module is handed: settings, placement, sizing, backups and how to create children."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import urlsplit

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.data.endpoints import BackupTargets
from components.layer import LayerContext, wait_for  # noqa: F401  (re-exported: the data layer imports it from here)
from components.data.placement import Placement, Resources, sized
from components.scheduling import pod_anti_affinity
from components.services.gateway import GatewayRef
from components.services.namespaces import LAYER_LABEL, TEAM_LAYER, Peer, platform_peer, prometheus_peer
from config.data import (DRAGONFLY_MAXMEMORY_FRACTION, DRAGONFLY_MIB_PER_THREAD, REDPANDA_MEMORY_FRACTION,
                         REDPANDA_MIB_PER_CORE, SCYLLA_MIB_PER_SHARD, SCYLLA_RESERVE_MIB, DataPlane as Settings,
                         min_memory_mib)
from config.consumers import Consumer
from config.model import Cluster
from config.quantity import whole_cores

LAYER = "data-plane"
OBJECT_STORE_NAMESPACE = "seaweedfs"  # the in-cluster object store (objectstore.py)
OBJECT_STORE_S3_PORT = 8333
DRILL_NAMESPACE = "dr-drills"  # the restore drills' scratch namespace (drills.py)
# Canaries kept in a store: a month of backups, each with recent ones (drills.py; ScyllaDB's canary table's TTL,
# set by its bootstrap, scylladb/__init__.py).
CANARY_RETENTION_DAYS = 45
PLATFORM_LAYER = "platform"  # the label value the platform layer's namespaces carry (LAYER_LABEL)

# Each workload's part of its nodes' budget (placement.node_budget); parts on one role sum to <= 1,
# the rest is headroom for the operators' per-node pods and sidecars.
SHARES = {
    "scylladb": 0.85,  # the rest: Scylla Manager agent sidecar, the operator's node-setup pods
    "redpanda": 0.85,
    "clickhouse": 0.7,
    "clickhouse-keeper": 0.1,
    "clickhouse-backup": 0.05,  # the clickhouse-backup sidecar in each ClickHouse pod (freeze + S3 upload)
    "postgres": 0.35,
    "postgres-backup": 0.05,  # the barman-cloud sidecar in each PostgreSQL pod (WAL and base backup uploads)
    "dragonfly": 0.25,  # the ad services' instance
    "dragonfly-platform": 0.05,  # each platform consumer's own instance (GitLab: sessions, job queues, cache)
    "seaweedfs": 0.15,  # the volume servers (the data)
    "seaweedfs-filer": 0.05,  # filer metadata (leveldb) + the S3 gateway it embeds
    "seaweedfs-master": 0.02,
}

# Thread-per-core stores: whole CPUs, so the kubelet's static CPU manager gives them exclusive cores,
# and never more cores than their memory feeds: (fixed MiB, MiB per core) of the container. Redpanda
# 2 GiB per core in 90 % of the container; ScyllaDB in production mode 1 GiB per shard plus its
# reserve; DragonflyDB 256 MiB per thread in 80 %.
PINNED_CPUS = {"scylladb", "redpanda", "dragonfly", "dragonfly-platform"}
MEMORY_PER_CORE = {
    "redpanda": (0, min_memory_mib(REDPANDA_MIB_PER_CORE, REDPANDA_MEMORY_FRACTION, 1)),
    "scylladb": (SCYLLA_RESERVE_MIB, SCYLLA_MIB_PER_SHARD),
    "dragonfly": (0, min_memory_mib(DRAGONFLY_MIB_PER_THREAD, DRAGONFLY_MAXMEMORY_FRACTION, 1)),
}
MEMORY_PER_CORE["dragonfly-platform"] = MEMORY_PER_CORE["dragonfly"]
OPERATOR_HA_REPLICAS = 2  # see DataContext.operator_replicas


@dataclass(frozen=True)
class DataContext(LayerContext):
    """`parent`: the DataPlane component."""

    settings: Settings  # dataPlane.* of the stack, validated
    cluster: Cluster
    stack: str
    domain: str
    storage_class: str  # the provider's default StorageClass (network block storage)
    xfs_storage_class: str | None  # the same storage formatted XFS, where the provider offers it
    # The classes above are the store's pools' (DataPlane._placed: a hybrid cluster's pool on another provider claims
    # that provider's); what runs on the general nodes claims the stack provider's default class, this one.
    general_storage_class: str
    local_nvme: bool  # the nodes' own disks are local NVMe (ScyllaDB may use them)
    gateway: GatewayRef
    cluster_issuer: str
    placements: dict[str, Placement]  # store (STORE_ROLES key) -> where it runs
    backup: BackupTargets | None  # where stores back up to (None: backups off), see DataPlane._backup_targets
    drills: tuple[str, ...] = ()  # stores whose restore is drilled (config/rules.py drilled_stores)
    # A class -> the same volumes deleted with their claim (providers/base.py Storage.scratch_of); by default the
    # class itself (no class keeps released volumes)
    scratch_of: Callable[[str], str] = lambda storage_class: storage_class
    # Store -> who gets a user of its own there (config/consumers.py store_consumers: the one list).
    consumers: Mapping[str, tuple[Consumer, ...]] = field(default_factory=dict)
    velero: Sequence[pulumi.Resource] = ()  # Velero installed (ClusterServices.backups): a store's Velero restore
    # What the store's operator release waits for (DataPlane decides, from NEEDS in components/data/__init__.py): its
    # namespaces' policies and the cluster services its chart renders for, not the store's volumes (issue 22).
    operator_after: Sequence[pulumi.Resource] = ()
    # The Kubernetes Node names of this program run's nodes (K3sCluster.node_names): a node not among them is leaving.
    node_names: tuple[str, ...] = ()

    @property
    def scratch_storage_class(self) -> str:
        """The store's class, deleting a volume with its claim: a scratch copy is no data, and a Retain class would
        keep (and bill) every run's volume."""
        return self.scratch_of(self.storage_class)

    def scratch_volume(self, size: str) -> dict[str, Any]:
        """A pod volume of `size`, gone with its pod, claim and cloud volume (scratch_storage_class)."""
        return {"ephemeral": {"volumeClaimTemplate": {"spec": {
            "accessModes": ["ReadWriteOnce"], "storageClassName": self.scratch_storage_class,
            "resources": {"requests": {"storage": size}}}}}}

    def consumers_of(self, store: str, layer: str | None = None) -> tuple[Consumer, ...]:
        return tuple(c for c in self.consumers.get(store, ()) if layer is None or c.layer == layer)

    def resources(self, store: str, workload: str | None = None, configured: bool = True) -> Resources:
        """The workload's share of its store's nodes, or (`configured`) the store's configured cpu/memory."""
        return store_resources(self.settings, self.placements, store, workload, configured)

    # --- network peers of the data namespaces ---------------------------------------------------------
    def clients(self, ports: Sequence[int], teams: bool = True, platform: bool = True) -> tuple[Peer, ...]:
        """Who may connect to a store: team namespaces (the ad services) and the platform layer's."""
        peers = []
        if teams:
            peers.append(Peer("teams", tuple(ports), namespace_labels={LAYER_LABEL: TEAM_LAYER}))
        if platform:
            peers.append(platform_peer(ports, PLATFORM_LAYER))
        return tuple(peers)

    def monitoring(self, ports: Sequence[int]) -> Peer:
        """Prometheus (platform layer) scrapes these metrics ports."""
        return prometheus_peer(ports)

    def object_storage_peer(self) -> tuple[Peer, ...]:
        """Egress to the in-cluster object store when backups go there (empty otherwise)."""
        if self.backup is None or not self.backup.in_cluster:
            return ()
        return (Peer(OBJECT_STORE_NAMESPACE, (OBJECT_STORE_S3_PORT,)),)

    def backup_egress_world(self) -> tuple[int, ...]:
        """Egress to external S3 (HTTPS) when backups go outside the cluster: the endpoint's port, 443 unless
        its URL names another (config/services.py check_s3_endpoint accepts https://host:port)."""
        if self.backup is None or self.backup.in_cluster:
            return ()
        return (urlsplit(self.backup.endpoint).port or 443,)

    # --- operators (on the general nodes) -------------------------------------------------------------
    def operator_replicas(self) -> int:
        """Operators are leader-elected: a second replica (production-grade profiles) only shortens fail-over."""
        return OPERATOR_HA_REPLICAS if self.ha else 1

    def operator_budget(self, release: str, namespace: str, selector: dict[str, str],
                        depends_on: Sequence[pulumi.Resource] = ()) -> list[k8s.policy.v1.PodDisruptionBudget]:
        """Keeps one operator replica through drains, for charts that ship no PodDisruptionBudget; none with a
        single replica (minAvailable 1 of 1 would block every drain of its node)."""
        if self.operator_replicas() < 2:
            return []
        return [self.disruption_budget(f"{release}-pdb", release, namespace, selector, self.labels(release),
                                       depends_on, min_available=1)]


def operator_affinity(labels: dict[str, str]) -> dict[str, object]:
    """Operator replicas on different general nodes where they can be: preferred, because a required rule
    stalls the Deployment's rolling update (its surge pod) on a pool of two nodes, and an atomic Helm
    release then rolls back."""
    return {"podAntiAffinity": pod_anti_affinity(labels, required=False)}


def store_resources(settings: Settings, placements: dict[str, Placement], store: str,
                    workload: str | None = None, configured: bool = True) -> Resources:
    """The workload's share of its store's nodes, or the store's configured cpu/memory (DataContext.resources;
    `configured` False: the share only, for a second instance the store's override does not size)."""
    given = getattr(settings, store)
    cpu, memory = (given.cpu, given.memory) if configured else (None, None)
    workload = workload or store
    res = sized(placements[store], SHARES[workload], cpu, memory, whole_cpus=workload in PINNED_CPUS)
    if cpu is None and workload in MEMORY_PER_CORE:
        fixed, per_core = MEMORY_PER_CORE[workload]
        fed = max(1, (res.memory_mib - fixed) // per_core)
        res = Resources(cpu=str(min(whole_cores(res.cpu), fed)), memory=res.memory)
    return res


def pinned_shortfall(settings: Settings, placements: dict[str, Placement], store: str) -> str | None:
    """Why a thread-per-core store's memory cannot feed its pinned CPUs (a pool too small for even one
    core), or None. DataPlane's `validate` runs this with the config validation, before any resource exists."""
    return _shortfall(settings, store, store_resources(settings, placements, store), placements[store].pools)


def pinned_resources(ctx: DataContext, store: str, workload: str | None = None, configured: bool = True) -> Resources:
    """`ctx.resources(store)` of a thread-per-core store (config/data.py PinnedStore); `validate` has refused a
    shortfall before anything was created, so this raising means a bug, not a config problem."""
    res = ctx.resources(store, workload, configured)
    shortfall = _shortfall(ctx.settings, store, res, ctx.placements[store].pools)
    if shortfall:
        raise ValueError(f"adplatform:dataPlane.{store} {shortfall}")
    return res


def _shortfall(settings: Settings, store: str, res: Resources, pools: Sequence[str]) -> str | None:
    need, rule = getattr(settings, store).memory_floor(whole_cores(res.cpu))
    if res.memory_mib >= need:
        return None
    return (f"gets cpu {res.cpu} and memory {res.memory} from its pools {list(pools)}: {rule}, "
            f"so at least {need}Mi; set dataPlane.{store}.cpu and memory")
