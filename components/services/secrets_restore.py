"""The secret store's restore switch: clusterServices.secrets.restore installs a raft snapshot (secrets_backup.py)
into the running, unsealed OpenBao through its own API.

Order: the servers (initialised and unsealed by themselves), then the configure Job (which writes the restore role
while the switch is set), then the Job `<backend>-restore-<snapshot>`: the pinned curl image downloads the snapshot
(scripts/secrets-download.sh; `latest`: the newest in S3) and the store's image installs it
(scripts/secrets-restore.sh, `bao operator raft snapshot restore`, with `-force` when restore.force asks), then the
configure Job runs once more (`<backend>-reconfigure`): the snapshot brings back its own policies and roles, and this
run writes the current ones again (a team added since the snapshot, this restore role).

Least privilege: the Job logs in through Kubernetes auth as the ServiceAccount `<backend>-restore`, bound to the role
`raft-restore`, whose policy may update the one restore path the Job calls (sys/storage/raft/snapshot, or
snapshot-force with `force`) and nothing else; neither the admin nor a root token. The role exists only while the
switch is set (the configure Job deletes it otherwise). S3 is read with the snapshots' own key pair
(backupCredentials.secrets, its Secret in this namespace only): the download container holds it, the restore
container the store's token, neither the other's.

Once per name: the Job is named after the snapshot (`latest` too: it is resolved when the Job runs) and Pulumi
ignores later changes to its spec, so a new image or script never restores the store again; a new name does.

Seal: the snapshot's root key is wrapped by the seal it was taken under. Without `force`, OpenBao refuses a snapshot
whose hashes the running seal cannot open (OpenBao 2.6.2 vault/logical_system_raft.go) and the store stays as it
was; with the same seal (the static key kept in the same Pulumi state, or the same KMS / transit key) a snapshot
restores into a new cluster without `force`. Velero's restore of the same namespace is refused alongside
(config/rules.py _secrets_restore): one source of truth per restore.
"""

from __future__ import annotations

from typing import Any, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components import charts
from components.services import secrets, secrets_backup
from components.services.context import ServicesContext
from components.services.namespaces import Namespaces
from config.services import SecretsRestore

SCRIPT_FILES = {name: secrets.SCRIPTS / name for name in
                ("secrets-login.sh", "secrets-download.sh", "secrets-restore.sh")}
LOGIN_WAIT_SECONDS = 600  # the restore waits this long for a login, and then for the snapshot to be installed
JOB_DEADLINE_SECONDS = 3600


def job_name(backend: secrets.Backend, restore: SecretsRestore) -> str:
    return f"{secrets.restore_account(backend)}-{restore.snapshot.lower()}"


def pod_spec(ctx: ServicesContext, backend: secrets.Backend, restore: SecretsRestore) -> dict[str, Any]:
    """Download (curl, the S3 keys) then restore (the store's image, logged in as the restore role)."""
    mount = secrets_backup.SCRIPT_MOUNT
    download = secrets_backup.container(
        "download", charts.CLICKHOUSE_BACKUP_IMAGE, ["/bin/bash", f"{mount}/secrets-download.sh"],
        {"SNAPSHOT": restore.snapshot}, secrets_backup.s3_env(ctx, backend), [])
    install = secrets_backup.container(
        "restore", secrets.image_ref(backend), ["/bin/sh", f"{mount}/secrets-restore.sh"],
        {**secrets.login_env(backend, secrets.RESTORE_ROLE), "WAIT_SECONDS": str(LOGIN_WAIT_SECONDS),
         "FORCE": "true" if restore.force else "false"}, [], secrets_backup.STORE_MOUNTS)
    return secrets_backup.two_step_pod(secrets.restore_account(backend), download, install,
                                       secrets_backup.volumes(backend, secrets.restore_account(backend)))


def job_spec(ctx: ServicesContext, backend: secrets.Backend, restore: SecretsRestore) -> dict[str, Any]:
    # One try: a second restore of the same snapshot would be harmless, but a failure is for a person to read.
    return {"backoffLimit": 0, "activeDeadlineSeconds": JOB_DEADLINE_SECONDS,
            "template": {"metadata": {"labels": secrets.restore_pods(backend)},
                         "spec": pod_spec(ctx, backend, restore)}}


def install(ctx: ServicesContext, spaces: Namespaces, store: secrets.SecretStore,
            after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    """With clusterServices.secrets.restore set: the restore Job, its ServiceAccount and scripts, then the configure
    Job again; `after`: the store (its configure Job writes the restore role) and the snapshots' S3 Secret."""
    restore = ctx.settings.secrets.restore
    if restore is None:
        return []
    backend = secrets.backend_of(ctx)
    assert store.configure_spec is not None and secrets.snapshots_enabled(ctx)  # config/rules.py _secrets_restore
    account, ns = secrets.restore_account(backend), spaces[backend.name]
    meta = lambda name: secrets_backup.meta(ctx, backend, name, label=account)  # noqa: E731
    identity = k8s.core.v1.ServiceAccount(account, metadata=meta(account), automount_service_account_token=False,
                                          opts=ctx.opts([ns]))
    scripts = k8s.core.v1.ConfigMap(f"{account}-scripts", metadata=meta(account),
                                    data=secrets_backup.scripts_data(SCRIPT_FILES), opts=ctx.opts([ns]))
    # Created once per snapshot name: a changed spec (image, script) must not restore the store a second time.
    job = k8s.batch.v1.Job(
        account, metadata=meta(job_name(backend, restore)), spec=job_spec(ctx, backend, restore),
        opts=ctx.opts([*after, identity, scripts], ignore_changes=["spec"],
                      custom_timeouts=pulumi.CustomTimeouts(create="70m")))
    again = secrets.configure_job(ctx, backend, f"{backend.name}-reconfigure", store.configure_spec, [job])
    return [identity, scripts, job, again]
