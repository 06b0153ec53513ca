"""Traces: OpenTelemetry Collectors (a gateway and a node agent) and Tempo on object storage, in `tracing`.

Workloads send OTLP (gRPC 4317, HTTP 4318) to the gateway `otel-gateway` (context.py OTLP_GATEWAY_HOST: the
ad services' OTEL_EXPORTER_OTLP_ENDPOINT) or to the agent on their own node (`otel-agent`, a Service with
`internalTrafficPolicy: Local`, so a span never leaves its node before it is batched). Team namespaces
(layer `teams`) and platform namespaces (layer `platform`) may connect on those ports; team namespaces are
default-deny on egress, so each workload that sends traces adds its own egress rule.

Collectors (chart `opentelemetry-collector`, image: the collector's Kubernetes distribution, which carries
exactly the receivers, processors and exporters used here, and none of contrib's hundreds of others):

- gateway: a Deployment of `ctx.replicas(2)`, spread over nodes, a PodDisruptionBudget keeping one; it
  limits its memory (`memory_limiter`), adds the sender's pod, workload and service names
  (`k8s_attributes`, the chart's preset with its read-only ClusterRole on pods, namespaces and replicasets),
  batches, and exports OTLP to Tempo with a queue and retries (a Tempo restart costs no spans);
- agent: a DaemonSet on every node (it tolerates every taint, like the log collector), the same processors
  (its `k8s_attributes` watches only its node's pods) and exports to the gateway. No host ports: they would
  need a weaker Pod Security level, and the node-local Service does the same.

Tempo (chart `tempo` 2.2.4, Tempo 2.10.8) runs its single binary in scalable-monolithic mode
(`target: scalable-single-binary`): each replica runs every component, the replicas form the ingester,
distributor and compactor rings over memberlist (our headless Service `tempo-headless`, which is also the
StatefulSet's governing Service the chart names but does not create), and their queriers pull work from every
query frontend. With `ctx.replicas(3)` the ingesters keep 3 copies (a write needs 2), so one replica may be
down or drained (our PodDisruptionBudget); staging runs one replica with one copy. Why not the alternatives:
the `tempo-distributed` chart 3.3.0 runs Tempo 3.0, whose microservices need a Kafka-compatible queue (the
data plane's Redpanda carries the ad events and is not sized for traces), and Jaeger v2 needs a database
(config/platform.py TRACE_BACKENDS). Tempo 3.0 drops the scalable-monolithic mode: its upgrade path is
monolithic (one replica) or microservices with a queue.

- storage: blocks in the `traces` bucket of the data plane's object store; the keys come from our Secret
  `tempo-s3` as the AWS environment variables its S3 client (minio-go's credential chain,
  tempodb/backend/s3/s3.go fetchCreds) reads when the config names no static keys: nothing secret in the
  values or the ConfigMap. The WAL and ring tokens are on a volume per replica;
- retention `platform.traces.retention` (the compactor's block_retention);
- the Service `tempo` serves queries on 3200 (context.py TEMPO_URL, Grafana) and OTLP on 4317/4318 (the
  gateway); Tempo's Jaeger receivers are off (its Service would still name the Zipkin and legacy OTLP ports,
  hard-coded in the chart's templates/_ports.tpl: nothing listens there);
- pods run as Tempo's non-root user (10001), no capabilities, read-only root filesystem (an emptyDir /tmp);
- metrics: the chart's ServiceMonitor (Tempo), ServiceMonitor/PodMonitor for the collectors.
"""

from __future__ import annotations

from typing import Any, Sequence
from urllib.parse import urlsplit

import pulumi
import pulumi_kubernetes as k8s

from components import charts, yamltext
from components.data.endpoints import ObjectStoreEndpoint, S3Location
from components.helm import release
from components.platform.context import (CLUSTER_DOMAIN, LAYER, OTLP_GATEWAY_HOST, OTLP_GRPC_PORT, OTLP_HTTP_PORT,
                                         SCRAPE_INTERVAL, TEMPO_PORT, TRACES_NAMESPACE, Installed, PlatformContext)
from components.scheduling import pod_anti_affinity
from components.services.namespaces import (LAYER_LABEL, RESTRICTED_CONTAINER_SECURITY, RESTRICTED_POD_SECURITY,
                                           TEAM_LAYER, Namespaces, NamespaceSpec, Peer, grafana_peer,
                                           platform_peer)
from config.platform import retention_hours

NAMESPACE = TRACES_NAMESPACE
TEMPO_RELEASE = "tempo"  # the chart's fullname and Service (templates/_helpers.tpl tempo.fullname)
GATEWAY_RELEASE = "otel-gateway"  # fullnameOverride: the Service OTLP_GATEWAY_HOST names
AGENT_RELEASE = "otel-agent"
AGENT_HOST = f"{AGENT_RELEASE}.{NAMESPACE}.svc.{CLUSTER_DOMAIN}"
HEADLESS = "tempo-headless"
TEMPO_HTTP_PORT = TEMPO_PORT  # queries (Grafana's datasource, context.py TEMPO_URL) and /metrics
TEMPO_GRPC_PORT = 9095  # Tempo's internal gRPC: queriers pull work from the query frontends
GOSSIP_PORT = 7946
COLLECTOR_METRICS_PORT = 8888
TEMPO_OTLP_ENDPOINT = f"{TEMPO_RELEASE}.{NAMESPACE}.svc.{CLUSTER_DOMAIN}:{OTLP_GRPC_PORT}"
S3_SECRET = "tempo-s3"
TEMPO_LABELS = {"app.kubernetes.io/name": "tempo", "app.kubernetes.io/instance": TEMPO_RELEASE}
# The chart's selector labels (templates/_helpers.tpl opentelemetry-collector.selectorLabels).
GATEWAY_LABELS = {"app.kubernetes.io/name": "opentelemetry-collector", "app.kubernetes.io/instance": GATEWAY_RELEASE}
REPLICATION_FACTOR = 3
TEMPO_UID = 10001  # the image's user (tempo v2.10.8 cmd/tempo/Dockerfile)
COLLECTOR_UID = 10001  # the collector image's user (collector-releases distributions/otelcol-k8s/Dockerfile)
MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # a batch of 2048 spans with large attributes exceeds gRPC's 4 MiB default
# (production-grade, staging)
TEMPO_RESOURCES = {True: {"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
                   False: {"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}}}
TEMPO_VOLUME = {True: "30Gi", False: "10Gi"}
GATEWAY_RESOURCES = {True: {"requests": {"cpu": "200m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
                     False: {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}}
AGENT_RESOURCES = {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}
MEMORY_LIMITER = {"check_interval": "1s", "limit_percentage": 80, "spike_limit_percentage": 25}
BATCH = {"send_batch_size": 2048, "send_batch_max_size": 2048, "timeout": "2s"}
UNUSED_CHART_PORTS = ("jaeger-compact", "jaeger-thrift", "jaeger-grpc", "zipkin")
COLLECTOR_POD_SECURITY = {**RESTRICTED_POD_SECURITY, "runAsUser": COLLECTOR_UID, "runAsGroup": COLLECTOR_UID}
CONTAINER_SECURITY = {**RESTRICTED_CONTAINER_SECURITY, "readOnlyRootFilesystem": True}


def namespaces(ctx: PlatformContext) -> list[NamespaceSpec]:
    otlp = (OTLP_GRPC_PORT, OTLP_HTTP_PORT)
    return [NamespaceSpec(
        name=NAMESPACE, pss="restricted", layer=LAYER,
        why="Tempo and the collectors run as non-root users without capabilities, on read-only root "
            "filesystems with the RuntimeDefault seccomp profile; no host ports",
        ingress_from=(Peer("teams", otlp, namespace_labels={LAYER_LABEL: TEAM_LAYER}),
                      platform_peer(otlp, LAYER),
                      ctx.monitoring((TEMPO_HTTP_PORT, COLLECTOR_METRICS_PORT)), grafana_peer((TEMPO_HTTP_PORT,))),
        egress_to=ctx.store_peers("object_storage"),
        egress_world=ctx.object_storage_egress_world())]


# --- Tempo ------------------------------------------------------------------------------------------------
def replication_factor(replicas: int) -> int:
    return REPLICATION_FACTOR if replicas >= REPLICATION_FACTOR else 1


def go_memory_limit(resources: dict[str, Any]) -> str:
    """GOMEMLIMIT at 85 % of the container's memory limit (Gi or Mi), so Go collects before the kernel kills."""
    limit = resources["limits"]["memory"]
    mib = int(limit[:-2]) * (1024 if limit.endswith("Gi") else 1)
    return f"{int(mib * 0.85)}MiB"


def s3_config(store: ObjectStoreEndpoint, location: S3Location) -> dict[str, Any]:
    """Tempo's `storage.trace.s3` (tempodb/backend/s3/config.go): the endpoint as host[:port], TLS by scheme."""
    url = urlsplit(location.endpoint)
    config: dict[str, Any] = {"bucket": location.bucket, "endpoint": url.netloc, "region": location.region,
                              "insecure": url.scheme == "http", "forcepathstyle": store.path_style}
    if location.prefix:
        config["prefix"] = location.prefix
    return config


def tempo_config(ctx: PlatformContext, store: ObjectStoreEndpoint, location: S3Location, replicas: int) -> dict:
    """The whole tempo.yaml (the chart's `config`): its template has no memberlist members, which the
    scalable mode needs."""
    headless = f"{HEADLESS}.{NAMESPACE}.svc.{CLUSTER_DOMAIN}"
    grpc = {"endpoint": f"0.0.0.0:{OTLP_GRPC_PORT}", "max_recv_msg_size_mib": MAX_MESSAGE_BYTES // (1024 * 1024)}
    return {
        "target": "scalable-single-binary",
        "multitenancy_enabled": False,
        "stream_over_http_enabled": False,
        # No phoning home. Here, not as the chart's `tempo.reportingEnabled`: only its default `config` reads that.
        "usage_report": {"reporting_enabled": False},
        "server": {"http_listen_port": TEMPO_HTTP_PORT, "grpc_listen_port": TEMPO_GRPC_PORT, "log_level": "info",
                   "grpc_server_max_recv_msg_size": MAX_MESSAGE_BYTES,
                   "grpc_server_max_send_msg_size": MAX_MESSAGE_BYTES},
        "memberlist": {"cluster_label": f"{TEMPO_RELEASE}.{NAMESPACE}", "bind_port": GOSSIP_PORT,
                       "abort_if_cluster_join_fails": False, "join_members": [f"dns+{headless}:{GOSSIP_PORT}"]},
        "distributor": {"receivers": {"otlp": {"protocols": {
            "grpc": grpc, "http": {"endpoint": f"0.0.0.0:{OTLP_HTTP_PORT}"}}}}},
        "ingester": {"lifecycler": {"ring": {"replication_factor": replication_factor(replicas),
                                             "kvstore": {"store": "memberlist"}},
                                    "tokens_file_path": "/var/tempo/tokens.json"}},
        # Every querier takes work from every frontend (the DNS name resolves to all replicas).
        "querier": {"frontend_worker": {"frontend_address": f"{headless}:{TEMPO_GRPC_PORT}"}},
        "compactor": {"compaction": {"block_retention": f"{retention_hours(ctx.settings.traces.retention)}h"}},
        "storage": {"trace": {"backend": "s3", "s3": s3_config(store, location),
                              "wal": {"path": "/var/tempo/wal"}}},
        "overrides": {"defaults": {}, "per_tenant_override_config": "/conf/overrides.yaml"},
    }


def tempo_values(ctx: PlatformContext, store: ObjectStoreEndpoint, location: S3Location) -> dict[str, Any]:
    replicas = ctx.replicas(3)
    resources = TEMPO_RESOURCES[ctx.ha]
    return {
        "replicas": replicas,
        "config": yamltext.safe_dump(tempo_config(ctx, store, location, replicas), sort_keys=False),
        "tempo": {
            "tag": charts.TEMPO_VERSION,
            "memBallastSizeMbs": 0,  # GOMEMLIMIT instead
            # Only the Service's ports read these (templates/_ports.tpl): an empty endpoint drops a port.
            "receivers": {"jaeger": {"protocols": {p: {"endpoint": ""} for p in
                                                   ("grpc", "thrift_binary", "thrift_compact", "thrift_http")}}},
            "resources": resources,
            "extraEnv": [{"name": "GOMEMLIMIT", "value": go_memory_limit(resources)}],
            "extraEnvFrom": [{"secretRef": {"name": S3_SECRET}}],
            "securityContext": CONTAINER_SECURITY,
            "extraVolumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        },
        "extraVolumes": [{"name": "tmp", "emptyDir": {}}],
        "securityContext": {**RESTRICTED_POD_SECURITY, "runAsUser": TEMPO_UID, "runAsGroup": TEMPO_UID,
                            "fsGroup": TEMPO_UID, "fsGroupChangePolicy": "OnRootMismatch"},
        "persistence": {"enabled": True, "size": TEMPO_VOLUME[ctx.ha], "storageClassName": ctx.storage_class},
        "affinity": {"podAntiAffinity": pod_anti_affinity(TEMPO_LABELS, required=True)},
        "serviceMonitor": {"enabled": True, "interval": SCRAPE_INTERVAL},
        "tempoQuery": {"enabled": False},
    }


def headless_service(ctx: PlatformContext, after: Sequence[pulumi.Resource]) -> k8s.core.v1.Service:
    """Memberlist gossip and the frontends' gRPC, every replica ready or not (a ring forms before readiness)."""
    return k8s.core.v1.Service(
        "tempo-headless",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=HEADLESS, namespace=NAMESPACE, labels=ctx.labels("tempo", "ring")),
        spec=k8s.core.v1.ServiceSpecArgs(
            cluster_ip="None", publish_not_ready_addresses=True, selector=TEMPO_LABELS,
            ports=[k8s.core.v1.ServicePortArgs(name="gossip", port=GOSSIP_PORT, target_port=GOSSIP_PORT,
                                               protocol="TCP"),
                   k8s.core.v1.ServicePortArgs(name="grpc", port=TEMPO_GRPC_PORT, target_port=TEMPO_GRPC_PORT,
                                               protocol="TCP")]),
        opts=ctx.opts(after))


# --- collectors -------------------------------------------------------------------------------------------
def collector_config(exporter: str, endpoint: str, queue_size: int) -> dict[str, Any]:
    """`alternateConfig` (not merged with the chart's Jaeger/Zipkin receivers and debug exporter); the
    `kubernetesAttributes` preset adds `k8s_attributes`. Types as collector v0.158.0 names them (`otlp_grpc`)."""
    return {
        "extensions": {"health_check": {"endpoint": "${env:MY_POD_IP}:13133"}},
        "receivers": {"otlp": {"protocols": {
            "grpc": {"endpoint": f"${{env:MY_POD_IP}}:{OTLP_GRPC_PORT}"},
            "http": {"endpoint": f"${{env:MY_POD_IP}}:{OTLP_HTTP_PORT}"}}}},
        "processors": {"memory_limiter": MEMORY_LIMITER, "batch": BATCH},
        "exporters": {exporter: {
            "endpoint": endpoint, "tls": {"insecure": True},
            "sending_queue": {"enabled": True, "queue_size": queue_size},
            "retry_on_failure": {"enabled": True, "max_elapsed_time": "300s"}}},
        "service": {
            "extensions": ["health_check"],
            "telemetry": {"metrics": {"readers": [
                {"pull": {"exporter": {"prometheus": {"host": "${env:MY_POD_IP}", "port": COLLECTOR_METRICS_PORT}}}}]}},
            "pipelines": {"traces": {"receivers": ["otlp"],
                                     "processors": ["memory_limiter", "k8s_attributes", "batch"],
                                     "exporters": [exporter]}},
        },
    }


def collector_common(release_name: str, resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "fullnameOverride": release_name,
        "image": {"repository": charts.OTEL_COLLECTOR_IMAGE, "tag": charts.OTEL_COLLECTOR_VERSION},
        "presets": {"kubernetesAttributes": {"enabled": True}},
        "resources": resources,
        "podSecurityContext": COLLECTOR_POD_SECURITY,
        "securityContext": CONTAINER_SECURITY,
    }


def gateway_values(ctx: PlatformContext) -> dict[str, Any]:
    replicas = ctx.replicas(2)
    return {
        **collector_common(GATEWAY_RELEASE, GATEWAY_RESOURCES[ctx.ha]),
        "mode": "deployment",
        "replicaCount": replicas,
        "alternateConfig": collector_config("otlp_grpc/tempo", TEMPO_OTLP_ENDPOINT, 5000),
        "ports": {**{name: {"enabled": False} for name in UNUSED_CHART_PORTS}, "metrics": {"enabled": True}},
        "serviceMonitor": {"enabled": True, "metricsEndpoints": [{"port": "metrics", "interval": SCRAPE_INTERVAL}]},
        # Preferred: a required rule would stall the rolling update's surge pod on a small pool.
        "affinity": {"podAntiAffinity": pod_anti_affinity(GATEWAY_LABELS, required=False)},
        "podDisruptionBudget": {"enabled": True, "minAvailable": 1} if replicas > 1 else {"enabled": False},
    }


def agent_values() -> dict[str, Any]:
    no_host_port = {"hostPort": 0}  # the chart opens every enabled port on the host in daemonset mode
    return {
        **collector_common(AGENT_RELEASE, AGENT_RESOURCES),
        "mode": "daemonset",
        "service": {"enabled": True},  # internalTrafficPolicy Local (chart templates/_helpers.tpl)
        "alternateConfig": collector_config("otlp_grpc/gateway", f"{OTLP_GATEWAY_HOST}:{OTLP_GRPC_PORT}", 1000),
        "ports": {**{name: {"enabled": False} for name in UNUSED_CHART_PORTS},
                  "otlp": no_host_port, "otlp-http": no_host_port, "metrics": {"enabled": True}},
        "podMonitor": {"enabled": True, "metricsEndpoints": [{"port": "metrics", "interval": SCRAPE_INTERVAL}]},
        "tolerations": [{"operator": "Exists"}],  # every node, whatever its taints
    }


# --- install ----------------------------------------------------------------------------------------------
def install(ctx: PlatformContext, spaces: Namespaces, after: Sequence[pulumi.Resource]) -> Installed:
    store = ctx.object_store("traces")
    location = store.bucket("traces")
    secret = ctx.aws_credentials("tempo-s3", S3_SECRET, NAMESPACE, location, after)
    headless = headless_service(ctx, after)
    tempo = release(TEMPO_RELEASE, charts.TEMPO, tempo_values(ctx, store, location),
                    ctx.opts([*after, secret, headless]), namespace=NAMESPACE, create_namespace=False)
    ready: list[pulumi.Resource] = [secret, headless, tempo]
    if ctx.replicas(3) > 1:  # the chart ships no PodDisruptionBudget
        ready.append(ctx.disruption_budget("tempo-pdb", TEMPO_RELEASE, NAMESPACE, TEMPO_LABELS,
                                           ctx.labels("tempo", "budget"), after, max_unavailable=1))
    gateway = release(GATEWAY_RELEASE, charts.OPENTELEMETRY_COLLECTOR, gateway_values(ctx), ctx.opts(after),
                      namespace=NAMESPACE, create_namespace=False)
    agent = release(AGENT_RELEASE, charts.OPENTELEMETRY_COLLECTOR, agent_values(), ctx.opts(after),
                    namespace=NAMESPACE, create_namespace=False)
    return Installed(ready=[*ready, gateway, agent])


__all__ = ["install", "namespaces"]
