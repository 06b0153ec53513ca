"""MLflow tracking server and model registry from the community-charts chart (components/charts.py MLFLOW),
served at https://mlflow.<domain> behind MLflow's own login.

What this module sets and why (values keys from charts/mlflow/values.yaml at tag mlflow-1.11.5):

- Backend store: the `mlflow` database of the shared CloudNativePG cluster. The chart's existing-secret options
  (`backendStore.existingDatabaseSecret`) take the owner's credentials from our copy of the database Secret
  (PGUSER/PGPASSWORD for libpq, `--backend-store-uri=postgresql://`), so no password is in the Helm values;
  PGSSLMODE=require keeps the connection encrypted. Schema migrations run in the chart's init container
  (`backendStore.databaseMigration`) before the server starts, so an MLflow upgrade needs no manual step.
- Artifacts: the object store's `ml-artifacts` bucket under `mlflow/`, through the server
  (`artifactRoot.proxiedArtifactStorage`: `--serve-artifacts --artifacts-destination=s3://...`): clients log and
  fetch artifacts over MLflow's HTTP API and never hold S3 keys. The server's keys come from our Secret
  `mlflow-s3` as environment (`extraSecretNamesForEnvFrom`: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, which boto3
  reads), the endpoint from MLFLOW_S3_ENDPOINT_URL.
- Single sign-on (platform.sso on): the route goes to oauth2-proxy (auth_proxy.py), which lets in members of
  MLflow's GitLab groups only; MLflow's own basic-auth stays behind it for the API (clients in the cluster call
  the Service directly and log in with MLflow users).
- Authentication: MLflow's basic-auth app (`auth.enabled`, `--app-name basic-auth`). Its admin `admin` gets a
  generated password (Secret `mlflow-admin`, `auth.existingAdminSecret`); other users are created by the admin
  (UI: /signup, or the REST API) and read every experiment unless granted more (`defaultPermission: READ`).
  Its users and permissions live in PostgreSQL too (`auth.postgres`), in the schema `mlflow_auth` of the same
  database: the auth store and the tracking store both keep their Alembic version in a table `alembic_version`,
  so they cannot share a schema, and a schema needs no second database. An init container creates the schema.
- HA: `ctx.replicas(2)` servers (one in staging). They are stateless with these stores: runs, models and users
  are in PostgreSQL, artifacts in S3, the Flask session key in one Secret the chart generates once. Our
  PodDisruptionBudget keeps one through drains (the chart ships none); replicas prefer different nodes.
- Gateway: an HTTPRoute on the shared gateway (TLS there). MLflow 3 refuses requests whose Host or Origin it
  does not know (DNS-rebinding and CORS protection), so the public host, the in-cluster Service names and pod
  addresses (probes, Prometheus) are listed (`serverAllowedHosts`, `corsAllowedOrigins`).
- Metrics: `--expose-prometheus` (multiprocess files on an emptyDir) and our ServiceMonitor. The basic-auth app
  guards /metrics like every route but /health and /static, so Prometheus logs in with the admin Secret.
- Security: restricted Pod Security (the chart's non-root, read-only contexts plus RuntimeDefault seccomp), no
  service account token (MLflow never calls the Kubernetes API); containers the chart gives no resources
  (its busybox init containers) get the namespace's LimitRange defaults.
- Network: PostgreSQL and the object store out; in, the gateway, Prometheus and platform namespaces (Kubeflow
  Pipelines steps, notebooks, Airflow tasks log to http://mlflow.mlflow.svc.cluster.local). HTTPS to the internet
  per pod (internet_egress): the server's to the provider's S3, oauth2-proxy's to GitLab; nothing else of the
  namespace leaves the cluster.
"""

from __future__ import annotations

from typing import Any, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components import charts
from components.data.endpoints import S3Location
from components.helm import release
from components.platform import auth_proxy
from components.platform.context import CLUSTER_DOMAIN, LAYER, SCRAPE_INTERVAL, Installed, PlatformContext
from components.scheduling import pod_anti_affinity
from components.services.namespaces import (RESTRICTED_CONTAINER_SECURITY, RESTRICTED_POD_SECURITY, Namespaces,
                                           NamespaceSpec, Peer, PodsEgress, platform_peer)

NAMESPACE = charts.MLFLOW.namespace
RELEASE = "mlflow"  # contains the chart name: the chart's objects are named `mlflow` (mlflow.fullname)
HOST_LABEL = "mlflow"
CONSUMER = "mlflow"  # dataPlane.postgres.databases key
SSO_CLIENT = "mlflow"  # its OAuth client (components/platform/sso.py), used by its oauth2-proxy
BUCKET = "mlflow-artifacts"  # object storage purpose (config/platform.py NEEDS): its own, apart from Kubeflow's
ARTIFACT_PREFIX = "mlflow"  # the layout of its earlier home in the shared ml-artifacts bucket, kept
SERVICE = RELEASE
SERVICE_PORT = 80  # chart service.port
SERVER_PORT = 5000  # chart service.containerPort
SERVICE_PORT_NAME = "http"  # chart service.name
DB_SECRET = "mlflow-postgres"
S3_SECRET = "mlflow-s3"
ADMIN_SECRET = "mlflow-admin"
ADMIN_USER = "admin"
AUTH_SCHEMA = "mlflow_auth"
METRICS_DIR = "/mlflow/metrics"
SELECTOR = {"app.kubernetes.io/name": "mlflow", "app.kubernetes.io/instance": RELEASE}  # mlflow.selectorLabels
# The oauth2-proxy pods (oauth2-proxy chart 10.7.0 oauth2-proxy.selectorLabels: the chart's name, the release's).
PROXY_SELECTOR = {"app.kubernetes.io/name": "oauth2-proxy",
                  "app.kubernetes.io/instance": auth_proxy.name(SSO_CLIENT)}
UID = 1001  # the chart's securityContext.runAsUser/fsGroup
IMAGE = "burakince/mlflow"
WORKERS = 2  # uvicorn workers per replica: each holds a SQLAlchemy pool against the shared PostgreSQL
RESOURCES = {"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}
INIT_RESOURCES = {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}
# Defaults for containers the chart renders without resources (dbchecker, ini-file-initializer).
LIMIT_RANGE = {"limits": [{"type": "Container", "defaultRequest": {"cpu": "10m", "memory": "32Mi"},
                           "default": {"memory": "128Mi"}}]}
# boto3 >= 1.36 sends flexible checksums that S3-compatible stores may reject (see components/data/postgres.py).
CHECKSUM_ENV = {"AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
                "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required"}
# Pod addresses (kubelet probes, Prometheus) as MLflow's own default allow-list writes them
# (mlflow/server/security_utils.py get_private_ip_patterns): setting MLFLOW_SERVER_ALLOWED_HOSTS replaces it.
PRIVATE_HOST_PATTERNS = ("10.*", "192.168.*", *(f"172.{i}.*" for i in range(16, 32)), "localhost", "localhost:*")


def client_egress(ctx: PlatformContext) -> tuple[Peer, ...]:
    """Egress to the MLflow server for a platform namespace whose workloads log runs there (notebooks, Airflow
    tasks, pipeline steps); nothing when MLflow is off. Its namespace admits the platform layer on this port."""
    return (Peer(NAMESPACE, (SERVER_PORT,), pod_labels=dict(SELECTOR)),) if ctx.settings.mlflow.enabled else ()


def namespaces(ctx: PlatformContext) -> list[NamespaceSpec]:
    return [NamespaceSpec(
        name=NAMESPACE, pss="restricted", layer=LAYER, gateway=True,
        why="the MLflow server and its init containers run non-root, read-only, without capabilities under "
            "RuntimeDefault seccomp",
        ingress_from=(ctx.monitoring((SERVER_PORT,)),
                      platform_peer((SERVER_PORT,), LAYER)),
        egress_to=ctx.store_peers("postgres", "object_storage"),
        egress_world_pods=internet_egress(ctx))]


def internet_egress(ctx: PlatformContext) -> tuple[PodsEgress, ...]:
    """The MLflow server reaches the provider's S3 (external object storage: it proxies the artifacts); oauth2-proxy
    reaches GitLab's public address (OIDC discovery at start, token, keys). MLflow's own login is basic-auth, so the
    server never calls GitLab, and the proxy never calls S3."""
    storage, sso = ctx.object_storage_egress_world(), ctx.sso_egress_world(SSO_CLIENT)
    return (*((PodsEgress("server", dict(SELECTOR), storage),) if storage else ()),
            *((PodsEgress("oauth2-proxy", dict(PROXY_SELECTOR), sso),) if sso else ()))


# --- values -------------------------------------------------------------------------------------------------
def artifacts(ctx: PlatformContext) -> S3Location:
    return ctx.object_store("mlflow").bucket(BUCKET, ARTIFACT_PREFIX)


def allowed_hosts(ctx: PlatformContext) -> list[str]:
    return [ctx.gateway.hostname(HOST_LABEL), SERVICE, f"{SERVICE}.{NAMESPACE}", f"{SERVICE}.{NAMESPACE}.svc",
            f"{SERVICE}.{NAMESPACE}.svc.{CLUSTER_DOMAIN}", *PRIVATE_HOST_PATTERNS]


def auth_database(ctx: PlatformContext) -> str:
    """The database part of the auth store's URL: the mlflow database with the auth schema first on the search
    path. Written unencoded: MLflow reads basic_auth.ini with ConfigParser, whose interpolation rejects `%`, and
    SQLAlchemy splits the query at the first `=` only."""
    return f"{ctx.data.postgres.databases[CONSUMER].name}?options=-csearch_path={AUTH_SCHEMA}"


def schema_init_container(ctx: PlatformContext) -> dict[str, Any]:
    """Creates the auth schema (as the database owner) before the server's auth app migrates into it."""
    database = ctx.data.postgres.databases[CONSUMER]
    return {
        "name": "auth-schema",
        "image": f"{IMAGE}:{charts.MLFLOW_VERSION}",
        "imagePullPolicy": "IfNotPresent",
        # psycopg2 with an empty DSN takes libpq's PG* variables.
        "command": ["python", "-c", "import psycopg2; c = psycopg2.connect(''); c.autocommit = True; "
                    f"c.cursor().execute('CREATE SCHEMA IF NOT EXISTS {AUTH_SCHEMA}')"],
        "env": [{"name": "PGHOST", "value": ctx.data.postgres.host},
                {"name": "PGPORT", "value": str(ctx.data.postgres.port)},
                {"name": "PGDATABASE", "value": database.name},
                {"name": "PGSSLMODE", "value": "require"},
                {"name": "PGUSER", "valueFrom": {"secretKeyRef": {"name": DB_SECRET, "key": "username"}}},
                {"name": "PGPASSWORD", "valueFrom": {"secretKeyRef": {"name": DB_SECRET, "key": "password"}}}],
        "securityContext": {**RESTRICTED_CONTAINER_SECURITY, "readOnlyRootFilesystem": True, "runAsUser": UID,
                            "runAsGroup": UID},
        "resources": INIT_RESOURCES,
    }


def values(ctx: PlatformContext) -> dict[str, Any]:
    postgres = ctx.data.postgres
    database = postgres.databases[CONSUMER]
    objects = ctx.data.object_storage
    location = artifacts(ctx)
    replicas = ctx.replicas(2)
    env = {
        "MLFLOW_S3_ENDPOINT_URL": location.endpoint,
        "AWS_DEFAULT_REGION": location.region,
        # SeaweedFS has no per-bucket DNS names; provider S3 serves virtual-hosted buckets.
        "MLFLOW_BOTO_CLIENT_ADDRESSING_STYLE": "path" if objects.path_style else "auto",
        "PGSSLMODE": "require",  # libpq: both the tracking and the auth store
        "MLFLOW_SQLALCHEMYSTORE_POOL_SIZE": "5",
        "MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW": "5",
        **CHECKSUM_ENV,
    }
    return {
        "replicaCount": replicas,
        "image": {"repository": IMAGE, "tag": charts.MLFLOW_VERSION},
        "initImages": {"mlflowDbMigration": {"repository": IMAGE, "tag": charts.MLFLOW_VERSION}},
        "serviceAccount": {"create": True, "automount": False},
        "podSecurityContext": {**RESTRICTED_POD_SECURITY, "fsGroup": UID, "fsGroupChangePolicy": "OnRootMismatch"},
        "securityContext": {**RESTRICTED_CONTAINER_SECURITY, "readOnlyRootFilesystem": True, "privileged": False,
                            "runAsUser": UID, "runAsGroup": UID},
        "service": {"type": "ClusterIP", "port": SERVICE_PORT, "name": SERVICE_PORT_NAME,
                    "containerPort": SERVER_PORT},
        "telemetry": {"enabled": False},
        "backendStore": {
            "databaseMigration": True,
            "postgres": {"enabled": True, "host": postgres.host, "port": postgres.port, "database": database.name},
            "existingDatabaseSecret": {"name": DB_SECRET, "usernameKey": "username", "passwordKey": "password"},
        },
        "artifactRoot": {
            "proxiedArtifactStorage": True,
            # No keys here: boto3 reads AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY from our Secret as environment.
            "s3": {"enabled": True, "bucket": location.bucket, "path": location.prefix},
        },
        "extraSecretNamesForEnvFrom": [S3_SECRET],
        "auth": {
            "enabled": True,
            "existingAdminSecret": {"name": ADMIN_SECRET, "usernameKey": "username", "passwordKey": "password"},
            "defaultPermission": "READ",
            "postgres": {"enabled": True, "host": postgres.host, "port": postgres.port,
                         "database": auth_database(ctx),
                         "existingSecret": {"name": DB_SECRET, "usernameKey": "username", "passwordKey": "password"}},
        },
        "initContainers": [schema_init_container(ctx)],
        "serverAllowedHosts": allowed_hosts(ctx),
        "corsAllowedOrigins": [ctx.url(HOST_LABEL)],
        "extraArgs": {"workers": str(WORKERS), "exposePrometheus": METRICS_DIR},
        "extraEnvVars": env,
        "extraVolumes": [{"name": "metrics", "emptyDir": {}}],
        "extraVolumeMounts": [{"name": "metrics", "mountPath": METRICS_DIR}],
        "resources": RESOURCES,
        # Preferred: a rolling update's surge pods must be able to start on a pool of two nodes.
        "affinity": {"podAntiAffinity": pod_anti_affinity(SELECTOR, required=False)},
        "serviceMonitor": {"enabled": False},  # ours below: the chart's cannot log in
        "ingress": {"enabled": False},
    }


def service_monitor(ctx: PlatformContext, after: Sequence[pulumi.Resource]) -> k8s.apiextensions.CustomResource:
    credential = {"username": {"name": ADMIN_SECRET, "key": "username"},
                  "password": {"name": ADMIN_SECRET, "key": "password"}}
    return ctx.custom_resource(
        "mlflow-metrics", "monitoring.coreos.com/v1", "ServiceMonitor", RELEASE, NAMESPACE,
        {"selector": {"matchLabels": dict(SELECTOR)},
         "endpoints": [{"port": SERVICE_PORT_NAME, "path": "/metrics", "interval": SCRAPE_INTERVAL,
                        "basicAuth": credential}]},
        ctx.labels("mlflow", "metrics"), after)


# --- install ------------------------------------------------------------------------------------------------
def install(ctx: PlatformContext, spaces: Namespaces, after: Sequence[pulumi.Resource]) -> Installed:
    ns = spaces[NAMESPACE]
    opts = ctx.opts([*after, ns])
    database = ctx.data.postgres.databases[CONSUMER]
    db_secret = database.credentials.copy_to("mlflow-postgres-credentials", NAMESPACE, opts, name=DB_SECRET)
    s3_secret = ctx.aws_credentials("mlflow-s3", S3_SECRET, NAMESPACE, artifacts(ctx), [*after, ns])
    password = ctx.password("mlflow-admin-password")
    _, admin_secret = ctx.credentials("mlflow-admin", ADMIN_SECRET, NAMESPACE,
                                      {"username": ADMIN_USER, "password": password.result}, [*after, ns],
                                      labels=ctx.labels("mlflow", "credentials"))
    limits = k8s.core.v1.LimitRange(
        "mlflow-container-defaults",
        metadata=k8s.meta.v1.ObjectMetaArgs(name="container-defaults", namespace=NAMESPACE,
                                            labels=ctx.labels("mlflow")),
        spec=LIMIT_RANGE, opts=opts)
    secrets = [db_secret, s3_secret, admin_secret, limits]
    server = release(RELEASE, charts.MLFLOW, values(ctx), ctx.opts([*after, ns, *secrets]), namespace=NAMESPACE,
                     create_namespace=False)
    ready: list[pulumi.Resource] = [*secrets, server]
    if ctx.replicas(2) > 1:
        ready.append(ctx.disruption_budget("mlflow-pdb", RELEASE, NAMESPACE, SELECTOR, ctx.labels("mlflow"),
                                           [server], min_available=1))
    ready.append(service_monitor(ctx, [server, admin_secret]))
    if SSO_CLIENT in ctx.sso:  # people reach MLflow through oauth2-proxy (GitLab login), then MLflow's own auth
        ready += auth_proxy.install(ctx, SSO_CLIENT, HOST_LABEL, NAMESPACE, SERVICE, SERVICE_PORT, [*after, ns, server])
    else:
        ready.append(ctx.route("mlflow-route", HOST_LABEL, NAMESPACE, SERVICE, SERVICE_PORT, depends_on=[server]))
    return Installed(urls={HOST_LABEL: ctx.url(HOST_LABEL)}, ready=ready)


__all__ = ["install", "namespaces"]
