"""The data plane: ScyllaDB, Redpanda, ClickHouse, DragonflyDB, PostgreSQL and object storage,
each through its operator, on the node pools of its role.

Order: the object store's credentials first (they decide where backups go), then every store's
namespace with its policies, then the object store itself, then the other stores (which back up to
it when it is the backup target). Each module exposes `namespaces(ctx)` and `install(ctx, spaces,
after)` returning its typed endpoint (components/data/endpoints.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Mapping, Sequence

import pulumi

from components.data import clickhouse, dragonfly, drills, objectstore, postgres, redpanda, scylladb
from components.data.context import LAYER, DataContext, pinned_shortfall
from components.data.endpoints import BackupTargets, DataEndpoints, ObjectStoreEndpoint, S3Location
from components.data.placement import node_allocatable, store_placement, volume_pools
from components.k3s import K3sCluster
from components.k3s.config import etcd_snapshot_folder
from components.layer import Need
from components.services import ClusterServices, namespaces
from config import LoadedConfig, Problem
from config.errors import problem
from config.catalog import SIZES, STORE_ROLES, Size
from config.consumers import store_consumers
from config.data import BACKUP_BUCKETS, DataPlane as DataPlaneSettings
from config.model import CONTROL_PLANE, ControlPlane, Pool, StackConfig
from config.quantity import cpu_millis, memory_mib
from config.rules import drilled_stores, role_pools

# Stores besides object storage, in the order their operators are installed (no dependencies between them).
STORES = {"scylladb": scylladb, "redpanda": redpanda, "clickhouse": clickhouse, "dragonfly": dragonfly,
          "postgres": postgres}

# Where each store that backs up to S3 (ctx.backup.of(store)) writes. Scylla Manager takes a bucket, no prefix
# (it keeps its own `backup/` layout per cluster id); Redpanda's export job writes one directory per export
# (redpanda_backup.py); DragonflyDB snapshots to its own volumes, which Velero backs up.
BACKUP_URLS: dict[str, Callable[[S3Location], str]] = {
    "scylladb": lambda backup: f"s3://{backup.bucket}/backup",
    "clickhouse": lambda backup: backup.url(),
    "postgres": lambda backup: backup.url(),
    "redpanda": lambda backup: backup.url(),
}


@dataclass(frozen=True)
class StoreNeeds:
    """What of the cluster services a store's resources wait for: what they render, nothing else (issue 22)."""

    store: tuple[Need, ...]  # its custom resources, volumes, jobs, monitors (and an operator not split off)
    operator: tuple[Need, ...] = ()  # its operator's release where the module installs it on `ctx.operator_after`


# One place for every store. volumes: PersistentVolumeClaims (the CSI driver and StorageClasses); certificates:
# cert-manager Certificates/Issuers of the store's own (cert-manager's CRDs and webhook); monitors: ServiceMonitor/
# PodMonitor (the Prometheus Operator CRDs).
NEEDS: dict[str, StoreNeeds] = {
    # SeaweedFS' chart renders cert-manager Certificates only with global.seaweedfs.enableSecurity, off here
    # (templates/cert/ at 4.44); its volumes and ServiceMonitors need the rest.
    "object_storage": StoreNeeds(store=("volumes", "monitors")),
    # The operator's webhook certificate comes from cert-manager (scylladb/__init__.py); ServiceMonitor, volumes.
    "scylladb": StoreNeeds(store=("volumes", "certificates", "monitors")),
    # The brokers' TLS from the data plane's own cert-manager CA (redpanda.py); the chart's ServiceMonitor, volumes.
    "redpanda": StoreNeeds(store=("volumes", "certificates", "monitors")),
    # No cert-manager resource (components/data/clickhouse/); the chart's ServiceMonitor, our PodMonitors, volumes.
    "clickhouse": StoreNeeds(store=("volumes", "monitors")),
    # The operator's chart has no webhook, no Certificate and (serviceMonitor.enabled false by default) no monitor
    # (charts/dragonfly-operator/templates at v1.6.1): it needs its namespace only. The instances: snapshot volumes
    # and our PodMonitor; no TLS.
    "dragonfly": StoreNeeds(store=("volumes", "monitors"), operator=()),
    # CloudNativePG makes and rotates its own webhook certificate (no cert-manager annotation in the chart's webhook
    # configurations, templates/ at cloudnative-pg-v0.29.0) and mounts no volume: its PodMonitor's CRD only. The
    # Barman Cloud plugin's gRPC certificates are cert-manager's, from the chart's own self-signed Issuer
    # (templates/certificate-issuer.yaml at plugin-barman-cloud-v0.7.0); the Cluster's volumes; our PodMonitor.
    "postgres": StoreNeeds(store=("volumes", "certificates", "monitors"), operator=("monitors",)),
}


PINNED_STORES = ("scylladb", "redpanda", "dragonfly")


def validate(cfg: StackConfig, server_sizes: Mapping[str, Size] = MappingProxyType({})) -> list[Problem]:
    """Checks that need the stores' placement (pool sizes): run with the config validation in program.py,
    before any resource exists. `server_sizes`: the provider's server types whose size is known (a pool that
    sets one of them as serverType is checked like a pool of that size class)."""
    if not (cfg.layers.cluster_services and cfg.layers.data_plane):
        return []
    placements = {store: store_placement(cfg, store) for store in STORE_ROLES}
    found = []
    for store, role in STORE_ROLES.items():
        if getattr(cfg.data_plane, store).enabled:
            found += _larger_than_nodes(cfg, store, role_pools(cfg, role), server_sizes)
    for store in PINNED_STORES:
        if getattr(cfg.data_plane, store).enabled:
            shortfall = pinned_shortfall(cfg.data_plane, placements, store)
            if shortfall:
                found.append(problem(f"dataPlane.{store}", shortfall))
    return found


def _larger_than_nodes(cfg: StackConfig, store: str, pools: Sequence[Pool | ControlPlane],
                       server_sizes: Mapping[str, Size]) -> list[Problem]:
    """A store's configured cpu/memory must fit one node of each of its pools, or its pods never schedule."""
    settings, key = getattr(cfg.data_plane, store), f"dataPlane.{DataPlaneSettings.model_fields[store].alias}"
    found = []
    for pool in pools:
        size = SIZES[pool.size] if pool.size else server_sizes.get(pool.server_type or "")
        if size is None:
            continue  # a server type of unknown size: nothing to compare with
        cpus, mib = node_allocatable(size)
        name = CONTROL_PLANE if isinstance(pool, ControlPlane) else pool.name
        node = (f"a node of pool {name} ({pool.size or pool.server_type}: {size.vcpus} vCPUs, {size.memory_gb} GB) "
                f"has {cpus:g} CPUs and {mib}Mi for pods after the system's reservations")
        if settings.cpu is not None and cpu_millis(settings.cpu) > cpus * 1000:
            found.append(problem(f"{key}.cpu", f"must fit one node: {node}, so its pods would never schedule; lower it "
                                 "or give the pool a larger size", settings.cpu))
        if settings.memory is not None and memory_mib(settings.memory) > mib:
            found.append(problem(f"{key}.memory", f"must fit one node: {node}, so its pods would never schedule; lower "
                                 "it or give the pool a larger size", settings.memory))
    return found


class DataPlane(pulumi.ComponentResource):
    endpoints: DataEndpoints
    backup: S3Location | None
    shape: dict[str, dict[str, object]]
    ready: list[pulumi.Resource]

    def __init__(self, name: str, loaded: LoadedConfig, cluster: K3sCluster, services: ClusterServices,
                 local_nvme: bool, opts: pulumi.ResourceOptions | None = None):
        """`local_nvme`: the provider's disks are local NVMe (providers' ClusterProfile.local_nvme)."""
        super().__init__("adplatform:data:DataPlane", name, None, opts)
        cfg = loaded.config
        ctx = DataContext(
            parent=self, k8s=cluster.provider, settings=cfg.data_plane, cluster=cfg.cluster, stack=loaded.stack,
            domain=cfg.domain, ha=loaded.profile.strict, protect=loaded.profile.protect,
            storage_class=services.storage_class, xfs_storage_class=services.xfs_storage_class,
            general_storage_class=services.storage_class, scratch_of=services.storage.scratch_of,
            local_nvme=local_nvme, gateway=services.gateway, cluster_issuer=services.cluster_issuer,
            placements={store: store_placement(cfg, store) for store in STORE_ROLES},
            backup=None, drills=drilled_stores(cfg), consumers=store_consumers(cfg), velero=services.backups,
            node_names=cluster.node_names)
        objects = objectstore.endpoint(ctx, loaded.secrets) if cfg.data_plane.object_storage.enabled else None
        ctx = dataclasses.replace(ctx, backup=self._backup_targets(loaded, objects))

        enabled = {store: module for store, module in STORES.items() if getattr(cfg.data_plane, store).enabled}
        modules = [*([objectstore] if objects else []), *enabled.values()]
        specs = {m: m.namespaces(ctx) for m in modules}
        spaces = namespaces.install(ctx, [*(spec for m in modules for spec in specs[m]), *drills.namespaces(ctx)],
                                    after=cluster.ready)

        def own(module) -> list[pulumi.Resource]:
            return spaces.ready_for([s.name for s in specs[module]])

        def placed(store: str, module) -> list[pulumi.Resource]:
            """A store waits for the cluster services it renders for (NEEDS) and its own namespaces' policies."""
            return [*services.prerequisites.of(NEEDS[store].store), *own(module)]

        def context(store: str, module) -> DataContext:
            """The store's context: its pools' storage classes, and what its operator release waits for."""
            operator = [*services.prerequisites.of(NEEDS[store].operator), *own(module)]
            return dataclasses.replace(self._placed(ctx, services, volume_pools(cfg, store)), operator_after=operator)

        objects_ready = (objectstore.install(context("object_storage", objectstore), spaces, objects,
                                             after=placed("object_storage", objectstore),
                                             private_key=loaded.secrets.ssh_private_key) if objects else [])
        objects = dataclasses.replace(objects, ready=objects_ready) if objects else None
        # Stores that back up into the in-cluster object store wait for it (and its buckets).
        backup_ready = objects_ready if ctx.backup is not None and ctx.backup.in_cluster else []

        stores = {store: module.install(context(store, module), spaces, [*placed(store, module), *backup_ready])
                  for store, module in enabled.items()}
        backups = cfg.cluster_services.backups
        drilled = drills.install(ctx, spaces, loaded.secrets.reader_keys("drills"), backups.velero_schedule,
                                 services.secrets_backup, [*services.foundations, *(r for s in ctx.drills if s in stores for r in stores[s].ready)])
        self.endpoints = DataEndpoints(object_storage=objects, drills=drilled, **stores)
        self.backup = ctx.backup
        self.shape = {store: self._shape(ctx, store) for store in STORE_ROLES
                      if getattr(cfg.data_plane, store).enabled}
        self.ready = [*spaces.ready, *objects_ready, *(r for e in self._all(self.endpoints) for r in e.ready)]
        self.register_outputs({"stores": [s for s, e in vars(self.endpoints).items() if e is not None and s != "drills"],
                               "drills": list(ctx.drills)})

    @staticmethod
    def _backup_targets(loaded: LoadedConfig, objects: ObjectStoreEndpoint | None) -> BackupTargets | None:
        """Off-cluster S3 when the stack has it (clusterServices.backups: a backup must survive the cluster),
        each store under <stack>/data/<store> of its bucket with its own keys (backupCredentials.<store>); else
        the in-cluster object store, each store in its own bucket with its own identity (staging); else none."""
        backups = loaded.config.cluster_services.backups
        keys = {store: loaded.secrets.backup_keys(store) for store in BACKUP_BUCKETS
                if getattr(loaded.config.data_plane, store).enabled}
        if backups.enabled and backups.s3 and all(keys.values()):  # config/rules.py: all are set when enabled
            s3 = backups.s3
            reader = loaded.secrets.reader_keys("drills")
            etcd = None if reader is None else S3Location(
                s3.endpoint, s3.region, s3.bucket_for("etcd"), etcd_snapshot_folder(loaded.stack),
                reader.access_key_id, reader.secret_access_key, in_cluster=False)
            return BackupTargets(s3.endpoint, in_cluster=False, stores={store: S3Location(
                s3.endpoint, s3.region, s3.bucket_for(store), f"{loaded.stack}/data/{store}", k.access_key_id,
                k.secret_access_key, in_cluster=False, sse=s3.server_side_encryption)
                for store, k in keys.items() if k is not None}, etcd=etcd)
        if objects is not None:
            return BackupTargets(objects.url, in_cluster=objects.in_cluster, stores={
                store: objects.bucket(bucket, store) for store, bucket in BACKUP_BUCKETS.items()})
        return None

    @staticmethod
    def _placed(ctx: DataContext, services: ClusterServices, pools: Sequence[str]) -> DataContext:
        """The store's context with the StorageClasses of `pools` (placement.volume_pools): a hybrid cluster's pools
        on another provider claim that provider's volumes (providers/hybrid.py combined_storage)."""
        default, xfs = services.storage.classes_of(pools)
        return dataclasses.replace(ctx, storage_class=default, xfs_storage_class=xfs)

    @staticmethod
    def _shape(ctx: DataContext, store: str) -> dict[str, object]:
        """How big a store runs here (the offline plan prints it: staging's 1 replica against production's 3)."""
        settings = getattr(ctx.settings, store)
        if store == "object_storage" and settings.backend == "external":
            return {"backend": "external", "endpoint": settings.external.endpoint if settings.external else None}
        where = ctx.placements[store]
        workload = "seaweedfs" if store == "object_storage" else store
        size = ctx.resources(store, workload)
        shape: dict[str, object] = {"replication": where.replicas(3), "nodes": where.nodes, "pools": list(where.pools),
                                    "cpu": size.cpu, "memory": size.memory, "storage": settings.storage_size}
        if store in BACKUP_URLS:
            shape["backup"] = BACKUP_URLS[store](ctx.backup.of(store)) if ctx.backup else None
        return shape

    @staticmethod
    def _all(endpoints: DataEndpoints) -> Sequence:
        return [e for e in vars(endpoints).values() if e is not None]


__all__ = ["DataPlane", "LAYER"]
