"""Object storage: SeaweedFS in the cluster, or the provider's own S3 (`dataPlane.objectStorage.backend`).

SeaweedFS (chart `seaweedfs`, components/charts.py) runs on the nodes of the stateful role:

- masters: a raft group of 3 (1 on staging's single node), raft log and snapshots on a volume each;
- volume servers: one per node, each on one volume of `storageSize`; with two or more of them every
  file is written twice on distinct servers (replication `001`), so distinct nodes (one server per node);
- filers: the namespace (paths, buckets) in an embedded leveldb on a volume per filer. Filers replay each
  other's metadata changes (SeaweedFS wiki "Filer Store Replication"), so every filer holds all of it and
  none needs an external database: a filer store in PostgreSQL would be a cycle, because PostgreSQL backs
  up into this store in staging;
- the S3 API: embedded in every filer (a write lands in the local filer's store). Peer filers catch up
  asynchronously, so clients reach them through our Service `s3` with ClientIP session affinity: a
  client keeps talking to one filer and always reads its own writes.

S3 authentication is on, with one identity per consumer (config/data.py BUCKET_OWNERS: GitLab, Loki, Tempo,
Airflow, MLflow, Kubeflow Pipelines, each store's backups) whose keys are generated here (pulumi_random) and
whose actions name only its own buckets (`Read:<bucket>`, `Write:<bucket>`, ...: SeaweedFS's legacy identity
actions, weed/s3api auth_credentials.go CanDo at 4.44). No identity is an admin: Kubeflow user code cannot
touch GitLab's registry, nor MLflow's artifacts. Buckets for every purpose are created by the chart's
post-install/post-upgrade hook (`weed shell`, no S3 key), which creates only the missing ones (idempotent).

Every pod runs under Pod Security `restricted`: as the image's non-root `seaweed` user, logs to stderr
(the chart's default hostPath logs are off). The chart's volume resize hook is off because its Job runs
without a security context; growing `storageSize` later needs the manual steps in docs/data-plane.md.

Fewer volume servers (the pools' node count lowered): the release's update first empties each server it removes, one at
a time, highest ordinal first (objectstore_shrink.py: a `before_update` hook running `weed shell`
volumeServer.evacuate), or fails and keeps them all; the StatefulSet (`podManagementPolicy: Parallel`) would
otherwise delete them at once, a file's two copies possibly with them.

Moving to another provider's volumes (`dataPlane.objectStorage.storageProvider`, config/data.py Movable): masters,
volume servers and filers all claim that provider's class (placement.volume_pools); each is then replaced one at a time
by the steps in docs/providers.md ("The object store to another provider"): a volume server after `weed shell`
evacuated its volumes to the others, a filer that then copies the whole namespace from a peer, a master whose raft
state the chart's masters discard at every start anyway (`resumeState` off).

With `backend: external` nothing runs here: the endpoint names the provider's endpoint, region and the
buckets `<bucketPrefix>-<purpose>` (which must exist), with the stack secrets as keys: one pair for every
consumer there (a shared credential, documented in docs/security.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components import charts
from components.digest import plain_marker
from components.data.context import LAYER, OBJECT_STORE_NAMESPACE, OBJECT_STORE_S3_PORT, SHARES, DataContext
from components.data.endpoints import ObjectStoreEndpoint
from components.data.objectstore_shrink import empty_before_departure, evacuation_hooks, exec_role
from components.data.placement import Placement, Resources, helper_share
from components.helm import release
from components.scheduling import pod_anti_affinity
from components.services.namespaces import (LAYER_LABEL, RESTRICTED_CONTAINER_SECURITY, RESTRICTED_POD_SECURITY,
                                           Namespaces, NamespaceSpec, Peer)
from config import StackSecrets
from config.data import BUCKET_OWNERS, BUCKET_PURPOSES, ObjectStorage
from config.load import S3Keys

NAMESPACE = OBJECT_STORE_NAMESPACE
RELEASE = "seaweedfs"  # contains the chart name, so objects are named seaweedfs-<component>
S3_PORT = OBJECT_STORE_S3_PORT
S3_SERVICE = "s3"  # ours: ClientIP session affinity (see the module docstring)
METRICS_PORT = 9327  # every component's -metricsPort (chart values.yaml)
REGION = "us-east-1"  # SeaweedFS ignores the region; S3 clients need one to sign requests
CONFIG_SECRET = "seaweedfs-s3-config"
CONFIG_KEY = "seaweedfs_s3_config"  # the file the chart mounts under /etc/sw and passes as -s3.config
# On the filer pods: a digest of the identities file. The filers read it once, at start (auth_credentials.go at 4.44,
# no watch), and the chart's own checksum/s3config is a Helm `lookup`, re-evaluated only when the release upgrades:
# a replaced consumer key alone would leave the filers on the old one. Ours changes the values, so the release
# upgrades and the filers roll.
IDENTITIES_ANNOTATION = "adplatform/s3-identities-sha256"
# What a consumer may do in its own buckets (SeaweedFS s3_constants and s3api_server.go at 4.44: Write covers put,
# delete and multipart uploads, and also the PUTs of its bucket's lifecycle, versioning, CORS and object-lock
# settings; Read covers get, head and bucket location); never Admin, DeleteBucket or the ACL/policy actions.
BUCKET_ACTIONS = ("Read", "Write", "List", "Tagging")
IMAGE = {"registry": "docker.io", "repository": "chrislusf/seaweedfs", "tag": charts.SEAWEEDFS_VERSION}
SEAWEED_UID = 1000  # the image's `seaweed` user (seaweedfs tag 4.44, docker/Dockerfile.go_build)
MASTER_STORAGE = "10Gi"  # raft log and snapshots are small; 10 GB is the smallest Hetzner volume
FILER_STORAGE = "20Gi"  # the metadata of every file (a few hundred bytes each)
HOOK_RESOURCES = {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}
COMPONENTS = ("master", "volume", "filer")


@dataclass(frozen=True)
class Shape:
    masters: int  # raft members: odd
    volumes: int  # volume servers: one per node
    filers: int
    replication: str  # SeaweedFS XYZ placement: 001 = one extra copy on another server of the same rack


def shape(placement: Placement) -> Shape:
    masters = placement.replicas(3)
    if masters % 2 == 0:
        masters -= 1  # a raft group of 2 tolerates no more failures than 1 and needs both to elect
    # One volume server per node its volume binds on: while the store moves to another provider's volumes, the
    # nodes there, so that each old server, emptied and replaced with a claim of the new class, has a free node
    # to land on (one per node), and the StatefulSet keeps its size when the old pools go (a scale-down would
    # delete several servers at once, each with its copies: docs/providers.md "The object store to another provider").
    volumes = placement.volume_nodes
    return Shape(masters=masters, volumes=volumes, filers=placement.replicas(3),
                 replication="001" if volumes >= 2 else "000")


def labels(component: str) -> dict[str, str]:
    """The chart's pod selector labels of a component (templates/*/…-statefulset.yaml)."""
    return {"app.kubernetes.io/name": "seaweedfs", "app.kubernetes.io/instance": RELEASE,
            "app.kubernetes.io/component": component}


# --- endpoint ---------------------------------------------------------------------------------------------
def address(settings: ObjectStorage) -> tuple[str, str, dict[str, str]]:
    """The S3 URL, the region to sign with and each purpose's bucket name (config/data.py BUCKET_PURPOSES), from
    the config alone (make verify reads them too, tools/verify/stores.py)."""
    if settings.backend == "external":
        external = settings.external
        if external is None:  # config/rules.py refuses this earlier
            raise ValueError("dataPlane.objectStorage.backend 'external' needs dataPlane.objectStorage.external")
        return (external.endpoint, external.region,
                {p: f"{external.bucket_prefix}-{p}" for p in BUCKET_PURPOSES})
    return f"http://{S3_SERVICE}.{NAMESPACE}.svc:{S3_PORT}", REGION, {p: p for p in BUCKET_PURPOSES}


def endpoint(ctx: DataContext, secrets: StackSecrets) -> ObjectStoreEndpoint:
    """Credentials and where to reach the store; no Kubernetes object (namespaces do not exist yet)."""
    settings = ctx.settings.object_storage
    url, region, buckets = address(settings)
    if settings.backend == "external":
        key_id, secret_key = secrets.object_storage_access_key_id, secrets.object_storage_secret_access_key
        if key_id is None or secret_key is None:  # config/rules.py refuses this earlier
            raise ValueError("dataPlane.objectStorage.backend 'external' needs the secrets objectStorageAccessKeyId "
                             "/ objectStorageSecretAccessKey")
        shared = S3Keys(pulumi.Output.secret(key_id), pulumi.Output.secret(secret_key))
        return ObjectStoreEndpoint(
            url=url, region=region, buckets=buckets, identities={consumer: shared for consumer in BUCKET_OWNERS},
            in_cluster=False, path_style=False)  # provider S3 serves virtual-hosted buckets
    return ObjectStoreEndpoint(
        url=url, region=region, buckets=buckets,
        identities={consumer: S3Keys(
            pulumi.Output.secret(ctx.password(f"seaweedfs-{consumer}-access-key", length=32).result),
            pulumi.Output.secret(ctx.password(f"seaweedfs-{consumer}-secret-key", length=40).result))
            for consumer in BUCKET_OWNERS},
        in_cluster=True, path_style=True)  # no per-bucket DNS names inside the cluster


# --- namespace --------------------------------------------------------------------------------------------
def namespaces(ctx: DataContext) -> list[NamespaceSpec]:
    if ctx.settings.object_storage.backend == "external":
        return []
    return [NamespaceSpec(
        name=NAMESPACE, pss="restricted", layer=LAYER,
        why="SeaweedFS runs as the image's non-root user without capabilities; logs go to stderr (no hostPath)",
        ingress_from=(
            # S3 only: masters, volume servers and filers talk to each other inside the namespace.
            *ctx.clients((S3_PORT,), teams=False),
            Peer("data-plane", (S3_PORT,), namespace_labels={LAYER_LABEL: LAYER}),  # stores backing up here
            ctx.monitoring((METRICS_PORT,)),
        ))]


# --- values -----------------------------------------------------------------------------------------------
def resources(ctx: DataContext) -> dict[str, Resources]:
    """Filers and masters take their share of a node, at least these minimums (also where the pool has no
    size class); dataPlane.objectStorage.cpu/memory size the volume servers only."""
    where = ctx.placements["object_storage"]
    filer, master = Resources("250m", "512Mi"), Resources("100m", "256Mi")
    return {
        "volume": ctx.resources("object_storage", "seaweedfs"),
        "filer": helper_share(where, SHARES["seaweedfs-filer"], filer, min_cpu=0.25, min_memory_mib=512),
        "master": helper_share(where, SHARES["seaweedfs-master"], master, min_cpu=0.1, min_memory_mib=256),
    }


def _placed(ctx: DataContext, component: str) -> dict[str, Any]:
    """Node selection, tolerations, one pod per node and restricted security contexts. The chart takes the
    scheduling fields as strings it renders with `tpl` (values.yaml): JSON is YAML, so they are JSON."""
    where = ctx.placements["object_storage"]
    return {
        "nodeSelector": json.dumps(where.node_selector),
        "tolerations": json.dumps(where.tolerations) if where.tolerations else "",
        "affinity": json.dumps({"podAntiAffinity": pod_anti_affinity(labels(component), required=ctx.ha)}),
        "podSecurityContext": {"enabled": True, **RESTRICTED_POD_SECURITY, "runAsUser": SEAWEED_UID,
                               "runAsGroup": SEAWEED_UID, "fsGroup": SEAWEED_UID,
                               "fsGroupChangePolicy": "OnRootMismatch"},
        "containerSecurityContext": {"enabled": True, **RESTRICTED_CONTAINER_SECURITY},
    }


def values(ctx: DataContext, buckets: Sequence[str], identities: pulumi.Input[str]) -> dict[str, Any]:
    """`identities`: the S3 gateway's identities file (secret), whose digest rolls the filers that serve S3."""
    where = ctx.placements["object_storage"]
    size = shape(where)
    sizes = resources(ctx)
    storage_class = ctx.storage_class
    return {
        "image": dict(IMAGE),
        "global": {"seaweedfs": {
            # Overrides the masters' -defaultReplication and the filers' -defaultReplicaPlacement.
            "enableReplication": True, "replicationPlacement": size.replication,
            "monitoring": {"enabled": True},  # metrics ports and one ServiceMonitor per component
        }},
        "master": {
            "replicas": size.masters,
            "data": {"type": "persistentVolumeClaim", "size": MASTER_STORAGE, "storageClass": storage_class},
            "logs": {"type": ""},  # -logtostderr
            "resources": sizes["master"].spec(),
            **_placed(ctx, "master"),
        },
        "volume": {
            "replicas": size.volumes,
            # maxVolumes 0: as many 1 GB volumes (master.volumeSizeLimitMB) as the disk holds.
            "dataDirs": [{"name": "data", "type": "persistentVolumeClaim", "storageClass": storage_class,
                          "size": ctx.settings.object_storage.storage_size, "maxVolumes": 0}],
            "resizeHook": {"enabled": False},  # see the module docstring
            # Alive while its HTTP server answers (/status), not the chart's /healthz, which answers 503 once the
            # server stops heartbeating (volume_server_handlers_admin.go at 4.44): a server emptied and made to leave
            # (objectstore_shrink.py) would be restarted after 4 failed probes (6 min), join the master again empty,
            # and take the copies of the servers emptied after it, which its StatefulSet's shrink then deletes.
            # Readiness stays /healthz: a server that left is not Ready, and its eviction is allowed.
            "livenessProbe": {"httpGet": {"path": "/status"}},
            "resources": sizes["volume"].spec(),
            **_placed(ctx, "volume"),
        },
        "filer": {
            "replicas": size.filers,
            "data": {"type": "persistentVolumeClaim", "size": FILER_STORAGE, "storageClass": storage_class},
            "logs": {"type": ""},
            "resources": sizes["filer"].spec(),
            **_placed(ctx, "filer"),
            "podAnnotations": {IDENTITIES_ANNOTATION: plain_marker("seaweedfs-s3-identities", identities)},
            "s3": {
                "enabled": True, "port": S3_PORT, "enableAuth": True, "existingConfigSecret": CONFIG_SECRET,
                "createBuckets": [{"name": b} for b in buckets],
                "createBucketsHook": {"resources": HOOK_RESOURCES},
            },
        },
        "s3": {"enabled": False},  # the gateway runs inside the filers
    }


def disruption_budgets(ctx: DataContext) -> dict[str, dict[str, int]]:
    """Each component's disruption limit (the chart ships no PDB): masters keep a raft majority, volume
    servers and filers lose at most one pod at a time (with replication 001 every file keeps a readable
    copy). A single replica gets none: a budget of 1 would block draining staging's only node forever."""
    size = shape(ctx.placements["object_storage"])
    replicas = {"master": size.masters, "volume": size.volumes, "filer": size.filers}
    return {component: {"min_available": count // 2 + 1} if component == "master" else
            # A volume server that is not Ready serves nothing: one emptied and made to leave before its node leaves
            # (objectstore_shrink.py departure_step; its /healthz answers 503 once it stops heartbeating) must not
            # hold the drain of its node, as the default policy would while another server is down.
            {"max_unavailable": 1, "unhealthy_pod_eviction_policy": "AlwaysAllow"} if component == "volume" else
            {"max_unavailable": 1}
            for component, count in ((c, replicas[c]) for c in COMPONENTS) if count >= 2}


def s3_config(keys: dict[str, tuple[str, str]], buckets: dict[str, str]) -> str:
    """The gateway's identities file: per consumer (consumer -> (access key, secret key)) its keys and the
    actions on its own buckets (`buckets`: purpose -> bucket name) only."""
    return json.dumps({"identities": [
        {"name": consumer, "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
         "actions": [f"{action}:{buckets[purpose]}" for purpose in BUCKET_OWNERS[consumer]
                     for action in BUCKET_ACTIONS]}
        for consumer, (access_key, secret_key) in keys.items()]})


def _identities_file(endpoint: ObjectStoreEndpoint) -> pulumi.Output[str]:
    consumers = list(endpoint.identities)
    flat = [k for c in consumers for k in (endpoint.keys(c).access_key_id, endpoint.keys(c).secret_access_key)]
    return pulumi.Output.secret(pulumi.Output.all(*flat).apply(lambda v: s3_config(
        {c: (v[2 * i], v[2 * i + 1]) for i, c in enumerate(consumers)}, endpoint.buckets)))


# --- install ----------------------------------------------------------------------------------------------
def install(ctx: DataContext, spaces: Namespaces, endpoint: ObjectStoreEndpoint,
            after: Sequence[pulumi.Resource], private_key: pulumi.Input[str]) -> list[pulumi.Resource]:
    """`private_key`: the stack's SSH key, with which the release's hook empties the volume servers a shrink removes
    (objectstore_shrink.py)."""
    if not endpoint.in_cluster:
        return []  # provider S3: nothing runs in the cluster
    ns = spaces[NAMESPACE]
    identities = _identities_file(endpoint)
    config = k8s.core.v1.Secret(
        "seaweedfs-s3-config",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=CONFIG_SECRET, namespace=NAMESPACE,
                                            labels=ctx.labels("seaweedfs", "s3")),
        type="Opaque",
        string_data={CONFIG_KEY: identities},
        opts=ctx.opts([ns]))
    buckets = sorted(set(endpoint.buckets.values()))
    # The hook's script execs into a master pod as the node-lifecycle account: allowed before the release updates.
    size = shape(ctx.placements["object_storage"])
    evacuate = exec_role(NAMESPACE, RELEASE, size.masters, ctx.opts([ns]))
    # Over the internet, nodes leave (drained by the peer rules' hooks) before the release updates: the servers that
    # go and those on leaving nodes are emptied first (objectstore_shrink.py departure_step).
    empty_before_departure(NAMESPACE, RELEASE, size.volumes, size.masters)
    seaweed = release(RELEASE, charts.SEAWEEDFS, values(ctx, buckets, identities),
                      ctx.opts([*after, ns, config, *evacuate], protect=True,
                               hooks=evacuation_hooks(private_key, NAMESPACE, RELEASE, ctx.node_names)),
                      namespace=NAMESPACE, create_namespace=False)
    service = k8s.core.v1.Service(
        "seaweedfs-s3-service",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=S3_SERVICE, namespace=NAMESPACE, labels=ctx.labels("seaweedfs", "s3")),
        spec={"type": "ClusterIP", "selector": labels("filer"), "sessionAffinity": "ClientIP",
              "ports": [{"name": "s3", "port": S3_PORT, "targetPort": S3_PORT, "protocol": "TCP"}]},
        opts=ctx.opts([ns]))
    budgets = [ctx.disruption_budget(f"seaweedfs-{component}-pdb", f"seaweedfs-{component}", NAMESPACE,
                                     labels(component), ctx.labels("seaweedfs", component), [ns], **limit)
               for component, limit in disruption_budgets(ctx).items()]
    return [config, seaweed, service, *budgets]
