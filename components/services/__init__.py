"""Cluster services: storage, namespaces and policies, TLS, the shared gateway, upgrades, backups,
secrets and the optional mesh, installed in dependency order on the cluster's provider.

Order: namespaces (labels, default-deny policies, team quotas) and the provider's storage first, and the
Prometheus Operator CRDs as soon as the API answers (CRDs only: no pods, no volumes), before every release that renders a ServiceMonitor/PodMonitor (cert-manager,
the secret store, ESO, Velero, kured) and our PodMonitors for Cilium (installed with the cluster, before them);
cert-manager before anything that asks for a certificate (gateway, mesh); the secret store and
backups on storage. Each module returns what later layers consume, plus `ready` to wait on.
"""

from __future__ import annotations

import pulumi

from components.k3s import K3sCluster
from components.layer import Prerequisites
from components.services import (autoscaler, backups, certs, cilium_metrics, dns, gateway, mesh, monitoring_crds,
                                 namespaces, reboots, secrets, secrets_backup, secrets_restore, secrets_sso,
                                 upgrades)
from components.services.context import ServicesContext
from config import LoadedConfig
from config.rules import schedulable_nodes
from providers.base import Infrastructure, Storage


class ClusterServices(pulumi.ComponentResource):
    storage_class: str
    xfs_storage_class: str | None
    storage: Storage  # all the cluster's classes; a hybrid cluster's pools may have their own (Storage.classes_of)
    gateway: gateway.GatewayRef
    cluster_issuer: str
    dns: dict  # the records of the gateway's hostnames and who writes them (dns.records)
    secret_store: secrets.SecretStore
    secrets_backup: secrets_backup.SnapshotBackup | None  # the store's snapshot CronJob: the data plane's BackupStale
    namespaces: dict[str, str]
    prerequisites: Prerequisites  # what a later layer's workload waits for, by what it renders
    foundations: list[pulumi.Resource]  # all of `prerequisites`
    backups: list[pulumi.Resource]  # Velero and its Schedule (and Restore): what a store's Velero restore waits for
    ready: list[pulumi.Resource]
    autoscaling: autoscaler.NodeAutoscaling | None  # None: no pool autoscales (or the provider cannot)

    def __init__(self, name: str, loaded: LoadedConfig, infra: Infrastructure, cluster: K3sCluster,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("adplatform:services:ClusterServices", name, None, opts)
        cfg = loaded.config
        storage = self._storage(infra, cluster)
        ctx = ServicesContext(
            parent=self, k8s=cluster.provider, settings=cfg.cluster_services, cluster=cfg.cluster,
            secrets=loaded.secrets, domain=cfg.domain, stack=loaded.stack, ha=loaded.profile.strict,
            protect=loaded.profile.protect, storage_class=storage.default_class,
            load_balancer_annotations=infra.cluster.gateway_annotations,
            schedulable_nodes=schedulable_nodes(cfg),
            secrets_oidc=secrets_sso.SecretsOidc.from_config(cfg, loaded.stack, secrets.API_PORT),
            seal=secrets.provider_seal(loaded, infra))
        base = [*cluster.ready, *storage.resources]

        modules = (certs, gateway, dns, upgrades, reboots, backups, secrets, mesh, monitoring_crds, cilium_metrics)
        scaling = autoscaler.enabled(cfg.cluster, infra)
        specs = {m: m.namespaces(ctx) for m in modules}
        spaces = namespaces.install(ctx, [*(spec for m in modules for spec in specs[m]),
                                          *autoscaler.namespaces(ctx, scaling, infra.cluster)],
                                    after=cluster.ready, mesh_peers=mesh.meshed_namespace_peers(ctx),
                                    teams=cfg.cluster_services.teams)

        def placed(module) -> list[pulumi.Resource]:
            """The cluster, the provider's storage and the module's own namespaces with their policies (allows
            included): its workloads start once those exist, not in a race with them. Not every namespace's
            policies (issue 22): nothing of one module's runs in another's namespace."""
            return [*base, *spaces.ready_for([s.name for s in specs[module]])]

        # CRDs only, no pods and no volumes: the API server is all they need (the provider waits for it).
        monitors = monitoring_crds.install(ctx, spaces, after=[])

        def scraped(module) -> list[pulumi.Resource]:
            """Releases that render a ServiceMonitor wait for its CRD (Helm refuses unknown kinds)."""
            return [*placed(module), *monitors]

        # cert-manager has no volumes: it waits for the pod network, its own namespace's policies (certs.install)
        # and its ServiceMonitor's CRD, not for the CSI driver and storage classes.
        tls = certs.install(ctx, spaces, after=[*cluster.ready, *monitors])
        edge = gateway.install(ctx, spaces, tls, after=placed(gateway))
        records = dns.install(ctx, spaces, after=[*scraped(dns), *edge.ready])
        rolling = upgrades.install(ctx, spaces, after=placed(upgrades))
        rebooting = reboots.install(ctx, spaces, after=scraped(reboots))
        # In a disaster recovery the secrets store starts on its restored raft volumes: restored on its own first.
        saved = backups.install(ctx, spaces, after=scraped(backups), first=[secrets.backend_of(ctx).name])
        # The secret store's CA and certificates are cert-manager's resources, signed by its own CA (not Let's Encrypt).
        store = secrets.install(ctx, spaces, after=[*scraped(secrets), *tls.manager], restore_first=saved.restore_first)
        # Consistent raft snapshots of the store to S3 (Velero's copy of its live volumes need not be). A restore from
        # one (clusterServices.secrets.restore) once the store and the snapshots' keys exist; the schedule after it.
        prepared = secrets_backup.prepare(ctx, spaces)
        restored = secrets_restore.install(ctx, spaces, store, after=[*placed(secrets), *store.ready, *prepared])
        snapshots, self.secrets_backup = secrets_backup.schedule(
            ctx, prepared, after=[*placed(secrets), *store.ready, *restored])
        meshed = mesh.install(ctx, spaces, tls, after=placed(mesh))
        cilium = cilium_metrics.install(ctx, spaces, after=scraped(cilium_metrics))
        # Node autoscaling (docs/autoscaling.md): only where a pool autoscales and the provider creates machines.
        self.autoscaling = autoscaler.install(ctx, spaces, infra, autoscaler.join_settings(cfg, infra, cluster),
                                              after=[*base, *monitors]) if scaling else None

        self.storage = storage
        self.storage_class = storage.default_class
        self.xfs_storage_class = storage.xfs_class
        self.gateway = edge
        self.dns = dns.records(cfg.domain, list(edge.https_listeners), cfg.cluster_services.dns_records())
        self.cluster_issuer = tls.issuer
        self.secret_store = store
        self.namespaces = spaces.names
        # What a later layer's workloads wait for, by what they render (each already waited for the cluster).
        self.prerequisites = Prerequisites(volumes=tuple(storage.resources), certificates=tuple(tls.manager),
                                           monitors=tuple(monitors))
        self.foundations = self.prerequisites.all()
        self.backups = list(saved.ready)
        self.ready = [*base, *spaces.ready, *tls.ready, *edge.ready, *records, *rolling, *rebooting, *saved.ready, *store.ready, *snapshots, *restored, *meshed, *monitors, *cilium,
                      *(self.autoscaling.ready if self.autoscaling else [])]
        self.register_outputs({"storage_class": self.storage_class, "cluster_issuer": self.cluster_issuer,
                               "gateway": f"{edge.namespace}/{edge.name}"})

    def _storage(self, infra: Infrastructure, cluster: K3sCluster) -> Storage:
        if infra.install_storage is None:
            # K3s' bundled local-path provisioner: node-local volumes (bare metal without a CSI).
            return Storage(default_class="local-path", resources=[])
        return infra.install_storage(cluster.provider, cluster.ready, self)
