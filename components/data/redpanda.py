"""Redpanda: the vendor's operator and one `Redpanda` cluster (cluster.redpanda.com/v1alpha2).

The operator (chart `operator`, components/charts.py) renders the cluster from the redpanda chart it
embeds: `spec.clusterSpec` carries that chart's values (redpanda-data/redpanda-operator tag
operator/v26.2.2, operator/api/redpanda/v1alpha2/redpanda_clusterspec_types.go). What this module sets:

- brokers: one per node of the Redpanda pool, at most 3 (staging's single node: 1), required
  anti-affinity (the host tuners must never run twice on one node), exactly the pool's taints;
- resources in the chart's explicit mode (requests == limits, whole CPUs): Redpanda starts with
  `--smp` = the CPUs and `--memory` = 90% of the memory (stated as flags, so they are visible here);
- production mode: `developer_mode: false`, rpk's tuners at broker start on the host
  (`tuning.apply_host_tuners`), except the THP and swappiness tuners: the host tuning owns those
  (components/host/profiles.py keeps THP at madvise and vm.swappiness=1);
- TLS on every listener from the data plane's own CA (cert-manager: a self-signed root, the CA Certificate and
  the ClusterIssuer `redpanda-ca`, which signs the brokers' certificate and hands consumers the CA), SASL/SCRAM
  on the Kafka API (basic auth on the schema registry and HTTP proxy): a superuser (the Secret of
  `auth.sasl.secretRef`), the operator's bootstrap user, and one user per consumer with ACLs on its own
  topics and groups (a `User` each, install_users);
- Admin API authentication (`admin_api_require_auth`): every caller logs in as a superuser (see above
  SASL_MECHANISM);
- default topic replication = brokers (3 in production), retention from `dataPlane.redpanda`;
- metrics: the chart's ServiceMonitor on the admin API (/public_metrics, TLS verified against the CA);
- Redpanda Console (when `dataPlane.redpanda.console`): our own `Console` resource (cluster.redpanda.com/
  v1alpha2, operator/v26.2.2 operator/api/redpanda/v1alpha2/console_types.go) referring to the cluster, which the
  operator connects with the bootstrap user over TLS. `clusterSpec.console` is deprecated at this operator (it
  would make a Console object of its own, which the Redpanda resource stops owning as it migrates), so the
  cluster's is switched off. Not on the gateway: the community Console has no login (README: port-forward).

Backups: Redpanda replicates every partition 3-way across brokers, which survives a broker, not the cluster;
tiered storage (the vendor's path to object storage) is an enterprise feature, so a scheduled export to the
backup bucket is (redpanda_backup.py, with what it cannot carry).
"""

from __future__ import annotations

from typing import Any, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components import charts
from components.data import redpanda_backup
from components.data.context import LAYER, DataContext, operator_affinity, pinned_resources, wait_for
from components.data.endpoints import Credentials, RedpandaEndpoint
from components.data.placement import Placement, Resources
from components.helm import release
from components.scheduling import ZONE_TOPOLOGY, pod_anti_affinity, zone_spread
from components.services import certs
from components.services.namespaces import (RESTRICTED_CONTAINER_SECURITY, RESTRICTED_POD_SECURITY, Namespaces,
                                           NamespaceSpec, Peer)
from config.consumers import Consumer, redpanda_prefix as prefix
from config.data import REDPANDA_MEMORY_FRACTION
from config.quantity import whole_cores

NAMESPACE = "redpanda"
OPERATOR_NAMESPACE = charts.REDPANDA_OPERATOR.namespace
OPERATOR_RELEASE = "redpanda-operator"
# The Redpanda resource's name: the operator's release name for the chart, hence its fullname, the
# headless Service, the pod names (redpanda-0, ...) and the Console's name.
CLUSTER = "redpanda"
CLUSTER_DOMAIN = "cluster.local"
KAFKA_PORT = 9093  # the internal Kafka listener (chart default)
SCHEMA_REGISTRY_PORT = 8081
HTTP_PROXY_PORT = 8082
ADMIN_PORT = 9644  # admin API, also /public_metrics
RPC_PORT = 33145  # broker to broker, inside the namespace only
CLIENT_PORTS = (KAFKA_PORT, SCHEMA_REGISTRY_PORT, HTTP_PROXY_PORT)
# Who calls the Admin API once it asks a login (admin_api_require_auth; checked at operator/v26.2.2), all as the
# operator's bootstrap user `kubernetes-controller` (Secret BOOTSTRAP_SECRET), which the operator's config sync adds
# to `superusers`: the operator itself (charts/redpanda/client AdminClient), the broker pods' sidecar and
# redpanda-configurator (the chart's rpkEnvVars: RPK_USER/RPK_PASS), and the Console (the chart's
# AsStaticConfigSource gives it AdminAuth). People use `admin` (SUPERUSERS_SECRET). Redpanda grants the Admin API to
# superusers (every route a job could use, reads of users and cluster config included; the open ones are status
# and metrics), and a superuser passes every Kafka ACL too, so no job of ours holds one: the backup export reads
# topics and ACLs over Kafka only (redpanda_backup.py), and Prometheus scrapes /public_metrics, which asks no login.
SASL_MECHANISM = "SCRAM-SHA-512"
SUPERUSER = "admin"
SUPERUSERS_SECRET = "redpanda-superusers"  # auth.sasl.secretRef: every key is a users file, every user a superuser
BOOTSTRAP_SECRET = "redpanda-bootstrap-user"  # the operator's own superuser (kubernetes-controller)
TLS_CERT = "default"  # tls.certs key; the chart names the server certificate's Secret <cluster>-<cert>-cert
CA_SECRET = f"{CLUSTER}-{TLS_CERT}-cert"  # the brokers' certificate; holds ca.crt (cert-manager's CA issuer writes it)
# The listeners' CA belongs to the data plane, not to the chart's bootstrap (which keeps its CA inside this
# namespace, where no consumer should read): the ClusterIssuer CA_ISSUER signs the brokers' certificate
# (tls.certs.default.issuerRef), and a consumer in another namespace gets the CA certificate by asking the same
# issuer for a client certificate of its own: cert-manager's CA issuer writes ca.crt into every Secret it issues.
# A ClusterIssuer reads its CA Secret from cert-manager's namespace (the chart's clusterResourceNamespace default).
CA_ISSUER = "redpanda-ca"
CA_ROOT_ISSUER = "redpanda-ca-root"  # self-signed Issuer: signs the CA certificate, nothing else
CA_CERT_SECRET = "redpanda-ca"  # in cert-manager's namespace: the CA's certificate and private key
BROKER_LABELS = {"app.kubernetes.io/name": "redpanda", "app.kubernetes.io/instance": CLUSTER,
                 "app.kubernetes.io/component": "redpanda-statefulset"}  # charts/redpanda/statefulset.go
OPERATOR_LABELS = {"app.kubernetes.io/name": "operator", "app.kubernetes.io/instance": OPERATOR_RELEASE}
# Helpers in the broker pods. Guaranteed QoS (the static CPU manager pins the broker's cores) needs
# requests == limits on every container, init containers included (bootstrap-yaml-envsubst sets its own).
SIDECAR_RESOURCES = Resources("200m", "256Mi")
INIT_RESOURCES = Resources("200m", "256Mi")
OPERATOR_RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
CONSOLE_RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}}
# Monitoring scrapes every 30 s (the chart's default interval).
SCRAPE_INTERVAL = "30s"
READY_TIMEOUT_SECONDS = 1800  # three brokers, each tuning its host before it starts


def namespaces(ctx: DataContext) -> list[NamespaceSpec]:
    operator_peer = Peer(OPERATOR_NAMESPACE, (ADMIN_PORT, *CLIENT_PORTS), pod_labels=OPERATOR_LABELS)
    return [
        NamespaceSpec(
            name=NAMESPACE, pss="privileged", layer=LAYER,
            why="the brokers' tuning init container runs privileged with host paths mounted: rpk's tuners (disk "
                "IRQs and scheduler, network queues, clocksource, aio) apply to the host (tuning.apply_host_tuners)",
            ingress_from=(*ctx.clients(CLIENT_PORTS), ctx.monitoring((ADMIN_PORT,)), operator_peer),
            # The export job's uploads (redpanda_backup.py)
            egress_to=ctx.object_storage_peer(), egress_world=ctx.backup_egress_world()),
        NamespaceSpec(
            name=OPERATOR_NAMESPACE, pss="baseline", layer=LAYER,
            why="the chart's CRD-install Job declares no seccomp profile or non-root user (operator/chart/"
                "pre_install_crd_job.go) and cannot be given one; the operator itself runs non-root",
            egress_to=(Peer(NAMESPACE, (ADMIN_PORT, *CLIENT_PORTS), pod_labels=BROKER_LABELS),)),
    ]


# --- sizing ---------------------------------------------------------------------------------------------

def start_flags(res: Resources) -> list[str]:
    """What the chart derives in explicit mode (charts/redpanda/values.go RedpandaResources: --smp is the
    whole CPUs, --memory 90% of the container, --reserve-memory 0), stated so a reader sees the numbers."""
    memory = int(res.memory_mib * REDPANDA_MEMORY_FRACTION)
    return [f"--smp={whole_cores(res.cpu)}", f"--memory={memory}M", "--reserve-memory=0M"]


# --- the cluster ----------------------------------------------------------------------------------------

def listener_tls() -> dict[str, Any]:
    return {"enabled": True, "cert": TLS_CERT, "requireClientAuth": False}


def listeners() -> dict[str, Any]:
    """TLS everywhere; SASL on Kafka, HTTP basic auth (the same SCRAM users) on the registry and proxy."""
    return {
        "admin": {"port": ADMIN_PORT, "tls": listener_tls()},
        "kafka": {"port": KAFKA_PORT, "authenticationMethod": "sasl", "tls": listener_tls()},
        "schemaRegistry": {"enabled": True, "port": SCHEMA_REGISTRY_PORT, "authenticationMethod": "http_basic",
                           "tls": listener_tls()},
        "http": {"enabled": True, "port": HTTP_PROXY_PORT, "authenticationMethod": "http_basic",
                 "tls": listener_tls()},
        "rpc": {"port": RPC_PORT, "tls": listener_tls()},
    }


def tuning() -> tuple[dict[str, Any], dict[str, Any]]:
    """(tuning, config.rpk). `apply_host_tuners` (chart >= 26.2.1) runs `rpk redpanda tune all` on the host
    at broker start and turns on the disk, network, fstrim and CPU tuners; rpk's flags below keep THP and
    swappiness to the host tuning, which sets them for every node (components/host/profiles.py)."""
    return ({"tune_aio_events": True, "apply_host_tuners": True, "tune_clocksource": True,
             "tune_ballast_file": True},
            {"tune_transparent_hugepages": False, "tune_swappiness": False})


def cluster_config(brokers: int, retention_hours: int) -> dict[str, Any]:
    return {
        "default_topic_replications": brokers,
        # Consumer offsets, schemas, transactions: as many copies as the topics they serve.
        "internal_topic_replication_factor": brokers,
        "log_retention_ms": retention_hours * 3600 * 1000,
        # Consumer group lag on /public_metrics (redpanda_kafka_consumer_group_lag_sum/_max, label redpanda_group):
        # off unless `consumer_lag` is listed (since v25.1; the default lists group and partition). The ad services'
        # autoscalers read it through the metrics adapter (components/platform/metrics_adapter.py).
        "enable_consumer_group_metrics": ["group", "partition", "consumer_lag"],
        # The Admin API (users, cluster config, decommissioning) asks HTTP basic auth of a superuser; /public_metrics,
        # /metrics and /v1/status/ready stay open (redpanda src/v/redpanda/admin: the prometheus routes carry no auth,
        # status/ready is `publik`). The chart's admin listener has no authentication method of its own
        # (charts/redpanda values.go: ListenerConfig[NoAuth]): this property is the switch, and the chart reads it here
        # (render_state.go) to give the Console the bootstrap user. Who calls the Admin API: above SASL_MECHANISM.
        "admin_api_require_auth": True,
    }


def rack_awareness(where: Placement) -> dict[str, Any]:
    """Where the pool spans locations, each broker's rack is its node's zone, so a partition's replicas go to
    different locations. The chart's configurator reads the key from the Node object (a label matches too:
    it greps the Node for the key, charts/redpanda ConfiguratorRackAwarenessSh) with the ClusterRole the chart
    adds when rbac (on by default) and rackAwareness are on. One location: every broker is its own rack."""
    if not where.spans_locations:
        return {"enabled": False}
    return {"enabled": True, "nodeAnnotation": ZONE_TOPOLOGY}


def broker_pod(ctx: DataContext) -> dict[str, Any]:
    """statefulset.podTemplate.spec: merged into the chart's pod by container name (charts/redpanda/helpers.go)."""
    where = ctx.placements["redpanda"]
    return {
        "nodeSelector": where.node_selector,
        "tolerations": where.tolerations,
        # Required even on one node: concurrent host tuners would race on the same kernel settings.
        "affinity": {"podAntiAffinity": pod_anti_affinity(BROKER_LABELS, required=True)},
        "containers": [{"name": "sidecar", "resources": SIDECAR_RESOURCES.spec()}],
        "initContainers": [{"name": "tuning", "resources": INIT_RESOURCES.spec()},
                           {"name": "redpanda-configurator", "resources": INIT_RESOURCES.spec()}],
    }


def console_spec() -> dict[str, Any]:
    """The Console resource's spec: the console chart's values (ConsoleValues) and the cluster it connects to."""
    return {
        "cluster": {"clusterRef": {"name": CLUSTER}},
        "replicaCount": 1,  # a UI for operators; the brokers do not depend on it
        "image": {"registry": "docker.redpanda.com", "repository": "redpandadata/console",
                  "tag": charts.REDPANDA_CONSOLE_VERSION},
        "resources": CONSOLE_RESOURCES,
        "podSecurityContext": {**RESTRICTED_POD_SECURITY, "runAsUser": 99, "fsGroup": 99},
        "securityContext": RESTRICTED_CONTAINER_SECURITY,
    }


def cluster_spec(ctx: DataContext, res: Resources) -> dict[str, Any]:
    settings = ctx.settings.redpanda
    brokers = ctx.placements["redpanda"].replicas(3)
    tune, rpk = tuning()
    return {
        "image": {"repository": "docker.redpanda.com/redpandadata/redpanda", "tag": charts.REDPANDA_VERSION},
        "statefulset": {
            "replicas": brokers,
            "budget": {"maxUnavailable": 1},  # the chart's PodDisruptionBudget: a 3-broker quorum keeps 2
            # Brokers even over zones, a lost location then keeps a majority of each partition's replicas. The chart
            # sets each constraint's selector to the brokers' labels (charts/redpanda statefulSetTopologySpreadConstraints).
            "topologySpreadConstraints": [{key: c[key] for key in ("maxSkew", "topologyKey", "whenUnsatisfiable")}
                                          for c in zone_spread(BROKER_LABELS, ctx.placements["redpanda"].spans_locations)],
            # whenScaled Delete: the operator shrinks the StatefulSet only after decommissioning the last broker
            # (redpanda_controller.go scaleDown), so that broker's volume holds nothing the cluster needs; kept, it
            # would be handed to the next broker of that ordinal on a scale-up, which then crashloops on the
            # decommissioned identity (K8S-843; the operator's --wipe-stale-disk-after recovery is off by default).
            # whenDeleted Retain: deleting the cluster keeps every broker's data (charts/redpanda values.yaml).
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Delete"},
            "additionalRedpandaCmdFlags": start_flags(res),
            "sideCars": {"image": {"repository": "docker.redpanda.com/redpandadata/redpanda-operator",
                                   "tag": charts.REDPANDA_OPERATOR_VERSION}},
            "initContainerImage": {"repository": "busybox", "tag": charts.BUSYBOX_VERSION},
            "podTemplate": {"spec": broker_pod(ctx)},
        },
        "resources": res.spec(),  # explicit mode: requests and limits as given
        # XFS where the provider offers it: Redpanda's production checklist asks for XFS data directories.
        "storage": {"persistentVolume": {"enabled": True, "size": settings.storage_size,
                                         "storageClass": ctx.xfs_storage_class or ctx.storage_class}},
        "tuning": tune,
        "config": {"node": {"developer_mode": False}, "cluster": cluster_config(brokers, settings.retention_hours),
                   "rpk": rpk},
        "auth": {"sasl": {
            "enabled": True, "mechanism": SASL_MECHANISM, "secretRef": SUPERUSERS_SECRET, "users": [],
            "bootstrapUser": {"mechanism": SASL_MECHANISM,
                              "secretKeyRef": {"name": BOOTSTRAP_SECRET, "key": "password"}}}},
        # The brokers' certificate from the data plane's CA (ca_manifests); with an issuerRef the chart lists the
        # internal DNS names (headless service, brokers) only when told to (charts/redpanda/certs.go ClientCerts).
        "tls": {"enabled": True, "certs": {TLS_CERT: {
            "caEnabled": True, "issuerRef": {"name": CA_ISSUER, "kind": "ClusterIssuer"},
            "applyInternalDNSNames": True}}},
        "external": {"enabled": False},  # clients are in the cluster: no NodePort or LoadBalancer
        "listeners": listeners(),
        "rackAwareness": rack_awareness(ctx.placements["redpanda"]),
        "monitoring": {"enabled": True, "scrapeInterval": SCRAPE_INTERVAL, "tlsConfig": {
            "ca": {"secret": {"name": CA_SECRET, "key": "ca.crt"}},
            "serverName": f"{CLUSTER}.{NAMESPACE}.svc.{CLUSTER_DOMAIN}"}},
        # No phoning home: the namespace has no route to the internet anyway.
        "logging": {"logLevel": "info", "usageStats": {"enabled": False}},
        # Deprecated (the Console resource replaces it); the redpanda chart's default is on, so it is opted out of.
        "console": {"enabled": False},
    }


# --- the listeners' CA ----------------------------------------------------------------------------------

def ca_manifests() -> list[tuple[str, str, str | None, dict[str, Any]]]:
    """The root Issuer, the CA Certificate and the ClusterIssuer that signs the brokers' and clients' certificates."""
    return certs.ca_manifests(CA_ROOT_ISSUER, CA_CERT_SECRET, CA_ISSUER, f"{CLUSTER}.{NAMESPACE} CA")


def _ca(ctx: DataContext, after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    created: list[pulumi.Resource] = []
    for kind, name, namespace, spec in ca_manifests():
        created.append(ctx.custom_resource(
            f"redpanda-ca-{kind.lower()}", "cert-manager.io/v1", kind, name, namespace, spec,
            ctx.labels("redpanda", "ca"), [*after, *created], annotations=wait_for("condition=Ready", 300)))
    return created


# --- the operator ---------------------------------------------------------------------------------------

def operator_values(ctx: DataContext) -> dict[str, Any]:
    values: dict[str, Any] = {
        "crds": {"enabled": True},  # installed by the chart's pre-install Job, before the operator starts
        "replicaCount": ctx.operator_replicas(),  # leader election (--leader-elect)
        "image": {"repository": "docker.redpanda.com/redpandadata/redpanda-operator",
                  "tag": charts.REDPANDA_OPERATOR_VERSION, "pullPolicy": "IfNotPresent"},
        "resources": OPERATOR_RESOURCES,
        "podTemplate": {"spec": {
            "securityContext": {**RESTRICTED_POD_SECURITY, "runAsUser": 65532},
            "containers": [{"name": "manager", "resources": OPERATOR_RESOURCES,
                            "securityContext": RESTRICTED_CONTAINER_SECURITY}]}},
        "telemetry": {"enabled": False},
        "affinity": operator_affinity(OPERATOR_LABELS),
    }
    return values


# --- users ----------------------------------------------------------------------------------------------

def consumer_acls(c: Consumer) -> list[dict[str, Any]]:
    """A consumer produces and consumes its own topics (prefix), commits offsets of its own groups, and reads
    the topics of the services it names in `readsFrom`; no ACL, cluster or other topics' administration
    (not even cluster Describe, which lists every ACL)."""
    def rule(kind: str, operations: list[str], name: str, pattern: str = "prefixed") -> dict[str, Any]:
        resource = {"type": kind, "name": name} if kind == "cluster" else {"type": kind, "name": name,
                                                                           "patternType": pattern}
        return {"type": "allow", "resource": resource, "operations": operations}
    own = prefix(c.name)
    return [
        rule("topic", ["Read", "Write", "Create", "Describe", "DescribeConfigs"], own),
        rule("group", ["Read", "Describe"], own),
        rule("transactionalId", ["Write", "Describe"], own),
        *(rule("topic", ["Read", "Describe"], prefix(other)) for other in c.reads),
        rule("cluster", ["IdempotentWrite"], ""),  # the cluster has no name (CRD rule)
    ]


def user_secret(consumer: str) -> str:
    """The Secret in the redpanda namespace with a consumer's own SASL login (it copies it)."""
    return f"redpanda-user-{consumer}"


def _secrets(ctx: DataContext, after: Sequence[pulumi.Resource]) -> list[k8s.core.v1.Secret]:
    superuser = ctx.password("redpanda-superuser-password")
    bootstrap = ctx.password("redpanda-bootstrap-password")
    labels = ctx.labels("redpanda", "credentials")
    _, superusers = ctx.credentials(
        "redpanda-superusers", SUPERUSERS_SECRET, NAMESPACE,
        {"users.txt": pulumi.Output.concat(SUPERUSER, ":", superuser.result, ":", SASL_MECHANISM)}, after,
        labels=labels)
    _, boot = ctx.credentials("redpanda-bootstrap-user", BOOTSTRAP_SECRET, NAMESPACE,
                              {"password": bootstrap.result}, after, labels=labels)
    return [superusers, boot]


def sasl_user_spec(secret: str, acls: list[dict[str, Any]]) -> dict[str, Any]:
    """A SASL user (cluster.redpanda.com/v1alpha2 User, operator/v26.2.2) with its password from `secret` and `acls`."""
    return {
        "cluster": {"clusterRef": {"name": CLUSTER}},
        "authentication": {
            "type": SASL_MECHANISM,
            "password": {"valueFrom": {"secretKeyRef": {"name": secret, "key": "password"}}, "noGenerate": True},
            # A rotated password (a new pulumi_random result) reaches Redpanda without recreating the user.
            "syncCredentials": True,
        },
        "authorization": {"type": "simple", "acls": acls},
    }


def install_users(ctx: DataContext, cluster: pulumi.Resource, after: Sequence[pulumi.Resource]
                  ) -> tuple[dict[str, Credentials], list[pulumi.Resource]]:
    """One SASL user (a `User`: its name is the username) per consumer (config/consumers.py), each with its own
    generated password in its own Secret and ACLs on its own topics and groups only."""
    users: dict[str, Credentials] = {}
    created: list[pulumi.Resource] = []
    for c in ctx.consumers_of("redpanda"):
        users[c.name], objects = sasl_user(
            ctx, c.name, user_secret(c.name), consumer_acls(c), after, [cluster],
            resources=(f"redpanda-{c.name}-password", user_secret(c.name), f"redpanda-user-{c.name}-acls"),
            labels=(ctx.labels("redpanda", "credentials"), ctx.labels("redpanda", "user")))
        created += objects
    return users, created


def sasl_user(ctx: DataContext, username: str, secret: str, acls: list[dict[str, Any]],
              after: Sequence[pulumi.Resource], user_after: Sequence[pulumi.Resource], *,
              resources: tuple[str, str, str], labels: tuple[dict[str, str], dict[str, str]]
              ) -> tuple[Credentials, list[pulumi.Resource]]:
    """A SASL user: a generated password in Secret `secret` (this namespace) and a `User` (its name is the username)
    with `acls`. `resources`: the Pulumi names of the password, the Secret and the User; `labels`: the Secret's
    and the User's. The User waits for `user_after` and the Secret."""
    password_name, secret_name, user_name = resources
    password = ctx.password(password_name).result
    credentials, obj = ctx.credentials(secret_name, secret, NAMESPACE, {"username": username, "password": password},
                                       after, labels=labels[0])
    # The CRD refuses to change a User's cluster ("ClusterSource is immutable"): a change replaces the user.
    user = ctx.custom_resource(user_name, "cluster.redpanda.com/v1alpha2", "User", username, NAMESPACE,
                               sasl_user_spec(secret, acls), labels[1], [*user_after, obj], immutable=("cluster",))
    return credentials, [obj, user]


# --- install --------------------------------------------------------------------------------------------

def install(ctx: DataContext, spaces: Namespaces, after: Sequence[pulumi.Resource]) -> RedpandaEndpoint:
    res = pinned_resources(ctx, "redpanda")  # refused before anything is created
    secrets = _secrets(ctx, after)
    ca = _ca(ctx, after)
    operator = release(OPERATOR_RELEASE, charts.REDPANDA_OPERATOR, operator_values(ctx), ctx.opts(after),
                       create_namespace=False)
    # The chart ships no PodDisruptionBudget (operator/chart/*.go at operator/v26.2.2).
    operator_ready = [operator, *ctx.operator_budget(OPERATOR_RELEASE, OPERATOR_NAMESPACE, OPERATOR_LABELS, after)]
    # Consumers wait until the operator reports the cluster Ready.
    cluster = ctx.custom_resource(
        "redpanda-cluster", "cluster.redpanda.com/v1alpha2", "Redpanda", CLUSTER, NAMESPACE,
        {"clusterSpec": cluster_spec(ctx, res)}, ctx.labels("redpanda", "cluster"), [*after, operator, *secrets, *ca],
        protect=True, annotations=wait_for("condition=Ready", READY_TIMEOUT_SECONDS))
    users, user_objects = install_users(ctx, cluster, [*after, *secrets])
    console = [ctx.custom_resource("redpanda-console", "cluster.redpanda.com/v1alpha2", "Console", CLUSTER, NAMESPACE,
                                   console_spec(), ctx.labels("redpanda", "console"), [cluster])
               ] if ctx.settings.redpanda.console else []
    backups = redpanda_backup.install(ctx, [cluster, *ca])
    return endpoint(ctx, users, [*secrets, *ca, *operator_ready, cluster, *user_objects, *console, *backups])


def broker_hosts(ctx: DataContext) -> list[str]:
    """Every broker's own DNS name (the headless Service's pod records)."""
    service = f"{CLUSTER}.{NAMESPACE}.svc.{CLUSTER_DOMAIN}"
    return [f"{CLUSTER}-{i}.{service}" for i in range(ctx.placements["redpanda"].replicas(3))]


def endpoint(ctx: DataContext, users: dict[str, Credentials], ready: Sequence[pulumi.Resource]) -> RedpandaEndpoint:
    service = f"{CLUSTER}.{NAMESPACE}.svc.{CLUSTER_DOMAIN}"
    return RedpandaEndpoint(
        brokers=[f"{host}:{KAFKA_PORT}" for host in broker_hosts(ctx)],
        schema_registry=f"https://{service}:{SCHEMA_REGISTRY_PORT}",
        sasl_mechanism=SASL_MECHANISM,
        users=users,
        ca_secret=CA_SECRET,
        ca_issuer=CA_ISSUER,
        namespace=NAMESPACE,
        pod_labels=dict(BROKER_LABELS),
        ports=CLIENT_PORTS,
        ready=ready,
    )


__all__ = ["install", "namespaces"]
