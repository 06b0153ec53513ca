"""The K3s configuration file of each node, as data (rendered to /etc/rancher/k3s/config.yaml)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlparse

import pulumi
import yaml

from config import StackSecrets
from config.catalog import ROLES
from config.services import Backups
from providers.base import ClusterProfile, NodeSpec

API_PORT = 6443

# Reserve capacity for the OS and K3s on every node so pods cannot starve them.
KUBELET_RESERVED = ["kube-reserved=cpu=250m,memory=512Mi", "system-reserved=cpu=250m,memory=512Mi"]
# Database nodes: exclusive cores for Guaranteed-QoS pods with integer CPU requests (ScyllaDB,
# Redpanda pin their shards to cores). The static policy needs a whole reserved core.
KUBELET_DATABASE = ["cpu-manager-policy=static", "kube-reserved=cpu=500m,memory=1Gi",
                    "system-reserved=cpu=500m,memory=1Gi"]


def install_script_url(version: str) -> str:
    """The installer from the same K3s tag as the pinned release, not the moving get.k3s.io."""
    return f"https://raw.githubusercontent.com/k3s-io/k3s/{quote(version, safe='')}/install.sh"


def cpu_manager_policy(spec: NodeSpec) -> str:
    return "static" if ROLES[spec.workload_role].database else "none"


def kubelet_args(spec: NodeSpec, profile: ClusterProfile) -> list[str]:
    args = list(KUBELET_DATABASE if cpu_manager_policy(spec) == "static" else KUBELET_RESERVED)
    if profile.external_cloud_provider:
        args.append("cloud-provider=external")
    return args


@dataclass(frozen=True)
class NodeAddresses:
    private_ip: str
    public_ip: str


def node_config(spec: NodeSpec, hostname: str, addrs: NodeAddresses, *, token_key: str, token: str,
                join_endpoint: str | None, tls_sans: list[str], pod_cidr: str, service_cidr: str,
                profile: ClusterProfile, agent_token: str | None = None,
                etcd_snapshots: dict[str, Any] | None = None) -> dict[str, Any]:
    """The config of one node. `join_endpoint` None means: this server initialises the cluster.

    `etcd_snapshots` (servers only): the etcd-s3 flags of `etcd_snapshot_config`.
    """
    cfg: dict[str, Any] = {
        token_key: token,
        "node-name": hostname,
        "node-ip": addrs.private_ip,
        "node-external-ip": addrs.public_ip,
        "node-label": [f"{k}={v}" for k, v in sorted(spec.labels.items())],
        "node-taint": list(spec.taints),
        "kubelet-arg": kubelet_args(spec, profile),
        # The CIS sysctls are in place before K3s starts (host tuning runs first).
        "protect-kernel-defaults": True,
    }
    if join_endpoint is not None:
        cfg["server"] = f"https://{join_endpoint}:{API_PORT}"
    if spec.k3s_role == "server":
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
            "disable": list(profile.k3s_disable),
            "secrets-encryption": True,
            "write-kubeconfig-mode": "0600",
        })
        if profile.external_cloud_provider:
            cfg["disable-cloud-controller"] = True
        cfg.update(etcd_snapshots or {})
    return cfg


@dataclass(frozen=True)
class EtcdBackup:
    """Where and how often the servers snapshot etcd: S3 outside the cluster, so it survives it."""

    endpoint: str  # host[:port], no scheme: K3s always speaks HTTPS unless etcd-s3-insecure is set
    region: str
    bucket: str
    folder: str  # <stack>/etcd: stacks share a bucket without sharing snapshots
    schedule: str  # cron
    retention: int  # snapshots kept, locally and in S3
    access_key: pulumi.Output[str]
    secret_key: pulumi.Output[str]

    @classmethod
    def from_config(cls, backups: Backups, stack: str, secrets: StackSecrets) -> EtcdBackup | None:
        """From clusterServices.backups (validated: s3 and both keys are set when enabled)."""
        keys = secrets.backup_keys("etcd")  # the servers' own pair: no other backup writer holds it
        if not backups.enabled or backups.s3 is None or keys is None:
            return None
        return cls(endpoint=urlparse(backups.s3.endpoint).netloc, region=backups.s3.region,
                   bucket=backups.s3.bucket_for("etcd"), folder=f"{stack}/etcd", schedule=backups.etcd_schedule,
                   retention=backups.etcd_retention, access_key=keys.access_key_id, secret_key=keys.secret_access_key)


def etcd_location_flags(backup: EtcdBackup) -> dict[str, Any]:
    """The non-secret S3 settings, shared by the server config and the restore runbook."""
    return {"etcd-s3": True, "etcd-s3-endpoint": backup.endpoint, "etcd-s3-region": backup.region,
            "etcd-s3-bucket": backup.bucket, "etcd-s3-folder": backup.folder}


def etcd_snapshot_config(backup: EtcdBackup, access_key: str, secret_key: str) -> dict[str, Any]:
    """Server flags: scheduled, compressed snapshots kept locally and uploaded to S3."""
    return {**etcd_location_flags(backup), "etcd-s3-access-key": access_key, "etcd-s3-secret-key": secret_key,
            "etcd-snapshot-schedule-cron": backup.schedule, "etcd-snapshot-retention": backup.retention,
            "etcd-snapshot-compress": True}


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
    return yaml.safe_dump(cfg, sort_keys=True, default_flow_style=False)
