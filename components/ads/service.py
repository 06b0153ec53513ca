"""One ad service (`adplatform:ads:Service`): every object a stateless HTTP service needs to run in production.

- Deployment: container `app` (config/catalog.py SERVICE_CONTAINER), restricted security context (seccomp
  RuntimeDefault, or with `ioUring` the node's Localhost profile that also allows io_uring), probes,
  requests and a memory limit, topology spread over nodes, the hot-path PriorityClass and pool placement,
  env wiring of the stores it declares, zero-downtime rollouts (surge, no unavailable pod, a preStop pause
  while the gateway and kube-proxy replacement drop the endpoint).
- Image ownership: Pulumi creates the Deployment with the configured image; from then on the service's CI
  pipeline owns it (`kubectl set image deployment/<name> app=<image>`, templates/gitlab-ci), so Pulumi ignores
  the container image (and the replica count, which the HorizontalPodAutoscaler owns). `ignoreChanges` keeps the
  image Pulumi's *state* holds: when another change updates the Deployment, that image is what Pulumi applies.
  pulumi-kubernetes cannot leave out a field inside a list on update (provider/pkg/await/await.go
  handleSSAIgnoreFields splits the path on dots: `containers[0]` matches no managed field), and it first takes
  over the fields of `kubectl*` field managers (fixCSAFieldManagers), so without a refresh the running image is
  silently replaced by the one last recorded. The state must be refreshed before every update (Pulumi.yaml
  `options.refresh: always`, or `pulumi up --refresh`): the provider's Read records the running image as the
  input, and the update re-applies it unchanged.
- HorizontalPodAutoscaler (autoscaling/v2): CPU utilization, plus requests per second per pod and a Redpanda
  consumer group's lag where configured (served by the platform's metrics adapter).
- PodDisruptionBudget (with at least 2 replicas): one pod at a time; an unhealthy pod never blocks a drain.
- Service, ServiceMonitor, and a Grafana dashboard when the platform's monitoring is on.
- NetworkPolicy: ingress only from its declared callers' pods and Prometheus (metrics port); egress only to
  the services it calls, its stores' pods on their client ports, and the OTLP collector when traces are on
  (DNS and the API are allowed namespace-wide; a meshed namespace's proxies reach Linkerd through the
  namespace's own policy, and calls between services also use Linkerd's inbound port). Public services: an HTTPRoute on the shared gateway (TLS
  there) and a CiliumNetworkPolicy admitting the gateway's proxy to the HTTP port.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import urlsplit

import pulumi
import pulumi_kubernetes as k8s

from components.ads.context import COMPONENT, MESH_INBOUND_PORT, SERVICE_PORT, AdsContext, Neighbour, ServicePlan
from components.ads.dashboard import dashboard_json
from components.ads.stores import plain_env
from components.host.profiles import IO_URING_SECCOMP_PROFILE, localhost_profile
from components.platform import metrics_adapter
from components.platform.context import DASHBOARD_LABEL, OTLP_GRPC_PORT, SCRAPE_INTERVAL, TRACES_NAMESPACE
from components.scheduling import topology_spread
from components.services.namespaces import (PROMETHEUS_POD_LABELS, RESTRICTED_CONTAINER_SECURITY,
                                           RESTRICTED_POD_SECURITY)
from config.catalog import MONITORING_NAMESPACE, SERVICE_CONTAINER

# CI owns these once the Deployment exists (see the module docstring); the app container is always first.
IGNORED_BY_PULUMI = ["spec.template.spec.containers[0].image", "spec.replicas"]
TMP_SIZE = "256Mi"  # the writable /tmp of a read-only root filesystem
PRE_STOP_SECONDS = 5  # endpoints leave the gateway's and Cilium's tables before the process gets SIGTERM
TERMINATION_GRACE_SECONDS = 30
# In a meshed namespace every request reaches the app through its Linkerd proxy, which refuses new requests as soon as
# it gets SIGTERM (linkerd.io/2 "Graceful shutdown"), at the same moment as the app's preStop starts: it waits this
# long first (its own preStop), past the app's preStop and shutdown, within the grace period.
PROXY_WAIT_BEFORE_EXIT_SECONDS = 20
PROXY_WAIT_ANNOTATION = "config.alpha.linkerd.io/proxy-wait-before-exit-seconds"
SCALE_DOWN_WINDOW_SECONDS = 300  # the autoscaler keeps the peak of the last 5 minutes: no flapping
# What the placeholder image answers publicly: its info document. Everything else it serves (/env, /panic,
# POST /readyz/disable, ...) is a test server's, not for the internet.
PLACEHOLDER_PUBLIC = [{"path": {"type": "Exact", "value": "/"}, "method": "GET"}]


# --- pure specs (unit-testable) ---------------------------------------------------------------------------

def seccomp(plan: ServicePlan) -> dict[str, Any]:
    """RuntimeDefault, or for io_uring runtimes (Glommio) the profile host tuning installs on every node:
    containerd's default blocks io_uring, this one keeps containerd's other denials (Pod Security `restricted`
    admits Localhost profiles)."""
    if plan.io_uring:
        return {"type": "Localhost", "localhostProfile": localhost_profile(IO_URING_SECCOMP_PROFILE)}
    return {"type": "RuntimeDefault"}


def env(plan: ServicePlan, ctx: AdsContext) -> list[dict[str, Any]]:
    """Store wiring first, then the services it calls, telemetry, and its own settings (config/ads.py keeps
    those off the wired names)."""
    found: list[dict[str, Any]] = [plain_env("ADS_SERVICE", plan.name), plain_env("ADS_ENVIRONMENT", ctx.environment)]
    for wiring in plan.stores:
        found += wiring.env
        if wiring.store == "scylladb" and plan.keyspace:
            found.append(plain_env("SCYLLA_KEYSPACE", plan.keyspace))
    for callee in plan.callees:
        found.append(plain_env(f"ADS_{callee.name.upper().replace('-', '_')}_URL", ctx.internal_url(callee.name)))
    if ctx.otlp_endpoint:
        found += [plain_env("OTEL_SERVICE_NAME", plan.name),
                  plain_env("OTEL_EXPORTER_OTLP_ENDPOINT", ctx.otlp_endpoint),
                  plain_env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                  plain_env("OTEL_RESOURCE_ATTRIBUTES",
                            f"service.namespace={ctx.namespace},deployment.environment.name={ctx.environment}")]
    found += [plain_env(k, v) for k, v in sorted(plan.env.items())]
    return found


def ports(plan: ServicePlan) -> list[dict[str, Any]]:
    found = [{"name": "http", "containerPort": plan.port, "protocol": "TCP"}]
    if plan.metrics_port:
        found.append({"name": "metrics", "containerPort": plan.metrics_port, "protocol": "TCP"})
    return found


def probes(plan: ServicePlan) -> dict[str, Any]:
    def get(path: str) -> dict[str, Any]:
        return {"path": path, "port": "http"}
    return {
        # Up to 2 minutes to start (caches, connections), then liveness takes over.
        "startupProbe": {"httpGet": get(plan.liveness_path), "periodSeconds": 2, "timeoutSeconds": 2,
                         "failureThreshold": 60},
        "livenessProbe": {"httpGet": get(plan.liveness_path), "periodSeconds": 10, "timeoutSeconds": 2,
                          "failureThreshold": 3},
        "readinessProbe": {"httpGet": get(plan.readiness_path), "periodSeconds": 5, "timeoutSeconds": 2,
                           "failureThreshold": 2},
    }


def spread(plan: ServicePlan, ha: bool) -> list[dict[str, Any]]:
    """Evenly over nodes (required in production-grade profiles). Only nodes the pods may run on count as domains
    (`nodeTaintsPolicy: Honor`: the tainted database and control-plane nodes would otherwise be empty domains
    no second replica could ever balance), and only the current revision counts (`pod-template-hash`), so a
    rolling update's new pods are not held back by the old ones."""
    return [{**c, "matchLabelKeys": ["pod-template-hash"], "nodeTaintsPolicy": "Honor"}
            for c in topology_spread(plan.labels, required=ha)]


def container(plan: ServicePlan, ctx: AdsContext) -> dict[str, Any]:
    return {
        "name": SERVICE_CONTAINER,
        "image": plan.image,
        "imagePullPolicy": "IfNotPresent",
        "ports": ports(plan),
        "env": env(plan, ctx),
        "resources": {"requests": {"cpu": plan.cpu, "memory": plan.memory}, "limits": {"memory": plan.memory_limit}},
        **probes(plan),
        "lifecycle": {"preStop": {"sleep": {"seconds": PRE_STOP_SECONDS}}},
        "securityContext": {**RESTRICTED_CONTAINER_SECURITY, "readOnlyRootFilesystem": True,
                            "seccompProfile": seccomp(plan)},
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, *(m for w in plan.stores for m in w.mounts)],
    }


def pod_spec(plan: ServicePlan, ctx: AdsContext) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,  # the services never call the Kubernetes API
        "enableServiceLinks": False,  # no env per Service in the namespace: the wiring above is explicit
        "securityContext": {**RESTRICTED_POD_SECURITY, "runAsUser": plan.run_as_user, "runAsGroup": plan.run_as_user,
                            "fsGroup": plan.run_as_user, "seccompProfile": seccomp(plan)},
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        "topologySpreadConstraints": spread(plan, ctx.ha),
        "containers": [container(plan, ctx)],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE}}, *(v for w in plan.stores for v in w.volumes)],
    }
    if plan.priority_class:
        spec["priorityClassName"] = plan.priority_class
    if plan.node_selector:
        spec["nodeSelector"] = dict(plan.node_selector)
    if plan.tolerations:
        spec["tolerations"] = [dict(t) for t in plan.tolerations]
    if plan.pull_secret:
        spec["imagePullSecrets"] = [{"name": plan.pull_secret}]
    return spec


def deployment_spec(plan: ServicePlan, ctx: AdsContext) -> dict[str, Any]:
    return {
        "replicas": plan.min_replicas,  # the first rollout's size; then the autoscaler's
        "revisionHistoryLimit": 10,  # `kubectl rollout undo` and CI's rollback job go back this far
        "selector": {"matchLabels": plan.labels},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
        "template": {"metadata": {"labels": plan.labels, **({"annotations": {
            PROXY_WAIT_ANNOTATION: str(PROXY_WAIT_BEFORE_EXIT_SECONDS)}} if ctx.meshed else {})},
                     "spec": pod_spec(plan, ctx)},
    }


def service_spec(plan: ServicePlan) -> dict[str, Any]:
    found = [{"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP", "appProtocol": "http"}]
    if plan.metrics_port:
        found.append({"name": "metrics", "port": plan.metrics_port, "targetPort": "metrics", "protocol": "TCP"})
    return {"type": "ClusterIP", "selector": plan.labels, "ports": found}


def autoscaler_metrics(plan: ServicePlan) -> list[dict[str, Any]]:
    """CPU always; the request rate and the consumer lag by the names the metrics adapter serves them under
    (components/platform/metrics_adapter.py). The HPA takes the largest replica count any metric proposes."""
    metrics: list[dict[str, Any]] = [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": plan.target_cpu_utilization}}}]
    if plan.requests_per_second:
        metrics.append({"type": "Pods", "pods": {
            "metric": {"name": metrics_adapter.REQUESTS_PER_SECOND},
            "target": {"type": "AverageValue", "averageValue": plan.requests_per_second}}})
    if plan.consumer_lag:
        metrics.append({"type": "External", "external": {
            "metric": {"name": metrics_adapter.CONSUMER_LAG,
                       "selector": {"matchLabels": {metrics_adapter.CONSUMER_GROUP_LABEL: plan.consumer_lag.group}}},
            "target": {"type": "AverageValue", "averageValue": plan.consumer_lag.average_value}}})
    return metrics


def autoscaler_spec(plan: ServicePlan) -> dict[str, Any]:
    metrics = autoscaler_metrics(plan)
    return {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": plan.name},
        "minReplicas": plan.min_replicas, "maxReplicas": plan.max_replicas, "metrics": metrics,
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": SCALE_DOWN_WINDOW_SECONDS}},
    }


def budget_spec(plan: ServicePlan) -> dict[str, Any] | None:
    """None with a single replica (staging): a budget there would only block drains or allow everything."""
    if plan.min_replicas < 2:
        return None
    return {"maxUnavailable": 1, "selector": {"matchLabels": plan.labels},
            # A crash-looping pod is already unavailable: evicting it must never block a node drain.
            "unhealthyPodEvictionPolicy": "AlwaysAllow"}


def _namespace(name: str) -> dict[str, Any]:
    return {"matchLabels": {"kubernetes.io/metadata.name": name}}


def _tcp(*numbers: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": p} for p in numbers]


def _service_ports(port: int, ctx: AdsContext) -> tuple[int, ...]:
    """The ports one ad service calls another on: its container port, and in a meshed namespace Linkerd's inbound
    proxy port, where the caller's proxy sends meshed traffic (Prometheus and the gateway are not meshed: they
    keep dialling the container ports)."""
    return (port, MESH_INBOUND_PORT) if ctx.meshed else (port,)


def _to_pods(neighbour: Neighbour, ctx: AdsContext) -> dict[str, Any]:
    return {"to": [{"podSelector": {"matchLabels": dict(neighbour.labels)}}],
            "ports": _tcp(*_service_ports(neighbour.port, ctx))}


def network_policy_spec(plan: ServicePlan, ctx: AdsContext) -> dict[str, Any]:
    ingress: list[dict[str, Any]] = []
    if plan.callers:
        ingress.append({"from": [{"podSelector": {"matchLabels": dict(c.labels)}} for c in plan.callers],
                        "ports": _tcp(*_service_ports(plan.port, ctx))})
    # Prometheus' pods only: Grafana shares their namespace and has no business with a service.
    ingress.append({"from": [{"namespaceSelector": _namespace(MONITORING_NAMESPACE),
                              "podSelector": {"matchLabels": dict(PROMETHEUS_POD_LABELS)}}],
                    "ports": _tcp(plan.metrics_port or plan.port)})
    egress: list[dict[str, Any]] = [_to_pods(callee, ctx) for callee in plan.callees]
    for wiring in plan.stores:
        e = wiring.egress
        egress.append({"to": [{"namespaceSelector": _namespace(e.namespace),
                               "podSelector": {"matchLabels": dict(e.pod_labels)}}], "ports": _tcp(*e.ports)})
    if ctx.otlp_endpoint:
        egress.append({"to": [{"namespaceSelector": _namespace(TRACES_NAMESPACE)}],
                       "ports": _tcp(urlsplit(ctx.otlp_endpoint).port or OTLP_GRPC_PORT)})
    spec: dict[str, Any] = {"podSelector": {"matchLabels": plan.labels}, "policyTypes": ["Ingress", "Egress"],
                            "ingress": ingress}
    if egress:
        spec["egress"] = egress
    return spec


def gateway_policy_spec(plan: ServicePlan) -> dict[str, Any]:
    """Cilium's gateway proxies with the reserved `ingress` identity, which a NetworkPolicy cannot name."""
    return {"endpointSelector": {"matchLabels": plan.labels},
            "ingress": [{"fromEntities": ["ingress"],
                         "toPorts": [{"ports": [{"port": str(plan.port), "protocol": "TCP"}]}]}]}


def route_spec(plan: ServicePlan, ctx: AdsContext) -> dict[str, Any]:
    assert plan.host is not None
    matches = PLACEHOLDER_PUBLIC if plan.placeholder else [{"path": {"type": "PathPrefix", "value": "/"}}]
    return {"parentRefs": ctx.gateway.parent_refs(plan.host), "hostnames": [ctx.gateway.hostname(plan.host)],
            "rules": [{"matches": matches, "backendRefs": [{"name": plan.name, "port": SERVICE_PORT}]}]}


def monitor_spec(plan: ServicePlan) -> dict[str, Any]:
    return {"selector": {"matchLabels": plan.labels},
            "endpoints": [{"port": "metrics" if plan.metrics_port else "http", "path": plan.metrics_path,
                           "interval": SCRAPE_INTERVAL}]}


# --- the component ----------------------------------------------------------------------------------------

class Service(pulumi.ComponentResource):
    url: str | None  # https://<host>.<domain> when public
    internal_url: str
    deployment: k8s.apps.v1.Deployment

    def __init__(self, plan: ServicePlan, ctx: AdsContext, opts: pulumi.ResourceOptions | None = None):
        super().__init__("adplatform:ads:Service", f"ads-{plan.name}", None, opts)
        ctx = dataclasses.replace(ctx, parent=self)
        name, namespace = plan.name, ctx.namespace
        labels = {**plan.labels, **ctx.labels(name, COMPONENT)}

        def meta(obj_name: str = name, extra: dict[str, str] | None = None, **kwargs) -> k8s.meta.v1.ObjectMetaArgs:
            return k8s.meta.v1.ObjectMetaArgs(name=obj_name, namespace=namespace, labels={**labels, **(extra or {})},
                                              **kwargs)

        stores_ready = [r for w in plan.stores for r in w.ready]
        self.deployment = k8s.apps.v1.Deployment(
            f"ads-{name}", metadata=meta(annotations={
                "adplatform.io/image-owner": f"CI: kubectl set image deployment/{name} {SERVICE_CONTAINER}=<image>"}),
            spec=deployment_spec(plan, ctx), opts=ctx.opts(stores_ready, ignore_changes=IGNORED_BY_PULUMI))
        service = k8s.core.v1.Service(f"ads-{name}", metadata=meta(), spec=service_spec(plan), opts=ctx.opts())
        children: list[pulumi.Resource] = [self.deployment, service]
        children.append(k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"ads-{name}", metadata=meta(), spec=autoscaler_spec(plan), opts=ctx.opts([self.deployment])))
        budget = budget_spec(plan)
        if budget is not None:
            children.append(k8s.policy.v1.PodDisruptionBudget(f"ads-{name}", metadata=meta(), spec=budget,
                                                              opts=ctx.opts()))
        children.append(k8s.networking.v1.NetworkPolicy(
            f"ads-{name}", metadata=meta(f"{name}-traffic"), spec=network_policy_spec(plan, ctx), opts=ctx.opts()))
        children.append(ctx.custom_resource(f"ads-{name}-metrics", "monitoring.coreos.com/v1", "ServiceMonitor", name,
                                            namespace, monitor_spec(plan), labels, [service]))
        if ctx.monitoring:
            children.append(k8s.core.v1.ConfigMap(
                f"ads-{name}-dashboard", metadata=meta(f"{name}-dashboard", {DASHBOARD_LABEL[0]: DASHBOARD_LABEL[1]}),
                data={f"ads-{name}.json": dashboard_json(name, namespace)}, opts=ctx.opts()))
        self.url = None
        if plan.host is not None:
            children.append(ctx.custom_resource(f"ads-{name}-from-gateway", "cilium.io/v2", "CiliumNetworkPolicy",
                                                f"{name}-from-gateway", namespace, gateway_policy_spec(plan), labels))
            children.append(ctx.custom_resource(f"ads-{name}-route", "gateway.networking.k8s.io/v1", "HTTPRoute", name,
                                                namespace, route_spec(plan, ctx), labels, [service]))
            self.url = ctx.public_url(plan.host)
        self.internal_url = ctx.internal_url(name)
        self.register_outputs({"url": self.url, "internalUrl": self.internal_url})


__all__ = ["IGNORED_BY_PULUMI", "Service", "autoscaler_metrics", "autoscaler_spec", "budget_spec", "deployment_spec", "env",
           "gateway_policy_spec", "monitor_spec", "network_policy_spec", "route_spec", "service_spec"]
