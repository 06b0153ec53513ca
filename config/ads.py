"""Config of the ad services: one entry per service under `adServices.services.<name>`.

The profiles (config/profiles.py) declare the eight services with their stores, callers and environment
sizes; a stack file changes one key (`adServices.services.bidding.maxReplicas: 20`) or adds a service.
Field validators check one value; `problems` holds the rules that need the rest of the stack: stores
that are on, callers that exist, hosts the gateway serves, pools that exist, replicas that fit the team
namespace's quota. components/ads turns each service into its Kubernetes objects.

The image here is only the image a Deployment is *created* with: afterwards the service's CI pipeline
owns it (`kubectl set image`, templates/gitlab-ci) and Pulumi ignores it (components/ads/service.py).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import TYPE_CHECKING

from pydantic import StrictBool, field_validator

from components.charts import PODINFO_IMAGE, PODINFO_VERSION
from config.catalog import ROLES
from config.consumers import redpanda_prefix
from config.errors import Problem, problem
from config.model_base import Model, check_hostname_label
from config.platform import NEEDS
from config.profiles import PROFILES
from config.quantity import Cpu, Memory, Quantity, cpu_millis, memory_mib

if TYPE_CHECKING:
    from config.model import StackConfig

# Until a team's own image exists: a public, maintained test server that answers HTTP on 9898 with
# /healthz, /readyz and Prometheus /metrics (podinfo, pinned in the catalog components/charts.py;
# charts/podinfo/values.yaml service.httpPort; pkg/api/http/server.go registerHandlers).
PLACEHOLDER_REPOSITORY = PODINFO_IMAGE
PLACEHOLDER_TAG = PODINFO_VERSION
PLACEHOLDER_PORT = 9898

# Stores a service may declare (dataPlane.<store>), wired by components/ads/stores.py. PostgreSQL admits
# only the platform layer's namespaces (components/data/postgres.py), object storage too.
STORES = ("scylladb", "dragonfly", "redpanda", "clickhouse")
NOT_FOR_SERVICES = {
    "postgres": "PostgreSQL admits only the platform layer's namespaces (its databases are GitLab's, Airflow's, ...)",
    "objectStorage": "the object store admits only the platform layer's namespaces",
}
# Environment variables the platform sets (components/ads/stores.py, service.py): a service's own `env` may
# not use these prefixes, so what a store's wiring says is never shadowed by a stale copy.
WIRED_ENV_PREFIXES = ("SCYLLA_", "DRAGONFLY_", "KAFKA_", "CLICKHOUSE_", "OTEL_", "ADS_")
# Last words of variable names that hold credentials: those belong in Secrets, not in the stack file.
_CREDENTIAL_WORDS = ("PASSWORD", "PASSWD", "SECRET", "TOKEN", "APIKEY", "API_KEY", "ACCESS_KEY", "SECRET_KEY",
                     "PRIVATE_KEY", "CREDENTIALS")
# Deployment strategy maxSurge (components/ads/service.py): the quota must admit the surge pods of a
# rollout at maxReplicas too, or a rollout at peak stalls on the quota.
SURGE = 0.25
# Linkerd's proxy, injected into every pod of a meshed namespace (clusterServices.mesh), requests this much too
# (components/services/mesh.py control_plane_values: proxy.resources): the quota must hold it with the service.
MESH_PROXY_CPU, MESH_PROXY_MEMORY, MESH_PROXY_MEMORY_LIMIT = "100m", "20Mi", "250Mi"

_SERVICE_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$")
_REPOSITORY = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*(\.[a-z0-9-]+)*(:\d+)?(/[a-z0-9]+([._-]{1,2}[a-z0-9]+)*)+$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
_REGISTRY_HOST = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*(:\d+)?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PATH = re.compile(r"^/[A-Za-z0-9._~/-]*$")


class Image(Model):
    """Where the service's image comes from: a registry path and a version tag or digest (never `latest`)."""

    repository: str
    tag: str | None = None  # required unless digest is set (config/ads.py problems)
    digest: str | None = None

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str) -> str:
        if not _REPOSITORY.match(value):
            raise ValueError("must be a lower-case registry path without tag, e.g. registry.ads.example.com/ads/bidding")
        return value

    @field_validator("tag")
    @classmethod
    def _tag(cls, value: str | None) -> str | None:
        if value is not None and not _TAG.match(value):
            raise ValueError("must be an image tag (1-128 characters of A-Z, a-z, 0-9, '_', '.', '-')")
        return value

    @field_validator("digest")
    @classmethod
    def _digest(cls, value: str | None) -> str | None:
        if value is not None and not _DIGEST.match(value):
            raise ValueError("must be a digest sha256:<64 hex characters>")
        return value

    @property
    def reference(self) -> str:
        """repository:tag, or repository@digest (a digest pins the exact image; it wins over the tag)."""
        return f"{self.repository}@{self.digest}" if self.digest else f"{self.repository}:{self.tag}"


# A Kubernetes label value: the consumer group becomes the HPA's metric selector (redpanda_group=<group>).
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$")


class ConsumerLag(Model):
    """Scale on a Redpanda consumer group's lag: the HPA keeps (messages behind) / replicas near `averageValue`
    (components/platform/metrics_adapter.py serves Redpanda's redpanda_kafka_consumer_group_lag_sum)."""

    group: str  # the Kafka consumer group (group.id) the service consumes as
    average_value: Quantity  # messages behind per replica, e.g. "1000"

    @field_validator("group")
    @classmethod
    def _group(cls, value: str) -> str:
        if not _LABEL_VALUE.match(value):
            raise ValueError("must be a consumer group id usable as a Kubernetes label value (1-63 characters of "
                             "A-Z, a-z, 0-9, '-', '_', '.', starting and ending with a letter or digit): the "
                             "autoscaler selects the group's lag by it")
        return value


class Service(Model):
    enabled: bool = True
    # Set repository and tag together: a repository of your own never inherits the placeholder's tag.
    image: Image = Image(repository=PLACEHOLDER_REPOSITORY, tag=PLACEHOLDER_TAG)
    port: int = PLACEHOLDER_PORT  # the container's HTTP port (traffic, probes)
    metrics_port: int | None = None  # Prometheus /metrics on its own port; None: on `port`
    metrics_path: str = "/metrics"
    liveness_path: str = "/healthz"
    readiness_path: str = "/readyz"
    # Served on the shared gateway as https://<host>.<domain>; None: in-cluster only.
    host: str | None = None
    stores: list[str] = []  # dataPlane stores it uses (STORES): env wiring, credentials, egress
    callers: list[str] = []  # services whose pods may call it (its NetworkPolicy admits only these)
    # Services whose data it may read, read-only, in the stores both use: their Redpanda topics (<name>.*) and
    # consumer groups stay theirs, their ClickHouse database, their DragonflyDB keys (<name>:*). Without it a
    # service reaches only its own (config/consumers.py, docs/security.md).
    reads_from: list[str] = []
    hot_path: bool = False  # revenue path: the hot-path PriorityClass
    pool: str | None = None  # run only on this pool (node selector + its taints tolerated)
    min_replicas: int = 2
    max_replicas: int = 4
    target_cpu_utilization: int = 70  # HPA target, percent of the CPU request
    # Beyond CPU (served by the metrics adapter, which needs platform.monitoring): requests per second per pod
    # (from the http_requests_total counter of the image contract), and a Redpanda consumer group's lag.
    requests_per_second: Quantity | None = None
    consumer_lag: ConsumerLag | None = None
    cpu: Cpu = "250m"  # request (no CPU limit: throttling hurts latency more than a noisy neighbour)
    memory: Memory = "256Mi"  # request
    memory_limit: Memory = "512Mi"
    keyspace: str | None = None  # ScyllaDB keyspace (dataPlane.scylladb.keyspaces); None: the first one
    env: dict[str, str] = {}  # plain settings (never credentials: stores' credentials are wired from Secrets)
    run_as_user: int = 65532  # non-root UID (distroless "nonroot"); the image must run as any such UID
    # An io_uring runtime (Glommio): the containers run under the node's seccomp profile adplatform-io-uring
    # (containerd's denials, io_uring allowed: components/host/seccomp/README.md) instead of RuntimeDefault.
    # Strict: a quoted "false" must not turn it on.
    io_uring: StrictBool = False

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        return value if value is None else check_hostname_label(value)

    @field_validator("port", "metrics_port")
    @classmethod
    def _port(cls, value: int | None) -> int | None:
        if value is not None and not 1024 <= value <= 65535:
            raise ValueError("must be a port between 1024 and 65535 (the container runs without privileges)")
        return value

    @field_validator("metrics_path", "liveness_path", "readiness_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not _PATH.match(value):
            raise ValueError("must be an absolute URL path such as /healthz")
        return value

    @field_validator("min_replicas", "max_replicas")
    @classmethod
    def _replicas(cls, value: int) -> int:
        if not 1 <= value <= 200:
            raise ValueError("must be between 1 and 200")
        return value

    @field_validator("target_cpu_utilization")
    @classmethod
    def _utilization(cls, value: int) -> int:
        if not 10 <= value <= 100:
            raise ValueError("must be a percentage of the CPU request between 10 and 100")
        return value

    @field_validator("env")
    @classmethod
    def _env(cls, values: dict[str, str]) -> dict[str, str]:
        for name in values:
            if not _ENV_NAME.match(name):
                raise ValueError(f"{name!r} must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*)")
        return values

    @field_validator("run_as_user")
    @classmethod
    def _uid(cls, value: int) -> int:
        if not 1 <= value <= 2 ** 31 - 1:
            raise ValueError("must be a non-root UID (1 or more)")
        return value

    @property
    def public(self) -> bool:
        return self.host is not None

    @property
    def scrape_port(self) -> int:
        return self.metrics_port or self.port


class Registry(Model):
    """The private registry the services' images are pulled from, e.g. GitLab's (a deploy token with the
    read_registry scope: its username here, the token as the secret adServicesRegistryToken)."""

    host: str  # registry.ads.example.com
    username: str

    @field_validator("host")
    @classmethod
    def _registry_host(cls, value: str) -> str:
        if not _REGISTRY_HOST.match(value):
            raise ValueError("must be a registry host name (optionally :port), e.g. registry.ads.example.com")
        return value

    @field_validator("username")
    @classmethod
    def _username(cls, value: str) -> str:
        # The pull secret's auth is base64("<username>:<token>"): a ':' would split it in the wrong place.
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,254}", value):
            raise ValueError("must be a registry user name such as gitlab+deploy-token-12 (A-Z, a-z, 0-9, '.', '_', "
                             "'@', '+', '-'; no ':' or spaces)")
        return value


REGISTRY_TOKEN = "adServicesRegistryToken"


class AdServices(Model):
    namespace: str = "ads"  # a team namespace (clusterServices.teams): quota, limits, gateway policy
    registry: Registry | None = None  # None: public images only (the placeholder)
    services: dict[str, Service] = {}

    _v_namespace = field_validator("namespace")(check_hostname_label)

    @field_validator("services")
    @classmethod
    def _names(cls, values: dict[str, Service]) -> dict[str, Service]:
        for name in values:
            if not _SERVICE_NAME.match(name):
                raise ValueError(f"service name {name!r} must be 1-40 characters of a-z, 0-9 and '-', starting "
                                 "with a letter (it names the Deployment, Service and DNS name)")
        return values

    @property
    def enabled(self) -> dict[str, Service]:
        return {name: svc for name, svc in self.services.items() if svc.enabled}


# --- cross-field rules ------------------------------------------------------------------------------------

def problems(cfg: "StackConfig", secrets: set[str]) -> list[Problem]:
    """Cross-field rules of the ad services (config/rules.py calls this)."""
    ads = cfg.ad_services
    found = _namespace(cfg)
    strict = PROFILES[cfg.profile].strict if cfg.profile in PROFILES else True
    for name, svc in ads.enabled.items():
        key = f"adServices.services.{name}"
        found += _image(key, svc)
        found += _stores(cfg, key, svc)
        found += _callers(ads, key, svc)
        found += _reads_from(ads, key, name, svc)
        found += _replicas(key, svc, strict, cfg.profile)
        found += _host(cfg, key, svc)
        found += _pool(cfg, key, svc)
        found += _env(key, svc)
        found += _scaling(cfg, key, name, svc)
        if svc.metrics_port == svc.port:
            found.append(problem(f"{key}.metricsPort", "must differ from port, or be left out when /metrics is "
                                 "served on the HTTP port", svc.metrics_port))
    hosts = Counter(svc.host for svc in ads.enabled.values() if svc.host)
    found += [problem("adServices.services", f"must not serve host {host!r} from more than one service "
                      f"({', '.join(n for n, s in ads.enabled.items() if s.host == host)})", host)
              for host, n in hosts.items() if n > 1]
    found += _quota(cfg)
    if ads.registry is not None and REGISTRY_TOKEN not in secrets:
        found.append(problem(REGISTRY_TOKEN, "must be set with --secret when adServices.registry is set: the "
                             f"registry password or deploy token (pulumi config set --secret adplatform:{REGISTRY_TOKEN} "
                             "...)"))
    if ads.registry is None and REGISTRY_TOKEN in secrets:
        found.append(problem("adServices.registry", f"must be set (host, username) when {REGISTRY_TOKEN} is: the "
                             "token alone names no registry"))
    return found


# Stores where a service's data is its own and `readsFrom` grants another service read access to it.
READABLE_STORES = ("redpanda", "clickhouse", "dragonfly")


def _reads_from(ads: AdServices, key: str, name: str, svc: Service) -> list[Problem]:
    found = []
    for other in svc.reads_from:
        peer = ads.enabled.get(other)
        shared = [s for s in READABLE_STORES if s in svc.stores and peer is not None and s in peer.stores]
        if other == name or peer is None or not shared:
            found.append(problem(f"{key}.readsFrom", "must name other enabled services that use one of its stores "
                                 f"among {', '.join(READABLE_STORES)} (their data is what it may read)", other))
    found += [problem(f"{key}.readsFrom", "must not repeat a service", s)
              for s, n in Counter(svc.reads_from).items() if n > 1]
    return found


def _namespace(cfg: "StackConfig") -> list[Problem]:
    teams = [t.name for t in cfg.cluster_services.teams]
    namespace = cfg.ad_services.namespace
    if namespace not in teams:
        return [problem("adServices.namespace", "must be a team namespace (clusterServices.teams: "
                        f"{', '.join(teams) or 'none'}): those carry the quota, the container defaults and the "
                        "gateway's network policy", namespace)]
    return []


def _image(key: str, svc: Service) -> list[Problem]:
    if svc.image.digest is None and svc.image.tag is None:
        return [problem(f"{key}.image.tag", "must be set (or image.digest): an image without a tag runs "
                        "whatever 'latest' is at pull time")]
    if svc.image.digest is None and svc.image.tag == "latest":
        return [problem(f"{key}.image.tag", "must name a version, not 'latest' (a rollback needs the exact "
                        "image; CI records each deployed tag)", "latest")]
    return []


def _stores(cfg: "StackConfig", key: str, svc: Service) -> list[Problem]:
    found = []
    for store in svc.stores:
        if store in NOT_FOR_SERVICES:
            found.append(problem(f"{key}.stores", f"must not list {store!r}: {NOT_FOR_SERVICES[store]}", store))
        elif store not in STORES:
            found.append(problem(f"{key}.stores", f"must list only {', '.join(STORES)}", store))
        elif not getattr(cfg.data_plane, store).enabled:
            found.append(problem(f"{key}.stores", f"names {store!r}, but dataPlane.{store}.enabled is false; "
                                 "enable the store or remove it from the service", store))
    repeated = [s for s, n in Counter(svc.stores).items() if n > 1]
    found += [problem(f"{key}.stores", "must not repeat a store", s) for s in repeated]
    # The service's name is its user in each store (config/consumers.py): a platform component of that name
    # using the same store would take the same user.
    name = key.rsplit(".", 1)[-1]
    taken = [s for s in svc.stores if name in NEEDS and s in NEEDS[name].stores]
    found += [problem(key, f"names a platform component that also uses dataPlane.{s}; each consumer is a user of "
                      "its own there, so rename the service", name) for s in taken]
    keyspaces = cfg.data_plane.scylladb.keyspaces
    if svc.keyspace is not None:
        if "scylladb" not in svc.stores:
            found.append(problem(f"{key}.keyspace", "is only read when stores lists 'scylladb'", svc.keyspace))
        elif svc.keyspace not in keyspaces:
            found.append(problem(f"{key}.keyspace", "must be one of dataPlane.scylladb.keyspaces "
                                 f"({', '.join(keyspaces) or 'none'})", svc.keyspace))
    elif "scylladb" in svc.stores and not keyspaces:
        found.append(problem("dataPlane.scylladb.keyspaces", f"must list a keyspace for {key} (it uses ScyllaDB)",
                             keyspaces))
    return found


def _callers(ads: AdServices, key: str, svc: Service) -> list[Problem]:
    known = sorted(ads.services)
    return [problem(f"{key}.callers", f"must name services of adServices.services ({', '.join(known)})", caller)
            for caller in svc.callers if caller not in ads.services]


def _replicas(key: str, svc: Service, strict: bool, profile: str) -> list[Problem]:
    found = []
    if svc.max_replicas < svc.min_replicas:
        found.append(problem(f"{key}.maxReplicas", f"must be at least minReplicas ({svc.min_replicas})",
                             svc.max_replicas))
    if strict and svc.min_replicas < 2:
        found.append(problem(f"{key}.minReplicas", f"must be at least 2 in the {profile} profile (a node's loss "
                             "or drain must never take the service down)", svc.min_replicas))
    if memory_mib(svc.memory_limit) < memory_mib(svc.memory):
        found.append(problem(f"{key}.memoryLimit", f"must be at least the memory request ({svc.memory})",
                             svc.memory_limit))
    return found


def _host(cfg: "StackConfig", key: str, svc: Service) -> list[Problem]:
    if svc.host is None:
        return []
    found = []
    platform_hosts = {h: name for name, needs in NEEDS.items() for h in needs.hostnames}
    if svc.host in platform_hosts:
        found.append(problem(f"{key}.host", f"is the platform's {platform_hosts[svc.host]} host; choose another "
                             "label", svc.host))
    routed = cfg.cluster_services.gateway.hostnames
    if cfg.cluster_services.tls.dns01 is None and svc.host not in routed:
        found.append(problem("clusterServices.gateway.hostnames", f"must include {svc.host!r} for {key}.host (each "
                             "host gets its own HTTPS listener and certificate without tls.dns01)", sorted(routed)))
    return found


def _pool(cfg: "StackConfig", key: str, svc: Service) -> list[Problem]:
    if svc.pool is None:
        return []
    pools = {p.name: p for p in cfg.cluster.node_pools}  # a min-0 autoscaled pool: the autoscaler adds its nodes
    pool = pools.get(svc.pool)
    if pool is None:
        return [problem(f"{key}.pool", f"must name a pool of cluster.pools with nodes or autoscaling "
                        f"({', '.join(pools) or 'none'})", svc.pool)]
    if ROLES[pool.role].dedicated:
        return [problem(f"{key}.pool", f"must not be a {pool.role} pool: those nodes are tuned and reserved for "
                        "their database; add a pool with role 'general' (and a taint of its own) for the service",
                        svc.pool)]
    return []


def _scaling(cfg: "StackConfig", key: str, name: str, svc: Service) -> list[Problem]:
    """Custom metrics come from the metrics adapter, which the platform installs with monitoring, and the lag
    from Redpanda: without them the HPA would find no metric and never scale down (Kubernetes scales on the
    largest proposal and skips scale-down while a metric is missing)."""
    found = []
    monitored = cfg.layers.platform and cfg.platform.monitoring.enabled
    for field, value in (("requestsPerSecond", svc.requests_per_second), ("consumerLag", svc.consumer_lag)):
        if value is not None and not monitored:
            found.append(problem(f"{key}.{field}", "needs platform.monitoring (and layers.platform) on: the metrics "
                                 "adapter that serves it to the autoscaler is installed with Prometheus; remove "
                                 f"{field} or switch monitoring on", value if isinstance(value, str) else value.group))
    if svc.consumer_lag is not None and "redpanda" not in svc.stores:
        found.append(problem(f"{key}.consumerLag", "needs 'redpanda' in the service's stores: the lag is that of a "
                             "Redpanda consumer group the service reads", svc.consumer_lag.group))
    # The service's Redpanda user may join only groups named `<service>.<anything>` (components/data/redpanda.py
    # consumer_acls): another group would be refused to it, or be another service's lag.
    own = redpanda_prefix(name)
    if svc.consumer_lag is not None and not svc.consumer_lag.group.startswith(own):
        found.append(problem(f"{key}.consumerLag.group", f"must start with '{own}' (the service's own consumer "
                             f"groups, the only ones its Redpanda user may join), e.g. {own}events",
                             svc.consumer_lag.group))
    return found


def _env(key: str, svc: Service) -> list[Problem]:
    found = []
    for name in svc.env:
        upper = name.upper()
        if upper.startswith(WIRED_ENV_PREFIXES):
            found.append(problem(f"{key}.env.{name}", f"must not start with {', '.join(WIRED_ENV_PREFIXES)}: the "
                                 "platform sets those from the data plane and the telemetry settings", name))
        elif upper == "CREDENTIALS" or upper.endswith(tuple(f"_{w}" for w in _CREDENTIAL_WORDS)) or \
                upper in _CREDENTIAL_WORDS:
            found.append(problem(f"{key}.env.{name}", "must not hold a credential in plain config; keep it in a "
                                 "Secret (the stores' credentials are wired from theirs)", name))
    return found


# --- the team quota ---------------------------------------------------------------------------------------

def peak_pods(svc: Service) -> int:
    """Pods at maxReplicas during a rollout (the Deployment surges 25%, rounded up)."""
    return svc.max_replicas + math.ceil(svc.max_replicas * SURGE)


def _quota(cfg: "StackConfig") -> list[Problem]:
    ads = cfg.ad_services
    team = next((t for t in cfg.cluster_services.teams if t.name == ads.namespace), None)
    if team is None or not ads.enabled:
        return []
    services = ads.enabled.values()
    mesh = cfg.cluster_services.mesh
    meshed = mesh.linkerd and ads.namespace in mesh.namespaces
    proxy = (cpu_millis(MESH_PROXY_CPU), memory_mib(MESH_PROXY_MEMORY), memory_mib(MESH_PROXY_MEMORY_LIMIT)) \
        if meshed else (0, 0, 0)
    need = {
        "requestsCpu": (sum(peak_pods(s) * (cpu_millis(s.cpu) + proxy[0]) for s in services),
                        cpu_millis(team.requests_cpu), "m"),
        "requestsMemory": (sum(peak_pods(s) * (memory_mib(s.memory) + proxy[1]) for s in services),
                           memory_mib(team.requests_memory), "Mi"),
        "limitsMemory": (sum(peak_pods(s) * (memory_mib(s.memory_limit) + proxy[2]) for s in services),
                         memory_mib(team.limits_memory), "Mi"),
    }
    with_proxy = " and Linkerd's proxy in each pod (clusterServices.mesh)" if meshed else ""
    return [problem(f"clusterServices.teams[{team.name}].{field}", f"must admit the ad services at maxReplicas "
                    f"plus a rollout's surge{with_proxy}: {total}{unit} (adServices.services: maxReplicas x "
                    "cpu/memory/memoryLimit); raise the quota or lower maxReplicas", f"{limit}{unit}")
            for field, (total, limit, unit) in need.items() if total > limit]


__all__ = ["AdServices", "ConsumerLag", "Image", "REGISTRY_TOKEN", "Registry", "NOT_FOR_SERVICES", "PLACEHOLDER_PORT",
           "PLACEHOLDER_REPOSITORY",
           "PLACEHOLDER_TAG", "STORES", "Service", "peak_pods", "problems"]
