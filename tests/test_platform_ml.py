"""ML on the platform: MLflow (CloudNativePG backend, proxied S3 artifacts, basic-auth login, HA, gateway route)
and Kubeflow Pipelines standalone (pinned kustomize overlays, the platform's object store, generated MySQL
password, the UI routed only behind the single sign-on)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from components import charts
from components.data import objectstore, postgres
from components.platform import kubeflow, mlflow
from config.platform import NEEDS
from tests import validators, variants
from tests.conftest import ROOT, base_raw
from tests.netpol import PROMETHEUS_PEER, internet_ports, namespace_policies
from tests.stores import PDB, RELEASE, SECRET, chart_of, config_problems, policy, ports, string_data
from tools import mockrun
from tools.mockrun import Run
from tools.plan import model

HTTPROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
SERVICE_MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
POD_MONITOR = "kubernetes:monitoring.coreos.com/v1:PodMonitor"
DIRECTORY = "kubernetes:kustomize/v2:Directory"
CONFIGMAP = "kubernetes:core/v1:ConfigMap"
PVC = "kubernetes:core/v1:PersistentVolumeClaim"
NAMESPACE = "kubernetes:core/v1:Namespace"
PASSWORD = "random:index/randomPassword:RandomPassword"
OURS = (mlflow.NAMESPACE, kubeflow.NAMESPACE)
IN_CLUSTER_S3 = f"http://{objectstore.S3_SERVICE}.{objectstore.NAMESPACE}.svc:{objectstore.S3_PORT}"
EXTERNAL_S3 = variants.EXTERNAL_S3["endpoint"]
OVERLAY = ROOT / kubeflow.KUSTOMIZATION
CLUSTER_OVERLAY = ROOT / kubeflow.CLUSTER_KUSTOMIZATION
# Every Deployment of upstream's env/platform-agnostic at 2.17.0 but the removed SeaweedFS, with its container.
KFP_CONTAINERS = {
    "ml-pipeline": "ml-pipeline-api-server", "ml-pipeline-ui": "ml-pipeline-ui",
    "ml-pipeline-persistenceagent": "ml-pipeline-persistenceagent",
    "ml-pipeline-scheduledworkflow": "ml-pipeline-scheduledworkflow",
    "ml-pipeline-viewer-crd": "ml-pipeline-viewer-crd",
    "ml-pipeline-visualizationserver": "ml-pipeline-visualizationserver", "metadata-grpc-deployment": "container",
    "metadata-envoy-deployment": "container", "metadata-writer": "main", "cache-server": "server",
    "cache-deployer-deployment": "main", "workflow-controller": "workflow-controller", "mysql": "mysql",
}


@pytest.fixture(scope="module")
def disabled() -> Run:
    """Production with both off (the shared production variant, tests/variants.py)."""
    return variants.production_variant()


@pytest.fixture(scope="module")
def staging_external() -> Run:
    """Staging (one replica) with both on and the provider's S3 instead of the in-cluster store (a variant shared
    with other files: tests/variants.py)."""
    return variants.staging_external()


def values(run: Run) -> dict:
    return validators.plain(run.named(mlflow.RELEASE, RELEASE).inputs["values"])


def in_namespaces(run: Run) -> list:
    return [r for r in validators.kubernetes_objects(run)
            if r.inputs.get("metadata", {}).get("namespace") in OURS
            or (r.type == NAMESPACE and r.inputs["metadata"]["name"] in OURS)]


def seaweedfs_keys(run: Run, consumer: str) -> tuple[str, str]:
    """The keys of the consumer's own identity in the object store (one per consumer, objectstore.py)."""
    config = json.loads(string_data(run.named("seaweedfs-s3-config", SECRET))[objectstore.CONFIG_KEY])
    [credentials] = next(i["credentials"] for i in config["identities"] if i["name"] == consumer)
    return credentials["accessKey"], credentials["secretKey"]


def generated(run: Run, name: str) -> str:
    """The value of a RandomPassword (pulumi_random, stable across runs; the mocks answer with its name), after
    checking it is one: 32 characters, protected in production."""
    password = run.named(name, PASSWORD)
    assert password.inputs["length"] == 32 and password.protect == (run.stack == "production")
    return (f"offline-{name}-" + "x" * 64)[:32]


def config_map(run: Run, resource: str) -> dict[str, str]:
    return run.named(resource, CONFIGMAP).inputs["data"]


def overlay_patches(path: Path = OVERLAY) -> list[dict]:
    """Every patch of our kustomization, parsed (inline ones and those in files)."""
    kustomization = yaml.safe_load((path / "kustomization.yaml").read_text())
    docs = []
    for patch in kustomization["patches"]:
        text = patch["patch"] if "patch" in patch else (path / patch["path"]).read_text()
        docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def deleted(docs: list[dict]) -> set[tuple[str, str]]:
    return {(d["kind"], d["metadata"]["name"]) for d in docs if d.get("$patch") == "delete"}


def patched_container(docs: list[dict], deployment: str, container: str) -> list[dict]:
    return [c for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == deployment
            and d.get("$patch") != "delete"
            for c in d["spec"]["template"]["spec"]["containers"] if c["name"] == container]


def env_of(containers: list[dict]) -> dict[str, dict]:
    return {e["name"]: e for c in containers for e in c.get("env", [])}


# --- catalog ----------------------------------------------------------------------------------------------------
def test_mlflow_is_the_pinned_community_chart_and_image(production):
    assert chart_of(production, "mlflow") == (
        "mlflow", "1.11.5", "https://community-charts.github.io/helm-charts", "mlflow", False)
    assert charts.CHARTS["mlflow"] is charts.MLFLOW and charts.MLFLOW_VERSION == "3.15.1"
    v = values(production)
    assert v["image"] == {"repository": "burakince/mlflow", "tag": "3.15.1"}
    assert v["initImages"]["mlflowDbMigration"]["tag"] == "3.15.1"
    assert v["initContainers"][0]["image"] == "burakince/mlflow:3.15.1"


def test_kubeflow_pipelines_overlays_are_pinned_to_the_catalog_version(production):
    version = charts.KUBEFLOW_PIPELINES_VERSION
    assert version == "2.17.0"
    overlays = ((charts.KUBEFLOW_PIPELINES_CLUSTER, CLUSTER_OVERLAY, "kubeflow-pipelines-cluster"),
                (charts.KUBEFLOW_PIPELINES, OVERLAY, "kubeflow-pipelines"))
    for catalog, overlay, resource in overlays:
        assert catalog.version == version and catalog.directory.endswith(f"?ref={version}")
        assert catalog.directory.startswith("https://github.com/kubeflow/pipelines//manifests/kustomize/")
        kustomization = yaml.safe_load((overlay / "kustomization.yaml").read_text())
        assert kustomization["resources"] == [catalog.directory]
        directory = production.named(resource, DIRECTORY)
        # Relative to the project root, where Pulumi runs the program and the provider runs kustomize.
        assert directory.inputs["directory"] == str(overlay.relative_to(ROOT))
    assert charts.KUBEFLOW_PIPELINES.directory.split("?")[0].endswith("/env/platform-agnostic")
    assert charts.KUBEFLOW_PIPELINES_CLUSTER.directory.split("?")[0].endswith("/cluster-scoped-resources")


def test_the_namespaced_install_waits_for_the_crds_and_everything_pulumi_writes(production):
    cluster = production.named("kubeflow-pipelines-cluster", DIRECTORY)
    install = production.named("kubeflow-pipelines", DIRECTORY)
    assert cluster.urn in install.dependencies
    for name, type_ in (("kubeflow-mysql", SECRET), ("kubeflow-artifact-credentials", SECRET),
                        ("kubeflow-mysql-volume", PVC), ("kubeflow-object-store", CONFIGMAP),
                        ("kubeflow-launcher", CONFIGMAP), ("kubeflow-workflow-controller", CONFIGMAP)):
        assert production.named(name, type_).urn in install.dependencies, name
    assert production.named("ns-kubeflow", NAMESPACE).urn in cluster.dependencies


# --- MLflow -----------------------------------------------------------------------------------------------------
def test_mlflow_backend_store_is_the_cloudnativepg_database_by_secret_reference(production):
    v = values(production)
    store = v["backendStore"]
    assert store["postgres"] == {"enabled": True, "host": f"{postgres.CLUSTER}-rw.{postgres.NAMESPACE}.svc",
                                 "port": postgres.PORT, "database": "mlflow"}
    assert store["existingDatabaseSecret"] == {"name": "mlflow-postgres", "usernameKey": "username",
                                               "passwordKey": "password"}
    assert store["databaseMigration"] is True
    assert v["extraEnvVars"]["PGSSLMODE"] == "require"
    # Our copy in namespace mlflow holds the owner's generated credentials, secret, as CloudNativePG has them.
    copy = production.named("mlflow-postgres-credentials", SECRET)
    assert copy.inputs["metadata"] == {"name": "mlflow-postgres", "namespace": "mlflow"}
    original = string_data(production.named("postgres-mlflow-credentials", SECRET))
    assert string_data(copy) == original and original["username"] == "mlflow"
    assert original["password"] not in json.dumps(v)


def test_mlflow_artifacts_go_through_the_server_to_the_object_store(production):
    v = values(production)
    root = v["artifactRoot"]
    assert root["proxiedArtifactStorage"] is True  # --serve-artifacts: clients need no S3 keys
    # its own bucket, not Kubeflow's (where user code runs); no keys in the values
    assert root["s3"] == {"enabled": True, "bucket": "mlflow-artifacts", "path": "mlflow"}
    assert v["extraSecretNamesForEnvFrom"] == ["mlflow-s3"]  # the server's environment: what boto3 reads
    env = v["extraEnvVars"]
    assert env["MLFLOW_S3_ENDPOINT_URL"] == IN_CLUSTER_S3 == "http://s3.seaweedfs.svc:8333"
    assert env["MLFLOW_BOTO_CLIENT_ADDRESSING_STYLE"] == "path"  # SeaweedFS has no bucket DNS names
    keys = string_data(production.named("mlflow-s3", SECRET))
    assert (keys["AWS_ACCESS_KEY_ID"], keys["AWS_SECRET_ACCESS_KEY"]) == seaweedfs_keys(production, "mlflow")
    assert keys["AWS_SECRET_ACCESS_KEY"] not in json.dumps(v)


def test_mlflow_login_is_on_with_a_generated_admin_password_kept_in_a_secret(production):
    v = values(production)
    auth = v["auth"]
    assert auth["enabled"] is True and auth["defaultPermission"] == "READ"
    assert auth["existingAdminSecret"] == {"name": "mlflow-admin", "usernameKey": "username", "passwordKey": "password"}
    assert "adminPassword" not in auth and "password" not in auth["postgres"]
    admin = string_data(production.named("mlflow-admin", SECRET))
    assert admin == {"username": "admin", "password": generated(production, "mlflow-admin-password")}
    assert admin["password"] not in json.dumps(v)
    # Users and permissions in PostgreSQL too, in their own schema (both stores keep an alembic_version table).
    assert auth["postgres"]["host"] == v["backendStore"]["postgres"]["host"]
    assert auth["postgres"]["database"] == "mlflow?options=-csearch_path=mlflow_auth"
    assert "%" not in auth["postgres"]["database"]  # basic_auth.ini goes through ConfigParser interpolation
    assert auth["postgres"]["existingSecret"]["name"] == "mlflow-postgres"
    [init] = v["initContainers"]
    assert "CREATE SCHEMA IF NOT EXISTS mlflow_auth" in init["command"][-1]
    env = {e["name"]: e for e in init["env"]}
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "mlflow-postgres", "key": "password"}
    assert env["PGDATABASE"]["value"] == "mlflow" and env["PGSSLMODE"]["value"] == "require"


def test_mlflow_runs_two_replicas_with_a_budget_in_production_one_without_in_staging(production, staging_external):
    assert values(production)["replicaCount"] == 2
    [pdb] = [r for r in production.of_type(PDB) if r.name == "mlflow-pdb"]
    selector = {"app.kubernetes.io/name": "mlflow", "app.kubernetes.io/instance": "mlflow"}  # mlflow.selectorLabels
    assert pdb.inputs["metadata"]["namespace"] == "mlflow"
    assert pdb.inputs["spec"] == {"minAvailable": 1, "selector": {"matchLabels": selector}}
    term = values(production)["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == selector
    assert values(staging_external)["replicaCount"] == 1
    assert not [r for r in staging_external.of_type(PDB) if r.name == "mlflow-pdb"]


def test_mlflow_is_routed_on_the_gateway_and_accepts_its_public_host(production):
    [route] = [r for r in production.of_type(HTTPROUTE) if r.inputs["metadata"]["namespace"] == "mlflow"]
    spec = route.inputs["spec"]
    assert spec["hostnames"] == ["mlflow.ads.example.com"]
    # Through oauth2-proxy (GitLab login, tests/test_platform_sso.py), which forwards to the MLflow Service.
    assert spec["rules"][-1]["backendRefs"] == [{"name": "mlflow-oauth2-proxy", "port": 80}]
    proxy = production.named("mlflow-oauth2-proxy", RELEASE).inputs["values"]
    assert proxy["config"]["upstreams"] == ["http://mlflow.mlflow.svc.cluster.local:80"]
    assert spec["parentRefs"][0]["sectionName"]
    v = values(production)
    assert v["service"]["port"] == 80 and v["service"]["containerPort"] == 5000
    # MLflow 3 rejects unknown Host headers and cross-origin writes: the public host, the Service, pod addresses.
    assert {"mlflow.ads.example.com", "mlflow.mlflow.svc.cluster.local", "10.*"} <= set(v["serverAllowedHosts"])
    assert v["corsAllowedOrigins"] == ["https://mlflow.ads.example.com"]
    assert production.outputs["platform"]["mlflow"]["urls"] == {"mlflow": "https://mlflow.ads.example.com"}
    assert production.named("netpol-mlflow-allow-from-gateway")


def test_mlflow_metrics_are_scraped_with_the_admin_login(production):
    v = values(production)
    assert v["extraArgs"]["exposePrometheus"] == "/mlflow/metrics"  # --expose-prometheus
    assert {"name": "metrics", "mountPath": "/mlflow/metrics"} in v["extraVolumeMounts"]  # read-only root fs
    assert v["serviceMonitor"]["enabled"] is False
    monitor = production.named("mlflow-metrics", SERVICE_MONITOR).inputs
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"
    assert endpoint["basicAuth"] == {"username": {"name": "mlflow-admin", "key": "username"},
                                     "password": {"name": "mlflow-admin", "key": "password"}}
    assert monitor["spec"]["selector"]["matchLabels"] == mlflow.SELECTOR
    assert ports(policy(production, "mlflow", "allow-from-monitoring")["ingress"][0]) == [5000]


def test_mlflow_namespace_is_restricted_and_reaches_only_its_stores(production, staging_external):
    labels = production.named("ns-mlflow", NAMESPACE).inputs["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    v = values(production)
    assert v["podSecurityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for context in (v["securityContext"], v["initContainers"][0]["securityContext"]):
        assert context["runAsNonRoot"] and not context["allowPrivilegeEscalation"]
        assert context["capabilities"] == {"drop": ["ALL"]} and context["readOnlyRootFilesystem"]
    assert v["serviceAccount"]["automount"] is False
    assert v["resources"]["limits"]["memory"] and v["resources"]["requests"]["cpu"]
    assert ports(policy(production, "mlflow", "allow-to-postgres")["egress"][0]) == [5432]
    assert ports(policy(production, "mlflow", "allow-to-seaweedfs")["egress"][0]) == [8333]


# The pods' labels as the charts render them (mlflow 1.11.5 mlflow.selectorLabels; oauth2-proxy 10.7.0
# oauth2-proxy.labels), so a selector that drifts from them fails.
MLFLOW_SERVER_PODS = {"app": "mlflow", "app.kubernetes.io/name": "mlflow", "app.kubernetes.io/instance": "mlflow"}
MLFLOW_PROXY_PODS = {"app.kubernetes.io/name": "oauth2-proxy", "app.kubernetes.io/instance": "mlflow-oauth2-proxy",
                     "app.kubernetes.io/component": "authentication-proxy", "app.kubernetes.io/part-of": "oauth2-proxy"}


def test_mlflow_reaches_the_internet_only_from_the_pod_that_needs_it(production, staging_external):
    # Production (in-cluster store, SSO): HTTPS out for oauth2-proxy's GitLab login only; the server stays inside.
    assert internet_ports(namespace_policies(production, "mlflow"), MLFLOW_PROXY_PODS) == {443}
    assert internet_ports(namespace_policies(production, "mlflow"), MLFLOW_SERVER_PODS) == set()
    # Provider S3 without SSO: the server (it proxies the artifacts) on HTTPS; no proxy runs.
    assert internet_ports(namespace_policies(staging_external, "mlflow"), MLFLOW_SERVER_PODS) == {443}
    assert internet_ports(namespace_policies(staging_external, "mlflow"), MLFLOW_PROXY_PODS) == set()
    # No policy opens the internet to every pod of the namespace.
    for run in (production, staging_external):
        assert internet_ports(namespace_policies(run, "mlflow"), {"app": "other"}) == set()


# --- Kubeflow Pipelines -----------------------------------------------------------------------------------------
def test_kubeflow_uses_the_platform_object_store_with_its_keys_from_a_secret(production):
    store = config_map(production, "kubeflow-object-store")
    assert store == {"endpoint": IN_CLUSTER_S3, "host": "s3.seaweedfs.svc", "port": "8333", "secure": "false",
                     "bucket": "ml-artifacts", "region": objectstore.REGION}
    launcher = config_map(production, "kubeflow-launcher")
    assert launcher["defaultPipelineRoot"] == "s3://ml-artifacts/v2/artifacts"
    provider = yaml.safe_load(launcher["providers"])["s3"]["default"]
    assert provider["endpoint"] == IN_CLUSTER_S3 and provider["disableSSL"] is True
    assert provider["forcePathStyle"] is True
    assert provider["credentials"] == {"fromEnv": False, "secretRef": {
        "secretName": "mlpipeline-minio-artifact", "accessKeyKey": "accesskey", "secretKeyKey": "secretkey"}}
    argo = yaml.safe_load(config_map(production, "kubeflow-workflow-controller")["artifactRepository"])
    assert argo["s3"]["endpoint"] == "s3.seaweedfs.svc:8333" and argo["s3"]["insecure"] is True
    assert argo["s3"]["bucket"] == "ml-artifacts"
    assert argo["s3"]["accessKeySecret"] == {"name": "mlpipeline-minio-artifact", "key": "accesskey"}
    keys = string_data(production.named("kubeflow-artifact-credentials", SECRET))  # asserts they stayed secret
    assert (keys["accesskey"], keys["secretkey"]) == seaweedfs_keys(production, "kubeflow")
    assert production.named("kubeflow-artifact-credentials", SECRET).inputs["metadata"] == {
        "name": "mlpipeline-minio-artifact", "namespace": "kubeflow"}


def test_the_overlay_reads_only_keys_pulumi_writes(production):
    """Every configMapKeyRef / secretKeyRef the overlay adds names an object and key this program creates."""
    written = {"kfp-object-store": set(config_map(production, "kubeflow-object-store")),
               "mysql-secret": set(string_data(production.named("kubeflow-mysql", SECRET))),
               "mlpipeline-minio-artifact": set(string_data(production.named("kubeflow-artifact-credentials", SECRET)))}
    refs = []
    for doc in overlay_patches():
        for container in (doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])):
            for env in container.get("env", []):
                for kind in ("configMapKeyRef", "secretKeyRef"):
                    ref = (env.get("valueFrom") or {}).get(kind)
                    if ref and ref["name"] in written:
                        refs.append((ref["name"], ref["key"]))
    assert ("kfp-object-store", "endpoint") in refs and ("mysql-secret", "password") in refs
    assert all(key in written[name] for name, key in refs), refs


def test_the_overlay_removes_the_bundled_store_and_every_default_credential():
    docs = overlay_patches()
    gone = deleted(docs)
    assert {("Deployment", "seaweedfs"), ("Service", "seaweedfs"), ("PersistentVolumeClaim", "seaweedfs-pvc"),
            ("ServiceAccount", "seaweedfs"), ("NetworkPolicy", "seaweedfs")} <= gone
    assert {("Secret", "mlpipeline-minio-artifact"), ("Secret", "mysql-secret")} <= gone  # minio/minio123, ""
    assert {("ConfigMap", "kfp-launcher"), ("ConfigMap", "workflow-controller-configmap"),
            ("PersistentVolumeClaim", "mysql-pv-claim")} <= gone  # ours instead
    assert all(d["metadata"].get("namespace") == "kubeflow" for d in docs)  # or kustomize matches nothing
    assert not [d for d in docs if d["kind"] == "Secret" and d.get("$patch") != "delete"]
    mysql_env = env_of(patched_container(docs, "mysql", "mysql"))
    assert mysql_env["MYSQL_ALLOW_EMPTY_PASSWORD"] == {"name": "MYSQL_ALLOW_EMPTY_PASSWORD", "$patch": "delete"}
    assert mysql_env["MYSQL_ROOT_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "mysql-secret", "key": "password"}
    api_env = env_of(patched_container(docs, "ml-pipeline", "ml-pipeline-api-server"))
    assert api_env["OBJECTSTORECONFIG_HOST"]["value"] is None  # upstream's literal seaweedfs.kubeflow goes
    assert api_env["OBJECTSTORECONFIG_PORT"].get("$patch") == "delete"
    ui_env = env_of(patched_container(docs, "ml-pipeline-ui", "ml-pipeline-ui"))
    assert ui_env["MINIO_HOST"]["valueFrom"]["configMapKeyRef"] == {"name": "kfp-object-store", "key": "host"}
    [install_config] = [d for d in docs
                        if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "pipeline-install-config"]
    assert install_config["data"]["cacheImage"] == f"docker.io/library/busybox:{charts.BUSYBOX_VERSION}"


def test_the_cluster_overlay_leaves_the_namespace_to_us():
    assert deleted(overlay_patches(CLUSTER_OVERLAY)) == {("Namespace", "kubeflow")}


def test_every_kfp_container_gets_requests_and_a_memory_limit():
    docs = overlay_patches()
    for deployment, container in KFP_CONTAINERS.items():
        resources = [c["resources"] for c in patched_container(docs, deployment, container) if "resources" in c]
        assert len(resources) == 1, deployment
        assert resources[0]["limits"]["memory"] and resources[0]["requests"]["cpu"], deployment
    executor = yaml.safe_load(kubeflow.workflow_config(kubeflow.artifacts(_fake_ctx()))["executor"])
    assert executor["resources"]["limits"]["memory"]


def test_mysql_has_a_generated_root_password_and_a_protected_volume(production, staging_external):
    secret = production.named("kubeflow-mysql", SECRET)
    assert secret.inputs["metadata"]["name"] == "mysql-secret"
    mysql = string_data(secret)
    assert mysql == {"username": "root", "password": generated(production, "kubeflow-mysql-root-password")}
    volume = production.named("kubeflow-mysql-volume", PVC)
    assert volume.protect  # production: deleting it deletes every run and pipeline
    assert volume.inputs["metadata"] == {"name": "mysql-pv-claim", "namespace": "kubeflow",
                                         "labels": volume.inputs["metadata"]["labels"]}
    assert volume.inputs["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert volume.inputs["spec"]["accessModes"] == ["ReadWriteOnce"]
    staging_volume = staging_external.named("kubeflow-mysql-volume", PVC)
    assert not staging_volume.protect and staging_volume.inputs["spec"]["resources"]["requests"]["storage"] == "50Gi"
    # A consistent dump before Velero copies the volume.
    [mysql_patch] = [d for d in overlay_patches() if d["kind"] == "Deployment" and d["metadata"]["name"] == "mysql"]
    hook = json.loads(mysql_patch["spec"]["template"]["metadata"]["annotations"]["pre.hook.backup.velero.io/command"])
    assert hook[:2] == ["/bin/sh", "-c"] and "mysqldump" in hook[2] and "--single-transaction" in hook[2]


def test_the_kfp_ui_is_published_only_behind_the_single_sign_on(production, staging_external):
    """The UI has no login: with SSO (production) its route goes to oauth2-proxy, never to the UI itself; without
    it (staging runs no GitLab) nothing is routed and only Prometheus and the webhook calls come in."""
    assert NEEDS["kubeflow"].hostnames == ("kubeflow",)
    [route] = [r for r in production.of_type(HTTPROUTE) if r.inputs["metadata"]["namespace"] == "kubeflow"]
    assert [ref["name"] for rule in route.inputs["spec"]["rules"] for ref in rule["backendRefs"]] == \
        ["kubeflow-oauth2-proxy"]
    assert production.outputs["platform"]["kubeflow"]["urls"] == {"kubeflow": "https://kubeflow.ads.example.com"}
    assert not [r for r in staging_external.of_type(HTTPROUTE) if r.inputs["metadata"]["namespace"] == "kubeflow"]
    assert staging_external.outputs["platform"]["kubeflow"]["urls"] == {}
    assert not [r for r in staging_external.resources if r.name == "netpol-kubeflow-allow-from-gateway"]
    # In: only Prometheus and the API server's webhook calls (cache server).
    inbound = {r.name for r in staging_external.resources if r.name.startswith("netpol-kubeflow-allow-from-")}
    assert inbound == {"netpol-kubeflow-allow-from-monitoring"}
    assert ports(policy(production, "kubeflow", "allow-api-server-webhooks")["ingress"][0]) == [8443]


def test_kubeflow_namespace_is_baseline_with_its_reason_and_its_egress(production):
    ns = production.named("ns-kubeflow", NAMESPACE).inputs["metadata"]
    assert ns["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"
    assert "root" in ns["annotations"]["adplatform.io/pod-security-why"]
    assert ports(policy(production, "kubeflow", "allow-to-seaweedfs")["egress"][0]) == [8333]
    assert ports(policy(production, "kubeflow", "allow-to-mlflow")["egress"][0]) == [5000]
    assert ports(policy(production, "kubeflow", "allow-egress-internet")["egress"][0]) == [443]
    assert ports(policy(production, "mlflow", "allow-from-platform")["ingress"][0]) == [5000]
    # Without MLflow no egress to it.
    ctx = _fake_ctx(mlflow_enabled=False)
    [spec] = kubeflow.namespaces(ctx)
    assert [p.namespace for p in spec.egress_to] == ["seaweedfs"]


def test_notebooks_airflow_tasks_and_pipeline_steps_reach_mlflow_only_while_it_is_on(production, disabled):
    # MLflow admits the platform layer on its port; each client namespace needs its own way out too
    # (default-deny egress), to the MLflow pods only.
    for namespace in ("jupyterhub", "airflow", "kubeflow"):
        [rule] = policy(production, namespace, "allow-to-mlflow")["egress"]
        assert ports(rule) == [mlflow.SERVER_PORT] == [5000], namespace
        [peer] = rule["to"]
        assert peer["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "mlflow"}}
        assert peer["podSelector"] == {"matchLabels": mlflow.SELECTOR}
        labels = production.named(f"ns-{namespace}", NAMESPACE).inputs["metadata"]["labels"]
        assert labels["adplatform.io/layer"] == "platform"  # what MLflow's allow-from-platform admits
    [admitted] = policy(production, "mlflow", "allow-from-platform")["ingress"]
    # The platform layer but monitoring: Prometheus comes in through allow-from-monitoring, Grafana not at all.
    assert admitted["from"] == [{"namespaceSelector": {
        "matchLabels": {"adplatform.io/layer": "platform"},
        "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["monitoring"]}]}}]
    [scraped] = policy(production, "mlflow", "allow-from-monitoring")["ingress"]
    assert scraped["from"] == [PROMETHEUS_PEER] and ports(scraped) == [5000]
    names = {r.name for r in disabled.resources}
    assert "netpol-jupyterhub-allow-to-postgres" in names  # JupyterHub and Airflow still run there
    assert not {"netpol-jupyterhub-allow-to-mlflow", "netpol-airflow-allow-to-mlflow"} & names


def test_kfp_metrics_are_scraped(production):
    monitors = {r.inputs["metadata"]["name"]: r.inputs["spec"] for r in production.of_type(POD_MONITOR)
                if r.inputs["metadata"]["namespace"] == "kubeflow"}
    assert monitors["ml-pipeline"]["selector"]["matchLabels"]["app"] == "ml-pipeline"
    assert monitors["ml-pipeline"]["podMetricsEndpoints"][0]["port"] == "http"
    argo = monitors["workflow-controller"]["podMetricsEndpoints"][0]
    assert argo["port"] == "metrics" and argo["scheme"] == "https"
    assert ports(policy(production, "kubeflow", "allow-from-monitoring")["ingress"][0]) == [8888, 9090]


def test_provider_s3_is_used_over_https_by_both(staging_external):
    store = config_map(staging_external, "kubeflow-object-store")
    assert store == {"endpoint": EXTERNAL_S3, "host": "fsn1.your-objectstorage.com", "port": "443",
                     "secure": "true", "bucket": "adp-stage-ml-artifacts", "region": "fsn1"}
    launcher = config_map(staging_external, "kubeflow-launcher")
    assert launcher["defaultPipelineRoot"] == "s3://adp-stage-ml-artifacts/v2/artifacts"
    provider = yaml.safe_load(launcher["providers"])["s3"]["default"]
    assert provider["disableSSL"] is False and provider["forcePathStyle"] is False
    argo = yaml.safe_load(config_map(staging_external, "kubeflow-workflow-controller")["artifactRepository"])["s3"]
    assert argo["endpoint"] == "fsn1.your-objectstorage.com" and argo["insecure"] is False
    keys = string_data(staging_external.named("kubeflow-artifact-credentials", SECRET))
    assert keys == {"accesskey": "stage-object-key", "secretkey": "stage-object-secret"}
    env = values(staging_external)["extraEnvVars"]
    assert env["MLFLOW_S3_ENDPOINT_URL"] == EXTERNAL_S3 and env["MLFLOW_BOTO_CLIENT_ADDRESSING_STYLE"] == "auto"
    assert values(staging_external)["artifactRoot"]["s3"]["bucket"] == "adp-stage-mlflow-artifacts"


# --- switches, config errors, schemas ---------------------------------------------------------------------------
def test_disabling_both_removes_them_and_their_namespaces(production, disabled):
    assert in_namespaces(production)
    assert in_namespaces(disabled) == []
    names = {r.name for r in disabled.resources}
    assert not names & {"mlflow", "mlflow-admin", "mlflow-route", "kubeflow-pipelines", "kubeflow-pipelines-cluster",
                        "kubeflow-mysql-volume", "kubeflow-mysql-root-password", "mlflow-admin-password"}
    assert not [n for n in names if n.startswith(("netpol-mlflow", "netpol-kubeflow"))]
    assert not disabled.of_type(DIRECTORY) and not [r for r in disabled.of_type(RELEASE) if r.name == "mlflow"]
    for name in ("mlflow", "kubeflow"):
        assert disabled.outputs["platform"][name] == {**disabled.outputs["platform"][name], "enabled": False,
                                                      "urls": {}}
    # The data plane keeps MLflow's database: other stacks' switches do not drop data.
    assert disabled.named("postgres-database-mlflow")


def test_mlflow_without_the_object_store_is_refused_naming_both_keys():
    others_off = {name: {"enabled": False} for name in ("gitlab", "logs", "traces", "airflow", "kubeflow")}
    found = config_problems(base_raw(dataPlane={"objectStorage": {"enabled": False}}, platform=others_off))
    assert found == ["adplatform:platform.mlflow.enabled needs dataPlane.objectStorage.enabled (platform.mlflow keeps "
                     "its data there); enable the store or set platform.mlflow.enabled: false, got True"]


def test_kubeflow_database_size_is_validated():
    [message] = config_problems(base_raw(platform={"kubeflow": {"databaseStorageSize": "20GB"}}))
    assert message.startswith("adplatform:platform.kubeflow.databaseStorageSize must be a volume size in Gi or Ti")


@pytest.mark.parametrize("run_name", ["production", "staging_external"])
def test_our_objects_match_the_kubernetes_and_crd_schemas(request, run_name):
    objects = in_namespaces(request.getfixturevalue(run_name))
    assert len(objects) > 20
    for obj in objects:
        validators.validate_kubernetes(obj.type, obj.inputs)


@pytest.mark.parametrize("run_name", ["production", "staging_external"])
def test_the_policy_pack_finds_nothing_in_ours(request, run_name):
    ours = {r.urn for r in in_namespaces(request.getfixturevalue(run_name))} | {
        r.urn for r in request.getfixturevalue(run_name).resources if r.name in ("mlflow", "kubeflow-pipelines")}
    violations = model.build(request.getfixturevalue(run_name))["policy"]["violations"]
    assert [v for v in violations if v["urn"] in ours] == []


def _fake_ctx(mlflow_enabled: bool = True) -> SimpleNamespace:
    """Just what kubeflow.namespaces/artifacts read, for checks that need no whole-program run."""
    from components.data.endpoints import ObjectStoreEndpoint
    from config.load import S3Keys
    from components.platform.context import PlatformContext
    from components.services.namespaces import Peer

    store = ObjectStoreEndpoint(url=IN_CLUSTER_S3, region="us-east-1", buckets={"ml-artifacts": "ml-artifacts"},
                                identities={"kubeflow": S3Keys("k", "s")}, in_cluster=True, path_style=True)
    return SimpleNamespace(
        settings=SimpleNamespace(mlflow=SimpleNamespace(enabled=mlflow_enabled)),
        data=SimpleNamespace(object_storage=store),
        sso={},  # single sign-on off: the UI is not routed
        monitoring=lambda p: Peer("monitoring", tuple(p)),
        store_peers=lambda *stores: PlatformContext.store_peers(SimpleNamespace(data=SimpleNamespace(
            object_storage=store)), *stores))


@pytest.mark.parametrize("component, key", [("gitlab", "repositoryStorageSize"), ("monitoring", "storageSize"),
                                            ("jupyterhub", "userStorageSize"), ("kubeflow", "databaseStorageSize")])
def test_platform_volume_sizes_of_zero_are_refused(component, key):
    # A 0Gi claim is no volume: refused by name, before anything exists.
    [message] = config_problems(base_raw(platform={component: {key: "0Gi"}}))
    assert message == (f"adplatform:platform.{component}.{key} must be a volume size in Gi or Ti of at least 1Gi, "
                       "such as 100Gi or 2Ti, got '0Gi'")
