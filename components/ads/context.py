"""What every ad service is handed: where it runs, what it may reach, and how its children are created.

`ServicePlan` is one service resolved from the config (components/ads/__init__.py builds it): its image,
sizes, placement, the store wirings it uses and the pods it talks to. The `Service` component
(components/ads/service.py) turns a plan into Kubernetes objects and never reads the config itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import pulumi

from components.layer import LayerContext
from components.services.gateway import GatewayRef

CLUSTER_DOMAIN = "cluster.local"
SERVICE_PORT = 80  # every ad service's Service port: callers and the gateway use http://<name>.<namespace>.svc
COMPONENT = "ad-service"  # app.kubernetes.io/component of every ad service's objects
HOT_PATH_CLASS = "adplatform-ads-hot-path"
# Above every pod without a class (0), far below the system classes (2000000000): a pending hot-path pod is
# scheduled before any other pod waiting for room on the general nodes (components/ads/__init__.py says why it
# does not evict running ones).
HOT_PATH_PRIORITY = 1000000
HOT_PATH_PREEMPTION = "Never"
# Linkerd's inbound proxy port (linkerd-control-plane values proxy.ports.inbound): between two meshed pods the
# client's proxy dials the server pod on this port instead of the service's port (linkerd.io/2/common-errors/
# network-policy), so in a meshed namespace a caller's egress and the callee's ingress must name it too.
MESH_INBOUND_PORT = 4143


def selector_labels(name: str) -> dict[str, str]:
    """What selects a service's pods everywhere (Deployment, Service, PDB, NetworkPolicies, ServiceMonitor via
    the Service's labels); immutable once the Deployment exists, so nothing that may change is in it."""
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "adplatform"}


@dataclass(frozen=True)
class Egress:
    """Pods in another namespace a service connects to (a data store's), on these ports."""

    namespace: str
    pod_labels: dict[str, str]
    ports: tuple[int, ...]


@dataclass(frozen=True)
class StoreWiring:
    """How a service reaches one data store: env (credentials only as secretKeyRef), mounted files (the CA),
    the egress rule, and what must exist before its pods start (the store, the copied Secrets)."""

    store: str
    env: tuple[dict[str, Any], ...]
    egress: Egress
    volumes: tuple[dict[str, Any], ...] = ()
    mounts: tuple[dict[str, Any], ...] = ()
    secrets: tuple[str, ...] = ()  # names of the Secrets in the service namespace it reads
    ready: tuple[pulumi.Resource, ...] = ()


@dataclass(frozen=True)
class Neighbour:
    """Another ad service this one calls, or is called by: its pods' labels and container port."""

    name: str
    labels: dict[str, str]
    port: int


@dataclass(frozen=True)
class LagTarget:
    """A Redpanda consumer group's lag per replica (config/ads.py ConsumerLag)."""

    group: str
    average_value: str


@dataclass(frozen=True)
class ServicePlan:
    name: str
    image: str
    placeholder: bool  # the image is the placeholder test server (its public route is narrowed)
    port: int
    metrics_port: int | None  # None: /metrics on `port`
    metrics_path: str
    liveness_path: str
    readiness_path: str
    host: str | None  # public on https://<host>.<domain>
    min_replicas: int
    max_replicas: int
    target_cpu_utilization: int
    requests_per_second: str | None  # per pod (config/ads.py requestsPerSecond)
    consumer_lag: LagTarget | None
    cpu: str
    memory: str
    memory_limit: str
    run_as_user: int
    priority_class: str | None
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict[str, str], ...] = ()
    stores: tuple[StoreWiring, ...] = ()
    keyspace: str | None = None
    callers: tuple[Neighbour, ...] = ()
    callees: tuple[Neighbour, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    pull_secret: str | None = None
    io_uring: bool = False  # runs under the node's Localhost seccomp profile that allows io_uring

    @property
    def labels(self) -> dict[str, str]:
        return selector_labels(self.name)

    @property
    def public(self) -> bool:
        return self.host is not None


@dataclass(frozen=True)
class AdsContext(LayerContext):
    """`parent`: the AdServices component (a Service replaces it with itself for its children)."""

    namespace: str  # the team namespace the services run in
    domain: str
    environment: str  # production or staging (config/catalog.py ENVIRONMENTS)
    gateway: GatewayRef
    otlp_endpoint: str | None  # the platform's OTLP gRPC endpoint, None without traces
    monitoring: bool  # the platform's monitoring is on: dashboards for Grafana
    after: tuple[pulumi.Resource, ...] = ()  # the team namespace and its policies, the gateway
    meshed: bool = False  # the namespace's pods get Linkerd's proxy (clusterServices.mesh)

    def opts(self, depends_on: Sequence[pulumi.Resource] = (), protect: bool = False,
             **kwargs) -> pulumi.ResourceOptions:
        """Every child waits for the namespace (and the gateway) besides what it names."""
        return super().opts([*self.after, *depends_on], protect=protect, **kwargs)

    def internal_url(self, name: str) -> str:
        return f"http://{name}.{self.namespace}.svc.{CLUSTER_DOMAIN}:{SERVICE_PORT}"

    def public_url(self, host: str) -> str:
        return f"https://{self.gateway.hostname(host)}"
