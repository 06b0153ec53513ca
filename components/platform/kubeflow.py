"""Kubeflow Pipelines 2.17 standalone in namespace `kubeflow`, from its own kustomize manifests (no Helm chart):
our overlays components/platform/kustomize/kubeflow-pipelines-cluster (CRDs first) and kubeflow-pipelines (the
`env/platform-agnostic` install), applied with pulumi_kubernetes.kustomize.v2.Directory.

What this module sets and why:

- Object store: the platform's (dataPlane.objectStorage, bucket `ml-artifacts`), not the SeaweedFS the manifests
  bundle since KFP 2.15 (removed by the overlay). Stack-specific settings live in objects Pulumi writes next to
  the manifests, which the overlay points at: ConfigMap `kfp-object-store` (API server and UI endpoint, bucket,
  region), ConfigMap `kfp-launcher` (v2 pipeline root `s3://<bucket>/v2/artifacts` and its S3 provider, which
  drivers and launchers read), ConfigMap `workflow-controller-configmap` (Argo's artifact repository for logs
  and v1 artifacts, the same bucket) and Secret `mlpipeline-minio-artifact` (the store's keys; the name every
  KFP component reads).
- Database: the manifests' MySQL 8.4, on a volume Pulumi owns (`mysql-pv-claim`: protected in production,
  sized by platform.kubeflow.databaseStorageSize) with a generated root password (Secret `mysql-secret`,
  upstream: root without one). Not the shared CloudNativePG cluster: KFP's API server issues CREATE DATABASE
  at start (needs CREATEDB, which the platform's database owners lack), connects with sslmode=disable
  (backend/src/apiserver/client/sql.go at 2.17.0) and wants three databases (pipelines, cache, ML Metadata) under
  one login; the `-postgresql` variant also runs its own PostgreSQL pods and passes passwords as arguments.
  Before each Velero backup a hook dumps MySQL into its volume (kustomize/kubeflow-pipelines/patches/mysql.yaml).
- No default credentials: upstream's minio/minio123 Secret and empty MySQL password are removed by the overlay
  and written here from generated values and the object store's keys.
- UI: the standalone UI and API have no login (anyone reaching them runs pipelines, i.e. code, in this namespace).
  With platform.sso on, https://kubeflow.<domain> serves the UI through oauth2-proxy (auth_proxy.py): members of
  the admins' groups and of platform.sso.users.kubeflow only. Without SSO it is not routed: `kubectl -n kubeflow
  port-forward svc/ml-pipeline-ui 8080:80`.
- Pod Security `baseline` (upstream's level): pipeline steps run users' images, often as root (lightweight
  Python components pip-install at start); KFP's own pods run non-root anyway.
- Network: KFP's pods, Argo's controller and pipeline pods talk inside the namespace (API server, ML Metadata,
  MySQL, cache); out: the Kubernetes API, the object store, MLflow (steps log runs there) and HTTPS to the
  internet (package installs, datasets); in: the API server's calls to the cache webhook (8443) and Prometheus.
- Resources: the overlay gives every container requests and a memory limit (upstream sets requests only, some
  none), Argo's executor sidecars theirs here, and a LimitRange defaults pipeline steps that declare none.
- Metrics: PodMonitors for the API server (/metrics on 8888) and Argo's controller (9090, TLS by default).
- Availability: KFP runs single replicas and one MySQL (upstream's layout); no disruption budgets, which would
  block every drain. It is a batch system: a restart delays runs, state is in MySQL and the bucket.
"""

from __future__ import annotations

from typing import Any, Sequence
from urllib.parse import urlsplit

import pulumi
import pulumi_kubernetes as k8s

from components import charts, yamltext
from components.data.endpoints import S3Location
from components.platform import auth_proxy, mlflow
from components.platform.context import LAYER, SCRAPE_INTERVAL, Installed, PlatformContext
from components.services.namespaces import Namespaces, NamespaceSpec

NAMESPACE = charts.KUBEFLOW_PIPELINES.namespace
# Our overlays, relative to the project root (the working directory of the program and of the Kubernetes
# provider that runs kustomize), like providers/gcp.py PD_CSI_KUSTOMIZATION.
CLUSTER_KUSTOMIZATION = "components/platform/kustomize/kubeflow-pipelines-cluster"
KUSTOMIZATION = "components/platform/kustomize/kubeflow-pipelines"
BUCKET = "ml-artifacts"  # object storage purpose: Kubeflow's own (MLflow has its own bucket)
PIPELINE_ROOT = "v2/artifacts"
# Argo's key layout for logs and v1 artifacts: upstream's, whose `private-artifacts/<namespace>/` prefix the UI
# uses to tell which namespace an untracked object belongs to (ARTIFACT_NAMESPACE_KEY_PREFIX).
KEY_FORMAT = ("private-artifacts/{{workflow.namespace}}/{{workflow.name}}/{{workflow.creationTimestamp.Y}}/"
              "{{workflow.creationTimestamp.m}}/{{workflow.creationTimestamp.d}}/{{pod.name}}")
ARTIFACT_SECRET = "mlpipeline-minio-artifact"  # read under this name by the API server, UI, drivers, Argo
ARTIFACT_KEYS = ("accesskey", "secretkey")
MYSQL_SECRET = "mysql-secret"  # username/password, read by the API server, cache server and ML Metadata
MYSQL_USER = "root"  # what KFP's components log in as (upstream mysql-secret)
MYSQL_CLAIM = "mysql-pv-claim"
OBJECT_STORE_CONFIG = "kfp-object-store"
LAUNCHER_CONFIG = "kfp-launcher"
WORKFLOW_CONFIG = "workflow-controller-configmap"
API_PORT = 8888  # ml-pipeline HTTP (REST, /metrics)
ARGO_METRICS_PORT = 9090
CACHE_WEBHOOK_PORT = 8443  # cache-server's mutating webhook, called by the Kubernetes API server
UI_SERVICE = "ml-pipeline-ui"  # manifests/kustomize/base/pipeline/ml-pipeline-ui-service.yaml: port 80 -> 3000
UI_PORT = 80
HOST_LABEL = "kubeflow"
SSO_CLIENT = "kubeflow"  # the UI's OAuth client (components/platform/sso.py), used by its oauth2-proxy
# Argo's init/wait containers in every pipeline pod (upstream's executor settings plus resources).
EXECUTOR = {
    "imagePullPolicy": "IfNotPresent",
    "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}},
    "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}},
}
# third-party/argo/base/workflow-controller-configmap-patch.yaml at 2.17.0: finished workflows go after an hour,
# steps retry twice on errors of the cluster (not of the step).
WORKFLOW_DEFAULTS = {"spec": {
    "ttlStrategy": {"secondsAfterCompletion": 3600, "secondsAfterSuccess": 3600, "secondsAfterFailure": 3600},
    "templateDefaults": {"retryStrategy": {"limit": "2", "retryPolicy": "OnError"}},
}}
# Pipeline steps that declare no resources (the overlay sets KFP's own).
LIMIT_RANGE = {"limits": [{"type": "Container", "defaultRequest": {"cpu": "100m", "memory": "256Mi"},
                           "default": {"memory": "4Gi"}}]}
API_SELECTOR = {"app": "ml-pipeline", "application-crd-id": "kubeflow-pipelines"}
ARGO_SELECTOR = {"app": "workflow-controller", "application-crd-id": "kubeflow-pipelines"}


def namespaces(ctx: PlatformContext) -> list[NamespaceSpec]:
    return [NamespaceSpec(
        name=NAMESPACE, pss="baseline", layer=LAYER, webhooks=(CACHE_WEBHOOK_PORT,),
        gateway=SSO_CLIENT in ctx.sso,  # the UI's proxy is routed only with the single sign-on
        why="pipeline steps run users' images, often as root (lightweight Python components pip-install at "
            "start); KFP's own pods run non-root",
        ingress_from=(ctx.monitoring((API_PORT, ARGO_METRICS_PORT)),),
        egress_to=(*ctx.store_peers("object_storage"), *mlflow.client_egress(ctx)),
        # Steps install packages and read data over HTTPS; provider S3 is HTTPS too.
        egress_world=(443,))]


# --- configuration Pulumi writes into the namespace -----------------------------------------------------------
def artifacts(ctx: PlatformContext) -> S3Location:
    return ctx.data.object_storage.bucket(BUCKET)


def _secure(location: S3Location) -> bool:
    return urlsplit(location.endpoint).scheme == "https"


def object_store_config(location: S3Location) -> dict[str, str]:
    """ConfigMap kfp-object-store: what the overlay's API server and UI patches read."""
    url = urlsplit(location.endpoint)
    secure = _secure(location)
    return {"endpoint": location.endpoint, "host": url.hostname or "", "port": str(url.port or (443 if secure else 80)),
            "secure": str(secure).lower(), "bucket": location.bucket, "region": location.region}


def launcher_config(location: S3Location, path_style: bool) -> dict[str, str]:
    """ConfigMap kfp-launcher: the default pipeline root and the S3 provider v2 drivers and launchers open it with
    (backend/src/v2/config/s3.go S3ProviderConfig at 2.17.0)."""
    provider = {"default": {
        "endpoint": location.endpoint, "region": location.region, "disableSSL": not _secure(location),
        "forcePathStyle": path_style,
        "credentials": {"fromEnv": False, "secretRef": {"secretName": ARTIFACT_SECRET,
                                                        "accessKeyKey": ARTIFACT_KEYS[0],
                                                        "secretKeyKey": ARTIFACT_KEYS[1]}},
    }}
    return {"defaultPipelineRoot": location.url(PIPELINE_ROOT), "providers": yamltext.safe_dump({"s3": provider})}


def workflow_config(location: S3Location) -> dict[str, str]:
    """ConfigMap workflow-controller-configmap (Argo v4.0.5 config/config.go keys, each a YAML document)."""
    repository = {"archiveLogs": True, "s3": {
        "endpoint": urlsplit(location.endpoint).netloc,  # host[:port], no scheme: Argo takes `insecure` for http
        "bucket": location.bucket, "region": location.region, "insecure": not _secure(location),
        "keyFormat": KEY_FORMAT,
        "accessKeySecret": {"name": ARTIFACT_SECRET, "key": ARTIFACT_KEYS[0]},
        "secretKeySecret": {"name": ARTIFACT_SECRET, "key": ARTIFACT_KEYS[1]},
    }}
    return {"artifactRepository": yamltext.safe_dump(repository), "executor": yamltext.safe_dump(EXECUTOR),
            "workflowDefaults": yamltext.safe_dump(WORKFLOW_DEFAULTS)}


def _config_map(ctx: PlatformContext, resource_name: str, name: str, data: dict[str, str],
                opts: pulumi.ResourceOptions) -> k8s.core.v1.ConfigMap:
    return k8s.core.v1.ConfigMap(
        resource_name, metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=NAMESPACE,
                                                           labels=ctx.labels("kubeflow-pipelines", "config")),
        data=data, opts=opts)


def prerequisites(ctx: PlatformContext, after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    """Everything the overlay leaves to us, created before the manifests (their pods read it at start)."""
    opts = ctx.opts(after)
    location = artifacts(ctx)
    objects = ctx.data.object_storage
    root = ctx.password("kubeflow-mysql-root-password")
    _, mysql = ctx.credentials("kubeflow-mysql", MYSQL_SECRET, NAMESPACE,
                               {"username": MYSQL_USER, "password": root.result}, after,
                               labels=ctx.labels("kubeflow-pipelines", "mysql"))
    volume = k8s.core.v1.PersistentVolumeClaim(
        "kubeflow-mysql-volume",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=MYSQL_CLAIM, namespace=NAMESPACE,
                                            labels=ctx.labels("kubeflow-pipelines", "mysql")),
        spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
            access_modes=["ReadWriteOnce"], storage_class_name=ctx.storage_class,
            resources=k8s.core.v1.VolumeResourceRequirementsArgs(
                requests={"storage": ctx.settings.kubeflow.database_storage_size})),
        opts=ctx.opts(after, protect=True))  # deleting it deletes every run, pipeline and metadata record
    return [
        mysql, volume,
        location.secret("kubeflow-artifact-credentials", ARTIFACT_SECRET, NAMESPACE, opts,
                        id_key=ARTIFACT_KEYS[0], secret_key=ARTIFACT_KEYS[1]),
        _config_map(ctx, "kubeflow-object-store", OBJECT_STORE_CONFIG, object_store_config(location), opts),
        _config_map(ctx, "kubeflow-launcher", LAUNCHER_CONFIG, launcher_config(location, objects.path_style), opts),
        _config_map(ctx, "kubeflow-workflow-controller", WORKFLOW_CONFIG, workflow_config(location), opts),
        k8s.core.v1.LimitRange(
            "kubeflow-container-defaults",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="container-defaults", namespace=NAMESPACE,
                                                labels=ctx.labels("kubeflow-pipelines")),
            spec=LIMIT_RANGE, opts=opts),
    ]


def pod_monitors(ctx: PlatformContext, after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    def monitor(resource_name: str, name: str, selector: dict[str, str], endpoint: dict[str, Any]):
        return ctx.custom_resource(
            resource_name, "monitoring.coreos.com/v1", "PodMonitor", name, NAMESPACE,
            {"selector": {"matchLabels": dict(selector)},
             "podMetricsEndpoints": [{**endpoint, "interval": SCRAPE_INTERVAL}]},
            ctx.labels("kubeflow-pipelines", "metrics"), after)

    return [
        monitor("kubeflow-api-metrics", "ml-pipeline", API_SELECTOR, {"port": "http", "path": "/metrics"}),
        # Argo serves metrics over TLS with a self-signed certificate unless told otherwise (metricsConfig.secure).
        monitor("kubeflow-argo-metrics", "workflow-controller", ARGO_SELECTOR,
                {"port": "metrics", "path": "/metrics", "scheme": "https",
                 "tlsConfig": {"insecureSkipVerify": True}}),
    ]


# --- install ------------------------------------------------------------------------------------------------
def install(ctx: PlatformContext, spaces: Namespaces, after: Sequence[pulumi.Resource]) -> Installed:
    ns = spaces[NAMESPACE]
    before = prerequisites(ctx, [*after, ns])
    cluster = k8s.kustomize.v2.Directory("kubeflow-pipelines-cluster", directory=CLUSTER_KUSTOMIZATION,
                                         opts=ctx.opts([*after, ns]))
    pipelines = k8s.kustomize.v2.Directory("kubeflow-pipelines", directory=KUSTOMIZATION, namespace=NAMESPACE,
                                           opts=ctx.opts([*after, ns, cluster, *before]))
    ready = [*before, cluster, pipelines, *pod_monitors(ctx, [pipelines])]
    if SSO_CLIENT not in ctx.sso:
        return Installed(ready=ready)
    proxy = auth_proxy.install(ctx, SSO_CLIENT, HOST_LABEL, NAMESPACE, UI_SERVICE, UI_PORT, [*after, ns, pipelines])
    return Installed(urls={HOST_LABEL: ctx.url(HOST_LABEL)}, ready=[*ready, *proxy])


__all__ = ["install", "namespaces"]
