"""DragonflyDB: the dragonfly-operator and one `Dragonfly` (dragonflydb.io/v1alpha1): a primary and replicas.

The operator (dragonflydb/dragonfly-operator tag v1.6.1) runs the instances as a StatefulSet, picks the
primary, points the others at it (REPLICAOF over the admin port 9999) and fails over when the primary's
pod goes; its Service `<name>` always selects the current primary (internal/resources/resources.go).
What this module sets:

- instances: one per node of the stateful pool, at most 3 (a primary and two replicas; staging: 1),
  anti-affinity across nodes, exactly the pool's taints;
- resources requests == limits with whole CPUs; `--proactor_threads` = the CPUs and `--maxmemory` = 80% of
  the memory (DragonflyDB's own default share when it sizes itself), so the kernel never OOM-kills
  what DragonflyDB believes it may use;
- password auth (`authentication.passwordFromSecret`, a generated password);
- snapshots on `dataPlane.dragonfly.snapshotSchedule` to each instance's volume (`snapshot.cron` +
  `persistentVolumeClaimSpec`), one rolling file set (`--dbfilename=dump`: the timestamped default is
  never pruned and fills the volume, dragonfly-operator issue #566);
- the operator's PodDisruptionBudget (created with more than one instance), set to keep all but one:
  with 3 instances the primary and a replica stay through a drain;
- metrics: a PodMonitor on the admin port (the operator's own monitoring/podMonitor.yaml), because the
  operator turns HTTP off on the client port (`--primary_port_http_enabled=false`).

Restore (`dataPlane.dragonfly.restore.backup`): the snapshot volumes live in the Velero backups (the namespace is
not among LIVE_DATABASE_NAMESPACES: a snapshot file at rest is a consistent copy). A Velero Restore of the
instances' volume claims, volumes and pods (the pods carry the file-system backup Velero replays into the
volumes) runs before the `Dragonfly` resource exists; the operator's StatefulSet then adopts the restored pods
(same names and labels) and each instance loads `dump` at start.

The admin port takes no password (the operator passes `--admin_nopass` and needs it): only the
operator, the instances themselves and Prometheus may reach it (namespace policies).
"""

from __future__ import annotations

from typing import Any, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components import charts
from components.data.context import LAYER, DataContext, operator_affinity, pinned_resources, wait_for
from components.data.endpoints import Credentials, DragonflyEndpoint
from components.data.placement import Resources
from components.helm import release
from components.scheduling import pod_anti_affinity
from components.services import backups as velero
from components.services.namespaces import (RESTRICTED_CONTAINER_SECURITY, RESTRICTED_POD_SECURITY, Namespaces,
                                           NamespaceSpec, Peer)
from config.data import DRAGONFLY_MAXMEMORY_FRACTION
from config.quantity import whole_cores

NAMESPACE = "dragonfly"
OPERATOR_NAMESPACE = charts.DRAGONFLY_OPERATOR.namespace
OPERATOR_RELEASE = "dragonfly-operator"
NAME = "dragonfly"  # the Dragonfly resource: also its StatefulSet, PDB and primary Service
READ_SERVICE = f"{NAME}-read"  # ours: every instance, for reads that may lag the primary
CLUSTER_DOMAIN = "cluster.local"
PORT = 6379  # Redis protocol
ADMIN_PORT = 9999  # replication, the operator's commands, /metrics; no password
PASSWORD_SECRET = "dragonfly-auth"
SNAPSHOT_FILE = "dump"
# The labels the operator puts on every instance pod (and selects them by); the primary also carries role=master.
POD_LABELS = {"app": NAME, "app.kubernetes.io/name": "dragonfly", "app.kubernetes.io/part-of": "dragonfly"}
OPERATOR_LABELS = {"app.kubernetes.io/name": "dragonfly-operator", "app.kubernetes.io/instance": OPERATOR_RELEASE}
# The image runs as `dfly` (uid/gid 999; the operator's default fsGroup is 999, resources.go dflyUserGroup).
DFLY_UID = 999
OPERATOR_RESOURCES = {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}
RBAC_PROXY_RESOURCES = {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}
SCRAPE_INTERVAL = "30s"
READY_TIMEOUT_SECONDS = 900
RESTORE_TIMEOUT_SECONDS = 3600
# What a restore brings back: the volumes and the pods whose file-system backups fill them (Velero restores volume
# contents through the pod that mounted them).
RESTORED_KINDS = ("persistentvolumeclaims", "persistentvolumes", "pods")


def namespaces(ctx: DataContext) -> list[NamespaceSpec]:
    return [
        NamespaceSpec(
            name=NAMESPACE, pss="restricted", layer=LAYER,
            why="DragonflyDB runs as its image's non-root user with no capabilities and the RuntimeDefault "
                "seccomp profile",
            ingress_from=(*ctx.clients((PORT,)), ctx.monitoring((ADMIN_PORT,)),
                          Peer(OPERATOR_NAMESPACE, (ADMIN_PORT,), pod_labels=OPERATOR_LABELS))),
        NamespaceSpec(
            name=OPERATOR_NAMESPACE, pss="restricted", layer=LAYER,
            why="the operator and its kube-rbac-proxy run non-root, no capabilities, RuntimeDefault seccomp",
            egress_to=(Peer(NAMESPACE, (ADMIN_PORT,), pod_labels=POD_LABELS),)),
    ]


# --- sizing ---------------------------------------------------------------------------------------------

def maxmemory_bytes(res: Resources) -> int:
    return int(res.memory_mib * DRAGONFLY_MAXMEMORY_FRACTION) * 1024 * 1024


def args(res: Resources) -> list[str]:
    """Appended to the operator's defaults (--admin_port=9999, --admin_nopass, ...) and --dir/--snapshot_cron."""
    return [
        # One thread per pinned CPU: left alone, DragonflyDB counts the node's cores and asks 256Mi for each.
        f"--proactor_threads={whole_cores(res.cpu)}",
        f"--maxmemory={maxmemory_bytes(res)}",  # bytes: no unit ambiguity
        f"--dbfilename={SNAPSHOT_FILE}",
    ]


# --- the instances ----------------------------------------------------------------------------------------

def dragonfly_spec(ctx: DataContext, res: Resources) -> dict[str, Any]:
    settings = ctx.settings.dragonfly
    where = ctx.placements["dragonfly"]
    replicas = where.replicas(3)
    spec: dict[str, Any] = {
        "replicas": replicas,
        "image": f"docker.dragonflydb.io/dragonflydb/dragonfly:{charts.DRAGONFLY_VERSION}",
        "imagePullPolicy": "IfNotPresent",
        "args": args(res),
        "resources": res.spec(),
        "nodeSelector": where.node_selector,
        "tolerations": where.tolerations,
        "affinity": {"podAntiAffinity": pod_anti_affinity(POD_LABELS, required=ctx.ha)},
        "authentication": {"passwordFromSecret": {"name": PASSWORD_SECRET, "key": "password"}},
        "snapshot": {
            "cron": settings.snapshot_schedule,
            "persistentVolumeClaimSpec": {
                "accessModes": ["ReadWriteOnce"], "storageClassName": ctx.storage_class,
                "resources": {"requests": {"storage": settings.storage_size}}},
        },
        "podSecurityContext": {**RESTRICTED_POD_SECURITY, "runAsUser": DFLY_UID, "runAsGroup": DFLY_UID,
                               "fsGroup": DFLY_UID, "fsGroupChangePolicy": "OnRootMismatch"},
        "containerSecurityContext": RESTRICTED_CONTAINER_SECURITY,
        # Our namespace policies are the one place that says who reaches the instances.
        "networkPolicyEnabled": False,
    }
    if replicas > 1:
        # The operator's PDB (rendered only with more than one instance; default maxUnavailable 1), stated.
        spec["pdb"] = {"minAvailable": replicas - 1}
        # A replica counts as ready only once it has synced from the primary: the PDB then never lets a
        # drain take the last in-sync copy (the operator patches the condition, resources.go).
        spec["enableReplicationReadinessGate"] = True
    return spec


def read_service(ctx: DataContext, after: Sequence[pulumi.Resource]) -> k8s.core.v1.Service:
    return k8s.core.v1.Service(
        "dragonfly-read",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=READ_SERVICE, namespace=NAMESPACE,
                                            labels=ctx.labels("dragonfly", "read")),
        spec=k8s.core.v1.ServiceSpecArgs(
            selector=POD_LABELS,
            ports=[k8s.core.v1.ServicePortArgs(name="redis", port=PORT, target_port=PORT, protocol="TCP")]),
        opts=ctx.opts(after))


def pod_monitor(ctx: DataContext, after: Sequence[pulumi.Resource]) -> k8s.apiextensions.CustomResource:
    return ctx.custom_resource(
        "dragonfly-metrics", "monitoring.coreos.com/v1", "PodMonitor", NAME, NAMESPACE,
        {"selector": {"matchLabels": POD_LABELS},
         "podTargetLabels": ["role"],  # primary or replica, on every series
         "podMetricsEndpoints": [{"port": "admin", "path": "/metrics", "interval": SCRAPE_INTERVAL}]},
        ctx.labels("dragonfly", "metrics"), after)


# --- the operator ---------------------------------------------------------------------------------------

def operator_values(ctx: DataContext) -> dict[str, Any]:
    return {
        "replicaCount": ctx.operator_replicas(),  # leader election (--leader-elect in the chart's Deployment)
        "crds": {"install": True, "keep": True},  # deleting the CRD would delete every Dragonfly
        "manager": {
            "image": {"tag": charts.DRAGONFLY_OPERATOR.version},
            "resources": OPERATOR_RESOURCES,
            "securityContext": RESTRICTED_CONTAINER_SECURITY,
            "affinity": operator_affinity(OPERATOR_LABELS),
        },
        "rbacProxy": {"resources": RBAC_PROXY_RESOURCES, "securityContext": RESTRICTED_CONTAINER_SECURITY},
        "podSecurityContext": RESTRICTED_POD_SECURITY,
    }


# --- install --------------------------------------------------------------------------------------------

def install(ctx: DataContext, spaces: Namespaces, after: Sequence[pulumi.Resource]) -> DragonflyEndpoint:
    res = pinned_resources(ctx, "dragonfly")  # refused before anything is created
    password = ctx.password("dragonfly-password")
    creds, secret = ctx.credentials("dragonfly-auth", PASSWORD_SECRET, NAMESPACE, {"password": password.result},
                                    after, labels=ctx.labels("dragonfly", "credentials"))
    operator = release(OPERATOR_RELEASE, charts.DRAGONFLY_OPERATOR, operator_values(ctx), ctx.opts(after),
                       create_namespace=False)
    # The chart ships no PodDisruptionBudget (charts/dragonfly-operator/templates at v1.6.1).
    ready: list[pulumi.Resource] = [secret, operator,
                                    *ctx.operator_budget(OPERATOR_RELEASE, OPERATOR_NAMESPACE, OPERATOR_LABELS, after)]
    restored = restore(ctx, after)
    ready += restored
    # Consumers wait until the operator has the primary and its replicas in place (internal/controller/util.go).
    instances = ctx.custom_resource(
        "dragonfly", "dragonflydb.io/v1alpha1", "Dragonfly", NAME, NAMESPACE, dragonfly_spec(ctx, res),
        ctx.labels("dragonfly", "cache"), [*after, operator, secret, *restored], protect=True,
        annotations=wait_for("jsonpath={.status.phase}=Ready", READY_TIMEOUT_SECONDS))
    ready += [instances, read_service(ctx, after), pod_monitor(ctx, after)]
    return endpoint(creds, ready)


def restore(ctx: DataContext, after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    """The Velero Restore of the snapshot volumes (dataPlane.dragonfly.restore), waited for until it completes."""
    settings = ctx.settings.dragonfly.restore
    if settings is None:
        return []
    spec = velero.velero_restore_spec(settings.backup, [NAMESPACE], resources=RESTORED_KINDS)
    # Named after the backup, as the cluster restore: a new backup name is a new restore.
    return [ctx.custom_resource(
        "dragonfly-restore", "velero.io/v1", "Restore", f"dragonfly-{settings.backup}"[:63].rstrip("-."),
        velero.NAMESPACE, spec, ctx.labels("dragonfly", "restore"), [*after, *ctx.velero],
        annotations=wait_for("jsonpath={.status.phase}=Completed", RESTORE_TIMEOUT_SECONDS))]


def endpoint(creds: Credentials, ready: Sequence[pulumi.Resource]) -> DragonflyEndpoint:
    return DragonflyEndpoint(
        host=f"{NAME}.{NAMESPACE}.svc.{CLUSTER_DOMAIN}",
        read_host=f"{READ_SERVICE}.{NAMESPACE}.svc.{CLUSTER_DOMAIN}",
        port=PORT,
        credentials=creds,
        namespace=NAMESPACE,
        pod_labels=dict(POD_LABELS),
        ready=ready,
    )


__all__ = ["install", "namespaces"]
