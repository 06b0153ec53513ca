"""What every platform module is handed: settings, the data plane's endpoints, the shared gateway, and how
to create children (routes, monitors, budgets) the same way everywhere.

Well-known in-cluster addresses of the platform live here, so the modules that serve them (logs, traces,
monitoring) and those that point at them (Grafana's datasources, the ad services' telemetry) agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components.data.context import OBJECT_STORE_NAMESPACE, OBJECT_STORE_S3_PORT
from components.data.endpoints import BackupTargets, DataEndpoints, ObjectStoreEndpoint, S3Location
from components.layer import LayerContext, Prerequisites
from components.services.gateway import GatewayRef
from components.services.namespaces import Peer, prometheus_peer
from config import StackSecrets
from config.catalog import MONITORING_NAMESPACE
from config.model import Cluster
from config.platform import Platform as Settings

LAYER = "platform"  # LAYER_LABEL value of every platform namespace: the data stores admit these as clients
CLUSTER_DOMAIN = "cluster.local"

# --- addresses the platform's modules serve (and others point at) --------------------------------------
LOGS_NAMESPACE = "logging"
TRACES_NAMESPACE = "tracing"
PROMETHEUS_URL = f"http://prometheus-operated.{MONITORING_NAMESPACE}.svc.{CLUSTER_DOMAIN}:9090"
ALERTMANAGER_URL = f"http://alertmanager-operated.{MONITORING_NAMESPACE}.svc.{CLUSTER_DOMAIN}:9093"
LOKI_PORT = 3100  # Loki's HTTP API (push, query, /metrics): logs.py listens there, its policies open it
TEMPO_PORT = 3200  # Tempo's query API: traces.py listens there, its policies open it
LOKI_URL = f"http://loki.{LOGS_NAMESPACE}.svc.{CLUSTER_DOMAIN}:{LOKI_PORT}"
TEMPO_URL = f"http://tempo.{TRACES_NAMESPACE}.svc.{CLUSTER_DOMAIN}:{TEMPO_PORT}"  # Grafana's Tempo datasource
# Where workloads send OTLP: the collector gateway (ad services set OTEL_EXPORTER_OTLP_ENDPOINT to it).
OTLP_GRPC_PORT = 4317
OTLP_HTTP_PORT = 4318
OTLP_GATEWAY_HOST = f"otel-gateway.{TRACES_NAMESPACE}.svc.{CLUSTER_DOMAIN}"
# Grafana's dashboard sidecar loads ConfigMaps carrying this label from every namespace.
DASHBOARD_LABEL = ("grafana_dashboard", "1")
SCRAPE_INTERVAL = "30s"


@dataclass(frozen=True)
class OAuthClient:
    """One consumer's OAuth application in this stack's GitLab (components/platform/sso.py): its own client id
    and secret (generated, in Pulumi state), never shared with another consumer."""

    consumer: str  # config/platform.py SSO_CONSUMERS
    client_id: str  # public by design (config/platform.py oauth_client_id)
    client_secret: pulumi.Output[str]  # secret Output
    redirect_uris: tuple[str, ...]
    confidential: bool  # False: a public client (kubectl on a laptop) that proves itself with PKCE
    issuer: str  # https://gitlab.<domain>: GitLab's OIDC issuer (/.well-known/openid-configuration)
    groups: tuple[str, ...]  # GitLab groups (full paths) whose members may log in; the admins' first
    admins: tuple[str, ...]  # GitLab groups whose members get the tool's admin role

    def allowed_groups(self) -> tuple[str, ...]:
        """`groups` for a tool's login setting; never empty: oauth2-proxy and Grafana let every GitLab account in
        when no group is set (config/rules.py refuses such a config first; this stops a renderer regardless)."""
        if not self.groups:
            raise ValueError(f"{self.consumer}: no GitLab group is allowed in, which would let every account in")
        return self.groups


@dataclass(frozen=True)
class Installed:
    """What a platform module returns: its public URLs (label -> https URL) and what to wait on."""

    urls: dict[str, str] = field(default_factory=dict)
    ready: list[pulumi.Resource] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)  # stack outputs (name -> value), e.g. runnerTokens
    # What a client of it waits for (its workloads and routes), without its own follow-up jobs; default: `ready`
    serves: list[pulumi.Resource] | None = None

    @property
    def serving(self) -> list[pulumi.Resource]:
        return self.ready if self.serves is None else self.serves


@dataclass(frozen=True)
class PlatformContext(LayerContext):
    """`parent`: the Platform component."""

    settings: Settings  # platform.* of the stack, validated
    cluster: Cluster
    secrets: StackSecrets
    stack: str
    domain: str
    admin_cidrs: tuple[str, ...]
    storage_class: str
    prerequisites: Prerequisites  # the cluster services by what a workload renders (a claim: the storage alone)
    gateway: GatewayRef
    cluster_issuer: str
    data: DataEndpoints  # the data plane's stores (None where disabled)
    backup: BackupTargets | None  # where backups go (DataPlane.backup: off-cluster S3, else the in-cluster store)
    general_nodes: int  # untainted nodes: where platform workloads run (caps replica spreading)
    environment: str  # config/catalog.py ENVIRONMENTS: the runner's tag, deploy jobs pick the cluster by it
    teams: tuple[str, ...]  # team namespaces (clusterServices.teams): where deploy jobs may roll Deployments
    sso: dict[str, OAuthClient] = field(default_factory=dict)  # consumer -> its OAuth client; empty: SSO off
    # What serves GitLab (its release and routes), for the modules after it: a login that reads GitLab's OIDC
    # discovery document when it starts (oauth2-proxy) and the runner's releases (they register at GitLab's URL) wait
    # on these; logins that read it at the first sign-in do not, nor do the toolbox Jobs (toolbox_job.py).
    gitlab_serving: tuple[pulumi.Resource, ...] = ()

    # --- sizing ----------------------------------------------------------------------------------------
    def replicas(self, ha_count: int = 2) -> int:
        """`ha_count` in production-grade profiles (never more than the nodes to spread them on), else 1."""
        return max(1, min(ha_count, self.general_nodes)) if self.ha else 1

    def url(self, label: str) -> str:
        return f"https://{self.gateway.hostname(label)}"

    # --- network peers -------------------------------------------------------------------------------
    def monitoring(self, ports: Sequence[int]) -> Peer:
        """Prometheus scrapes these metrics ports."""
        return prometheus_peer(ports)

    def store_peers(self, *stores: str, consumer: str | None = None) -> tuple[Peer, ...]:
        """Egress to the client ports of these data stores (DataEndpoints attribute names; disabled ones skipped);
        for DragonflyDB, the instance that serves `consumer` (a platform consumer's own)."""
        ports = {"postgres": lambda e: (e.port,), "dragonfly": lambda e: (e.port,),
                 "scylladb": lambda e: (e.port,), "redpanda": lambda e: e.ports,
                 "clickhouse": lambda e: (e.http_port, e.native_port)}
        peers = []
        for store in stores:
            endpoint = getattr(self.data, store)
            if endpoint is None:
                continue
            if store == "dragonfly" and consumer is not None:
                endpoint = endpoint.serving(consumer)
            if store == "object_storage":
                if endpoint.in_cluster:
                    peers.append(Peer(OBJECT_STORE_NAMESPACE, (OBJECT_STORE_S3_PORT,)))
                continue
            peers.append(Peer(endpoint.namespace, tuple(ports[store](endpoint)), pod_labels=dict(endpoint.pod_labels)))
        return tuple(peers)

    def object_store(self, component: str) -> ObjectStoreEndpoint:
        """The object store a component keeps its data in (config/rules.py refuses the component without it,
        so None here is a bug, not a config problem)."""
        if self.data.object_storage is None:
            raise ValueError(f"platform.{component} needs dataPlane.objectStorage")
        return self.data.object_storage

    def aws_credentials(self, resource_name: str, name: str, namespace: str, location: S3Location,
                        depends_on: Sequence[pulumi.Resource] = ()) -> k8s.core.v1.Secret:
        """The bucket's keys as the AWS SDKs' standard variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), for
        S3 clients that read them when their config names no keys."""
        return location.secret(resource_name, name, namespace, self.opts(depends_on),
                               id_key="AWS_ACCESS_KEY_ID", secret_key="AWS_SECRET_ACCESS_KEY")

    def sso_egress_world(self, consumer: str) -> tuple[int, ...]:
        """HTTPS to GitLab's public address (token, keys, userinfo) for a consumer of the single sign-on."""
        return (443,) if consumer in self.sso else ()

    def object_storage_egress_world(self) -> tuple[int, ...]:
        """HTTPS to the provider's S3 when object storage is external (dataPlane.objectStorage.backend)."""
        objects = self.data.object_storage
        return (443,) if objects is not None and not objects.in_cluster else ()

    # --- objects every module creates ----------------------------------------------------------------
    def route(self, resource_name: str, label: str, namespace: str, service: str, port: int,
              depends_on: Sequence[pulumi.Resource] = (), path: str = "/",
              extra_rules: Sequence[dict[str, Any]] = ()) -> k8s.apiextensions.CustomResource:
        """An HTTPRoute serving https://<label>.<domain> from `service:port` on the shared gateway."""
        rules = [*extra_rules, {"matches": [{"path": {"type": "PathPrefix", "value": path}}],
                                "backendRefs": [{"name": service, "port": port}]}]
        return self.custom_resource(
            resource_name, "gateway.networking.k8s.io/v1", "HTTPRoute", label, namespace,
            {"parentRefs": self.gateway.parent_refs(label), "hostnames": [self.gateway.hostname(label)],
             "rules": rules},
            self.labels(label, "route"), depends_on)

    def service_monitor(self, resource_name: str, name: str, namespace: str, selector: dict[str, str],
                        port: str, depends_on: Sequence[pulumi.Resource] = (), path: str = "/metrics",
                        labels: dict[str, str] | None = None) -> k8s.apiextensions.CustomResource:
        """A ServiceMonitor for a Service port by name (the Prometheus Operator CRDs are in the services layer)."""
        return self.custom_resource(
            resource_name, "monitoring.coreos.com/v1", "ServiceMonitor", name, namespace,
            {"selector": {"matchLabels": dict(selector)},
             "endpoints": [{"port": port, "path": path, "interval": SCRAPE_INTERVAL}]},
            labels or self.labels(name, "metrics"), depends_on)
