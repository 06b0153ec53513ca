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
- one login per consumer (config/consumers.py), never a shared password:
  - the ad services' instance (`dragonfly` in namespace `dragonfly`, reachable from the team namespaces only)
    takes an ACL file (`aclFromSecret`: the operator mounts it and adds `--aclfile`, internal/resources/
    resources.go at v1.6.1): the `default` user is off, each ad service is a user of its own with a
    generated password (stored as its SHA-256, `#<hex>`: DragonflyDB's acl_family.cc ParseAclSetUser), reading
    and writing only its own keys `<service>:*` (and its pub/sub channels), reading (`%R~`) the keys of the
    services it names in `readsFrom`, with every command but the @admin, @dangerous and @scripting ones
    (no FLUSHALL, KEYS, CONFIG, REPLICAOF, ACL, DEBUG, nor Lua that could touch undeclared keys);
  - each platform consumer (GitLab: its sessions, job queues and cache) gets an instance of its own in
    namespace `dragonfly-<consumer>`, reachable only from that consumer's namespace, with its own password
    (`authentication.passwordFromSecret`). A separate instance rather than ACLs in the shared one: an ACL
    limits keys and commands but not memory, so an internet-facing ad service filling the cache would evict
    or refuse GitLab's sessions and Sidekiq queues; and GitLab's keys have no single prefix its ACL could be
    limited to. DragonflyDB's ACL namespaces (full isolation inside one instance) are not used: they are
    neither replicated nor snapshotted (docs/namespaces.md at v1.39.0);
- snapshots on `dataPlane.dragonfly.snapshotSchedule` to each instance's volume (`snapshot.cron` +
  `persistentVolumeClaimSpec`), one rolling file set (`--dbfilename=dump`: the timestamped default is
  never pruned and fills the volume, dragonfly-operator issue #566);
- the operator's PodDisruptionBudget (created with more than one instance), set to keep all but one:
  with 3 instances the primary and a replica stay through a drain;
- metrics: a PodMonitor on the admin port (the operator's own monitoring/podMonitor.yaml), because the
  operator turns HTTP off on the client port (`--primary_port_http_enabled=false`).

Restore (`dataPlane.dragonfly.restore.backup`): every instance's snapshot volumes live in the Velero backups (its
namespace is not among LIVE_DATABASE_NAMESPACES: a snapshot file at rest is a consistent copy). A Velero Restore of the
instances' volume claims, volumes and pods (the pods carry the file-system backup Velero replays into the
volumes) runs before the `Dragonfly` resource exists; the operator's StatefulSet then adopts the restored pods
(same names and labels) and each instance loads `dump` at start.

The admin port takes no password (the operator passes `--admin_nopass` and needs it) and skips ACL checks
(privileged connections, server/conn_context.cc): only the operator, the instances themselves and Prometheus
may reach it (namespace policies). Replication runs over it, so `default` being off does not stop it.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
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
from config.consumers import ADS, PLATFORM, Consumer
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
PASSWORD_SECRET = "dragonfly-auth"  # a platform consumer's instance: its password (passwordFromSecret)
ACL_SECRET = "dragonfly-acl"  # the ad services' instance: its ACL file (aclFromSecret)
ACL_KEY = "dragonfly.acl"
ACL_DIGEST_ANNOTATION = "adplatform.io/acl-digest"
# Commands no ad service needs: server administration, FLUSHALL/KEYS/DEBUG..., and Lua (a script's keys
# are whatever it declares).
DENIED_CATEGORIES = ("admin", "dangerous", "scripting")
PLATFORM_WORKLOAD = "dragonfly-platform"  # context.py SHARES: a platform consumer's instance
# Where each platform consumer runs (its chart's namespace in the catalog): its instance admits only that.
CONSUMER_NAMESPACES = {"gitlab": charts.GITLAB.namespace}
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


@dataclass(frozen=True)
class Instance:
    """One Dragonfly resource: the ad services' shared one (ACL users) or a platform consumer's own."""

    namespace: str
    resource: str  # prefix of its Pulumi resource names
    consumers: tuple[Consumer, ...]
    acl: bool  # users per consumer from an ACL file; else the one consumer's password
    workload: str  # context.py SHARES key
    clients: tuple[Peer, ...]


def instances(ctx: DataContext) -> list[Instance]:
    """The ad services' instance (always: it keeps its data when no service uses it for a while), then one per
    platform consumer."""
    shared = Instance(NAMESPACE, NAME, ctx.consumers_of("dragonfly", ADS), acl=True, workload="dragonfly",
                      clients=ctx.clients((PORT,), platform=False))
    return [shared, *(Instance(f"{NAME}-{c.name}", f"{NAME}-{c.name}", (c,), acl=False, workload=PLATFORM_WORKLOAD,
                               clients=(Peer(consumer_namespace(c.name), (PORT,)),))
                      for c in ctx.consumers_of("dragonfly", PLATFORM))]


def consumer_namespace(consumer: str) -> str:
    if consumer not in CONSUMER_NAMESPACES:
        raise ValueError(f"platform.{consumer} uses DragonflyDB, but components/data/dragonfly.py does not know its "
                         "namespace (CONSUMER_NAMESPACES)")
    return CONSUMER_NAMESPACES[consumer]


def namespaces(ctx: DataContext) -> list[NamespaceSpec]:
    found = instances(ctx)
    return [
        *(NamespaceSpec(
            name=i.namespace, pss="restricted", layer=LAYER,
            why="DragonflyDB runs as its image's non-root user with no capabilities and the RuntimeDefault "
                "seccomp profile",
            ingress_from=(*i.clients, ctx.monitoring((ADMIN_PORT,)),
                          Peer(OPERATOR_NAMESPACE, (ADMIN_PORT,), pod_labels=OPERATOR_LABELS))) for i in found),
        NamespaceSpec(
            name=OPERATOR_NAMESPACE, pss="restricted", layer=LAYER,
            why="the operator and its kube-rbac-proxy run non-root, no capabilities, RuntimeDefault seccomp",
            egress_to=tuple(Peer(i.namespace, (ADMIN_PORT,), pod_labels=POD_LABELS) for i in found)),
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

def image() -> str:
    return f"docker.dragonflydb.io/dragonflydb/dragonfly:{charts.DRAGONFLY_VERSION}"


def dragonfly_spec(ctx: DataContext, res: Resources, acl: bool = True) -> dict[str, Any]:
    settings = ctx.settings.dragonfly
    where = ctx.placements["dragonfly"]
    replicas = where.replicas(3)
    spec: dict[str, Any] = {
        "replicas": replicas,
        "image": image(),
        "imagePullPolicy": "IfNotPresent",
        "args": args(res),
        "resources": res.spec(),
        "nodeSelector": where.node_selector,
        "tolerations": where.tolerations,
        "affinity": {"podAntiAffinity": pod_anti_affinity(POD_LABELS, required=ctx.ha)},
        **auth(acl),
        "snapshot": {
            "cron": settings.snapshot_schedule,
            "persistentVolumeClaimSpec": {
                # Its pools' class; while DragonflyDB moves between providers, `dataPlane.dragonfly.storageProvider`'s
                # (placement.volume_pools): the operator puts it only into a StatefulSet it creates (docs/providers.md
                # "DragonflyDB to another provider").
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


def auth(acl: bool) -> dict[str, Any]:
    """The ACL file (users per consumer), or the one consumer's password."""
    if acl:
        return {"aclFromSecret": {"name": ACL_SECRET, "key": ACL_KEY}}
    return {"authentication": {"passwordFromSecret": {"name": PASSWORD_SECRET, "key": "password"}}}


def read_service(ctx: DataContext, after: Sequence[pulumi.Resource], i: Instance) -> k8s.core.v1.Service:
    return k8s.core.v1.Service(
        f"{i.resource}-read",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=READ_SERVICE, namespace=i.namespace,
                                            labels=ctx.labels("dragonfly", "read")),
        spec=k8s.core.v1.ServiceSpecArgs(
            selector=POD_LABELS,
            ports=[k8s.core.v1.ServicePortArgs(name="redis", port=PORT, target_port=PORT, protocol="TCP")]),
        opts=ctx.opts(after))


def pod_monitor(ctx: DataContext, after: Sequence[pulumi.Resource], i: Instance) -> k8s.apiextensions.CustomResource:
    return ctx.custom_resource(
        f"{i.resource}-metrics", "monitoring.coreos.com/v1", "PodMonitor", NAME, i.namespace,
        {"selector": {"matchLabels": POD_LABELS},
         "podTargetLabels": ["role"],  # primary or replica, on every series
         "podMetricsEndpoints": [{"port": "admin", "path": "/metrics", "interval": SCRAPE_INTERVAL}]},
        ctx.labels("dragonfly", "metrics"), after)


# --- users ----------------------------------------------------------------------------------------------

def key_prefix(consumer: str) -> str:
    """The keys an ad service owns: its ACL user reads and writes only these (config names have no glob
    characters: a-z, 0-9 and '-')."""
    return f"{consumer}:"


def user_secret(consumer: str) -> str:
    """The Secret in the instance's namespace with a consumer's own login (it copies it)."""
    return f"{NAME}-user-{consumer}"


def acl_line(c: Consumer, password_sha256: str) -> str:
    """One user of the ACL file (Redis' aclfile grammar, as DragonflyDB parses it)."""
    reads = " ".join(f"%R~{key_prefix(other)}*" for other in c.reads)
    return " ".join(filter(None, [
        f"user {c.name} on #{password_sha256} resetkeys ~{key_prefix(c.name)}*", reads,
        f"resetchannels &{key_prefix(c.name)}* +@all", *(f"-@{cat}" for cat in DENIED_CATEGORIES)]))


# The restore drills' canary writer (components/data/drills.py): SET on its one key, nothing else, not even GET.
CANARY_USER = "drill-canary"
CANARY_KEY = f"{CANARY_USER}:written-at"
CANARY_SECRET = f"{NAME}-{CANARY_USER}"


def canary_acl_line(password_sha256: str) -> str:
    return f"user {CANARY_USER} on #{password_sha256} resetkeys ~{CANARY_KEY} resetchannels -@all +set"


def acl_file(users: dict[Consumer, str], canary: str | None = None) -> str:
    """`default` off (no login without a user name); then each consumer with its password's SHA-256; then the drills'
    canary writer, when the instance is drilled."""
    lines = ["user default off resetpass resetkeys resetchannels -@all",
             *(acl_line(c, hashlib.sha256(pw.encode()).hexdigest()) for c, pw in users.items()),
             *([canary_acl_line(hashlib.sha256(canary.encode()).hexdigest())] if canary is not None else [])]
    return "\n".join(lines) + "\n"


def _logins(ctx: DataContext, i: Instance, after: Sequence[pulumi.Resource]
            ) -> tuple[dict[str, Credentials], list[k8s.core.v1.Secret], pulumi.Output[str] | None]:
    """Each consumer's own generated password, as a Secret in the instance's namespace (consumers copy theirs),
    and what the instance reads: the ACL file (with a digest of it), or the one consumer's password."""
    labels = ctx.labels("dragonfly", "credentials")
    passwords = {c: ctx.password(f"{NAME}-{c.name}-password").result for c in i.consumers}
    users, secrets = {}, []
    for c, password in passwords.items():
        users[c.name], secret = ctx.credentials(
            f"{i.resource}-user-{c.name}", user_secret(c.name), i.namespace,
            {"username": c.name if i.acl else "default", "password": password}, after, labels=labels)
        secrets.append(secret)
    if i.acl:
        names = list(passwords)
        canary = _canary_password(ctx, i, after)
        text = pulumi.Output.all(canary, *passwords.values()).apply(
            lambda pws: acl_file(dict(zip(names, pws[1:])), pws[0]))
        secrets.append(ctx.credentials(f"{i.resource}-acl", ACL_SECRET, i.namespace, {ACL_KEY: text}, after,
                                       labels=labels)[1])
        # Published: a SHA-256 of a file of SHA-256s of random passwords says nothing about them.
        return users, secrets, pulumi.Output.unsecret(text.apply(lambda t: hashlib.sha256(t.encode()).hexdigest()))
    [password] = passwords.values()
    secrets.append(ctx.credentials(f"{i.resource}-auth", PASSWORD_SECRET, i.namespace, {"password": password},
                                   after, labels=labels)[1])
    return users, secrets, None


def _canary_password(ctx: DataContext, i: Instance, after: Sequence[pulumi.Resource]) -> pulumi.Output[str | None]:
    """The drills' canary writer's password (Secret CANARY_SECRET), in the ad services' instance while it is drilled."""
    if i.namespace != NAMESPACE or "dragonfly" not in ctx.drills:
        return pulumi.Output.from_input(None)
    password = ctx.password(f"{NAME}-{CANARY_USER}-password").result
    ctx.credentials(f"{i.resource}-{CANARY_USER}", CANARY_SECRET, i.namespace,
                    {"username": CANARY_USER, "password": password}, after,
                    labels=ctx.labels("restore-drill", "canary"))
    return password


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
    # The operator waits for `ctx.operator_after` only (NEEDS in components/data/__init__.py): it installs alongside
    # cert-manager; the instances (volumes, PodMonitor) wait for `after`.
    operator = release(OPERATOR_RELEASE, charts.DRAGONFLY_OPERATOR, operator_values(ctx), ctx.opts(ctx.operator_after),
                       create_namespace=False)
    # The chart ships no PodDisruptionBudget (charts/dragonfly-operator/templates at v1.6.1).
    ready = [operator, *ctx.operator_budget(OPERATOR_RELEASE, OPERATOR_NAMESPACE, OPERATOR_LABELS,
                                            ctx.operator_after)]
    found = instances(ctx)
    restored = restore(ctx, [i.namespace for i in found], after)
    ready += restored
    shared, *own = [install_instance(ctx, i, operator, [*after, *restored]) for i in found]
    ready += [r for e in (shared, *own) for r in e.ready]
    dedicated = {i.consumers[0].name: e for i, e in zip(found[1:], own)}
    return dataclasses.replace(shared, dedicated=dedicated, ready=ready)


def install_instance(ctx: DataContext, i: Instance, operator: pulumi.Resource,
                     after: Sequence[pulumi.Resource]) -> DragonflyEndpoint:
    """`after` includes the Velero Restore of its snapshot volume, when one is configured."""
    res = pinned_resources(ctx, "dragonfly", i.workload, configured=i.acl)  # refused before anything is created
    users, secrets, acl_digest = _logins(ctx, i, after)
    spec = dragonfly_spec(ctx, res, i.acl)
    if acl_digest is not None:
        # DragonflyDB reads the ACL file at start only: a changed file (a service added, a password rotated)
        # rolls the instances, which the operator does replicas first, then a fail-over.
        spec["podMetadata"] = {"annotations": {ACL_DIGEST_ANNOTATION: acl_digest}}
    # Consumers wait until the operator has the primary and its replicas in place (internal/controller/util.go).
    instance = ctx.custom_resource(
        i.resource, "dragonflydb.io/v1alpha1", "Dragonfly", NAME, i.namespace, spec,
        ctx.labels("dragonfly", "cache"), [*after, operator, *secrets], protect=True,
        annotations=wait_for("jsonpath={.status.phase}=Ready", READY_TIMEOUT_SECONDS))
    ready = [*secrets, instance, read_service(ctx, after, i), pod_monitor(ctx, after, i)]
    return endpoint(i.namespace, users, ready)


def restore(ctx: DataContext, namespaces: Sequence[str], after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    """The Velero Restore of the instances' snapshot volumes (dataPlane.dragonfly.restore), waited for until it
    completes."""
    settings = ctx.settings.dragonfly.restore
    if settings is None:
        return []
    spec = velero.velero_restore_spec(settings.backup, list(namespaces), resources=RESTORED_KINDS)
    # Named after the backup, as the cluster restore: a new backup name is a new restore.
    return [ctx.custom_resource(
        "dragonfly-restore", "velero.io/v1", "Restore", f"dragonfly-{settings.backup}"[:63].rstrip("-."),
        velero.NAMESPACE, spec, ctx.labels("dragonfly", "restore"), [*after, *ctx.velero],
        annotations=wait_for("jsonpath={.status.phase}=Completed", RESTORE_TIMEOUT_SECONDS))]


def endpoint(namespace: str, users: dict[str, Credentials], ready: Sequence[pulumi.Resource]) -> DragonflyEndpoint:
    return DragonflyEndpoint(
        host=f"{NAME}.{namespace}.svc.{CLUSTER_DOMAIN}",
        read_host=f"{READ_SERVICE}.{namespace}.svc.{CLUSTER_DOMAIN}",
        port=PORT,
        users=users,
        namespace=namespace,
        pod_labels=dict(POD_LABELS),
        ready=ready,
    )


__all__ = ["install", "namespaces"]
