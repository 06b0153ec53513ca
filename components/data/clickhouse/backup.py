"""Backups to S3 with Altinity Backup for ClickHouse (clickhouse-backup): a sidecar in every server pod
and a CronJob that asks one replica per shard for `create_remote` on the configured schedule.

Why clickhouse-backup rather than ClickHouse's own `BACKUP ... TO S3(...)`: it keeps a count of remote
backups itself (`BACKUPS_TO_KEEP_REMOTE`, applied after every upload), backs up access entities with
the data, restores through the same API, and reports the last backup's age and size as Prometheus
metrics. Native BACKUP has no retention at all (old backups would need a second tool to delete them).
clickhouse-backup reads the server's files, so it runs next to the server (ReadMe.md: "Don't run
clickhouse-backup remotely"), as in the project's Kubernetes example (Examples.md at v2.8.0).

Settings are the tool's environment variables (ReadMe.md "Configurable Parameters"):
- S3_PATH carries the `{shard}` macro (from system.macros, set by the operator): each shard's backups
  sit under their own prefix, and retention counts them per shard.
- BACKUPS_TO_KEEP_LOCAL=-1 drops the local copy (hard links that pin merged-away parts) after upload.
- S3_ACL is empty: buckets with ACLs disabled (AWS's default) refuse an ACL header.
- Path-style addressing for the in-cluster store (SeaweedFS has no per-bucket host names).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components.charts import CLICKHOUSE_BACKUP_IMAGE
from components import cronjob
from components.data.clickhouse.installation import POD_SECURITY
from components.data.clickhouse.topology import BACKUP_API_PORT, CLUSTER, NAMESPACE, Topology, pod_labels
from components.data.clickhouse.users import BACKUP, BACKUP_SECRET
from components.data.context import DataContext
from components.data.endpoints import S3Location
from components.services.namespaces import RESTRICTED_CONTAINER_SECURITY

IMAGE = CLICKHOUSE_BACKUP_IMAGE
S3_SECRET = "clickhouse-backup-s3"
SCRIPT = Path(__file__).with_name("create-remote.sh")
SCRIPT_CONFIGMAP = "clickhouse-backup-script"
CRONJOB = "clickhouse-backup"
JOB_DEADLINE_SECONDS = 8 * 3600  # a full backup of a few hundred GiB over S3, with room to spare
JOB_RESOURCES = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}


def _from_secret(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def backup_path(location: S3Location) -> str:
    """Where a shard's backups sit: clickhouse-backup fills in `{shard}` from the server's macros."""
    return "/".join(p for p in (location.prefix, "shard-{shard}") if p)


def remote_env(location: S3Location) -> dict[str, str]:
    """The remote storage settings (keys aside), the same for the sidecars and the restore drill's reader."""
    return {
        "REMOTE_STORAGE": "s3",
        "S3_ENDPOINT": location.endpoint,
        "S3_REGION": location.region,
        "S3_BUCKET": location.bucket,
        "S3_PATH": backup_path(location),
        "S3_FORCE_PATH_STYLE": "true" if location.in_cluster else "false",
        "S3_ACL": "",
        **({"S3_SSE": location.sse} if location.sse else {}),  # clickhouse-backup v2.8.0 pkg/config s3.sse
    }


def sidecar_env(location: S3Location, keep: int) -> list[dict[str, Any]]:
    """The sidecar's settings; `location` is the store's prefix (S3Location.under("clickhouse"))."""
    plain = {
        "LOG_LEVEL": "info",
        "API_LISTEN": f"0.0.0.0:{BACKUP_API_PORT}",
        "API_ENABLE_METRICS": "true",
        "CLICKHOUSE_USERNAME": BACKUP,
        "BACKUPS_TO_KEEP_LOCAL": "-1",
        "BACKUPS_TO_KEEP_REMOTE": str(keep),
        **remote_env(location),
        # A restore creates the schema ON CLUSTER (every replica gets the Replicated tables): create-remote.sh
        "RESTORE_SCHEMA_ON_CLUSTER": CLUSTER,
    }
    return [*({"name": k, "value": v} for k, v in plain.items()),
            _from_secret("CLICKHOUSE_PASSWORD", BACKUP_SECRET, "password"),
            _from_secret("API_USERNAME", BACKUP_SECRET, "api-username"),
            _from_secret("API_PASSWORD", BACKUP_SECRET, "api-password"),
            _from_secret("S3_ACCESS_KEY", S3_SECRET, "ACCESS_KEY_ID"),
            _from_secret("S3_SECRET_KEY", S3_SECRET, "SECRET_ACCESS_KEY")]


def sidecar(t: Topology, location: S3Location, keep: int) -> dict[str, Any]:
    """The clickhouse-backup container of a server pod: `server` mode, REST API and metrics on one port."""
    return {
        "name": "clickhouse-backup",
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "args": ["server"],  # the image's entrypoint runs `clickhouse-backup server`
        "env": sidecar_env(location, keep),
        "ports": [{"name": "backup-api", "containerPort": BACKUP_API_PORT}],
        "resources": t.backup.spec(),
        "securityContext": dict(RESTRICTED_CONTAINER_SECURITY),
    }


def pod_spec(t: Topology, restore: str | None = None) -> dict[str, Any]:
    """The script's pod: a backup of every shard, or (`restore`: a backup name) the restore of that backup."""
    env = [{"name": "SHARDS", "value": " ".join(",".join(replicas) for replicas in t.hosts())},
           {"name": "DOMAIN", "value": f"{NAMESPACE}.svc"},
           {"name": "API_PORT", "value": str(BACKUP_API_PORT)},
           _from_secret("API_USERNAME", BACKUP_SECRET, "api-username"),
           _from_secret("API_PASSWORD", BACKUP_SECRET, "api-password"),
           *([{"name": "RESTORE", "value": restore}] if restore else [])]
    container = {
        "name": "restore-remote" if restore else "create-remote",
        "image": IMAGE,  # the same image: it ships bash and curl
        "imagePullPolicy": "IfNotPresent",
        "command": ["/bin/bash", f"/scripts/{SCRIPT.name}"],
        "env": env,
        "resources": JOB_RESOURCES,
        "securityContext": {**RESTRICTED_CONTAINER_SECURITY, "readOnlyRootFilesystem": True},
        "volumeMounts": [{"name": "scripts", "mountPath": "/scripts", "readOnly": True}],
    }
    return {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,  # it only talks to the sidecars
        "enableServiceLinks": False,
        "securityContext": POD_SECURITY,
        "containers": [container],
        "volumes": [{"name": "scripts", "configMap": {"name": SCRIPT_CONFIGMAP, "defaultMode": 0o555}}],
    }


def cronjob_spec(t: Topology, schedule: str, labels: dict[str, str]) -> dict[str, Any]:
    return cronjob.cronjob_spec(schedule, pod_spec(t), labels=labels, deadline=JOB_DEADLINE_SECONDS, history=3)


def restore_job_spec(t: Topology, backup: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "backoffLimit": 0,  # a half-done restore is looked at, not retried over itself
        "activeDeadlineSeconds": JOB_DEADLINE_SECONDS,
        "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec(t, restore=backup)},
    }


def credentials(ctx: DataContext, location: S3Location, depends_on: Sequence[pulumi.Resource]) -> k8s.core.v1.Secret:
    """The object store's keys in the installation's namespace (keys ACCESS_KEY_ID, SECRET_ACCESS_KEY)."""
    return location.secret("clickhouse-backup-s3", S3_SECRET, NAMESPACE, ctx.opts(depends_on))


def install_schedule(ctx: DataContext, t: Topology, depends_on: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    """The script and the CronJob that runs it; after the installation whose sidecars it calls."""
    labels = ctx.labels("clickhouse-backup", "backup")
    script = k8s.core.v1.ConfigMap(
        "clickhouse-backup-script",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=SCRIPT_CONFIGMAP, namespace=NAMESPACE, labels=labels),
        data={SCRIPT.name: SCRIPT.read_text()}, opts=ctx.opts(depends_on))
    job = k8s.batch.v1.CronJob(
        "clickhouse-backup",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=CRONJOB, namespace=NAMESPACE, labels=labels),
        spec=cronjob_spec(t, ctx.settings.clickhouse.backup_schedule, pod_labels(ctx, "clickhouse-backup", "backup")),
        opts=ctx.opts([*depends_on, script]))
    ready: list[pulumi.Resource] = [script, job]
    restore = ctx.settings.clickhouse.restore
    if restore is not None:
        # Named after the backup: a new name is a new restore, the same one never runs twice (as Velero's).
        ready.append(k8s.batch.v1.Job(
            "clickhouse-restore",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=f"clickhouse-restore-{restore.backup.lower()}",
                                                namespace=NAMESPACE, labels=ctx.labels("clickhouse-backup", "restore"),
                                                annotations={"pulumi.com/timeoutSeconds": str(JOB_DEADLINE_SECONDS)}),
            spec=restore_job_spec(t, restore.backup, pod_labels(ctx, "clickhouse-backup", "restore")),
            opts=ctx.opts([*depends_on, script])))
    return ready

