"""Data engineering on the platform: Airflow (CloudNativePG through PgBouncer, remote logs, generated keys),
the Spark operator (webhook, jobs namespace under quota) and JupyterHub (PostgreSQL hub database, user servers)."""

from __future__ import annotations

import base64
import json
import re

import pytest

from components import charts
from components.platform import airflow, jupyterhub, spark
from tests import validators, variants
from tests.conftest import base_raw
from tests.netpol import internet_ports, namespace_policies
from tests.stores import PDB, RELEASE, SECRET, chart_of, config_problems, policy, ports, string_data
from tools.mockrun import Run, Secret

HTTPROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
SERVICE_MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
POD_MONITOR = "kubernetes:monitoring.coreos.com/v1:PodMonitor"
NAMESPACE = "kubernetes:core/v1:Namespace"
CONFIG_FILE = "kubernetes:yaml/v2:ConfigFile"
OURS = ("airflow", "spark-operator", "spark-jobs", "jupyterhub")
ENABLE_ALL = variants.DATA_ENGINEERING_ON


@pytest.fixture(scope="module")
def staging_on() -> Run:
    """Staging turns the data stack off (config/profiles.py); this run turns it on, with non-default settings. The
    run (shared with test_platform_observability, which turns logs and traces off: tests/variants.py) leaves the ad
    services out."""
    return variants.staging_data_on()


@pytest.fixture(scope="module")
def disabled() -> Run:
    """Production with the three off (a variant shared with test_platform_monitoring, which turns more off)."""
    return variants.production_quiet()


def values(run: Run, release: str) -> dict:
    raw = run.named(release, RELEASE).inputs["values"]
    return validators.plain(raw)


def secret_values(run: Run, name: str) -> dict:
    return string_data(run.named(name, SECRET))


def in_namespaces(run: Run, names=OURS) -> list:
    return [r for r in validators.kubernetes_objects(run)
            if r.inputs.get("metadata", {}).get("namespace") in names
            or (r.type == NAMESPACE and r.inputs["metadata"]["name"] in names)]


def db_password(run: Run, consumer: str) -> str:
    return secret_values(run, f"postgres-{consumer}-credentials")["password"]


# --- catalog ---------------------------------------------------------------------------------------------
def test_charts_and_images_are_pinned_from_the_catalog(production):
    assert chart_of(production, "airflow") == ("airflow", "1.22.0", "https://airflow.apache.org", "airflow", False)
    assert chart_of(production, "spark-operator") == (
        "spark-operator", "2.5.2", "https://kubeflow.github.io/spark-operator", "spark-operator", False)
    assert chart_of(production, "jupyterhub") == (
        "jupyterhub", "4.4.0", "https://hub.jupyter.org/helm-chart/", "jupyterhub", False)
    assert {"airflow", "spark-operator", "jupyterhub"} <= set(charts.CHARTS)
    af = values(production, "airflow")
    assert af["defaultAirflowTag"] == af["airflowVersion"] == charts.AIRFLOW_VERSION == "3.2.2"
    assert values(production, "spark-operator")["image"]["tag"] == "2.5.2"
    image = values(production, "jupyterhub")["singleuser"]["image"]
    assert image == {"name": "quay.io/jupyterhub/k8s-singleuser-sample", "tag": "4.4.0"}


# --- Airflow: database --------------------------------------------------------------------------------
def test_airflow_reaches_cloudnativepg_through_pgbouncer_with_secrets_by_reference(production):
    af = values(production, "airflow")
    assert af["postgresql"] == {"enabled": False}
    assert af["data"] == {"metadataSecretName": "airflow-metadata"}  # no metadataConnection user/pass in values
    assert af["pgbouncer"]["enabled"] is True
    assert af["pgbouncer"]["configSecretName"] == "airflow-pgbouncer-config"
    assert af["pgbouncer"]["metricsExporterSidecar"]["statsSecretName"] == "airflow-pgbouncer-stats"

    password = db_password(production, "airflow")
    [connection] = secret_values(production, "airflow-metadata").values()
    assert connection == (f"postgresql://airflow:{password}@airflow-pgbouncer.airflow.svc.cluster.local:6543/"
                          "airflow-metadata?sslmode=disable")
    pgbouncer = secret_values(production, "airflow-pgbouncer-config")
    ini = pgbouncer["pgbouncer.ini"]
    # The CNPG read-write Service and the `airflow` database; TLS to PostgreSQL.
    assert "airflow-metadata = host=postgres-rw.postgres.svc dbname=airflow port=5432" in ini
    assert "server_tls_sslmode = require" in ini and "pool_mode = transaction" in ini
    assert "listen_port = 6543" in ini and "auth_type = scram-sha-256" in ini
    assert pgbouncer["users.txt"] == f'"airflow" "{password}"\n'
    assert password in secret_values(production, "airflow-pgbouncer-stats")["connection"]
    # The database password reaches the engine only as secret Secret data, never in the Helm values.
    assert password not in json.dumps(af)


def test_airflow_waits_for_its_secrets_and_the_database(production):
    chart = production.named("airflow", RELEASE)
    needed = {production.named(n, SECRET).urn for n in (
        "airflow-metadata", "airflow-pgbouncer-config", "airflow-fernet-key", "airflow-admin")}
    assert needed <= set(chart.dependencies)
    database = production.named("postgres-database-airflow", "kubernetes:postgresql.cnpg.io/v1:Database")
    assert database.urn in chart.dependencies  # the migration job runs once the database exists


# --- Airflow: executor, keys, admin, logs ----------------------------------------------------------------
def test_airflow_runs_the_kubernetes_executor_without_a_broker(production):
    af = values(production, "airflow")
    assert af["executor"] == af["config"]["core"]["executor"] == "KubernetesExecutor"
    assert af["redis"] == {"enabled": False}
    # Task pods reach the Task Execution API inside the cluster.
    assert af["config"]["core"]["execution_api_server_url"] == \
        "http://airflow-api-server.airflow.svc.cluster.local:8080/execution/"
    assert af["config"]["api"]["base_url"] == "https://airflow.ads.example.com"
    # Behind the gateway the API server must honour X-Forwarded-* (uvicorn trusts only localhost by default).
    assert "--proxy-headers" in af["apiServer"]["args"][-1]
    assert {"name": "FORWARDED_ALLOW_IPS", "value": "*"} in af["apiServer"]["env"]


def test_airflow_keys_are_generated_secrets_referenced_by_name(production):
    af = values(production, "airflow")
    assert (af["fernetKeySecretName"], af["apiSecretKeySecretName"], af["jwtSecretName"]) == (
        "airflow-fernet-key", "airflow-api-secret-key", "airflow-jwt-secret")
    assert not {"fernetKey", "apiSecretKey", "jwtSecret", "webserverSecretKey"} & set(af)
    # The chart reads the webserver's key only for Airflow < 3 (templates/secrets/webserver-secret-key-secret.yaml):
    # setting it for Airflow 3 would look like configuration and do nothing.
    assert int(af["airflowVersion"].split(".")[0]) >= 3 and "webserverSecretKeySecretName" not in af
    fernet = secret_values(production, "airflow-fernet-key")["fernet-key"]
    assert len(base64.urlsafe_b64decode(fernet)) == 32  # what cryptography's Fernet requires
    api = secret_values(production, "airflow-api-secret-key")
    jwt = secret_values(production, "airflow-jwt-secret")["jwt-secret"]
    assert len(api["api-secret-key"]) >= 32 and len(jwt) >= 64 and set(api) == {"api-secret-key"}
    for value in (fernet, api["api-secret-key"], jwt):
        assert value not in json.dumps(af)
    # Generated once and protected in production: a new Fernet key would leave every stored connection unreadable.
    seeds = [r for r in production.of_type("random:index/randomPassword:RandomPassword")
             if r.name.startswith("airflow-")]
    assert {r.name for r in seeds} >= {"airflow-fernet-seed", "airflow-api-secret-key", "airflow-jwt-secret",
                                       "airflow-admin-password"}
    assert all(r.protect for r in seeds)


def test_airflow_migrations_and_admin_user_are_jobs_of_the_release_not_hooks(production):
    """The release waits for its pods, whose init containers wait for the migration; Helm runs post-install hooks
    only after that wait: as hooks the migration would never run and the first install would roll back."""
    chart = values(production, "airflow")
    for job in ("migrateDatabaseJob", "createUserJob"):
        assert chart[job]["useHelmHooks"] is False and chart[job]["applyCustomEnv"] is False, job


def test_airflow_admin_password_comes_from_a_secret_not_the_values(production):
    job = values(production, "airflow")["createUserJob"]
    assert job["env"] == [{"name": "AIRFLOW_ADMIN_PASSWORD",
                           "valueFrom": {"secretKeyRef": {"name": "airflow-admin", "key": "password"}}}]
    command = job["args"][-1]
    assert "--password" not in command, "a password in an argument list is readable in /proc"
    assert command.startswith("set -o pipefail; printf '%s\\n%s\\n' \"${AIRFLOW_ADMIN_PASSWORD}\" ")
    assert "| airflow users create --role Admin" in command, "getpass reads the password (twice) from stdin"
    admin = secret_values(production, "airflow-admin")
    assert admin["username"] == "admin" and admin["password"] not in json.dumps(values(production, "airflow"))
    assert values(production, "airflow")["config"]["core"]["auth_manager"].endswith("FabAuthManager")


def test_airflow_task_logs_go_to_their_own_bucket_under_airflow(production):
    """Not Loki's bucket: Airflow runs user DAG code, which must not reach the platform's logs."""
    af = values(production, "airflow")
    bucket = production.outputs["dataPlane"]["objectStorage"]["endpoint"]["buckets"]["airflow-logs"]
    logging = af["config"]["logging"]
    assert logging["remote_logging"] == "True"
    assert logging["remote_base_log_folder"] == f"s3://{bucket}/airflow"
    assert logging["remote_log_conn_id"] == "airflow_logs"
    assert af["secret"] == [{"envName": "AIRFLOW_CONN_AIRFLOW_LOGS", "secretName": "airflow-logs-connection",
                             "secretKey": "connection"}]
    connection = json.loads(secret_values(production, "airflow-logs-connection")["connection"])
    assert connection["conn_type"] == "aws"
    assert connection["extra"]["endpoint_url"] == "http://s3.seaweedfs.svc:8333"
    assert connection["extra"]["config_kwargs"]["s3"] == {"addressing_style": "path"}  # SeaweedFS
    assert connection["password"] not in json.dumps(af)
    assert af["logs"]["persistence"] == {"enabled": False} and af["triggerer"]["persistence"] == {"enabled": False}


# --- Airflow: availability, routing, metrics, security ---------------------------------------------------
def _airflow_budgets(run: Run) -> dict:
    af = values(run, "airflow")
    return {name: af[name]["podDisruptionBudget"]["enabled"] for name in ("scheduler", "apiServer", "pgbouncer")}


def test_airflow_is_highly_available_in_production_single_in_staging(production, staging_on):
    prod, stag = values(production, "airflow"), values(staging_on, "airflow")
    for name in ("scheduler", "apiServer", "triggerer", "pgbouncer"):
        assert (prod[name]["replicas"], stag[name]["replicas"]) == (2, 1), name
    assert prod["dagProcessor"]["replicas"] == stag["dagProcessor"]["replicas"] == 1
    assert prod["dagProcessor"]["enabled"] is True  # Airflow 3 parses DAGs only there
    assert _airflow_budgets(production) == {"scheduler": True, "apiServer": True, "pgbouncer": True}
    assert _airflow_budgets(staging_on) == {"scheduler": False, "apiServer": False, "pgbouncer": False}
    triggerer = production.named("airflow-triggerer-pdb", PDB).inputs["spec"]
    assert triggerer == {"maxUnavailable": 1, "selector": {"matchLabels": {
        "tier": "airflow", "component": "triggerer", "release": "airflow"}}}
    assert not [r for r in staging_on.of_type(PDB) if r.name == "airflow-triggerer-pdb"]


def test_routes_serve_airflow_and_jupyterhub_on_the_shared_gateway(production, staging_on):
    for run, domain in ((production, "ads.example.com"), (staging_on, "staging.ads.example.com")):
        routes = {r.name: validators.plain(r.inputs) for r in run.of_type(HTTPROUTE)}
        for name, host, namespace, service, port in (
                ("airflow-route", f"airflow.{domain}", "airflow", "airflow-api-server", 8080),
                ("jupyterhub-route", f"jupyter.{domain}", "jupyterhub", "proxy-public", 80)):
            route = routes[name]
            assert route["metadata"]["namespace"] == namespace and route["spec"]["hostnames"] == [host]
            [parent] = route["spec"]["parentRefs"]
            assert (parent["kind"], parent["name"], parent["namespace"]) == ("Gateway", "shared", "gateway")
            [rule] = route["spec"]["rules"]
            assert rule["backendRefs"] == [{"name": service, "port": port}]
    assert "https://airflow.ads.example.com" in json.dumps(production.outputs["platform"])
    assert "https://jupyter.ads.example.com" in json.dumps(production.outputs["platform"])
    assert values(production, "jupyterhub")["proxy"]["service"] == {"type": "ClusterIP"}
    assert values(production, "jupyterhub")["ingress"] == {"enabled": False}


def test_airflow_metrics_are_scraped(production):
    monitors = {r.name: r.inputs["spec"] for r in production.of_type(SERVICE_MONITOR)}
    statsd, pgbouncer = monitors["airflow-statsd-metrics"], monitors["airflow-pgbouncer-metrics"]
    assert statsd["selector"]["matchLabels"] == {"tier": "airflow", "component": "statsd", "release": "airflow"}
    assert statsd["endpoints"][0]["port"] == "statsd-scrape"
    assert pgbouncer["selector"]["matchLabels"]["component"] == "pgbouncer"
    # The chart's Service names the exporter's port `pgb-metrics` (templates/pgbouncer/pgbouncer-service.yaml).
    assert pgbouncer["endpoints"][0]["port"] == "pgb-metrics"
    assert values(production, "airflow")["statsd"]["enabled"] is True
    [rule] = policy(production, "airflow", "allow-from-monitoring")["ingress"]
    assert ports(rule) == [9102, 9127]


def test_airflow_pods_get_restricted_security_contexts_and_resources(production):
    af = values(production, "airflow")
    for context in (af["securityContexts"]["pod"], af["statsd"]["securityContexts"]["pod"],
                    af["pgbouncer"]["securityContexts"]["pod"]):
        assert context["runAsNonRoot"] is True and context["seccompProfile"] == {"type": "RuntimeDefault"}
    for context in (af["securityContexts"]["containers"], af["statsd"]["securityContexts"]["container"],
                    af["pgbouncer"]["securityContexts"]["container"],
                    af["pgbouncer"]["metricsExporterSidecar"]["securityContexts"]["container"]):
        assert context["allowPrivilegeEscalation"] is False and context["capabilities"] == {"drop": ["ALL"]}
    assert af["networkPolicies"] == {"enabled": False}  # ours, per namespace
    for path in ("scheduler", "apiServer", "triggerer", "dagProcessor", "workers", "statsd", "pgbouncer",
                 "migrateDatabaseJob", "createUserJob", "pgbouncer.metricsExporterSidecar",
                 "scheduler.logGroomerSidecar", "triggerer.logGroomerSidecar", "dagProcessor.logGroomerSidecar"):
        section = af
        for key in path.split("."):
            section = section[key]
        resources = section["resources"]
        assert resources["requests"]["cpu"] and resources["requests"]["memory"] and resources["limits"]["memory"], path


def test_airflow_network_reaches_postgres_and_the_object_store_only(production, staging_on):
    assert ports(policy(production, "airflow", "allow-to-postgres")["egress"][0]) == [5432]
    assert ports(policy(production, "airflow", "allow-to-seaweedfs")["egress"][0]) == [8333]
    # With a DAG repository, git-sync runs and the namespace may reach git servers over HTTPS.
    assert ports(policy(staging_on, "airflow", "allow-egress-internet")["egress"][0]) == [443]


# Airflow's pods as chart 1.22.0 labels them (each Deployment's selector: tier, component, release).
AIRFLOW_PODS = {component: {"tier": "airflow", "component": component, "release": "airflow"}
                for component in ("api-server", "scheduler", "triggerer", "dag-processor", "worker", "statsd",
                                  "pgbouncer")}


def test_airflow_reaches_gitlab_from_the_api_server_alone(production, staging_on):
    """No git-sync and the in-cluster object store (production): HTTPS out only for the GitLab login, which the API
    server makes; the scheduler, task pods, StatsD and PgBouncer stay inside. With git-sync (staging_on, no SSO)
    every component may reach git servers."""
    with_sso = namespace_policies(production, "airflow")
    assert {name: internet_ports(with_sso, pods) for name, pods in AIRFLOW_PODS.items()} == {
        name: {443} if name == "api-server" else set() for name in AIRFLOW_PODS}
    with_git = namespace_policies(staging_on, "airflow")
    assert {name: internet_ports(with_git, pods) for name, pods in AIRFLOW_PODS.items()} == {
        name: {443} for name in AIRFLOW_PODS}


def test_dags_come_from_git_only_when_a_repository_is_configured(production, staging_on):
    assert values(production, "airflow")["dags"]["gitSync"] == {"enabled": False}
    sync = values(staging_on, "airflow")["dags"]["gitSync"]
    assert sync["enabled"] is True and sync["repo"] == "https://gitlab.example.com/data/dags.git"
    assert sync["ref"] == sync["branch"] == "main" and sync["subPath"] == "dags"


def test_git_sync_containers_meet_the_restricted_level(staging_on):
    # The chart gives git-sync (sidecars and the task pods' init container) only `runAsUser: <uid>` unless
    # dags.gitSync.securityContexts.container is set; the airflow namespace enforces `restricted`.
    context = values(staging_on, "airflow")["dags"]["gitSync"]["securityContexts"]["container"]
    assert context["allowPrivilegeEscalation"] is False and context["capabilities"] == {"drop": ["ALL"]}
    assert context["runAsNonRoot"] is True and context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert context["runAsUser"] == 65533  # the chart's git-sync user (values.yaml dags.gitSync.uid)
    level = staging_on.named("ns-airflow", NAMESPACE).inputs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
    assert level == "restricted"


# --- Spark operator --------------------------------------------------------------------------------------
def test_spark_webhook_is_enabled_and_reachable_by_the_api_server(production):
    sp = values(production, "spark-operator")
    assert sp["webhook"]["enable"] is True and sp["webhook"]["port"] == 9443
    assert sp["webhook"]["failurePolicy"] == "Fail"
    [rule] = policy(production, "spark-operator", "allow-api-server-webhooks")["ingress"]
    assert ports(rule) == [9443]
    assert sp["spark"]["jobNamespaces"] == ["spark-jobs"]


def test_spark_controller_and_webhook_are_ha_in_production(production, staging_on):
    prod, stag = values(production, "spark-operator"), values(staging_on, "spark-operator")
    for part in ("controller", "webhook"):
        assert prod[part]["replicas"] == 2 and prod[part]["podDisruptionBudget"] == {"enable": True, "minAvailable": 1}
        assert stag[part]["replicas"] == 1 and stag[part]["podDisruptionBudget"]["enable"] is False
        assert prod[part]["leaderElection"] == {"enable": True}
        assert prod[part]["resources"]["limits"]["memory"] and prod[part]["resources"]["requests"]["cpu"]
        assert prod[part]["podSecurityContext"]["runAsNonRoot"] is True
        assert prod[part]["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_spark_jobs_run_under_a_quota_from_config(production, staging_on):
    for run, expected in ((production, {"requests.cpu": "16", "requests.memory": "64Gi", "limits.memory": "64Gi",
                                        "pods": "200"}),
                          (staging_on, {"requests.cpu": "8", "requests.memory": "32Gi", "limits.memory": "48Gi",
                                        "pods": "50"})):
        quota = run.named("spark-jobs-quota", "kubernetes:core/v1:ResourceQuota").inputs
        assert quota["metadata"]["namespace"] == "spark-jobs"
        assert {k: quota["spec"]["hard"][k] for k in expected} == expected
        assert quota["spec"]["hard"]["services.loadbalancers"] == "0"
        limits = run.named("spark-jobs-limits", "kubernetes:core/v1:LimitRange").inputs
        assert limits["metadata"]["namespace"] == "spark-jobs"


def test_spark_jobs_namespace_reaches_the_data_stores(production):
    namespace = production.named("ns-spark-jobs", NAMESPACE).inputs["metadata"]["labels"]
    assert namespace["adplatform.io/layer"] == "platform"  # the stores admit the platform layer
    assert namespace["pod-security.kubernetes.io/enforce"] == "baseline"
    assert ports(policy(production, "spark-jobs", "allow-to-seaweedfs")["egress"][0]) == [8333]
    for store in ("clickhouse", "redpanda", "scylla"):
        assert policy(production, "spark-jobs", f"allow-to-{store}")["egress"][0]["ports"], store


def test_spark_crds_follow_the_chart_and_are_applied_before_it(production):
    crds = sorted((r for r in production.of_type(CONFIG_FILE) if r.name.startswith("spark-operator-crds")),
                  key=lambda r: r.name)
    assert [r.inputs["file"] for r in crds] == list(charts.SPARK_OPERATOR_CRDS.urls)
    assert all("/v2.5.2/charts/spark-operator-chart/crds/" in r.inputs["file"] for r in crds)
    assert all(r.protect for r in crds)  # deleting a CRD deletes every SparkApplication
    operator = production.named("spark-operator", RELEASE)
    assert {r.urn for r in crds} <= set(operator.dependencies)
    assert values(production, "spark-operator")["hook"] == {"upgradeCrd": False}


def test_spark_operator_metrics_are_scraped(production):
    monitor = production.named("spark-operator-metrics", POD_MONITOR).inputs
    assert monitor["metadata"]["namespace"] == "spark-operator"
    assert monitor["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "spark-operator",
                                                          "app.kubernetes.io/instance": "spark-operator"}
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    assert ports(policy(production, "spark-operator", "allow-from-monitoring")["ingress"][0]) == [8080]


# --- JupyterHub ----------------------------------------------------------------------------------------
def test_jupyterhub_values_reach_the_engine_as_a_secret(production):
    raw = production.named("jupyterhub", RELEASE).inputs["values"]
    assert isinstance(raw, Secret)  # they carry the proxy token and cookie secret


def test_jupyterhub_keeps_its_hub_database_in_postgres_without_a_password_in_values(production):
    hub = values(production, "jupyterhub")["hub"]
    assert hub["db"]["type"] == "postgres"
    assert hub["db"]["url"] == \
        "postgresql+psycopg2://jupyterhub@postgres-rw.postgres.svc:5432/jupyterhub?sslmode=require"
    assert "password" not in hub["db"] and hub["db"]["upgrade"] is True
    assert hub["extraEnv"]["PGPASSWORD"] == {
        "valueFrom": {"secretKeyRef": {"name": "jupyterhub-db", "key": "password"}}}
    copy = production.named("jupyterhub-db-credentials", SECRET)
    assert copy.inputs["metadata"] == {"name": "jupyterhub-db", "namespace": "jupyterhub"}
    password = db_password(production, "jupyterhub")
    assert string_data(copy)["password"] == password
    assert password not in json.dumps(values(production, "jupyterhub"))


def test_jupyterhub_tokens_are_generated_and_authentication_is_not_open(production, staging_on):
    jh = values(production, "jupyterhub")
    assert re.fullmatch(r"[0-9a-f]{64}", jh["hub"]["cookieSecret"])  # JupyterHub decodes it as hex
    assert len(jh["proxy"]["secretToken"]) == 64
    # Production logs in with GitLab (tests/test_platform_sso.py); staging, without GitLab, with its own accounts.
    assert jh["hub"]["config"]["JupyterHub"]["authenticator_class"] == "oauthenticator.generic.GenericOAuthenticator"
    assert jh["hub"]["config"]["GenericOAuthenticator"]["allowed_groups"]
    native = values(staging_on, "jupyterhub")
    config = native["hub"]["config"]
    assert config["JupyterHub"]["authenticator_class"] != "dummy"
    assert config["NativeAuthenticator"]["open_signup"] is False
    assert config["Authenticator"]["admin_users"] == ["admin"]
    assert "class PlatformAuthenticator(NativeAuthenticator)" in \
        native["hub"]["extraConfig"]["10-platform-authenticator"]
    assert native["hub"]["extraEnv"]["JUPYTERHUB_ADMIN_PASSWORD"] == {
        "valueFrom": {"secretKeyRef": {"name": "jupyterhub-admin", "key": "password"}}}
    for run, hub in ((production, jh), (staging_on, native)):
        assert secret_values(run, "jupyterhub-admin")["password"] not in json.dumps(hub)


def test_jupyterhub_user_servers_follow_the_config(production, staging_on):
    for run, cpu, memory, cpu_g, memory_g, storage, timeout in (
            (production, 2.0, 8 * 2 ** 30, 0.5, 2 * 2 ** 30, "10Gi", 3600),
            (staging_on, 4.0, 16 * 2 ** 30, 1.0, 4 * 2 ** 30, "20Gi", 1800)):
        user = values(run, "jupyterhub")["singleuser"]
        assert user["cpu"] == {"limit": cpu, "guarantee": cpu_g}
        assert user["memory"] == {"limit": memory, "guarantee": memory_g}
        assert user["storage"]["type"] == "dynamic" and user["storage"]["capacity"] == storage
        assert user["storage"]["dynamic"]["storageClass"] == run.outputs["storageClass"]
        cull = values(run, "jupyterhub")["cull"]
        assert cull["enabled"] is True and cull["timeout"] == timeout
        assert user["cloudMetadata"] == {"blockWithIptables": False}  # privileged init container; policies block it
        spawner = values(run, "jupyterhub")["hub"]["config"]["KubeSpawner"]
        assert spawner["pod_security_context"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spawner["container_security_context"]["capabilities"] == {"drop": ["ALL"]}


def test_jupyterhub_fits_a_small_cluster_and_relies_on_our_network_policies(production):
    jh = values(production, "jupyterhub")
    assert jh["scheduling"]["userScheduler"] == {"enabled": False}
    assert jh["prePuller"]["hook"] == {"enabled": False} and jh["prePuller"]["continuous"] == {"enabled": True}
    for section in (jh["hub"], jh["proxy"]["chp"], jh["singleuser"]):
        assert section["networkPolicy"] == {"enabled": False}
    assert jh["hub"]["resources"]["limits"]["memory"] and jh["proxy"]["chp"]["resources"]["requests"]["cpu"]
    assert ports(policy(production, "jupyterhub", "allow-to-postgres")["egress"][0]) == [5432]
    monitor = production.named("jupyterhub-metrics", SERVICE_MONITOR).inputs["spec"]
    assert monitor["selector"]["matchLabels"] == {"component": "hub", "app": "jupyterhub", "release": "jupyterhub"}
    assert monitor["endpoints"][0] == {"port": "hub", "path": "/hub/metrics", "interval": "30s"}
    assert jh["hub"]["authenticatePrometheus"] is False
    assert ports(policy(production, "jupyterhub", "allow-from-monitoring")["ingress"][0]) == [8081]


# JupyterHub's pods as chart 4.4.0 and its KubeSpawner label them (matchLabelsLegacyAndModern; the hub's
# jupyterhub_config.py common_labels and KubeSpawner's component label for user servers).
_JUPYTERHUB = {"app": "jupyterhub", "release": "jupyterhub", "app.kubernetes.io/name": "jupyterhub",
               "app.kubernetes.io/instance": "jupyterhub"}
JUPYTERHUB_PODS = {
    "hub": {**_JUPYTERHUB, "component": "hub", "app.kubernetes.io/component": "hub"},
    "proxy": {**_JUPYTERHUB, "component": "proxy", "app.kubernetes.io/component": "proxy"},
    "image-puller": {**_JUPYTERHUB, "component": "continuous-image-puller"},
    "user-server": {**_JUPYTERHUB, "component": "singleuser-server", "app.kubernetes.io/managed-by": "kubespawner",
                    "hub.jupyter.org/username": "ada", "hub.jupyter.org/servername": ""},
}


def test_jupyterhub_reaches_the_internet_from_user_servers_and_the_logging_in_hub_only(production, staging_on):
    """User servers install packages over HTTPS; with platform.sso the hub calls GitLab; the proxy (internet-facing)
    and the image puller get no way out."""
    with_sso = namespace_policies(production, "jupyterhub")
    assert {pods: internet_ports(with_sso, labels) for pods, labels in JUPYTERHUB_PODS.items()} == {
        "hub": {443}, "proxy": set(), "image-puller": set(), "user-server": {443}}
    without = namespace_policies(staging_on, "jupyterhub")
    assert {pods: internet_ports(without, labels) for pods, labels in JUPYTERHUB_PODS.items()} == {
        "hub": set(), "proxy": set(), "image-puller": set(), "user-server": {443}}


# --- namespaces, schemas, switches -------------------------------------------------------------------------
def test_namespaces_enforce_their_pod_security_levels(production):
    levels = {name: production.named(f"ns-{name}", NAMESPACE).inputs["metadata"]["labels"]
              ["pod-security.kubernetes.io/enforce"] for name in OURS}
    assert levels == {"airflow": "restricted", "spark-operator": "restricted", "spark-jobs": "baseline",
                      "jupyterhub": "restricted"}


@pytest.mark.parametrize("which", ["production", "staging_on"])
def test_every_object_matches_its_schema(which, request):
    run = request.getfixturevalue(which)
    objects = in_namespaces(run)
    assert len(objects) > 30
    for obj in objects:
        validators.validate_kubernetes(obj.type, obj.inputs)


def test_disabling_removes_releases_namespaces_and_routes(disabled, production):
    assert not [r for r in disabled.of_type(RELEASE) if r.name in ("airflow", "spark-operator", "jupyterhub")]
    assert not in_namespaces(disabled)
    assert not [r for r in disabled.of_type(CONFIG_FILE) if r.name.startswith("spark-operator-crds")]
    assert not [r for r in disabled.of_type(HTTPROUTE) if r.name in ("airflow-route", "jupyterhub-route")]
    assert "airflow.ads.example.com" not in json.dumps(disabled.outputs["platform"])
    assert in_namespaces(production)  # the same stack with them on has them


def test_airflow_without_its_database_is_refused():
    found = config_problems(base_raw(dataPlane={"postgres": {"databases": ["gitlab", "mlflow", "jupyterhub"]}}))
    assert any("dataPlane.postgres.databases" in p and "'airflow'" in p and "platform.airflow" in p for p in found)


@pytest.mark.parametrize("platform, key", [
    ({"jupyterhub": {"userCpuGuarantee": "4", "userCpuLimit": "2"}}, "userCpuGuarantee"),
    ({"jupyterhub": {"userMemoryGuarantee": "16Gi"}}, "userMemoryGuarantee"),
    ({"spark": {"pods": 1}}, "platform.spark.pods"),
    ({"airflow": {"dagsRepo": "git@example.com:dags.git"}}, "platform.airflow.dagsRepo"),
])
def test_invalid_data_engineering_settings_are_refused(platform, key):
    found = config_problems(base_raw(platform=platform))
    assert any(key in p for p in found), found


def test_module_constants_match_the_chart_names():
    # Names the charts derive from the release (airflow.fullname, spark-operator.fullname, z2jh fullnameOverride "").
    assert airflow.API_SERVER_SERVICE == "airflow-api-server" and airflow.RELEASE == "airflow"
    assert spark.JOBS_SERVICE_ACCOUNT == "spark-operator-spark"
    assert jupyterhub.PROXY_SERVICE == "proxy-public"
