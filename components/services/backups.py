"""Velero: scheduled backups of cluster resources and volume contents to S3 outside the cluster,
and the restore that disaster recovery runs. (etcd snapshots are K3s server flags: components/k3s.)

Volumes are backed up file by file (node-agent, kopia), not by snapshots: Hetzner Cloud volumes
have no snapshot API, so neither the CSI driver nor a Velero plugin can snapshot them. Every pod
volume is included by default (`defaultVolumesToFsBackup`); a workload opts a volume out with the
annotation `backup.velero.io/backup-volumes-excludes`. Setting `clusterServices.backups.restore`
creates a Restore of that backup once Velero runs; objects Pulumi already recreated are left as
they are (`existingResourcePolicy: none`).

Encryption: kopia encrypts every volume backup (content and metadata) with the repository password, which
is generated here (pulumi_random) instead of Velero's built-in default: it lives in Pulumi state and in the
Secret `velero-repo-credentials`, which carries `velero.io/exclude-from-backup` like every Secret that
unlocks others (components/layer.py EXCLUDE_FROM_BACKUP), so no backup holds its own key. Velero reads that
Secret and creates it with its default password only when it is missing (pkg/repository/keys, v1.18.1): ours
exists first. The S3 keys are Velero's own (backupCredentials.velero), held by no other writer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.charts import VELERO
from components.helm import release
from components.layer import EXCLUDE_FROM_BACKUP, wait_for
from components.services.context import ServicesContext
from components.services.namespaces import NamespaceSpec, Namespaces, prometheus_peer
from config.catalog import LIVE_DATABASE_NAMESPACES
from config.model import DEDICATED_TAINT_KEY
from config.services import Backups as Settings

NAMESPACE = VELERO.namespace
VELERO_IMAGE = ("docker.io/velero/velero", "v1.18.1")  # the chart's appVersion
AWS_PLUGIN_IMAGE = "docker.io/velero/velero-plugin-for-aws:v1.14.2"  # the plugin line for Velero 1.18
CREDENTIALS_SECRET = "velero-s3"
REPOSITORY_SECRET = ("velero-repo-credentials", "repository-password")  # fixed names Velero reads (pkg/repository/keys)
LOCATION = "default"
HELM_RECORD_LABEL = ("owner", "helm")  # what Helm 3 labels its release records (Secrets) with
# A namespace restored first (the secrets store's: a few small raft volumes) that has not completed by then has failed.
FIRST_RESTORE_TIMEOUT_SECONDS = 1800
SCHEDULE = "cluster"  # backups are named cluster-<timestamp>
HTTPS = 443
METRICS_PORT = 8085  # server and node-agent `http-monitoring` (chart velero-12.1.0 templates/deployment.yaml)

RESOURCES = {
    "server": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
    # kopia holds file chunks in memory while uploading large volumes
    "node_agent": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}},
    "plugin": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
    "job": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
}
RESTRICTED = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": True}


# Makes the Restore of a namespace restored on its own (install's `first`) once its prerequisites exist, waited for
# until complete; none where no restore asks for that namespace.
FirstRestore = Callable[[str, Sequence[pulumi.Resource]], list[pulumi.Resource]]


def no_restore(_namespace: str, _prerequisites: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    return []


@dataclass
class Backups:
    ready: list[pulumi.Resource] = field(default_factory=list)
    restore_first: FirstRestore = no_restore


def namespaces(ctx: ServicesContext) -> list[NamespaceSpec]:
    if not ctx.settings.backups.enabled:
        return []
    return [NamespaceSpec(
        name=NAMESPACE, pss="privileged", egress_world=(HTTPS,),
        # Prometheus scrapes the chart's ServiceMonitor (server) and PodMonitor (node-agent) on this port.
        ingress_from=(prometheus_peer((METRICS_PORT,)),),
        why="the node-agent reads every pod's volumes from the host (hostPath /var/lib/kubelet/pods, root)")]


def credentials_file(access_key: str, secret_key: str) -> str:
    """The AWS shared-credentials file the AWS plugin and kopia read."""
    return f"[default]\naws_access_key_id={access_key}\naws_secret_access_key={secret_key}\n"


def storage_location(settings: Settings, stack: str) -> dict[str, Any]:
    s3 = settings.s3
    assert s3 is not None  # config/rules.py: s3 is required when backups are enabled
    return {
        "name": LOCATION, "provider": "aws", "bucket": s3.bucket_for("velero"), "prefix": f"{stack}/velero",
        "default": True,
        "accessMode": "ReadWrite",
        "config": {
            "region": s3.region, "s3Url": s3.endpoint,
            "s3ForcePathStyle": "true",  # S3-compatible stores address buckets by path
            # The plugin's default CRC32 checksums are rejected by Ceph-based stores (Hetzner's).
            "checksumAlgorithm": "",
            # velero-plugin-for-aws BackupStorageLocation config (backupstoragelocation.md)
            **({"serverSideEncryption": s3.server_side_encryption} if s3.server_side_encryption else {}),
        },
    }


def dedicated_tolerations() -> list[dict[str, Any]]:
    """The node-agent must run wherever pods with volumes run, the dedicated database pools included."""
    return [{"key": DEDICATED_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}]


def kubectl_tag(k3s_version: str) -> str:
    return k3s_version.split("+")[0]  # v1.36.4+k3s1 -> v1.36.4: the cluster's own kubectl


def values(ctx: ServicesContext) -> dict[str, Any]:
    settings = ctx.settings.backups
    repository, tag = VELERO_IMAGE
    return {
        "image": {"repository": repository, "tag": tag, "pullPolicy": "IfNotPresent"},
        "initContainers": [{
            "name": "velero-plugin-for-aws", "image": AWS_PLUGIN_IMAGE, "imagePullPolicy": "IfNotPresent",
            "volumeMounts": [{"mountPath": "/target", "name": "plugins"}],
            "resources": RESOURCES["plugin"], "securityContext": RESTRICTED,
        }],
        # One replica by design: Velero has no leader election and its chart uses a Recreate rollout;
        # while it restarts, a scheduled backup waits for the next run.
        "resources": RESOURCES["server"],
        "containerSecurityContext": RESTRICTED,
        "upgradeJobResources": RESOURCES["job"],
        "kubectl": {"image": {"repository": "registry.k8s.io/kubectl", "tag": kubectl_tag(ctx.cluster.k3s_version)},
                    "resources": RESOURCES["job"]},
        "credentials": {"useSecret": True, "existingSecret": CREDENTIALS_SECRET},
        "backupsEnabled": True,
        "snapshotsEnabled": False,  # no volume snapshots on Hetzner: file-system backup instead
        "configuration": {
            "backupStorageLocation": [storage_location(settings, ctx.stack)],
            "volumeSnapshotLocation": [],
            "uploaderType": "kopia",
            "defaultVolumesToFsBackup": True,
            "defaultBackupTTL": settings.velero_ttl,
            "logFormat": "json",
        },
        "deployNodeAgent": True,
        "nodeAgent": {"resources": RESOURCES["node_agent"], "tolerations": dedicated_tolerations()},
        # Scraped once the Prometheus operator's CRDs exist (the chart checks for them).
        "metrics": {"enabled": True, "serviceMonitor": {"enabled": True}, "nodeAgentPodMonitor": {"enabled": True}},
    }


def schedule_spec(settings: Settings) -> dict[str, Any]:
    return {
        "schedule": settings.velero_schedule,
        "useOwnerReferencesInBackup": False,  # backups outlive a deleted Schedule
        "template": {
            "includedNamespaces": ["*"],
            "excludedNamespaces": list(LIVE_DATABASE_NAMESPACES),
            "ttl": settings.velero_ttl,
            "storageLocation": LOCATION,
            "defaultVolumesToFsBackup": True,
            "snapshotVolumes": False,
        },
    }


def restore_spec(settings: Settings) -> dict[str, Any] | None:
    """The disaster-recovery restore from config, or None when none is asked for."""
    restore = settings.restore
    if restore is None:
        return None
    return velero_restore_spec(restore.backup, restore.include_namespaces, restore.exclude_namespaces)


def velero_restore_spec(backup: str, include: Sequence[str], exclude: Sequence[str] = (),
                        resources: Sequence[str] = ()) -> dict[str, Any]:
    """A Restore of `backup` (velero.io/v1 Restore at v1.18.1): volumes with their contents, objects that already
    exist left as they are. `resources`: only these kinds (all when empty)."""
    spec: dict[str, Any] = {
        "backupName": backup,
        "includedNamespaces": list(include),
        "excludedNamespaces": list(exclude),
        "restorePVs": True,
        "existingResourcePolicy": "none",
        # Everything but Helm's release records (Secrets labelled owner=helm, helm pkg/storage/driver/secrets.go): a
        # restored record makes the Release Pulumi creates for that chart fail ("cannot re-use a name that is still in
        # use"), whether it is restored before Pulumi installs it (the platform's, a later step) or while it does (the
        # cluster services', installed beside Velero). Without it, Helm's install adopts the restored objects, which
        # carry its ownership annotations. NotIn also selects every object without the label.
        "labelSelector": {"matchExpressions": [{"key": HELM_RECORD_LABEL[0], "operator": "NotIn",
                                                "values": [HELM_RECORD_LABEL[1]]}]},
    }
    if resources:
        spec["includedResources"] = list(resources)
    return spec


def install(ctx: ServicesContext, spaces: Namespaces, after: Sequence[pulumi.Resource],
            first: Sequence[str] = ()) -> Backups:
    """`first`: namespaces of this layer whose workloads must start on their restored volumes (the secrets store's):
    with a restore set, each is left out of the cluster-wide Restore and restored on its own by
    Backups.restore_first, which its module calls once the restored pods' prerequisites exist (what no backup holds:
    Secrets excluded from backups, certificates), and its release waits for. Otherwise its release, installed beside
    Velero, would race the restore: whichever makes the claims first wins, and a store that starts on empty volumes
    initialises itself anew. Created before the prerequisites, the Restore could never complete: Velero fills a
    volume through the restored pod's init container, which starts only once every volume of the pod mounts."""
    settings = ctx.settings.backups
    if not settings.enabled:
        return Backups()
    ns = spaces[NAMESPACE]
    secret = _credentials(ctx, ns)
    repository = _repository_password(ctx, ns)
    velero = release("velero", VELERO, values(ctx), ctx.opts([*after, ns, secret, repository]), namespace=NAMESPACE,
                     create_namespace=False)
    schedule = _custom(ctx, "velero-schedule", "Schedule", SCHEDULE, schedule_spec(settings), [velero])
    ready: list[pulumi.Resource] = [secret, repository, velero, schedule]
    spec = restore_spec(settings)
    if spec is None:
        return Backups(ready=ready)
    assert settings.restore is not None  # restore_spec
    own = [namespace for namespace in first if settings.restore.restores(namespace)]
    spec["excludedNamespaces"] += own
    # Named after the backup: a new backup name is a new restore, the same one never runs twice.
    ready.append(_custom(ctx, "velero-restore", "Restore", f"restore-{spec['backupName']}", spec, [velero]))
    backup = spec["backupName"]

    def restore_first(namespace: str, prerequisites: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
        if namespace not in own:
            return []
        return [_custom(ctx, f"velero-restore-{namespace}", "Restore", f"restore-{backup}-{namespace}"[:63].rstrip("-."),
                        velero_restore_spec(backup, [namespace]), [velero, *prerequisites],
                        annotations=wait_for("jsonpath={.status.phase}=Completed", FIRST_RESTORE_TIMEOUT_SECONDS))]
    return Backups(ready=ready, restore_first=restore_first)


def _credentials(ctx: ServicesContext, ns: pulumi.Resource) -> k8s.core.v1.Secret:
    keys = ctx.secrets.backup_keys("velero")
    assert keys is not None  # config/rules.py: every backup purpose has keys when backups are enabled
    cloud = pulumi.Output.secret(pulumi.Output.all(keys.access_key_id, keys.secret_access_key)
                                 .apply(lambda v: credentials_file(*v)))
    return _excluded_secret(ctx, "velero-s3-credentials", CREDENTIALS_SECRET, {"cloud": cloud}, ns)


def _repository_password(ctx: ServicesContext, ns: pulumi.Resource) -> k8s.core.v1.Secret:
    """kopia's repository password. Losing it (a `pulumi destroy` of the RandomPassword) makes every volume
    backup unreadable: protected in production."""
    password = random.RandomPassword("velero-repository-password", length=48, special=False,
                                     opts=pulumi.ResourceOptions(parent=ctx.parent, protect=ctx.protect))
    name, key = REPOSITORY_SECRET
    return _excluded_secret(ctx, "velero-repository-password", name, {key: pulumi.Output.secret(password.result)}, ns,
                            protect=ctx.protect)


def _excluded_secret(ctx: ServicesContext, resource_name: str, name: str, data: dict[str, pulumi.Input[str]],
                     ns: pulumi.Resource, protect: bool = False) -> k8s.core.v1.Secret:
    """A Secret of Velero's own that stays out of its backups (EXCLUDE_FROM_BACKUP)."""
    return k8s.core.v1.Secret(
        resource_name, metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=NAMESPACE,
                                                           labels={**ctx.labels("velero"), **EXCLUDE_FROM_BACKUP}),
        type="Opaque", string_data=data, opts=ctx.opts([ns], protect=protect))


def _custom(ctx: ServicesContext, resource_name: str, kind: str, name: str, spec: dict[str, Any],
            depends_on: Sequence[pulumi.Resource],
            annotations: dict[str, str] | None = None) -> k8s.apiextensions.CustomResource:
    return k8s.apiextensions.CustomResource(
        resource_name, api_version="velero.io/v1", kind=kind,
        metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=NAMESPACE, labels=ctx.labels("velero"),
                                            annotations=annotations),
        spec=spec, opts=ctx.opts(depends_on))
