"""Apache Airflow 3 from the official chart (components/charts.py AIRFLOW), on the platform's PostgreSQL and object
storage, served at https://airflow.<domain>.

What this module sets and why:

- Executor: KubernetesExecutor. Every task runs in its own pod with its own resources and image, so there is no
  resident Celery worker to size, no broker (Redis/DragonflyDB) to run and secure, and an idle Airflow costs only
  its control plane. Tasks start a few seconds slower (pod start-up); for batch pipelines that is the right trade.
- Metadata database: the `airflow` database of the shared CloudNativePG cluster (dataPlane.postgres.databases),
  reached through the chart's PgBouncer (transaction pooling: Airflow opens many short connections, CNPG's
  max_connections is shared with GitLab, MLflow and JupyterHub). The chart's bundled PostgreSQL is off. Every
  credential is ours, in Secrets the chart references (`data.metadataSecretName`, `pgbouncer.configSecretName`,
  `pgbouncer.metricsExporterSidecar.statsSecretName`), built from the data plane's secret Outputs: no password in
  the Helm values. PgBouncer speaks TLS to PostgreSQL (`server_tls_sslmode = require`).
- Keys: the Fernet key (encrypts connections and variables in the database), the API secret key and the JWT
  secret are generated once (pulumi_random) and referenced by name (`fernetKeySecretName`,
  `apiSecretKeySecretName`, `jwtSecretName`): left to the chart, the API and JWT secrets change on every
  `helm upgrade` and a reinstall would mint a new Fernet key, leaving every stored connection unreadable.
- Single sign-on (platform.sso on): people log in with GitLab (FAB's OAuth, `apiServer.apiServerConfig`,
  gitlab_login); the local admin below stays for the CLI (`kubectl exec ... airflow ...`) and break-glass.
- Admin: the chart's create-user job (FAB auth manager, pinned explicitly) creates `admin` with a generated
  password read from the Secret `airflow-admin` through the job's environment (its default arguments would take
  the password from the values).
- Task logs: remote logging to the object store's `logs` bucket under `airflow/` (path-style for the in-cluster
  SeaweedFS), through the connection `AIRFLOW_CONN_AIRFLOW_LOGS` defined by a Secret every Airflow container and
  task pod gets; no log volume.
- Availability: scheduler, API server, triggerer and PgBouncer run 2 replicas in production with disruption
  budgets; the DAG processor runs one (an outage there delays DAG changes, running DAGs go on).
- DAGs: git-sync is off unless `platform.airflow.dagsRepo` is set (then every component and task pod syncs it;
  the namespace may then reach git servers on 443). With platform.sso only the API server reaches GitLab's
  public address (443); nothing else leaves the cluster unless git-sync or the provider's S3 needs it.
- Metrics: the chart's StatsD exporter and the PgBouncer exporter, scraped by our ServiceMonitors.
- Pod Security: restricted. The chart takes pod and container security contexts (global `securityContexts`;
  StatsD and PgBouncer have their own), so every pod runs non-root, without capabilities, RuntimeDefault seccomp.
- Network: the chart's NetworkPolicies stay off; the namespace's own (default deny) admit exactly the gateway,
  Prometheus, and egress to PostgreSQL, the object store and (when enabled) MLflow, where tasks log runs.
"""

from __future__ import annotations

import base64
import hashlib
import json
from string import Template
from typing import Any, Sequence
from urllib.parse import quote

import pulumi
import pulumi_kubernetes as k8s

from components import charts
from components.helm import release
from components.platform import mlflow, sso
from components.platform.context import CLUSTER_DOMAIN, LAYER, Installed, PlatformContext
from components.services.namespaces import (RESTRICTED_CONTAINER_SECURITY, RESTRICTED_POD_SECURITY, Namespaces,
                                           NamespaceSpec, PodsEgress)

NAMESPACE = charts.AIRFLOW.namespace
RELEASE = "airflow"  # contains the chart name: objects are named airflow-<component> (airflow.fullname)
HOST_LABEL = "airflow"
API_SERVER_SERVICE = f"{RELEASE}-api-server"
API_SERVER_PORT = 8080  # chart values ports.apiServer
PGBOUNCER_PORT = 6543  # ports.pgbouncer
PGBOUNCER_METRICS_PORT = 9127  # ports.pgbouncerScrape
STATSD_METRICS_PORT = 9102  # ports.statsdScrape
# PgBouncer's name for the metadata database: the chart's own connection URL uses <release>-metadata
# (templates/secrets/metadata-connection-secret.yaml), kept so the chart's conventions hold.
PGBOUNCER_DATABASE = f"{RELEASE}-metadata"
CONSUMER = "airflow"  # dataPlane.postgres.databases key
AIRFLOW_UID = 50000  # the official image's user (values.yaml uid); its group is 0
GIT_SYNC_UID = 65533  # values.yaml dags.gitSync.uid: the user the chart runs git-sync as by default
LOGS_BUCKET = "airflow-logs"  # object storage purpose (config/platform.py NEEDS): its own, apart from Loki's
LOGS_PREFIX = "airflow"
LOGS_CONNECTION_ID = "airflow_logs"
ADMIN_USER = "admin"

METADATA_SECRET = "airflow-metadata"
PGBOUNCER_CONFIG_SECRET = "airflow-pgbouncer-config"
PGBOUNCER_STATS_SECRET = "airflow-pgbouncer-stats"
FERNET_SECRET = "airflow-fernet-key"
API_SECRET = "airflow-api-secret-key"
JWT_SECRET = "airflow-jwt-secret"
ADMIN_SECRET = "airflow-admin"
LOGS_SECRET = "airflow-logs-connection"


def component_labels(component: str) -> dict[str, str]:
    """The labels the chart gives each component's pods and Services (tier/component/release)."""
    return {"tier": "airflow", "component": component, "release": RELEASE}


def _res(cpu: str, memory: str, memory_limit: str) -> dict[str, dict[str, str]]:
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory_limit}}


RESOURCES = {
    "scheduler": _res("500m", "1Gi", "2Gi"),
    "apiServer": _res("250m", "1Gi", "2Gi"),
    "triggerer": _res("100m", "512Mi", "1Gi"),
    "dagProcessor": _res("250m", "1Gi", "2Gi"),
    "workers": _res("500m", "1Gi", "2Gi"),  # each task pod (KubernetesExecutor pod template)
    "jobs": _res("100m", "512Mi", "1Gi"),  # migrations and user creation
    "logGroomer": _res("10m", "32Mi", "128Mi"),
    "statsd": _res("50m", "64Mi", "256Mi"),
    "pgbouncer": _res("50m", "64Mi", "256Mi"),
    "pgbouncerExporter": _res("10m", "32Mi", "64Mi"),
}
POOL_SIZE = 20  # server connections per PgBouncer replica to the metadata database
MAX_CLIENT_CONNECTIONS = 500


def namespaces(ctx: PlatformContext) -> list[NamespaceSpec]:
    git = (443,) if ctx.settings.airflow.dags_repo else ()
    sso = ctx.sso_egress_world(SSO_CLIENT)
    return [NamespaceSpec(
        name=NAMESPACE, pss="restricted", layer=LAYER, gateway=True,
        why="every Airflow pod (scheduler, API server, triggerer, DAG processor, task pods, jobs, StatsD, PgBouncer) "
            "runs non-root without capabilities under RuntimeDefault seccomp: the chart takes our security contexts",
        ingress_from=(ctx.monitoring((STATSD_METRICS_PORT, PGBOUNCER_METRICS_PORT)),),
        # Tasks may log runs to MLflow (its namespace admits the platform layer).
        egress_to=(*ctx.store_peers("postgres", "object_storage"), *mlflow.client_egress(ctx)),
        # Remote task logs (the provider's S3) and git-sync are nearly every component's and every task pod's, so
        # the namespace's; the GitLab login is the API server's alone (FAB's OAuth runs there). Its labels are the
        # Deployment's selector (chart templates/api-server/api-server-deployment.yaml), which an upgrade keeps.
        egress_world=tuple(sorted({*ctx.object_storage_egress_world(), *git})),
        egress_world_pods=(PodsEgress("api-server", component_labels("api-server"), sso),) if sso else ())]


# --- Secrets the chart references by name --------------------------------------------------------------
def _secret(ctx: PlatformContext, resource_name: str, name: str, data: dict[str, pulumi.Input[str]],
            after: Sequence[pulumi.Resource]) -> k8s.core.v1.Secret:
    return ctx.credentials(resource_name, name, NAMESPACE, data, after, labels=ctx.labels("airflow", "credentials"))[1]


def metadata_connection(username: pulumi.Input[str], password: pulumi.Input[str]) -> pulumi.Output[str]:
    """Airflow's SQLAlchemy URL: to PgBouncer in the namespace, which pools to CloudNativePG."""
    return pulumi.Output.secret(pulumi.Output.all(username, password).apply(
        lambda up: f"postgresql://{quote(up[0], safe='')}:{quote(up[1], safe='')}@{RELEASE}-pgbouncer.{NAMESPACE}"
                   f".svc.{CLUSTER_DOMAIN}:{PGBOUNCER_PORT}/{PGBOUNCER_DATABASE}?sslmode=disable"))


def pgbouncer_ini(host: str, port: int, database: str, username: str) -> str:
    """What the chart would template from `data.metadataConnection` (templates/_helpers.yaml pgbouncer_config),
    without a password in it and with TLS to PostgreSQL."""
    return "\n".join([
        "[databases]",
        f"{PGBOUNCER_DATABASE} = host={host} dbname={database} port={port} pool_size={POOL_SIZE}",
        "",
        "[pgbouncer]",
        "pool_mode = transaction",
        f"listen_port = {PGBOUNCER_PORT}",
        "listen_addr = *",
        "auth_type = scram-sha-256",
        "auth_file = /etc/pgbouncer/users.txt",
        f"stats_users = {username}",
        "ignore_startup_parameters = extra_float_digits",
        f"max_client_conn = {MAX_CLIENT_CONNECTIONS}",
        "verbose = 0",
        "log_disconnections = 0",
        "log_connections = 0",
        "server_tls_sslmode = require",
        "",
    ])


def logs_connection(ctx: PlatformContext) -> pulumi.Output[str]:
    """The S3 connection remote logging uses, as Airflow's JSON connection format in AIRFLOW_CONN_<ID>."""
    objects = ctx.data.object_storage
    location = objects.bucket(LOGS_BUCKET, LOGS_PREFIX)
    botocore: dict[str, Any] = {
        # boto3 >= 1.36 sends checksums S3-compatible stores may reject (see components/data/postgres.py).
        "request_checksum_calculation": "when_required", "response_checksum_validation": "when_required"}
    if objects.path_style:
        botocore["s3"] = {"addressing_style": "path"}

    def render(keys: list[str]) -> str:
        return json.dumps({"conn_type": "aws", "login": keys[0], "password": keys[1],
                           "extra": {"endpoint_url": location.endpoint, "region_name": location.region,
                                     "config_kwargs": botocore}})
    return pulumi.Output.secret(pulumi.Output.all(location.access_key_id, location.secret_access_key).apply(render))


def fernet_key(ctx: PlatformContext) -> pulumi.Output[str]:
    """A Fernet key (32 bytes, url-safe base64) derived from a generated password: cryptography's Fernet refuses
    ctx.password's alphanumeric strings as they are, and SHA-256 keeps all of their entropy (190 bits)."""
    password = ctx.password("airflow-fernet-seed", 32).result
    return pulumi.Output.secret(password.apply(
        lambda seed: base64.urlsafe_b64encode(hashlib.sha256(seed.encode()).digest()).decode()))


def secrets(ctx: PlatformContext, after: Sequence[pulumi.Resource]) -> list[k8s.core.v1.Secret]:
    postgres = ctx.data.postgres
    database = postgres.databases[CONSUMER]
    username, password = database.credentials.values["username"], database.credentials.values["password"]
    api_key = ctx.password("airflow-api-secret-key").result
    users = pulumi.Output.all(username, password).apply(lambda up: f'"{up[0]}" "{up[1]}"\n')
    stats = pulumi.Output.all(username, password).apply(
        lambda up: f"postgresql://{quote(up[0], safe='')}:{quote(up[1], safe='')}@127.0.0.1:{PGBOUNCER_PORT}"
                   "/pgbouncer?sslmode=disable")
    ini = pulumi.Output.from_input(username).apply(
        lambda user: pgbouncer_ini(postgres.host, postgres.port, database.name, user))
    return [
        _secret(ctx, "airflow-metadata", METADATA_SECRET, {"connection": metadata_connection(username, password)},
                after),
        _secret(ctx, "airflow-pgbouncer-config", PGBOUNCER_CONFIG_SECRET, {"pgbouncer.ini": ini, "users.txt": users},
                after),
        _secret(ctx, "airflow-pgbouncer-stats", PGBOUNCER_STATS_SECRET, {"connection": stats}, after),
        _secret(ctx, "airflow-fernet-key", FERNET_SECRET, {"fernet-key": fernet_key(ctx)}, after),
        # Airflow 3 reads only this key (`apiSecretKeySecretName`); the webserver's secret key is Airflow 2's.
        _secret(ctx, "airflow-api-secret-key", API_SECRET, {"api-secret-key": api_key}, after),
        _secret(ctx, "airflow-jwt-secret", JWT_SECRET, {"jwt-secret": ctx.password("airflow-jwt-secret", 64).result},
                after),
        _secret(ctx, "airflow-admin", ADMIN_SECRET,
                {"username": ADMIN_USER, "password": ctx.password("airflow-admin-password").result}, after),
        _secret(ctx, "airflow-logs-connection", LOGS_SECRET, {"connection": logs_connection(ctx)}, after),
    ]


# --- values ---------------------------------------------------------------------------------------------
def _component(resources: str, replicas: int | None = None, budget: bool = False) -> dict[str, Any]:
    values: dict[str, Any] = {"resources": RESOURCES[resources]}
    if replicas is not None:
        values["replicas"] = replicas
    if budget:
        # The chart's PodDisruptionBudget (one pod at a time), only with a second replica to keep serving.
        values["podDisruptionBudget"] = {"enabled": replicas is not None and replicas > 1,
                                         "config": {"maxUnavailable": 1}}
    return values


def _groomer() -> dict[str, Any]:
    return {"logGroomerSidecar": {"resources": RESOURCES["logGroomer"]}}


NOT_HOOKS = {"useHelmHooks": False, "applyCustomEnv": False}  # values() says why


def create_user_job(ctx: PlatformContext) -> dict[str, Any]:
    """The chart's job, with the password from our Secret through the environment instead of its default
    arguments (which would take `createUserJob.defaultUser.password` from the values).

    Without `--password` the FAB provider's `users create` asks twice through getpass, which reads stdin when
    the pod has no terminal: the password goes through a pipe from bash's printf builtin, so it is in no
    process's argument list (readable in /proc by anything sharing the node's PID namespace)."""
    command = ("set -o pipefail; "
               'printf \'%s\\n%s\\n\' "${AIRFLOW_ADMIN_PASSWORD}" "${AIRFLOW_ADMIN_PASSWORD}" | '
               f"airflow users create --role Admin --username {ADMIN_USER} --email {ADMIN_USER}@{ctx.domain} "
               "--firstname Airflow --lastname Admin")
    return {
        "args": ["bash", "-c", command],
        "env": [{"name": "AIRFLOW_ADMIN_PASSWORD",
                 "valueFrom": {"secretKeyRef": {"name": ADMIN_SECRET, "key": "password"}}}],
        "resources": RESOURCES["jobs"],
    }


def dags(ctx: PlatformContext) -> dict[str, Any]:
    settings = ctx.settings.airflow
    if not settings.dags_repo:
        return {"gitSync": {"enabled": False}, "persistence": {"enabled": False}}
    # git-sync v4 reads `ref` (GITSYNC_REF); `branch`/`rev` feed the v3 variables, kept consistent.
    return {"persistence": {"enabled": False}, "gitSync": {
        "enabled": True, "repo": settings.dags_repo, "branch": settings.dags_branch, "ref": settings.dags_branch,
        "rev": "HEAD", "subPath": settings.dags_path, "depth": 1, "period": "60s",
        "resources": _res("10m", "64Mi", "256Mi"),
        # The git-sync containers (sidecars and the task pods' init container) take neither the global
        # `securityContexts` nor a default that drops capabilities: templates/_helpers.yaml git_sync_container
        # renders localContainerSecurityContext, i.e. only `runAsUser: <uid>` unless this is set, which the
        # namespace's `restricted` level refuses.
        "securityContexts": {"container": {**RESTRICTED_CONTAINER_SECURITY, "runAsUser": GIT_SYNC_UID}}}}


def config(ctx: PlatformContext) -> dict[str, Any]:
    """airflow.cfg sections (the chart writes them into its ConfigMap)."""
    location = ctx.data.object_storage.bucket(LOGS_BUCKET, LOGS_PREFIX)
    return {
        "core": {
            "executor": "KubernetesExecutor",
            # The FAB auth manager brings the `airflow users create` command the create-user job runs.
            "auth_manager": "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager",
            # Task pods reach the Task Execution API in-cluster, not through the public gateway.
            "execution_api_server_url":
                f"http://{API_SERVER_SERVICE}.{NAMESPACE}.svc.{CLUSTER_DOMAIN}:{API_SERVER_PORT}/execution/",
        },
        "api": {"base_url": ctx.url(HOST_LABEL)},
        "logging": {
            "remote_logging": "True",
            "remote_base_log_folder": location.url(),
            "remote_log_conn_id": LOGS_CONNECTION_ID,
            "delete_local_logs": "True",
        },
        # Task logs are in the object store: a finished task's pod (failed or not) holds nothing more.
        "kubernetes_executor": {"delete_worker_pods": "True", "delete_worker_pods_on_failure": "True"},
    }


# webserver_config.py of the API server with platform.sso on (Airflow 3.2 + FAB auth manager: the FAB provider reads
# it from AIRFLOW_HOME; the chart renders `apiServer.apiServerConfig` into it through `tpl`, so it must hold no
# "{{"). FAB's own get_oauth_user_info knows no GitLab: the subclass reads GitLab's OIDC userinfo, whose `groups`
# (full paths) are the role keys AUTH_ROLES_MAPPING maps. Whoever is in no mapped group gets only `Public`, which
# sees nothing. The client secret comes from the environment (Secret airflow-sso), never from this file.
GITLAB_LOGIN = """import os

from airflow.providers.fab.auth_manager.security_manager.override import FabAirflowSecurityManagerOverride
from flask_appbuilder.security.manager import AUTH_OAUTH

AUTH_TYPE = AUTH_OAUTH
AUTH_USER_REGISTRATION = True
AUTH_USER_REGISTRATION_ROLE = "Public"
AUTH_ROLES_SYNC_AT_LOGIN = True
AUTH_ROLES_MAPPING = $roles
OAUTH_PROVIDERS = [{
    "name": "gitlab",
    "icon": "fa-gitlab",
    "token_key": "access_token",
    "remote_app": {
        "client_id": $client_id,
        "client_secret": os.environ["$secret_env"],
        "server_metadata_url": $metadata_url,
        "api_base_url": $issuer,
        "client_kwargs": {"scope": $scope, "code_challenge_method": "S256"},
    },
}]


class GitLabSecurityManager(FabAirflowSecurityManagerOverride):
    def get_oauth_user_info(self, provider, resp):
        if provider != "gitlab":
            return super().get_oauth_user_info(provider, resp)
        info = self.oauth_remotes[provider].get("oauth/userinfo").json()
        return {"username": info["nickname"], "email": info.get("email", ""), "first_name": info.get("name", ""),
                "last_name": "", "role_keys": info.get("groups", [])}


SECURITY_MANAGER_CLASS = GitLabSecurityManager
"""
SSO_CLIENT = "airflow"  # its OAuth client (components/platform/sso.py)
SSO_SECRET = "airflow-sso"
SSO_SECRET_ENV = "AIRFLOW_SSO_CLIENT_SECRET"


def gitlab_login(ctx: PlatformContext) -> str:
    """The webserver_config.py above for this stack: GitLab admins' groups are Airflow Admins, the groups of
    platform.sso.users.airflow Airflow Users (run and clear DAGs, no connections or roles). Values are Python
    literals of validated text (group paths, URLs, the client id)."""
    client = ctx.sso[SSO_CLIENT]
    roles: dict[str, list[str]] = {group: ["User"] for group in client.allowed_groups()}
    roles.update({group: ["Admin"] for group in client.admins})
    text = Template(GITLAB_LOGIN).substitute(
        roles=repr(roles), client_id=repr(client.client_id), secret_env=SSO_SECRET_ENV,
        metadata_url=repr(f"{client.issuer}/.well-known/openid-configuration"), issuer=repr(f"{client.issuer}/"),
        scope=repr(sso.SCOPES))
    if "{{" in text:  # Helm's tpl would read it as a template action
        raise ValueError("airflow: the API server config must not contain '{{'")
    return text


def sso_values(ctx: PlatformContext) -> dict[str, Any]:
    """apiServer values of the GitLab login (none without SSO: the FAB auth manager's own login form)."""
    return {"apiServerConfig": gitlab_login(ctx)} if SSO_CLIENT in ctx.sso else {}


def sso_env(ctx: PlatformContext) -> list[dict[str, Any]]:
    if SSO_CLIENT not in ctx.sso:
        return []
    return [{"name": SSO_SECRET_ENV, "valueFrom": {"secretKeyRef": {"name": SSO_SECRET, "key": "client-secret"}}}]


def values(ctx: PlatformContext) -> dict[str, Any]:
    replicas = ctx.replicas(2)
    restricted_pod = {**RESTRICTED_POD_SECURITY, "runAsUser": AIRFLOW_UID, "runAsGroup": 0, "fsGroup": 0}
    nobody_pod = {**RESTRICTED_POD_SECURITY, "runAsUser": 65534, "runAsGroup": 65534}
    return {
        "defaultAirflowRepository": "apache/airflow",
        "defaultAirflowTag": charts.AIRFLOW_VERSION,
        "airflowVersion": charts.AIRFLOW_VERSION,
        "executor": "KubernetesExecutor",
        "securityContexts": {"pod": restricted_pod, "containers": RESTRICTED_CONTAINER_SECURITY},
        "networkPolicies": {"enabled": False},  # the namespace's own policies (components/services/namespaces.py)
        "ingress": {"apiServer": {"enabled": False}},  # the shared gateway's HTTPRoute serves it
        "postgresql": {"enabled": False},
        "redis": {"enabled": False},  # no Celery
        "data": {"metadataSecretName": METADATA_SECRET},
        "fernetKeySecretName": FERNET_SECRET,
        "apiSecretKeySecretName": API_SECRET,
        "jwtSecretName": JWT_SECRET,
        # Every Airflow container and task pod: the log store's connection (the pod template carries it too).
        "secret": [{"envName": f"AIRFLOW_CONN_{LOGS_CONNECTION_ID.upper()}", "secretName": LOGS_SECRET,
                    "secretKey": "connection"}],
        "config": config(ctx),
        "pgbouncer": {
            "enabled": True, "replicas": replicas, "resources": RESOURCES["pgbouncer"],
            "configSecretName": PGBOUNCER_CONFIG_SECRET,
            "podDisruptionBudget": {"enabled": replicas > 1, "config": {"maxUnavailable": 1}},
            "securityContexts": {"pod": nobody_pod, "container": RESTRICTED_CONTAINER_SECURITY},
            "metricsExporterSidecar": {"resources": RESOURCES["pgbouncerExporter"],
                                       "statsSecretName": PGBOUNCER_STATS_SECRET,
                                       "securityContexts": {"container": RESTRICTED_CONTAINER_SECURITY}},
        },
        "scheduler": {**_component("scheduler", replicas, budget=True), **_groomer()},
        "apiServer": {**_component("apiServer", replicas, budget=True),
                      # Behind the gateway: trust X-Forwarded-Proto/-For so redirects and links stay https.
                      "args": ["bash", "-c", "exec airflow api-server --proxy-headers"],
                      # Uvicorn trusts forwarded headers from localhost only; the gateway's proxies are elsewhere,
                      # and the namespace's policies admit only them (and Airflow's own pods) to this port.
                      **sso_values(ctx),
                      "env": [{"name": "FORWARDED_ALLOW_IPS", "value": "*"}, *sso_env(ctx)],
                      "service": {"type": "ClusterIP"}},
        # Airflow 3 runs both: deferrable operators need the triggerer, DAG parsing is the DAG processor's alone.
        "triggerer": {**_component("triggerer", replicas), **_groomer(),
                      "persistence": {"enabled": False}},  # its logs go to the object store
        "dagProcessor": {"enabled": True, **_component("dagProcessor", 1), **_groomer()},
        "workers": {"resources": RESOURCES["workers"]},
        # Plain Jobs of the release, not Helm hooks: the release waits for its pods (pulumi-kubernetes runs Helm with
        # wait unless skipAwait), and Helm runs post-install hooks only after that wait, while every Airflow pod's
        # wait-for-airflow-migrations init container waits for the migration: a first install would time out and
        # roll back. The chart's docs ask exactly these four values of tools that install with wait (Terraform, Argo
        # CD, Flux). Each Job is deleted 5 minutes after it finishes (the chart's ttlSecondsAfterFinished), so the
        # next update creates it anew instead of changing an immutable Job.
        "migrateDatabaseJob": {"resources": RESOURCES["jobs"], **NOT_HOOKS},
        "createUserJob": {**create_user_job(ctx), **NOT_HOOKS},
        "statsd": {"enabled": True, "resources": RESOURCES["statsd"],
                   "securityContexts": {"pod": nobody_pod, "container": RESTRICTED_CONTAINER_SECURITY}},
        "logs": {"persistence": {"enabled": False}},
        "dags": dags(ctx),
        "cleanup": {"enabled": False},  # the scheduler deletes finished task pods itself (delete_worker_pods)
    }


# --- install --------------------------------------------------------------------------------------------
def monitors(ctx: PlatformContext, after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    # Service ports by name: templates/statsd/statsd-service.yaml (statsd-scrape), pgbouncer/pgbouncer-service.yaml
    # (pgb-metrics, the exporter's ports.pgbouncerScrape).
    return [
        ctx.service_monitor("airflow-statsd-metrics", f"{RELEASE}-statsd", NAMESPACE, component_labels("statsd"),
                            "statsd-scrape", after),
        ctx.service_monitor("airflow-pgbouncer-metrics", f"{RELEASE}-pgbouncer", NAMESPACE,
                            component_labels("pgbouncer"), "pgb-metrics", after),
    ]


def install(ctx: PlatformContext, spaces: Namespaces, after: Sequence[pulumi.Resource]) -> Installed:
    ns = spaces[NAMESPACE]
    before = [*after, ns]
    owned = secrets(ctx, before)
    if SSO_CLIENT in ctx.sso:
        owned.append(sso.client_secret(ctx, SSO_CLIENT, SSO_SECRET, NAMESPACE, before))
    chart = release(RELEASE, charts.AIRFLOW, values(ctx), ctx.opts([*before, *owned]), namespace=NAMESPACE,
                    create_namespace=False)
    ready: list[pulumi.Resource] = [*owned, chart, *monitors(ctx, [chart])]
    if ctx.replicas(2) > 1:
        # The chart has no budget for the triggerer; ours keeps one of its two pods through drains.
        ready.append(ctx.disruption_budget("airflow-triggerer-pdb", f"{RELEASE}-triggerer", NAMESPACE,
                                           component_labels("triggerer"), ctx.labels("airflow", "triggerer"),
                                           [chart], max_unavailable=1))
    ready.append(ctx.route("airflow-route", HOST_LABEL, NAMESPACE, API_SERVER_SERVICE, API_SERVER_PORT, [chart]))
    return Installed(urls={HOST_LABEL: ctx.url(HOST_LABEL)}, ready=ready)


__all__ = ["install", "namespaces"]
