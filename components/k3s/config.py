"""The K3s configuration file of each node, as data (rendered to /etc/rancher/k3s/config.yaml)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlparse

import pulumi

from config import StackConfig, StackSecrets
from components import yamltext
from components.scheduling import REGION_TOPOLOGY, ZONE_TOPOLOGY
from config.catalog import ROLES
from config.model import LOCATION_LABEL
from config.platform import gitlab_issuer, oauth_client_id
from config.services import Backups, etcd_s3_retention
from providers.base import ClusterProfile, NodeSpec

API_PORT = 6443

# Reserve capacity for the OS and K3s on every node so pods cannot starve them.
KUBELET_RESERVED = ["kube-reserved=cpu=250m,memory=512Mi", "system-reserved=cpu=250m,memory=512Mi"]
# Database nodes: exclusive cores for Guaranteed-QoS pods with integer CPU requests (ScyllaDB,
# Redpanda pin their shards to cores). The static policy needs a whole reserved core.
KUBELET_DATABASE = ["cpu-manager-policy=static", "kube-reserved=cpu=500m,memory=1Gi",
                    "system-reserved=cpu=500m,memory=1Gi"]


# --- CIS hardening (docs.k3s.io/security/hardening-guide, "v1.29 and Newer"; K3s flags as in
# docs/cli/server.md). The files the flags name are written by scripts/install.sh before K3s starts.
SERVER_DIR = "/var/lib/rancher/k3s/server"
AUDIT_POLICY_PATH = f"{SERVER_DIR}/audit.yaml"
AUDIT_LOG_PATH = f"{SERVER_DIR}/logs/audit.log"  # its directory is created mode 0700: the log names users
ADMISSION_CONFIG_PATH = f"{SERVER_DIR}/admission.yaml"
# TLS 1.2 suites with forward secrecy and AEAD only (the "secure" list of Kubernetes' component-base
# cliflag, which both the kubelet and the API server parse; K3s applies the API server's list to its
# supervisor on 6443 too). TLS 1.3 suites are not configurable in Go and are all strong.
TLS_CIPHER_SUITES = ("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                     "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                     "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305")
TLS_ARGS = [f"tls-cipher-suites={','.join(TLS_CIPHER_SUITES)}", "tls-min-version=VersionTLS12"]
# Every node's kubelet: an idle `kubectl exec`/`port-forward` stream is closed after 5 minutes (CIS 4.2.5),
# so a forgotten session does not hold a shell into a pod.
KUBELET_HARDENING = ["streaming-connection-idle-timeout=5m", *TLS_ARGS]
# Admission plugins on top of the API server's defaults (PodSecurity, ResourceQuota, ... stay on). The flag
# replaces K3s' own value (NodeRestriction), so NodeRestriction is repeated.
ADMISSION_PLUGINS = (
    "NodeRestriction",  # a kubelet may change only its own Node and the pods bound to it
    "EventRateLimit",  # CIS 1.2.9: a crash-looping or hostile client cannot flood etcd with Events
    # No Service may set spec.externalIPs: anyone allowed to create a Service could otherwise capture
    # traffic to any address (CVE-2020-8554); the platform uses LoadBalancer addresses, never externalIPs.
    "DenyServiceExternalIPs",
)
APISERVER_HARDENING = [
    f"enable-admission-plugins={','.join(ADMISSION_PLUGINS)}",
    f"admission-control-config-file={ADMISSION_CONFIG_PATH}",  # PodSecurity defaults, EventRateLimit limits
    # CIS 1.2.16-1.2.19: who did what through the API, kept 30 days, at most 10 files of 100 MB per server.
    f"audit-log-path={AUDIT_LOG_PATH}", f"audit-policy-file={AUDIT_POLICY_PATH}",
    "audit-log-maxage=30", "audit-log-maxbackup=10", "audit-log-maxsize=100",
    # Service account tokens expire when they say (1 h by default) instead of being silently extended to a year.
    "service-account-extend-token-expiration=false",
    *TLS_ARGS,
]
# CIS 1.3.1: finished pods are garbage-collected beyond this many (the default, 12500, lets them pile up in
# etcd). Higher than the guide's 100: Airflow, Spark and Kubeflow Pipelines runs leave pods whose logs users
# read after the run.
CONTROLLER_MANAGER_HARDENING = ["terminated-pod-gc-threshold=1000"]

# --- kubectl with GitLab (platform.sso): the API server trusts GitLab's ID tokens (Kubernetes "OpenID Connect
# Tokens"). GitLab's ID token carries the username as `preferred_username` and the full paths of the groups the user
# is a direct member of as `groups_direct` (GitLab config/initializers/doorkeeper_openid_connect.rb); `groups`, with
# inherited memberships, is in the userinfo response only, which the API server never reads. Both are prefixed, so
# a GitLab user or group can never be mistaken for a Kubernetes one (system:masters, system:nodes) and RBAC names
# them `gitlab:<username>` / `gitlab:<group path>` (components/platform/sso.py binds the configured groups).
OIDC_PREFIX = "gitlab:"


@dataclass(frozen=True)
class ApiServerOidc:
    issuer_url: str  # GitLab's external URL, https://gitlab.<domain>
    client_id: str  # the kubectl OAuth application's client id (config/platform.py oauth_client_id)

    @classmethod
    def from_config(cls, cfg: StackConfig, stack: str) -> ApiServerOidc | None:
        """Only with the single sign-on on (platform.sso.enabled, which needs this stack's GitLab)."""
        if not (cfg.layers.platform and cfg.platform.sso.enabled):
            return None
        return cls(gitlab_issuer(cfg.domain), oauth_client_id(stack, "kubectl"))

    def args(self) -> list[str]:
        return [f"oidc-issuer-url={self.issuer_url}", f"oidc-client-id={self.client_id}",
                "oidc-username-claim=preferred_username", f"oidc-username-prefix={OIDC_PREFIX}",
                "oidc-groups-claim=groups_direct", f"oidc-groups-prefix={OIDC_PREFIX}"]


# Who is audited how. Secrets, ConfigMaps (which hold credentials in some charts), token reviews and token
# requests: metadata only, never a body. Writes to RBAC: the request body (who granted what). Reads by the
# cluster's own components and health checks: not at all (volume, no signal). Everything else: metadata.
_SENSITIVE = [{"group": "", "resources": ["secrets", "configmaps", "serviceaccounts/token"]},
              {"group": "authentication.k8s.io", "resources": ["tokenreviews"]},
              {"group": "authorization.k8s.io"}]
AUDIT_POLICY: dict[str, Any] = {
    "apiVersion": "audit.k8s.io/v1", "kind": "Policy",
    "omitStages": ["RequestReceived"],  # every request is logged again when its response starts
    "rules": [
        {"level": "None", "nonResourceURLs": ["/healthz*", "/livez*", "/readyz*", "/version", "/metrics"]},
        {"level": "None", "resources": [{"group": "", "resources": ["events"]},
                                        {"group": "coordination.k8s.io", "resources": ["leases"]}]},
        {"level": "None", "userGroups": ["system:nodes"], "verbs": ["get", "list", "watch"]},
        {"level": "Metadata", "resources": _SENSITIVE},
        {"level": "Request", "verbs": ["create", "update", "patch", "delete", "deletecollection"],
         "resources": [{"group": "rbac.authorization.k8s.io"}]},
        {"level": "Metadata"},
    ],
}


def admission_config() -> dict[str, Any]:
    """The API server's AdmissionConfiguration: Pod Security defaults and EventRateLimit limits, inline."""
    return {
        "apiVersion": "apiserver.config.k8s.io/v1", "kind": "AdmissionConfiguration",
        "plugins": [
            {"name": "PodSecurity", "configuration": {
                "apiVersion": "pod-security.admission.config.k8s.io/v1", "kind": "PodSecurityConfiguration",
                # Every namespace the platform creates carries its own labels (components/services/namespaces.py),
                # which win over these defaults; a namespace created by anything else gets `baseline` enforced and
                # `restricted` reported. kube-system (CNI, CSI, CCM) is exempt, as upstream recommends.
                "defaults": {"enforce": "baseline", "enforce-version": "latest", "audit": "restricted",
                             "audit-version": "latest", "warn": "restricted", "warn-version": "latest"},
                "exemptions": {"usernames": [], "runtimeClasses": [], "namespaces": ["kube-system"]}}},
            {"name": "EventRateLimit", "configuration": {
                "apiVersion": "eventratelimit.admission.k8s.io/v1alpha1", "kind": "Configuration",
                # Generous: a healthy cluster stays far below; a loop emitting Events is throttled per
                # namespace and per source before it reaches the server-wide limit.
                "limits": [{"type": "Server", "qps": 5000, "burst": 20000},
                           {"type": "Namespace", "qps": 500, "burst": 2000, "cacheSize": 2000},
                           {"type": "SourceAndObject", "qps": 50, "burst": 250, "cacheSize": 5000}]}},
        ],
    }


def server_files(k3s_role: str) -> dict[str, str]:
    """install.sh parameters: the files the server flags name (empty on agents, which have no API server)."""
    server = k3s_role == "server"
    return {"AUDIT_POLICY_PATH": AUDIT_POLICY_PATH, "AUDIT_POLICY": dump(AUDIT_POLICY) if server else "",
            "AUDIT_LOG_DIR": AUDIT_LOG_PATH.rsplit("/", 1)[0], "PKI_DIR": f"{SERVER_DIR}/tls",
            "ADMISSION_CONFIG_PATH": ADMISSION_CONFIG_PATH,
            "ADMISSION_CONFIG": dump(admission_config()) if server else ""}


def server_url(endpoint: str) -> str:
    """Where a node joins the cluster: K3s' supervisor and the Kubernetes API, one port."""
    return f"https://{endpoint}:{API_PORT}"


def install_script_url(version: str) -> str:
    """The installer from the same K3s tag as the pinned release, not the moving get.k3s.io."""
    return f"https://raw.githubusercontent.com/k3s-io/k3s/{quote(version, safe='')}/install.sh"


def cpu_manager_policy(spec: NodeSpec) -> str:
    return "static" if ROLES[spec.workload_role].database else "none"


def kubelet_args(spec: NodeSpec, profile: ClusterProfile) -> list[str]:
    args = [*(KUBELET_DATABASE if cpu_manager_policy(spec) == "static" else KUBELET_RESERVED), *KUBELET_HARDENING]
    if profile.external_cloud_provider:
        args.append("cloud-provider=external")
    return args


def topology_labels(spec: NodeSpec, profile: ClusterProfile) -> dict[str, str]:
    """Where the node runs, for the stores' zone spread and racks (components/data/placement.py). Where a cloud
    controller manager initialises nodes it sets topology.kubernetes.io/zone and /region itself (and would
    overwrite ours); elsewhere (bare metal, a cloud's nodes joined to another provider's cluster, GCP without a
    CCM) the kubelet registers with the region and zone its provider placed it in (NodeSpec.region/zone, in the
    words that provider's CCM uses), else the zone from the location. The kubelet may set both keys on its own
    Node (NodeRestriction)."""
    labels = {LOCATION_LABEL: spec.location} if spec.location is not None else {}
    if not profile.external_cloud_provider:
        zone = spec.zone or spec.location
        labels.update({key: value for key, value in ((REGION_TOPOLOGY, spec.region), (ZONE_TOPOLOGY, zone))
                       if value is not None})
    return labels


def node_labels(spec: NodeSpec, profile: ClusterProfile) -> dict[str, str]:
    """Every label the node registers with (K3s node-label): its pool's and where it runs."""
    return {**spec.labels, **topology_labels(spec, profile)}


@dataclass(frozen=True)
class NodeAddresses:
    private_ip: str
    public_ip: str


# The keys only the machine knows: an autoscaled node (no hostname or address at render time) resolves them at
# boot into a config drop-in (components/k3s/userdata.py); they are the only keys its config lacks.
NODE_FACT_KEYS = ("node-name", "node-ip", "node-external-ip")


def node_config(spec: NodeSpec, hostname: str | None, addrs: NodeAddresses | None, *, token_key: str, token: str,
                join_endpoint: str | None, tls_sans: list[str], pod_cidr: str, service_cidr: str,
                profile: ClusterProfile, agent_token: str | None = None,
                etcd_snapshots: dict[str, Any] | None = None, oidc: ApiServerOidc | None = None,
                cluster_profile: ClusterProfile | None = None,
                provider_id: str | None = None) -> dict[str, Any]:
    """The config of one node. `join_endpoint` None means: this server initialises the cluster.
    `provider_id`: the Node's spec.providerID where no cloud controller manager or boot command sets it
    (providers/base.py Node.provider_id, checked by providers.base.provider_id).

    `profile` is the node's own (its kubelet flags and labels); `cluster_profile` (default `profile`) the stack
    provider's, whose cluster-wide server flags every server carries, a member on another provider
    (ControlPlane.move) included: K3s' bundled components and its own cloud controller are the cluster's, so a server
    that ran K3s' cloud-node controllers or ServiceLB beside the stack's CCM would contend with it.

    `hostname` and `addrs` None: a node the cluster autoscaler creates, which writes NODE_FACT_KEYS at boot.
    `etcd_snapshots` (servers only): the etcd-s3 flags of `etcd_snapshot_config`. `oidc` (servers only): kubectl
    logs in with GitLab.
    """
    facts = {} if hostname is None or addrs is None else {
        "node-name": hostname, "node-ip": addrs.private_ip, "node-external-ip": addrs.public_ip}
    cfg: dict[str, Any] = {
        token_key: token,
        **facts,
        "node-label": [f"{k}={v}" for k, v in sorted(node_labels(spec, profile).items())],
        "node-taint": list(spec.taints),
        "kubelet-arg": [*kubelet_args(spec, profile), *([f"provider-id={provider_id}"] if provider_id else [])],
        # The CIS sysctls are in place before K3s starts (host tuning runs first).
        "protect-kernel-defaults": True,
    }
    if join_endpoint is not None:
        cfg["server"] = server_url(join_endpoint)
    if spec.k3s_role == "server":
        servers = cluster_profile or profile
        if join_endpoint is None:
            cfg["cluster-init"] = True
        if agent_token is not None:
            cfg["agent-token"] = agent_token
        cfg.update({
            "advertise-address": addrs.private_ip,
            "tls-san": tls_sans,
            "cluster-cidr": pod_cidr,
            "service-cidr": service_cidr,
            # Cilium replaces flannel, kube-proxy and the bundled network policy controller.
            "flannel-backend": "none",
            "disable-network-policy": True,
            "disable-kube-proxy": True,
            "disable": list(servers.k3s_disable),
            "secrets-encryption": True,
            "write-kubeconfig-mode": "0600",
            "kube-apiserver-arg": [*APISERVER_HARDENING, *(oidc.args() if oidc else [])],
            "kube-controller-manager-arg": list(CONTROLLER_MANAGER_HARDENING),
        })
        if servers.external_cloud_provider:
            cfg["disable-cloud-controller"] = True
        cfg.update(etcd_snapshots or {})
    return cfg


def etcd_snapshot_folder(stack: str) -> str:
    """Where in clusterServices.backups.s3's etcd bucket the servers put their snapshots (the etcd restore drill,
    components/data/drills.py, reads them there): stacks share a bucket without sharing snapshots."""
    return f"{stack}/etcd"


@dataclass(frozen=True)
class EtcdBackup:
    """Where and how often the servers snapshot etcd: S3 outside the cluster, so it survives it."""

    endpoint: str  # host[:port], no scheme: K3s always speaks HTTPS unless etcd-s3-insecure is set
    region: str
    bucket: str
    folder: str  # <stack>/etcd: stacks share a bucket without sharing snapshots
    schedule: str  # cron
    retention: int  # snapshots kept per server, on its disk and in S3 (etcd_snapshot_config)
    access_key: pulumi.Output[str]
    secret_key: pulumi.Output[str]

    @classmethod
    def from_config(cls, backups: Backups, stack: str, secrets: StackSecrets) -> EtcdBackup | None:
        """From clusterServices.backups (validated: s3 and both keys are set when enabled)."""
        keys = secrets.backup_keys("etcd")  # the servers' own pair: no other backup writer holds it
        if not backups.enabled or backups.s3 is None or keys is None:
            return None
        return cls(endpoint=urlparse(backups.s3.endpoint).netloc, region=backups.s3.region,
                   bucket=backups.s3.bucket_for("etcd"), folder=etcd_snapshot_folder(stack), schedule=backups.etcd_schedule,
                   retention=backups.etcd_retention, access_key=keys.access_key_id, secret_key=keys.secret_access_key)


def etcd_location_flags(backup: EtcdBackup) -> dict[str, Any]:
    """The non-secret S3 settings, shared by the server config and the restore runbook."""
    return {"etcd-s3": True, "etcd-s3-endpoint": backup.endpoint, "etcd-s3-region": backup.region,
            "etcd-s3-bucket": backup.bucket, "etcd-s3-folder": backup.folder}


def etcd_snapshot_config(backup: EtcdBackup, access_key: str, secret_key: str, servers: int) -> dict[str, Any]:
    """Server flags: scheduled, compressed snapshots kept locally and uploaded to S3.

    S3 has its own retention flag since K3s v1.34.0+k3s1 (k3s-io/k3s#12669, docs.k3s.io cli/etcd-snapshot "S3
    Retention"), default 5; without it S3 would keep 5 snapshots whatever `etcd-snapshot-retention` says (later
    releases fall back to the local value, k3s-io/k3s#13770: set explicitly, it holds on every release). K3s counts
    the S3 retention over the folder's snapshots of all servers together (k3s-io/k3s#8099), the local one per server:
    so S3 keeps `retention` times `servers` (cluster.controlPlane.count, the steady number: not the one extra member
    of a control-plane move, which would reconfigure every server twice per move), as many per server as each disk."""
    return {**etcd_location_flags(backup), "etcd-s3-access-key": access_key, "etcd-s3-secret-key": secret_key,
            "etcd-snapshot-schedule-cron": backup.schedule, "etcd-snapshot-retention": backup.retention,
            "etcd-s3-retention": etcd_s3_retention(backup.retention, servers), "etcd-snapshot-compress": True}


def etcd_restore_commands(backup: EtcdBackup, first_server: str, other_servers: list[str]) -> list[str]:
    """The disaster-recovery runbook for etcd, as shell lines without secrets.

    The S3 keys are read from /etc/rancher/k3s/config.yaml, which Pulumi writes on every server;
    the location flags are repeated so the lines say where the snapshots are. `<snapshot>` is a
    name from the listing (etcd-snapshot-<node>-<timestamp>[.zip]).
    """
    # Quoted: the values come from the stack config (validated for grammar too), and the lines are pasted into
    # a root shell.
    flags = " ".join(f"--{k}" if v is True else f"--{k}={shlex.quote(str(v))}"
                     for k, v in etcd_location_flags(backup).items())
    lines = [f"# on {first_server}: list the snapshots in S3, pick one",
             f"k3s etcd-snapshot ls {flags}",
             f"# on every server ({', '.join([first_server, *other_servers])}): stop K3s",
             "systemctl stop k3s",
             f"# on {first_server}: reset etcd to the snapshot (one member), then start it",
             f"k3s server --cluster-reset --cluster-reset-restore-path=<snapshot> {flags}",
             "systemctl start k3s"]
    if other_servers:
        lines += [f"# on {', '.join(other_servers)}: drop the old etcd data and rejoin the restored member",
                  "rm -rf /var/lib/rancher/k3s/server/db/",
                  "systemctl start k3s"]
    return lines


def dump(cfg: dict[str, Any]) -> str:
    return yamltext.safe_dump(cfg, sort_keys=True, default_flow_style=False)
