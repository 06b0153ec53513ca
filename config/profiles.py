"""Environment profiles: defaults in the same shape as the stack config.

A stack file only states what differs. Dicts merge key by key; `cluster.pools` merges by pool
`name` (a pool in the stack file overrides the fields it names, a new name adds a pool, and
`count: 0` removes a profile pool).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from config.catalog import PLATFORM_HOSTNAMES


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    strict: bool  # production-grade: replication minimums enforced, world-open admin CIDRs refused
    protect: bool  # servers, networks and (later) database clusters get protect=True
    defaults: dict[str, Any] = field(default_factory=dict)


def _pool(name: str, role: str, count: int, size: str) -> dict[str, Any]:
    return {"name": name, "role": role, "count": count, "size": size}


_ALL_LAYERS_ON = {"clusterServices": True, "dataPlane": True, "platform": True, "adServices": True}


def _services(*, backups: bool, agent_concurrency: int, team_cpu: str, team_memory: str,
              team_memory_limit: str) -> dict[str, Any]:
    return {
        "tls": {"issuer": "letsencrypt-production"},
        "gateway": {"hostnames": list(PLATFORM_HOSTNAMES)},
        "upgrades": {"agentConcurrency": agent_concurrency},
        "backups": {"enabled": backups},
        "secrets": {"backend": "openbao", "replicas": 3},
        "mesh": {"linkerd": False, "namespaces": ["ads"]},
        # ad services, and GitLab CI jobs: the namespaces teams deploy into, under quotas.
        "teams": [{"name": name, "requestsCpu": team_cpu, "requestsMemory": team_memory,
                   "limitsMemory": team_memory_limit} for name in ("ads", "ci")],
    }


def _data(*, scylladb: str, redpanda: str, clickhouse: str, postgres: str, wal: str, dragonfly: str,
          objects: str) -> dict[str, Any]:
    """Volume sizes per store. ScyllaDB's fits the local NVMe of the pool's servers where it runs on it
    (Hetzner ccx43: 360 GB, cx33: 80 GB), with room for the OS and images."""
    return {
        "scylladb": {"storageSize": scylladb},
        "redpanda": {"storageSize": redpanda},
        "clickhouse": {"storageSize": clickhouse},
        "postgres": {"storageSize": postgres, "walStorageSize": wal},
        "dragonfly": {"storageSize": dragonfly},
        "objectStorage": {"storageSize": objects},
    }


_PRODUCTION_DATA = _data(scylladb="250Gi", redpanda="500Gi", clickhouse="500Gi", postgres="100Gi", wal="20Gi",
                         dragonfly="50Gi", objects="500Gi")

PROFILES: dict[str, Profile] = {
    "production": Profile(
        name="production",
        description="3 dedicated control-plane servers, a dedicated pool per database, HA everywhere",
        strict=True,
        protect=True,
        defaults={
            "cluster": {
                "controlPlane": {"count": 3, "size": "dedicated-medium", "dedicated": True},
                "apiLoadBalancer": {"enabled": True, "public": False},
                "pools": [
                    _pool("general", "general", 3, "dedicated-large"),
                    _pool("scylladb", "scylladb", 3, "dedicated-xlarge"),
                    _pool("redpanda", "redpanda", 3, "dedicated-large"),
                    _pool("clickhouse", "clickhouse", 3, "dedicated-large"),
                    _pool("stateful", "stateful", 3, "dedicated-large"),
                ],
            },
            "layers": _ALL_LAYERS_ON,
            "clusterServices": _services(backups=True, agent_concurrency=1, team_cpu="32", team_memory="64Gi",
                                         team_memory_limit="96Gi"),
            "dataPlane": _PRODUCTION_DATA,
        },
    ),
    "staging": Profile(
        name="staging",
        description="production's topology shape on small shared-vCPU servers, one node per database pool",
        strict=False,
        protect=False,
        defaults={
            "cluster": {
                "controlPlane": {"count": 3, "size": "small", "dedicated": False},
                "apiLoadBalancer": {"enabled": True, "public": False},
                "pools": [
                    _pool("general", "general", 2, "medium"),
                    _pool("scylladb", "scylladb", 1, "medium"),
                    _pool("redpanda", "redpanda", 1, "medium"),
                    _pool("clickhouse", "clickhouse", 1, "medium"),
                    _pool("stateful", "stateful", 1, "medium"),
                ],
            },
            "layers": _ALL_LAYERS_ON,
            # Staging may add backups (clusterServices.backups: enabled + s3); production must have them.
            "clusterServices": _services(backups=False, agent_concurrency=2, team_cpu="8", team_memory="16Gi",
                                         team_memory_limit="24Gi"),
            "dataPlane": _data(scylladb="40Gi", redpanda="50Gi", clickhouse="50Gi", postgres="20Gi", wal="5Gi",
                               dragonfly="10Gi", objects="50Gi"),
        },
    ),
    "compact": Profile(
        name="compact",
        description="the classic 5 servers: 3 K3s servers + 2 agents, all running workloads, "
        "each database spread 3-wide across them",
        strict=True,
        protect=True,
        defaults={
            "cluster": {
                "controlPlane": {
                    "count": 3, "size": "dedicated-2xlarge", "dedicated": False, "role": "converged",
                },
                "apiLoadBalancer": {"enabled": True, "public": False},
                "pools": [_pool("workers", "converged", 2, "dedicated-2xlarge")],
            },
            "layers": _ALL_LAYERS_ON,
            "clusterServices": _services(backups=True, agent_concurrency=1, team_cpu="16", team_memory="32Gi",
                                         team_memory_limit="48Gi"),
            "dataPlane": _PRODUCTION_DATA,
        },
    ),
}
