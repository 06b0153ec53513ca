"""Scylla Manager: the `scylla-manager` chart and the CQL credentials it needs for schema backups.

One Manager serves every ScyllaCluster; the operator finds it only in the `scylla-manager` namespace
(scylla-operator v1.21.1 docs/source/deploy-scylladb/install-scylladb-manager.md). The chart runs a small
ScyllaCluster of its own for Manager's state (its `scylla` subchart, named scylla-manager-cluster as in
the operator's deploy/manager-prod.yaml), marked so the operator does not register it with Manager.

That database runs on the general nodes, in developer mode, on the provider's CSI class: the operator's
docs put it on the ScyllaDB nodes, but there it would take a pinned core from the production cluster on
every size (and staging's 4-CPU node has none to spare), and 10 GiB of Manager state needs neither local
NVMe nor tuning. Its pods add SYS_NICE like every ScyllaDB pod, hence a privileged namespace.
"""

from __future__ import annotations

from typing import Any, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components import charts
from components.data.context import DataContext
from components.data.scylladb import bootstrap
from components.data.scylladb.cluster import CLUSTER
from components.helm import release

NAMESPACE = charts.SCYLLA_MANAGER.namespace  # "scylla-manager": fixed by the operator
RELEASE = "scylla-manager"
API_PORT = 5080  # the pod's port behind Service scylla-manager:80 (templates/manager_service.yaml)
METRICS_PORT = 5090
API_URL = f"http://scylla-manager.{NAMESPACE}.svc/api/v1"  # what the operator calls too (controllerhelpers)
DATABASE = "scylla-manager-cluster"
CREDENTIALS_SECRET = "scylla-manager-cql-credentials"
RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
DATABASE_RESOURCES = {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
DATABASE_AGENT_RESOURCES = {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": "50m", "memory": "128Mi"}}
DATABASE_STORAGE = "10Gi"  # the smallest volume every supported provider creates
# Manager names the clusters the operator registers <namespace>/<name> (pkg/naming/names.go ManagerClusterName).
REGISTERED_NAME = f"scylla/{CLUSTER}"
MOUNT = "/etc/scylla-manager-credentials"


def values(ctx: DataContext) -> dict[str, Any]:
    return {
        "image": {"repository": "docker.io/scylladb", "tag": charts.SCYLLA_MANAGER_TAG,
                  "pullPolicy": "IfNotPresent"},
        "logLevel": "info",
        "resources": RESOURCES,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "serviceMonitor": {"create": True},  # Manager's own metrics (port 5090, Service scylla-manager)
        "scylla": {
            "fullnameOverride": DATABASE,
            "annotations": {"scylla-operator.scylladb.com/disable-global-scylladb-manager-integration": "true"},
            "developerMode": True,
            "scyllaImage": {"repository": "docker.io/scylladb/scylla", "tag": charts.SCYLLADB_VERSION},
            "agentImage": {"repository": "docker.io/scylladb/scylla-manager-agent",
                           "tag": charts.SCYLLA_MANAGER_AGENT_TAG},
            "datacenter": "manager-dc",
            "racks": [{
                "name": "manager-rack", "members": 1,
                "storage": {"capacity": DATABASE_STORAGE, "storageClassName": ctx.general_storage_class},
                "resources": DATABASE_RESOURCES,
                "agentResources": DATABASE_AGENT_RESOURCES,
            }],
            "serviceMonitor": {"create": False},
        },
    }


def install(ctx: DataContext, after: Sequence[pulumi.Resource]) -> k8s.helm.v3.Release:
    return release(RELEASE, charts.SCYLLA_MANAGER, values(ctx), ctx.opts(after), namespace=NAMESPACE,
                   create_namespace=False)


def install_credentials(ctx: DataContext, username: str, password: pulumi.Output[str],
                        after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    """The role's credentials in Manager's namespace and the Job that hands them to Manager."""
    _, secret = ctx.credentials("scylla-manager-cql-credentials", CREDENTIALS_SECRET, NAMESPACE,
                                {"username": username, "password": password}, depends_on=after,
                                labels=ctx.labels("scylla-manager"))
    config_map, job = bootstrap.run_once(
        ctx, "scylla-manager-credentials", NAMESPACE,
        f"docker.io/scylladb/scylla-manager:{charts.SCYLLA_MANAGER_TAG}",
        {"register.sh": bootstrap.script("manager-credentials.sh")}, "register.sh",
        env=[{"name": "SCYLLA_MANAGER_API_URL", "value": API_URL}, {"name": "CLUSTER", "value": REGISTERED_NAME},
             bootstrap.secret_env("CQL_USERNAME", CREDENTIALS_SECRET, "username"),
             bootstrap.secret_env("CQL_PASSWORD", CREDENTIALS_SECRET, "password")],
        secrets=[password], depends_on=[*after, secret], mount=MOUNT)
    return [secret, config_map, job]


def install_restore(ctx: DataContext, location: str, after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    """dataPlane.scylladb.restore: the Job that has Manager restore the snapshot (scripts/restore.sh), once the
    cluster is registered with Manager with its CQL credentials (the schema restore logs in over CQL)."""
    restore = ctx.settings.scylladb.restore
    if restore is None:
        return []
    return list(bootstrap.run_once(
        ctx, "scylla-restore", NAMESPACE, f"docker.io/scylladb/scylla-manager:{charts.SCYLLA_MANAGER_TAG}",
        # The tag is in the files, so the Job's name (their hash) is new for each snapshot: one run per restore.
        {"restore.sh": bootstrap.script("restore.sh"), "snapshot-tag": restore.snapshot_tag}, "restore.sh",
        env=[{"name": "SCYLLA_MANAGER_API_URL", "value": API_URL}, {"name": "CLUSTER", "value": REGISTERED_NAME},
             {"name": "LOCATION", "value": location}, {"name": "SNAPSHOT_TAG", "value": restore.snapshot_tag}],
        secrets=[], depends_on=after, mount=MOUNT))
