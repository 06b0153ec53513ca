"""The secret store's backups: its own raft snapshots, uploaded to the backups' off-cluster S3.

Velero copies the store's raft volumes file by file while the servers write them: a copy that need not be
consistent (bolt's file and the raft log at different moments). OpenBao (and Vault) take a consistent snapshot
themselves: `GET /v1/sys/storage/raft/snapshot` (`bao operator raft snapshot save`, OpenBao 2.6.2), answered by the
leader from one point of its state. The CronJob `<backend>-snapshot` (clusterServices.backups.secretsSchedule) runs it
in two containers of one pod, as Redpanda's export does: the store's own image (it has the CLI but no curl) saves the
snapshot into an emptyDir (scripts/secrets-snapshot.sh), the pinned curl image uploads it with SigV4 signing
(scripts/secrets-upload.sh with the platform's S3 helpers, components/data/scripts/redpanda-s3.sh) and keeps the
newest clusterServices.backups.secretsRetention.

Least privilege:
- OpenBao: the pod logs in through Kubernetes auth as the ServiceAccount `<backend>-snapshot` (a projected token with
  the store's audience, 10 minutes), bound to the role `raft-snapshot` alone, whose policy reads
  sys/storage/raft/snapshot and nothing else (secrets.py snapshot_requests; the configure Job writes both, Vault's
  bootstrap script likewise). No root token, no admin token: restoring (an update of the same path) stays the admin's.
- S3: the key pair backupCredentials.secrets, held by this CronJob alone (its own Secret, excluded from Velero's
  backups), writing to <stack>/secrets in clusterServices.backups.s3.buckets.secrets (or the shared bucket).
- Network: only these pods reach the internet, on the S3 endpoint's port (secrets.py namespaces).

Encryption: a snapshot holds the store's data as stored, encrypted by its barrier (the keyring sealed by the seal:
static key, KMS or transit), none of which is in the snapshot; S3 encrypts it again at rest when
clusterServices.backups.s3.serverSideEncryption asks (as for the other stores). The restore is
a switch (clusterServices.secrets.restore, secrets_restore.py), documented in docs/disaster-recovery.md ("Secret
store").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components import charts, cronjob
from components.layer import EXCLUDE_FROM_BACKUP
from components.services import secrets
from components.services.context import ServicesContext
from components.services.namespaces import RESTRICTED_CONTAINER_SECURITY, RESTRICTED_POD_SECURITY, Namespaces

PURPOSE = "secrets"  # config/services.py BACKUP_PURPOSES: backupCredentials.secrets, s3.buckets.secrets
SCRIPTS = secrets.SCRIPTS
S3_HELPERS = Path(__file__).parents[1] / "data" / "scripts" / "redpanda-s3.sh"
SCRIPT_FILES = {name: SCRIPTS / name for name in ("secrets-login.sh", "secrets-snapshot.sh", "secrets-upload.sh")}
WORK, SCRIPT_MOUNT = "/work", "/scripts"
LOGIN_WAIT_SECONDS = 120  # a server restarting (a reboot, an upgrade) answers again within this
JOB_DEADLINE_SECONDS = 3600
RESOURCES = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}


@dataclass(frozen=True)
class SnapshotBackup:
    """Where the data plane's BackupStale alert reads the snapshots' last success (kube-state-metrics' CronJob
    series), and their schedule."""

    namespace: str
    cronjob: str
    schedule: str


def cronjob_name(backend: secrets.Backend) -> str:
    return secrets.snapshot_account(backend)


def s3_secret(backend: secrets.Backend) -> str:
    return f"{backend.name}-snapshot-s3"


def s3_env(ctx: ServicesContext, backend: secrets.Backend) -> list[dict[str, Any]]:
    """redpanda-s3.sh's environment: the snapshots' bucket and prefix, and the keys from their own Secret."""
    s3 = ctx.settings.backups.s3
    assert s3 is not None  # secrets.snapshots_enabled
    plain = {"S3_ENDPOINT": s3.endpoint, "S3_REGION": s3.region, "S3_BUCKET": s3.bucket_for(PURPOSE),
             "S3_PREFIX": f"{ctx.stack}/{PURPOSE}",
             **({"S3_SSE": s3.server_side_encryption} if s3.server_side_encryption else {})}
    keys = {"S3_ACCESS_KEY": "ACCESS_KEY_ID", "S3_SECRET_KEY": "SECRET_ACCESS_KEY"}
    return [*({"name": k, "value": v} for k, v in plain.items()),
            *({"name": k, "valueFrom": {"secretKeyRef": {"name": s3_secret(backend), "key": key}}}
              for k, key in keys.items())]


def container(name: str, image: str, command: list[str], env: dict[str, str], extra_env: list[dict[str, Any]],
               mounts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": name, "image": image, "imagePullPolicy": "IfNotPresent", "command": command,
            "env": [*({"name": k, "value": v} for k, v in {**env, "WORK": WORK, "HOME": "/tmp"}.items()), *extra_env],
            "resources": RESOURCES,
            "volumeMounts": [{"name": "scripts", "mountPath": SCRIPT_MOUNT, "readOnly": True},
                             {"name": "work", "mountPath": WORK}, {"name": "tmp", "mountPath": "/tmp"}, *mounts],
            "securityContext": {**RESTRICTED_CONTAINER_SECURITY, "readOnlyRootFilesystem": True}}


def pod_spec(ctx: ServicesContext, backend: secrets.Backend) -> dict[str, Any]:
    """Snapshot (the store's image, logged in as the snapshot role) then upload (curl, the S3 keys): neither
    container holds the other's credential."""
    snapshot = container(
        "snapshot", secrets.image_ref(backend), ["/bin/sh", f"{SCRIPT_MOUNT}/secrets-snapshot.sh"],
        {**secrets.login_env(backend, secrets.SNAPSHOT_ROLE), "WAIT_SECONDS": str(LOGIN_WAIT_SECONDS)}, [],
        STORE_MOUNTS)
    upload = container("upload", charts.CLICKHOUSE_BACKUP_IMAGE, ["/bin/bash", f"{SCRIPT_MOUNT}/secrets-upload.sh"],
                        {"KEEP": str(ctx.settings.backups.secrets_retention)}, s3_env(ctx, backend), [])
    return two_step_pod(secrets.snapshot_account(backend), snapshot, upload, volumes(backend, cronjob_name(backend)))


# The store's image logs in with these: the projected token with the store's audience, and the store's CA.
STORE_MOUNTS = [{"name": "token", "mountPath": secrets.TOKEN_MOUNT, "readOnly": True},
                {"name": "ca", "mountPath": "/ca", "readOnly": True}]


def two_step_pod(account: str, first: dict[str, Any], then: dict[str, Any],
                 pod_volumes: list[dict[str, Any]]) -> dict[str, Any]:
    """A snapshot or restore pod: `first` (an init container) hands its file to `then` through the work volume; the
    two never share a credential. Its ServiceAccount's token is mounted only as the projected one of STORE_MOUNTS."""
    return {
        "serviceAccountName": account,
        "automountServiceAccountToken": False,  # only the projected token with the store's audience
        "enableServiceLinks": False,
        "restartPolicy": "Never",
        "securityContext": {**RESTRICTED_POD_SECURITY, "runAsUser": 100, "runAsGroup": 1000, "fsGroup": 1000},
        "initContainers": [first],
        "containers": [then],
        "volumes": pod_volumes,
    }


def volumes(backend: secrets.Backend, scripts: str) -> list[dict[str, Any]]:
    """A snapshot pod's (or restore pod's) volumes: its scripts' ConfigMap, the scratch space, the projected token
    with the store's audience and the store's CA."""
    return [
        {"name": "scripts", "configMap": {"name": scripts}},
        # As large as the raft volume: a snapshot holds at most what it does.
        {"name": "work", "emptyDir": {"sizeLimit": secrets.DATA_SIZE}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}},
        secrets.token_volume(backend),
        secrets.ca_volume(backend),
    ]


def cronjob_spec(ctx: ServicesContext, backend: secrets.Backend) -> dict[str, Any]:
    return cronjob.cronjob_spec(ctx.settings.backups.secrets_schedule, pod_spec(ctx, backend),
                                labels=secrets.snapshot_pods(backend), deadline=JOB_DEADLINE_SECONDS)


def prepare(ctx: ServicesContext, spaces: Namespaces) -> list[pulumi.Resource]:
    """The snapshots' ServiceAccount, scripts and S3 keys, where the backups have an off-cluster S3 (a restore from a
    snapshot reads with these keys too: secrets_restore.py)."""
    if not secrets.snapshots_enabled(ctx):
        return []
    backend = secrets.backend_of(ctx)
    keys = ctx.secrets.backup_keys(PURPOSE)
    assert keys is not None  # config/rules.py: every backup purpose has keys when backups are enabled
    name, ns = cronjob_name(backend), spaces[backend.name]
    account = k8s.core.v1.ServiceAccount(name, metadata=_meta(ctx, backend, secrets.snapshot_account(backend)),
                                         automount_service_account_token=False, opts=ctx.opts([ns]))
    # Keys that reach the backups stay out of Velero's (components/layer.py EXCLUDE_FROM_BACKUP).
    s3 = k8s.core.v1.Secret(f"{name}-s3", metadata=_meta(ctx, backend, s3_secret(backend), EXCLUDE_FROM_BACKUP),
                            type="Opaque",
                            string_data={"ACCESS_KEY_ID": pulumi.Output.secret(keys.access_key_id),
                                         "SECRET_ACCESS_KEY": pulumi.Output.secret(keys.secret_access_key)},
                            opts=ctx.opts([ns]))
    scripts = k8s.core.v1.ConfigMap(f"{name}-scripts", metadata=_meta(ctx, backend, name),
                                    data=scripts_data(SCRIPT_FILES), opts=ctx.opts([ns]))
    return [account, s3, scripts]


def schedule(ctx: ServicesContext, prepared: Sequence[pulumi.Resource], after: Sequence[pulumi.Resource]
             ) -> tuple[list[pulumi.Resource], SnapshotBackup | None]:
    """The snapshot CronJob, after `prepared` (prepare's) and `after`: the store (its release and the configure Job
    that writes the snapshot role) and a restore from a snapshot (secrets_restore.py), so that a fresh cluster's
    first snapshot is of the restored store, and a restore that fails stops the run before any snapshot of the empty
    store is taken (which would push the good ones out of the retention)."""
    if not prepared:
        return [], None
    backend = secrets.backend_of(ctx)
    name = cronjob_name(backend)
    job = k8s.batch.v1.CronJob(name, metadata=_meta(ctx, backend, name), spec=cronjob_spec(ctx, backend),
                               opts=ctx.opts([*after, *prepared]))
    return [*prepared, job], SnapshotBackup(backend.name, name, ctx.settings.backups.secrets_schedule)


def scripts_data(files: dict[str, Path]) -> dict[str, str]:
    """A snapshot or restore pod's scripts ConfigMap: its own files and the S3 helpers they source."""
    return {**{file: path.read_text() for file, path in files.items()}, S3_HELPERS.name: S3_HELPERS.read_text()}


def meta(ctx: ServicesContext, backend: secrets.Backend, resource: str, *, label: str,
         extra: dict[str, str] | None = None) -> k8s.meta.v1.ObjectMetaArgs:
    """A snapshot or restore object in the store's namespace, labelled as `label`'s."""
    return k8s.meta.v1.ObjectMetaArgs(name=resource, namespace=backend.name,
                                      labels={**ctx.labels(label), **(extra or {})})


def _meta(ctx: ServicesContext, backend: secrets.Backend, resource: str,
          extra: dict[str, str] | None = None) -> k8s.meta.v1.ObjectMetaArgs:
    return meta(ctx, backend, resource, label=cronjob_name(backend), extra=extra)
