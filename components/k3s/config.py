"""The K3s configuration file of each node, as data (rendered to /etc/rancher/k3s/config.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import yaml

from config.catalog import ROLES
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
                profile: ClusterProfile, agent_token: str | None = None) -> dict[str, Any]:
    """The config of one node. `join_endpoint` None means: this server initialises the cluster."""
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
    return cfg


def dump(cfg: dict[str, Any]) -> str:
    return yaml.safe_dump(cfg, sort_keys=True, default_flow_style=False)
