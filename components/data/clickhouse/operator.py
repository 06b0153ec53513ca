"""The Altinity operator for ClickHouse: its CRDs, its ClickHouse login and the Helm release.

Values are the chart's own keys (deploy/helm/clickhouse-operator/values.yaml at release-0.27.3):

- one replica: the chart hard-codes `replicas: 1` with a Recreate rollout (templates/generated/
  Deployment-clickhouse-operator.yaml); the operator has no leader election. While it restarts,
  running ClickHouse and Keeper pods are unaffected, only reconciliation waits.
- it watches only the installations' namespace (`watch.namespaces.include` of its config.yaml).
- its ClickHouse login (`clickhouse_operator`, used for metrics and schema propagation) comes from
  our Secret with a generated password instead of the chart's published default password
  (`secret.create: false`; config.yaml `clickhouse.access.secret.name` is the chart's fullname).
- the CRD hook is off (it runs bitnami/kubectl:latest): the CRDs come from the release tag
  (components/charts.py CLICKHOUSE_OPERATOR_CRDS), applied before the release, so Helm finds them.
- the metrics exporter (port 8888: every ClickHouse server's metrics, which it queries over HTTP)
  and the operator's own metrics (9999) are scraped through the chart's ServiceMonitor.
"""

from __future__ import annotations

from typing import Any, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components.charts import CLICKHOUSE_OPERATOR, CLICKHOUSE_OPERATOR_CRDS
from components.data.clickhouse.topology import NAMESPACE
from components.data.context import DataContext
from components.helm import release
from components.services.namespaces import RESTRICTED_CONTAINER_SECURITY, RESTRICTED_POD_SECURITY, Namespaces

OPERATOR_NAMESPACE = CLICKHOUSE_OPERATOR.namespace
RELEASE = "clickhouse-operator"  # also the chart's fullname (fullnameOverride): Secret, Service, monitor names
OPERATOR_USER = "clickhouse_operator"
EXPORTER_PORT = 8888  # metrics-exporter: ClickHouse servers' metrics
OPERATOR_METRICS_PORT = 9999
NOBODY = 65534  # the images run as `nobody` by name (dockerfile/operator/Dockerfile: USER nobody)
RESOURCES = {
    # The operator holds every CHI/CHK in memory; the exporter, one scrape of every server at a time.
    "operator": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
    "metrics": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
}


def values() -> dict[str, Any]:
    version = CLICKHOUSE_OPERATOR.version
    container_security = {**RESTRICTED_CONTAINER_SECURITY, "readOnlyRootFilesystem": True}
    return {
        "fullnameOverride": RELEASE,
        "crdHook": {"enabled": False},
        "operator": {
            "image": {"repository": "docker.io/altinity/clickhouse-operator", "tag": version,
                      "pullPolicy": "IfNotPresent"},
            "resources": RESOURCES["operator"],
            "containerSecurityContext": container_security,
        },
        "metrics": {
            "enabled": True,
            "image": {"repository": "docker.io/altinity/metrics-exporter", "tag": version,
                      "pullPolicy": "IfNotPresent"},
            "resources": RESOURCES["metrics"],
            "containerSecurityContext": container_security,
        },
        # runAsNonRoot needs a numeric user: the image names `nobody`, which the kubelet cannot verify.
        "podSecurityContext": {**RESTRICTED_POD_SECURITY, "runAsUser": NOBODY, "runAsGroup": NOBODY},
        # Cluster-wide RBAC: a namespaced Role would live in the operator's namespace, not the one it watches.
        "rbac": {"create": True, "namespaceScoped": False},
        "secret": {"create": False},
        "serviceMonitor": {"enabled": True},
        "configs": {"files": {"config.yaml": {"watch": {"namespaces": {"include": [NAMESPACE]}}}}},
    }


def install(ctx: DataContext, spaces: Namespaces, after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    """The CRDs, the operator's login Secret and the release; the release last (it needs both)."""
    crds = [k8s.yaml.v2.ConfigFile(f"clickhouse-operator-crds-{i}", file=url, opts=ctx.opts(after, protect=True))
            for i, url in enumerate(CLICKHOUSE_OPERATOR_CRDS.urls)]
    ns = spaces[OPERATOR_NAMESPACE]
    password = ctx.password("clickhouse-operator-password").result
    _, login = ctx.credentials("clickhouse-operator-login", RELEASE, OPERATOR_NAMESPACE,
                               {"username": OPERATOR_USER, "password": password}, [ns],
                               labels=ctx.labels("clickhouse-operator", "credentials"))
    chart = release(RELEASE, CLICKHOUSE_OPERATOR, values(), ctx.opts([*after, ns, login, *crds]),
                    namespace=OPERATOR_NAMESPACE, create_namespace=False)
    return [*crds, login, chart]
