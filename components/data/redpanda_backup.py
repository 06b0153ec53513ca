"""Redpanda's backup path: a scheduled export to the backup bucket, and its import from config.

Why an export job: the vendor's path to object storage, Tiered Storage (and the shadow indexing it restores
with), needs an Enterprise licence at the pinned Redpanda 26.2 ("This feature requires an enterprise license",
docs.redpanda.com manage/tiered-storage); the community edition has no other built-in backup. Kafka Connect S3
sinks would add a Connect cluster (a JVM, its own state topics in this very cluster) for what a job does with
the tool the image already ships: rpk reads every partition from its start to its current end, the topic
configs and ACLs (scripts/redpanda-export.sh), and curl uploads them with SigV4 signing
(scripts/redpanda-s3.sh), server-side encrypted when clusterServices.backups.s3.serverSideEncryption asks.

The export runs in two containers of one pod, because the redpanda image has rpk but no curl, and the
clickhouse-backup image (pinned for ClickHouse, components/charts.py) has bash and curl: the init container
exports into a generic ephemeral volume, the main container uploads it and deletes exports beyond
`dataPlane.redpanda.backupRetention`. The import (`dataPlane.redpanda.restore.backup`) is the same pod the other
way round: download, then rpk creates the topics with their configs, replays `_schemas` (the Schema Registry's
log: schema ids stay what records reference) and then every partition's records in order.

What an export does not carry, and so a restore loses (docs/disaster-recovery.md): records written after the
last export (RPO = the schedule); record headers and the original timestamps and offsets (records are
re-produced); consumer group offsets (consumers start at their reset policy); SASL users and passwords (Pulumi
holds them and the `User` resources recreate users and their ACLs; acls.txt is for the record); the cluster
properties (Pulumi declares them in the `Redpanda` resource). Both would need the Admin API: superusers only.

The restore drill (drills.py) runs the same download (BACKUP=latest: the newest export that finished uploading)
and import (REPLICAS=1) into a scratch broker in dr-drills, reading with the drills' read-only keys.

Credentials: its own S3 keys (backupCredentials.redpanda, written to its own prefix), and two SASL users of its
own: `redpanda-backup` may read and describe, nothing else; `redpanda-restore` (only while a restore is
configured) may create topics and write. Neither is a superuser, so neither reaches the Admin API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components import charts, cronjob
from components.data import redpanda as cluster  # imports this module: its names are read at call time only
from components.data.clickhouse.backup import IMAGE as CURL_IMAGE
from components.data.context import DataContext
from components.data.endpoints import S3Location
from components.services.namespaces import RESTRICTED_CONTAINER_SECURITY, RESTRICTED_POD_SECURITY

SCRIPTS = Path(__file__).parent / "scripts"
SCRIPT_FILES = ("redpanda-s3.sh", "redpanda-export.sh", "redpanda-upload.sh", "redpanda-download.sh",
                "redpanda-import.sh")
SCRIPT_CONFIGMAP = "redpanda-backup-scripts"
S3_SECRET = "redpanda-backup-s3"
CRONJOB = "redpanda-backup"
BACKUP_USER, BACKUP_SECRET = "redpanda-backup", "redpanda-backup-user"
RESTORE_USER, RESTORE_SECRET = "redpanda-restore", "redpanda-restore-user"
REDPANDA_IMAGE = f"docker.redpanda.com/redpandadata/redpanda:{charts.REDPANDA_VERSION}"
REDPANDA_UID = 101  # the redpanda image's user
WORK, SCRIPT_MOUNT, CA_MOUNT = "/work", "/scripts", "/etc/redpanda-ca"
JOB_DEADLINE_SECONDS = 6 * 3600
RESOURCES = {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}


def read_acls() -> list[dict[str, Any]]:
    """The export's rights: read every topic (with `_schemas`) and its configs, list ACLs (DescribeAcls needs
    Describe on the cluster). Nothing from the Admin API: it serves superusers only (redpanda.py), and a superuser
    would pass every ACL, so the export leaves out the user list and the cluster config, which Pulumi declares."""
    return [{"type": "allow", "resource": {"type": "topic", "name": "*"},
             "operations": ["Read", "Describe", "DescribeConfigs"]},
            {"type": "allow", "resource": {"type": "cluster", "name": ""}, "operations": ["Describe"]}]


def write_acls() -> list[dict[str, Any]]:
    """The import's rights: create topics with their configs and write to them (`_schemas` included)."""
    return [{"type": "allow", "resource": {"type": "topic", "name": "*"},
             "operations": ["Create", "Write", "Describe", "DescribeConfigs", "AlterConfigs"]},
            {"type": "allow", "resource": {"type": "cluster", "name": ""}, "operations": ["Create", "Describe"]}]


def rpk_env(ctx: DataContext, secret: str) -> list[dict[str, Any]]:
    """rpk's Kafka connection (each -X option as RPK_<OPTION>): TLS against the data plane's CA, SCRAM as `secret`'s
    user. No Admin API address: none of our jobs is a superuser, which is all the Admin API serves (redpanda.py)."""
    hosts = cluster.broker_hosts(ctx)
    plain = {"RPK_BROKERS": ",".join(f"{h}:{cluster.KAFKA_PORT}" for h in hosts), "RPK_TLS_ENABLED": "true",
             "RPK_TLS_CA": f"{CA_MOUNT}/ca.crt", "RPK_SASL_MECHANISM": cluster.SASL_MECHANISM}
    return [*({"name": k, "value": v} for k, v in plain.items()),
            _secret_env("RPK_USER", secret, "username"), _secret_env("RPK_PASS", secret, "password")]


def s3_env(location: S3Location, secret: str = S3_SECRET,
           secret_key: str = "SECRET_ACCESS_KEY") -> list[dict[str, Any]]:
    """redpanda-s3.sh's environment: `location`, with the keys from `secret` (the restore drill reads with its own
    read-only pair, whose secret key is under another name)."""
    plain = {"S3_ENDPOINT": location.endpoint, "S3_REGION": location.region, "S3_BUCKET": location.bucket,
             "S3_PREFIX": location.prefix, **({"S3_SSE": location.sse} if location.sse else {})}
    return [*({"name": k, "value": v} for k, v in plain.items()),
            _secret_env("S3_ACCESS_KEY", secret, "ACCESS_KEY_ID"),
            _secret_env("S3_SECRET_KEY", secret, secret_key)]


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def container(name: str, image: str, script: str, env: list[dict[str, Any]], ca: bool) -> dict[str, Any]:
    mounts = [{"name": "scripts", "mountPath": SCRIPT_MOUNT, "readOnly": True}, {"name": "work", "mountPath": WORK},
              {"name": "tmp", "mountPath": "/tmp"}]
    if ca:
        mounts.append({"name": "ca", "mountPath": CA_MOUNT, "readOnly": True})
    return {"name": name, "image": image, "imagePullPolicy": "IfNotPresent",
            "command": ["/bin/bash", f"{SCRIPT_MOUNT}/{script}"],
            "env": [{"name": "WORK", "value": WORK}, {"name": "HOME", "value": "/tmp"}, *env],
            "resources": RESOURCES, "volumeMounts": mounts,
            "securityContext": {**RESTRICTED_CONTAINER_SECURITY, "readOnlyRootFilesystem": True}}


def broker_sized_volume(ctx: DataContext) -> dict[str, Any]:
    """A volume as large as one broker's, gone with its pod: an export holds every partition once (replicas are
    not copied)."""
    return ctx.scratch_volume(ctx.settings.redpanda.storage_size)


def pod_spec(ctx: DataContext, location: S3Location, restore: str | None = None) -> dict[str, Any]:
    """Export then upload; or (`restore`: an export name) download then import."""
    settings = ctx.settings.redpanda
    if restore is None:
        first = container("export", REDPANDA_IMAGE, "redpanda-export.sh", rpk_env(ctx, BACKUP_SECRET), ca=True)
        second = container("upload", CURL_IMAGE, "redpanda-upload.sh",
                            [{"name": "KEEP", "value": str(settings.backup_retention)}, *s3_env(location)], ca=False)
    else:
        backup = [{"name": "BACKUP", "value": restore}]
        first = container("download", CURL_IMAGE, "redpanda-download.sh", [*backup, *s3_env(location)], ca=False)
        second = container("import", REDPANDA_IMAGE, "redpanda-import.sh",
                            [*backup, *rpk_env(ctx, RESTORE_SECRET)], ca=True)
    return {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,  # it talks to the brokers and S3, never to the API server
        "enableServiceLinks": False,
        "securityContext": {**RESTRICTED_POD_SECURITY, "runAsUser": REDPANDA_UID, "runAsGroup": REDPANDA_UID,
                            "fsGroup": REDPANDA_UID},
        "initContainers": [first],
        "containers": [second],
        "volumes": [{"name": "scripts", "configMap": {"name": SCRIPT_CONFIGMAP, "defaultMode": 0o555}},
                    {"name": "work", **broker_sized_volume(ctx)},
                    {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                    {"name": "ca", "secret": {"secretName": cluster.CA_SECRET,
                                              "items": [{"key": "ca.crt", "path": "ca.crt"}]}}],
    }


def cronjob_spec(ctx: DataContext, location: S3Location, labels: dict[str, str]) -> dict[str, Any]:
    # One finished Job of each outcome: its pod keeps its export volume (a broker's size) until it goes.
    return cronjob.cronjob_spec(ctx.settings.redpanda.backup_schedule, pod_spec(ctx, location), labels=labels,
                                deadline=JOB_DEADLINE_SECONDS)


def restore_job_spec(ctx: DataContext, location: S3Location, backup: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "backoffLimit": 0,  # a half-replayed import is looked at, not replayed again on top of itself
        "activeDeadlineSeconds": JOB_DEADLINE_SECONDS,
        "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec(ctx, location, restore=backup)},
    }


def sasl_user(ctx: DataContext, name: str, secret: str, acls: list[dict[str, Any]],
              after: Sequence[pulumi.Resource], component: str = "backup") -> list[pulumi.Resource]:
    """A SASL user of a job (not a consumer): its generated password in `secret` (redpanda namespace), its `acls`."""
    labels = ctx.labels("redpanda", component)
    _, objects = cluster.sasl_user(ctx, name, secret, acls, after, after,
                                   resources=(f"{name}-password", f"{name}-credentials", f"{name}-user"),
                                   labels=(labels, labels))
    return objects


def install(ctx: DataContext, after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    """The export CronJob (and the import Job when `dataPlane.redpanda.restore` is set); `after`: the cluster."""
    if ctx.backup is None:
        return []
    location = ctx.backup.of("redpanda")
    labels = ctx.labels("redpanda-backup", "backup")
    s3 = location.secret("redpanda-backup-s3", S3_SECRET, cluster.NAMESPACE, ctx.opts(after))
    scripts = k8s.core.v1.ConfigMap(
        "redpanda-backup-scripts",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=SCRIPT_CONFIGMAP, namespace=cluster.NAMESPACE, labels=labels),
        data={name: (SCRIPTS / name).read_text() for name in SCRIPT_FILES}, opts=ctx.opts(after))
    reader = sasl_user(ctx, BACKUP_USER, BACKUP_SECRET, read_acls(), after)
    job = k8s.batch.v1.CronJob(
        "redpanda-backup", metadata=k8s.meta.v1.ObjectMetaArgs(name=CRONJOB, namespace=cluster.NAMESPACE, labels=labels),
        spec=cronjob_spec(ctx, location, pod_labels(ctx, "backup")), opts=ctx.opts([*after, s3, scripts, *reader]))
    ready: list[pulumi.Resource] = [s3, scripts, *reader, job]
    restore = ctx.settings.redpanda.restore
    if restore is not None:
        writer = sasl_user(ctx, RESTORE_USER, RESTORE_SECRET, write_acls(), after)
        # Named after the export, as Velero's restores: a new name is a new import, the same one never runs twice.
        ready += [*writer, k8s.batch.v1.Job(
            "redpanda-restore", metadata=k8s.meta.v1.ObjectMetaArgs(
                name=f"redpanda-restore-{restore.backup.lower()}", namespace=cluster.NAMESPACE,
                labels=ctx.labels("redpanda-backup", "restore"),
                annotations={"pulumi.com/timeoutSeconds": str(JOB_DEADLINE_SECONDS)}),
            spec=restore_job_spec(ctx, location, restore.backup, pod_labels(ctx, "restore")),
            opts=ctx.opts([*after, s3, scripts, *writer]))]
    return ready


def pod_labels(ctx: DataContext, component: str) -> dict[str, str]:
    """Labels of pods a controller (the CronJob, the Job) creates: not Pulumi-managed objects."""
    return {k: v for k, v in ctx.labels("redpanda-backup", component).items() if k != "app.kubernetes.io/managed-by"}
