"""Names and shape of the ClickHouse installation: how many shards, replicas and Keeper nodes, and their sizes.

Object names follow the Altinity operator's naming patterns (pkg/model/chi/namer/patterns.go and
pkg/model/chk/namer/patterns.go at release-0.27.3), so the Services and pods the operator creates can be
named here before they exist.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from components.data.context import SHARES, DataContext
from components.data.placement import Placement, Resources, helper_share, sized

NAMESPACE = "clickhouse"
INSTALLATION = "adplatform"  # the ClickHouseInstallation (CHI)
CLUSTER = "analytics"  # its cluster: the name in ON CLUSTER and Distributed tables
KEEPER = "adplatform"  # the ClickHouseKeeperInstallation (CHK)
KEEPER_CLUSTER = "keeper"

HTTP_PORT = 8123
NATIVE_PORT = 9000
KEEPER_PORT = 2181  # ZooKeeper protocol (the operator's default zk port, KpDefaultZKPortNumber)
KEEPER_METRICS_PORT = 7000  # Keeper's own Prometheus endpoint, switched on in the CHK settings
BACKUP_API_PORT = 7171  # clickhouse-backup server: REST API and /metrics

# Labels the operator puts on every pod it creates (pkg/model/chi/tags/labeler, .../chk/tags/labeler).
SERVER_POD_LABELS = {"clickhouse.altinity.com/chi": INSTALLATION}
KEEPER_POD_LABELS = {"clickhouse-keeper.altinity.com/chk": KEEPER}

# Keeper's and the backup sidecar's sizes where the pool has no size class (their share of the node budget
# otherwise). Neither takes dataPlane.clickhouse.cpu/memory: that sizes the server only.
KEEPER_FALLBACK = Resources(cpu="1", memory="2Gi")
BACKUP_FALLBACK = Resources(cpu="250m", memory="512Mi")
WANTED_REPLICAS = 3  # per shard, and Keeper's quorum


@dataclass(frozen=True)
class Topology:
    shards: int
    replicas: int  # per shard, each on its own node
    keepers: int  # Keeper nodes: an odd count, 3 where the pool has room (see keeper_count)
    servers_per_node: int  # > 1 only when there are more servers than the pool has nodes
    server: Resources
    keeper: Resources
    backup: Resources  # the clickhouse-backup sidecar next to each server

    def hosts(self) -> list[list[str]]:
        """Per shard, the host Service of each replica (headless: it resolves to the pod)."""
        return [[f"chi-{INSTALLATION}-{CLUSTER}-{shard}-{replica}" for replica in range(self.replicas)]
                for shard in range(self.shards)]


def pod_labels(ctx: DataContext, app: str, component: str) -> dict[str, str]:
    """Our labels for pods an operator or controller creates (they are not managed by Pulumi)."""
    return {k: v for k, v in ctx.labels(app, component).items() if k != "app.kubernetes.io/managed-by"}


def keeper_service() -> str:
    return f"keeper-{KEEPER}"  # patternCRServiceName of a CHK


def cluster_service() -> str:
    return f"cluster-{INSTALLATION}-{CLUSTER}"  # patternClusterServiceName: created from our clusterServiceTemplate


def keeper_count(nodes: int) -> int:
    """One Keeper per node, at most 3, never an even number: 2 Keepers need both for a quorum, so they
    survive no loss at all and fail twice as often as 1."""
    wanted = max(1, min(WANTED_REPLICAS, nodes))
    return wanted if wanted % 2 else wanted - 1


def of(ctx: DataContext) -> Topology:
    """The installation's shape on this stack's clickhouse pool."""
    where = ctx.placements["clickhouse"]
    settings = ctx.settings.clickhouse
    replicas = where.replicas(WANTED_REPLICAS)
    per_node = math.ceil(settings.shards * replicas / where.nodes)
    return Topology(shards=settings.shards, replicas=replicas, keepers=keeper_count(where.nodes),
                    servers_per_node=per_node, server=_server(ctx, where, per_node),
                    keeper=helper_share(where, SHARES["clickhouse-keeper"], KEEPER_FALLBACK, min_cpu=1.0,
                                        min_memory_mib=1024),
                    backup=helper_share(where, SHARES["clickhouse-backup"] / per_node, BACKUP_FALLBACK))


def _server(ctx: DataContext, where: Placement, per_node: int) -> Resources:
    """The server's share of a node; split when more shards than the pool has nodes put several on one."""
    if per_node == 1:
        return ctx.resources("clickhouse")
    settings = ctx.settings.clickhouse
    return sized(where, SHARES["clickhouse"] / per_node, settings.cpu, settings.memory, whole_cpus=False)
