"""The single catalog of pinned software: Helm charts, manifest releases and the K3s release.

Versions are exact; bump them deliberately (see ../shared/reference/charts-2026.md for where each
was read). Nothing else in the program names a chart repository, a release URL or a version.
"""

from __future__ import annotations

from dataclasses import dataclass

# K3s stable channel at research time (2026-08-27). Stacks may pin another release of K3S_RELEASES.
K3S_VERSION = "v1.36.4+k3s1"
# K3s releases known to exist in the minors this platform supports (k3s-io/docs docs/release-notes/v1.3X.X.md and
# the k3s-io/k3s GitHub releases, to v1.37.1+k3s1 of 2026-09-30; build numbers are not contiguous: v1.35.0 shipped
# as k3s1 and k3s3, never k3s2). cluster.k3sVersion must be one of them: a version that was never released (a
# typo, a guessed build number) would only fail when every node's installer tries to download it. Add a release
# here once its release notes are published.
# etcd for the etcd restore drill (components/data/drills.py): K3s v1.35 and v1.36 embed etcd v3.6 (v3.6.12-k3s1
# since v1.35.6+k3s1 / v1.36.2+k3s1, release notes' "Embedded Component Versions"); etcdutl restores a snapshot of
# its own minor. The upstream release image (distroless: etcd, etcdctl, etcdutl, no shell).
ETCD_IMAGE = "gcr.io/etcd-development/etcd:v3.6.12"
K3S_RELEASES = (
    "v1.35.0+k3s1", "v1.35.0+k3s3", "v1.35.1+k3s1", "v1.35.2+k3s1", "v1.35.3+k3s1", "v1.35.4+k3s1",
    "v1.35.5+k3s1", "v1.35.6+k3s1", "v1.35.7+k3s1", "v1.35.8+k3s1",
    "v1.36.0+k3s1", "v1.36.1+k3s1", "v1.36.2+k3s1", "v1.36.3+k3s1", "v1.36.4+k3s1",
    "v1.37.0+k3s1", "v1.37.1+k3s1",
)
assert K3S_VERSION in K3S_RELEASES


@dataclass(frozen=True)
class Chart:
    repo: str
    chart: str
    version: str
    namespace: str


@dataclass(frozen=True)
class Manifests:
    """A project's release manifests (no upstream Helm chart), pinned to a release tag."""

    name: str
    version: str
    urls: tuple[str, ...]  # applied in order (CRDs first)


# --- k3s layer --------------------------------------------------------------------------------------
CILIUM = Chart("https://helm.cilium.io", "cilium", "1.20.0", "kube-system")
HCLOUD_CCM = Chart("https://charts.hetzner.cloud", "hcloud-cloud-controller-manager", "1.35.0", "kube-system")
# AWS cloud controller manager: chart 0.0.11 runs image v1.35.0 (kubernetes/cloud-provider-aws,
# charts/aws-cloud-controller-manager/Chart.yaml, 2026-03-20; the v1.36 images have no chart yet).
AWS_CCM = Chart("https://kubernetes.github.io/cloud-provider-aws", "aws-cloud-controller-manager", "0.0.11",
                "kube-system")
# Azure cloud controller manager + node manager: chart 1.36.0 (kubernetes-sigs/cloud-provider-azure
# helm/repo/index.yaml, 2026-05-14); it runs the image of the cluster's Kubernetes minor (v1.36.0 for 1.36).
AZURE_CCM = Chart("https://raw.githubusercontent.com/kubernetes-sigs/cloud-provider-azure/master/helm/repo",
                  "cloud-provider-azure", "1.36.0", "kube-system")

# --- cluster services -------------------------------------------------------------------------------
HCLOUD_CSI = Chart("https://charts.hetzner.cloud", "hcloud-csi", "2.22.1", "kube-system")
# AWS EBS CSI driver: chart 2.64.0 / driver v1.64.0 (kubernetes-sigs/aws-ebs-csi-driver tag
# helm-chart-aws-ebs-csi-driver-2.64.0, 2026-08-18).
AWS_EBS_CSI = Chart("https://kubernetes-sigs.github.io/aws-ebs-csi-driver", "aws-ebs-csi-driver", "2.64.0",
                    "kube-system")
# Azure Disk CSI driver: chart/driver 1.34.5 (kubernetes-sigs/azuredisk-csi-driver charts/index.yaml,
# 2026-08-07; the v2.0.0 line is beta). The GitHub Pages repository mirrors the raw one (charts/README.md).
AZURE_DISK_CSI = Chart("https://kubernetes-sigs.github.io/azuredisk-csi-driver", "azuredisk-csi-driver", "1.34.5",
                       "kube-system")
CERT_MANAGER = Chart("https://charts.jetstack.io", "cert-manager", "v1.21.1", "cert-manager")
# Server images pinned to each chart's appVersion (openbao-helm tag openbao-0.29.2: v2.6.2; vault-helm
# v0.34.1: 2.0.4); External Secrets runs its chart's appVersion v2.9.0.
OPENBAO = Chart("https://openbao.github.io/openbao-helm", "openbao", "0.29.2", "openbao")
OPENBAO_VERSION = "2.6.2"
VAULT = Chart("https://helm.releases.hashicorp.com", "vault", "0.34.1", "vault")
VAULT_VERSION = "2.0.4"
EXTERNAL_SECRETS = Chart("https://charts.external-secrets.io", "external-secrets", "2.9.0", "external-secrets")
# external-dns: chart 1.21.1 runs external-dns v0.21.0 (kubernetes-sigs/external-dns tag
# external-dns-helm-chart-1.21.1, charts/external-dns/Chart.yaml appVersion, 2026-08). Hetzner DNS (now part of
# the Hetzner Cloud API) through the webhook provider external-dns lists for it
# (mconfalonieri/external-dns-hetzner-webhook tag v1.0.2, 2026-07-25; v1.0 speaks only the Cloud API).
EXTERNAL_DNS = Chart("https://kubernetes-sigs.github.io/external-dns", "external-dns", "1.21.1", "external-dns")
HETZNER_DNS_WEBHOOK_IMAGE = ("ghcr.io/mconfalonieri/external-dns-hetzner-webhook", "v1.0.2")
VELERO = Chart("https://vmware-tanzu.github.io/helm-charts", "velero", "12.1.0", "velero")  # Velero v1.18.1
# kured: chart 6.1.0 runs kured 1.23.0 (kubereboot/charts tag kured-6.1.0, charts/kured/Chart.yaml appVersion,
# 2026-06-30; published in the repository's gh-pages index.yaml). The image tag is pinned with it, not left to
# the chart's appVersion default (ghcr.io/kubereboot/kured, tag 1.23.0 of kubereboot/kured).
KURED = Chart("https://kubereboot.github.io/charts", "kured", "6.1.0", "kured")
KURED_IMAGE = ("ghcr.io/kubereboot/kured", "1.23.0")
# Cluster Autoscaler: chart 9.59.0 (kubernetes/autoscaler tag cluster-autoscaler-chart-9.59.0, 2026-07-21,
# cluster-autoscaler/charts/cluster-autoscaler; appVersion 1.35.0), the newest 9.x chart of 2026. The image is
# pinned to the autoscaler release of the cluster's Kubernetes minor (upstream runs one autoscaler minor per
# Kubernetes minor): v1.36.1 (tag cluster-autoscaler-1.36.1, 2026-07-22), whose Hetzner provider also takes
# per-group `serverLabels` (cloudprovider/hetzner, providers/hetzner.py).
CLUSTER_AUTOSCALER = Chart("https://kubernetes.github.io/autoscaler", "cluster-autoscaler", "9.59.0",
                           "cluster-autoscaler")
CLUSTER_AUTOSCALER_IMAGE = ("registry.k8s.io/autoscaling/cluster-autoscaler", "v1.36.1")
# The Prometheus Operator's CRDs (ServiceMonitor, PodMonitor, PrometheusRule) on their own, so every layer
# can declare how it is scraped before monitoring is installed. 31.0.1 carries operator v0.93.1, the
# operator kube-prometheus-stack 88.5.3 runs (prometheus-community/helm-charts tags); that chart must
# then run with `crds.enabled: false`.
PROMETHEUS_OPERATOR_CRDS = Chart("https://prometheus-community.github.io/helm-charts", "prometheus-operator-crds",
                                 "31.0.1", "kube-system")
# Linkerd edge-26.8.3 (2026-08-21): edge charts are versioned YYYY.M.N from the edge-YY.M.N tag
# (linkerd2 bin/compute-edge-version). Stable releases are Buoyant Enterprise only since 2024.
LINKERD_CRDS = Chart("https://helm.linkerd.io/edge", "linkerd-crds", "2026.8.3", "linkerd")
LINKERD_CONTROL_PLANE = Chart("https://helm.linkerd.io/edge", "linkerd-control-plane", "2026.8.3", "linkerd")
LINKERD_CNI = Chart("https://helm.linkerd.io/edge", "linkerd2-cni", "2026.8.3", "linkerd-cni")
# Writes Linkerd's trust-anchor ConfigMap from cert-manager's Secret (tag v0.24.0, 2026-06-27).
TRUST_MANAGER = Chart("https://charts.jetstack.io", "trust-manager", "v0.24.0", "trust-manager")

# The Gateway API release Cilium 1.20 is built against (v1.20.0 release notes: "Gateway API v1.6.1").
# Its standard channel holds every CRD Cilium's operator requires (TLSRoute and ListenerSet graduated
# to it in v1.5), so the experimental channel is not installed.
GATEWAY_API_VERSION = "v1.6.1"
GATEWAY_API = Manifests("gateway-api", GATEWAY_API_VERSION, (
    f"https://github.com/kubernetes-sigs/gateway-api/releases/download/{GATEWAY_API_VERSION}/standard-install.yaml",
))
SYSTEM_UPGRADE_CONTROLLER_VERSION = "v0.20.1"
SYSTEM_UPGRADE_CONTROLLER = Manifests("system-upgrade-controller", SYSTEM_UPGRADE_CONTROLLER_VERSION, tuple(
    f"https://github.com/rancher/system-upgrade-controller/releases/download/{SYSTEM_UPGRADE_CONTROLLER_VERSION}/{f}"
    for f in ("crd.yaml", "system-upgrade-controller.yaml")))
# The kubectl its upgrade jobs cordon and drain with (SYSTEM_UPGRADE_JOB_KUBECTL_IMAGE; v0.20.1 ships
# rancher/kubectl:v1.30.3, six minors behind K3s 1.36 and outside kubectl's skew policy of one minor either way of
# the API server). v1.36 is within one minor of every release in K3S_RELEASES (1.35-1.37; tests check it): move it
# with them.
SYSTEM_UPGRADE_JOB_KUBECTL_IMAGE = "rancher/kubectl:v1.36.0"


@dataclass(frozen=True)
class Kustomization:
    """A project's kustomize overlay (no upstream Helm chart), pinned to a release tag."""

    name: str
    version: str
    directory: str  # a folder of a git repository at that tag, as pulumi_kubernetes.kustomize.v2 takes it
    namespace: str


# GCP Persistent Disk CSI driver: no Helm chart upstream; its `noauth` overlay uses the VM's service
# account (no key file). Tag v1.26.4 (2026-07-08) of kubernetes-sigs/gcp-compute-persistent-disk-csi-driver.
# That overlay's images (deploy/kubernetes/images/stable-master) still name driver v1.17.4 at the tag, so
# providers/kustomize/gcp-pd-csi/kustomization.yaml takes the overlay as its base (`directory`, in
# kustomize's remote form) and pins the driver image to this version; a test keeps the two in step.
GCP_PD_CSI_VERSION = "v1.26.4"
GCP_PD_CSI = Kustomization(
    "gcp-compute-persistent-disk-csi-driver", GCP_PD_CSI_VERSION,
    "https://github.com/kubernetes-sigs/gcp-compute-persistent-disk-csi-driver//deploy/kubernetes/overlays/"
    f"noauth?ref={GCP_PD_CSI_VERSION}", "gce-pd-csi-driver")
# The driver image the overlay ends up naming (its stable-master ImageTagTransformer's newName), run at
# GCP_PD_CSI_VERSION: releases are promoted to registry.k8s.io/cloud-provider-gcp under their git tag.
GCP_PD_CSI_IMAGE = "registry.k8s.io/cloud-provider-gcp/gcp-compute-persistent-disk-csi-driver"

# --- data plane: PostgreSQL and object storage ----------------------------------------------------------
# CloudNativePG: chart 0.29.0 runs operator 1.30.0 (cloudnative-pg/charts tag cloudnative-pg-v0.29.0,
# charts/cloudnative-pg/Chart.yaml appVersion, 2026-06-29); the barman-cloud plugin chart 0.7.0 runs plugin
# v0.13.0 (tag plugin-barman-cloud-v0.7.0, Chart.yaml appVersion). Both live in the operator's namespace.
CNPG_VERSION = "1.30.0"
CLOUDNATIVE_PG = Chart("https://cloudnative-pg.github.io/charts", "cloudnative-pg", "0.29.0", "cnpg-system")
BARMAN_CLOUD_VERSION = "v0.13.0"
BARMAN_CLOUD = Chart("https://cloudnative-pg.github.io/charts", "plugin-barman-cloud", "0.7.0", "cnpg-system")
# PostgreSQL 18.6 from CloudNativePG's image catalog (cloudnative-pg/artifacts
# image-catalogs/catalog-standard-trixie.yaml, images.cnpg.io/date 20260817): tag and digest as published.
# Bump it in a `pulumi up` of its own: with primaryUpdateMethod switchover (production), CloudNativePG's webhook
# refuses a Cluster update that changes imageName and PostgreSQL parameters together (validateConfigurationChange,
# internal/webhook/v1/cluster_webhook.go at v1.30.0), e.g. with a memory change that moves shared_buffers.
POSTGRES_IMAGE = ("ghcr.io/cloudnative-pg/postgresql:18.6-202608170814-standard-trixie"
                  "@sha256:771f9eab5225587af259d84680cc69a5b6e374ac32bb24effafde1f3368a1241")
# SeaweedFS: chart 4.44.0 runs SeaweedFS 4.44 (seaweedfs/seaweedfs tag 4.44, k8s/charts/seaweedfs/Chart.yaml,
# 2026-08-22); the image is pinned to that appVersion explicitly.
SEAWEEDFS_VERSION = "4.44"
SEAWEEDFS = Chart("https://seaweedfs.github.io/seaweedfs/helm", "seaweedfs", "4.44.0", "seaweedfs")

# --- data plane: Redpanda and DragonflyDB -------------------------------------------------------------
# Redpanda Operator 26.2.2 (redpanda-data/redpanda-operator tag operator/v26.2.2, operator/chart/Chart.yaml,
# 2026-08-14). It renders the Redpanda cluster from the redpanda chart 26.2.2 it embeds (charts/redpanda/chart/
# Chart.yaml: appVersion v26.2.1) and Console from the console chart 3.9.0 (appVersion v3.9.0); the brokers'
# sidecar is the operator image itself (statefulset.sideCars.image in that values.yaml).
REDPANDA_OPERATOR_VERSION = "v26.2.2"
REDPANDA_OPERATOR = Chart("https://charts.redpanda.com", "operator", "26.2.2", "redpanda-operator")
REDPANDA_VERSION = "v26.2.1"
REDPANDA_CONSOLE_VERSION = "v3.9.0"
# The redpanda chart's helper image defaults to busybox:latest (statefulset.initContainerImage): pinned.
BUSYBOX_VERSION = "1.37.0"
# DragonflyDB operator v1.6.1 (dragonflydb/dragonfly-operator tag v1.6.1, charts/dragonfly-operator/Chart.yaml,
# 2026-06-12; pushed as an OCI chart by .github/workflows/ci.yml). Its default Dragonfly is v1.39.0
# (internal/resources/version.go), pinned here on the Dragonfly resource.
DRAGONFLY_OPERATOR = Chart("oci://ghcr.io/dragonflydb/dragonfly-operator/helm", "dragonfly-operator", "v1.6.1",
                           "dragonfly-operator")
DRAGONFLY_VERSION = "v1.39.0"

# --- data plane: ClickHouse ---------------------------------------------------------------------------
# Altinity operator for ClickHouse 0.27.3, the newest release tag seen (Altinity/clickhouse-operator tag
# release-0.27.3, release PR #2062, 2026-08-11; the reference's 0.25.6 chart / 0.27.1 operator are older). The
# chart is versioned with the operator (deploy/helm/clickhouse-operator/Chart.yaml: version == appVersion)
# and published as that release's tarball behind https://helm.altinity.com.
CLICKHOUSE_OPERATOR = Chart("https://helm.altinity.com", "altinity-clickhouse-operator", "0.27.3",
                            "clickhouse-operator")
# The chart's CRD hook runs bitnami/kubectl:latest (values.yaml crdHook.image): it is switched off and the
# release's CRDs are applied from the same tag instead, so `pulumi up` upgrades them with the chart.
CLICKHOUSE_OPERATOR_CRDS = Manifests("clickhouse-operator-crds", CLICKHOUSE_OPERATOR.version, tuple(
    "https://raw.githubusercontent.com/Altinity/clickhouse-operator/release-"
    f"{CLICKHOUSE_OPERATOR.version}/deploy/helm/clickhouse-operator/crds/CustomResourceDefinition-{name}.yaml"
    for name in ("clickhouseinstallations.clickhouse.altinity.com",
                 "clickhouseinstallationtemplates.clickhouse.altinity.com",
                 "clickhouseoperatorconfigurations.clickhouse.altinity.com",
                 "clickhousekeeperinstallations.clickhouse-keeper.altinity.com")))
# ClickHouse server and Keeper from the 26.3 LTS line (ClickHouse/ClickHouse tag v26.3.21.7-lts, 2026-08-22,
# the newest LTS patch verified; LTS lines get fixes for a year). Docker tags drop the "v" and "-lts".
CLICKHOUSE_VERSION = "26.3.21.7"
# Altinity Backup for ClickHouse (Altinity/clickhouse-backup tag v2.8.0, 2026-07-16; Docker tag without "v",
# .github/workflows/release.yaml).
CLICKHOUSE_BACKUP_VERSION = "2.8.0"
# Its image (Alpine: bash, curl, gzip, awk) also runs the backup jobs' S3 uploads and downloads (Redpanda, the secret
# store's snapshots, the drills): one pinned image with curl's SigV4 signing.
CLICKHOUSE_BACKUP_IMAGE = f"docker.io/altinity/clickhouse-backup:{CLICKHOUSE_BACKUP_VERSION}"

# --- data plane: ScyllaDB -------------------------------------------------------------------------------
# ScyllaDB Operator v1.21.1 (scylladb/scylla-operator tag v1.21.1, 2026-08-11). Its charts are published with
# the git tag as the chart version (Makefile: HELM_CHART_VERSION = `git describe --tags`, i.e. "v1.21.1") and
# the operator image under the tag without the "v". Helm creates CRDs only on first install and never updates
# them, so the release's CRDs (the chart's crds/ are symlinks to these files) are applied from the same tag.
SCYLLA_OPERATOR_VERSION = "1.21.1"
SCYLLA_OPERATOR = Chart("https://scylla-operator-charts.storage.googleapis.com/stable", "scylla-operator",
                        f"v{SCYLLA_OPERATOR_VERSION}", "scylla-operator")
SCYLLA_MANAGER = Chart("https://scylla-operator-charts.storage.googleapis.com/stable", "scylla-manager",
                       f"v{SCYLLA_OPERATOR_VERSION}", "scylla-manager")
SCYLLA_OPERATOR_CRDS = Manifests("scylla-operator-crds", SCYLLA_OPERATOR.version, tuple(
    f"https://raw.githubusercontent.com/scylladb/scylla-operator/{SCYLLA_OPERATOR.version}/pkg/api/scylla/"
    f"{group_version}/scylla.scylladb.com_{plural}.yaml"
    for group_version, plural in (
        ("v1", "scyllaclusters"), ("v1alpha1", "nodeconfigs"), ("v1alpha1", "remotekubernetesclusters"),
        ("v1alpha1", "remoteowners"), ("v1alpha1", "scylladbclusters"),
        ("v1alpha1", "scylladbdatacenternodesstatusreports"), ("v1alpha1", "scylladbdatacenters"),
        ("v1alpha1", "scylladbmanagerclusterregistrations"), ("v1alpha1", "scylladbmanagertasks"),
        ("v1alpha1", "scylladbmonitorings"), ("v1alpha1", "scyllaoperatorconfigs"))))
# ScyllaDB 2026.1.11, the newest patch of the 2026.1 LTS line (scylladb/scylladb tag scylla-2026.1.11,
# 2026-08-10; operator v1.21.1 defaults to 2026.1.3, assets/config/config.yaml). Scylla Manager and its agent
# 3.10.1: the newest 3.10 patch (scylladb/scylla-manager tag v3.10.1) and the operator's tested default.
SCYLLADB_VERSION = "2026.1.11"
SCYLLA_MANAGER_VERSION = "3.10.1"
# The scylla-manager chart pins both images by digest (helm/scylla-manager/values.yaml at v1.21.1: image.tag and
# scylla.agentImage.tag; the operator's assets/config/config.yaml names the same): a tag of ours replaces theirs,
# so ours carries the digest too. Chart-style tags (`<version>@sha256:...`), as the chart's templates append them.
SCYLLA_MANAGER_TAG = f"{SCYLLA_MANAGER_VERSION}@sha256:8e02f5f3501ecbc5286acb09a9fed854bc621e422eba48b71159382604d6491a"
SCYLLA_MANAGER_AGENT_TAG = (f"{SCYLLA_MANAGER_VERSION}"
                            "@sha256:aa85a3da293d0e5ca29214a575efe79b352d6678343d2f6d9aee711ac339f903")
# ScyllaDB Local CSI Driver v1.0.1 (scylladb/local-csi-driver tag v1.0.1, 2026-08-04, the first stable line)
# and the CSI sidecars its deploy/kubernetes/local-csi-driver/50_daemonset.yaml pins (tag and digest).
SCYLLADB_LOCAL_CSI_DRIVER_IMAGE = "docker.io/scylladb/local-csi-driver:1.0.1"
CSI_NODE_DRIVER_REGISTRAR_IMAGE = ("registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.17.0"
                                   "@sha256:f9de845b170155199f2a2a3f9531cf13d78e31235e9db6b6582a8b0db0a50dad")
CSI_LIVENESS_PROBE_IMAGE = ("registry.k8s.io/sig-storage/livenessprobe:v2.19.0"
                            "@sha256:06da0d5b8908072f2e4522692aee8dc119fba7247a9658497e1153992cd777e9")
CSI_PROVISIONER_IMAGE = ("registry.k8s.io/sig-storage/csi-provisioner:v5.3.0"
                         "@sha256:bb057f866177d5f4139a1527e594499cbe0feeb67b63aaca8679dfdf0a6016f9")

# --- platform: data engineering (Airflow, Spark, JupyterHub) ------------------------------------------
# Apache Airflow's official chart 1.22.0 (apache/airflow tag helm-chart/1.22.0, 2026-06-13; its release notes:
# "Default Airflow image is updated to 3.2.2", values.yaml defaultAirflowTag/airflowVersion "3.2.2"). The image is
# pinned to that appVersion explicitly, so the chart's version decisions and the image agree.
AIRFLOW = Chart("https://airflow.apache.org", "airflow", "1.22.0", "airflow")
AIRFLOW_VERSION = "3.2.2"
# Kubeflow Spark operator 2.5.2 (kubeflow/spark-operator tag v2.5.2, charts/spark-operator-chart/Chart.yaml:
# version == appVersion 2.5.2; the controller and webhook image defaults to the appVersion). Helm creates a chart's
# crds/ only on first install and never upgrades them, so the tag's CRDs are applied from the same tag.
SPARK_OPERATOR = Chart("https://kubeflow.github.io/spark-operator", "spark-operator", "2.5.2", "spark-operator")
SPARK_OPERATOR_CRDS = Manifests("spark-operator-crds", SPARK_OPERATOR.version, tuple(
    "https://raw.githubusercontent.com/kubeflow/spark-operator/"
    f"v{SPARK_OPERATOR.version}/charts/spark-operator-chart/crds/sparkoperator.k8s.io_{plural}.yaml"
    for plural in ("sparkapplications", "scheduledsparkapplications", "sparkconnects")))
# JupyterHub chart 4.4.0 (jupyterhub/zero-to-jupyterhub-k8s tag 4.4.0; jupyterhub/Chart.yaml appVersion 5.5.0).
# chartpress tags the chart's own images with the chart version; the user server image is pinned to that tag.
JUPYTERHUB = Chart("https://hub.jupyter.org/helm-chart/", "jupyterhub", "4.4.0", "jupyterhub")
JUPYTERHUB_SINGLEUSER_IMAGE = "quay.io/jupyterhub/k8s-singleuser-sample"
JUPYTERHUB_SINGLEUSER_TAG = JUPYTERHUB.version

# --- platform: monitoring -------------------------------------------------------------------------------
# kube-prometheus-stack 88.5.3 (prometheus-community/helm-charts tag kube-prometheus-stack-88.5.3, 2026-08-21):
# operator v0.93.1 (appVersion, the CRDs of PROMETHEUS_OPERATOR_CRDS), Prometheus v3.14.0, Alertmanager v0.34.0
# (values.yaml image tags), subcharts grafana 12.11.1 (Grafana 13.2.0), kube-state-metrics 8.4.0 (2.20.0),
# prometheus-node-exporter 4.56.1 (1.12.1) (Chart.yaml). Every image the release runs is pinned by these
# (no `latest` among the enabled parts), so none is repeated here.
KUBE_PROMETHEUS_STACK = Chart("https://prometheus-community.github.io/helm-charts", "kube-prometheus-stack", "88.5.3",
                              "monitoring")
# prometheus-adapter chart 5.3.0 runs adapter v0.12.0 (prometheus-community/helm-charts tag prometheus-adapter-5.3.0,
# charts/prometheus-adapter/Chart.yaml appVersion, 2026-02-19; the newest tag as of 2026-08-22). The image defaults to
# the appVersion (values.yaml image.tag ""). The custom and external metrics APIs for the HPAs
# (components/platform/metrics_adapter.py).
PROMETHEUS_ADAPTER = Chart("https://prometheus-community.github.io/helm-charts", "prometheus-adapter", "5.3.0",
                           "custom-metrics")

# --- platform: ML (MLflow, Kubeflow Pipelines) ------------------------------------------------------------
# MLflow: the community-charts chart 1.11.5 runs MLflow 3.15.1 (community-charts/helm-charts tag mlflow-1.11.5,
# charts/mlflow/Chart.yaml appVersion, 2026-08-21); its image burakince/mlflow is pinned to that appVersion. The
# official chart (oci://ghcr.io/mlflow/charts/mlflow 0.1.0) is early and not used.
MLFLOW = Chart("https://community-charts.github.io/helm-charts", "mlflow", "1.11.5", "mlflow")
MLFLOW_VERSION = "3.15.1"
# Kubeflow Pipelines 2.17.0 standalone (kubeflow/pipelines tag 2.17.0, 2026-07-08; no Helm chart upstream): its
# cluster-scoped resources (CRDs, the cache deployer's ClusterRole) first, then the namespaced install
# `env/platform-agnostic` (MySQL). components/platform/kustomize/kubeflow-pipelines{-cluster,}/kustomization.yaml
# take these as their bases (kustomize's remote form) and change what components/platform/kubeflow.py says; a test
# keeps their refs equal to this version. The manifests pin every KFP image to the tag and Argo Workflows to v4.0.5.
KUBEFLOW_PIPELINES_VERSION = "2.17.0"
_KFP_MANIFESTS = "https://github.com/kubeflow/pipelines//manifests/kustomize"
KUBEFLOW_PIPELINES_CLUSTER = Kustomization(
    "kubeflow-pipelines-cluster", KUBEFLOW_PIPELINES_VERSION,
    f"{_KFP_MANIFESTS}/cluster-scoped-resources?ref={KUBEFLOW_PIPELINES_VERSION}", "kubeflow")
KUBEFLOW_PIPELINES = Kustomization(
    "kubeflow-pipelines", KUBEFLOW_PIPELINES_VERSION,
    f"{_KFP_MANIFESTS}/env/platform-agnostic?ref={KUBEFLOW_PIPELINES_VERSION}", "kubeflow")

# --- platform: GitLab and its runner ------------------------------------------------------------------
# GitLab chart 10.2.3 (gitlab-org/charts/gitlab CHANGELOG.md "## 10.2.3 (2026-08-13)", the newest release entry
# seen): chart 10.x runs GitLab 19.x (doc/releases/10_0.md: "With the 19.0 release of GitLab, we have released
# version 10.0"; minor and patch follow GitLab's, doc/installation/version_mappings.md). Chart 10 dropped the
# bundled PostgreSQL, Redis and MinIO and defaults to Gateway API + Envoy Gateway (both switched off here). The
# chart pins every GitLab image to its appVersion (global.gitlabVersion), so none is repeated here.
GITLAB = Chart("https://charts.gitlab.io", "gitlab", "10.2.3", "gitlab")
# GitLab Runner chart 0.91.0: the runner chart GitLab chart 10.2.1 moved to ("Update gitlab-runner to v0.91.0",
# 2026-07-29), i.e. the line released with GitLab 19.2; its image is alpine-v<appVersion> (templates/_helpers.tpl).
GITLAB_RUNNER = Chart("https://charts.gitlab.io", "gitlab-runner", "0.91.0", "gitlab-runner")
# The GitLab chart's own hook image (values.yaml global.kubectl.image: registry.gitlab.com/gitlab-org/build/cng/kubectl,
# tag v<appVersion> unless set; the chart's jobs run it as uid 65534): kubectl and bash, for the runner bootstrap Job
# (components/platform/runner_bootstrap.py). GitLab 19.2.3 is chart 10.2.3's appVersion (see GITLAB).
GITLAB_KUBECTL_IMAGE = "registry.gitlab.com/gitlab-org/build/cng/kubectl:v19.2.3"
# What a CI job runs when its .gitlab-ci.yml names no image (runners.kubernetes.image); the templates name theirs.
RUNNER_DEFAULT_JOB_IMAGE = "docker.io/library/alpine:3.22.1"

# --- platform: single sign-on (components/platform/auth_proxy.py) ------------------------------------------
# oauth2-proxy's official chart 10.7.0 runs oauth2-proxy v7.15.3 (oauth2-proxy/manifests tag oauth2-proxy-10.7.0,
# helm/oauth2-proxy/Chart.yaml appVersion, 2026-06; image.tag defaults to the appVersion). Installed once per tool
# without a login of its own, in that tool's namespace.
OAUTH2_PROXY = Chart("https://oauth2-proxy.github.io/manifests", "oauth2-proxy", "10.7.0", "")

# --- platform: logs and traces (components/platform/logs.py, traces.py) ------------------------------------
# Loki 3.7.6 from chart 18.11.0 (grafana-community/helm-charts tag loki-18.11.0, charts/loki/Chart.yaml
# appVersion; the open-source Grafana charts moved to grafana-community in 2026-03).
LOKI_VERSION = "3.7.6"
LOKI = Chart("https://grafana-community.github.io/helm-charts", "loki", "18.11.0", "logging")
# Tempo 2.10.8 from the single-binary chart 2.2.4 (tag tempo-2.2.4, charts/tempo/Chart.yaml appVersion). Not
# tempo-distributed 3.3.0: it runs Tempo 3.0, whose microservices need a Kafka-compatible queue.
TEMPO_VERSION = "2.10.8"
TEMPO = Chart("https://grafana-community.github.io/helm-charts", "tempo", "2.2.4", "tracing")
# OpenTelemetry Collector chart 0.170.0 (open-telemetry/opentelemetry-helm-charts tag
# opentelemetry-collector-0.170.0, appVersion 0.158.0). The chart names no image: the Kubernetes distribution
# (opentelemetry-collector-releases v0.158.0 distributions/otelcol-k8s/manifest.yaml) at that version.
OTEL_COLLECTOR_IMAGE = "otel/opentelemetry-collector-k8s"
OTEL_COLLECTOR_VERSION = "0.158.0"
OPENTELEMETRY_COLLECTOR = Chart("https://open-telemetry.github.io/opentelemetry-helm-charts",
                                "opentelemetry-collector", "0.170.0", "tracing")

# --- ads layer --------------------------------------------------------------------------------------
# The ad services' placeholder image until a team's own exists (config/ads.py): stefanprodan/podinfo tag 6.14.1
# (charts/podinfo/values.yaml image.repository and image.tag).
PODINFO_IMAGE = "ghcr.io/stefanprodan/podinfo"
PODINFO_VERSION = "6.14.1"

# Every chart and manifest release by name: what the tests hold each release of the program to.
CHARTS: dict[str, Chart] = {c.chart: c for c in (
    CILIUM, HCLOUD_CCM, HCLOUD_CSI, CLUSTER_AUTOSCALER, CERT_MANAGER, OPENBAO, VAULT, EXTERNAL_SECRETS, VELERO, LINKERD_CRDS,
    LINKERD_CONTROL_PLANE, LINKERD_CNI, TRUST_MANAGER, PROMETHEUS_OPERATOR_CRDS, AWS_CCM, AWS_EBS_CSI,
    AZURE_CCM, AZURE_DISK_CSI, CLOUDNATIVE_PG, BARMAN_CLOUD, SEAWEEDFS, REDPANDA_OPERATOR, DRAGONFLY_OPERATOR,
    CLICKHOUSE_OPERATOR, SCYLLA_OPERATOR, SCYLLA_MANAGER,
    KUBE_PROMETHEUS_STACK, PROMETHEUS_ADAPTER, LOKI, TEMPO, OPENTELEMETRY_COLLECTOR, GITLAB, GITLAB_RUNNER, AIRFLOW,
    SPARK_OPERATOR, JUPYTERHUB, MLFLOW, OAUTH2_PROXY,
)}
MANIFESTS: dict[str, Manifests] = {m.name: m for m in (GATEWAY_API, SYSTEM_UPGRADE_CONTROLLER,
                                                     CLICKHOUSE_OPERATOR_CRDS, SCYLLA_OPERATOR_CRDS,
                                                     SPARK_OPERATOR_CRDS)}
