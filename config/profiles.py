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

    @property
    def environment(self) -> str:
        """config/catalog.py ENVIRONMENTS: production-grade profiles are `production` (the runner's tag, what
        the ad services call their environment), the others `staging`."""
        return "production" if self.strict else "staging"


def _pool(name: str, role: str, count: int, size: str) -> dict[str, Any]:
    return {"name": name, "role": role, "count": count, "size": size}


_ALL_LAYERS_ON = {"clusterServices": True, "dataPlane": True, "platform": True, "adServices": True}


def _services(*, backups: bool, agent_concurrency: int, team_cpu: str, team_memory: str,
              team_memory_limit: str, issuer: str = "letsencrypt-production") -> dict[str, Any]:
    """`issuer`: the ClusterIssuer of the gateway's certificates. Without DNS-01 a stack requests one certificate
    per hostname, and every stack shares Let's Encrypt's 50 new certificates per registered domain per week
    (tools/plan/limits.py counts them): non-production profiles rehearse on the staging issuer, whose limits are
    separate, unless their stack file sets clusterServices.tls.issuer."""
    return {
        "tls": {"issuer": issuer},
        "gateway": {"hostnames": list(PLATFORM_HOSTNAMES)},
        "upgrades": {"agentConcurrency": agent_concurrency},
        "backups": {"enabled": backups},
        "secrets": {"backend": "openbao", "replicas": 3},
        "mesh": {"linkerd": False, "namespaces": ["ads"]},
        # The ad services' namespace, under a quota (GitLab CI jobs get their own: platform.gitlab.runner).
        "teams": [{"name": name, "requestsCpu": team_cpu, "requestsMemory": team_memory,
                   "limitsMemory": team_memory_limit} for name in ("ads",)],
    }


def _data(*, scylladb: str, redpanda: str, clickhouse: str, postgres: str, wal: str, dragonfly: str,
          objects: str) -> dict[str, Any]:
    """Volume sizes per store. ScyllaDB's fits the local NVMe of the pool's servers where it runs on it
    (Hetzner ccx43: 360 GB, cpx32: 160 GB; providers/hetzner_server_types.yaml), with room for the OS and
    images."""
    return {
        "scylladb": {"storageSize": scylladb},
        "redpanda": {"storageSize": redpanda},
        "clickhouse": {"storageSize": clickhouse},
        "postgres": {"storageSize": postgres, "walStorageSize": wal},
        "dragonfly": {"storageSize": dragonfly},
        "objectStorage": {"storageSize": objects},
    }


def _platform(*, heavy: bool, prometheus_storage: str, retention: str) -> dict[str, Any]:
    """`heavy`: GitLab and the data/ML stack (staging turns them off: its runner registers with production's
    GitLab, and data engineers work in production)."""
    return {
        "gitlab": {"enabled": heavy},
        "monitoring": {"retention": retention, "storageSize": prometheus_storage},
        "airflow": {"enabled": heavy},
        "spark": {"enabled": heavy},
        "jupyterhub": {"enabled": heavy},
        "mlflow": {"enabled": heavy},
        "kubeflow": {"enabled": heavy},
    }


def _ad_services(*, hot: tuple[int, int], other: tuple[int, int], hot_size: tuple[str, str, str],
                 other_size: tuple[str, str, str]) -> dict[str, Any]:
    """The ad services (config/ads.py): (minReplicas, maxReplicas) and (cpu, memory, memoryLimit) of the
    hot-path services (an ad request waits on them) and of the others. Ad serving and bidding read audience
    segments and budgets from DragonflyDB and ScyllaDB and call ML inference; they publish impressions and bids
    to Redpanda, which analytics ingestion loads into ClickHouse for reporting. Campaign management, reporting
    and audience targeting are reached through the API gateway. maxReplicas x requests, plus a rollout's surge,
    fit the team quota of the profile (config/ads.py checks it)."""
    def sized(replicas: tuple[int, int], size: tuple[str, str, str]) -> dict[str, Any]:
        return {"minReplicas": replicas[0], "maxReplicas": replicas[1], "cpu": size[0], "memory": size[1],
                "memoryLimit": size[2]}
    fast, rest = {**sized(hot, hot_size), "hotPath": True}, sized(other, other_size)
    return {"namespace": "ads", "services": {
        "ad-serving": {**fast, "host": "ads", "stores": ["scylladb", "dragonfly", "redpanda"]},
        "bidding": {**fast, "host": "rtb", "stores": ["dragonfly", "scylladb", "redpanda"]},
        "ml-inference": {**fast, "stores": ["dragonfly"], "callers": ["ad-serving", "bidding"]},
        "analytics-ingestion": {**rest, "stores": ["redpanda", "clickhouse"]},
        "campaign-management": {**rest, "stores": ["scylladb", "redpanda"], "callers": ["api-gateway"]},
        "reporting": {**rest, "stores": ["clickhouse"], "callers": ["api-gateway"]},
        "audience-targeting": {**rest, "stores": ["scylladb", "dragonfly"], "callers": ["api-gateway"]},
        "api-gateway": {**rest, "host": "api"},
    }}


_PRODUCTION_PLATFORM = _platform(heavy=True, prometheus_storage="100Gi", retention="15d")
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
                    # The platform layer (GitLab, monitoring, logs, traces, data/ML: ~20 vCPU of requests) and
                    # the ad services (7 vCPU at their minimum replicas) share these nodes: 5 always (Pulumi's),
                    # up to 5 more added by the cluster autoscaler when the ad services scale out (docs/autoscaling.md).
                    {**_pool("general", "general", 5, "dedicated-large"), "autoscaling": {"min": 5, "max": 10}},
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
            "platform": _PRODUCTION_PLATFORM,
            "adServices": _ad_services(hot=(3, 10), other=(2, 4), hot_size=("500m", "512Mi", "1Gi"),
                                       other_size=("250m", "256Mi", "512Mi")),
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
                                         team_memory_limit="24Gi", issuer="letsencrypt-staging"),
            "dataPlane": _data(scylladb="40Gi", redpanda="50Gi", clickhouse="50Gi", postgres="20Gi", wal="5Gi",
                               dragonfly="10Gi", objects="50Gi"),
            "platform": _platform(heavy=False, prometheus_storage="20Gi", retention="3d"),
            "adServices": _ad_services(hot=(1, 2), other=(1, 2), hot_size=("200m", "256Mi", "512Mi"),
                                       other_size=("100m", "128Mi", "256Mi")),
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
            "platform": _PRODUCTION_PLATFORM,
            # Five nodes and a smaller team quota: fewer replicas at peak.
            "adServices": _ad_services(hot=(3, 5), other=(2, 3), hot_size=("500m", "512Mi", "1Gi"),
                                       other_size=("250m", "256Mi", "512Mi")),
        },
    ),
}
