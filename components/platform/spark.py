"""The Kubeflow Spark operator (components/charts.py SPARK_OPERATOR): SparkApplication and
ScheduledSparkApplication CRs in the namespace `spark-jobs`, run by the controller and admitted by its webhook
in `spark-operator`.

What this module sets and why:

- CRDs: applied from the chart's tag before the release (Helm installs a chart's crds/ once and never upgrades
  them), protected in production: deleting a CRD deletes every SparkApplication.
- Controller and webhook: 2 replicas each in production with leader election (the chart's default) and the
  chart's PodDisruptionBudgets; 1 in staging without (a budget of 1 of 1 would block every drain). The
  webhook's failure policy stays `Fail` (pods the operator launched must get their volumes and settings), so
  the API server must reach it on its port: NamespaceSpec.webhooks.
- Controller concurrency: each submission runs spark-submit (a JVM) inside the controller pod, so its workers
  are capped and its memory limit leaves room for that many JVMs.
- Jobs namespace `spark-jobs`: layer `platform` so the data stores admit its pods, egress to the object store
  and the analytics stores (ClickHouse, Redpanda, ScyllaDB), and a ResourceQuota (platform.spark.*) with a
  LimitRange, so a runaway job waits for quota instead of taking the general pool. Drivers and executors talk to
  each other inside the namespace. Jobs run as the chart's `spark-operator-spark` service account.
- Pod Security: the operator's namespace is restricted (the chart's container contexts already comply; the pod
  contexts here add non-root and seccomp). The jobs namespace is baseline: spark-submit builds driver and
  executor pods without restricted security contexts unless each SparkApplication sets them; baseline still
  forbids privileged pods and host access, and audit/warn stay at restricted.
- Metrics: the controller and webhook serve Prometheus metrics on port 8080 (`metrics`), scraped by our
  PodMonitor (the chart's scrapes every 5 s).
"""

from __future__ import annotations

from typing import Any, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components import charts
from components.helm import release
from components.platform.context import LAYER, SCRAPE_INTERVAL, Installed, PlatformContext
from components.scheduling import pod_anti_affinity
from components.services.namespaces import (NO_OWN_ENTRY_POINTS, RESTRICTED_CONTAINER_SECURITY, RESTRICTED_POD_SECURITY,
                                           Namespaces, NamespaceSpec)

NAMESPACE = charts.SPARK_OPERATOR.namespace
JOBS_NAMESPACE = "spark-jobs"
RELEASE = "spark-operator"  # contains the chart name: objects are spark-operator-controller, -webhook, -spark
JOBS_SERVICE_ACCOUNT = f"{RELEASE}-spark"  # templates/spark/_helpers.tpl spark-operator.spark.name
WEBHOOK_PORT = 9443  # chart values webhook.port
METRICS_PORT = 8080  # prometheus.metrics.port
SPARK_UID = 185  # the operator image's and Apache Spark images' user (the chart's fsGroup)
# templates/_helpers.tpl selectorLabels, plus app.kubernetes.io/component: controller|webhook per Deployment.
SELECTOR = {"app.kubernetes.io/name": "spark-operator", "app.kubernetes.io/instance": RELEASE}
CONTROLLER_WORKERS = 4  # concurrent reconciles, each possibly a spark-submit JVM (-Xmx128m plus overhead)
CONTROLLER_RESOURCES = {"requests": {"cpu": "200m", "memory": "512Mi"}, "limits": {"memory": "1536Mi"}}
WEBHOOK_RESOURCES = {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}
# Pods in the jobs namespace that declare nothing (Spark sets its own requests and memory limit).
JOBS_LIMIT_RANGE = {"limits": [{"type": "Container", "defaultRequest": {"cpu": "100m", "memory": "256Mi"},
                                "default": {"memory": "1Gi"}}]}
JOB_STORES = ("object_storage", "clickhouse", "redpanda", "scylladb")


def namespaces(ctx: PlatformContext) -> list[NamespaceSpec]:
    return [
        NamespaceSpec(
            name=NAMESPACE, pss="restricted", layer=LAYER, webhooks=(WEBHOOK_PORT,),
            why="the Spark operator's controller and webhook run non-root, read-only, without capabilities, "
                "RuntimeDefault seccomp",
            ingress_from=(ctx.monitoring((METRICS_PORT,)),)),
        NamespaceSpec(
            name=JOBS_NAMESPACE, pss="baseline", layer=LAYER,
            why="spark-submit builds driver and executor pods without restricted security contexts unless a "
                "SparkApplication sets them; baseline still forbids privileged pods and host namespaces",
            egress_to=ctx.store_peers(*JOB_STORES),
            egress_world=ctx.object_storage_egress_world()),
    ]


def component(name: str) -> dict[str, str]:
    return {**SELECTOR, "app.kubernetes.io/component": name}


def _ha(ctx: PlatformContext, name: str, resources: dict[str, Any]) -> dict[str, Any]:
    replicas = ctx.replicas(2)
    return {
        "replicas": replicas,
        "leaderElection": {"enable": True},
        "resources": resources,
        "podSecurityContext": {**RESTRICTED_POD_SECURITY, "runAsUser": SPARK_UID, "runAsGroup": SPARK_UID,
                               "fsGroup": SPARK_UID},
        "securityContext": {**RESTRICTED_CONTAINER_SECURITY, "readOnlyRootFilesystem": True, "privileged": False},
        "affinity": {"podAntiAffinity": pod_anti_affinity(component(name), required=False)},
        # The chart refuses a budget with one replica (templates/*/poddisruptionbudget.yaml).
        "podDisruptionBudget": {"enable": replicas > 1, "minAvailable": 1},
    }


def values(ctx: PlatformContext) -> dict[str, Any]:
    return {
        "image": {"tag": charts.SPARK_OPERATOR.version},
        "hook": {"upgradeCrd": False},  # its Job is not restricted-compliant; we apply the CRDs ourselves
        "controller": {**_ha(ctx, "controller", CONTROLLER_RESOURCES), "workers": CONTROLLER_WORKERS,
                       "uiService": {"enable": True}, "uiIngress": {"enable": False}},
        "webhook": {**_ha(ctx, "webhook", WEBHOOK_RESOURCES), "enable": True, "port": WEBHOOK_PORT,
                    "failurePolicy": "Fail"},
        "spark": {"jobNamespaces": [JOBS_NAMESPACE], "serviceAccount": {"create": True}, "rbac": {"create": True}},
        "prometheus": {"metrics": {"enable": True, "port": METRICS_PORT, "portName": "metrics"},
                       "podMonitor": {"create": False}},
    }


def quota(ctx: PlatformContext) -> dict[str, Any]:
    settings = ctx.settings.spark
    return {"hard": {"requests.cpu": settings.requests_cpu, "requests.memory": settings.requests_memory,
                     "limits.memory": settings.limits_memory, "pods": str(settings.pods), **NO_OWN_ENTRY_POINTS}}


def install(ctx: PlatformContext, spaces: Namespaces, after: Sequence[pulumi.Resource]) -> Installed:
    before = [*after, spaces[NAMESPACE], spaces[JOBS_NAMESPACE]]
    crds = [k8s.yaml.v2.ConfigFile(f"spark-operator-crds-{i}", file=url, opts=ctx.opts(before, protect=True))
            for i, url in enumerate(charts.SPARK_OPERATOR_CRDS.urls)]
    jobs_opts = ctx.opts([spaces[JOBS_NAMESPACE]])
    limits = [
        k8s.core.v1.ResourceQuota(
            "spark-jobs-quota", metadata=k8s.meta.v1.ObjectMetaArgs(
                name="spark-jobs", namespace=JOBS_NAMESPACE, labels=ctx.labels("spark", "quota")),
            spec=quota(ctx), opts=jobs_opts),
        k8s.core.v1.LimitRange(
            "spark-jobs-limits", metadata=k8s.meta.v1.ObjectMetaArgs(
                name="container-defaults", namespace=JOBS_NAMESPACE, labels=ctx.labels("spark", "limits")),
            spec=JOBS_LIMIT_RANGE, opts=jobs_opts),
    ]
    operator = release(RELEASE, charts.SPARK_OPERATOR, values(ctx), ctx.opts([*before, *crds]), namespace=NAMESPACE,
                       create_namespace=False)
    monitor = ctx.custom_resource(
        "spark-operator-metrics", "monitoring.coreos.com/v1", "PodMonitor", RELEASE, NAMESPACE,
        {"selector": {"matchLabels": dict(SELECTOR)},
         "podMetricsEndpoints": [{"port": "metrics", "path": "/metrics", "interval": SCRAPE_INTERVAL}]},
        ctx.labels("spark-operator", "metrics"), [operator])
    return Installed(ready=[*crds, *limits, operator, monitor])


__all__ = ["install", "namespaces"]
