"""Cilium values: eBPF networking with kube-proxy replacement, WireGuard and Hubble."""

from __future__ import annotations

from typing import Any

import pulumi

from components.k3s.config import API_PORT


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        merged[key] = deep_merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def cilium_values(api_host: pulumi.Input[str], node_count: int, provider_values: dict[str, Any]) -> dict[str, Any]:
    """Provider-neutral values; the provider adds routing specifics (e.g. native routing)."""
    base: dict[str, Any] = {
        "kubeProxyReplacement": True,
        # Without kube-proxy Cilium cannot reach the API through the service IP: give it the endpoint.
        "k8sServiceHost": api_host,
        "k8sServicePort": API_PORT,
        # Pod CIDRs come from the nodes' spec.podCIDR, allocated by K3s from its cluster-cidr.
        "ipam": {"mode": "kubernetes"},
        "routingMode": "tunnel",
        "tunnelProtocol": "vxlan",
        "bpf": {"masquerade": True},
        # ipBlock rules of NetworkPolicies match node addresses too: the API server and webhook
        # callers are nodes (components/services/namespaces.py).
        "policyCIDRMatchMode": "nodes",
        "encryption": {"enabled": True, "type": "wireguard"},
        "operator": {"replicas": min(2, node_count), "rollOutPods": True,
                     "prometheus": {"enabled": True}},
        "rollOutCiliumPods": True,
        "prometheus": {"enabled": True},
        "hubble": {
            "enabled": True,
            "metrics": {"enabled": ["dns", "drop", "tcp", "flow", "port-distribution", "icmp", "httpV2"]},
            "relay": {"enabled": True, "replicas": min(2, node_count)},
            "ui": {"enabled": True},
        },
    }
    merged = deep_merge(base, provider_values)
    if merged.get("routingMode") == "native":
        merged.pop("tunnelProtocol", None)
    return merged
