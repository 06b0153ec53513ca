"""Logs: Loki on object storage in namespace `logging`, fed by an OpenTelemetry Collector on every node.

Loki (chart `loki`, components/charts.py) runs in the chart's `Monolithic` mode (SimpleScalable is deprecated
and removed in Loki 4): every replica runs every Loki component, the replicas form one ring over memberlist
(the chart's `loki-memberlist` Service) and share the object store. What this module sets, and why:

- storage: chunks and the TSDB index (schema v13) in the `logs` bucket of the data plane's object store
  (`dataPlane.objectStorage`: SeaweedFS in the cluster, path-style, or the provider's S3). The keys come from
  our Secret `loki-s3` as the AWS SDK's own environment variables: Loki's S3 client (aws-sdk-go-v2,
  pkg/storage/chunk/client/aws at v3.7.6) takes them from its default credential chain when the config
  names none, so no key is in the Helm values, the ConfigMap or the Pulumi state in plain text;
- replicas: `ctx.replicas(3)` with replication factor 3 (a write lands on a quorum of 2, so one replica may
  be down or drained), one per node, a PodDisruptionBudget of one unavailable; staging runs one with factor 1;
- a volume per replica for the WAL (replayed after a crash, so no acknowledged line is lost), the compactor's
  working directory and the index cache;
- retention `platform.logs.retention`: the compactor deletes older chunks (`retention_enabled`, delete
  requests kept in the object store) and queries do not look further back;
- single tenant (`auth_enabled: false`): one cluster, one team of operators; Grafana and the collector send
  no tenant header;
- OTLP ingestion: the collector pushes OTLP to `/otlp`; the resource attributes that name a stream
  (namespace, container, workload, service) become index labels, the pod name and instance id stay
  structured metadata (Loki's own advice for new installs: they are high-cardinality);
- ingestion limits sized for a cluster's worth of logs in one tenant (Loki's defaults, 4 MB/s, are per
  small tenant);
- off: the nginx gateway (the Service `loki` on 3100 is the API, context.py LOKI_URL), the memcached caches
  (a monolithic install reads from the in-cluster store; results caching would need another StatefulSet per
  cache), the canary, Helm tests, the ruler (alerts live in Prometheus) and its rules sidecar, usage reports;
- metrics: the chart's ServiceMonitor, recording rules, alerts and dashboards (ConfigMaps with the label
  Grafana's sidecar loads).

The collector (chart `opentelemetry-collector`, the Kubernetes distribution of the collector) runs as a
DaemonSet on every node, control plane and database pools included (it tolerates every taint: logs of a node
nobody ships are lost when the node goes). It reads the kubelet's log files under /var/log/pods through the
chart's `logsCollection` preset rather than streaming them through the API server, which would carry every
log line of the cluster through the control plane. Reading host files needs a hostPath volume and root, which
only the `privileged` Pod Security level admits, so the collector has a namespace of its own
(`log-collector`) and `logging` stays `restricted`; it runs as root without any capability (the log files are
root's, so no capability is needed to read them) on a read-only root filesystem. Its read positions and its
send queue live in /var/lib/otelcol on the node, so a restart or a Loki outage neither loses nor repeats
lines (until the kubelet rotates a file away). The `kubernetesAttributes` preset adds the pod's workload and
service names from the API server (only pods of its own node).
"""

from __future__ import annotations

from typing import Any, Sequence

import pulumi

from components import charts
from components.data.endpoints import ObjectStoreEndpoint, S3Location
from components.helm import release
from components.platform.context import LAYER, LOGS_NAMESPACE, LOKI_PORT, LOKI_URL, Installed, PlatformContext
from components.scheduling import pod_anti_affinity
from components.services.namespaces import Namespaces, NamespaceSpec, Peer, grafana_peer
from config.platform import retention_hours

NAMESPACE = LOGS_NAMESPACE
COLLECTOR_NAMESPACE = "log-collector"
RELEASE = "loki"  # contains the chart name: the Service is `loki` (chart _helpers.tpl loki.fullname)
COLLECTOR_RELEASE = "log-collector"
HTTP_PORT = LOKI_PORT  # push, query and /metrics (chart values loki.server.http_listen_port)
COLLECTOR_METRICS_PORT = 8888  # the collector's own telemetry
S3_SECRET = "loki-s3"
# Selector labels of the monolithic pods (chart templates/_helpers.tpl loki.selectorLabels + the target).
LOKI_LABELS = {"app.kubernetes.io/name": "loki", "app.kubernetes.io/instance": RELEASE,
               "app.kubernetes.io/component": "single-binary"}
SCHEMA_FROM = "2025-01-01"  # before any install of this program: the one v13/TSDB period
REPLICATION_FACTOR = 3
# Loki's default OTLP index labels (pkg/loghttp/push/otlp_config.go at v3.7.6) without k8s.pod.name and
# service.instance.id (Loki docs "Remove default OpenTelemetry labels").
OTLP_INDEX_LABELS = ("service.name", "service.namespace", "deployment.environment", "deployment.environment.name",
                     "cloud.region", "cloud.availability_zone", "k8s.cluster.name", "k8s.namespace.name",
                     "k8s.container.name", "container.name", "k8s.replicaset.name", "k8s.deployment.name",
                     "k8s.statefulset.name", "k8s.daemonset.name", "k8s.cronjob.name", "k8s.job.name")
# aws-sdk-go-v2 sends CRC checksums on every upload by default since 2025; S3-compatible stores that predate
# them reject such requests. Only when an operation requires one (AWS SDK docs, "Data integrity protections").
AWS_CHECKSUM_ENV = [{"name": "AWS_REQUEST_CHECKSUM_CALCULATION", "value": "when_required"},
                    {"name": "AWS_RESPONSE_CHECKSUM_VALIDATION", "value": "when_required"}]
# (production-grade, staging): per Loki replica; its volume; per collector pod.
LOKI_RESOURCES = {True: {"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
                  False: {"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}}}
LOKI_VOLUME = {True: "30Gi", False: "10Gi"}
COLLECTOR_RESOURCES = {"requests": {"cpu": "100m", "memory": "192Mi"}, "limits": {"memory": "512Mi"}}
# The collector reads files root owns; it needs no capability for that, and writes only its hostPath.
ROOT_WITHOUT_CAPABILITIES = {"runAsUser": 0, "runAsGroup": 0, "runAsNonRoot": False,
                             "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                             "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
# The collector's processors: refuse data before the container's memory limit is hit (the receiver retries).
MEMORY_LIMITER = {"check_interval": "1s", "limit_percentage": 80, "spike_limit_percentage": 25}
CHART_PORTS = ("otlp", "otlp-http", "jaeger-compact", "jaeger-thrift", "jaeger-grpc", "zipkin")


def namespaces(ctx: PlatformContext) -> list[NamespaceSpec]:
    return [
        NamespaceSpec(
            name=NAMESPACE, pss="restricted", layer=LAYER,
            why="Loki runs as its image's non-root user (10001) without capabilities, on a read-only root "
                "filesystem with the RuntimeDefault seccomp profile",
            ingress_from=(Peer(COLLECTOR_NAMESPACE, (HTTP_PORT,)), ctx.monitoring((HTTP_PORT,)), grafana_peer((HTTP_PORT,))),
            egress_to=ctx.store_peers("object_storage"),
            egress_world=ctx.object_storage_egress_world()),
        NamespaceSpec(
            name=COLLECTOR_NAMESPACE, pss="privileged", layer=LAYER,
            why="the log collector reads every pod's log files on its node (hostPath /var/log/pods, as root "
                "without capabilities) and keeps its positions in hostPath /var/lib/otelcol: hostPath volumes "
                "are admitted only at privileged, so it runs alone here",
            ingress_from=(ctx.monitoring((COLLECTOR_METRICS_PORT,)),),
            egress_to=(Peer(NAMESPACE, (HTTP_PORT,), pod_labels=LOKI_LABELS),)),
    ]


# --- Loki -------------------------------------------------------------------------------------------------
def replication_factor(replicas: int) -> int:
    """A quorum of 3 with three replicas; one copy when fewer (a factor above the replicas never writes)."""
    return REPLICATION_FACTOR if replicas >= REPLICATION_FACTOR else 1


def storage(store: ObjectStoreEndpoint, location: S3Location) -> dict[str, Any]:
    """The chart's `loki.storage` (templates/_helpers.tpl loki.lokiStorageConfig.s3): no keys, see the docstring.
    Loki's S3 client takes the endpoint as a URL (http:// for the in-cluster store)."""
    return {"type": "s3", "bucketNames": {"chunks": location.bucket},
            "s3": {"endpoint": location.endpoint, "region": location.region,
                   "s3ForcePathStyle": store.path_style, "insecure": location.endpoint.startswith("http://")}}


def limits(ctx: PlatformContext) -> dict[str, Any]:
    retention = f"{retention_hours(ctx.settings.logs.retention)}h"
    return {
        "retention_period": retention,
        "max_query_lookback": retention,
        "allow_structured_metadata": True,  # OTLP attributes are stored as structured metadata
        # One tenant for the whole cluster: shared by every distributor (the global strategy).
        "ingestion_rate_mb": 32,
        "ingestion_burst_size_mb": 64,
        "per_stream_rate_limit": "5MB",
        "per_stream_rate_limit_burst": "20MB",
        "max_global_streams_per_user": 20000,
    }


def loki_values(ctx: PlatformContext, store: ObjectStoreEndpoint, location: S3Location) -> dict[str, Any]:
    replicas = ctx.replicas(3)
    return {
        "deploymentMode": "Monolithic",
        "loki": {
            "image": {"tag": charts.LOKI_VERSION},
            "auth_enabled": False,
            "commonConfig": {"path_prefix": "/var/loki", "replication_factor": replication_factor(replicas)},
            "storage": storage(store, location),
            "schemaConfig": {"configs": [{"from": SCHEMA_FROM, "store": "tsdb", "object_store": "s3",
                                          "schema": "v13", "index": {"prefix": "index_", "period": "24h"}}]},
            "limits_config": limits(ctx),
            "compactor": {"working_directory": "/var/loki/compactor", "compaction_interval": "10m",
                          "retention_enabled": True, "retention_delete_delay": "2h",
                          "delete_request_store": "s3"},
            "distributor": {"otlp_config": {"default_resource_attributes_as_index_labels": list(OTLP_INDEX_LABELS)}},
            "analytics": {"reporting_enabled": False},
        },
        "singleBinary": {
            "replicas": replicas,
            "resources": LOKI_RESOURCES[ctx.ha],
            "extraEnvFrom": [{"secretRef": {"name": S3_SECRET}}],
            "extraEnv": AWS_CHECKSUM_ENV,
            "persistence": {"enabled": True, "size": LOKI_VOLUME[ctx.ha], "storageClass": ctx.storage_class},
            # Required: replicas never exceed the untainted nodes (ctx.replicas), and a StatefulSet rolls
            # without a surge pod.
            "affinity": {"podAntiAffinity": pod_anti_affinity(LOKI_LABELS, required=True)},
            # Rendered only with more than one replica (chart templates/_pdb.tpl): the quorum stays.
            "podDisruptionBudget": {"maxUnavailable": 1},
        },
        # Monolithic only: the simple-scalable targets default to 3 replicas each (chart values.yaml).
        "write": {"replicas": 0}, "read": {"replicas": 0}, "backend": {"replicas": 0},
        # Replicas find each other before they are ready (a ring forms before readiness; the chart's default
        # publishes only ready pods, so parallel first starts wait out the join retries).
        "memberlist": {"service": {"publishNotReadyAddresses": True}},
        "gateway": {"enabled": False},
        "chunksCache": {"enabled": False},
        "resultsCache": {"enabled": False},
        "lokiCanary": {"enabled": False},
        "test": {"enabled": False},
        "ruler": {"enabled": False},
        "sidecar": {"rules": {"enabled": False}},
        "monitoring": {"serviceMonitor": {"enabled": True}, "rules": {"enabled": True},
                       "alerts": {"enabled": True}, "dashboards": {"enabled": True}},
    }


# --- the collector ----------------------------------------------------------------------------------------
def collector_config() -> dict[str, Any]:
    """`alternateConfig` (not merged with the chart's default receivers and debug exporter); the presets add
    the file receiver (chart templates/_config.tpl logsCollectionConfig), its `file_storage` and
    `k8s_attributes`. Component types as the collector v0.158.0 names them (`otlp_http`)."""
    return {
        "extensions": {"health_check": {"endpoint": "${env:MY_POD_IP}:13133"}},
        # Files found at the first start are read whole (the preset starts at their end); later the stored
        # positions apply.
        "receivers": {"filelog": {"start_at": "beginning"}},
        "processors": {"memory_limiter": MEMORY_LIMITER,
                       "batch": {"send_batch_size": 2048, "send_batch_max_size": 2048, "timeout": "1s"}},
        "exporters": {"otlp_http/loki": {
            "endpoint": f"{LOKI_URL}/otlp",
            # On the node's disk: a Loki outage backs up here, then reading pauses (positions are kept).
            "sending_queue": {"enabled": True, "storage": "file_storage", "queue_size": 1000},
            "retry_on_failure": {"enabled": True, "max_elapsed_time": "0s"},  # until Loki is back
        }},
        "service": {
            "extensions": ["health_check", "file_storage"],
            "telemetry": {"metrics": {"readers": [
                {"pull": {"exporter": {"prometheus": {"host": "${env:MY_POD_IP}", "port": COLLECTOR_METRICS_PORT}}}}]}},
            "pipelines": {"logs": {"receivers": ["filelog"],
                                   "processors": ["memory_limiter", "k8s_attributes", "batch"],
                                   "exporters": ["otlp_http/loki"]}},
        },
    }


def collector_values() -> dict[str, Any]:
    return {
        "mode": "daemonset",
        "fullnameOverride": COLLECTOR_RELEASE,
        "image": {"repository": charts.OTEL_COLLECTOR_IMAGE, "tag": charts.OTEL_COLLECTOR_VERSION},
        "presets": {"logsCollection": {"enabled": True, "storeCheckpoints": True},
                    "kubernetesAttributes": {"enabled": True}},
        "alternateConfig": collector_config(),
        # It receives nothing: no listening ports (the chart's defaults open OTLP, Jaeger and Zipkin on the host).
        "ports": {**{name: {"enabled": False} for name in CHART_PORTS}, "metrics": {"enabled": True}},
        "podMonitor": {"enabled": True, "metricsEndpoints": [{"port": "metrics", "interval": "30s"}]},
        "tolerations": [{"operator": "Exists"}],  # every node, whatever its taints
        "resources": COLLECTOR_RESOURCES,
        "securityContext": ROOT_WITHOUT_CAPABILITIES,
    }


# --- install ----------------------------------------------------------------------------------------------
def install(ctx: PlatformContext, spaces: Namespaces, after: Sequence[pulumi.Resource]) -> Installed:
    store = ctx.object_store("logs")
    location = store.bucket("logs")
    secret = ctx.aws_credentials("loki-s3", S3_SECRET, NAMESPACE, location, after)
    loki = release(RELEASE, charts.LOKI, loki_values(ctx, store, location), ctx.opts([*after, secret]),
                   namespace=NAMESPACE, create_namespace=False)
    collector = release(COLLECTOR_RELEASE, charts.OPENTELEMETRY_COLLECTOR, collector_values(), ctx.opts(after),
                        namespace=COLLECTOR_NAMESPACE, create_namespace=False)
    return Installed(ready=[secret, loki, collector])


__all__ = ["install", "namespaces"]
