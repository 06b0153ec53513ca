"""Restore drills: on `dataPlane.drills.schedule` (default weekly; `schedules.<store>` per store, ClickHouse's by
default a day later: config/data.py STAGGERED_SCHEDULES), each drilled store's latest backup is restored
into a scratch instance in the namespace `dr-drills`, checked for a canary written before the backup, timed and
torn down. A backup that has never been restored is a hope; this makes it a weekly fact, with alerts.

How a drill is built (the convention every store follows; a new store adds a `Drill` to DRILLS, its canary writer
to CANARIES, a `check_<store>` function to drill.sh and its name to config/data.py DRILLED_STORES; a store that
backs up adds where its last backup shows to BACKUP_SERIES and its schedule to `backup_ages`, drilled or not):

- **Canary writer**: a CronJob in the store's own namespace (CANARY_SCHEDULE, hourly) that writes the current time
  into the store with a credential that reaches only the canary (PostgreSQL: the role and database
  `drill_canary`, postgres.py; Redpanda: the SASL user `drill-canary`, Write on the topic `drill-canary` only;
  ClickHouse: the user `drill_canary`, create and insert in its own database only, clickhouse/users.py).
  It runs where the store's clients run: the scratch namespace never holds a production credential.
- **Scratch instance**: the operator's own restore path, as a manifest (`Drill.scratch`) the drill Job applies in
  `dr-drills` and deletes afterwards, with its own small resources (a store restored by our own job, Redpanda: a
  plain Pod of the store's image that downloads the backup itself, replayed by `check_<store>`; ClickHouse, whose
  operator watches only its own namespace: a plain Pod of one server with an embedded Keeper and a clickhouse-backup
  container, restored by `check_clickhouse`). It reads the
  backup with the key pair `backupCredentials.drills` (read-only at the provider: docs/restore-drills.md), never
  a writer's keys.
- **Drill Job** (CronJob `drill-<store>` in `dr-drills`, drill.sh): apply, wait for `Drill.ready`, run
  `check_<store>` (the store's own consistency checks, then the newest canary's time), fail when the canary is
  older than `dataPlane.drills.maxDataAgeHours`, tear down. Its ServiceAccount may create and delete the scratch
  kinds and exec into pods in `dr-drills` only (Velero's drill aside: its Restores in `velero`, under an admission
  policy, section "Velero").
- **Metrics** without new components: kube-state-metrics' CronJob and Job series (last success, start and
  completion times) and each store's last-backup timestamp (BACKUP_SERIES: every store that backs up, drilled or
  not, and Velero). The PrometheusRule here alerts on a failed drill, a drill older than two schedule periods and
  a backup older than two backup periods (it ships with the drills: `drills.enabled: false` drops it too); the
  Grafana dashboard "Restore drills" (components/platform/dashboards) shows the same series.

`dr-drills` is default-deny like every namespace: it reaches DNS, the API server, the backups' S3 endpoint and
nothing of production; the store's operator reaches the scratch pods (the operator's namespace lists it as a peer).
Stores not drilled, and why, are in docs/restore-drills.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components import charts, cronjob, yamltext
from components.data import postgres, redpanda, redpanda_backup
from components.data.clickhouse import backup as clickhouse_backup
from components.data.clickhouse import installation as clickhouse_installation
from components.data.clickhouse import topology as clickhouse_topology
from components.data.clickhouse import users as clickhouse_users
from components.data.clickhouse.backup import IMAGE as CURL_IMAGE
from components.data import dragonfly
from components.data.context import CANARY_RETENTION_DAYS, DRILL_NAMESPACE, LAYER, DataContext, pinned_resources
from components.data.endpoints import DrillsEndpoint, S3Location
from components.data import scylladb
from components.data.scylladb import bootstrap as scylladb_bootstrap
from components.data.scylladb import manager as scylladb_manager
from components.layer import EXCLUDE_FROM_BACKUP
from components.services import backups as velero_backups
from components.services.secrets_backup import SnapshotBackup
from components.services.namespaces import (NO_OWN_ENTRY_POINTS, RESTRICTED_CONTAINER_SECURITY,
                                           RESTRICTED_POD_SECURITY, Namespaces, NamespaceSpec, Peer)
from config.cron import longest_gap_seconds
from config.data import CANARY_SCHEDULE
from config.load import S3Keys
from config.quantity import memory_mib

NAMESPACE = DRILL_NAMESPACE
SCRIPT = Path(__file__).with_name("drill.sh")
SCRIPTS = "drill-scripts"  # ConfigMap: drill.sh and the scratch manifests
MOUNT = "/drill"
SERVICE_ACCOUNT = "drill"
S3_SECRET = "drill-backup-s3"  # the read-only keys (ACCESS_KEY_ID, ACCESS_SECRET_KEY)
RULE = "restore-drills"
# kubectl and bash, pinned (the GitLab chart's hook image; it runs as nobody).
DRIVER_IMAGE = charts.GITLAB_KUBECTL_IMAGE
NOBODY = 65534
DRIVER_RESOURCES = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}
CANARY_RESOURCES = {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}}
SCRATCH_CPU, SCRATCH_MEMORY = "1", "2Gi"  # a scratch instance: enough to replay, not to serve
STALE_FACTOR = 2  # a drill or backup is stale after two of its periods without a success


@dataclass(frozen=True)
class Drill:
    """One store's drill: what the drill Job applies, waits for and checks, and what Pulumi creates for it."""

    store: str
    scratch: dict[str, Any]  # the scratch instance's manifest (restores by itself once applied)
    resource: str  # what `kubectl wait` watches: <kind>/<name>
    ready: str  # kubectl wait --for condition
    timeout_seconds: int  # restore budget (modelled, docs/restore-drills.md)
    env: dict[str, str]  # check_<store>'s parameters
    storage: str  # the scratch instance's volumes, summed (the namespace's quota); "" without any
    rbac: tuple[dict[str, Any], ...]  # Role rules for the scratch kinds
    ingress_from: tuple[Peer, ...] = ()  # the store's operator reaching the scratch pods
    check_seconds: int = 0  # what check_<store> may take on top (a replay that runs inside the check)
    objects: Callable[[DataContext, Any, Sequence[pulumi.Resource]], list[pulumi.Resource]] = \
        field(default=lambda ctx, location, after: [])  # what the scratch instance needs before a drill runs


def scratch_labels(ctx: DataContext, store: str) -> dict[str, str]:
    """A scratch instance is created and deleted by its drill Job, not by Pulumi."""
    return {**ctx.labels("restore-drill", store), "app.kubernetes.io/managed-by": "restore-drill"}


# --- PostgreSQL -------------------------------------------------------------------------------------------
PG_SCRATCH = f"drill-{postgres.CLUSTER}"
PG_OBJECT_STORE = f"drill-{postgres.OBJECT_STORE}"


def pg_object_store_spec(ctx: DataContext, location: S3Location) -> dict[str, Any]:
    """The production backups' path, read with the drills' keys; no retention (it never deletes) and no
    WAL/data settings (a scratch cluster restores, it never archives)."""
    return {
        "configuration": postgres.object_store_location(location, S3_SECRET),
        "instanceSidecarConfiguration": {"env": postgres.sidecar_env(location),
                                         "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                                       "limits": {"cpu": "100m", "memory": "128Mi"}}},
    }


def pg_scratch(ctx: DataContext) -> dict[str, Any]:
    """A one-instance Cluster bootstrapped by recovery from the production cluster's backups (the base backup
    and every archived WAL after it: the newest consistent state). `serverName` is the production cluster's: the
    folder its backups sit in. It never archives (no plugins), so it cannot write to the backups."""
    settings = ctx.settings.postgres
    return {
        "apiVersion": postgres.API_VERSION, "kind": "Cluster",
        "metadata": {"name": PG_SCRATCH, "namespace": NAMESPACE, "labels": scratch_labels(ctx, "postgres")},
        "spec": {
            "instances": 1,
            "imageName": charts.POSTGRES_IMAGE,
            "imagePullPolicy": "IfNotPresent",
            "enableSuperuserAccess": False,
            "enablePDB": False,  # one instance: a PDB would block draining its node
            "bootstrap": {"recovery": {"source": "origin"}},
            "externalClusters": [postgres.recovery_source("origin", PG_OBJECT_STORE, postgres.CLUSTER)],
            "storage": {"size": _sum_gi(settings.storage_size, settings.wal_storage_size),
                        "storageClass": ctx.scratch_storage_class},  # deleted with the drill's Cluster
            "resources": {"requests": {"cpu": SCRATCH_CPU, "memory": SCRATCH_MEMORY},
                          "limits": {"cpu": SCRATCH_CPU, "memory": SCRATCH_MEMORY}},
            # A scratch copy is no backup: Velero never copies its volume (as for the production cluster).
            "inheritedMetadata": {"annotations": {postgres.VELERO_EXCLUDE: "pgdata"}},
        },
    }


def _sum_gi(*sizes: str) -> str:
    """Volume sizes (config/data.py: <n>Gi or <n>Ti) added up, in Gi."""
    return f"{sum(memory_mib(s) for s in sizes) // 1024}Gi"


def _pg_objects(ctx: DataContext, location: S3Location, after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    return [ctx.custom_resource("drill-postgres-object-store", "barmancloud.cnpg.io/v1", "ObjectStore",
                                PG_OBJECT_STORE, NAMESPACE, pg_object_store_spec(ctx, location),
                                ctx.labels("restore-drill", "postgres"), after)]


def postgres_drill(ctx: DataContext) -> Drill:
    settings = ctx.settings.postgres
    return Drill(
        store="postgres", scratch=pg_scratch(ctx), resource=f"clusters.postgresql.cnpg.io/{PG_SCRATCH}",
        ready="condition=Ready", timeout_seconds=4 * 3600,
        env={"SCRATCH_POD": f"{PG_SCRATCH}-1", "CANARY_DATABASE": postgres.CANARY},
        storage=_sum_gi(settings.storage_size, settings.wal_storage_size),
        rbac=({"apiGroups": ["postgresql.cnpg.io"], "resources": ["clusters"],
               "verbs": ["get", "list", "watch", "create", "patch", "delete"]},),
        ingress_from=(Peer(postgres.OPERATOR_NAMESPACE, (postgres.STATUS_PORT, postgres.PORT),
                           pod_labels=dict(postgres.OPERATOR_SELECTOR)),),
        objects=_pg_objects)


# The canary: a table of write times in the canary's own database, older rows pruned.
PG_CANARY_SQL = f"""CREATE TABLE IF NOT EXISTS canary (written_at timestamptz PRIMARY KEY DEFAULT now());
INSERT INTO canary DEFAULT VALUES;
DELETE FROM canary WHERE written_at < now() - interval '{CANARY_RETENTION_DAYS} days';
"""


def pg_canary_spec(ctx: DataContext) -> dict[str, Any]:
    """psql as the canary role, over TLS checked against the cluster's CA (the Secret postgres-ca)."""
    secret = postgres.CANARY_SECRET
    env = [{"name": "PGHOST", "value": postgres.RW_HOST},
           {"name": "PGPORT", "value": str(postgres.PORT)},
           {"name": "PGDATABASE", "value": postgres.CANARY},
           {"name": "PGSSLMODE", "value": "verify-full"},
           {"name": "PGSSLROOTCERT", "value": "/ca/ca.crt"},
           {"name": "PGUSER", "valueFrom": {"secretKeyRef": {"name": secret, "key": "username"}}},
           {"name": "PGPASSWORD", "valueFrom": {"secretKeyRef": {"name": secret, "key": "password"}}}]
    container = {"name": "canary", "image": charts.POSTGRES_IMAGE, "imagePullPolicy": "IfNotPresent",
                 "command": ["psql", "--no-psqlrc", "--set", "ON_ERROR_STOP=1", "--file", "/canary/canary.sql"],
                 "env": env, "resources": CANARY_RESOURCES,
                 "securityContext": {**RESTRICTED_CONTAINER_SECURITY, "readOnlyRootFilesystem": True},
                 "volumeMounts": [{"name": "canary", "mountPath": "/canary", "readOnly": True},
                                  {"name": "ca", "mountPath": "/ca", "readOnly": True}]}
    volumes = [{"name": "canary", "configMap": {"name": "drill-canary"}},
               {"name": "ca", "secret": {"secretName": f"{postgres.CLUSTER}-ca", "items": [
                   {"key": "ca.crt", "path": "ca.crt"}]}}]
    return _cronjob(CANARY_SCHEDULE, ctx.labels("restore-drill", "canary"), [container], volumes,
                    service_account=None, deadline=600)


def _pg_canary(ctx: DataContext, after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    labels = ctx.labels("restore-drill", "canary")
    sql = k8s.core.v1.ConfigMap("drill-canary-postgres", metadata=k8s.meta.v1.ObjectMetaArgs(
        name="drill-canary", namespace=postgres.NAMESPACE, labels=labels), data={"canary.sql": PG_CANARY_SQL},
        opts=ctx.opts(after))
    job = k8s.batch.v1.CronJob("drill-canary-postgres", metadata=k8s.meta.v1.ObjectMetaArgs(
        name="drill-canary", namespace=postgres.NAMESPACE, labels=labels), spec=pg_canary_spec(ctx),
        opts=ctx.opts([*after, sql]))
    return [sql, job]


# --- Redpanda ---------------------------------------------------------------------------------------------
# No operator restores Redpanda (the export is our own, redpanda_backup.py): the scratch instance is one broker of
# the production image in dev-container mode, a plain Pod. Its init container downloads the newest finished export
# with the drills' key; check_redpanda replays it into the broker and reads the canary (redpanda-drill-check.sh).
RP_SCRATCH = f"drill-{redpanda.CLUSTER}"
RP_SCRIPTS = "drill-redpanda-scripts"  # ConfigMap in dr-drills: what the scratch pod runs
RP_SCRIPT_FILES = ("redpanda-s3.sh", "redpanda-download.sh", "redpanda-import.sh", "redpanda-drill-check.sh")
RP_CANARY = "drill-canary"  # the canary topic and its writer's SASL user
RP_CANARY_SECRET = "redpanda-drill-canary-user"
RP_CANARY_SCRIPT = "redpanda-canary.sh"
# Every listener but the admin API's (the kubelet's readiness probe) on loopback: the drill reaches the broker by
# exec, nothing reaches it over the network.
RP_LOOPBACK = "127.0.0.1"
RP_KAFKA = f"{RP_LOOPBACK}:9092"
RP_MEMORY = "1G"  # Seastar's share of SCRATCH_MEMORY: the rest is rpk's and the OS's (all of it gets it OOM-killed)
RP_DOWNLOAD_RESOURCES = {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}


def rp_broker_flags() -> list[str]:
    """`rpk redpanda start` of one broker: dev-container mode (overprovisioned, fsync bypassed: a scratch copy),
    one core, every listener on loopback."""
    return ["--mode=dev-container", "--smp=1", f"--memory={RP_MEMORY}", "--reserve-memory=0M",
            f"--kafka-addr={RP_KAFKA}", f"--advertise-kafka-addr={RP_KAFKA}", f"--rpc-addr={RP_LOOPBACK}:33145",
            f"--pandaproxy-addr={RP_LOOPBACK}:8082", f"--schema-registry-addr={RP_LOOPBACK}:8081"]


def rp_scratch(ctx: DataContext) -> dict[str, Any]:
    """One broker replaying the newest finished export: downloaded by the init container (the backup's own
    script, BACKUP=latest, with the drills' read-only key), replayed by check_redpanda. No production credential:
    the broker has no SASL or TLS, and nothing but the drill's exec reaches it."""
    assert ctx.backup is not None  # config/rules.py: drills need off-cluster backups
    location = ctx.backup.of("redpanda")
    scripts = redpanda_backup.SCRIPT_MOUNT
    download = {**redpanda_backup.container(
        "download", CURL_IMAGE, "redpanda-download.sh",
        [{"name": "BACKUP", "value": "latest"},
         *redpanda_backup.s3_env(location, S3_SECRET, secret_key="ACCESS_SECRET_KEY")], ca=False),
        "resources": RP_DOWNLOAD_RESOURCES}
    broker = {
        "name": "redpanda", "image": redpanda_backup.REDPANDA_IMAGE, "imagePullPolicy": "IfNotPresent",
        "command": ["rpk", "redpanda", "start", *rp_broker_flags()],
        # what redpanda-drill-check.sh (exec'd here) reads: rpk's connection to this broker, the export, the canary
        "env": [{"name": k, "value": v} for k, v in {
            "RPK_BROKERS": RP_KAFKA, "RPK_ADMIN_HOSTS": f"{RP_LOOPBACK}:{redpanda.ADMIN_PORT}",
            "WORK": redpanda_backup.WORK, "CANARY_TOPIC": RP_CANARY, "REPLICAS": "1", "HOME": "/tmp"}.items()],
        "readinessProbe": {"httpGet": {"path": "/v1/status/ready", "port": redpanda.ADMIN_PORT},
                           "periodSeconds": 10, "failureThreshold": 3},
        "resources": {"requests": {"cpu": SCRATCH_CPU, "memory": SCRATCH_MEMORY},
                      "limits": {"cpu": SCRATCH_CPU, "memory": SCRATCH_MEMORY}},
        "securityContext": {**RESTRICTED_CONTAINER_SECURITY, "readOnlyRootFilesystem": True},
        "volumeMounts": [{"name": "data", "mountPath": "/var/lib/redpanda/data"},
                         {"name": "config", "mountPath": "/etc/redpanda"},  # rpk writes redpanda.yaml at start
                         {"name": "work", "mountPath": redpanda_backup.WORK},
                         {"name": "scripts", "mountPath": scripts, "readOnly": True},
                         {"name": "tmp", "mountPath": "/tmp"}],
    }
    uid = redpanda_backup.REDPANDA_UID
    return scratch_pod(
        ctx, RP_SCRATCH, "redpanda", {**RESTRICTED_POD_SECURITY, "runAsUser": uid, "runAsGroup": uid, "fsGroup": uid},
        [broker], [{"name": "scripts", "configMap": {"name": RP_SCRIPTS, "defaultMode": 0o555}},
                   {"name": "work", **redpanda_backup.broker_sized_volume(ctx)},
                   {"name": "data", **redpanda_backup.broker_sized_volume(ctx)},
                   {"name": "config", "emptyDir": {"sizeLimit": "16Mi"}},
                   {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
        init=[download])


def scratch_pod(ctx: DataContext, name: str, store: str, security: dict[str, Any], containers: list[dict[str, Any]],
                volumes: list[dict[str, Any]], init: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """A scratch copy: a bare Pod in the drills' namespace that runs once, holds no API token (it talks to S3 and to
    itself) and gets no Service links."""
    spec: dict[str, Any] = {"restartPolicy": "Never", "automountServiceAccountToken": False,
                            "enableServiceLinks": False, "securityContext": security}
    if init:
        spec["initContainers"] = list(init)
    spec |= {"containers": containers, "volumes": volumes}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": scratch_labels(ctx, store)}, "spec": spec}


def nobody_security() -> dict[str, Any]:
    """Restricted, as uid/gid 65534 owning its volumes."""
    return {**RESTRICTED_POD_SECURITY, "runAsUser": NOBODY, "runAsGroup": NOBODY, "fsGroup": NOBODY}


def _scripts(ctx: DataContext, store: str, name: str, files: Mapping[str, Path],
             after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    """A scratch copy's scripts (file name -> source), mounted from one ConfigMap `name` in the drills' namespace."""
    return [k8s.core.v1.ConfigMap(f"drill-{store}-scripts", metadata=k8s.meta.v1.ObjectMetaArgs(
        name=name, namespace=NAMESPACE, labels=ctx.labels("restore-drill", store)),
        data={file: source.read_text() for file, source in files.items()}, opts=ctx.opts(after))]


def _rp_objects(ctx: DataContext, location: S3Location, after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    return _scripts(ctx, "redpanda", RP_SCRIPTS, {f: redpanda_backup.SCRIPTS / f for f in RP_SCRIPT_FILES}, after)


def redpanda_drill(ctx: DataContext) -> Drill:
    size = ctx.settings.redpanda.storage_size
    return Drill(
        store="redpanda", scratch=rp_scratch(ctx), resource=f"pod/{RP_SCRATCH}", ready="condition=Ready",
        # the download, then the replay (check_redpanda): each as long as the export's own budget
        timeout_seconds=redpanda_backup.JOB_DEADLINE_SECONDS, check_seconds=redpanda_backup.JOB_DEADLINE_SECONDS,
        env={"SCRATCH_POD": RP_SCRATCH},
        storage=_sum_gi(size, size),  # the downloaded export and the broker's data
        # a Pod is the scratch kind: `apply` reads and patches it, teardown deletes it
        rbac=({"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "patch", "delete"]},),
        objects=_rp_objects)


def rp_canary_acls() -> list[dict[str, Any]]:
    """Write the canary topic (literal name) and nothing else; IdempotentWrite as every producer (rpk's producer is
    idempotent). No Read: the writer never sees what it wrote."""
    return [{"type": "allow", "resource": {"type": "topic", "name": RP_CANARY, "patternType": "literal"},
             "operations": ["Write", "Describe"]},
            {"type": "allow", "resource": {"type": "cluster", "name": ""}, "operations": ["IdempotentWrite"]}]


def rp_canary_topic_spec() -> dict[str, Any]:
    """One partition (the newest canary is the last record), kept CANARY_RETENTION_DAYS; replicas: the cluster's."""
    return {"cluster": {"clusterRef": {"name": redpanda.CLUSTER}}, "partitions": 1,
            "additionalConfig": {"cleanup.policy": "delete",
                                 "retention.ms": str(CANARY_RETENTION_DAYS * 86400 * 1000)}}


def rp_canary_spec(ctx: DataContext) -> dict[str, Any]:
    """rpk as the canary user, over TLS checked against the brokers' CA (the backup jobs' connection)."""
    ca = redpanda_backup.CA_MOUNT
    container = {"name": "canary", "image": redpanda_backup.REDPANDA_IMAGE, "imagePullPolicy": "IfNotPresent",
                 "command": ["/bin/bash", f"/canary/{RP_CANARY_SCRIPT}"],
                 "env": [{"name": "CANARY_TOPIC", "value": RP_CANARY}, {"name": "HOME", "value": "/tmp"},
                         *redpanda_backup.rpk_env(ctx, RP_CANARY_SECRET)],
                 "resources": CANARY_RESOURCES,
                 "securityContext": {**RESTRICTED_CONTAINER_SECURITY, "readOnlyRootFilesystem": True},
                 "volumeMounts": [{"name": "canary", "mountPath": "/canary", "readOnly": True},
                                  {"name": "ca", "mountPath": ca, "readOnly": True},
                                  {"name": "tmp", "mountPath": "/tmp"}]}
    volumes = [{"name": "canary", "configMap": {"name": "drill-canary"}},
               {"name": "ca", "secret": {"secretName": redpanda.CA_SECRET, "items": [
                   {"key": "ca.crt", "path": "ca.crt"}]}},
               {"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}]
    return _cronjob(CANARY_SCHEDULE, ctx.labels("restore-drill", "canary"), [container], volumes,
                    service_account=None, deadline=600, run_as=redpanda_backup.REDPANDA_UID)


def _rp_canary(ctx: DataContext, after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    labels = ctx.labels("restore-drill", "canary")
    topic = ctx.custom_resource("drill-canary-redpanda-topic", "cluster.redpanda.com/v1alpha2", "Topic", RP_CANARY,
                                redpanda.NAMESPACE, rp_canary_topic_spec(), labels, after,
                                immutable=("cluster",))  # a Topic's cluster cannot change either
    user = redpanda_backup.sasl_user(ctx, RP_CANARY, RP_CANARY_SECRET, rp_canary_acls(), after, component="canary")
    return [topic, *user, *_canary_script_job(ctx, "redpanda", redpanda.NAMESPACE,
                                              redpanda_backup.SCRIPTS / RP_CANARY_SCRIPT, rp_canary_spec(ctx),
                                              after, job_after=[topic, *user])]


# --- ClickHouse -------------------------------------------------------------------------------------------
# The production tables are Replicated (Keeper, the operator's macros) and the operator watches only `clickhouse`:
# the scratch instance is one server of the production image in a plain Pod, with an embedded single-node Keeper,
# the operator's macros and the cluster's name (a one-host cluster), every port on loopback. Its clickhouse-backup
# container reads the backups with the drills' key; check_clickhouse restores each shard's newest complete backup in
# turn (`restore_remote --rm`), checks every MergeTree table's parts and reads the shard's canary.
CH_SCRATCH = "drill-clickhouse"
CH_CONFIG = "drill-clickhouse-config"  # ConfigMap in dr-drills: the scratch server's config.d and users.d
CH_LOOPBACK = "127.0.0.1"
CH_KEEPER_PORT, CH_RAFT_PORT = 9181, 9234  # the embedded Keeper's client and Raft ports (ClickHouse's defaults)
CH_BACKUP_RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}
CH_SHARD_SECONDS = 4 * 3600  # one shard's download, restore and checks (modelled, docs/restore-drills.md)
CH_CANARY_SCRIPT = "clickhouse-canary.sh"
CH_CANARY = Path(__file__).parent / "clickhouse" / CH_CANARY_SCRIPT


def ch_server_config() -> str:
    """config.d of the scratch server (replaces the image's, which listens on every address). The macros are the
    operator's (pkg/model/chi/config/generator.go getHostMacros), so the backups' Replicated engines resolve."""
    macros = {"installation": clickhouse_topology.INSTALLATION, "all-sharded-shard": "0",
              "cluster": clickhouse_topology.CLUSTER, "shard": "0", "replica": "drill"}
    cluster, port = clickhouse_topology.CLUSTER, clickhouse_topology.NATIVE_PORT
    return f"""<clickhouse>
    <listen_host>{CH_LOOPBACK}</listen_host>
    <logger><level>information</level><console>1</console></logger>
    <keeper_server>
        <tcp_port>{CH_KEEPER_PORT}</tcp_port>
        <server_id>1</server_id>
        <log_storage_path>/var/lib/clickhouse/coordination/log</log_storage_path>
        <snapshot_storage_path>/var/lib/clickhouse/coordination/snapshots</snapshot_storage_path>
        <raft_configuration>
            <server><id>1</id><hostname>{CH_LOOPBACK}</hostname><port>{CH_RAFT_PORT}</port></server>
        </raft_configuration>
    </keeper_server>
    <zookeeper><node><host>{CH_LOOPBACK}</host><port>{CH_KEEPER_PORT}</port></node></zookeeper>
    <macros>{''.join(f'<{k}>{v}</{k}>' for k, v in macros.items())}</macros>
    <remote_servers><{cluster}><shard><replica>
        <host>{CH_LOOPBACK}</host><port>{port}</port>
    </replica></shard></{cluster}></remote_servers>
</clickhouse>
"""


# users.d: the built-in `default` user (no password; clickhouse-backup's and the checks' login) from loopback only.
CH_USERS = """<clickhouse>
    <users><default><networks replace="replace"><ip>::1</ip><ip>127.0.0.1</ip></networks></default></users>
</clickhouse>
"""


def ch_scratch(ctx: DataContext) -> dict[str, Any]:
    """One server and a clickhouse-backup container reading with the drills' key: no production credential, no
    Service, nothing listening beyond loopback (the readiness probe runs the client inside the pod)."""
    assert ctx.backup is not None  # config/rules.py: drills need off-cluster backups
    location = ctx.backup.of("clickhouse")
    data = {"name": "data", "mountPath": "/var/lib/clickhouse"}  # both containers: clickhouse-backup reads the parts
    server = {
        "name": "clickhouse", "image": clickhouse_installation.SERVER_IMAGE, "imagePullPolicy": "IfNotPresent",
        # the server itself, not the image's entrypoint (which writes users and config under /etc)
        "command": ["/usr/bin/clickhouse-server", "--config-file=/etc/clickhouse-server/config.xml"],
        "readinessProbe": {"exec": {"command": ["clickhouse-client", "--host", CH_LOOPBACK, "--query", "SELECT 1"]},
                           "periodSeconds": 10, "failureThreshold": 3},
        "resources": {"requests": {"cpu": SCRATCH_CPU, "memory": SCRATCH_MEMORY},
                      "limits": {"cpu": SCRATCH_CPU, "memory": SCRATCH_MEMORY}},
        "securityContext": {**RESTRICTED_CONTAINER_SECURITY, "readOnlyRootFilesystem": True},
        "volumeMounts": [data,
                         {"name": "config-d", "mountPath": "/etc/clickhouse-server/config.d", "readOnly": True},
                         {"name": "users-d", "mountPath": "/etc/clickhouse-server/users.d", "readOnly": True},
                         {"name": "logs", "mountPath": "/var/log/clickhouse-server"},
                         {"name": "tmp", "mountPath": "/tmp"}],
    }
    reader = {
        "name": "clickhouse-backup", "image": clickhouse_backup.IMAGE, "imagePullPolicy": "IfNotPresent",
        "args": ["server"],  # idles until check_clickhouse execs the CLI; its API on loopback, no metrics
        "env": [*({"name": k, "value": v} for k, v in {
                    "LOG_LEVEL": "info", "API_LISTEN": f"{CH_LOOPBACK}:{clickhouse_topology.BACKUP_API_PORT}",
                    "API_ENABLE_METRICS": "false", "CLICKHOUSE_HOST": CH_LOOPBACK,
                    "BACKUPS_TO_KEEP_LOCAL": "0", "BACKUPS_TO_KEEP_REMOTE": "0",  # never deletes anything remote
                    **clickhouse_backup.remote_env(location)}.items()),
                {"name": "S3_ACCESS_KEY", "valueFrom": {"secretKeyRef": {"name": S3_SECRET, "key": "ACCESS_KEY_ID"}}},
                {"name": "S3_SECRET_KEY",
                 "valueFrom": {"secretKeyRef": {"name": S3_SECRET, "key": "ACCESS_SECRET_KEY"}}}],
        "resources": CH_BACKUP_RESOURCES,
        "securityContext": {**RESTRICTED_CONTAINER_SECURITY, "readOnlyRootFilesystem": True},
        "volumeMounts": [data, {"name": "tmp", "mountPath": "/tmp"}],
    }
    return scratch_pod(
        ctx, CH_SCRATCH, "clickhouse", clickhouse_installation.POD_SECURITY, [server, reader],
        [{"name": "data", **ctx.scratch_volume(ctx.settings.clickhouse.storage_size)},
         {"name": "config-d", "configMap": {"name": CH_CONFIG, "items": [{"key": "drill.xml", "path": "drill.xml"}]}},
         {"name": "users-d", "configMap": {"name": CH_CONFIG, "items": [{"key": "users.xml", "path": "drill.xml"}]}},
         {"name": "logs", "emptyDir": {"sizeLimit": "1Gi"}},
         {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}])


def _ch_objects(ctx: DataContext, location: S3Location, after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    return [k8s.core.v1.ConfigMap("drill-clickhouse-config", metadata=k8s.meta.v1.ObjectMetaArgs(
        name=CH_CONFIG, namespace=NAMESPACE, labels=ctx.labels("restore-drill", "clickhouse")),
        data={"drill.xml": ch_server_config(), "users.xml": CH_USERS}, opts=ctx.opts(after))]


def clickhouse_drill(ctx: DataContext) -> Drill:
    assert ctx.backup is not None
    shards = ctx.settings.clickhouse.shards
    return Drill(
        store="clickhouse", scratch=ch_scratch(ctx), resource=f"pod/{CH_SCRATCH}", ready="condition=Ready",
        timeout_seconds=1800,  # the volume and the server starting: the restore runs in check_clickhouse
        check_seconds=shards * CH_SHARD_SECONDS,
        env={"SCRATCH_POD": CH_SCRATCH, "SHARDS": " ".join(str(s) for s in range(shards)),
             "BACKUP_PATH": clickhouse_backup.backup_path(ctx.backup.of("clickhouse")),
             "CANARY_DATABASE": clickhouse_users.CANARY},
        storage=_sum_gi(ctx.settings.clickhouse.storage_size),  # one shard at a time, its parts hard-linked
        rbac=({"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "patch", "delete"]},),
        objects=_ch_objects)


def ch_canary_spec(ctx: DataContext) -> dict[str, Any]:
    """clickhouse-client as the canary user: one replica per shard gets the canary row (replication copies it),
    every replica the database and table (created without ON CLUSTER: the user has no CLUSTER privilege)."""
    t = clickhouse_topology.of(ctx)
    secret = clickhouse_users.CANARY_SECRET
    env = [{"name": "SHARDS", "value": " ".join(",".join(replicas) for replicas in t.hosts())},
           {"name": "DOMAIN", "value": f"{clickhouse_topology.NAMESPACE}.svc"},
           {"name": "PORT", "value": str(clickhouse_topology.NATIVE_PORT)},
           {"name": "CANARY_DATABASE", "value": clickhouse_users.CANARY},
           {"name": "RETENTION_DAYS", "value": str(CANARY_RETENTION_DAYS)},
           {"name": "HOME", "value": "/tmp"},
           {"name": "CLICKHOUSE_USER", "valueFrom": {"secretKeyRef": {"name": secret, "key": "username"}}},
           {"name": "CLICKHOUSE_PASSWORD", "valueFrom": {"secretKeyRef": {"name": secret, "key": "password"}}}]
    return _script_canary(ctx, clickhouse_installation.SERVER_IMAGE, CH_CANARY_SCRIPT, env, CANARY_RESOURCES,
                          run_as=clickhouse_installation.CLICKHOUSE_UID)


def _script_canary(ctx: DataContext, image: str, script: str, env: list[dict[str, Any]], resources: dict[str, Any],
                   run_as: int) -> dict[str, Any]:
    """The hourly canary writer that runs `script` (ConfigMap drill-canary in the store's namespace) with the
    store's client `image`, its login in `env` by Secret reference; no API token."""
    container = {"name": "canary", "image": image, "imagePullPolicy": "IfNotPresent",
                 "command": ["/bin/bash", f"/canary/{script}"], "env": env, "resources": resources,
                 "securityContext": {**RESTRICTED_CONTAINER_SECURITY, "readOnlyRootFilesystem": True},
                 "volumeMounts": [{"name": "canary", "mountPath": "/canary", "readOnly": True},
                                  {"name": "tmp", "mountPath": "/tmp"}]}
    volumes = [{"name": "canary", "configMap": {"name": "drill-canary"}},
               {"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}]
    return _cronjob(CANARY_SCHEDULE, ctx.labels("restore-drill", "canary"), [container], volumes,
                    service_account=None, deadline=600, run_as=run_as)


def _canary_script_job(ctx: DataContext, store: str, namespace: str, script: Path, spec: Any,
                       after: Sequence[pulumi.Resource],
                       job_after: Sequence[pulumi.Resource] = ()) -> list[pulumi.Resource]:
    """A store's canary writer: its script as the ConfigMap `drill-canary` and the CronJob `drill-canary` that runs
    it (`spec`), both in the store's namespace; the CronJob also waits for `job_after` (what its credential needs)."""
    metadata = k8s.meta.v1.ObjectMetaArgs(name="drill-canary", namespace=namespace,
                                          labels=ctx.labels("restore-drill", "canary"))
    config = k8s.core.v1.ConfigMap(f"drill-canary-{store}", metadata=metadata,
                                   data={script.name: script.read_text()}, opts=ctx.opts(after))
    job = k8s.batch.v1.CronJob(f"drill-canary-{store}", metadata=metadata, spec=spec,
                               opts=ctx.opts([*after, *job_after, config]))
    return [config, job]


def _ch_canary(ctx: DataContext, after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    return _canary_script_job(ctx, "clickhouse", clickhouse_topology.NAMESPACE, CH_CANARY, ch_canary_spec(ctx), after)


# --- etcd (K3s' snapshots) --------------------------------------------------------------------------------
# Restoring a snapshot into the cluster would replace its datastore: the drill restores it into a throwaway etcd of
# the same minor in a plain Pod instead (etcdutl, then etcd on loopback), never a K3s server. The snapshot holds the
# whole cluster state; Secrets in it stay encrypted with the servers' key (K3s secrets-encryption), which the scratch
# pod never has. The canary is a ConfigMap in dr-drills whose time the canary CronJob there patches hourly.
ETCD_SCRATCH = "drill-etcd"
ETCD_SCRIPTS = "drill-etcd-scripts"  # ConfigMap in dr-drills: the download and the canary writer
ETCD_SCRIPT_FILES = ("redpanda-s3.sh", "etcd-download.sh", "etcd-canary.sh")
ETCD_CANARY = "drill-canary"  # the ConfigMap, and its writer's ServiceAccount and Role
ETCD_CANARY_DATA_KEY = "written-at"
ETCD_CANARY_MARKER = "drill-canary@"  # before the Unix time: found in the protobuf value as it is
ETCD_CANARY_KEY = f"/registry/configmaps/{NAMESPACE}/{ETCD_CANARY}"  # K3s' etcd keys: the API server's /registry
ETCD_DATA_DIR = f"{redpanda_backup.WORK}/etcd"
ETCD_STORAGE = "16Gi"  # the snapshot and the restored datastore (etcd's backend is at most 8 GiB)
ETCD_LOOPBACK = "http://127.0.0.1"


def etcd_server_command() -> list[str]:
    """One member serving the restored data directory, clients and peers on loopback only."""
    return ["etcd", "--name=default", f"--data-dir={ETCD_DATA_DIR}",
            f"--listen-client-urls={ETCD_LOOPBACK}:2379", f"--advertise-client-urls={ETCD_LOOPBACK}:2379",
            f"--listen-peer-urls={ETCD_LOOPBACK}:2380"]


def etcd_scratch(ctx: DataContext) -> dict[str, Any]:
    """Download (the drills' read-only key), `etcdutl snapshot restore` (verifies the snapshot's hash), etcd."""
    assert ctx.backup is not None and ctx.backup.etcd is not None  # config/rules.py: drills need the S3 and key
    download = {**redpanda_backup.container("download", CURL_IMAGE, "etcd-download.sh", redpanda_backup.s3_env(
        ctx.backup.etcd, S3_SECRET, secret_key="ACCESS_SECRET_KEY"), ca=False), "resources": RP_DOWNLOAD_RESOURCES}
    work = {"name": "work", "mountPath": redpanda_backup.WORK}
    restore = {"name": "restore", "image": charts.ETCD_IMAGE, "imagePullPolicy": "IfNotPresent",
               "command": ["etcdutl", "snapshot", "restore", f"{redpanda_backup.WORK}/snapshot.db",
                           f"--data-dir={ETCD_DATA_DIR}"],
               "resources": RP_DOWNLOAD_RESOURCES, "volumeMounts": [work],
               "securityContext": {**RESTRICTED_CONTAINER_SECURITY, "readOnlyRootFilesystem": True}}
    server = {"name": "etcd", "image": charts.ETCD_IMAGE, "imagePullPolicy": "IfNotPresent",
              "command": etcd_server_command(),
              "readinessProbe": {"exec": {"command": ["etcdctl", f"--endpoints={ETCD_LOOPBACK}:2379", "endpoint",
                                                      "health"]}, "periodSeconds": 10, "failureThreshold": 3},
              "resources": {"requests": {"cpu": SCRATCH_CPU, "memory": SCRATCH_MEMORY},
                            "limits": {"cpu": SCRATCH_CPU, "memory": SCRATCH_MEMORY}},
              "securityContext": {**RESTRICTED_CONTAINER_SECURITY, "readOnlyRootFilesystem": True},
              "volumeMounts": [work]}
    return scratch_pod(
        ctx, ETCD_SCRATCH, "etcd", nobody_security(), [server],
        [{"name": "scripts", "configMap": {"name": ETCD_SCRIPTS, "defaultMode": 0o555}},
         {"name": "work", **ctx.scratch_volume(ETCD_STORAGE)},
         {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
        init=[download, restore])


def _etcd_objects(ctx: DataContext, location: S3Location, after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    return _scripts(ctx, "etcd", ETCD_SCRIPTS, {f: redpanda_backup.SCRIPTS / f for f in ETCD_SCRIPT_FILES}, after)


def etcd_drill(ctx: DataContext) -> Drill:
    return Drill(
        store="etcd", scratch=etcd_scratch(ctx), resource=f"pod/{ETCD_SCRATCH}", ready="condition=Ready",
        timeout_seconds=3600,  # a few GiB downloaded, restored and served
        env={"SCRATCH_POD": ETCD_SCRATCH, "CANARY_KEY": ETCD_CANARY_KEY, "CANARY_MARKER": ETCD_CANARY_MARKER},
        storage=ETCD_STORAGE,
        rbac=({"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "patch", "delete"]},),
        objects=_etcd_objects)


def etcd_canary_spec(ctx: DataContext) -> dict[str, Any]:
    """kubectl as drill-canary, which may get and patch the canary ConfigMap only."""
    env = {"NAMESPACE": NAMESPACE, "CANARY_CONFIGMAP": ETCD_CANARY, "CANARY_KEY": ETCD_CANARY_DATA_KEY,
           "CANARY_MARKER": ETCD_CANARY_MARKER, "HOME": "/tmp"}
    container = {"name": "canary", "image": DRIVER_IMAGE, "imagePullPolicy": "IfNotPresent",
                 "command": ["/bin/bash", "/canary/etcd-canary.sh"],
                 "env": [{"name": k, "value": v} for k, v in env.items()], "resources": CANARY_RESOURCES,
                 "securityContext": {**RESTRICTED_CONTAINER_SECURITY, "readOnlyRootFilesystem": True},
                 "volumeMounts": [{"name": "canary", "mountPath": "/canary", "readOnly": True},
                                  {"name": "tmp", "mountPath": "/tmp"}]}
    volumes = [{"name": "canary", "configMap": {"name": ETCD_SCRIPTS, "items": [
                   {"key": "etcd-canary.sh", "path": "etcd-canary.sh"}]}},
               {"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}]
    return _cronjob(CANARY_SCHEDULE, ctx.labels("restore-drill", "canary"), [container], volumes,
                    service_account=ETCD_CANARY, deadline=600, run_as=NOBODY)


def _etcd_canary(ctx: DataContext, after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    labels = ctx.labels("restore-drill", "canary")
    meta = k8s.meta.v1.ObjectMetaArgs(name=ETCD_CANARY, namespace=NAMESPACE, labels=labels)
    # Created empty; its data is the CronJob's (ignore_changes: Pulumi never resets the time it wrote).
    canary = k8s.core.v1.ConfigMap("drill-canary-etcd", metadata=meta, opts=pulumi.ResourceOptions.merge(
        ctx.opts(after), pulumi.ResourceOptions(ignore_changes=["data"])))
    account = k8s.core.v1.ServiceAccount("drill-canary-etcd", metadata=meta, opts=ctx.opts(after))
    role = k8s.rbac.v1.Role("drill-canary-etcd", metadata=meta, rules=[
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [ETCD_CANARY], "verbs": ["get", "patch"]}],
        opts=ctx.opts(after))
    binding = k8s.rbac.v1.RoleBinding("drill-canary-etcd", metadata=meta,
        role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ETCD_CANARY},
        subjects=[{"kind": "ServiceAccount", "name": ETCD_CANARY, "namespace": NAMESPACE}],
        opts=ctx.opts([*after, account, role]))
    job = k8s.batch.v1.CronJob("drill-canary-etcd", metadata=meta, spec=etcd_canary_spec(ctx),
                               opts=ctx.opts([*after, canary, binding]))
    return [canary, account, role, binding, job]


# --- ScyllaDB ---------------------------------------------------------------------------------------------
# Scylla Manager's restore runs in the one Manager that also manages production (docs/restore-drills.md): the drill
# never talks to it. The scratch instance is one ScyllaDB node of the production image in a plain Pod, every address
# on loopback; its init container downloads every node's SSTables of the canary table from the newest complete
# Manager snapshot with the drills' key (scylladb-drill-download.sh); check_scylladb creates the table from our own
# definition, loads each node's files with `nodetool refresh --load-and-stream` and reads the newest canary.
SC_SCRATCH = "drill-scylladb"
SC_SCRIPTS = "drill-scylladb-scripts"  # ConfigMap in dr-drills: the download
SC_DOWNLOAD = "scylladb-drill-download.sh"
SC_CANARY_SCRIPT = "scylladb-canary.sh"  # the canary writer, in the scylla namespace
SC_SCRIPT_MOUNT = "/scripts"
SC_WORK = "/work"  # the download's output: WORK/nodes/<node>/<SSTable files>
SC_LOOPBACK = "127.0.0.1"
# SimpleSnitch (ScyllaDB's default, nothing configures another here) puts the node in this data center.
SC_DATACENTER = "datacenter1"
SC_MEMORY = "1G"  # Seastar's share of SCRATCH_MEMORY: the rest is cqlsh's, nodetool's and the OS's
SC_DATA_SIZE = "10Gi"  # the commit log's segments and the canary table: no production table is loaded
SC_WORK_SIZE = "1Gi"  # every node's share of the canary table: hourly rows for CANARY_RETENTION_DAYS
SC_DOWNLOAD_RESOURCES = {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}


def sc_server_args() -> list[str]:
    """`scylla` itself (not the image's entrypoint: its setup scripts write under /etc and refuse non-root): one
    shard, overprovisioned (it shares the node), every address on loopback. Developer mode: ScyllaDB refuses a data
    directory that is not XFS and wants iotune's measured I/O properties otherwise, and a scratch volume's file system
    is whatever the storage class formats (ext4 on most CSI drivers)."""
    return ["--developer-mode=1", "--smp", "1", "--memory", SC_MEMORY, "--overprovisioned",
            "--workdir", "/var/lib/scylla", "--listen-address", SC_LOOPBACK, "--rpc-address", SC_LOOPBACK,
            "--api-address", SC_LOOPBACK, "--prometheus-address", SC_LOOPBACK,  # metrics default to every address
            "--seed-provider-parameters", f"seeds={SC_LOOPBACK}"]


def sc_scratch(ctx: DataContext) -> dict[str, Any]:
    """One ScyllaDB node, no authentication (nothing but the drill's exec reaches it), and an init container that
    downloads the canary table's SSTables with the drills' read-only key: no production credential, no Service."""
    assert ctx.backup is not None  # config/rules.py: drills need off-cluster backups
    location = ctx.backup.of("scylladb")
    work = {"name": "work", "mountPath": SC_WORK}
    download = {
        "name": "download", "image": CURL_IMAGE, "imagePullPolicy": "IfNotPresent",  # Alpine: bash, curl, gzip, awk
        "command": ["/bin/bash", f"{SC_SCRIPT_MOUNT}/{SC_DOWNLOAD}"],
        # Manager writes at the bucket's root (scylladb/cluster.py backup_location): no prefix
        "env": [*({"name": k, "value": v} for k, v in {
                    "WORK": SC_WORK, "KEYSPACE": scylladb_bootstrap.CANARY, "TABLE": scylladb_bootstrap.CANARY_TABLE,
                    "S3_ENDPOINT": location.endpoint, "S3_REGION": location.region,
                    "S3_BUCKET": location.bucket, "HOME": "/tmp"}.items()),
                {"name": "S3_ACCESS_KEY", "valueFrom": {"secretKeyRef": {"name": S3_SECRET, "key": "ACCESS_KEY_ID"}}},
                {"name": "S3_SECRET_KEY",
                 "valueFrom": {"secretKeyRef": {"name": S3_SECRET, "key": "ACCESS_SECRET_KEY"}}}],
        "resources": SC_DOWNLOAD_RESOURCES,
        "securityContext": {**RESTRICTED_CONTAINER_SECURITY, "readOnlyRootFilesystem": True},
        "volumeMounts": [{"name": "scripts", "mountPath": SC_SCRIPT_MOUNT, "readOnly": True}, work,
                         {"name": "tmp", "mountPath": "/tmp"}],
    }
    server = {
        "name": "scylladb", "image": scylladb_bootstrap.cqlsh_image(), "imagePullPolicy": "IfNotPresent",
        "command": ["/usr/bin/scylla", *sc_server_args()],
        "env": [{"name": "HOME", "value": "/tmp"}, {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"}],  # cqlsh's
        "readinessProbe": {"exec": {"command": ["cqlsh", SC_LOOPBACK, "-e", "SELECT release_version FROM system.local"]},
                           "periodSeconds": 10, "failureThreshold": 3, "timeoutSeconds": 10},
        "resources": {"requests": {"cpu": SCRATCH_CPU, "memory": SCRATCH_MEMORY},
                      "limits": {"cpu": SCRATCH_CPU, "memory": SCRATCH_MEMORY}},
        # restricted: Seastar runs without CAP_SYS_NICE (no SCHED_FIFO timer thread: a warning, not a failure)
        "securityContext": {**RESTRICTED_CONTAINER_SECURITY, "readOnlyRootFilesystem": True},
        "volumeMounts": [{"name": "data", "mountPath": "/var/lib/scylla"}, {**work, "readOnly": True},
                         {"name": "tmp", "mountPath": "/tmp"}],
    }
    # One uid for the server and check_scylladb's copies (exec runs as it): a non-root ScyllaDB refuses data
    # directories and SSTables another uid owns (utils/directories.cc verify_owner_and_mode).
    return scratch_pod(
        ctx, SC_SCRATCH, "scylladb", nobody_security(), [server],
        [{"name": "scripts", "configMap": {"name": SC_SCRIPTS, "defaultMode": 0o555}},
         {"name": "data", **ctx.scratch_volume(SC_DATA_SIZE)},
         {"name": "work", "emptyDir": {"sizeLimit": SC_WORK_SIZE}},
         {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
        init=[download])


def _sc_objects(ctx: DataContext, location: S3Location, after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    return _scripts(ctx, "scylladb", SC_SCRIPTS, {SC_DOWNLOAD: scylladb_bootstrap.SCRIPTS / SC_DOWNLOAD}, after)


def scylladb_drill(ctx: DataContext) -> Drill:
    return Drill(
        store="scylladb", scratch=sc_scratch(ctx), resource=f"pod/{SC_SCRATCH}", ready="condition=Ready",
        timeout_seconds=1800,  # the download (one small table) and the node starting
        check_seconds=1800,  # the table created and each node's files loaded
        env={"SCRATCH_POD": SC_SCRATCH, "WORK": SC_WORK, "CANARY_KEYSPACE": scylladb_bootstrap.CANARY,
             "CANARY_TABLE": scylladb_bootstrap.CANARY_TABLE,
             # our own definition, one replica: the backup's schema names the production DC and replication
             "CANARY_SCHEMA": f"CREATE KEYSPACE IF NOT EXISTS {scylladb_bootstrap.CANARY} WITH replication = "
                              f"{scylladb_bootstrap.replication(SC_DATACENTER, 1)}; "
                              f"{scylladb_bootstrap.canary_table_cql(CANARY_RETENTION_DAYS * 86400)}"},
        storage=SC_DATA_SIZE,
        rbac=({"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "patch", "delete"]},),
        objects=_sc_objects)


def sc_canary_spec(ctx: DataContext) -> dict[str, Any]:
    """cqlsh of the pinned image as the canary role (MODIFY on the canary table only); its password reaches cqlsh in
    a 0600 file (scylladb-canary.sh), never on the command line."""
    secret = scylladb.CANARY_SECRET
    env = [{"name": "CQL_HOST", "value": scylladb.client_host()}, {"name": "CQL_PORT", "value": str(scylladb.CQL_PORT)},
           {"name": "CANARY_KEYSPACE", "value": scylladb_bootstrap.CANARY},
           {"name": "CANARY_TABLE", "value": scylladb_bootstrap.CANARY_TABLE},
           {"name": "HOME", "value": "/tmp"}, {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
           {"name": "CANARY_USERNAME", "valueFrom": {"secretKeyRef": {"name": secret, "key": "username"}}},
           {"name": "CANARY_PASSWORD", "valueFrom": {"secretKeyRef": {"name": secret, "key": "password"}}}]
    return _script_canary(ctx, scylladb_bootstrap.cqlsh_image(), SC_CANARY_SCRIPT, env,
                          {**CANARY_RESOURCES, "limits": {"memory": "256Mi"}}, run_as=NOBODY)  # cqlsh is Python


def _sc_canary(ctx: DataContext, after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    """The role and its Secret come with the cluster's bootstrap (scylladb/__init__.py, in `after`)."""
    return _canary_script_job(ctx, "scylladb", scylladb.NAMESPACE, scylladb_bootstrap.SCRIPTS / SC_CANARY_SCRIPT,
                              sc_canary_spec(ctx), after)


# --- Velero -----------------------------------------------------------------------------------------------
# Velero restores with its own, cluster-admin, ServiceAccount whatever a Restore asks for: creating one is in effect
# cluster-admin. The drill's ServiceAccount may create, read and delete Restores in Velero's namespace only, and a
# ValidatingAdmissionPolicy admits its Restores only when they restore the drills' canary ConfigMap (etcd's:
# dr-drills/drill-canary, patched hourly, in every Velero backup) into the empty namespace dr-drills-velero and
# nothing cluster-scoped. check_velero reads the restored canary; teardown deletes it and the Restore.
VELERO_NAMESPACE = velero_backups.NAMESPACE
VELERO_SCHEDULE = velero_backups.SCHEDULE  # the drill restores its newest successful backup
VELERO_TARGET = f"{NAMESPACE}-velero"  # where the drill's Restore puts what it restores: nothing else lives there
VELERO_RESTORE = "drill-velero"
VELERO_SOURCES = (NAMESPACE,)  # the namespaces the drill may restore from (the canary's)
VELERO_RESOURCES = ("configmaps",)  # the kinds it may restore: namespaced, no workload, no credential
VELERO_POLICY = "restore-drill-velero"
VELERO_USER = f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"


def _cel_list(values: Sequence[str]) -> str:
    """A CEL list literal of strings (the names above are fixed DNS labels: nothing to escape)."""
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


# (expression, message): every one must hold for the drill's Restore. `resourceModifier` (JSON patches, which may
# rewrite an object's namespace) and `hooks` (commands in restored pods, init containers) are refused outright.
VELERO_VALIDATIONS = (
    ("has(object.spec.includedNamespaces) && size(object.spec.includedNamespaces) > 0 && "
     f"object.spec.includedNamespaces.all(ns, ns in {_cel_list(VELERO_SOURCES)})",
     f"spec.includedNamespaces must list only {', '.join(VELERO_SOURCES)}"),
    ("has(object.spec.namespaceMapping) && "
     "object.spec.includedNamespaces.all(ns, ns in object.spec.namespaceMapping) && "
     f"object.spec.namespaceMapping.all(ns, object.spec.namespaceMapping[ns] == '{VELERO_TARGET}')",
     f"spec.namespaceMapping must map every included namespace to {VELERO_TARGET}"),
    ("has(object.spec.includeClusterResources) && object.spec.includeClusterResources == false",
     "spec.includeClusterResources must be false"),
    ("has(object.spec.includedResources) && size(object.spec.includedResources) > 0 && "
     f"object.spec.includedResources.all(r, r in {_cel_list(VELERO_RESOURCES)})",
     f"spec.includedResources must list only {', '.join(VELERO_RESOURCES)}"),
    ("!has(object.spec.resourceModifier) && "
     "(!has(object.spec.hooks) || !has(object.spec.hooks.resources) || size(object.spec.hooks.resources) == 0)",
     "spec.resourceModifier and spec.hooks are not allowed"),
)


def velero_restore(ctx: DataContext) -> dict[str, Any]:
    """The drill's Restore: the newest successful backup of Velero's schedule (Velero picks it: `scheduleName`),
    the canary ConfigMap only, into VELERO_TARGET; what VELERO_VALIDATIONS admit."""
    return {"apiVersion": "velero.io/v1", "kind": "Restore",
            "metadata": {"name": VELERO_RESTORE, "namespace": VELERO_NAMESPACE, "labels": scratch_labels(ctx, "velero")},
            "spec": {"scheduleName": VELERO_SCHEDULE,
                     "includedNamespaces": list(VELERO_SOURCES),
                     "namespaceMapping": {ns: VELERO_TARGET for ns in VELERO_SOURCES},
                     "includedResources": list(VELERO_RESOURCES),
                     "includeClusterResources": False,
                     "labelSelector": {"matchLabels": ctx.labels("restore-drill", "canary")},
                     "existingResourcePolicy": "none"}}


def velero_policy_spec() -> dict[str, Any]:
    """Restores (create and update) by the drill's ServiceAccount only: anyone else's are not this policy's. Each drill
    has its Restore name and that Restore's validations (VELERO_VALIDATIONS, DF_VALIDATIONS); any other name is
    refused."""
    shapes = {VELERO_RESTORE: VELERO_VALIDATIONS, DF_RESTORE: DF_VALIDATIONS}
    validations = [{"expression": f"object.metadata.name in {_cel_list(list(shapes))}",
                    "message": f"the drill creates only the Restores {', '.join(shapes)}"}]
    validations += [{"expression": f"object.metadata.name != '{name}' || ({expression})",
                     "message": f"{name}: {message}"}
                    for name, checks in shapes.items() for expression, message in checks]
    return {"failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{"apiGroups": ["velero.io"], "apiVersions": ["*"],
                                                    "operations": ["CREATE", "UPDATE"], "resources": ["restores"]}]},
            "matchConditions": [{"name": "drill-service-account",
                                 "expression": f"request.userInfo.username == '{VELERO_USER}'"}],
            "validations": validations}


def velero_rbac() -> dict[str, list[dict[str, Any]]]:
    """namespace -> the drill's rules there: its Restores in Velero's (kubectl wait lists and watches the one it
    waits for), the restored ConfigMaps in VELERO_TARGET (read, then deleted)."""
    return {VELERO_NAMESPACE: list(VELERO_RESTORE_RULES),
            VELERO_TARGET: [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "delete"]}]}


VELERO_RESTORE_RULES = ({"apiGroups": ["velero.io"], "resources": ["restores"],
                         "verbs": ["create", "get", "list", "watch", "delete"]},)


def _velero_policy(ctx: DataContext, after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    """The admission policy of the drills' Restores (the Velero and the DragonflyDB drill share it)."""
    return ctx.admission_policy("drill-velero-policy", VELERO_POLICY, velero_policy_spec(),
                                ctx.labels("restore-drill", "velero"), after)


def _roles(ctx: DataContext, store: str, name: str, rbac: dict[str, list[dict[str, Any]]],
           after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    """A Role `name` per namespace of `rbac` (namespace -> rules), bound to the drill's ServiceAccount."""
    labels = ctx.labels("restore-drill", store)
    objects: list[pulumi.Resource] = []
    for namespace, rules in rbac.items():
        meta = k8s.meta.v1.ObjectMetaArgs(name=name, namespace=namespace, labels=labels)
        role = k8s.rbac.v1.Role(f"{name}-{namespace}", metadata=meta, rules=rules, opts=ctx.opts(after))
        objects += [role, k8s.rbac.v1.RoleBinding(
            f"{name}-{namespace}", metadata=meta,
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            subjects=[{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}],
            opts=ctx.opts([*after, role]))]
    return objects


def _velero_objects(ctx: DataContext, location: None, after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    return [*_velero_policy(ctx, after), *_roles(ctx, "velero", VELERO_RESTORE, velero_rbac(), after)]


def velero_drill(ctx: DataContext) -> Drill:
    return Drill(
        store="velero", scratch=velero_restore(ctx), resource=f"restores.velero.io/{VELERO_RESTORE}",
        ready="jsonpath={.status.phase}=Completed", timeout_seconds=1800,  # one small object from the newest backup
        # drill.sh acts in Velero's namespace (the Restore); check_velero reads the restored canary in TARGET.
        env={"NAMESPACE": VELERO_NAMESPACE, "TARGET": VELERO_TARGET, "RESTORE": VELERO_RESTORE,
             "CANARY_CONFIGMAP": ETCD_CANARY, "CANARY_KEY": ETCD_CANARY_DATA_KEY, "CANARY_MARKER": ETCD_CANARY_MARKER},
        storage="", rbac=(), objects=_velero_objects)  # no volume: what it restores is one ConfigMap


# --- DragonflyDB (Velero's file-system restore) -------------------------------------------------------------
# DragonflyDB's snapshots leave the cluster only inside Velero's backups, as the file-system (kopia) backup of each
# instance pod's volume `df`: the drill is also the drill of Velero's volume restores. Velero's node agent restores a
# volume only through a pod that mounts it (an init container, restore-wait, holds the pod until the files are
# back), so the drill's Restore brings back the first instance's pod and its claim into the empty namespace
# dr-drills-dragonfly. That pod references production's ACL Secret and the operator's probe ConfigMaps: the resource
# modifier DF_MODIFIER (a ConfigMap in Velero's namespace, which the drill cannot write) replaces its containers and
# volumes by one DragonflyDB on loopback with no login, loading the restored `dump` from the volume, and drops the
# operator's labels and readiness gate. The admission policy admits exactly this Restore (DF_VALIDATIONS).
DF_TARGET = f"{NAMESPACE}-dragonfly"
DF_RESTORE = "drill-dragonfly"
DF_MODIFIER = "drill-dragonfly-modifier"
DF_MODIFIER_KEY = "modifiers.yaml"  # Velero reads the ConfigMap's one key, whatever its name
DF_POD = f"{dragonfly.NAME}-0"  # the StatefulSet's first instance: a replica or the primary, both snapshot
DF_POD_LABEL = "statefulset.kubernetes.io/pod-name"  # the StatefulSet controller's label on each pod
DF_VOLUME = "df"  # the operator's snapshot volume (dragonfly-operator v1.6.1 SnapshotsVolumeName)
DF_SNAPSHOT_DIR = "/dragonfly/snapshots"  # where the operator mounts it (SnapshotsDir)
DF_RESOURCES = dragonfly.RESTORED_KINDS  # a PodVolumeRestore needs claims and volumes included (restore.go v1.18.1)
DF_PORT = 6379
DF_RESTORE_SECONDS = 3600  # the snapshot volume downloaded by the node agent


def df_container(ctx: DataContext) -> dict[str, Any]:
    """The restored pod's only container: DragonflyDB of the production image on loopback, no password, loading
    `dump` from the restored volume; memory as production's (a snapshot loads only into the room it was taken in)."""
    res = pinned_resources(ctx, "dragonfly", "dragonfly", configured=True)
    return {"name": "dragonfly", "image": dragonfly.image(), "imagePullPolicy": "IfNotPresent",
            "args": ["--logtostderr", "--bind=127.0.0.1", f"--port={DF_PORT}", f"--dir={DF_SNAPSHOT_DIR}",
                     f"--dbfilename={dragonfly.SNAPSHOT_FILE}", "--proactor_threads=1",
                     f"--maxmemory={dragonfly.maxmemory_bytes(res)}"],
            "readinessProbe": {"exec": {"command": ["/bin/sh", "-c",
                                                    f"redis-cli -h 127.0.0.1 -p {DF_PORT} ping | grep -qx PONG"]},
                               "periodSeconds": 10},
            "resources": {"requests": {"cpu": SCRATCH_CPU, "memory": f"{res.memory_mib}Mi"},
                          "limits": {"cpu": SCRATCH_CPU, "memory": f"{res.memory_mib}Mi"}},
            "securityContext": RESTRICTED_CONTAINER_SECURITY,
            "volumeMounts": [{"name": DF_VOLUME, "mountPath": DF_SNAPSHOT_DIR}]}


def df_quota(ctx: DataContext) -> dict[str, Any]:
    """Room in DF_TARGET for exactly the restored pod (production's memory: a snapshot loads only into the room it
    was taken in; its restore-wait init container runs before it, so the larger of the two counts) and its claim of
    production's snapshot size; nothing that reaches outside. A Restore that would bring more fails the drill.
    Velero gives restore-wait requests and limits of its own (100m CPU, 128Mi, pod_volume_restore_action.go v1.18.1,
    no plugin ConfigMap here), within the container's; and the first container's securityContext (production's,
    restricted), so the namespace stays `restricted`. LIMIT_RANGE is only the default for anything else."""
    res = pinned_resources(ctx, "dragonfly", "dragonfly", configured=True)
    return {"hard": {"pods": "1", "persistentvolumeclaims": "1", "requests.cpu": SCRATCH_CPU,
                     "requests.memory": f"{res.memory_mib}Mi", "limits.memory": f"{res.memory_mib}Mi",
                     "requests.storage": ctx.settings.dragonfly.storage_size, **NO_OWN_ENTRY_POINTS}}


def df_modifiers(ctx: DataContext) -> dict[str, Any]:
    """Velero's resource modifiers (internal/resourcemodifiers, v1.18.1): one JSON merge patch (RFC 7386: a list is
    replaced whole, null deletes) on the drill's pod, matched before the namespace mapping (the backup's namespace).
    Applied after Velero's own pod actions: restore-wait, prepended to initContainers, stays."""
    patch = {"metadata": {"labels": {k: None for k in (*dragonfly.POD_LABELS, "role")}},
             "spec": {"containers": [df_container(ctx)],
                      "volumes": [{"name": DF_VOLUME, "persistentVolumeClaim": {"claimName": f"{DF_VOLUME}-{DF_POD}"}}],
                      "automountServiceAccountToken": False, "enableServiceLinks": False,
                      "readinessGates": None, "affinity": None, "nodeSelector": None, "tolerations": None}}
    # The claim is re-provisioned (its volume has a pod volume backup) on the class's scratch twin: production's class
    # keeps released volumes, and a weekly drill would leave one behind each time (Storage.scratch_classes).
    claim = {"spec": {"storageClassName": ctx.scratch_storage_class}}
    return {"version": "v1", "resourceModifierRules": [{
        "conditions": {"groupResource": "pods", "namespaces": [dragonfly.NAMESPACE],
                       "resourceNameRegex": f"^{DF_POD}$"},
        "mergePatches": [{"patchData": json.dumps(patch, sort_keys=True)}]}, {
        "conditions": {"groupResource": "persistentvolumeclaims", "namespaces": [dragonfly.NAMESPACE],
                       "resourceNameRegex": f"^{DF_VOLUME}-{DF_POD}$"},
        "mergePatches": [{"patchData": json.dumps(claim, sort_keys=True)}]}]}


def df_restore(ctx: DataContext) -> dict[str, Any]:
    """The newest successful backup of Velero's schedule (its snapshot volume included: the namespace is not a live
    database's), the first instance's pod with its claim (Velero adds a pod's claims, and a claim's volume, as
    additional items; the volume is re-provisioned, never restored: it has a pod volume backup).
    `includeClusterResources` stays unset: false would skip that volume, and the claim would keep production's
    volume name."""
    return {"apiVersion": "velero.io/v1", "kind": "Restore",
            "metadata": {"name": DF_RESTORE, "namespace": VELERO_NAMESPACE, "labels": scratch_labels(ctx, "dragonfly")},
            "spec": {"scheduleName": VELERO_SCHEDULE,
                     "includedNamespaces": [dragonfly.NAMESPACE],
                     "namespaceMapping": {dragonfly.NAMESPACE: DF_TARGET},
                     "includedResources": list(DF_RESOURCES),
                     "labelSelector": {"matchLabels": {DF_POD_LABEL: DF_POD}},
                     "resourceModifier": {"kind": "ConfigMap", "name": DF_MODIFIER},
                     "existingResourcePolicy": "none"}}


DF_VALIDATIONS = (
    (f"has(object.spec.includedNamespaces) && object.spec.includedNamespaces == ['{dragonfly.NAMESPACE}']",
     f"spec.includedNamespaces must be [{dragonfly.NAMESPACE}]"),
    (f"has(object.spec.namespaceMapping) && size(object.spec.namespaceMapping) == 1 && "
     f"'{dragonfly.NAMESPACE}' in object.spec.namespaceMapping && "
     f"object.spec.namespaceMapping['{dragonfly.NAMESPACE}'] == '{DF_TARGET}'",
     f"spec.namespaceMapping must map {dragonfly.NAMESPACE} to {DF_TARGET}"),
    ("has(object.spec.includedResources) && size(object.spec.includedResources) > 0 && "
     f"object.spec.includedResources.all(r, r in {_cel_list(DF_RESOURCES)})",
     f"spec.includedResources must list only {', '.join(DF_RESOURCES)}"),
    # unset, not true: cluster-scoped kinds beyond the volumes above are excluded by includedResources
    ("!has(object.spec.includeClusterResources)", "spec.includeClusterResources must be unset"),
    ("has(object.spec.labelSelector) && has(object.spec.labelSelector.matchLabels) && "
     "!has(object.spec.labelSelector.matchExpressions) && size(object.spec.labelSelector.matchLabels) == 1 && "
     f"'{DF_POD_LABEL}' in object.spec.labelSelector.matchLabels && "
     f"object.spec.labelSelector.matchLabels['{DF_POD_LABEL}'] == '{DF_POD}' && !has(object.spec.orLabelSelectors)",
     f"spec.labelSelector must select {DF_POD_LABEL}={DF_POD} only"),
    ("has(object.spec.resourceModifier) && object.spec.resourceModifier.kind == 'ConfigMap' && "
     f"object.spec.resourceModifier.name == '{DF_MODIFIER}' && "
     "(!has(object.spec.resourceModifier.apiGroup) || object.spec.resourceModifier.apiGroup == '')",
     f"spec.resourceModifier must be the ConfigMap {DF_MODIFIER}"),
    ("!has(object.spec.hooks) || !has(object.spec.hooks.resources) || size(object.spec.hooks.resources) == 0",
     "spec.hooks are not allowed"),
)


def df_rbac() -> dict[str, list[dict[str, Any]]]:
    """Its Restore in Velero's namespace; in the restore's target: read the pod, exec into it (check_dragonfly), delete the pod and its claim."""
    return {VELERO_NAMESPACE: list(VELERO_RESTORE_RULES),
            DF_TARGET: [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "delete"]},
                        {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["get", "create"]},
                        {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["get", "list", "delete"]}]}


def _df_objects(ctx: DataContext, location: None, after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    modifier = k8s.core.v1.ConfigMap("drill-dragonfly-modifier", metadata=k8s.meta.v1.ObjectMetaArgs(
        name=DF_MODIFIER, namespace=VELERO_NAMESPACE, labels=ctx.labels("restore-drill", "dragonfly")),
        data={DF_MODIFIER_KEY: yamltext.safe_dump(df_modifiers(ctx), sort_keys=False)}, opts=ctx.opts(after))
    objects: list[pulumi.Resource] = [modifier]
    if "velero" not in ctx.drills:  # else the Velero drill's objects carry the shared policy
        objects += _velero_policy(ctx, after)
    objects += _roles(ctx, "dragonfly", DF_RESTORE, df_rbac(), after)
    return objects


def dragonfly_drill(ctx: DataContext) -> Drill:
    return Drill(
        store="dragonfly", scratch=df_restore(ctx), resource=f"restores.velero.io/{DF_RESTORE}",
        ready="jsonpath={.status.phase}=Completed", timeout_seconds=DF_RESTORE_SECONDS,
        check_seconds=dragonfly.READY_TIMEOUT_SECONDS,  # the restored pod loads the snapshot (wait_dragonfly)
        env={"NAMESPACE": VELERO_NAMESPACE, "TARGET": DF_TARGET, "RESTORE": DF_RESTORE, "SCRATCH_POD": DF_POD,
             "LOAD_TIMEOUT_SECONDS": str(dragonfly.READY_TIMEOUT_SECONDS), "CANARY_KEY": dragonfly.CANARY_KEY},
        storage="", rbac=(), objects=_df_objects)  # its volume is in DF_TARGET (namespaces(): its own quota)


def df_canary_spec(ctx: DataContext) -> dict[str, Any]:
    """redis-cli of the production image as drill-canary, SET on its one key; the password in REDISCLI_AUTH (never
    on the command line)."""
    env = [{"name": "HOST", "value": f"{dragonfly.NAME}.{dragonfly.NAMESPACE}.svc.{dragonfly.CLUSTER_DOMAIN}"},
           {"name": "CANARY_KEY", "value": dragonfly.CANARY_KEY},
           {"name": "HOME", "value": "/tmp"},
           {"name": "CANARY_USER", "valueFrom": {"secretKeyRef": {"name": dragonfly.CANARY_SECRET, "key": "username"}}},
           {"name": "REDISCLI_AUTH",
            "valueFrom": {"secretKeyRef": {"name": dragonfly.CANARY_SECRET, "key": "password"}}}]
    return _script_canary(ctx, dragonfly.image(), DF_CANARY_SCRIPT, env, CANARY_RESOURCES, run_as=dragonfly.DFLY_UID)


DF_CANARY_SCRIPT = "dragonfly-canary.sh"
DF_CANARY = Path(__file__).with_name(DF_CANARY_SCRIPT)


def _df_canary(ctx: DataContext, after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    return _canary_script_job(ctx, "dragonfly", dragonfly.NAMESPACE, DF_CANARY, df_canary_spec(ctx), after)


# store -> its drill; store -> its canary writer (in the store's namespace). config/data.py DRILLED_STORES lists
# the same stores (the config cannot import components).
DRILLS: dict[str, Callable[[DataContext], Drill]] = {"postgres": postgres_drill, "redpanda": redpanda_drill,
                                                    "clickhouse": clickhouse_drill, "etcd": etcd_drill,
                                                    "scylladb": scylladb_drill, "velero": velero_drill,
                                                    "dragonfly": dragonfly_drill}
CANARIES: dict[str, Callable[[DataContext, Sequence[pulumi.Resource]], list[pulumi.Resource]]] = {
    "postgres": _pg_canary, "redpanda": _rp_canary, "clickhouse": _ch_canary, "etcd": _etcd_canary,
    "scylladb": _sc_canary, "dragonfly": _df_canary,
    "velero": lambda ctx, after: []}  # etcd's (dr-drills/drill-canary): config/data.py keeps etcd drilled with it


# --- the namespace ----------------------------------------------------------------------------------------
def namespaces(ctx: DataContext) -> list[NamespaceSpec]:
    drills = [DRILLS[store](ctx) for store in ctx.drills]
    if not drills:
        return []
    return [NamespaceSpec(
        name=NAMESPACE, pss="restricted", layer=LAYER,
        why="scratch restores of the stores' backups: the operators' restricted pods and the drill Jobs",
        ingress_from=tuple(peer for d in drills for peer in d.ingress_from),
        egress_to=ctx.object_storage_peer(), egress_world=ctx.backup_egress_world()),
        *([NamespaceSpec(name=VELERO_TARGET, pss="restricted", layer=LAYER,
                         why="what the Velero drill's Restore restores (the canary ConfigMap): nothing runs here")]
          if "velero" in ctx.drills else []),
        *([NamespaceSpec(name=DF_TARGET, pss="restricted", layer=LAYER,
                         why="the DragonflyDB drill's restored pod (a DragonflyDB on loopback) and its volume: "
                             "default-deny, it reaches nothing and nothing reaches it")]
          if "dragonfly" in ctx.drills else [])]


def quota(drills: Sequence[Drill]) -> dict[str, Any]:
    """Room for every scratch instance at once (a drill tears its instance down; a hung one waits for its
    deadline), the drill Jobs and the operators' restore pods; no Service of its own reaches outside."""
    count = sum(1 for d in drills if d.scratch["metadata"]["namespace"] == NAMESPACE)  # Velero's restores elsewhere
    drivers = len(drills) - count  # the drill Jobs of the rest
    storage = sum(memory_mib(d.storage) for d in drills if d.storage) // 1024
    # the scratch instance, its restore pod's sidecars and the driver; a core and a GiB for each other driver
    cpu = count * (int(SCRATCH_CPU) + 1) + drivers
    memory = count * (memory_mib(SCRATCH_MEMORY) + 1024) + drivers * 1024
    return {"hard": {"requests.cpu": str(cpu), "requests.memory": f"{memory}Mi", "limits.memory": f"{memory * 2}Mi",
                     "pods": str(count * 4 + drivers), "persistentvolumeclaims": str(count * 2),
                     "requests.storage": f"{storage}Gi", **NO_OWN_ENTRY_POINTS}}


LIMIT_RANGE = {"limits": [{"type": "Container", "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
                           "default": {"memory": "512Mi"}}]}


# --- the drill Jobs ---------------------------------------------------------------------------------------
def _cronjob(schedule: str, labels: dict[str, str], containers: list[dict[str, Any]], volumes: list[dict[str, Any]],
             service_account: str | None, deadline: int, run_as: int | None = None) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "enableServiceLinks": False,
        "securityContext": {**RESTRICTED_POD_SECURITY, **({"runAsUser": run_as, "runAsGroup": run_as,
                                                          "fsGroup": run_as} if run_as else {})},
        "containers": containers,
        "volumes": volumes,
    }
    if service_account:
        pod["serviceAccountName"] = service_account
    else:
        pod["automountServiceAccountToken"] = False  # it talks to its store only
    # No retry: a failed drill is the finding, not something to retry until it passes.
    return cronjob.cronjob_spec(schedule, pod, labels=labels, deadline=deadline, backoff_limit=0)


def drill_env(drill: Drill, max_age_hours: int) -> list[dict[str, str]]:
    plain = {"STORE": drill.store, "NAMESPACE": NAMESPACE, "MANIFEST": f"{MOUNT}/{drill.store}.yaml",
             "RESOURCE": drill.resource, "READY": drill.ready, "TIMEOUT_SECONDS": str(drill.timeout_seconds),
             "MAX_AGE_SECONDS": str(max_age_hours * 3600), "HOME": "/tmp", **drill.env}
    return [{"name": k, "value": v} for k, v in plain.items()]


def drill_spec(ctx: DataContext, drill: Drill) -> dict[str, Any]:
    container = {
        "name": "drill", "image": DRIVER_IMAGE, "imagePullPolicy": "IfNotPresent",
        "command": ["/bin/bash", f"{MOUNT}/{SCRIPT.name}"],
        "env": drill_env(drill, ctx.settings.drills.max_data_age_hours),
        "resources": DRIVER_RESOURCES,
        "securityContext": {**RESTRICTED_CONTAINER_SECURITY, "readOnlyRootFilesystem": True},
        "volumeMounts": [{"name": "drill", "mountPath": MOUNT, "readOnly": True},
                         {"name": "tmp", "mountPath": "/tmp"}],  # kubectl's cache (HOME)
    }
    volumes = [{"name": "drill", "configMap": {"name": SCRIPTS, "defaultMode": 0o444}},
               {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
    # The deadline leaves the script time to report and tear down after its own wait gives up.
    return _cronjob(ctx.settings.drills.schedule_of(drill.store), ctx.labels("restore-drill", drill.store),
                    [container], volumes,
                    SERVICE_ACCOUNT, drill.timeout_seconds + drill.check_seconds + 900, run_as=NOBODY)


def role_rules(drills: Sequence[Drill]) -> list[dict[str, Any]]:
    """The drill Jobs' rights, in dr-drills only: the scratch kinds, and reading and exec-ing into pods."""
    return [*(rule for d in drills for rule in d.rbac),
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
            # kubectl exec over SPDY is a POST (`create`); over WebSockets (kubectl's default since 1.31) a GET, which
            # API servers authorize as `get` (newer ones as `create` again): both.
            {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["get", "create"]}]


# --- alerts -----------------------------------------------------------------------------------------------
def _duration(seconds: int) -> str:
    return f"{seconds // 3600}h" if seconds % 3600 == 0 else f"{seconds}s"


# Where each store's last successful backup shows in Prometheus (names at the pinned versions):
# - PostgreSQL: the barman-cloud plugin's timestamp of the newest available backup (its docs, "Observability");
# - ScyllaDB: Scylla Manager's start time of the last successful run per task (pkg/metrics/scheduler.go; held in
#   memory only, set on a run's DONE: gone after a Manager restart until the next success);
# - ClickHouse: the CronJob whose create-remote.sh asks every shard for create_remote and exits non-zero when any
#   shard was not backed up (clickhouse-backup's own last_create_remote_status is 0 after a failure and 2 after a
#   restart, its finish time is set after failures too: no success to read there);
# - Redpanda: our own export CronJob (redpanda_backup.py; a Job that fails after uploading part of an export is no
#   success);
# - Velero: its own metric (pkg/metrics/metrics.go, label `schedule`): components/services/backups.py's Schedule;
# - the secret store: its snapshot CronJob (components/services/secrets_backup.py; the snapshot is taken and then
#   uploaded in one Job: a success is an uploaded snapshot).
@dataclass(frozen=True)
class BackupSeries:
    age: str  # PromQL: seconds since the last successful backup (the dashboard's "Backup age", the alert's first half)
    missing: Callable[[int], str]  # PromQL with a result once that series has been missing for the given seconds


def _never_succeeded(job: str, seconds: int) -> str:
    """A CronJob (kube-state-metrics selector `job`) older than `seconds` that never succeeded (or whose last success
    left with its Jobs' history): kube_cronjob_status_last_successful_time is then absent, not old."""
    return (f"time() - kube_cronjob_created{{{job}}} > {seconds} unless on (namespace, cronjob) "
            f"kube_cronjob_status_last_successful_time{{{job}}}")


def _cronjob_series(namespace: str, cronjob: str) -> BackupSeries:
    job = f'namespace="{namespace}", cronjob="{cronjob}"'
    return BackupSeries(age=f"time() - kube_cronjob_status_last_successful_time{{{job}}}",
                        missing=lambda seconds: _never_succeeded(job, seconds))


def _store_series(selector: str, namespace: str) -> BackupSeries:
    """A store's own timestamp series. Missing for `seconds` (never a success, an exporter restarted and no success
    since) counts only once the store's namespace is that old: a new stack is not stale before its first backup."""
    return BackupSeries(age=f"time() - max({selector})",
                        missing=lambda seconds: f"absent_over_time({selector}[{seconds}s]) and on () "
                                                f'(time() - kube_namespace_created{{namespace="{namespace}"}} > {seconds})')


BACKUP_SERIES = {
    "postgres": _store_series(f'barman_cloud_cloudnative_pg_io_last_available_backup_timestamp'
                              f'{{namespace="{postgres.NAMESPACE}"}}', postgres.NAMESPACE),
    "scylladb": _store_series('scylla_manager_scheduler_last_success{type="backup"}', scylladb_manager.NAMESPACE),
    "clickhouse": _cronjob_series(clickhouse_topology.NAMESPACE, clickhouse_backup.CRONJOB),
    "redpanda": _cronjob_series(redpanda.NAMESPACE, redpanda_backup.CRONJOB),
}
VELERO_SERIES = _store_series('velero_backup_last_successful_timestamp{schedule="cluster"}', velero_backups.NAMESPACE)


def backup_ages(ctx: DataContext, velero_schedule: str | None,
                secrets_backup: SnapshotBackup | None = None) -> dict[str, tuple[BackupSeries, str]]:
    """Every enabled store that backs up (and Velero, and the secret store's snapshots) -> (where its last successful
    backup shows, its backup cron), drilled or not: a stale backup matters before any drill notices."""
    settings = ctx.settings
    schedules = {"postgres": settings.postgres.backup_schedule, "scylladb": settings.scylladb.backup_schedule,
                 "clickhouse": settings.clickhouse.backup_schedule, "redpanda": settings.redpanda.backup_schedule}
    ages = {store: (BACKUP_SERIES[store], cron) for store, cron in schedules.items()
            if getattr(settings, store).enabled and ctx.backup is not None}
    if velero_schedule is not None:
        ages["velero"] = (VELERO_SERIES, velero_schedule)
    if secrets_backup is not None:
        ages["secrets"] = (_cronjob_series(secrets_backup.namespace, secrets_backup.cronjob), secrets_backup.schedule)
    return ages


def _stale_drill_rule(store: str, cron: str) -> dict[str, Any]:
    """No success of drill-<store> for two of its schedule's longest gaps (or never, that long after its creation)."""
    job = f'namespace="{NAMESPACE}", cronjob="drill-{store}"'
    stale = STALE_FACTOR * longest_gap_seconds(cron)
    return {"alert": "RestoreDrillStale",
            "expr": f"time() - kube_cronjob_status_last_successful_time{{{job}}} > {stale} or on (namespace, cronjob) "
                    f"({_never_succeeded(job, stale)})",
            "for": "1h", "labels": {"severity": "warning", "store": store},
            "annotations": {"summary": f"Restore drill drill-{store} has not passed for {_duration(stale)} "
                                       "(two schedule periods)",
                            "description": "Nobody knows whether this store's backups restore. "
                                           "docs/restore-drills.md"}}


def _stale_backup_rule(store: str, series: BackupSeries, cron: str) -> dict[str, Any]:
    """The last success older than two of the backup schedule's longest gaps, or its series missing that long."""
    stale = STALE_FACTOR * longest_gap_seconds(cron)
    return {"alert": "BackupStale",
            "expr": f"{series.age} > {stale} or ({series.missing(stale)})",
            "for": "1h", "labels": {"severity": "critical", "store": store},
            "annotations": {"summary": f"No successful {store} backup in the last {_duration(stale)} "
                                       "(two backup periods)",
                            "description": "Backups are failing: the recovery point grows with every hour. "
                                           "docs/restore-drills.md"}}


def rule_spec(schedules: dict[str, str], ages: dict[str, tuple[BackupSeries, str]]) -> dict[str, Any]:
    """Failed drills from kube-state-metrics' CronJob series; stale drills per drilled store (its own schedule:
    `schedules`, store -> cron); stale backups from where each store's last success shows (BACKUP_SERIES)."""
    ns = f'namespace="{NAMESPACE}"'
    drill_rules = [
        {"alert": "RestoreDrillFailed",
         # The last run was scheduled after the last success and is no longer running: it failed.
         "expr": f"(kube_cronjob_status_last_schedule_time{{{ns}}} > on (namespace, cronjob) "
                 f"kube_cronjob_status_last_successful_time{{{ns}}} or on (namespace, cronjob) "
                 f"(kube_cronjob_status_last_schedule_time{{{ns}}} unless on (namespace, cronjob) "
                 f"kube_cronjob_status_last_successful_time{{{ns}}})) and on (namespace, cronjob) "
                 f"kube_cronjob_status_active{{{ns}}} == 0",
         "for": "15m", "labels": {"severity": "critical"},
         "annotations": {"summary": "Restore drill {{ $labels.cronjob }} failed",
                         "description": "The latest backup did not restore, or the restored copy failed its checks: "
                                        "kubectl -n dr-drills logs job/<the failed job>. docs/restore-drills.md"}},
        *(_stale_drill_rule(store, cron) for store, cron in schedules.items()),
    ]
    backup_rules = [_stale_backup_rule(store, series, cron) for store, (series, cron) in ages.items()]
    return {"groups": [{"name": "restore-drills", "rules": drill_rules},
                       {"name": "backups", "rules": backup_rules}]}


# --- install ----------------------------------------------------------------------------------------------
def read_only_secret(ctx: DataContext, keys: S3Keys, ns: pulumi.Resource) -> k8s.core.v1.Secret:
    """backupCredentials.drills in the scratch namespace (the key names barman-cloud's ObjectStore reads). Left out of
    Velero's backups like every key that opens other data (components/layer.py EXCLUDE_FROM_BACKUP)."""
    return k8s.core.v1.Secret(
        "drill-backup-s3", metadata=k8s.meta.v1.ObjectMetaArgs(
            name=S3_SECRET, namespace=NAMESPACE, labels={**ctx.labels("restore-drill"), **EXCLUDE_FROM_BACKUP}),
        type="Opaque", string_data={"ACCESS_KEY_ID": pulumi.Output.secret(keys.access_key_id),
                                    "ACCESS_SECRET_KEY": pulumi.Output.secret(keys.secret_access_key)},
        opts=ctx.opts([ns]))


def location_of(ctx: DataContext, store: str) -> S3Location | None:
    """Where a drilled store's backups are: etcd's are the K3s servers' snapshots, the rest the stores' own; Velero
    reads its own (None: the drill only asks Velero; DragonflyDB's snapshots are inside Velero's backups)."""
    assert ctx.backup is not None
    if store in ("velero", "dragonfly"):
        return None
    if store == "etcd":
        assert ctx.backup.etcd is not None  # config/rules.py: drills need their key pair
        return ctx.backup.etcd
    return ctx.backup.of(store)


def install(ctx: DataContext, spaces: Namespaces, keys: S3Keys | None, velero_schedule: str | None,
            secrets_backup: SnapshotBackup | None, after: Sequence[pulumi.Resource]) -> DrillsEndpoint | None:
    """`keys`: backupCredentials.drills (config/rules.py requires them while a store is drilled); `secrets_backup`:
    the secret store's snapshot CronJob (its BackupStale alert); `after`: the drilled stores' own resources (their
    operators, CRDs and canary credentials)."""
    if not ctx.drills:
        return None
    assert ctx.backup is not None and keys is not None  # config/rules.py: drills need off-cluster backups and keys
    drills = [DRILLS[store](ctx) for store in ctx.drills]
    ages = backup_ages(ctx, velero_schedule, secrets_backup)
    ns = spaces[NAMESPACE]
    targets = {"velero": VELERO_TARGET, "dragonfly": DF_TARGET}  # the namespaces Velero restores the drills into
    deps = [*after, *spaces.ready_for([NAMESPACE, *(t for store, t in targets.items() if store in ctx.drills)])]
    labels = ctx.labels("restore-drill")
    secret = read_only_secret(ctx, keys, ns)
    ready: list[pulumi.Resource] = [
        secret,
        k8s.core.v1.ResourceQuota("drill-quota", metadata=k8s.meta.v1.ObjectMetaArgs(
            name="drill-quota", namespace=NAMESPACE, labels=labels), spec=quota(drills), opts=ctx.opts([ns])),
        k8s.core.v1.LimitRange("drill-limits", metadata=k8s.meta.v1.ObjectMetaArgs(
            name="container-defaults", namespace=NAMESPACE, labels=labels), spec=LIMIT_RANGE, opts=ctx.opts([ns])),
    ]
    if "dragonfly" in ctx.drills:
        df_ns = spaces[DF_TARGET]
        ready += [
            k8s.core.v1.ResourceQuota("drill-dragonfly-quota", metadata=k8s.meta.v1.ObjectMetaArgs(
                name="drill-quota", namespace=DF_TARGET, labels=labels), spec=df_quota(ctx), opts=ctx.opts([df_ns])),
            k8s.core.v1.LimitRange("drill-dragonfly-limits", metadata=k8s.meta.v1.ObjectMetaArgs(
                name="container-defaults", namespace=DF_TARGET, labels=labels), spec=LIMIT_RANGE,
                opts=ctx.opts([df_ns]))]
    account = k8s.core.v1.ServiceAccount("drill-service-account", metadata=k8s.meta.v1.ObjectMetaArgs(
        name=SERVICE_ACCOUNT, namespace=NAMESPACE, labels=labels), opts=ctx.opts([ns]))
    role = k8s.rbac.v1.Role("drill-role", metadata=k8s.meta.v1.ObjectMetaArgs(
        name=SERVICE_ACCOUNT, namespace=NAMESPACE, labels=labels), rules=role_rules(drills), opts=ctx.opts([ns]))
    binding = k8s.rbac.v1.RoleBinding("drill-role-binding", metadata=k8s.meta.v1.ObjectMetaArgs(
        name=SERVICE_ACCOUNT, namespace=NAMESPACE, labels=labels),
        role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": SERVICE_ACCOUNT},
        subjects=[{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}],
        opts=ctx.opts([account, role]))
    scripts = k8s.core.v1.ConfigMap("drill-scripts", metadata=k8s.meta.v1.ObjectMetaArgs(
        name=SCRIPTS, namespace=NAMESPACE, labels=labels),
        data={SCRIPT.name: SCRIPT.read_text(),
              **{f"{d.store}.yaml": yamltext.safe_dump(d.scratch, sort_keys=False) for d in drills}},
        opts=ctx.opts([ns]))
    ready += [account, role, binding, scripts]
    for drill in drills:
        objects = drill.objects(ctx, location_of(ctx, drill.store), [*deps, secret])
        ready += [*objects, *CANARIES[drill.store](ctx, [*after, *objects])]  # etcd's canary lives in dr-drills
        ready.append(k8s.batch.v1.CronJob(f"drill-{drill.store}", metadata=k8s.meta.v1.ObjectMetaArgs(
            name=f"drill-{drill.store}", namespace=NAMESPACE, labels=ctx.labels("restore-drill", drill.store)),
            spec=drill_spec(ctx, drill), opts=ctx.opts([*deps, binding, scripts, *objects])))
    ready.append(ctx.custom_resource("drill-alerts", "monitoring.coreos.com/v1", "PrometheusRule", RULE, NAMESPACE,
                                     rule_spec({d.store: ctx.settings.drills.schedule_of(d.store) for d in drills},
                                               ages),
                                     ctx.labels("restore-drill", "alerts"), deps))
    return DrillsEndpoint(namespace=NAMESPACE, stores=tuple(ctx.drills), ready=ready,
                          backup_age={store: series.age for store, (series, _) in ages.items()})


__all__ = ["DRILLS", "Drill", "install", "namespaces"]
