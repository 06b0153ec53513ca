"""Where a data store's pods run: the nodes of its role, tolerating exactly those nodes' taints.

Every store runs on the pools of its role (config/catalog.py STORE_ROLES), or on the converged
nodes when the stack has no pool of that role (the compact profile). The building blocks here are
plain Kubernetes fragments; each store module puts them where its operator's CR expects them.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from typing import Any

from components.scheduling import toleration
from config.catalog import DATABASE_ROLES, SIZES, STORE_ROLES, Size
from config.quantity import memory_mib
from config.model import CONTROL_PLANE, ROLE_LABEL, Cluster, ControlPlane, Pool, StackConfig, node_location, pool_provider
from config.rules import role_pools

# What a database node keeps from its stores: the kubelet's reservations there (components/k3s/config.py
# KUBELET_DATABASE: kube- and system-reserved, 1 CPU and 2 GiB together, plus the 100Mi hard-eviction
# threshold) and the per-node agents' requests (Cilium, log shipper, node exporter). A provider's "8 GB"
# server shows the kernel about 93 % of that as GiB.
SYSTEM_RESERVED_CPU = 1.0
SYSTEM_RESERVED_MEMORY_MIB = 2048 + 100 + 768
USABLE_MIB_PER_GB = 1024 * 0.93


@dataclass(frozen=True)
class Placement:
    role: str  # the node role the pods select (a STORE_ROLES value, or "converged")
    pools: tuple[str, ...]
    nodes: int
    size: Size | None  # the smallest size class among the pools (None: a pool sets only a server type)
    taints: tuple[str, ...]  # every taint on those nodes
    shared_by: int  # roles sharing these nodes (converged nodes host every store): divides the budget
    # Nodes per configured location, in first-use order (empty: the provider picks, e.g. a cloud's zone spread).
    locations: tuple[tuple[str, int], ...] = ()
    # While the store moves to another provider's volumes (volume_pools): the nodes of its pools there, where its new
    # volumes bind. None: it is not moving (they bind on any of `nodes`).
    moving_nodes: int | None = None

    @property
    def volume_nodes(self) -> int:
        """The nodes the store's new volumes can bind on: all of its nodes, or while it moves, those it moves to."""
        return self.nodes if self.moving_nodes is None else self.moving_nodes

    @property
    def spans_locations(self) -> bool:
        """Several configured locations: replicas must spread over them (hard constraints apply only then)."""
        return len(self.locations) > 1

    @property
    def node_selector(self) -> dict[str, str]:
        return {ROLE_LABEL: self.role}

    @property
    def node_affinity(self) -> dict[str, Any]:
        """The same selection as `node_selector`, for CRs that only take an affinity."""
        return {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": ROLE_LABEL, "operator": "In", "values": [self.role]}]}]}}

    @property
    def tolerations(self) -> list[dict[str, str]]:
        return [toleration(t) for t in self.taints]

    def replicas(self, wanted: int) -> int:
        """`wanted` replicas, one per node: never more than the nodes (3 nodes -> 3, staging's 1 -> 1)."""
        return max(1, min(wanted, self.nodes))


def placement(cfg: StackConfig, role: str) -> Placement:
    pools = role_pools(cfg, role)
    if any(p.role != role for p in pools):
        # Converged nodes host every database role and the general workloads: each gets an equal part.
        return _of("converged", pools, cfg.cluster, shared_by=len(DATABASE_ROLES) + 1)
    return _of(role, pools, cfg.cluster)


def _of(role: str, pools: list[Pool | ControlPlane], cluster: Cluster, shared_by: int = 1) -> Placement:
    names = _names(pools)
    taints = tuple(dict.fromkeys(t for p in pools for t in (p.taints if isinstance(p, ControlPlane) else p.node_taints)))
    sizes = [SIZES[p.size] for p in pools if p.size]
    smallest = min(sizes, key=lambda s: (s.vcpus, s.memory_gb)) if len(sizes) == len(pools) and sizes else None
    located = Counter(node_location(p, i, cluster) for p in pools for i in range(p.count))
    locations = tuple((where, n) for where, n in located.items() if where is not None)
    return Placement(role=role, pools=names, nodes=sum(p.count for p in pools), size=smallest, taints=taints,
                     shared_by=shared_by, locations=locations)


def store_placement(cfg: StackConfig, store: str) -> Placement:
    """Where a store runs: its role's placement, with the nodes its new volumes bind on while it moves."""
    where = placement(cfg, STORE_ROLES[store])
    if cfg.data_plane.storage_provider(store) is None:
        return where
    return dataclasses.replace(where, moving_nodes=sum(p.count for p in _volume_pools(cfg, store)))


def volume_pools(cfg: StackConfig, store: str) -> tuple[str, ...]:
    """The pools whose StorageClasses the store's new volumes claim (Storage.classes_of): all of the store's, which
    share one provider's volumes (providers/hybrid.py store_storage_problems), except while a store moves between
    providers (PostgreSQL, DragonflyDB, the object store: config/data.py Movable): then those on its `storageProvider`.
    Its pods still run on all of its pools (the role's node selector), and a claim of that provider's class binds only
    where its volumes attach (WaitForFirstConsumer and the class's allowedTopologies), so each replaced instance lands
    on the new provider's nodes."""
    return _names(_volume_pools(cfg, store))


def _volume_pools(cfg: StackConfig, store: str) -> list[Pool | ControlPlane]:
    pools = role_pools(cfg, STORE_ROLES[store])
    chosen = cfg.data_plane.storage_provider(store)
    return pools if chosen is None else [p for p in pools if pool_provider(p, cfg) == chosen]


def _names(pools: list[Pool | ControlPlane]) -> tuple[str, ...]:
    return tuple(CONTROL_PLANE if isinstance(p, ControlPlane) else p.name for p in pools)


@dataclass(frozen=True)
class Resources:
    """requests == limits (Guaranteed QoS: the kubelet's static CPU manager pins whole CPUs)."""

    cpu: str
    memory: str

    def spec(self) -> dict[str, dict[str, str]]:
        both = {"cpu": self.cpu, "memory": self.memory}
        return {"requests": dict(both), "limits": dict(both)}

    @property
    def memory_mib(self) -> int:
        return memory_mib(self.memory)


def node_allocatable(size: Size) -> tuple[float, int]:
    """CPUs and MiB a database node of `size` has for pods: what no store's pod can exceed and still schedule."""
    return size.vcpus - SYSTEM_RESERVED_CPU, int(size.memory_gb * USABLE_MIB_PER_GB - SYSTEM_RESERVED_MEMORY_MIB)


def node_budget(where: Placement) -> tuple[float, int] | None:
    """CPUs and MiB of one node left for the data stores of this placement (None: size unknown)."""
    if where.size is None:
        return None
    cpu, memory = node_allocatable(where.size)
    return cpu / where.shared_by, int(memory / where.shared_by)


def sized(where: Placement, share: float, cpu: str | None = None, memory: str | None = None,
          whole_cpus: bool = True, min_cpu: float = 1.0, min_memory_mib: int = 1024) -> Resources:
    """`share` of the node budget, unless the store's config sets cpu/memory.

    `whole_cpus`: round down to whole CPUs (stores that pin CPUs: ScyllaDB, Redpanda).
    """
    budget = node_budget(where)
    if budget is None and (cpu is None or memory is None):
        raise ValueError(f"the pools {list(where.pools)} set no size class: set the store's cpu and memory")
    if budget is not None:
        budget_cpu, budget_mib = budget
        amount = max(min_cpu, budget_cpu * share)
        auto_cpu = str(int(amount)) if whole_cpus else f"{int(amount * 1000)}m"
        auto_memory = f"{max(min_memory_mib, int(budget_mib * share))}Mi"
    return Resources(cpu=cpu or auto_cpu, memory=memory or auto_memory)


def helper_share(where: Placement, share: float, fallback: Resources, min_cpu: float = 0.1,
                 min_memory_mib: int = 256) -> Resources:
    """A helper workload's share of the node budget (a sidecar, Keeper, filers), or `fallback` where the
    pools set no size class. Never the store's cpu/memory override: that sizes the store's main container,
    and a helper taking it too would double the pod's request."""
    if node_budget(where) is None:
        return fallback
    return sized(where, share, whole_cpus=False, min_cpu=min_cpu, min_memory_mib=min_memory_mib)

