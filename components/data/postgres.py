"""PostgreSQL: the CloudNativePG operator, the barman-cloud plugin and one `Cluster` shared by the platform
(GitLab, Airflow, MLflow, JupyterHub: `dataPlane.postgres.databases`).

- The operator and the plugin run in `cnpg-system` on the general nodes (the plugin must share the
  operator's namespace: plugin-barman-cloud web/docs/installation.mdx); the cluster in `postgres` on the
  stateful nodes, tolerating exactly their taints, one instance per node (required anti-affinity in HA).
- 3 instances (staging: 1) with synchronous quorum replication, data and WAL on separate volumes,
  requests == limits, superuser access off. The operator keeps its own PodDisruptionBudgets
  (pkg/specs/poddisruptionbudget.go at v1.30.0): `<cluster>-primary` (minAvailable 1) and `<cluster>`
  for the replicas (minAvailable instances-2, from 3 instances); a single instance gets none
  (`enablePDB: false`), as CloudNativePG's docs ask, or the node could never be drained.
- Each database has its own owner role with a generated password, declared in `spec.managed.roles`
  (basic-auth Secrets the operator reloads on change) and a `Database` resource; pg_hba lets each role into
  its own database only (hba_rules).
- WAL archiving and base backups go through the barman-cloud plugin (the in-tree Barman support is
  removed in CloudNativePG 1.31) to `ctx.backup`: an `ObjectStore` with the retention policy, the
  cluster's `spec.plugins` as WAL archiver, and a `ScheduledBackup` (method plugin).
- Metrics: a PodMonitor we own, as CloudNativePG 1.30 recommends (`spec.monitoring.enablePodMonitor`
  is deprecated: docs/src/monitoring.md); the operator's own through its chart switch.
"""

from __future__ import annotations

from typing import Any, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components import charts
from components.data.context import DRILL_NAMESPACE, LAYER, SHARES, DataContext, operator_affinity
from components.data.endpoints import Database, PostgresEndpoint, S3Location
from components.data.placement import Resources, helper_share
from components.helm import release
from components.layer import Credentials, wait_for
from components.scheduling import HOSTNAME_TOPOLOGY, zone_spread
from components.services.namespaces import Namespaces, NamespaceSpec, Peer

NAMESPACE = "postgres"
OPERATOR_NAMESPACE = charts.CLOUDNATIVE_PG.namespace
CLUSTER = "postgres"
PORT = 5432
RW_HOST = f"{CLUSTER}-rw.{NAMESPACE}.svc"  # the operator's Service to the primary
STATUS_PORT = 8000  # the instance manager's status endpoint, which the operator polls
METRICS_PORT = 9187
OPERATOR_METRICS_PORT = 8080
WEBHOOK_PORT = 9443  # the operator's admission webhooks (chart values webhook.port)
API_VERSION = "postgresql.cnpg.io/v1"
PLUGIN = "barman-cloud.cloudnative-pg.io"
OBJECT_STORE = "postgres-backups"
BACKUP_SECRET = "postgres-backup-s3"
RESTORE_SOURCE = "backup"  # the externalClusters entry a restore reads from
OPERATOR_RELEASE = "cloudnative-pg"  # contains the chart name: the objects are named cloudnative-pg
PLUGIN_RELEASE = "plugin-barman-cloud"
OPERATOR_SELECTOR = {"app.kubernetes.io/name": "cloudnative-pg", "app.kubernetes.io/instance": OPERATOR_RELEASE}
CLUSTER_SELECTOR = {"cnpg.io/cluster": CLUSTER}  # the label CloudNativePG puts on every instance pod
# Extensions a consumer needs (GitLab: "PostgreSQL requirements"), created with its database so that its first
# migration finds them whatever role it runs as (both are trusted since PostgreSQL 13: an owner could create them too).
EXTENSIONS = {"gitlab": ("pg_trgm", "btree_gist")}
VELERO_EXCLUDE = "backup.velero.io/backup-volumes-excludes"
# The restore drills' canary (drills.py): a database of its own, owned by a role that can do nothing else, so the
# canary writer never holds a consumer's credentials. config/data.py POSTGRES_RESERVED keeps the name free.
CANARY = "drill_canary"
CANARY_SECRET = f"{CLUSTER}-drill-canary"
MAX_CONNECTIONS = 400  # GitLab (Puma + Sidekiq), Airflow, MLflow and JupyterHub together
SIDECAR_FALLBACK = Resources("250m", "256Mi")  # the barman-cloud sidecar where the pool has no size class
OPERATOR_RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}}
PLUGIN_RESOURCES = {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}
# boto3 >= 1.36 sends flexible checksums S3-compatible stores reject; the plugin's maintainers advise
# turning them down to "when required" (cloudnative-pg/cloudnative-pg#7715, plugin-barman-cloud#800).
CHECKSUM_ENV = {"AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
                "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required"}


# --- namespaces -------------------------------------------------------------------------------------------
def namespaces(ctx: DataContext) -> list[NamespaceSpec]:
    # The operator reaches every instance on the status port and PostgreSQL itself (docs/src/networking.md).
    operator_to_cluster = (STATUS_PORT, PORT)
    # A drill's scratch cluster is the operator's too (drills.py): same ports, its own policy.
    drills = (Peer(DRILL_NAMESPACE, operator_to_cluster, pod_labels={"cnpg.io/cluster": f"drill-{CLUSTER}"}),) \
        if "postgres" in ctx.drills else ()
    return [
        NamespaceSpec(
            name=OPERATOR_NAMESPACE, pss="restricted", layer=LAYER, webhooks=(WEBHOOK_PORT,),
            why="the CloudNativePG operator and the barman-cloud plugin run non-root, read-only, without capabilities",
            ingress_from=(ctx.monitoring((OPERATOR_METRICS_PORT,)),),
            egress_to=(Peer(NAMESPACE, operator_to_cluster, pod_labels=CLUSTER_SELECTOR), *drills)),
        NamespaceSpec(
            name=NAMESPACE, pss="restricted", layer=LAYER,
            why="CloudNativePG instance pods and the barman-cloud sidecar run non-root without capabilities",
            ingress_from=(Peer(OPERATOR_NAMESPACE, operator_to_cluster, pod_labels=OPERATOR_SELECTOR),
                          *ctx.clients((PORT,), teams=False), ctx.monitoring((METRICS_PORT,))),
            egress_to=ctx.object_storage_peer(), egress_world=ctx.backup_egress_world()),
    ]


# --- sizing -----------------------------------------------------------------------------------------------
def instances(ctx: DataContext) -> int:
    return ctx.placements["postgres"].replicas(3)


def sidecar_resources(ctx: DataContext) -> Resources:
    """The barman-cloud sidecar: requests == limits too, so the instance pods keep Guaranteed QoS."""
    return helper_share(ctx.placements["postgres"], SHARES["postgres-backup"], SIDECAR_FALLBACK)


def parameters(size: Resources) -> dict[str, str]:
    """postgresql.conf sized from the instance's memory limit (PostgreSQL's "MB" is MiB)."""
    mib = size.memory_mib
    return {"max_connections": str(MAX_CONNECTIONS), "shared_buffers": f"{mib // 4}MB",
            "effective_cache_size": f"{mib * 3 // 4}MB", "maintenance_work_mem": f"{max(64, mib // 16)}MB"}


def cron(schedule: str) -> str:
    """CloudNativePG's schedules have a leading seconds field (6 fields); the config's have 5."""
    return f"0 {schedule}"


# --- the Cluster ------------------------------------------------------------------------------------------
def cluster_spec(ctx: DataContext, roles: Sequence[dict[str, Any]]) -> dict[str, Any]:
    settings = ctx.settings.postgres
    where = ctx.placements["postgres"]
    count = instances(ctx)
    size = ctx.resources("postgres")
    # Every managed role owns one database of its name (consumers', and the drills' canary where drilled).
    postgresql: dict[str, Any] = {"parameters": parameters(size), "pg_hba": hba_rules([r["name"] for r in roles])}
    if count > 1:
        # A commit waits for one standby: a failover never loses an acknowledged transaction.
        postgresql["synchronous"] = {"method": "any", "number": 1, "dataDurability": "required"}
    spec: dict[str, Any] = {
        "instances": count,
        "imageName": charts.POSTGRES_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "enableSuperuserAccess": False,
        "enablePDB": count > 1,
        "primaryUpdateStrategy": "unsupervised",
        "primaryUpdateMethod": "switchover" if count > 1 else "restart",
        "bootstrap": bootstrap(ctx),
        "postgresql": postgresql,
        "storage": {"size": settings.storage_size, "storageClass": ctx.storage_class},
        "walStorage": {"size": settings.wal_storage_size, "storageClass": ctx.storage_class},
        "resources": size.spec(),
        "affinity": {
            "enablePodAntiAffinity": True,
            "podAntiAffinityType": "required" if ctx.ha else "preferred",
            "topologyKey": HOSTNAME_TOPOLOGY,
            "nodeSelector": where.node_selector,
            "tolerations": where.tolerations,
        },
        # Instances even over zones: a lost location keeps a standby to fail over to.
        "topologySpreadConstraints": zone_spread(CLUSTER_SELECTOR, required=where.spans_locations),
        "managed": {"roles": list(roles)},
        # Reaches the instance pods (GetFixedInheritedAnnotations, api/v1/cluster_funcs.go): Velero's file
        # copy of a running data directory is no backup (components/services/backups.py); barman's is.
        "inheritedMetadata": {"annotations": {VELERO_EXCLUDE: "pgdata,pg-wal"}},
    }
    if ctx.backup is not None:
        # serverName defaults to the cluster's name: stated only when it differs, so existing clusters see no change
        server = {} if settings.backup_server_name == CLUSTER else {"serverName": settings.backup_server_name}
        spec["plugins"] = [{"name": PLUGIN, "isWALArchiver": True, "parameters": {
            "barmanObjectName": OBJECT_STORE, **server}}]
    if settings.restore is not None:
        spec["externalClusters"] = [recovery_source(RESTORE_SOURCE, OBJECT_STORE, settings.restore.from_server)]
    return spec


def hba_rules(databases: Sequence[str]) -> list[str]:
    """Each owner role logs in (SCRAM) to its own database only; every other login over the network is refused.
    CloudNativePG puts these between its fixed rules (local peer logins for itself, certificates for
    replication) and its default `host all all all scram-sha-256` (pkg/postgres/configuration.go at v1.30.0),
    which the final reject makes unreachable: without it any role could connect to any database, since
    PostgreSQL grants CONNECT on new databases to PUBLIC. Names are validated identifiers (config/data.py)."""
    return [*(f"host {db} {db} all scram-sha-256" for db in databases), "host all all all reject"]


def bootstrap(ctx: DataContext) -> dict[str, Any]:
    """A new, empty cluster; or, with `dataPlane.postgres.restore`, one recovered from the object store (base
    backup + WAL replay: CloudNativePG `bootstrap.recovery` through the barman-cloud plugin, plugin-barman-cloud
    docs/usage.md "Restoring a Cluster"). Bootstrap runs only when the Cluster is created: on an existing cluster
    the switch changes nothing (docs/disaster-recovery.md: delete the Cluster first, or restore on a new one)."""
    restore = ctx.settings.postgres.restore
    if restore is None:
        return {"initdb": {"dataChecksums": True}}
    target: dict[str, str] = {}
    if restore.backup_id:
        target["backupID"] = restore.backup_id
    if restore.target_time:
        target["targetTime"] = restore.target_time
    return {"recovery": {"source": RESTORE_SOURCE, **({"recoveryTarget": target} if target else {})}}


def role(database: str, secret: str) -> dict[str, Any]:
    """The database's owner: may log in, nothing more."""
    return {"name": database, "ensure": "present", "login": True, "superuser": False, "createdb": False,
            "createrole": False, "replication": False, "bypassrls": False, "inherit": True,
            "connectionLimit": -1, "passwordSecret": {"name": secret}}


def role_secret(database: str) -> str:
    """The basic-auth Secret in NAMESPACE with the password of `database`'s owner role."""
    return f"{CLUSTER}-{database}".replace("_", "-")


def database_spec(database: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": database, "owner": database, "cluster": {"name": CLUSTER}, "ensure": "present",
                            "databaseReclaimPolicy": "retain"}  # deleting the resource keeps the data
    if database in EXTENSIONS:
        spec["extensions"] = [{"name": e, "ensure": "present"} for e in EXTENSIONS[database]]
    return spec


# --- backups ----------------------------------------------------------------------------------------------
def object_store_location(location: S3Location, secret: str) -> dict[str, Any]:
    """An ObjectStore's `configuration` core: where the backups are and the Secret with the keys to them."""
    return {"destinationPath": location.url(), "endpointURL": location.endpoint,
            "s3Credentials": {"accessKeyId": {"name": secret, "key": "ACCESS_KEY_ID"},
                              "secretAccessKey": {"name": secret, "key": "ACCESS_SECRET_KEY"}}}


def sidecar_env(location: S3Location) -> list[dict[str, str]]:
    """The barman-cloud sidecar's environment for `location`."""
    return [{"name": k, "value": v} for k, v in {**CHECKSUM_ENV, "AWS_DEFAULT_REGION": location.region}.items()]


def recovery_source(name: str, object_store: str, server: str) -> dict[str, Any]:
    """An `externalClusters` entry a Cluster recovers from: `server`'s backups in ObjectStore `object_store`."""
    return {"name": name, "plugin": {"name": PLUGIN, "parameters": {"barmanObjectName": object_store,
                                                                      "serverName": server}}}


def object_store_spec(ctx: DataContext, location: S3Location) -> dict[str, Any]:
    settings = ctx.settings.postgres
    return {
        "retentionPolicy": settings.backup_retention,
        "configuration": {
            **object_store_location(location, BACKUP_SECRET),
            # `encryption`: barman-cloud's --encryption (ObjectStore CRD of plugin-barman-cloud v0.13.0)
            "wal": {"compression": "zstd", "maxParallel": 4, **_sse(location)},
            "data": {"compression": "lz4", "jobs": 2, **_sse(location)},
        },
        "instanceSidecarConfiguration": {
            "env": sidecar_env(location),
            "resources": sidecar_resources(ctx).spec(),
        },
    }


def _sse(location: S3Location) -> dict[str, str]:
    return {"encryption": location.sse} if location.sse else {}


def scheduled_backup_spec(ctx: DataContext) -> dict[str, Any]:
    return {
        "schedule": cron(ctx.settings.postgres.backup_schedule),
        "cluster": {"name": CLUSTER},
        "method": "plugin",
        "pluginConfiguration": {"name": PLUGIN},
        "immediate": True,  # a first base backup right away: WAL alone cannot restore anything
        "backupOwnerReference": "self",  # Backup records go with the schedule; the files follow the retention
        "target": "prefer-standby",  # keeps the copy load off the primary
    }


def pod_monitor_spec() -> dict[str, Any]:
    return {"selector": {"matchLabels": dict(CLUSTER_SELECTOR)}, "podMetricsEndpoints": [{"port": "metrics"}]}


# --- operators --------------------------------------------------------------------------------------------
def operator_values(ctx: DataContext) -> dict[str, Any]:
    return {
        "replicaCount": ctx.operator_replicas(),  # leader election: the second one takes over within seconds
        "image": {"repository": "ghcr.io/cloudnative-pg/cloudnative-pg", "tag": charts.CNPG_VERSION},
        "crds": {"create": True},  # kept on uninstall (helm.sh/resource-policy: keep in the chart)
        "config": {"clusterWide": True},
        "webhook": {"port": WEBHOOK_PORT},
        "resources": OPERATOR_RESOURCES,
        "affinity": operator_affinity(OPERATOR_SELECTOR),
        "monitoring": {"podMonitorEnabled": True},
    }


def plugin_values() -> dict[str, Any]:
    # One replica: its gRPC server runs on the leader only (the CNPGI runnable of internal/cnpgi/operator/
    # start.go at v0.13.0 has no NeedLeaderElection, so controller-runtime starts it after election) and
    # the chart forces the Recreate strategy, so a second pod would sit unready. WAL archiving and backups
    # run in the instance sidecars and go on while it restarts.
    image = {"registry": "ghcr.io", "tag": charts.BARMAN_CLOUD_VERSION}
    return {
        "replicaCount": 1,
        "image": {**image, "repository": "cloudnative-pg/plugin-barman-cloud"},
        "sidecarImage": {**image, "repository": "cloudnative-pg/plugin-barman-cloud-sidecar"},
        "crds": {"create": True},
        "resources": PLUGIN_RESOURCES,
    }


# --- readiness --------------------------------------------------------------------------------------------
# Consumers (GitLab's and Airflow's migrations) connect as they install: Pulumi waits until the operator reports the
# Cluster `Ready`, a condition it sets True only in the phase "Cluster in healthy state" (SetClusterReadyCondition,
# pkg/resources/status/transactions.go at v1.30.0), reached once every instance runs and is ready. It creates the
# instances one after another, each by a Job (initdb, then pg_basebackup for each replica) and only once every
# instance before it is ready (reconcileMissingInstance, internal/controller/cluster_create.go), each with its own
# two new volumes. CloudNativePG's own end-to-end suite gives a new cluster 600 s to turn ready and a restored one
# 800 s (tests/utils/timeouts/timeouts.go at v1.30.0, ClusterIsReady/ClusterIsReadySlow); ours provisions cloud
# volumes, so half as much again for a new cluster. A recovery replays the base backup and the WAL since: its time
# grows with the data, so an hour, after which `pulumi up` fails with the operator's last status.
READY_TIMEOUT_SECONDS = 900
RECOVERY_TIMEOUT_SECONDS = 3600
#
# A consumer needs the primary and its own database, not the replicas: each Database is applied alongside the Cluster
# (not after its Ready) and Pulumi awaits it, and the consumers await their Database, while the replicas join in
# parallel; `pulumi up` still ends only once the Cluster is Ready. A Database has no conditions: the instance manager
# of the current primary, and only it (`CurrentPrimary != pod`: requeue, Reconcile in
# internal/management/controller/database_controller.go at v1.30.0; the operator has no Database controller),
# runs CREATE DATABASE ... OWNER and the extensions over SQL and only then sets `status.applied` true (SetAsReady,
# api/v1/database_funcs.go); false with `status.message` when that failed, retried every 30 s. Applied thus means
# the database exists on the running primary, owned by its role, which the same instance manager creates from
# `spec.managed.roles` with its password in one statement (roles.Create, internal/management/controller/roles/
# postgres.go). A Database applied before its Cluster exists is admitted (the webhook checks its own spec only,
# internal/webhook/v1/database_webhook.go) and waits: nobody reconciles it until the primary's instance manager
# starts and lists it. So its await covers the primary's bootstrap (or recovery): the Cluster's timeout.
DATABASE_APPLIED = "jsonpath={.status.applied}=true"


def _bootstrap_timeout(ctx: DataContext) -> int:
    return RECOVERY_TIMEOUT_SECONDS if ctx.settings.postgres.restore is not None else READY_TIMEOUT_SECONDS


def cluster_ready(ctx: DataContext) -> dict[str, str]:
    return wait_for("condition=Ready", _bootstrap_timeout(ctx))


def database_applied(ctx: DataContext) -> dict[str, str]:
    return wait_for(DATABASE_APPLIED, _bootstrap_timeout(ctx))


# --- install ----------------------------------------------------------------------------------------------
# Spec fields CloudNativePG 1.30's CRDs make immutable among those we set (config/crd/bases at v1.30.0: "name is
# immutable", "cluster reference is immutable after creation"); the operator cannot move a Database or a
# schedule to another cluster or rename the database, so a change replaces the object.
IMMUTABLE = {"Database": ("name", "cluster"), "ScheduledBackup": ("cluster",)}


def _custom(ctx: DataContext, resource_name: str, kind: str, name: str, spec: dict[str, Any],
            depends_on: Sequence[pulumi.Resource], api_version: str = API_VERSION,
            protect: bool = False, annotations: dict[str, str] | None = None) -> k8s.apiextensions.CustomResource:
    return ctx.custom_resource(resource_name, api_version, kind, name, NAMESPACE, spec, ctx.labels("postgres"),
                               depends_on, protect=protect, annotations=annotations, immutable=IMMUTABLE.get(kind, ()))


def install(ctx: DataContext, spaces: Namespaces, after: Sequence[pulumi.Resource]) -> PostgresEndpoint:
    operator_ns, ns = spaces[OPERATOR_NAMESPACE], spaces[NAMESPACE]
    # The operator waits for `ctx.operator_after` only (NEEDS in components/data/__init__.py), not for the rest of
    # `after`: it installs alongside cert-manager. What needs storage (the Cluster's volumes) waits for `after` via
    # the plugin.
    operator = release(OPERATOR_RELEASE, charts.CLOUDNATIVE_PG, operator_values(ctx),
                       ctx.opts([*ctx.operator_after, operator_ns]), namespace=OPERATOR_NAMESPACE,
                       create_namespace=False)
    # The plugin needs cert-manager (in `after`) for its gRPC certificates, not the operator: its chart renders no
    # CloudNativePG resource (templates/ at plugin-barman-cloud-v0.7.0), its controller watches only its own
    # ObjectStore (internal/cnpgi/operator/manager.go at v0.13.0), and the operator finds it whenever its Service
    # appears (standalone plugins are "discovered dynamically": docs/src/cnpg_i.md at v1.30.0). Both install at once.
    plugin = release(PLUGIN_RELEASE, charts.BARMAN_CLOUD, plugin_values(), ctx.opts([*after, operator_ns]),
                     namespace=OPERATOR_NAMESPACE, create_namespace=False)
    ready: list[pulumi.Resource] = [operator, plugin]
    # The chart ships no PodDisruptionBudget (templates/ at cloudnative-pg-v0.29.0).
    ready += ctx.operator_budget(OPERATOR_RELEASE, OPERATOR_NAMESPACE, OPERATOR_SELECTOR, [operator_ns])

    credentials_of: dict[str, Credentials] = {}
    secrets: list[pulumi.Resource] = []
    roles = []
    owned = [*ctx.settings.postgres.databases, *([CANARY] if "postgres" in ctx.drills else [])]
    for name in owned:
        secret_name = role_secret(name)
        password = ctx.password(f"postgres-{name}-password")
        credentials, secret = ctx.credentials(
            f"postgres-{name}-credentials", secret_name, NAMESPACE, {"username": name, "password": password.result},
            depends_on=[ns], secret_type="kubernetes.io/basic-auth",
            labels={**ctx.labels("postgres", name), "cnpg.io/reload": "true"})  # password changes apply at once
        if name != CANARY:  # the canary is the drills' own, no consumer's
            credentials_of[name] = credentials
        secrets.append(secret)
        roles.append(role(name, secret_name))

    before_cluster: list[pulumi.Resource] = [ns, operator, plugin, *secrets]
    if ctx.backup is not None:
        location = ctx.backup.of("postgres")
        backup_secret = location.secret("postgres-backup-s3", BACKUP_SECRET, NAMESPACE, ctx.opts([ns]),
                                        secret_key="ACCESS_SECRET_KEY")
        store = _custom(ctx, "postgres-object-store", "ObjectStore", OBJECT_STORE, object_store_spec(ctx, location),
                        [plugin, backup_secret], api_version="barmancloud.cnpg.io/v1")
        before_cluster += [backup_secret, store]
        ready += [backup_secret, store]

    cluster = _custom(ctx, "postgres-cluster", "Cluster", CLUSTER, cluster_spec(ctx, roles), before_cluster,
                      protect=True, annotations=cluster_ready(ctx))
    ready += [*secrets, cluster]
    applied: dict[str, pulumi.Resource] = {}
    for name in owned:
        # Created with the Cluster, on what it waits for (so the await's clock starts with the bootstrap), not after
        # its Ready. Destroy stays safe without that edge: the Database depends on the operator, so `pulumi destroy`
        # removes the operator only after every Database is gone, and its finalizer (cnpg.io/deleteDatabase) is
        # released either by the primary (the Database deleted first; `retain` drops nothing) or, when the Cluster
        # goes first, by the operator, which strips it from every Database of a deleted Cluster
        # (notifyDeletionToOwnedResources, internal/controller/finalizers_delete.go at v1.30.0).
        applied[name] = _custom(ctx, f"postgres-database-{name}", "Database", f"{CLUSTER}-{name}".replace("_", "-"),
                                database_spec(name), before_cluster, protect=True, annotations=database_applied(ctx))
    ready += applied.values()
    databases = {name: Database(name=name, owner=name, credentials=credentials, ready=[applied[name]])
                 for name, credentials in credentials_of.items()}
    if ctx.backup is not None:
        ready.append(_custom(ctx, "postgres-scheduled-backup", "ScheduledBackup", f"{CLUSTER}-base-backup",
                             scheduled_backup_spec(ctx), [cluster]))
    ready.append(_custom(ctx, "postgres-pod-monitor", "PodMonitor", CLUSTER, pod_monitor_spec(), [ns, *after],
                         api_version="monitoring.coreos.com/v1"))

    return PostgresEndpoint(
        host=RW_HOST, read_host=f"{CLUSTER}-ro.{NAMESPACE}.svc", port=PORT,
        databases=databases, ca_secret=f"{CLUSTER}-ca", namespace=NAMESPACE, pod_labels=dict(CLUSTER_SELECTOR),
        ready=ready)

