"""The custom and external metrics APIs: prometheus-adapter (chart `prometheus-adapter`, components/charts.py),
installed with monitoring in its own namespace `custom-metrics`. It turns PromQL over what Prometheus already
scrapes into the two metrics APIs the HorizontalPodAutoscaler reads, so the ad services scale on load and not
on CPU only (components/ads/service.py autoscaler_spec names exactly the metrics served here).

Why prometheus-adapter and not KEDA (docs/ad-services.md "How the services scale"):
- the metrics are already in Prometheus (each service's ServiceMonitor; Redpanda's /public_metrics), so the
  adapter is a stateless translator: no second credential to Redpanda (KEDA's Kafka scaler would need a SASL
  user, the CA and a network path to the brokers) and no second object next to the HPA (a ScaledObject that
  makes and owns the HPA). The HPA stays the one object that owns the replica count (and Pulumi's
  `ignoreChanges` on spec.replicas stays as it is);
- HA is plain replicas: every replica answers every request (no leader), behind the APIService's Service, with a
  PodDisruptionBudget and spread over nodes. KEDA's metrics server serves from one active instance.
- what it costs: no scale to zero (KEDA's strength); the ad services keep minReplicas >= 1 anyway.

What it serves (RULES, EXTERNAL_RULES, nothing else: the chart's default rules, which would publish every
`*_total` series of every namespace, are off, and so are resource metrics, which K3s' metrics-server serves):
- custom.metrics.k8s.io, pods: `http_requests_per_second` = per pod `rate(http_requests_total[2m])` (the
  counter the ad services' image contract requires, scraped every 30 s) in the team namespaces only;
- external.metrics.k8s.io: `redpanda_kafka_consumer_group_lag_sum` per `redpanda_group`, as Redpanda publishes
  it on /public_metrics once `enable_consumer_group_metrics` lists `consumer_lag` (components/data/redpanda.py).
  Not namespaced (the series carry the Redpanda namespace, the HPA lives in the team's): any HPA may read a
  group's lag, a number, never a message.

Least privilege: the chart's RBAC is off (its resource reader also reads every ConfigMap and Service of the
cluster); our own: token and access reviews (system:auth-delegator), the API server's client CA
(extension-apiserver-authentication-reader in kube-system), and get/list/watch on pods and namespaces, which
it lists to answer per-pod queries. The HPA controller's own bootstrap role already reads both metrics APIs.
Network: the namespace admits only the API server on the adapter's port and reaches only Prometheus' pods on
9090 (monitoring admits it there). The API server verifies the adapter's serving certificate (cert-manager
issues it and injects its CA into the APIServices: the chart's `certManager`), no insecureSkipTLSVerify.
"""

from __future__ import annotations

from typing import Any, Sequence
from urllib.parse import urlsplit

import pulumi
import pulumi_kubernetes as k8s

from components import charts
from components.helm import release
from components.platform.context import LAYER, PROMETHEUS_URL, PlatformContext
from components.scheduling import topology_spread
from components.services.namespaces import (PROMETHEUS_POD_LABELS, RESTRICTED_CONTAINER_SECURITY,
                                           RESTRICTED_POD_SECURITY, NamespaceSpec, Peer)
from config.catalog import MONITORING_NAMESPACE

NAMESPACE = "custom-metrics"
RELEASE = "prometheus-adapter"  # contains the chart's name: also the fullname (Deployment, Service, SA)
PORT = 6443  # the chart's listenPort: the API server calls the adapter there
PROMETHEUS_PORT = urlsplit(PROMETHEUS_URL).port
# The chart's selectorLabels (templates/_helpers.tpl at prometheus-adapter-5.3.0).
POD_LABELS = {"app.kubernetes.io/name": "prometheus-adapter", "app.kubernetes.io/instance": RELEASE}
RATE_WINDOW = "2m"  # four 30 s scrapes: a rate survives one missed scrape

# --- what the adapter serves: the names the ad services' HPAs use -----------------------------------------
REQUESTS_COUNTER = "http_requests_total"  # the ad services' image contract (docs/ad-services.md)
REQUESTS_PER_SECOND = "http_requests_per_second"  # Pods metric
CONSUMER_LAG = "redpanda_kafka_consumer_group_lag_sum"  # External metric (Redpanda's own name)
CONSUMER_GROUP_LABEL = "redpanda_group"  # Redpanda's namespaced label of a consumer group


def rules(teams: Sequence[str]) -> list[dict[str, Any]]:
    """Pods metric: each pod's request rate, from the counter its ServiceMonitor scrapes (the operator adds the
    `namespace` and `pod` target labels the overrides map to objects)."""
    namespaces = "|".join(teams)
    return [{
        "seriesQuery": f'{REQUESTS_COUNTER}{{namespace=~"{namespaces}",pod!=""}}',
        "resources": {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}},
        "name": {"matches": f"^{REQUESTS_COUNTER}$", "as": REQUESTS_PER_SECOND},
        "metricsQuery": f"sum(rate(<<.Series>>{{<<.LabelMatchers>>}}[{RATE_WINDOW}])) by (<<.GroupBy>>)",
    }]


def external_rules() -> list[dict[str, Any]]:
    """A consumer group's total lag. `max` by group, not `sum`: a group has one coordinator, but while
    coordination moves two brokers may briefly both report it."""
    return [{
        "seriesQuery": f'{CONSUMER_LAG}{{{CONSUMER_GROUP_LABEL}!=""}}',
        "resources": {"namespaced": False},
        "name": {"matches": f"^{CONSUMER_LAG}$", "as": CONSUMER_LAG},
        "metricsQuery": f"max(<<.Series>>{{<<.LabelMatchers>>}}) by ({CONSUMER_GROUP_LABEL})",
    }]


def namespace_spec() -> NamespaceSpec:
    return NamespaceSpec(
        name=NAMESPACE, pss="restricted", layer=LAYER,
        why="prometheus-adapter only: non-root, read-only root filesystem, no capabilities, RuntimeDefault seccomp",
        webhooks=(PORT,),  # the API server proxies custom/external metrics requests to the adapter's pods
        egress_to=(Peer(MONITORING_NAMESPACE, (PROMETHEUS_PORT,), pod_labels=dict(PROMETHEUS_POD_LABELS),
                        name="prometheus"),))


def prometheus_client_peer() -> Peer:
    """What monitoring admits: the adapter's pods, on Prometheus' query port only."""
    return Peer(NAMESPACE, (PROMETHEUS_PORT,), pod_labels=dict(POD_LABELS), name="metrics-adapter")


def values(ctx: PlatformContext) -> dict[str, Any]:
    replicas = ctx.replicas(2)
    prometheus = urlsplit(PROMETHEUS_URL)
    return {
        "replicas": replicas,
        "prometheus": {"url": f"{prometheus.scheme}://{prometheus.hostname}", "port": prometheus.port, "path": ""},
        "listenPort": PORT,
        "rules": {"default": False, "custom": rules(ctx.teams), "external": external_rules()},
        "rbac": {"create": False},  # adapter_rbac below: narrower than the chart's
        "serviceAccount": {"create": True},
        "certManager": {"enabled": True},
        "podSecurityContext": {**RESTRICTED_POD_SECURITY, "fsGroup": 10001},
        "securityContext": {**RESTRICTED_CONTAINER_SECURITY, "readOnlyRootFilesystem": True, "runAsUser": 10001},
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "topologySpreadConstraints": topology_spread(POD_LABELS, required=ctx.ha),
        "podDisruptionBudget": {"enabled": replicas > 1, "maxUnavailable": 1},
    }


def adapter_rbac(ctx: PlatformContext, after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    """The adapter's ServiceAccount (the chart's, named after the release) gets only what it uses."""
    subject = [k8s.rbac.v1.SubjectArgs(kind="ServiceAccount", name=RELEASE, namespace=NAMESPACE)]
    labels = ctx.labels(RELEASE, "rbac")

    def meta(name: str, namespace: str | None = None) -> k8s.meta.v1.ObjectMetaArgs:
        return k8s.meta.v1.ObjectMetaArgs(name=name, namespace=namespace, labels=labels)
    reader = k8s.rbac.v1.ClusterRole(
        "metrics-adapter-reader", metadata=meta(f"{RELEASE}-reader"),
        rules=[k8s.rbac.v1.PolicyRuleArgs(api_groups=[""], resources=["pods", "namespaces"],
                                          verbs=["get", "list", "watch"])],
        opts=ctx.opts(after))
    return [reader, *(
        k8s.rbac.v1.ClusterRoleBinding(
            f"metrics-adapter-{suffix}", metadata=meta(f"{RELEASE}-{suffix}"),
            role_ref=k8s.rbac.v1.RoleRefArgs(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=role),
            subjects=subject, opts=ctx.opts([*after, reader]))
        for suffix, role in (("reader", f"{RELEASE}-reader"), ("auth-delegator", "system:auth-delegator"))),
        k8s.rbac.v1.RoleBinding(
            "metrics-adapter-auth-reader", metadata=meta(f"{RELEASE}-auth-reader", "kube-system"),
            role_ref=k8s.rbac.v1.RoleRefArgs(api_group="rbac.authorization.k8s.io", kind="Role",
                                             name="extension-apiserver-authentication-reader"),
            subjects=subject, opts=ctx.opts(after))]


def install(ctx: PlatformContext, after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    rbac = adapter_rbac(ctx, after)
    adapter = release(RELEASE, charts.PROMETHEUS_ADAPTER, values(ctx), ctx.opts([*after, *rbac]),
                      namespace=NAMESPACE, create_namespace=False)
    return [*rbac, adapter]


__all__ = ["CONSUMER_GROUP_LABEL", "CONSUMER_LAG", "NAMESPACE", "REQUESTS_PER_SECOND", "external_rules", "install",
           "namespace_spec", "prometheus_client_peer", "rules", "values"]
