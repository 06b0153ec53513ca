"""ClickHouse through the Altinity operator: a ClickHouseKeeperInstallation (Keeper, 3 nodes for a
quorum) and a ClickHouseInstallation of `dataPlane.clickhouse.shards` shards with one replica per node
of the clickhouse pool (3 in production, 1 on staging's single node), backed up to S3 every night.

Namespaces: `clickhouse-operator` (the operator, watching only `clickhouse`) and `clickhouse` (the
installations, their Secrets, the backup CronJob). Modules:
- topology.py: names, counts and sizes; operator.py: CRDs, login and Helm release;
- users.py: generated passwords, referenced (never inlined) by the CHI;
- installation.py: the CHK and CHI specs; backup.py (+ create-remote.sh): sidecar and CronJob;
- monitoring.py: PodMonitors for Keeper and the backup sidecars.
"""

from __future__ import annotations

from typing import Sequence

import pulumi
import pulumi_kubernetes as k8s

from components.data.clickhouse import backup, installation, monitoring, operator, topology, users
from components.data.clickhouse.operator import EXPORTER_PORT, OPERATOR_METRICS_PORT, OPERATOR_NAMESPACE
from components.data.clickhouse.topology import (BACKUP_API_PORT, CLUSTER, HTTP_PORT, INSTALLATION, KEEPER,
                                                 KEEPER_METRICS_PORT, KEEPER_PORT, NAMESPACE, NATIVE_PORT,
                                                 SERVER_POD_LABELS, cluster_service, pod_labels)
from components.data.context import LAYER, DataContext
from components.data.endpoints import ClickHouseEndpoint
from components.layer import wait_for
from components.services.namespaces import Namespaces, NamespaceSpec, Peer

CHI_API = "clickhouse.altinity.com/v1"
CHK_API = "clickhouse-keeper.altinity.com/v1"
# The operator queries every server over HTTP (metrics, schema for replicas it adds) and, on every
# reconcile of a cluster with a ZooKeeper section, creates its root path in Keeper over the ZooKeeper
# protocol (pkg/controller/chi/worker-zk-integration.go ensureZkPath, since release-0.25.0).
OPERATOR_TO_INSTALLATIONS = (HTTP_PORT, KEEPER_PORT)
# `status.status` once a reconcile has finished (StatusCompleted, pkg/apis/clickhouse.altinity.com/v1/type_status.go
# and its clickhouse-keeper twin, read on the mirror's branch 0.26.0, its newest line (newest tag release-0.25.6);
# the chart is 0.27.3). Awaited, `pulumi up` and every consumer (the restore Job, the services reading their users)
# start only once the pods serve. Only a creation is awaited for sure: after a spec change the previous run's
# `Completed` may still stand (the operator reports no observedGeneration).
COMPLETED = "jsonpath={.status.status}=Completed"
# The operator waits up to `reconcile.statefulSet.update.timeout` (300 s, its config.yaml on branch 0.26.0; our values
# keep it) for each host's StatefulSet to be Ready, and reconciles the hosts of a shard one after another: every host in
# turn is the longest it takes before it reports Completed (plus a margin for its Services and ConfigMaps).
HOST_TIMEOUT_SECONDS = 300
RECONCILE_MARGIN_SECONDS = 300


def reconcile_timeout(hosts: int) -> int:
    """Seconds `pulumi up` waits for an installation of `hosts` pods to report Completed."""
    return hosts * HOST_TIMEOUT_SECONDS + RECONCILE_MARGIN_SECONDS


def namespaces(ctx: DataContext) -> list[NamespaceSpec]:
    backups = ctx.backup is not None
    return [
        NamespaceSpec(
            name=OPERATOR_NAMESPACE, pss="restricted", layer=LAYER,
            why="the operator and its metrics exporter run as nobody, read-only, with no capabilities",
            ingress_from=(ctx.monitoring((EXPORTER_PORT, OPERATOR_METRICS_PORT)),),
            egress_to=(Peer(NAMESPACE, OPERATOR_TO_INSTALLATIONS),)),
        NamespaceSpec(
            name=NAMESPACE, pss="restricted", layer=LAYER,
            why="ClickHouse, Keeper and clickhouse-backup run as uid 101 with no capabilities "
                "(ClickHouse only warns that it cannot mlock or renice)",
            ingress_from=(*ctx.clients((HTTP_PORT, NATIVE_PORT)),
                          ctx.monitoring((KEEPER_METRICS_PORT, *((BACKUP_API_PORT,) if backups else ()))),
                          Peer(OPERATOR_NAMESPACE, OPERATOR_TO_INSTALLATIONS)),
            egress_to=ctx.object_storage_peer(), egress_world=ctx.backup_egress_world()),
    ]


def install(ctx: DataContext, spaces: Namespaces, after: Sequence[pulumi.Resource]) -> ClickHouseEndpoint:
    t = topology.of(ctx)
    settings = ctx.settings.clickhouse
    where = ctx.placements["clickhouse"]
    location = ctx.backup.of("clickhouse") if ctx.backup is not None else None
    ns = spaces[NAMESPACE]

    operator_ready = operator.install(ctx, spaces, after)
    logins = users.install(ctx, backup=location is not None, depends_on=[ns])
    s3 = [backup.credentials(ctx, location, [ns])] if location is not None else []

    keeper_spec = installation.keeper_spec(t, where, ctx.ha, ctx.storage_class, settings.keeper_storage_size,
                                           retain=ctx.protect, labels=pod_labels(ctx, "clickhouse-keeper", "keeper"))
    keeper = _custom(ctx, "clickhouse-keeper", CHK_API, "ClickHouseKeeperInstallation", KEEPER, "keeper", keeper_spec,
                     [*after, ns, *operator_ready], hosts=t.keepers)
    sidecars = [backup.sidecar(t, location, settings.backup_retention)] if location is not None else []
    server = _custom(ctx, "clickhouse-installation", CHI_API, "ClickHouseInstallation", INSTALLATION, "server",
                     installation.installation_spec(
                         t, where, ctx.ha, ctx.storage_class, settings.storage_size, retain=ctx.protect,
                         users=users.users_section(ctx.cluster.pod_cidr, backup=location is not None,
                                                   consumers=ctx.consumers_of("clickhouse"),
                                                   canary="clickhouse" in ctx.drills),
                         interserver=users.interserver_secret(), sidecars=sidecars,
                         labels=pod_labels(ctx, "clickhouse", "server"),
                         pod_annotations={users.AUTH_DIGEST_ANNOTATION: logins.auth_digest}),
                     [*after, ns, *operator_ready, *logins.secrets, *s3, keeper], hosts=t.shards * t.replicas)
    scheduled = backup.install_schedule(ctx, t, [server]) if location is not None else []
    monitors = monitoring.install(ctx, backup=location is not None, depends_on=[*after, ns])

    return ClickHouseEndpoint(
        host=f"{cluster_service()}.{NAMESPACE}.svc", http_port=HTTP_PORT, native_port=NATIVE_PORT, cluster=CLUSTER,
        users=logins.consumers, namespace=NAMESPACE, pod_labels=dict(SERVER_POD_LABELS),
        ready=[*operator_ready, *logins.secrets, *s3, keeper, server, *scheduled, *monitors])


def _custom(ctx: DataContext, resource_name: str, api_version: str, kind: str, name: str, component: str,
            spec: dict, depends_on: Sequence[pulumi.Resource], hosts: int) -> k8s.apiextensions.CustomResource:
    """A database CR: protected in production (deleting it deletes the database's pods), awaited until the operator
    has reconciled its `hosts` pods."""
    return ctx.custom_resource(resource_name, api_version, kind, name, NAMESPACE, spec,
                               ctx.labels("clickhouse", component), depends_on, protect=True,
                               annotations=wait_for(COMPLETED, reconcile_timeout(hosts)))


__all__ = ["install", "namespaces"]
